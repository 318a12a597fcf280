"""Why COCO scored a detection the way it did: pycocotools' matching for one image and category,
written as plain loops with a reason for every verdict, and the precision-recall curve of one
category built from those verdicts.

These are readable re-derivations, not the evaluator's engine (that is the Numba kernel in
``kernels/cpu/coco.py``); the tests check that both give the same matches as pycocotools'
``evaluateImg`` and the same AP as ``COCOEvalResult.precision``.

The matching rule, per IoU threshold t (pycocotools ``evaluateImg``):

1. ground truths: *ignored* if crowd or if their area is outside the area range; sorted with the
   non-ignored first (stable);
2. detections: sorted by descending score (stable), cut to ``max_dets``;
3. each detection in turn takes the best still-free gt with IoU >= t — a crowd gt is never
   "taken" — preferring a non-ignored gt: once it holds one, it stops at the first ignored gt;
   equal IoUs go to the later gt;
4. a matched detection is TP, or *ignored* if its gt is ignored; an unmatched one is FP, or
   *ignored* if its own area is outside the area range.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Verdict", "Explanation", "PRCurve", "explain", "pr_curve"]


class Verdict(NamedTuple):
    """One detection's fate. ``gt_id`` is None when unmatched (COCO itself writes 0 there)."""

    det_id: int
    score: float
    gt_id: object
    iou: float
    verdict: str        # "TP" | "FP" | "ignored"
    reason: str


class Explanation(list):
    """The :class:`Verdict` records of one image and category, in score order; ``print`` it for
    a table. ``gts`` lists the ground truths as (gt_id, ignored, reason)."""

    def __init__(self, records, gts, image_id, category_id, iou_threshold):
        super().__init__(records)
        self.gts, self.image_id, self.category_id, self.iou_threshold = gts, image_id, category_id, iou_threshold

    def __str__(self):
        head = (f"image {self.image_id}, category {self.category_id}, IoU >= {self.iou_threshold}: "
                f"{len(self.gts)} gt ({sum(1 for g in self.gts if g[1])} ignored), {len(self)} detections")
        rows = [f"{'det':>5} {'score':>7} {'gt':>5} {'IoU':>6}  {'verdict':<8} reason"]
        for r in self:
            gt = "-" if r.gt_id is None else str(r.gt_id)
            rows.append(f"{r.det_id:>5} {r.score:>7.3f} {gt:>5} {r.iou:>6.3f}  {r.verdict:<8} {r.reason}")
        return "\n".join([head] + rows)


class PRCurve(NamedTuple):
    """One category's curve. ``recall``/``precision``: one point per (non-ignored) detection in
    score order; ``envelope``: precision made non-increasing from the right (the interpolation);
    ``rec_thrs`` (101 values) and ``samples``: the envelope read at each recall threshold (0 past
    the last recall reached); ``ap`` = mean(samples), -1 when the category has no gt."""

    recall: np.ndarray
    precision: np.ndarray
    envelope: np.ndarray
    rec_thrs: np.ndarray
    samples: np.ndarray
    ap: float


def _iou_xywh(d, g, crowd):
    """pycocotools' bbIou for one pair: no +1; a crowd gt's union is the detection's area."""
    w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
    h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = d[2] * d[3] if crowd else d[2] * d[3] + g[2] * g[3] - inter
    return float(inter / union)


def _user_id(v):
    return int(v) if float(v).is_integer() else float(v)


def _setup(result, image_code, category_id, max_dets, area):
    p = result.params
    if not hasattr(result, "_sources"):
        raise ValueError("explain/pr_curve need a result returned by COCOEvaluator.evaluate")
    gt, dets, keep, img_codes = result._sources
    if area not in p.areaRngLbl:
        raise ValueError(f"area must be one of {p.areaRngLbl}, got {area!r}")
    lo, hi = np.asarray(p.areaRng, dtype=np.float64)[p.areaRngLbl.index(area)]
    max_dets = p.maxDets[-1] if max_dets is None else int(max_dets)
    if category_id not in p.catIds:
        raise ValueError(f"category_id {category_id!r} is not among the evaluated categories {p.catIds}")
    # ground truths of this image and category: selected by their own record, read as the record
    # their id names (pycocotools' COCO.anns), grouped by that content's image and category
    selected = np.isin(gt.ann_img, img_codes) & np.isin(gt.ann_cat, p.catIds)
    g_rows = np.flatnonzero(selected & (gt.img == image_code) & (gt.cat == category_id))
    d_rows = np.flatnonzero(keep & (dets.img == image_code) & (dets.cat == category_id))
    return gt, dets, g_rows, d_rows, lo, hi, max_dets


def _match(gt, dets, g_rows, d_rows, lo, hi, max_dets, t):
    """The plain-loop evaluateImg at one threshold -> (gt list, verdict list)."""
    gts = []
    for r in g_rows:
        if gt.crowd[r]:
            gts.append((r, True, "crowd region"))
        elif not lo <= gt.area[r] <= hi:
            gts.append((r, True, f"area {gt.area[r]:g} outside [{lo:g}, {hi:g}]"))
        else:
            gts.append((r, False, ""))
    gts.sort(key=lambda g: g[1])                 # non-ignored first; sort() is stable
    order = sorted(d_rows, key=lambda r: -dets.score[r])[:max_dets]   # stable: ties keep input order
    taken = [None] * len(gts)                    # det id that took each gt
    out = []
    for r in order:
        d = dets.box[r]
        ious = [_iou_xywh(d, gt.box[g], gt.crowd[g]) for g, _, _ in gts]
        best, m = min(t, 1 - 1e-10), -1
        for k, (g, ignored, _) in enumerate(gts):
            if taken[k] is not None and not gt.crowd[g]:
                continue                          # already matched, and not a crowd
            if m > -1 and not gts[m][1] and ignored:
                break                             # holding a real gt: ignored ones come after
            if ious[k] < best:
                continue
            best, m = ious[k], k
        det_id = int(r) + 1                       # loadRes numbers detections 1..n
        score = float(dets.score[r])
        if m > -1:
            taken[m] = det_id
            g, ignored, why = gts[m]
            gid = _user_id(gt.ids[g])
            if ignored:
                out.append((det_id, score, gid, ious[m], "ignored", f"matched gt {gid}, which is ignored ({why})"))
            else:
                out.append((det_id, score, gid, ious[m], "TP", f"IoU {ious[m]:.3f} >= {t:g} with gt {gid}"))
            continue
        best_any = max(ious) if ious else 0.0
        a = float(dets.area[r])
        if not lo <= a <= hi:
            verdict, reason = "ignored", f"unmatched, and its area {a:g} is outside [{lo:g}, {hi:g}]"
        elif not gts:
            verdict, reason = "FP", "no ground truth of this category in the image"
        elif best_any >= t:
            k = int(np.argmax(ious))
            verdict, reason = "FP", (f"its best gt {_user_id(gt.ids[gts[k][0]])} (IoU {best_any:.3f}) was already "
                                     f"taken by detection {taken[k]}")
        else:
            verdict, reason = "FP", f"best IoU {best_any:.3f} is below {t:g}"
        out.append((det_id, score, None, best_any, verdict, reason))
    return gts, out


def explain(result, image_id, category_id, iou_threshold=0.5, max_dets=None, area="all") -> Explanation:
    """The verdict of every detection of ``image_id`` and ``category_id`` at one IoU threshold,
    area range and maxDets (default: the last), in score order, each with its reason.

    >>> from tinyvision.metrics import COCOEvaluator
    >>> gt = {"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": [
    ...     {"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0}]}
    >>> dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 9], "score": 0.9},
    ...         {"image_id": 1, "category_id": 1, "bbox": [1, 0, 10, 10], "score": 0.8}]
    >>> for r in COCOEvaluator(gt).evaluate(dets).explain(1, 1):
    ...     print(r.det_id, r.verdict, r.reason)
    1 TP IoU 0.900 >= 0.5 with gt 7
    2 FP its best gt 7 (IoU 0.818) was already taken by detection 1
    """
    gt = result._sources[0] if hasattr(result, "_sources") else None
    if gt is None:
        raise ValueError("explain needs a result returned by COCOEvaluator.evaluate")
    _, codes = gt.encode_image_ids([image_id], where="image_id")
    if codes.size == 0 or codes[0] not in result._sources[3]:
        raise ValueError(f"image_id {image_id!r} is not among the evaluated images")
    gt, dets, g_rows, d_rows, lo, hi, max_dets = _setup(result, codes[0], category_id, max_dets, area)
    gts, records = _match(gt, dets, g_rows, d_rows, lo, hi, max_dets, float(iou_threshold))
    gt_list = [(_user_id(gt.ids[g]), ignored, why) for g, ignored, why in gts]
    return Explanation([Verdict(*r) for r in records], gt_list, image_id, category_id, iou_threshold)


def pr_curve(result, category_id, iou_threshold=0.5, max_dets=None, area="all") -> PRCurve:
    """pycocotools' accumulate for one category, threshold, area range and maxDets, from the
    verdicts of :func:`explain` over every evaluated image:

        detections of all images (each cut to max_dets), stable-sorted by descending score;
        tp, fp = cumulative counts of TP and FP (ignored ones count as neither);
        recall = tp / n_gt (non-ignored gts),  precision = tp / (tp + fp + eps) (eps = np.spacing(1),
        pycocotools' guard; faster-coco-eval's mode has none);
        envelope[i] = max(precision[i:]);  samples[r] = envelope[first i with recall[i] >= rec_thrs[r]].
    """
    p = result.params
    gt, dets, keep, img_codes = result._sources
    t = float(iou_threshold)
    scores, verdicts, n_gt = [], [], 0
    for code in img_codes:
        gt_, dets_, g_rows, d_rows, lo, hi, md = _setup(result, code, category_id, max_dets, area)
        gts, records = _match(gt_, dets_, g_rows, d_rows, lo, hi, md, t)
        n_gt += sum(1 for g in gts if not g[1])
        scores += [r[1] for r in records]
        verdicts += [r[4] for r in records]
    rec_thrs = np.asarray(p.recThrs, dtype=np.float64)
    if n_gt == 0:
        empty = np.zeros(0)
        return PRCurve(empty, empty, empty, rec_thrs, np.full(rec_thrs.size, -1.0), -1.0)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    v = np.asarray(verdicts, dtype=object)[order]
    v = v[v != "ignored"]
    tp = np.cumsum(v == "TP").astype(np.float64)
    fp = np.cumsum(v == "FP").astype(np.float64)
    eps = np.spacing(1) if result.mode == "pycocotools" else 0.0
    recall = tp / n_gt
    precision = tp / (fp + tp + eps) if v.size else np.zeros(0)
    envelope = precision.copy()
    for i in range(envelope.size - 1, 0, -1):   # right to left: precision never rises with recall
        envelope[i - 1] = max(envelope[i - 1], envelope[i])
    idx = np.searchsorted(recall, rec_thrs, side="left")
    samples = np.array([envelope[i] if i < envelope.size else 0.0 for i in idx])
    return PRCurve(recall, precision, envelope, rec_thrs, samples, float(samples.mean()))
