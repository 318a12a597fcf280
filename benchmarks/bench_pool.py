"""Pooling / resampling / normalisation benchmark: tinyvision vs PyTorch CPU, forward+backward.

    python benchmarks/bench_pool.py [--repeats 15] [--quick]

Both run in this process, interleaved (tinyvision, torch, tinyvision, ...), on the same float32
inputs; the table shows median milliseconds per forward+backward and the ratio
torch_ms / tinyvision_ms (> 1: tinyvision is faster). Without PyTorch only tinyvision's column
is printed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import tinyvision as tv
import tinyvision.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_stack import blas_report  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the benchmark also runs without PyTorch
    torch = None


def cases(quick):
    n = 4 if quick else 16
    return [
        ("max_pool2d 2x2 s2", (n, 64, 64, 64), lambda f, x: f.max_pool2d(x, 2)),
        ("max_pool2d 3x3 s2 p1", (n, 64, 56, 56), lambda f, x: f.max_pool2d(x, 3, 2, 1)),
        ("avg_pool2d 2x2 s2", (n, 64, 64, 64), lambda f, x: f.avg_pool2d(x, 2)),
        ("avg_pool2d 3x3 s1 p1", (n, 64, 32, 32), lambda f, x: f.avg_pool2d(x, 3, 1, 1)),
        ("adaptive_avg_pool2d 1", (n, 512, 7, 7), lambda f, x: f.adaptive_avg_pool2d(x, 1)),
        ("adaptive_max_pool2d 7", (n, 64, 30, 30), lambda f, x: f.adaptive_max_pool2d(x, 7)),
        ("interpolate nearest x2", (n, 64, 32, 32), lambda f, x: f.interpolate(x, scale_factor=2)),
        ("interpolate bilinear x2", (n, 64, 32, 32),
         lambda f, x: f.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)),
        ("batch_norm train", (n, 64, 32, 32), None),
    ]


def run_tinyvision(op, x, g, w=None, b=None):
    xt = tv.tensor(x, requires_grad=True)
    if op is None:
        rm, rv = np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
        wt, bt = tv.tensor(w, requires_grad=True), tv.tensor(b, requires_grad=True)
        y = F.batch_norm(xt, rm, rv, wt, bt, training=True)
    else:
        y = op(F, xt)
    y.backward(g)


def run_torch(op, x, g, w=None, b=None):
    xt = torch.from_numpy(x).requires_grad_()
    if op is None:
        rm, rv = torch.zeros(x.shape[1]), torch.ones(x.shape[1])
        wt, bt = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()
        y = TF.batch_norm(xt, rm, rv, wt, bt, training=True)
    else:
        y = op(TF, xt)
    y.backward(torch.from_numpy(g))


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="small batch, for a smoke run")
    args = ap.parse_args(argv)
    if torch is not None:
        torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    print(f"BLAS: {blas_report()}")
    print(f"{'case':26s} {'shape':20s} {'tinyvision ms':>14s} {'torch ms':>10s} {'ratio':>7s}")
    for name, shape, op in cases(args.quick):
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal(shape[1]).astype(np.float32)
        b = rng.standard_normal(shape[1]).astype(np.float32)
        y_shape = (op(F, tv.tensor(x)).shape if op is not None else shape)
        g = rng.standard_normal(y_shape).astype(np.float32)
        ours, theirs = [], []
        for r in range(args.repeats + 2):  # two warm-up rounds (Numba compile / load, caches)
            a = timed(lambda: run_tinyvision(op, x, g, w, b))
            c = timed(lambda: run_torch(op, x, g, w, b)) if torch is not None else float("nan")
            if r >= 2:
                ours.append(a)
                theirs.append(c)
        mo, mt = statistics.median(ours), statistics.median(theirs)
        ratio = mt / mo if torch is not None else float("nan")
        print(f"{name:26s} {str(shape):20s} {mo:14.2f} {mt:10.2f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
