"""Whole-network benchmark: a ResNet-18-like training step, tinyvision vs PyTorch CPU, interleaved.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_stack.py \
        [--batch 8] [--size 128] [--repeats 9] [--threads 2] [--no-profile] [--json out.json]

The network (plain, no residual additions: the layers every model of this project is made of)::

    conv 7x7 s2 3->64, BN, ReLU, max-pool 3x3 s2 p1          (N, 64, S/4, S/4)
    4 stages of [conv 3x3 -> BN -> ReLU] x 2 at 64, 128, 256, 512 channels,
      the first conv of stages 2-4 with stride 2               (N, 512, S/32, S/32)
    adaptive average pool to 1x1, linear 512 -> 10

One step is the forward pass and the backward pass from a fixed random upstream gradient of
the logits (gradients of the input and every parameter), BatchNorm in training mode. Both
libraries get the same weights and data (float32) and the same thread count (PyTorch through
``torch.set_num_threads``, tinyvision through Numba's thread count); the step runs
alternately (tinyvision, torch, ...) after warm-up, and each side reports its median.

Also printed: the BLAS library and kernel NumPy uses (threadpoolctl; the OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE variables some machines set force an older, slower kernel: unset them for the
command, as above), tinyvision's peak traced memory (tracemalloc) and PyTorch's peak RSS
growth, and a per-op profile of one tinyvision step: milliseconds in the forward and the
backward of each Function type (conv, batch norm, ReLU, ...), summed over the layers.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402

import tinyvision as tv  # noqa: E402
from tinyvision import nn  # noqa: E402
from tinyvision.autograd import Function  # noqa: E402

try:
    import torch
except ImportError:  # tinyvision columns only
    torch = None

WIDTHS = (64, 128, 256, 512)


def build(lib, classes=10):
    """The ResNet-18-like plain stack in `lib` (tinyvision.nn or torch.nn), as one Sequential."""
    layers = [lib.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), lib.BatchNorm2d(64), lib.ReLU(),
              lib.MaxPool2d(3, stride=2, padding=1)]
    c_in = 64
    for stage, c in enumerate(WIDTHS):
        for k in range(2):
            stride = 2 if (stage > 0 and k == 0) else 1
            layers += [lib.Conv2d(c_in, c, 3, stride=stride, padding=1, bias=False), lib.BatchNorm2d(c), lib.ReLU()]
            c_in = c
    layers += [lib.AdaptiveAvgPool2d(1), lib.Flatten(), lib.Linear(c_in, classes)]
    return lib.Sequential(*layers)


def blas_report():
    """NumPy's BLAS as threadpoolctl sees it: library, version, kernel (architecture), threads."""
    try:
        import threadpoolctl
    except ImportError:
        return "threadpoolctl not installed"
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in info.get("filepath", "") + info.get("prefix", ""):
            return (f"{info.get('internal_api')} {info.get('version')} kernel={info.get('architecture')} "
                    f"threads={info.get('num_threads')}")
    blas = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(f"{i.get('internal_api')} kernel={i.get('architecture')} ({i.get('filepath')})" for i in blas)


def _all_functions():
    seen, stack = [], [Function]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                stack.append(sub)
    return seen


def profile(step, repeats=3):
    """{(Function name, 'forward' | 'backward'): median ms per step} over `repeats` steps.

    Every Function subclass's forward and backward is wrapped in a timer for the duration.
    (Nested Functions, if any, are counted in both.) The rest of the step (autograd, module
    overhead) is reported as 'other'.
    """
    classes = [c for c in _all_functions() if "forward" in c.__dict__ or "backward" in c.__dict__]
    totals = defaultdict(list)
    acc = defaultdict(float)
    saved = []

    def timed(cls, name, fn):
        def wrapper(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(self, *args, **kwargs)
            finally:
                acc[(type(self).__name__, name)] += time.perf_counter() - t0
        return wrapper

    for cls in classes:
        for name in ("forward", "backward"):
            if name in cls.__dict__:
                saved.append((cls, name, cls.__dict__[name]))
                setattr(cls, name, timed(cls, name, cls.__dict__[name]))
    try:
        for _ in range(repeats):
            acc.clear()
            t0 = time.perf_counter()
            step()
            total = time.perf_counter() - t0
            for key, v in acc.items():
                totals[key].append(v)
            totals[("step", "total")].append(total)
            totals[("other", "")].append(total - sum(acc.values()))
    finally:
        for cls, name, fn in saved:
            setattr(cls, name, fn)
    return {k: 1e3 * statistics.median(v) for k, v in totals.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128, help="image height = width")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2, help="threads for each library")
    ap.add_argument("--pause", type=float, default=0.1)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--torch-only", action="store_true", help="time PyTorch alone (a sanity check)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    H.set_threads(args.threads)
    print(f"ResNet-18-like step, batch {args.batch}, 3x{args.size}x{args.size} float32, forward+backward, "
          f"{args.threads} threads each, median of {args.repeats} interleaved repeats")
    print(f"BLAS: {blas_report()}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}")
    print(f"threads: {H.thread_report()}")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    gy = rng.standard_normal((args.batch, 10)).astype(np.float32)
    fns = {}
    if not args.torch_only:
        net = build(nn)
        net.train()

        def run_tv():
            net.zero_grad()
            X = tv.tensor(x, requires_grad=True)
            net(X).backward(gy)

        fns["tv"] = run_tv
    if torch is not None:
        tnet = build(torch.nn)
        if not args.torch_only:
            tnet.load_state_dict({k: torch.from_numpy(np.array(v.data)) for k, v in net.state_dict().items()})
        tnet.train()
        tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)

        def run_torch():
            tnet.zero_grad()
            X = tx.clone().requires_grad_(True)
            tnet(X).backward(tgy)

        fns["torch"] = run_torch

    med = H.interleaved(fns, args.repeats, warmup=2, pause=args.pause)
    row = {k: 1e3 * v for k, v in med.items()}
    if "tv" in row:
        row["tv_peak_mb"] = H.peak_traced_bytes(run_tv) / 2**20
    if "torch" in row:
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run_torch()
        row["torch_peak_rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    line = []
    if "tv" in row:
        line.append(f"tinyvision {row['tv']:.1f} ms (peak traced {row['tv_peak_mb']:.0f} MB)")
    if "torch" in row:
        line.append(f"PyTorch {row['torch']:.1f} ms")
    if "tv" in row and "torch" in row:
        row["speed_ratio"] = row["torch"] / row["tv"]
        line.append(f"speed {row['speed_ratio']:.2f}x (torch_ms / tinyvision_ms; target >= 1.0)")
    print("step: " + ", ".join(line), flush=True)

    if "tv" in fns and not args.no_profile:
        prof = profile(run_tv)
        print("\nper-op profile of one tinyvision step (median ms of 3; all layers of a type summed):")
        print(f"{'op':28s} {'forward':>9s} {'backward':>9s} {'total':>9s}")
        ops = sorted({k[0] for k in prof if k[0] not in ("step", "other")},
                     key=lambda op: -(prof.get((op, "forward"), 0) + prof.get((op, "backward"), 0)))
        for op in ops:
            f, b = prof.get((op, "forward"), 0.0), prof.get((op, "backward"), 0.0)
            print(f"{op:28s} {f:9.1f} {b:9.1f} {f + b:9.1f}")
        print(f"{'other (autograd, modules)':28s} {'':9s} {'':9s} {prof[('other', '')]:9.1f}")
        print(f"{'step (profiled)':28s} {'':9s} {'':9s} {prof[('step', 'total')]:9.1f}")
        row["profile_ms"] = {f"{k[0]}.{k[1]}": v for k, v in prof.items()}
    if args.json:
        H.save_json(args.json, dict(args=vars(args), blas=blas_report(), result=row))
        print(f"wrote {args.json}")
    return row


if __name__ == "__main__":
    main()
