"""Shared pieces of the benchmarks: interleaved timing, peak memory, thread report, JSON, plot.

Timing: tinyvision and the reference run alternately in one process (a, b, a, b, ...), after
warm-up calls (Numba compiles, BLAS and allocator warm up), and each side reports the median
of its repeats, so a burst of load on a shared machine hits both sides alike.

Before every timed call the harness pauses briefly (0.1 s by default, not timed): PyTorch's
OpenMP worker threads keep spinning on both cores for a while after each parallel region, and
the next library's call would pay for it (measured: tinyvision's 3x3 conv forward ran 1.3x
slower right after a PyTorch call than after a pause). Both sides get the same pause.
"""
from __future__ import annotations

import ctypes
import glob
import json
import os
import statistics
import time
import tracemalloc

import numpy as np

__all__ = ["interleaved", "peak_traced_bytes", "set_threads", "thread_report", "save_json", "save_plot"]


def interleaved(fns, repeats, warmup=2, pause=0.1):
    """{name: median seconds} for the callables in ``fns`` ({name: fn}), run alternately.

    pause: seconds to sleep (untimed) before each timed call, so that the previous call's
    worker threads have gone idle.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_traced_bytes(fn):
    """Peak bytes allocated through Python's allocators (NumPy's array data included) by fn()."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return max(0, peak - base)


def _openblas_threads():
    """NumPy's OpenBLAS thread count (threadpoolctl if installed, else the library itself)."""
    try:
        import threadpoolctl

        for info in threadpoolctl.threadpool_info():
            if info.get("internal_api") == "openblas":
                return info.get("num_threads")
    except ImportError:
        pass
    libdir = os.path.dirname(np.__file__) + ".libs"
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            if hasattr(lib, name):
                return int(getattr(lib, name)())
    return None


def set_threads(n):
    """Give every library n threads: tinyvision (Numba's thread count, which sizes its pool),
    PyTorch, and NumPy's BLAS (tinyvision's kernels lower it to 1 inside their own workers).

    ``--threads 1`` compares the kernels' single-core efficiency; on a shared VM this is far
    steadier than a 2-thread run, whose second core comes and goes with the host's load.
    """
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    try:
        import threadpoolctl

        threadpoolctl.threadpool_limits(limits=n, user_api="blas")
    except ImportError:
        pass


def thread_report():
    """The thread counts every library uses here (they should all use every core)."""
    import numba

    report = {
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.config.THREADING_LAYER,
        "openblas_threads": _openblas_threads(),
    }
    try:
        import torch

        report["torch_threads"] = torch.get_num_threads()
        report["torch_version"] = torch.__version__
    except ImportError:
        report["torch_threads"] = None
    return report


def save_json(path, payload):
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)


def save_plot(path, rows, title):
    """Bar chart: milliseconds per case, tinyvision next to PyTorch (when measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["case"] for r in rows]
    tv_ms = [r["tinyvision_ms"] if r["tinyvision_ms"] is not None else 0 for r in rows]
    th_ms = [r["torch_ms"] if r.get("torch_ms") is not None else 0 for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.5))
    ax.barh(y - 0.2, tv_ms, 0.4, label="tinyvision")
    if any(th_ms):
        ax.barh(y + 0.2, th_ms, 0.4, label="PyTorch CPU")
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlabel("forward + backward, ms (median)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
