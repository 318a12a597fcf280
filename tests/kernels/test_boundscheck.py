"""Every registered Numba kernel, run once with NUMBA_BOUNDSCHECK=1 in a child process (its own
Numba cache), must finish without an IndexError and give the same numbers as the normal build.
See boundscheck_runner.py for how to register more kernels."""
import boundscheck_runner as runner


def test_kernels_in_bounds_and_same_results():
    cases = runner.load_cases()
    checked = runner.run_boundschecked()
    assert runner.compare_with_unchecked(checked, cases) == len(checked) > 0


def test_runner_catches_an_out_of_bounds_read(tmp_path):
    """The harness itself: a kernel reading one past the end must fail the run."""
    bad = tmp_path / "bad_cases.py"
    bad.write_text(
        "import numpy as np\n"
        "from numba import njit\n"
        "@njit\n"
        "def past_end(a):\n"
        "    s = 0.0\n"
        "    for i in range(a.shape[0] + 1):\n"
        "        s += a[i]\n"
        "    return s\n"
        "def boundscheck_cases():\n"
        "    return [('past_end', lambda: np.array(past_end(np.ones(3))))]\n"
    )
    try:
        runner.run_boundschecked([str(bad)], cache_dir=tmp_path / "cache")
    except AssertionError as e:
        assert "IndexError" in str(e)
    else:
        raise AssertionError("an out-of-bounds read went unnoticed")
