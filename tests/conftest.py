"""Shared test configuration.

Hypothesis profiles: "ci" (the default) has no per-example deadline — Numba compiles a
kernel on its first call, which would otherwise count against the first example — a modest
example count so the whole suite stays well under ten minutes on two cores, and derandomized
examples, so a CI run is reproducible (the same commit always runs the same cases).
"dev" explores more: ``HYPOTHESIS_PROFILE=dev pytest``.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=30,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=300,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    """A seeded generator: every test that draws random data starts from the same state."""
    return np.random.default_rng(0)
