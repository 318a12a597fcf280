"""A confusion matrix for object detection (tinyvision's definition: no reference defines one).

Per image, detections with ``score >= score_threshold`` are matched to ground-truth boxes
**class-agnostically**, one to one, greedily: detections in decreasing score order (stable),
each takes the not-yet-matched gt of largest IoU if that IoU is ``>= iou_threshold`` (ties: the
first gt). Then, with K classes and index K standing for "background" (nothing there / nothing
found)::

    matched pair (gt of class i, detection of class j)  ->  M[i, j] += 1   (i != j: confusion)
    unmatched gt of class i                             ->  M[i, K] += 1   (a miss, FN)
    unmatched detection of class j                      ->  M[K, j] += 1   (a false alarm, FP)

So rows are the true class (or background), columns the predicted class (or background), as in
:func:`~tinyvision.metrics.confusion_matrix`; ``M[K, K]`` is always 0 (true negatives of
detection are not countable). Row i sums to the number of gts of class i, column j to the
number of kept detections of class j.

Matching class-agnostically is what makes class confusions visible (a cat detected as a dog
lands in ``M[cat, dog]``, not as one FP dog plus one missed cat); it also differs from
:func:`~tinyvision.metrics.voc_eval` and COCO, which match per class. IoU is the continuous
one (no +1), 0 when both boxes have zero area.

>>> preds = [{"boxes": [[0, 0, 10, 10], [50, 50, 60, 60]], "scores": [0.9, 0.8],
...           "labels": [1, 0]}]
>>> targets = [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [0, 0]}]
>>> detection_confusion_matrix(preds, targets, num_classes=2)
array([[0, 1, 1],
       [0, 0, 0],
       [1, 0, 0]])
"""
from __future__ import annotations

import numpy as np

from ..kernels.dispatch import kernel  # box IoU: boxes checked by recall._images: finite, x1 <= x2, y1 <= y2
from .recall import _images

__all__ = ["detection_confusion_matrix"]


def detection_confusion_matrix(preds, targets, num_classes, iou_threshold=0.5,
                               score_threshold=0.0):
    """Detection confusion matrix ``M (K+1, K+1)``, index K = background (module docstring).

    Args:
        preds (list[dict]): per image ``boxes (array[N, 4])`` (x1, y1, x2, y2), ``scores
            (array[N])``, ``labels (array[N])`` in [0, K).
        targets (list[dict]): per image ``boxes (array[G, 4])``, ``labels (array[G])``.
        num_classes (int): K.
        iou_threshold (float): minimum IoU of a match (inclusive).
        score_threshold (float): detections scored below it are dropped first.

    Returns:
        array[K+1, K+1] int64.
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    k = int(num_classes)
    cm = np.zeros((k + 1, k + 1), dtype=np.int64)
    for i, ((db, ds, dl), (gb, _, gl)) in enumerate(_images(preds, targets, True)):
        for lab, name in ((dl, f"preds[{i}]"), (gl, f"targets[{i}]")):
            bad = (lab < 0) | (lab >= k)
            if bad.any():
                raise ValueError(f"{name}['labels'] has values outside [0, {k}) "
                                 f"(num_classes={k}): {lab[bad][:3].tolist()}")
        if ds is None:
            if len(db):
                raise ValueError(f"preds[{i}] needs a 'scores' field to rank its detections")
            ds = np.zeros(0)
        keep = np.flatnonzero(ds >= score_threshold)
        order = keep[np.argsort(-ds[keep], kind="stable")]
        db, dl = db[order], dl[order]
        gt_match = np.full(len(gb), -1)               # detection index, -1 = unmatched
        det_match = np.full(len(db), -1)              # gt index, -1 = unmatched
        if len(db) and len(gb):
            db_c, gb_c = np.ascontiguousarray(db), np.ascontiguousarray(gb)
            iou = kernel("boxes", "box_iou", db_c, gb_c)(db_c, gb_c)  # (N, G)
            for d in range(len(db)):                  # greedy: sequential by nature
                cand = np.where(gt_match < 0, iou[d], -1.0)
                g = int(np.argmax(cand))
                if cand[g] >= iou_threshold:
                    gt_match[g], det_match[d] = d, g
        matched = np.flatnonzero(det_match >= 0)
        np.add.at(cm, (gl[det_match[matched]], dl[matched]), 1)
        np.add.at(cm, (gl[gt_match < 0], k), 1)
        np.add.at(cm, (k, dl[det_match < 0]), 1)
    return cm
