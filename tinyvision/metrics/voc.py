"""Pascal VOC detection AP: the devkit's matching (VOCevaldet.m) and both interpolations.

Matching, per class (Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge",
IJCV 2010, Sec. 4.2; the devkit's ``VOCevaldet.m``; py-faster-rcnn's ``voc_eval.py``):

1. All detections of the class, from all images, are sorted by decreasing score. The sort is
   *stable* (MATLAB's ``sort`` is): equal scores keep the order in which they were given
   (image by image, then the order inside each image). py-faster-rcnn's ``np.argsort`` is not
   stable, so its AP can depend on how ties happen to be ordered.
2. Each detection, in that order, looks at the ground-truth boxes of its image and class and
   takes the one of largest overlap ``ovmax`` (ties: the first gt). Overlap uses the devkit's
   +1 pixel convention (``pixel_offset=1``): a box (x1, y1, x2, y2) covers the pixels x1..x2
   inclusive, so its width is x2 - x1 + 1, and::

       iw = min(x2, x2') - max(x1, x1') + 1,   ih likewise,
       IoU = iw*ih / ((x2-x1+1)(y2-y1+1) + (x2'-x1'+1)(y2'-y1'+1) - iw*ih)   if iw > 0 and ih > 0

   (a pair with iw <= 0 or ih <= 0 does not overlap and is never the argmax).
3. If ``ovmax >= iou_threshold`` (py-faster-rcnn: ``>``; choose with ``iou_comparison``):
   a "difficult" gt makes the detection count as *neither* TP nor FP; a gt not yet taken
   makes it a TP (and takes the gt); a gt already taken makes it a FP (duplicate).
   Otherwise it is a FP. Note that the argmax ignores whether a gt is taken: a duplicate does
   not fall back to its second-best gt (COCO's matching does).
4. Over the sorted detections, cumulative ``tp`` and ``fp``:
   ``recall = tp / npos`` (npos = number of non-difficult gts of the class),
   ``precision = tp / max(tp + fp, eps)`` (0 before the first TP/FP; the devkit's 0/0 = NaN
   there is skipped by MATLAB's ``max``, which gives the same AP — py-faster-rcnn's choice).

AP from the (recall, precision) points, :func:`voc_ap`:

* 11-point (VOC2007): ``AP = 1/11 sum_{t in {0, 0.1, ..., 1}} max(precision[recall >= t])``
  (0 where no point has recall >= t). The thresholds are the exact tenths ``i / 10``;
  py-faster-rcnn uses ``np.arange(0, 1.1, 0.1)``, whose 0.3, 0.6 and 0.7 are one ulp above
  the tenth, so a recall of exactly 3/10 is then not counted at t = 0.3 (``tenths="arange"``).
* all-point (VOC2010 and later): append (recall 0, precision 0) in front and (1, 0) at the end,
  replace precision by its running maximum from the right (the precision envelope), and sum
  the rectangles ``(recall[i+1] - recall[i]) * envelope[i+1]`` where recall changes.

A class with no non-difficult gt has no recall: its AP is NaN and it is left out of the mAP
(the devkit divides by 0 there). A class with gts and no detections has AP 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .classification import _as_numpy

__all__ = ["voc_ap", "voc_eval", "VOCEvaluator", "VOCResult", "voc_box_iou"]


# --------------------------------------------------------------------------------------
# AP from a precision-recall curve
# --------------------------------------------------------------------------------------
def _curve(x, name):
    a = _as_numpy(x, name).astype(np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError(f"{name} contains NaN; shape {a.shape}")
    return a


def voc_ap(rec, prec, use_07_metric=False, tenths="exact"):
    """VOC average precision of one precision-recall curve.

    Args:
        rec (array[N]): recall after each detection (non-decreasing), in [0, 1].
        prec (array[N]): precision after each detection.
        use_07_metric (bool): True: the VOC2007 11-point interpolation; False: the VOC2010+
            all-point area under the precision envelope.
        tenths ("exact" or "arange"): the 11-point thresholds ``i / 10`` (default) or
            py-faster-rcnn's ``np.arange(0., 1.1, 0.1)``.

    Returns:
        float in [0, 1].

    >>> voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3])       # area under the envelope
    0.8333333333333333
    >>> round(voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3], use_07_metric=True), 12)
    0.848484848485
    """
    rec = _curve(rec, "rec")
    prec = _curve(prec, "prec")
    if rec.shape != prec.shape:
        raise ValueError(f"rec and prec must have the same shape, got {rec.shape} and {prec.shape}")
    if use_07_metric:
        if tenths == "exact":
            thresholds = np.arange(11) / 10.0
        elif tenths == "arange":
            thresholds = np.arange(0.0, 1.1, 0.1)
        else:
            raise ValueError(f'tenths must be "exact" or "arange", got {tenths!r}')
        ap = 0.0
        for t in thresholds:
            above = rec >= t
            p = float(np.max(prec[above])) if above.any() else 0.0
            ap += p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    # precision envelope: running maximum from the right
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    # points where recall changes; sum (delta recall) * envelope
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


# --------------------------------------------------------------------------------------
# Overlap with the +1 pixel convention
# --------------------------------------------------------------------------------------
def voc_box_iou(boxes1, boxes2, pixel_offset=1.0):
    """IoU matrix ``(N, M)`` with the VOC devkit's pixel convention; pairs that do not overlap
    (``iw <= 0`` or ``ih <= 0``) get ``-inf``, the devkit's "never the argmax" marker.

    Args:
        boxes1 (array[N, 4]), boxes2 (array[M, 4]): (x1, y1, x2, y2).
        pixel_offset (float): 1 for the devkit's inclusive pixel boxes (width x2 - x1 + 1),
            0 for continuous coordinates.

    >>> voc_box_iou([[0, 0, 9, 9]], [[5, 0, 14, 9]])      # 5 of 10 columns shared
    array([[0.33333333]])
    """
    b1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    off = float(pixel_offset)
    # same operation order as the devkit: (min(x2) - max(x1)) + 1
    x1, y1, x2, y2 = (b1[:, None, i] for i in range(4))      # (N, 1) each
    u1, v1, u2, v2 = (b2[None, :, i] for i in range(4))      # (1, M) each
    iw = (np.minimum(x2, u2) - np.maximum(x1, u1)) + off
    ih = (np.minimum(y2, v2) - np.maximum(y1, v1)) + off
    a1 = (b1[:, 2] - b1[:, 0] + off) * (b1[:, 3] - b1[:, 1] + off)
    a2 = (b2[:, 2] - b2[:, 0] + off) * (b2[:, 3] - b2[:, 1] + off)
    overlap = (iw > 0) & (ih > 0)
    inter = np.where(overlap, iw * ih, 0.0)
    union = a1[:, None] + a2[None, :] - inter
    iou = np.full(inter.shape, -np.inf)
    np.divide(inter, union, out=iou, where=overlap & (union > 0))
    return iou


# --------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------
def _field(record, key, where, required=True):
    if not isinstance(record, dict):
        raise ValueError(f"{where} must be a dict with keys 'boxes', 'labels'..., "
                         f"got {type(record).__name__}")
    if key not in record:
        if required:
            raise ValueError(f"{where} has no {key!r} field (keys: {sorted(record)})")
        return None
    return _as_numpy(record[key], f"{where}[{key!r}]")


def _boxes(record, where):
    b = _field(record, "boxes", where)
    if b.size == 0:
        return np.zeros((0, 4))
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{where}['boxes'] must have shape (N, 4), got {b.shape}")
    b = b.astype(np.float64)
    if not np.isfinite(b).all():
        raise ValueError(f"{where}['boxes'] has NaN or infinite coordinates")
    bad = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}['boxes'][{i}] = {b[i].tolist()} has x2 < x1 or y2 < y1 "
                         "(boxes are (x1, y1, x2, y2))")
    return b


def _vector(record, key, where, n, required=True):
    v = _field(record, key, where, required)
    if v is None:
        return None
    v = v.reshape(-1) if v.ndim == 0 or v.size == 0 else v
    if v.ndim != 1 or v.shape[0] != n:
        raise ValueError(f"{where}[{key!r}] must have shape ({n},) to match {where}['boxes'] "
                         f"of shape ({n}, 4), got {v.shape}")
    return v


def _labels(record, where, n):
    lab = _vector(record, "labels", where, n)
    if lab.size and (lab.dtype.kind not in "iub"):
        if lab.dtype.kind == "f" and np.all(np.isfinite(lab)) and np.all(lab == np.round(lab)):
            lab = lab.astype(np.int64)
        else:
            raise ValueError(f"{where}['labels'] must be integers, got dtype {lab.dtype}")
    return lab.astype(np.int64)


def _parse(preds, targets):
    if not isinstance(preds, (list, tuple)) or not isinstance(targets, (list, tuple)):
        raise ValueError("preds and targets must be lists with one dict per image, got "
                         f"{type(preds).__name__} and {type(targets).__name__}")
    if len(preds) != len(targets):
        raise ValueError(f"preds and targets must have one entry per image each, got "
                         f"{len(preds)} and {len(targets)}")
    images = []
    for i, (p, t) in enumerate(zip(preds, targets)):
        db = _boxes(p, f"preds[{i}]")
        ds = _vector(p, "scores", f"preds[{i}]", len(db)).astype(np.float64)
        if np.isnan(ds).any():
            raise ValueError(f"preds[{i}]['scores'] contains NaN "
                             f"(index {int(np.flatnonzero(np.isnan(ds))[0])})")
        dl = _labels(p, f"preds[{i}]", len(db))
        gb = _boxes(t, f"targets[{i}]")
        gl = _labels(t, f"targets[{i}]", len(gb))
        gd = _vector(t, "difficult", f"targets[{i}]", len(gb), required=False)
        gd = np.zeros(len(gb), dtype=bool) if gd is None else gd.astype(bool)
        images.append((db, ds, dl, gb, gl, gd))
    return images


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------
@dataclass
class VOCResult:
    """Per-class VOC results.

    Attributes:
        classes (list[int]): the evaluated class ids, sorted.
        ap (dict[int, float]): AP per class (NaN for a class with no non-difficult gt).
        precision, recall (dict[int, array[D_c]]): the curve after each of the class's D_c
            detections, in decreasing score order (detections on difficult gts included, as
            in the devkit: they add to neither TP nor FP).
        scores (dict[int, array[D_c]]): the detection scores in that order.
        num_gt (dict[int, int]): non-difficult gts per class (npos).
        iou_threshold, use_07_metric: the settings used.
    """

    classes: list
    ap: dict
    precision: dict = field(repr=False)
    recall: dict = field(repr=False)
    scores: dict = field(repr=False)
    num_gt: dict = field(repr=False)
    iou_threshold: float = 0.5
    use_07_metric: bool = False

    @property
    def map(self) -> float:
        """Mean AP over the classes with at least one non-difficult gt (NaN if none)."""
        vals = np.array([v for v in self.ap.values() if not np.isnan(v)], dtype=np.float64)
        return float(vals.mean()) if vals.size else float("nan")


def _match(images, iou_threshold, iou_comparison, pixel_offset):
    """Per detection (concatenated over images): score, label, and its outcome
    (+1 TP, 0 neither, -1 FP) after the devkit's greedy pass; plus the gt labels/difficult.

    Vectorised: the argmax gt of a detection does not depend on which gts are taken, so
    per image one IoU matrix gives every detection's (ovmax, jmax); then, among detections in
    decreasing-score order, the *first* one pointing at a given non-difficult gt is its TP and
    every later one is a duplicate FP.
    """
    scores, labels, gt_key, hit, difficult_hit = [], [], [], [], []
    gt_labels, gt_difficult = [], []
    offset = 0
    for db, ds, dl, gb, gl, gd in images:
        n, g = len(db), len(gb)
        if g and n:
            iou = voc_box_iou(db, gb, pixel_offset)                    # (n, g)
            iou[dl[:, None] != gl[None, :]] = -np.inf                   # other classes' gts
            jmax = np.argmax(iou, axis=1)                                # first max on ties
            ovmax = iou[np.arange(n), jmax]
        else:
            jmax = np.zeros(n, dtype=np.int64)
            ovmax = np.full(n, -np.inf)
        ok = ovmax > iou_threshold if iou_comparison == ">" else ovmax >= iou_threshold
        scores.append(ds)
        labels.append(dl)
        hit.append(ok)
        difficult_hit.append(ok & (gd[jmax] if g else np.zeros(n, dtype=bool)))
        gt_key.append(offset + jmax)
        gt_labels.append(gl)
        gt_difficult.append(gd)
        offset += g
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dtype=dt))
    scores = cat(scores, np.float64)
    labels = cat(labels, np.int64)
    hit = cat(hit, bool)
    difficult_hit = cat(difficult_hit, bool)
    gt_key = cat(gt_key, np.int64)
    # order: by class, then decreasing score, stable (lexsort is stable; last key is primary)
    order = np.lexsort((-scores, labels))
    outcome = np.full(len(order), -1, dtype=np.int8)              # FP unless shown otherwise
    s_hit = hit[order]
    s_diff = difficult_hit[order]
    outcome[s_diff] = 0                                           # on a difficult gt: neither
    cand = np.flatnonzero(s_hit & ~s_diff)
    if cand.size:
        _, first = np.unique(gt_key[order][cand], return_index=True)
        outcome[cand[first]] = 1                                  # first claim of each gt: TP
    return (scores[order], labels[order], outcome, cat(gt_labels, np.int64),
            cat(gt_difficult, bool))


def voc_eval(preds, targets, iou_threshold=0.5, use_07_metric=False, *, num_classes=None,
             iou_comparison=">=", pixel_offset=1.0, tenths="exact"):
    """Pascal VOC detection AP per class and mAP (module docstring for the exact rules).

    Args:
        preds (list[dict]): one dict per image: ``boxes (array[N, 4])`` (x1, y1, x2, y2),
            ``scores (array[N])``, ``labels (array[N])`` (int class ids).
        targets (list[dict]): one dict per image, same order: ``boxes (array[G, 4])``,
            ``labels (array[G])``, optional ``difficult (array[G])`` (bool, default False).
        iou_threshold (float): VOC's 0.5.
        use_07_metric (bool): 11-point (VOC2007) instead of all-point (VOC2010+) AP.
        num_classes (int, optional): evaluate classes 0..K-1; default: every class present in
            preds or targets.
        iou_comparison (">=" or ">"): the devkit's ``ovmax >= threshold`` or py-faster-rcnn's
            ``ovmax > threshold``.
        pixel_offset (float): 1 (devkit: inclusive pixel boxes) or 0 (continuous boxes).
        tenths: the 11-point thresholds, see :func:`voc_ap`.

    Returns:
        VOCResult: ``.ap`` per class, ``.map``, and the curves.

    >>> preds = [{"boxes": [[0, 0, 9, 9], [20, 20, 29, 29]], "scores": [0.9, 0.8],
    ...           "labels": [0, 0]}]
    >>> targets = [{"boxes": [[0, 0, 9, 9], [50, 50, 59, 59]], "labels": [0, 0]}]
    >>> r = voc_eval(preds, targets)
    >>> r.ap[0], r.recall[0].tolist(), r.precision[0].tolist()
    (0.5, [0.5, 0.5], [1.0, 0.5])
    """
    if iou_comparison not in (">=", ">"):
        raise ValueError(f'iou_comparison must be ">=" or ">", got {iou_comparison!r}')
    iou_threshold = float(iou_threshold)
    if np.isnan(iou_threshold):
        raise ValueError("iou_threshold is NaN")
    images = _parse(preds, targets)
    scores, labels, outcome, gt_labels, gt_difficult = _match(images, iou_threshold,
                                                              iou_comparison, pixel_offset)
    if num_classes is not None:
        for arr, name in ((labels, "preds"), (gt_labels, "targets")):
            bad = (arr < 0) | (arr >= num_classes)
            if bad.any():
                raise ValueError(f"{name} have labels outside [0, {num_classes}) "
                                 f"(num_classes={num_classes}), e.g. {arr[bad][:3].tolist()}")
        classes = list(range(num_classes))
    else:
        classes = sorted(set(np.unique(labels).tolist()) | set(np.unique(gt_labels).tolist()))
    ap, prec_d, rec_d, score_d, ngt = {}, {}, {}, {}, {}
    gt_counted = gt_labels[~gt_difficult]
    for c in classes:
        # the detections of class c: a contiguous run, `labels` being sorted by class
        lo, hi = np.searchsorted(labels, c, side="left"), np.searchsorted(labels, c, side="right")
        npos = int(np.count_nonzero(gt_counted == c))
        out = outcome[lo:hi]
        tp = np.cumsum(out == 1).astype(np.float64)
        fp = np.cumsum(out == -1).astype(np.float64)
        rec = tp / npos if npos else np.full(tp.shape, np.nan)
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap[c] = voc_ap(rec, prec, use_07_metric, tenths) if npos else float("nan")
        prec_d[c], rec_d[c], score_d[c], ngt[c] = prec, rec, scores[lo:hi], npos
    return VOCResult(classes=classes, ap=ap, precision=prec_d, recall=rec_d, scores=score_d,
                     num_gt=ngt, iou_threshold=iou_threshold, use_07_metric=use_07_metric)


class VOCEvaluator:
    """Accumulate detections image by image, then :meth:`compute` the VOC AP.

    >>> ev = VOCEvaluator(iou_threshold=0.5, use_07_metric=True)
    >>> ev.update([{"boxes": [[0, 0, 9, 9]], "scores": [0.9], "labels": [1]}],
    ...           [{"boxes": [[0, 0, 9, 9]], "labels": [1]}])
    >>> ev.compute().map          # 11 times p / 11 summed in floating point, as the devkit does
    1.0000000000000002
    """

    def __init__(self, iou_threshold=0.5, use_07_metric=False, *, num_classes=None,
                 iou_comparison=">=", pixel_offset=1.0, tenths="exact"):
        self.kwargs = dict(iou_threshold=iou_threshold, use_07_metric=use_07_metric,
                           num_classes=num_classes, iou_comparison=iou_comparison,
                           pixel_offset=pixel_offset, tenths=tenths)
        self.reset()

    def reset(self):
        self.preds, self.targets = [], []

    def update(self, preds, targets):
        """Add images: ``preds`` and ``targets`` as in :func:`voc_eval` (validated now)."""
        _parse(preds, targets)
        self.preds.extend(preds)
        self.targets.extend(targets)

    def compute(self) -> VOCResult:
        return voc_eval(self.preds, self.targets, **self.kwargs)
