"""Numba kernels for COCO box evaluation (pycocotools ``cocoeval.py`` semantics).

Two kernels do all the per-detection work of :class:`tinyvision.metrics.COCOEvaluator`:

``coco_match``
    per (image, category) group: the box IoU matrix, then pycocotools' greedy matching for
    every area range and IoU threshold. Output: one state code per (area, threshold,
    detection) -- ``1`` true positive, ``2`` false positive, ``0`` ignored.
``coco_accumulate``
    per (category, area, maxDet, threshold): the precision/recall curve over the detections
    of the category in descending score order, its right-to-left envelope, and the samples at
    the recall thresholds.

Both are written as plain loops so they read like the algorithm; ``kernel.py_func`` is the
same code run by the Python interpreter (the tests check the two agree). Above them, with the
same signatures (the contract of ``kernels/dispatch.py``), ``coco_match_reference`` and
``coco_accumulate_reference`` are pycocotools' own formulation -- NumPy IoU, ``argsort`` of the
ignore flags, ``cumsum`` and ``searchsorted`` -- in plain Python: slow, and an independent
second reading of the same rules. Inputs are
validated and laid out by :mod:`tinyvision.metrics.coco`; the kernels index only inside
the ranges they are given.

Shapes (legend used throughout)::

    D  detections (kept, at most maxDets[-1] per group)     G  ground truths
    NG groups (image, category)   T IoU thresholds   R recall thresholds
    K  categories                 A area ranges      M maxDets values
"""
import numpy as np
from numba import njit

TP = 1       # matched to a non-ignored ground truth
FP = 2       # unmatched (or, bug for bug, matched to a gt whose id is 0) and not ignored
IGNORED = 0  # matched to an ignored gt, or unmatched with an area outside the range


# ======================================================================================
# References: pycocotools' evaluateImg / accumulate, in plain Python and NumPy
# ======================================================================================
def _box_iou_xywh_reference(dt, gt, gt_crowd):
    """bbIou in array form: (D, 4), (G, 4) xywh -> (D, G); a crowd gt's union is the detection."""
    xd, yd, wd, hd = (dt[:, k][:, None] for k in range(4))     # (D, 1)
    xg, yg, wg, hg = (gt[:, k][None, :] for k in range(4))     # (1, G)
    iw = np.minimum(wd + xd, wg + xg) - np.maximum(xd, xg)
    ih = np.minimum(hd + yd, hg + yg) - np.maximum(yd, yg)
    inter = iw * ih
    union = np.where(gt_crowd[None, :], wd * hd, wd * hd + wg * hg - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((iw > 0) & (ih > 0), inter / union, 0.0)


def coco_match_reference(group_dt_start, group_dt_end, group_gt_start, group_gt_end,
                         dt_box, dt_area, gt_box, gt_area, gt_crowd, gt_counts_as_match,
                         area_rng, iou_thrs):
    """:func:`coco_match` as pycocotools' ``evaluateImg`` loops (same arguments and result)."""
    state = np.zeros((len(area_rng), len(iou_thrs), len(dt_box)), dtype=np.int8)
    for d0, d1, g0, g1 in zip(group_dt_start, group_dt_end, group_gt_start, group_gt_end):
        if d1 == d0:
            continue
        crowd = gt_crowd[g0:g1]
        ious = _box_iou_xywh_reference(dt_box[d0:d1], gt_box[g0:g1], crowd)   # (nd, ng)
        for a, (lo, hi) in enumerate(area_rng):
            gt_ignore = crowd | (gt_area[g0:g1] < lo) | (gt_area[g0:g1] > hi)
            dt_outside = (dt_area[d0:d1] < lo) | (dt_area[d0:d1] > hi)
            order = np.argsort(gt_ignore, kind="stable")        # non-ignored gts first
            for t, threshold in enumerate(iou_thrs):
                matched = np.zeros(g1 - g0, dtype=bool)
                for d in range(d1 - d0):
                    best, m = min(threshold, 1 - 1e-10), -1      # m: the matched gt, -1 none
                    for g in order:
                        if matched[g] and not crowd[g]:          # taken (crowds match many)
                            continue
                        if m > -1 and not gt_ignore[m] and gt_ignore[g]:
                            break                                # never trade a real gt for an ignored one
                        if ious[d, g] < best:
                            continue
                        best, m = ious[d, g], g                  # equal IoU: the later gt wins
                    if m == -1:
                        code, ignored = FP, dt_outside[d]
                    else:
                        matched[m] = True
                        if gt_counts_as_match[g0 + m]:
                            code, ignored = TP, gt_ignore[m]
                        else:                                    # bug for bug: gt id 0 is "no match"
                            code, ignored = FP, gt_ignore[m] or dt_outside[d]
                    state[a, t, d0 + d] = IGNORED if ignored else code
    return state


def coco_accumulate_reference(cat_start, cat_end, dt_rank, dt_score, state, n_pos,
                              rec_thrs, max_dets, bug_for_bug):
    """:func:`coco_accumulate` as pycocotools' ``accumulate``: cumsum, envelope, searchsorted."""
    n_area, n_thr = state.shape[:2]
    K, R, M = len(cat_start), len(rec_thrs), len(max_dets)
    precision = np.full((n_thr, R, K, n_area, M), -1.0)        # -1: no non-ignored gt
    recall = np.full((n_thr, K, n_area, M), -1.0)
    scores = np.full((n_thr, R, K, n_area, M), -1.0)
    eps = np.spacing(1) if bug_for_bug else 0.0
    for k in range(K):
        for a in range(n_area):
            npig = n_pos[k, a]
            if npig == 0:
                continue
            for m, max_det in enumerate(max_dets):
                idx = np.arange(cat_start[k], cat_end[k])
                idx = idx[dt_rank[idx] < max_det]               # kept by maxDet, in score order
                tp_sum = np.cumsum(state[a][:, idx] == TP, axis=1).astype(float)   # (T, nd)
                fp_sum = np.cumsum(state[a][:, idx] == FP, axis=1).astype(float)
                for t in range(n_thr):
                    tp, fp = tp_sum[t], fp_sum[t]
                    rc = tp / npig
                    if bug_for_bug:
                        pr = tp / (fp + tp + eps)
                    else:                                       # faster-coco-eval: 0 before any count
                        pr = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1.0), 0.0)
                    recall[t, k, a, m] = rc[-1] if len(idx) else 0.0
                    pr = pr.tolist()
                    for i in range(len(pr) - 1, 0, -1):         # the right-to-left envelope
                        if pr[i] > pr[i - 1]:
                            pr[i - 1] = pr[i]
                    q, ss = np.zeros(R), np.zeros(R)
                    for r, i in enumerate(np.searchsorted(rc, rec_thrs, side="left")):
                        if i >= len(pr):
                            if bug_for_bug:                     # pycocotools' IndexError ends the loop
                                break
                            continue
                        q[r], ss[r] = pr[i], dt_score[idx[i]]
                    precision[t, :, k, a, m] = q
                    scores[t, :, k, a, m] = ss
    return precision, recall, scores


# ======================================================================================
# Fast kernels (Numba)
# ======================================================================================
@njit(cache=True)
def coco_box_iou(dt, gt, gt_crowd):
    """IoU between detections and ground truths in (x, y, w, h), as pycocotools' ``bbIou``.

    dt (float64[D, 4]), gt (float64[G, 4]), gt_crowd (bool[G]) -> float64[D, G].

    inter = w_i * h_i with w_i = min(x_d + w_d, x_g + w_g) - max(x_d, x_g) (likewise h_i);
    w_i <= 0 or h_i <= 0 gives 0. union = a_d + a_g - inter, or a_d alone when the gt is a
    crowd region (the detection's share covered by the crowd). No +1 pixel convention.
    """
    nd = dt.shape[0]
    ng = gt.shape[0]
    out = np.zeros((nd, ng))
    for g in range(ng):
        ga = gt[g, 2] * gt[g, 3]
        for d in range(nd):
            da = dt[d, 2] * dt[d, 3]
            w = min(dt[d, 2] + dt[d, 0], gt[g, 2] + gt[g, 0]) - max(dt[d, 0], gt[g, 0])
            if w <= 0:
                continue
            h = min(dt[d, 3] + dt[d, 1], gt[g, 3] + gt[g, 1]) - max(dt[d, 1], gt[g, 1])
            if h <= 0:
                continue
            inter = w * h
            if gt_crowd[g]:
                union = da
            else:
                union = da + ga - inter
            out[d, g] = inter / union
    return out


@njit(cache=True)
def coco_match(group_dt_start, group_dt_end, group_gt_start, group_gt_end,
               dt_box, dt_area, gt_box, gt_area, gt_crowd, gt_counts_as_match,
               area_rng, iou_thrs):
    """Greedy COCO matching for every (image, category) group, area range and threshold.

    group_* (int64[NG]): half-open ranges into the detection / gt arrays. Inside a group the
        detections are in pycocotools' order (descending score, stable) and already cut to
        maxDets[-1]; the gts are in annotation-file order.
    dt_box (float64[D, 4]) xywh, dt_area (float64[D]) = w * h,
    gt_box (float64[G, 4]) xywh, gt_area (float64[G]) the annotation's ``area`` field,
    gt_crowd (bool[G]), gt_counts_as_match (bool[G]): False only for a gt whose id is 0 in
        bug-for-bug mode (pycocotools stores the gt id as the match and tests it for truth).
    area_rng (float64[A, 2]) inclusive [lo, hi]; iou_thrs (float64[T]).
    Returns state (int8[A, T, D]): TP, FP or IGNORED per detection.

    Per group and area range: a gt is ignored when it is a crowd or its area lies outside
    [lo, hi]; the gts are stable-sorted non-ignored first. For each threshold t and each
    detection in order: best = min(t, 1 - 1e-10), m = -1; walk the gts: skip one already
    matched unless it is a crowd; stop at the first ignored gt once m is a non-ignored gt;
    skip when IoU < best; otherwise best = IoU, m = this gt (so equal IoU: the later gt wins).
    A matched detection takes its gt's ignore flag; an unmatched one is ignored when its own
    area lies outside [lo, hi].
    """
    n_groups = group_dt_start.shape[0]
    n_area = area_rng.shape[0]
    n_thr = iou_thrs.shape[0]
    n_dt = dt_box.shape[0]
    state = np.zeros((n_area, n_thr, n_dt), dtype=np.int8)
    for grp in range(n_groups):
        d0 = group_dt_start[grp]
        d1 = group_dt_end[grp]
        g0 = group_gt_start[grp]
        g1 = group_gt_end[grp]
        nd = d1 - d0
        ng = g1 - g0
        if nd == 0:
            continue
        ious = coco_box_iou(dt_box[d0:d1], gt_box[g0:g1], gt_crowd[g0:g1])
        gt_ig = np.empty(ng, dtype=np.bool_)
        order = np.empty(ng, dtype=np.int64)      # gts, non-ignored first (stable)
        gt_matched = np.empty(ng, dtype=np.bool_)
        for a in range(n_area):
            lo = area_rng[a, 0]
            hi = area_rng[a, 1]
            n_keep = 0
            for g in range(ng):
                ar = gt_area[g0 + g]
                gt_ig[g] = gt_crowd[g0 + g] or ar < lo or ar > hi
                if not gt_ig[g]:
                    order[n_keep] = g
                    n_keep += 1
            j = n_keep
            for g in range(ng):
                if gt_ig[g]:
                    order[j] = g
                    j += 1
            for t in range(n_thr):
                gt_matched[:] = False
                thr = min(iou_thrs[t], 1.0 - 1e-10)
                for d in range(nd):
                    best = thr
                    m = -1
                    for j in range(ng):
                        g = order[j]
                        if gt_matched[g] and not gt_crowd[g0 + g]:
                            continue
                        if m > -1 and not gt_ig[m] and gt_ig[g]:
                            break
                        if ious[d, g] < best:
                            continue
                        best = ious[d, g]
                        m = g
                    ar = dt_area[d0 + d]
                    out_of_range = ar < lo or ar > hi
                    if m == -1:
                        ignored = out_of_range
                        code = FP
                    else:
                        gt_matched[m] = True
                        if gt_counts_as_match[g0 + m]:
                            ignored = gt_ig[m]
                            code = TP
                        else:
                            ignored = gt_ig[m] or out_of_range
                            code = FP
                    state[a, t, d0 + d] = IGNORED if ignored else code
    return state


@njit(cache=True)
def coco_accumulate(cat_start, cat_end, dt_rank, dt_score, state, n_pos,
                    rec_thrs, max_dets, bug_for_bug):
    """Precision, recall and score arrays from the matching states, as pycocotools.

    cat_start, cat_end (int64[K]): ranges of the detections of each category, sorted by
        descending score (stable: ties keep image order, then per-image rank).
    dt_rank (int64[D]): rank of the detection inside its (image, category) group.
    dt_score (float64[D]); state (int8[A, T, D]) from :func:`coco_match`;
    n_pos (int64[K, A]): number of non-ignored gts; rec_thrs (float64[R]);
    max_dets (int64[M]); bug_for_bug: pycocotools' arithmetic (True) or faster-coco-eval's.
    Returns precision (float64[T, R, K, A, M]), recall (float64[T, K, A, M]),
    scores (float64[T, R, K, A, M]); entries with no non-ignored gt stay -1.

    For the detections kept by maxDet (rank < maxDet), in order, with ignored ones kept as
    positions that add neither a TP nor an FP:
        rc[i] = TP_cum[i] / n_pos;   pr[i] = TP_cum[i] / (FP_cum[i] + TP_cum[i] + eps)
        (bug_for_bug, pycocotools: eps = np.spacing(1); otherwise faster-coco-eval's
        TP_cum / (TP_cum + FP_cum), and 0 while no detection has counted yet)
        recall = rc[-1] (0 with no detections); pr[i-1] = max(pr[i-1], pr[i]) right to left;
        precision[r] = pr[first i with rc[i] >= rec_thrs[r]], 0 where that index runs past the
        end -- pycocotools stops filling at the first such r (the rest stay 0 even if
        rec_thrs is not sorted), faster-coco-eval checks every r.
    """
    n_cat = cat_start.shape[0]
    n_area = state.shape[0]
    n_thr = state.shape[1]
    n_rec = rec_thrs.shape[0]
    n_md = max_dets.shape[0]
    eps = np.spacing(1.0) if bug_for_bug else 0.0
    precision = np.full((n_thr, n_rec, n_cat, n_area, n_md), -1.0)   # -1: no non-ignored gt
    recall = np.full((n_thr, n_cat, n_area, n_md), -1.0)
    scores = np.full((n_thr, n_rec, n_cat, n_area, n_md), -1.0)
    max_len = 0
    for k in range(n_cat):
        max_len = max(max_len, cat_end[k] - cat_start[k])
    idx = np.empty(max_len, dtype=np.int64)
    rc = np.empty(max_len)
    pr = np.empty(max_len)
    for k in range(n_cat):
        for a in range(n_area):
            npig = n_pos[k, a]
            if npig == 0:
                continue
            for m in range(n_md):
                nd = 0
                for i in range(cat_start[k], cat_end[k]):
                    if dt_rank[i] < max_dets[m]:
                        idx[nd] = i
                        nd += 1
                for t in range(n_thr):
                    tp = 0.0
                    fp = 0.0
                    for i in range(nd):
                        s = state[a, t, idx[i]]
                        if s == TP:
                            tp += 1.0
                        elif s == FP:
                            fp += 1.0
                        rc[i] = tp / npig
                        if bug_for_bug:
                            pr[i] = tp / (fp + tp + eps)
                        elif tp + fp > 0.0:
                            pr[i] = tp / (tp + fp)
                        else:
                            pr[i] = 0.0
                    recall[t, k, a, m] = rc[nd - 1] if nd > 0 else 0.0
                    for i in range(nd - 1, 0, -1):
                        if pr[i] > pr[i - 1]:
                            pr[i - 1] = pr[i]
                    for r in range(n_rec):
                        precision[t, r, k, a, m] = 0.0
                        scores[t, r, k, a, m] = 0.0
                    for r in range(n_rec):
                        # searchsorted(rc[:nd], rec_thrs[r], side="left")
                        lo = 0
                        hi = nd
                        v = rec_thrs[r]
                        while lo < hi:
                            mid = (lo + hi) // 2
                            if rc[mid] < v:
                                lo = mid + 1
                            else:
                                hi = mid
                        if lo >= nd:
                            if bug_for_bug:
                                break
                            continue
                        precision[t, r, k, a, m] = pr[lo]
                        scores[t, r, k, a, m] = dt_score[idx[lo]]
    return precision, recall, scores
