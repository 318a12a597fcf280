"""Data-parallel execution for the CPU kernels: one worker thread per core, each with
single-threaded BLAS, each working on its own images.

Why: a convolution is a sequence of (im2col, GEMM) steps. Running each step on all cores
(parallel im2col, then multi-threaded GEMM) puts a barrier after every step; on a busy
machine every barrier waits for the slowest core's time slice, and small steps drown in
synchronisation. Giving each core its own share of the batch instead — its own columns
buffer in its own cache, its own single-threaded GEMMs — has no barrier until the end.
Measured on the 2-core CI machine under load from other processes: 1.3x-7x faster than
the step-parallel form (see docs/conv.md).

NumPy's matmul and ``nogil`` Numba kernels release the GIL, so plain Python threads run
truly in parallel. OpenBLAS's own thread count is set to 1 for the duration (and restored);
when NumPy's BLAS is not an OpenBLAS we can reach, callers fall back to the step-parallel form.
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["num_threads", "blas_threads_controllable", "single_threaded_blas", "run_parallel", "parallel_kernel_lock"]

_lock = threading.RLock()
_pool = None
_pool_size = 0
_blas = None  # (get, set) ctypes functions, or False when unavailable


def num_threads() -> int:
    """Worker count: Numba's thread count (NUMBA_NUM_THREADS, numba.set_num_threads)."""
    import numba

    return max(1, int(numba.get_num_threads()))


def _blas_functions():
    global _blas
    if _blas is None:
        _blas = False
        libdir = os.path.dirname(np.__file__) + ".libs"
        names = [("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                 ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
                 ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                 ("openblas_get_num_threads", "openblas_set_num_threads")]
        for path in sorted(glob.glob(os.path.join(libdir, "*openblas*"))):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for get_name, set_name in names:
                if hasattr(lib, get_name) and hasattr(lib, set_name):
                    get_fn, set_fn = getattr(lib, get_name), getattr(lib, set_name)
                    get_fn.restype = ctypes.c_int
                    set_fn.argtypes = [ctypes.c_int]
                    _blas = (get_fn, set_fn)
                    return _blas
    return _blas


def blas_threads_controllable() -> bool:
    """Whether NumPy's BLAS is an OpenBLAS whose thread count we can set."""
    return bool(_blas_functions())


_blas_users = 0
_blas_saved = None


@contextlib.contextmanager
def single_threaded_blas():
    """OpenBLAS uses one thread inside this block; the previous count comes back after the last
    of any overlapping blocks (from several caller threads) has exited."""
    global _blas_users, _blas_saved
    fns = _blas_functions()
    if not fns:
        yield
        return
    get_fn, set_fn = fns
    with _lock:
        if _blas_users == 0:
            _blas_saved = int(get_fn())
            set_fn(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _lock:
            _blas_users -= 1
            if _blas_users == 0:
                set_fn(_blas_saved)


def _get_pool(size):
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != size:
            if _pool is not None:
                _pool.shutdown(wait=True)
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="tinyvision-conv")
            _pool_size = size
        return _pool


# Numba's "workqueue" threading layer (used when neither TBB nor OpenMP is present) aborts the
# process if two threads launch parallel kernels at once; launches go through this lock.
parallel_kernel_lock = threading.Lock()

_running = threading.local()


def run_parallel(fn, tasks):
    """[fn(task) for task in tasks], one thread per task, with single-threaded BLAS.

    Re-entrant calls (from inside a worker) run sequentially in the calling thread.
    """
    if len(tasks) <= 1 or getattr(_running, "active", False):
        return [fn(t) for t in tasks]

    def call(task):
        _running.active = True
        try:
            return fn(task)
        finally:
            _running.active = False

    pool = _get_pool(max(len(tasks), num_threads()))
    with single_threaded_blas():
        futures = [pool.submit(call, t) for t in tasks]
        return [f.result() for f in futures]
