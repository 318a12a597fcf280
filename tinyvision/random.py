"""The random-number source of weight initialisation and dropout.

One NumPy ``Generator`` for the process, reseeded with :func:`manual_seed` (PyTorch's name).
Functions that draw random numbers also accept ``generator=`` for an explicit stream.
Note: the same seed does *not* give PyTorch's numbers (different generators); to compare
with PyTorch, copy weights across with ``load_state_dict``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["manual_seed", "default_generator"]

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator; returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator(generator=None) -> np.random.Generator:
    """``generator`` if given, else the process-wide default."""
    return _generator if generator is None else generator
