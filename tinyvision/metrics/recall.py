r"""Average recall the textbook way: AR = 2 * integral of recall(IoU) over [0.5, 1].

Hosang, Benenson, Dollar, Schiele, "What makes for effective detection proposals?",
TPAMI 2016 (https://arxiv.org/abs/1502.05082), Sec. 5: for each ground-truth box g take its
*best overlap* with any detection (or proposal) of its image,

    b_g = max_d IoU(g, d)          (0 when the image has no detection),

so that the recall at an IoU threshold o is the fraction of gts covered that well,

    recall(o) = (1/G) * #{g : b_g >= o},

and the average recall is the area under recall(o) for o in [0.5, 1], normalised to [0, 1]:

    AR = 2 * \int_{0.5}^{1} recall(o) do.

The integral is exact, not a Riemann sum. recall(o) is a step function of o, a sum of one
indicator per gt, and each indicator integrates in closed form:

    \int_{0.5}^{1} [b_g >= o] do = length of {o in [0.5, 1] : o <= b_g} = max(0, b_g - 0.5)

(b_g <= 1 always). Summing over the gts:

    AR = (2 / G) * sum_g max(0, b_g - 0.5),

which is what :func:`average_recall` computes (``min_iou`` generalises 0.5 and the factor
2 = 1 / (1 - 0.5)). :func:`mean_average_recall` (mAR) is the mean over classes of the AR of each
class, where a gt's best overlap is taken over the detections *of its class*; a class with no
gt has no AR (NaN) and is left out of the mean.

How this differs from COCO's AR (the stats 6-11 of :class:`~tinyvision.metrics.COCOEvaluator`):

* COCO samples recall at the ten thresholds 0.50, 0.55, ..., 0.95 and averages them: a
  Riemann sum over [0.5, 0.95] that never looks at overlaps in (0.95, 1]. For one gt with
  best overlap b in [0.5, 1]: textbook AR = 2 (b - 0.5), COCO's = #{thresholds <= b} / 10 — e.g.
  b = 0.97 gives 0.94 vs 1.0, b = 0.5 gives 0 vs 0.1.
* COCO matches detections to gts one to one, greedily in decreasing score order, separately per
  category, with crowd regions and area ranges; here a gt's best overlap may come from a
  detection that also covers another gt (no one-to-one assignment), and AR is class-agnostic
  (proposals have no class) unless you ask for mAR.
* COCO caps the detections per image and category (maxDets); here ``max_detections`` caps the
  detections per image (per image and class for mAR), keeping the highest-scored ones.

Inputs follow :func:`~tinyvision.metrics.voc_eval`: ``preds`` and ``targets`` are lists with one
entry per image, each a dict with ``boxes (array[N, 4])`` in (x1, y1, x2, y2) (plus ``scores``
to rank detections for ``max_detections``, ``labels`` for mAR) or simply the ``(N, 4)`` box array.
IoU is the continuous one (no +1), with 0 when both boxes have zero area.
"""
from __future__ import annotations

import numpy as np

from ..kernels.dispatch import kernel  # box IoU: boxes checked here: finite, x1 <= x2, y1 <= y2
from .classification import _as_numpy

__all__ = ["best_overlaps", "recall_iou_curve", "average_recall", "mean_average_recall"]


def _entry(x, where, need_scores, need_labels):
    """One image's record -> (boxes (N, 4), scores (N,) or None, labels (N,) or None)."""
    if isinstance(x, dict):
        if "boxes" not in x:
            raise ValueError(f"{where} has no 'boxes' field (keys: {sorted(x)})")
        raw_boxes, scores, labels = x["boxes"], x.get("scores"), x.get("labels")
    else:
        raw_boxes, scores, labels = x, None, None
    b = _as_numpy(raw_boxes, f"{where}['boxes']").astype(np.float64)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{where}['boxes'] must have shape (N, 4), got {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError(f"{where}['boxes'] has NaN or infinite coordinates")
    bad = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}['boxes'][{i}] = {b[i].tolist()} has x2 < x1 or y2 < y1")
    n = len(b)

    def vec(v, key, required):
        if v is None:
            if required:
                raise ValueError(f"{where} needs a {key!r} field here")
            return None
        a = _as_numpy(v, f"{where}[{key!r}]").reshape(-1)
        if a.shape != (n,):
            raise ValueError(f"{where}[{key!r}] must have shape ({n},) to match {where}['boxes'] "
                             f"of shape ({n}, 4), got {a.shape}")
        return a

    s = vec(scores, "scores", False)
    if s is not None:
        s = s.astype(np.float64)
        if np.isnan(s).any():
            raise ValueError(f"{where}['scores'] contains NaN")
    lab = vec(labels, "labels", need_labels)
    if lab is not None:
        if lab.dtype.kind == "f" and np.all(lab == np.round(lab)):
            lab = lab.astype(np.int64)
        if lab.dtype.kind not in "iub":
            raise ValueError(f"{where}['labels'] must be integers, got dtype {lab.dtype}")
        lab = lab.astype(np.int64)
    return b, s, lab


def _images(preds, targets, need_labels):
    for arg, name in ((preds, "preds"), (targets, "targets")):
        if not isinstance(arg, (list, tuple)):
            raise ValueError(f"{name} must be a list with one entry per image, "
                             f"got {type(arg).__name__}")
    if len(preds) != len(targets):
        raise ValueError(f"preds and targets must have one entry per image each, got "
                         f"{len(preds)} and {len(targets)}")
    return [(_entry(p, f"preds[{i}]", False, need_labels),
             _entry(t, f"targets[{i}]", False, need_labels))
            for i, (p, t) in enumerate(zip(preds, targets))]


def _top_k(scores, labels, n, k):
    """Indices of the detections kept: the k best-scored per image (per class when labels is
    given); ties and missing scores keep the given order."""
    if k is None:
        return np.arange(n)
    if k < 0:
        raise ValueError(f"max_detections must be >= 0, got {k}")
    s = np.zeros(n) if scores is None else scores
    g = np.zeros(n, dtype=np.int64) if labels is None else labels
    order = np.lexsort((-s, g))                         # by group, then decreasing score, stable
    sg = g[order]
    first = np.searchsorted(sg, sg, side="left")        # start of each detection's group
    rank = np.arange(n) - first
    return np.sort(order[rank < k])


def _best(images, max_detections, class_aware):
    """Best overlap of every gt (concatenated over images) and the gt labels (or None)."""
    best, labels = [], []
    for (db, ds, dl), (gb, _, gl) in images:
        keep = _top_k(ds, dl if class_aware else None, len(db), max_detections)
        db = db[keep]
        if len(db) == 0 or len(gb) == 0:
            b = np.zeros(len(gb))
        else:
            gb_c, db_c = np.ascontiguousarray(gb), np.ascontiguousarray(db)
            iou = kernel("boxes", "box_iou", gb_c, db_c)(gb_c, db_c)  # (G, N), the one box-IoU kernel
            if class_aware:
                iou = np.where(gl[:, None] == dl[keep][None, :], iou, 0.0)
            b = iou.max(axis=1)
        best.append(b)
        labels.append(gl if class_aware else np.zeros(len(gb), dtype=np.int64))
    if not best:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(best), np.concatenate(labels)


def best_overlaps(preds, targets, max_detections=None):
    """Each gt's best IoU with any detection of its image, class-agnostic: ``array[G]``
    (gts concatenated in image order).

    >>> best_overlaps([[[0, 0, 10, 10], [0, 0, 10, 5]]], [[[0, 0, 10, 10], [0, 0, 10, 20]]])
    array([1. , 0.5])
    """
    return _best(_images(preds, targets, False), max_detections, False)[0]


def recall_iou_curve(preds, targets, iou_thresholds=None, max_detections=None):
    """Recall as a function of the IoU threshold: ``recall(o) = #{g : b_g >= o} / G``.

    Args:
        preds, targets: per-image lists (module docstring).
        iou_thresholds (array[T], optional): where to evaluate; default 101 points on [0, 1].
        max_detections (int, optional): keep the k best-scored detections per image.

    Returns:
        (iou_thresholds array[T], recall array[T]); recall is NaN when there is no gt.

    >>> o, r = recall_iou_curve([[[0, 0, 10, 10]]], [[[0, 0, 10, 10], [0, 0, 10, 20]]],
    ...                         iou_thresholds=[0.4, 0.5, 0.6, 1.0])
    >>> r.tolist()
    [1.0, 1.0, 0.5, 0.5]
    """
    b, _ = _best(_images(preds, targets, False), max_detections, False)
    o = np.linspace(0.0, 1.0, 101) if iou_thresholds is None else \
        _as_numpy(iou_thresholds, "iou_thresholds").astype(np.float64).reshape(-1)
    if np.isnan(o).any():
        raise ValueError("iou_thresholds contains NaN")
    if b.size == 0:
        return o, np.full(o.shape, np.nan)
    # #{b >= o} = G - #{b < o} = G - searchsorted(sorted b, o, 'left')
    covered = b.size - np.searchsorted(np.sort(b), o, side="left")
    return o, covered / b.size


def _ar(b, min_iou):
    if b.size == 0:
        return float("nan")
    return float(np.sum(np.maximum(0.0, b - min_iou)) / (b.size * (1.0 - min_iou)))


def average_recall(preds, targets, max_detections=None, min_iou=0.5):
    """Hosang et al.'s average recall, class-agnostic:
    ``AR = 2 * integral_{0.5}^{1} recall(o) do = (2 / G) * sum_g max(0, b_g - 0.5)``
    (module docstring for the derivation and the difference with COCO's AR).

    Args:
        preds, targets: per-image lists of dicts (``boxes``, ``scores``) or box arrays.
        max_detections (int, optional): use only the k best-scored detections of each image
            (the first k in the given order when there are no scores), e.g. AR@100.
        min_iou (float): the lower end of the integral (0.5); the normalisation is
            1 / (1 - min_iou), so a perfect cover gives 1.

    Returns:
        float in [0, 1]; NaN when there is no gt.

    >>> # best overlaps 1.0 and 0.5 -> AR = 2 * ((1 - .5) + 0) / 2 = 0.5
    >>> average_recall([[[0, 0, 10, 10]]], [[[0, 0, 10, 10], [0, 0, 10, 20]]])
    0.5
    """
    if not 0.0 <= min_iou < 1.0:
        raise ValueError(f"min_iou must be in [0, 1), got {min_iou}")
    b, _ = _best(_images(preds, targets, False), max_detections, False)
    return _ar(b, min_iou)


def mean_average_recall(preds, targets, max_detections=None, min_iou=0.5, num_classes=None):
    """mAR: the mean over classes of the textbook AR, each gt's best overlap taken over the
    detections of its own class (``labels`` needed in preds and targets).

    Args:
        max_detections (int, optional): the k best-scored detections per image *and class*.
        num_classes (int, optional): classes 0..K-1 (a class without gts is NaN); default:
            the classes present in the targets.

    Returns:
        (mAR float, dict class -> AR). mAR is the mean over the classes that have gts
        (NaN if none).

    >>> preds = [{"boxes": [[0, 0, 10, 10], [0, 0, 10, 20]], "labels": [0, 0]}]
    >>> targets = [{"boxes": [[0, 0, 10, 10], [0, 0, 10, 20]], "labels": [0, 1]}]
    >>> mean_average_recall(preds, targets)      # class 0 found perfectly, class 1 never
    (0.5, {0: 1.0, 1: 0.0})
    """
    if not 0.0 <= min_iou < 1.0:
        raise ValueError(f"min_iou must be in [0, 1), got {min_iou}")
    b, gl = _best(_images(preds, targets, True), max_detections, True)
    if num_classes is None:
        classes = np.unique(gl).tolist()
    else:
        bad = (gl < 0) | (gl >= num_classes)
        if bad.any():
            raise ValueError(f"targets have labels outside [0, {num_classes}) "
                             f"(num_classes={num_classes}), e.g. {gl[bad][:3].tolist()}")
        classes = list(range(num_classes))
    per_class = {c: _ar(b[gl == c], min_iou) for c in classes}
    vals = np.array([v for v in per_class.values() if not np.isnan(v)])
    return (float(vals.mean()) if vals.size else float("nan")), per_class
