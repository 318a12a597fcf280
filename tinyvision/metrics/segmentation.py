"""Semantic segmentation metrics from label maps: confusion matrix, IoU (Jaccard), Dice,
pixel accuracy.

Everything is read off one confusion matrix ``M (K, K)`` over the non-ignored pixels of all the
images given (rows: target class, columns: predicted class)::

    TP_c = M[c, c],   FP_c = sum_i M[i, c] - TP_c,   FN_c = sum_j M[c, j] - TP_c

    IoU_c  = J_c = TP_c / (TP_c + FP_c + FN_c)          = |P ∩ T| / |P ∪ T|
    Dice_c = D_c = 2 TP_c / (2 TP_c + FP_c + FN_c)      = 2 |P ∩ T| / (|P| + |T|)
    pixel accuracy = sum_c TP_c / sum M                 (the fraction of pixels right)

so ``D = 2J / (1 + J)`` class by class (D and J rank classes the same way; D >= J).

Conventions (stated because the math has a choice):

* **Dataset-level pooling.** The counts are summed over all the pixels of all the images (and
  over every :meth:`SegmentationMetrics.update`) before dividing, as mmsegmentation,
  torchmetrics' ``MeanIoU`` and smp's Dice loss (which sums over the batch) do; averaging
  per-image scores gives a different number.
* **Empty class.** A class absent from both the prediction and the target has 0/0 for IoU and
  Dice. By default it is NaN and left out of the mean over classes (it says nothing about the
  model); ``empty_class_score=1.0`` counts it as perfect (a correct "nothing here"), ``0.0`` as
  a miss. With every class empty the mean is NaN.
* **ignore_index.** Pixels whose *target* equals ``ignore_index`` are left out everywhere (not
  counted as TP, FP or FN of any class); predictions are never ignored.
* **Scores.** ``preds`` may be scores ``(N, C, ...)`` (logits or probabilities) instead of labels
  ``(N, ...)``: the class is their argmax over dim 1, ties going to the lowest class index. A
  single channel (binary logits) is ambiguous: threshold it into labels first.

Inputs may be NumPy or CuPy arrays, tinyvision Tensors or lists; the counting runs where the
arrays live (``xp.bincount``) and only the small ``(K, K)`` matrix comes back to the host.

>>> t = [[0, 0, 1, 1], [2, 2, 2, 255]]
>>> p = [[0, 1, 1, 1], [2, 2, 0, 0]]
>>> segmentation_confusion_matrix(p, t, num_classes=3, ignore_index=255)
array([[1, 1, 0],
       [0, 2, 0],
       [1, 0, 2]])
>>> jaccard_index(p, t, num_classes=3, ignore_index=255, average=None)
array([0.33333333, 0.66666667, 0.66666667])
>>> dice_score(p, t, num_classes=3, ignore_index=255, average=None)
array([0.5, 0.8, 0.8])
>>> pixel_accuracy(p, t, ignore_index=255)
0.7142857142857143
"""
from __future__ import annotations

import numbers

import numpy as np

from ..backend import get_array_module, to_device

__all__ = [
    "segmentation_confusion_matrix",
    "jaccard_from_confusion_matrix",
    "dice_from_confusion_matrix",
    "jaccard_index",
    "dice_score",
    "pixel_accuracy",
    "mean_pixel_accuracy",
    "SegmentationMetrics",
]

_AVERAGES = (None, "macro", "micro", "weighted")


def _array(x, name):
    """Tensor / list / array -> an array on its own device (NumPy or CuPy)."""
    if type(x).__name__ == "Tensor" and hasattr(x, "data"):
        x = x.data
    xp = get_array_module(x)
    try:
        return xp.asarray(x)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name} cannot be read as an array: {err}") from None


def _labels_from(preds, targets, num_classes, ignore_index):
    """Validated integer label maps (same shape), on their device, and the kept-pixel mask."""
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    p = _array(preds, "preds")
    t = _array(targets, "targets")
    xp = get_array_module(p, t)
    if t.dtype.kind not in "iub":
        if t.dtype.kind == "f" and bool(xp.all(t == xp.round(t))):
            t = t.astype(np.int64)
        else:
            raise ValueError(f"targets must hold integer class labels, got dtype {t.dtype}"
                             + (" with non-integer values" if t.dtype.kind == "f" else ""))
    if p.ndim == t.ndim + 1 and p.ndim >= 2 and p.shape[0] == t.shape[0] \
            and p.shape[2:] == t.shape[1:]:
        # scores (N, C, ...) -> labels (N, ...)
        if p.shape[1] != num_classes:
            raise ValueError(f"preds look like scores of shape {p.shape} (N, C, ...) but C = "
                             f"{p.shape[1]} != num_classes = {num_classes}"
                             + ("; threshold single-channel binary scores into labels first"
                                if p.shape[1] == 1 else ""))
        if p.dtype.kind == "f" and bool(xp.isnan(p).any()):
            raise ValueError(f"preds (scores of shape {p.shape}) contain NaN")
        p = xp.argmax(p, axis=1)
    elif p.shape != t.shape:
        raise ValueError(f"preds must be labels of the targets' shape {t.shape} or scores of "
                         f"shape (N, C, ...) = ({t.shape[0] if t.ndim else '?'}, {num_classes}, "
                         f"{', '.join(map(str, t.shape[1:]))}), got preds of shape {p.shape}")
    elif p.dtype.kind not in "iub":
        if p.dtype.kind == "f" and bool(xp.all(p == xp.round(p))):
            p = p.astype(np.int64)
        else:
            raise ValueError(f"preds has the targets' shape {t.shape} but non-integer values "
                             f"(dtype {p.dtype}): give class labels (argmax or threshold first), "
                             "or scores of shape (N, C, ...)")
    p = p.astype(np.int64, copy=False)
    t = t.astype(np.int64, copy=False)
    keep = xp.ones(t.shape, dtype=bool) if ignore_index is None else (t != int(ignore_index))
    for a, name, mask in ((t, "targets", keep), (p, "preds", None)):
        bad = (a < 0) | (a >= num_classes)
        if mask is not None:
            bad &= mask
        if bool(bad.any()):
            examples = to_device(a[bad][:3], "cpu").tolist()
            extra = "" if name == "preds" or ignore_index is not None else \
                " (set ignore_index for a void label such as 255)"
            raise ValueError(f"{name} has labels outside [0, {num_classes}) "
                             f"(num_classes={num_classes}), e.g. {examples}; shape {a.shape}"
                             + extra)
    return p, t, keep


def segmentation_confusion_matrix(preds, targets, num_classes, ignore_index=None):
    """Confusion matrix ``M (K, K)`` of pixels: ``M[i, j]`` = pixels of target class i predicted
    as class j, over the pixels whose target is not ``ignore_index``.

    Args:
        preds (array[N, ...] int, or array[N, C, ...] scores): predicted labels, or scores
            whose argmax over dim 1 is the label.
        targets (array[N, ...] int): target labels in [0, K) or ``ignore_index``.
        num_classes (int): K.
        ignore_index (int, optional): target value to leave out (e.g. 255).

    Returns:
        array[K, K] int64 (on the host), summing to the number of non-ignored pixels.
    """
    p, t, keep = _labels_from(preds, targets, num_classes, ignore_index)
    xp = get_array_module(p)
    flat = t[keep] * num_classes + p[keep]          # row-major (target, pred) index
    cm = xp.bincount(flat.ravel(), minlength=num_classes * num_classes)
    return to_device(cm.reshape(num_classes, num_classes).astype(np.int64), "cpu")


def _check_cm(cm):
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion_matrix must be square (K, K), got shape {cm.shape}")
    return cm.astype(np.float64)


def _empty_value(empty_class_score):
    v = float(empty_class_score)
    if not (np.isnan(v) or 0.0 <= v <= 1.0):
        raise ValueError(f"empty_class_score must be NaN or in [0, 1], got {empty_class_score!r}")
    return v


def _reduce(num, den, support, average, empty_class_score):
    """num/den per class (empty_class_score where den == 0), then the average."""
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
    empty = _empty_value(empty_class_score)
    if average == "micro":
        n, d = num.sum(), den.sum()
        return float(n / d) if d > 0 else empty
    per_class = np.full(num.shape, empty)
    np.divide(num, den, out=per_class, where=den > 0)
    if average is None:
        return per_class
    ok = ~np.isnan(per_class)
    if not ok.any():
        return float("nan")
    if average == "weighted" and support[ok].sum() > 0:
        return float(np.average(per_class[ok], weights=support[ok]))
    return float(per_class[ok].mean())


def jaccard_from_confusion_matrix(confusion_matrix, average="macro", empty_class_score=np.nan):
    """IoU ``TP / (TP + FP + FN)`` per class from a (K, K) confusion matrix (rows target).

    average: None (array[K]), "macro" (mean over the non-NaN classes: mIoU), "micro" (from the
    summed counts), "weighted" (weighted by each class's number of target pixels).
    """
    cm = _check_cm(confusion_matrix)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    return _reduce(tp, tp + fp + fn, cm.sum(axis=1), average, empty_class_score)


def dice_from_confusion_matrix(confusion_matrix, average="macro", empty_class_score=np.nan):
    """Dice ``2 TP / (2 TP + FP + FN)`` per class from a (K, K) confusion matrix (rows target).
    Averages as in :func:`jaccard_from_confusion_matrix`."""
    cm = _check_cm(confusion_matrix)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    return _reduce(2 * tp, 2 * tp + fp + fn, cm.sum(axis=1), average, empty_class_score)


def jaccard_index(preds, targets, num_classes, ignore_index=None, average="macro",
                  empty_class_score=np.nan):
    """IoU / Jaccard index ``|P ∩ T| / |P ∪ T|`` per class, or averaged (``"macro"``: mIoU).

    Args:
        preds, targets, num_classes, ignore_index: see :func:`segmentation_confusion_matrix`.
        average (None, "macro", "micro", "weighted"): module docstring.
        empty_class_score (float): the value for a class absent from preds and targets
            (NaN: left out of the mean).

    Returns:
        array[K] for ``average=None``, else a float.
    """
    cm = segmentation_confusion_matrix(preds, targets, num_classes, ignore_index)
    return jaccard_from_confusion_matrix(cm, average, empty_class_score)


def dice_score(preds, targets, num_classes, ignore_index=None, average="macro",
               empty_class_score=np.nan):
    """Dice coefficient (F1 of the pixels) ``2 |P ∩ T| / (|P| + |T|)`` per class, or averaged.
    Same arguments as :func:`jaccard_index`; per class ``D = 2J / (1 + J)``."""
    cm = segmentation_confusion_matrix(preds, targets, num_classes, ignore_index)
    return dice_from_confusion_matrix(cm, average, empty_class_score)


def pixel_accuracy(preds, targets, ignore_index=None, num_classes=None):
    """Fraction of the non-ignored pixels whose predicted label equals the target
    (NaN when every pixel is ignored). ``num_classes``, when given, checks the label range."""
    if num_classes is not None:
        p, t, keep = _labels_from(preds, targets, num_classes, ignore_index)
    else:
        p, t = _array(preds, "preds"), _array(targets, "targets")
        if p.shape != t.shape:
            raise ValueError(f"preds and targets must have the same shape (labels), got "
                             f"{p.shape} and {t.shape}; for scores (N, C, ...) pass num_classes")
        xp = get_array_module(p, t)
        keep = xp.ones(t.shape, dtype=bool) if ignore_index is None else (t != ignore_index)
    total = int(keep.sum())
    if total == 0:
        return float("nan")
    return int(((p == t) & keep).sum()) / total


def mean_pixel_accuracy(preds, targets, num_classes, ignore_index=None):
    """Mean over classes of the per-class pixel accuracy TP_c / (TP_c + FN_c) (the recall of
    each class); classes with no target pixel are left out (NaN)."""
    cm = segmentation_confusion_matrix(preds, targets, num_classes, ignore_index).astype(float)
    tp, support = np.diag(cm), cm.sum(axis=1)
    return _reduce(tp, support, support, "macro", np.nan)


class SegmentationMetrics:
    """Accumulate a pixel confusion matrix over batches, then read every metric from it.

    >>> m = SegmentationMetrics(num_classes=2)
    >>> m.update([[0, 1], [1, 1]], [[0, 1], [0, 1]])
    >>> m.update([[0, 0]], [[0, 0]])
    >>> m.compute()["mean_iou"]
    0.7083333333333333
    >>> m.confusion_matrix.tolist()
    [[3, 1], [0, 2]]
    """

    def __init__(self, num_classes, ignore_index=None, empty_class_score=np.nan):
        if not isinstance(num_classes, numbers.Integral) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.empty_class_score = _empty_value(empty_class_score)
        self.reset()

    def reset(self):
        self.confusion_matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, preds, targets):
        self.confusion_matrix += segmentation_confusion_matrix(
            preds, targets, self.num_classes, self.ignore_index)

    def compute(self) -> dict:
        """``{"iou": array[K], "mean_iou", "dice": array[K], "mean_dice", "pixel_accuracy",
        "mean_pixel_accuracy", "confusion_matrix"}``."""
        cm = self.confusion_matrix
        e = self.empty_class_score
        total = cm.sum()
        tp, support = np.diag(cm).astype(float), cm.sum(axis=1).astype(float)
        return {
            "iou": jaccard_from_confusion_matrix(cm, None, e),
            "mean_iou": jaccard_from_confusion_matrix(cm, "macro", e),
            "dice": dice_from_confusion_matrix(cm, None, e),
            "mean_dice": dice_from_confusion_matrix(cm, "macro", e),
            "pixel_accuracy": float(np.trace(cm) / total) if total else float("nan"),
            "mean_pixel_accuracy": _reduce(tp, support, support, "macro", np.nan),
            "confusion_matrix": cm.copy(),
        }
