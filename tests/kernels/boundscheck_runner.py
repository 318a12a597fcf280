"""Run Numba kernels once with bounds checking on, in a fresh process, and compare the results
with the same calls in the normal (unchecked, cached) build.

Numba skips index checks unless ``NUMBA_BOUNDSCHECK=1`` is set before it compiles anything, so
the checked run needs its own process, and its own ``NUMBA_CACHE_DIR`` (a checked build must
not land in, or be served from, the normal on-disk cache). An out-of-bounds access raises
IndexError in the child, which fails the test with the child's traceback.

Adding kernels
--------------
Write a module next to this file (e.g. ``pool_boundscheck_cases.py``) with a function
``boundscheck_cases()`` returning a list of ``(name, fn)`` pairs: ``fn()`` takes no arguments,
calls kernels on small, odd inputs (seeded, deterministic), and returns an array or a tuple of
arrays. Then add the file name to :data:`CASE_MODULES`; ``test_boundscheck.py`` runs them all
in one child process (one compile pass for every kernel). Keep to one dtype per kernel there:
bounds do not depend on it, and each extra signature is another compile in the child.

Numba (0.68) compiles no bounds checks anywhere inside a ``parallel=True`` function, not even
in the njit functions its prange body calls. So also run each parallel kernel as a serial
build (``njit(kernel.py_func)``, or a serial twin you already have) in a case named
``"<name>-serial"``: the parent does not rerun those (no compile there); it compares them with
its own unchecked run of ``"<name>"`` (see conv_boundscheck_cases.py).

Command line (what the test runs): ``python boundscheck_runner.py OUT.npz [case_module.py ...]``.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# Case modules (file names in this directory) that the bounds-checked run executes.
CASE_MODULES = ["conv_boundscheck_cases.py", "pool_boundscheck_cases.py", "winograd_boundscheck_cases.py",
                "ops_boundscheck_cases.py", "norm_act_boundscheck_cases.py"]


def load_cases(files=None):
    """{name: fn} from every case module (``boundscheck_cases()``), in order."""
    cases = {}
    for fname in files or CASE_MODULES:
        path = fname if os.path.isabs(fname) else os.path.join(HERE, fname)
        modname = "_boundscheck_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, fn in module.boundscheck_cases():
            if name in cases:
                raise ValueError(f"duplicate bounds-check case name {name!r} (from {fname})")
            cases[name] = fn
    return cases


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def run_cases(cases):
    """{'name/k': array} for every output k of every case."""
    results = {}
    for name, fn in cases.items():
        for k, arr in enumerate(_as_tuple(fn())):
            results[f"{name}/{k}"] = np.asarray(arr)
    return results


def compare_with_unchecked(checked, cases, rtol=1e-12, atol=1e-12):
    """Run ``cases`` here (unchecked build) and compare with the child's ``checked`` results.

    A case named "<name>-serial" is compared with this process's run of "<name>".
    """
    local = run_cases({k: fn for k, fn in cases.items() if not k.endswith("-serial")})
    missing = set(local) - set(checked)
    if missing:
        raise AssertionError(f"the bounds-checked run lacks results {sorted(missing)}")
    for key, got in checked.items():
        name, k = key.rsplit("/", 1)
        base = name[: -len("-serial")] if name.endswith("-serial") else name
        np.testing.assert_allclose(got, local[f"{base}/{k}"], rtol=rtol, atol=atol, err_msg=key)
    return len(checked)


def run_boundschecked(files=None, cache_dir=None, timeout=600):
    """Run the cases in a child process with NUMBA_BOUNDSCHECK=1; return its {'name/k': array}.

    cache_dir: Numba cache for the checked build (default: a fixed folder under the system
    temp dir, so repeated local runs reuse it; it never touches the normal cache).
    """
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "tinyvision-numba-boundscheck")
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(cache_dir))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.npz")
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), out, *(files or CASE_MODULES)],
            env=env, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"bounds-checked kernel run failed (exit code {proc.returncode}):\n{proc.stderr[-6000:]}"
            )
        with np.load(out, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}


def _main(argv):
    import numba

    if not numba.config.BOUNDSCHECK:
        raise SystemExit("boundscheck_runner: NUMBA_BOUNDSCHECK=1 must be set in the environment")
    out, files = argv[0], argv[1:]
    results = run_cases(load_cases(files))
    np.savez(out, **results)


if __name__ == "__main__":
    _main(sys.argv[1:])
