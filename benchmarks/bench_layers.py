"""Layer benchmark: tinyvision vs PyTorch CPU, forward + backward, interleaved in one process.

    python benchmarks/bench_layers.py [--quick] [--batch N] [--repeats R] [--json out.json] [--plot out.png]

For each case (ResNet-style 3x3 convolutions at 64ch/64px, 128ch/32px, 256ch/16px, a stride-2
3x3, a 1x1, the 7x7 stride-2 stem, a 2x2 stride-2 transposed convolution, a 2x2 max-pool,
BatchNorm2d in training mode, ReLU) it
prints the median time of one forward + backward pass (gradients for the input and the
weights) of tinyvision and of PyTorch, run alternately on the same float32 data; the speed ratio
torch_ms / tinyvision_ms (> 1: tinyvision is faster); achieved GFLOP/s (3x the forward
multiply-adds x 2: forward, input gradient, weight gradient); and tinyvision's peak memory
(tracemalloc: NumPy's allocations during one pass). BatchNorm rows are training mode (batch
statistics, running statistics updated); the ReLU row is one elementwise pass each way. The 3x3 rows are summarised by their
geometric-mean ratio. Without PyTorch installed only tinyvision's columns are filled.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402
from bench_stack import blas_report  # noqa: E402

import tinyvision as tv  # noqa: E402
import tinyvision.functional as F  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the benchmark runs without PyTorch: tinyvision columns only
    torch = None


def conv_case(name, n, c, hw, f, k, stride, padding):
    return dict(case=name, kind="conv2d", x=(n, c, hw, hw), w=(f, c, k, k), stride=stride, padding=padding)


def cases(n):
    return [
        conv_case("conv3x3 64ch 64px", n, 64, 64, 64, 3, 1, 1),
        conv_case("conv3x3 128ch 32px", n, 128, 32, 128, 3, 1, 1),
        conv_case("conv3x3 256ch 16px", n, 256, 16, 256, 3, 1, 1),
        conv_case("conv3x3 s2 64->128 64px", n, 64, 64, 128, 3, 2, 1),
        conv_case("conv1x1 256->64 32px", n, 256, 32, 64, 1, 1, 0),
        conv_case("conv7x7 s2 stem 3->64 224px", n, 3, 224, 64, 7, 2, 3),
        dict(case="convT2x2 s2 128->64 32px", kind="conv_transpose2d", x=(n, 128, 32, 32), w=(128, 64, 2, 2),
             stride=2, padding=0),
        dict(case="max_pool2d 2x2 s2 64ch 64px", kind="max_pool2d", x=(n, 64, 64, 64)),
        dict(case="batch_norm train 64ch 64px", kind="batch_norm", x=(n, 64, 64, 64)),
        dict(case="batch_norm train 256ch 16px", kind="batch_norm", x=(n, 256, 16, 16)),
        dict(case="relu 64ch 64px", kind="relu", x=(n, 64, 64, 64)),
    ]


def flops(case, y_shape):
    """Multiply-adds x 2 of forward, input gradient and weight gradient (3 passes)."""
    if case["kind"] == "conv2d":
        f, cg, kh, kw = case["w"]
        return 3 * 2 * int(np.prod(y_shape)) * cg * kh * kw
    if case["kind"] == "conv_transpose2d":
        c, fg, kh, kw = case["w"]
        return 3 * 2 * int(np.prod(case["x"])) * fg * kh * kw
    return None


def make_runners(case, rng):
    x = rng.standard_normal(case["x"]).astype(np.float32)
    kind = case["kind"]
    if kind == "batch_norm":  # affine parameters (C,), training mode: batch statistics, running stats updated
        C = case["x"][1]
        w = (1.0 + 0.1 * rng.standard_normal(C)).astype(np.float32)
        b = (0.1 * rng.standard_normal(C)).astype(np.float32)
    else:
        w = rng.standard_normal(case["w"]).astype(np.float32) * 0.05 if "w" in case else None
        b = rng.standard_normal(case["w"][0 if kind == "conv2d" else 1]).astype(np.float32) if w is not None else None
    running = {lib: (np.zeros(case["x"][1], np.float32), np.ones(case["x"][1], np.float32))
               for lib in ("tv", "torch")} if kind == "batch_norm" else None
    if kind == "max_pool2d" and not hasattr(F, "max_pool2d"):
        return None, None, None, "F.max_pool2d is not available yet"

    def tv_op(X, W, B):
        if kind == "conv2d":
            return F.conv2d(X, W, B, stride=case["stride"], padding=case["padding"])
        if kind == "conv_transpose2d":
            return F.conv_transpose2d(X, W, B, stride=case["stride"], padding=case["padding"])
        if kind == "batch_norm":
            mean, var = running["tv"]
            return F.batch_norm(X, tv.tensor(mean), tv.tensor(var), W, B, training=True)
        if kind == "relu":
            return F.relu(X)
        return F.max_pool2d(X, 2)

    with tv.no_grad():
        y_shape = tv_op(tv.tensor(x), None if w is None else tv.tensor(w), None if b is None else tv.tensor(b)).shape
    gy = rng.standard_normal(y_shape).astype(np.float32)

    def run_tv():
        X = tv.tensor(x, requires_grad=True)
        W = None if w is None else tv.tensor(w, requires_grad=True)
        B = None if b is None else tv.tensor(b, requires_grad=True)
        tv_op(X, W, B).backward(gy)

    run_torch = None
    if torch is not None:
        tx_data, tgy = torch.from_numpy(x), torch.from_numpy(gy)
        tw_data = None if w is None else torch.from_numpy(w)
        tb_data = None if b is None else torch.from_numpy(b)
        if running is not None:
            t_mean, t_var = (torch.from_numpy(a) for a in running["torch"])

        def run_torch():
            tx = tx_data.clone().requires_grad_(True)
            tw = None if tw_data is None else tw_data.clone().requires_grad_(True)
            tb = None if tb_data is None else tb_data.clone().requires_grad_(True)
            if kind == "conv2d":
                y = TF.conv2d(tx, tw, tb, stride=case["stride"], padding=case["padding"])
            elif kind == "conv_transpose2d":
                y = TF.conv_transpose2d(tx, tw, tb, stride=case["stride"], padding=case["padding"])
            elif kind == "batch_norm":
                y = TF.batch_norm(tx, t_mean, t_var, tw, tb, training=True)
            elif kind == "relu":
                y = TF.relu(tx)
            else:
                y = TF.max_pool2d(tx, 2)
            y.backward(tgy)

    return run_tv, run_torch, y_shape, None


def fmt(v, spec):
    """format(v, spec), or a dash of the same width for a missing value."""
    if v is None:
        width = int(spec.split(".")[0] or 0)
        return "-".rjust(width)
    return format(v, spec)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 2, 3 repeats: a smoke run")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 8; 2 with --quick)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per side (default 9; 3 with --quick)")
    ap.add_argument("--pause", type=float, default=0.1,
                    help="untimed sleep before each timed call, so the other library's threads go idle")
    ap.add_argument("--json", default=None, help="write the table as JSON here")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for each library (default: as configured, normally every core)")
    ap.add_argument("--plot", default=None, help="save a bar chart (PNG) here")
    args = ap.parse_args(argv)
    n = args.batch or (2 if args.quick else 8)
    repeats = args.repeats or (3 if args.quick else 9)

    if args.threads:
        H.set_threads(args.threads)
    threads = H.thread_report()
    print(f"batch {n}, float32, median of {repeats} interleaved repeats (pause {args.pause} s before each); "
          f"threads: {threads}")
    print(f"BLAS: {blas_report()}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')} (unset both for the newer kernel)")
    if torch is None:
        print("PyTorch not installed: tinyvision columns only")
    header = (f"{'case':30s} {'tv ms':>9s} {'torch ms':>9s} {'speed':>6s} {'tv GF/s':>8s} {'th GF/s':>8s} "
              f"{'tv peak MB':>10s}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    rows = []
    for case in cases(n):
        run_tv, run_torch, y_shape, skip = make_runners(case, rng)
        if skip:
            print(f"{case['case']:30s} skipped: {skip}")
            rows.append(dict(case=case["case"], skipped=skip, tinyvision_ms=None, torch_ms=None))
            continue
        fns = {"tv": run_tv} if run_torch is None else {"tv": run_tv, "torch": run_torch}
        med = H.interleaved(fns, repeats, pause=args.pause)
        peak = H.peak_traced_bytes(run_tv)
        fl = flops(case, y_shape)
        t_tv, t_th = med["tv"], med.get("torch")
        row = dict(
            case=case["case"], x_shape=list(case["x"]), w_shape=list(case["w"]) if "w" in case else None,
            y_shape=list(y_shape), tinyvision_ms=1e3 * t_tv, torch_ms=None if t_th is None else 1e3 * t_th,
            speed_ratio=None if t_th is None else t_th / t_tv,
            tinyvision_gflops=None if fl is None else fl / t_tv / 1e9,
            torch_gflops=None if (fl is None or t_th is None) else fl / t_th / 1e9,
            tinyvision_peak_mb=peak / 2**20,
        )
        rows.append(row)
        print(f"{row['case']:30s} {fmt(row['tinyvision_ms'], '9.2f')} {fmt(row['torch_ms'], '9.2f')} "
              f"{fmt(row['speed_ratio'], '6.2f')} {fmt(row['tinyvision_gflops'], '8.1f')} "
              f"{fmt(row['torch_gflops'], '8.1f')} {row['tinyvision_peak_mb']:10.1f}", flush=True)

    # The issue's targets (issue 13): geometric mean of the stride-1 3x3 rows >= 1.0, stride-2 3x3
    # >= 0.9, 7x7 stem >= 1.0, transposed 2x2 >= 1.0, BatchNorm training >= 1.5.
    ratios = [r["speed_ratio"] for r in rows
              if r["case"].startswith("conv3x3") and " s2 " not in r["case"] and r.get("speed_ratio")]
    summary = {}
    if ratios:
        summary["conv3x3_geomean_speed_ratio"] = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"\n3x3 conv forward+backward, geometric-mean speed vs PyTorch: "
              f"{summary['conv3x3_geomean_speed_ratio']:.2f}x (target >= 1.0)")
    targets = (("conv3x3 s2", 0.9), ("conv7x7", 1.0), ("convT", 1.0), ("max_pool", 1.0), ("batch_norm", 1.5))
    for r in rows:
        for prefix, target in targets:
            if r["case"].startswith(prefix) and r.get("speed_ratio"):
                print(f"{r['case']}: {r['speed_ratio']:.2f}x PyTorch's speed (target >= {target})")
    payload = dict(batch=n, repeats=repeats, dtype="float32", threads=threads, rows=rows, summary=summary)
    if args.json:
        H.save_json(args.json, payload)
        print(f"wrote {args.json}")
    if args.plot:
        H.save_plot(args.plot, rows, f"tinyvision vs PyTorch CPU, batch {n}, forward+backward")
        print(f"wrote {args.plot}")
    return payload


if __name__ == "__main__":
    main()
