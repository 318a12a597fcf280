"""The pooling kernels under NUMBA_BOUNDSCHECK=1 (a child process, its own Numba cache): no
out-of-bounds access on odd geometries, and the same results as the normal build."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boundscheck_runner  # noqa: E402

CASES = "pool_boundscheck_cases.py"


@pytest.mark.slow
@pytest.mark.skipif(CASES in boundscheck_runner.CASE_MODULES,
                    reason="the shared bounds-check test already runs the pooling cases")
def test_pool_kernels_in_bounds(tmp_path):
    checked = boundscheck_runner.run_boundschecked(files=[CASES])
    normal = boundscheck_runner.run_cases(boundscheck_runner.load_cases([CASES]))
    assert set(checked) == set(normal)
    for key, value in normal.items():
        np.testing.assert_array_equal(checked[key], value, err_msg=key)
