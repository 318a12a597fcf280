"""Box-op benchmark: NMS, the IoU matrix and anchor generation, against their baselines.

    python benchmarks/bench_ops.py [--repeats 9] [--quick]

1. ``nms`` on 20 000 random boxes vs the widely used vectorised-NumPy greedy NMS (the
   py-faster-rcnn loop: ``order = argsort(scores)[::-1]; while order.size: ...``, here without
   the +1 pixel and with a stable sort so that both follow torchvision's rule). Same kept
   indices asserted; target: >= 10x.
2. ``box_iou`` 10 000 x 10 000 float32 vs writing an output array of that size
   (``np.empty`` + ``fill``: allocation, page faults and one pass of stores); target: <= 2x.
3. Anchor generation for a 1024 x 1024 image, RetinaNet P3-P7 (196 416 anchors); target < 10 ms.

Every case runs tinyvision and its baseline alternately (interleaved repeats), after one
warm-up call that compiles the Numba kernels; medians are printed. Other processes on the
machine make single timings noisy; medians of interleaved runs are what to quote.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tinyvision.ops import box_iou, nms, retinanet_anchor_generator
from tinyvision.ops.nms import nms_numpy_greedy


def random_boxes(rng, n, image=1024.0, min_wh=16.0, max_wh=128.0, dtype=np.float32):
    xy = rng.uniform(0, image, (n, 2))
    wh = rng.uniform(min_wh, max_wh, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)




def interleaved(fns, repeats):
    """Median milliseconds of each function, calling them alternately ``repeats`` times."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def verdict(ok, quick):
    return "smoke run: the target is for the full size" if quick else ("met" if ok else "NOT met")


def bench_nms(rng, n, repeats, quick=False):
    boxes = random_boxes(rng, n)
    scores = rng.random(n).astype(np.float32)
    thr = 0.5
    ours = nms(boxes, scores, thr)                          # warm-up: compiles the kernel
    ref = nms_numpy_greedy(boxes, scores, thr)
    assert np.array_equal(ours, ref), "nms and the NumPy greedy loop disagree"
    t_ours, t_ref = interleaved([lambda: nms(boxes, scores, thr),
                                 lambda: nms_numpy_greedy(boxes, scores, thr)], max(3, repeats // 3))
    ratio = t_ref / t_ours
    print(f"nms {n} boxes (thr {thr}, {len(ours)} kept): tinyvision {t_ours:8.2f} ms | "
          f"NumPy greedy {t_ref:9.2f} ms | speed-up {ratio:6.1f}x (target >= 10x: "
          f"{verdict(ratio >= 10, quick)}; same {len(ours)} indices asserted)")


def bench_box_iou(rng, n, repeats, quick=False):
    b1, b2 = random_boxes(rng, n), random_boxes(rng, n)
    box_iou(b1, b2)                                         # warm-up: compile, start threads

    def write_only():
        out = np.empty((n, n), dtype=np.float32)
        out.fill(0.0)
        return out

    t_ours, t_write = interleaved([lambda: box_iou(b1, b2), write_only], repeats)
    ratio = t_ours / t_write
    print(f"box_iou {n}x{n} float32: tinyvision {t_ours:8.2f} ms | write the output "
          f"{t_write:8.2f} ms | ratio {ratio:4.2f}x (target <= 2x: {verdict(ratio <= 2, quick)})")


def bench_anchors(repeats):
    gen = retinanet_anchor_generator()
    grid = [(1024 // s, 1024 // s) for s in (8, 16, 32, 64, 128)]
    anchors = gen.anchors_for_image((1024, 1024), grid)
    (t,) = interleaved([lambda: gen.anchors_for_image((1024, 1024), grid)], repeats)
    print(f"anchors 1024x1024, P3-P7, {anchors.shape[0]} anchors: {t:6.2f} ms "
          f"(target < 10 ms: {'met' if t < 10 else 'NOT met'})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    bench_nms(rng, 2000 if args.quick else 20000, args.repeats, args.quick)
    bench_box_iou(rng, 1000 if args.quick else 10000, args.repeats, args.quick)
    bench_anchors(args.repeats)


if __name__ == "__main__":
    main()
