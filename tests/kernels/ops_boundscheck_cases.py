"""Bounds-check cases for the box kernels: NMS (greedy and grid paths, batched, the reference), box IoU
(parallel kernel and its serial twin) and the COCO matcher/accumulator (see boundscheck_runner.py).
Inputs are seeded and awkward on purpose: ties, duplicates, zero-area boxes, empty categories,
crowd ground truths, images with no detections."""
import numpy as np

from tinyvision.kernels.cpu import boxes as KB
from tinyvision.kernels.cpu import nms as KN
from tinyvision.metrics import COCOEvaluator
from tinyvision.metrics._coco_synth import synthetic_coco
from tinyvision.ops import batched_nms, nms


def _boxes(rng, n):
    xy = rng.uniform(0, 50, (n, 2))
    wh = rng.uniform(0, 20, (n, 2))
    wh[::7] = 0.0                                  # zero-area boxes
    b = np.concatenate([xy, xy + wh], axis=1)
    b[5::11] = b[4::11][: len(b[5::11])]           # exact duplicates
    return b


def boundscheck_cases():
    rng = np.random.default_rng(7)
    small, big = _boxes(rng, 30), _boxes(rng, 300)          # below / above the grid threshold
    s_small = np.round(rng.uniform(0, 1, 30), 1)            # many score ties
    s_big = np.round(rng.uniform(0, 1, 300), 2)
    idxs = rng.integers(0, 5, 300)
    a, b = _boxes(rng, 17), _boxes(rng, 23)

    def iou_serial():
        out = np.empty((a.shape[0], b.shape[0]))
        KB.box_iou_kernel_serial(a, b, out)
        return out

    def iou_parallel():
        out = np.empty((a.shape[0], b.shape[0]))
        KB.box_iou_kernel(a, b, out)
        return out

    gt, results = synthetic_coco(n_images=12, n_categories=3, seed=3)

    def coco():
        r = COCOEvaluator(gt).evaluate(results)
        return r.precision, r.recall, r.scores, r.stats

    return [
        ("nms-greedy", lambda: nms(small, s_small, 0.5)),
        ("nms-grid", lambda: nms(big, s_big, 0.3)),
        ("batched-nms", lambda: batched_nms(big, s_big, idxs, 0.5)),
        ("nms-sorted-reference", lambda: KN.nms_sorted_reference(*(np.ascontiguousarray(big[:, k]) for k in range(4)), 0.3)),
        ("box-iou-kernel", iou_parallel),
        ("box-iou-kernel-serial", iou_serial),
        ("coco-match-accumulate", coco),
    ]
