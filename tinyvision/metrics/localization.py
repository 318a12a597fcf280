r"""Metrics of single-object localization: one predicted (label, box) per image against one true one.

Shapes: N images, K classes; labels (N,) in [0, K); boxes (N, 4) in (x1, y1, x2, y2), any unit
(pixels or normalised — IoU does not care, as long as both sets use the same).

    accuracy              = (1/N) Σ_n [ŷ_n = y_n]
    IoU_n                 = IoU(b̂_n, b_n)                    the predicted box with its own true box
    mean IoU              = (1/N) Σ_n IoU_n
    correct localization  = (1/N) Σ_n [ŷ_n = y_n and IoU_n >= t],  t = 0.5 by default

"Correct localization" is the usual single-object criterion (PASCAL's, also called CorLoc when the
class is given): both the class and the box must be right. A predicted box with x2 < x1 or
y2 < y1 (an inside-out box, which an untrained xyxy model can output) counts as having IoU 0 —
not torchvision's "negative area" IoU — so mean IoU is always in [0, 1].
"""
from __future__ import annotations

import numpy as np

from ..ops.boxes import box_iou
from .classification import accuracy_score, confusion_matrix

__all__ = ["paired_box_iou", "correct_localization", "localization_metrics"]

_CHUNK = 512   # box_iou of a chunk against the same chunk, then its diagonal: O(N · chunk) work


def _host(x):
    if hasattr(x, "data") and not isinstance(x, np.ndarray):   # a Tensor
        x = x.data
    if hasattr(x, "get"):                                       # a CuPy array
        x = x.get()
    return np.asarray(x)


def _boxes(x, name, n=None):
    b = _host(x)
    if b.dtype.kind not in "fiu" or b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must be real-valued boxes of shape (N, 4) in (x1, y1, x2, y2), "
                         f"got shape {tuple(b.shape)} and dtype {b.dtype}")
    if n is not None and b.shape[0] != n:
        raise ValueError(f"{name} has {b.shape[0]} boxes but {n} were expected (one per image)")
    if b.dtype.kind == "f" and not np.isfinite(b).all():
        r = int(np.argmax(~np.isfinite(b).all(axis=1)))
        raise ValueError(f"{name}[{r}] = {b[r].tolist()} is not finite")
    return b.astype(np.float64)


def _labels(x, name, n=None):
    y = _host(x)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer class indices of shape (N,), got shape {tuple(y.shape)} "
                         f"and dtype {y.dtype}")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels but {n} were expected (one per image)")
    return y.astype(np.int64)


def paired_box_iou(boxes1, boxes2):
    """IoU of each box with its partner: ``iou[n] = IoU(boxes1[n], boxes2[n])``, array (N,) float64.

    The diagonal of :func:`tinyvision.ops.box_iou`, computed chunk by chunk. A box with
    x2 < x1 or y2 < y1 in either set gets IoU 0 (see the module docstring).

    >>> paired_box_iou([[0, 0, 2, 2], [0, 0, 1, 1]], [[1, 1, 3, 3], [0, 0, 1, 1]]).tolist()
    [0.14285714285714285, 1.0]
    """
    a = _boxes(boxes1, "boxes1")
    b = _boxes(boxes2, "boxes2", n=a.shape[0])
    iou = np.empty(a.shape[0])
    for s in range(0, a.shape[0], _CHUNK):
        e = min(s + _CHUNK, a.shape[0])
        iou[s:e] = np.diagonal(box_iou(a[s:e], b[s:e]))
    inside_out = (a[:, 2] < a[:, 0]) | (a[:, 3] < a[:, 1]) | (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    iou[inside_out] = 0.0
    return iou


def correct_localization(pred_labels, pred_boxes, true_labels, true_boxes, iou_threshold: float = 0.5):
    """Fraction of images whose predicted class is right *and* whose box has IoU >= ``iou_threshold``.

    >>> correct_localization([0, 1], [[0, 0, 2, 2], [0, 0, 2, 2]], [0, 0], [[0, 0, 2, 2], [0, 0, 2, 2]])
    0.5
    """
    yp = _labels(pred_labels, "pred_labels")
    n = yp.shape[0]
    if n == 0:
        raise ValueError("correct_localization of no images is undefined: pred_labels has shape (0,)")
    yt = _labels(true_labels, "true_labels", n)
    iou = paired_box_iou(_boxes(pred_boxes, "pred_boxes", n), _boxes(true_boxes, "true_boxes", n))
    return float(np.mean((yp == yt) & (iou >= iou_threshold)))


def localization_metrics(pred_labels, pred_boxes, true_labels, true_boxes, num_classes: int,
                         iou_threshold: float = 0.5, class_names=None) -> dict:
    """All the numbers of a localization evaluation, as a dict:

    * ``accuracy``, ``mean_iou``, ``correct_localization`` (floats, see the module docstring);
    * ``per_class``: for each true class k (keyed by ``class_names[k]`` or ``str(k)``) a dict of
      ``n`` (images of that class), ``accuracy`` (= recall of k), ``mean_iou`` and
      ``correct_localization`` over those images (NaN where the class has no image);
    * ``confusion_matrix``: (K, K) counts as nested lists, rows true, columns predicted.

    >>> m = localization_metrics([0, 1, 1], [[0, 0, 1, 1]] * 3, [0, 1, 0], [[0, 0, 1, 1]] * 3, num_classes=2)
    >>> round(m["accuracy"], 4), m["mean_iou"], m["confusion_matrix"]
    (0.6667, 1.0, [[1, 1], [0, 1]])
    """
    yp = _labels(pred_labels, "pred_labels")
    n = yp.shape[0]
    if n == 0:
        raise ValueError("localization_metrics of no images is undefined: pred_labels has shape (0,)")
    yt = _labels(true_labels, "true_labels", n)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for num_classes={num_classes}")
    for name, y in (("pred_labels", yp), ("true_labels", yt)):
        bad = (y < 0) | (y >= num_classes)
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(f"{name}[{r}] = {int(y[r])} is outside [0, {num_classes}) (num_classes={num_classes}); "
                             f"{name} has shape {tuple(y.shape)}")
    iou = paired_box_iou(_boxes(pred_boxes, "pred_boxes", n), _boxes(true_boxes, "true_boxes", n))
    cm = confusion_matrix(yt, yp, num_classes=num_classes)
    right = yp == yt
    hit = right & (iou >= iou_threshold)
    per_class = {}
    for k in range(num_classes):
        of_k = yt == k
        count = int(of_k.sum())
        mean = (lambda v: float(v[of_k].mean())) if count else (lambda v: float("nan"))
        per_class[str(class_names[k]) if class_names is not None else str(k)] = {
            "n": count, "accuracy": mean(right), "mean_iou": mean(iou), "correct_localization": mean(hit)}
    return {
        "accuracy": accuracy_score(yt, yp),
        "mean_iou": float(iou.mean()),
        "correct_localization": float(hit.mean()),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }
