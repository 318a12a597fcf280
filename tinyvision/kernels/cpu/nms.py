"""Numba kernels for greedy non-maximum suppression (NMS): the plain-loop references first, then
the fast kernels with the same signatures (``nms_sorted``, ``batched_nms_grouped``: the entries
of ``kernels/dispatch.py``), then the two compiled loops they choose between.

All kernels work on boxes that the caller has already

* validated (finite coordinates, ``x2 >= x1`` and ``y2 >= y1``, float32 or float64), and
* sorted by decreasing score (the order that defines "greedy"),

laid out as four contiguous coordinate columns ``x1, y1, x2, y2`` of length n. They write
``keep[r] = 1`` for every sorted position r that survives, 0 otherwise.

The rule (torchvision's): walk the boxes in sorted order; a box is kept when no box kept
before it has ``IoU > iou_threshold`` with it. IoU is computed in the boxes' own dtype with
exactly the operations of torchvision's CPU kernel::

    inter = max(0, min(x2i, x2j) - max(x1i, x1j)) * max(0, min(y2i, y2j) - max(y1i, y1j))
    iou   = inter / (area_i + area_j - inter)            # area = (x2 - x1) * (y2 - y1)

so the decision agrees bit for bit, also when the IoU lands exactly on the threshold. Two
zero-area boxes that do not overlap give 0 / 0 = NaN, and ``NaN > t`` is false: they never
suppress each other (``error_model="numpy"`` makes the division return NaN instead of raising).

``nms_sorted_reference`` is the rule itself: box j is kept when no kept box i < j has
IoU > t, O(n^2). Two kernels implement the same rule fast:

``nms_sorted_greedy``  the textbook loop: each kept box is compared with every later box that is
                       still alive, O(n * kept). The list of live boxes is compacted as we go so
                       suppressed boxes are never looked at again.
``nms_sorted_grid``    the same decisions without comparing boxes that cannot matter: kept boxes
                       are filed in a uniform grid by their top-left corner; a candidate scans
                       only the cells where a kept box able to suppress it can lie (bounds derived
                       in the kernel's docstring from IoU > t), and stops at the first one that
                       suppresses it. Valid when ``iou_threshold >= 0``. Never builds an n x n
                       matrix; memory O(n).
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "nms_sorted_reference",
    "batched_nms_grouped_reference",
    "nms_sorted",
    "batched_nms_grouped",
    "nms_sorted_greedy",
    "nms_sorted_grid",
    "batched_nms_sorted",
]

GRID_MIN_N = 64  # below this many boxes the plain greedy loop is as fast as the grid


@njit(cache=True, error_model="numpy", inline="always")
def _iou(ax1, ay1, ax2, ay2, aarea, bx1, by1, bx2, by2, barea, zero):
    """IoU of box a (the kept one) and box b, in the boxes' dtype, as torchvision's loop."""
    xx1 = bx1 if ax1 < bx1 else ax1  # std::max(ax1, bx1)
    yy1 = by1 if ay1 < by1 else ay1
    xx2 = bx2 if bx2 < ax2 else ax2  # std::min(ax2, bx2)
    yy2 = by2 if by2 < ay2 else ay2
    w = xx2 - xx1
    h = yy2 - yy1
    if not (zero < w):
        w = zero
    if not (zero < h):
        h = zero
    inter = w * h
    return inter / (aarea + barea - inter)


# ======================================================================================
# Plain-loop references: keep (uint8[n]) from score-sorted coordinate columns
# ======================================================================================
@njit(cache=True, error_model="numpy")
def nms_sorted_reference(x1, y1, x2, y2, iou_threshold):
    """keep[j] = 1 unless some kept box i < j (a higher score) has IoU(i, j) > iou_threshold."""
    n = x1.shape[0]
    keep = np.zeros(n, dtype=np.uint8)
    for j in range(n):
        zero = x1[j] - x1[j]
        area_j = (x2[j] - x1[j]) * (y2[j] - y1[j])
        keep[j] = 1
        for i in range(j):
            if keep[i] == 1:
                area_i = (x2[i] - x1[i]) * (y2[i] - y1[i])
                if _iou(x1[i], y1[i], x2[i], y2[i], area_i, x1[j], y1[j], x2[j], y2[j], area_j, zero) > iou_threshold:
                    keep[j] = 0
                    break
    return keep


def batched_nms_grouped_reference(x1, y1, x2, y2, starts, iou_threshold):
    """NMS by :func:`nms_sorted_reference` on each segment [starts[s], starts[s + 1]) alone
    (boxes grouped by category, score-sorted inside each group)."""
    keep = np.zeros(x1.shape[0], dtype=np.uint8)
    for s in range(len(starts) - 1):
        a, b = starts[s], starts[s + 1]
        keep[a:b] = nms_sorted_reference(x1[a:b], y1[a:b], x2[a:b], y2[a:b], iou_threshold)
    return keep


# ======================================================================================
# Fast kernels (same signatures): pick the compiled loop for the input
# ======================================================================================
def nms_sorted(x1, y1, x2, y2, iou_threshold):
    """keep (uint8[n]): the grid kernel for iou_threshold >= 0 and more than GRID_MIN_N boxes,
    else the textbook greedy loop (also the only one valid for a negative threshold)."""
    keep = np.zeros(x1.shape[0], dtype=np.uint8)
    if iou_threshold >= 0.0 and x1.shape[0] > GRID_MIN_N:
        nms_sorted_grid(x1, y1, x2, y2, iou_threshold, keep)
    else:
        nms_sorted_greedy(x1, y1, x2, y2, iou_threshold, keep)
    return keep


def batched_nms_grouped(x1, y1, x2, y2, starts, iou_threshold):
    """keep (uint8[n]): NMS on each segment, in one compiled loop (:func:`batched_nms_sorted`)."""
    keep = np.zeros(x1.shape[0], dtype=np.uint8)
    batched_nms_sorted(x1, y1, x2, y2, starts, iou_threshold, iou_threshold >= 0.0, keep)
    return keep


# ======================================================================================
# The compiled loops (write keep[r] into the given array)
# ======================================================================================
@njit(cache=True, error_model="numpy")
def nms_sorted_greedy(x1, y1, x2, y2, iou_threshold, keep):
    """Textbook greedy NMS on score-sorted boxes; writes keep[r] in {0, 1}. O(n * kept)."""
    n = x1.shape[0]
    if n == 0:
        return
    zero = x1[0] - x1[0]
    areas = (x2 - x1) * (y2 - y1)
    alive = np.arange(n)  # sorted positions not yet suppressed, in order
    n_alive = n
    while n_alive > 0:
        i = alive[0]
        keep[i] = 1
        ix1, iy1, ix2, iy2, ia = x1[i], y1[i], x2[i], y2[i], areas[i]
        m = 0  # compact the survivors of box i to the front of `alive`
        for t in range(1, n_alive):
            j = alive[t]
            ovr = _iou(ix1, iy1, ix2, iy2, ia, x1[j], y1[j], x2[j], y2[j], areas[j], zero)
            if not (ovr > iou_threshold):
                alive[m] = j
                m += 1
        n_alive = m


@njit(cache=True, inline="always")
def _cell(v, lo, inv, g):
    """Grid index floor((v - lo) * inv) clipped to [0, g - 1] — clipped in floating point first,
    so that a far-away v can never overflow the integer conversion. Monotone in v."""
    f = (v - lo) * inv
    if f <= 0.0:
        return 0
    if f >= g - 1:
        return g - 1
    return int(f)


@njit(cache=True, error_model="numpy")
def nms_sorted_grid(x1, y1, x2, y2, iou_threshold, keep):
    """Greedy NMS on score-sorted boxes, comparing a candidate only with the kept boxes that
    could possibly suppress it. Requires iou_threshold >= 0; decisions identical to
    ``nms_sorted_greedy``.

    Where can a kept box k that suppresses box j be? Let w = x2 - x1 (exact on the given
    coordinates), t the threshold. Two necessary conditions, in exact arithmetic:

    (a) IoU > t >= 0 needs a positive intersection: x1k < x2j and x1k > x1j - wk.
    (b) for t > 0: IoU <= ox / wk and IoU <= ox / wj (ox = overlap of the x-intervals, oy <= h),
        so ox > t max(wj, wk); and IoU <= min(wj, wk) / max(wj, wk) gives wk < wj / t. With
        ox <= max(wj, wk) - |x1k - x1j| this yields |x1k - x1j| < (1 - t) / t * wj.

    The same holds in y. So every kept box is filed once, in the grid cell of its top-left
    corner (x1, y1), and candidate j scans only the cells of the window those bounds allow,
    stopping at the first box that suppresses it. The float IoU can exceed the exact one by a
    few ulps, so the bounds use t (1 - 1e-5) and the window is widened by a relative 1e-7:
    the window is a superset, never a miss. For small thresholds (t < 0.2) the window is set by
    (a), i.e. by the widest filed box, so kept boxes much larger than average (wider or taller
    than 4x the mean) are not filed but put on a list that every candidate checks directly.
    Memory O(n + cells), cells <= ~n; no n x n matrix.
    """
    n = x1.shape[0]
    if n == 0:
        return
    zero = x1[0] - x1[0]
    areas = (x2 - x1) * (y2 - y1)

    t = iou_threshold * (1.0 - 1e-5)
    ratio = (1.0 - t) / t if t > 0.0 else 0.0           # bound (b): |dx1| < ratio * wj

    mean_w = 0.0
    mean_h = 0.0
    for r in range(n):
        mean_w += float(x2[r]) - float(x1[r])
        mean_h += float(y2[r]) - float(y1[r])
    mean_w /= n
    mean_h /= n
    # Boxes wider or taller than 4x the mean go on the "big" list when the windows are set by
    # bound (a), i.e. by the widest filed box (t < 0.2, ratio > 4); with a larger t, bound (b)
    # limits every window to a multiple of the candidate's own size and every box is filed.
    use_big = ratio > 4.0 or t <= 0.0
    cap_w = 4.0 * mean_w if use_big else np.inf
    cap_h = 4.0 * mean_h if use_big else np.inf

    # The grid over top-left corners: cells about half a typical search radius wide,
    # at most ~n cells in all.
    lo_x = float(x1.min())
    lo_y = float(y1.min())
    span_x = float(x1.max()) - lo_x
    span_y = float(y1.max()) - lo_y
    g_max = int(np.sqrt(n)) + 1
    shrink = min(1.0, ratio) if t > 0.0 else 1.0
    cell_w = 0.5 * mean_w * shrink
    cell_h = 0.5 * mean_h * shrink
    gx = 1
    gy = 1
    if cell_w > 0.0 and span_x > 0.0:
        gx = int(min(float(g_max), max(1.0, span_x / cell_w)))  # (float first: no overflow)
    if cell_h > 0.0 and span_y > 0.0:
        gy = int(min(float(g_max), max(1.0, span_y / cell_h)))
    # cell of coordinate v: _cell(v, lo, inv, g), monotone in v
    inv_x = gx / span_x if span_x > 0.0 else 0.0
    inv_y = gy / span_y if span_y > 0.0 else 0.0

    # Each cell owns a contiguous block of slots, as many as boxes have their corner in it
    # (an upper bound on the kept ones); kept boxes are copied into their cell's block in
    # score order, so a scan reads consecutive memory instead of chasing pointers.
    cell_of = np.empty(n, dtype=np.int64)
    start = np.zeros(gx * gy + 1, dtype=np.int64)
    for r in range(n):
        cell_of[r] = _cell(float(y1[r]), lo_y, inv_y, gy) * gx + _cell(float(x1[r]), lo_x, inv_x, gx)
        start[cell_of[r] + 1] += 1
    for c in range(gx * gy):
        start[c + 1] += start[c]
    fill = np.zeros(gx * gy, dtype=np.int64)             # kept boxes filed per cell so far
    kx1 = np.empty_like(x1)                               # filed boxes, cell by cell
    ky1 = np.empty_like(y1)
    kx2 = np.empty_like(x2)
    ky2 = np.empty_like(y2)
    ka = np.empty_like(areas)
    big = np.empty(n, dtype=np.int64)
    n_big = 0
    filed_w = 0.0                                         # widest / tallest box filed so far
    filed_h = 0.0

    for j in range(n):
        jx1, jy1, jx2, jy2, ja = x1[j], y1[j], x2[j], y2[j], areas[j]
        wj = float(jx2) - float(jx1)
        hj = float(jy2) - float(jy1)

        suppressed = False
        for b in range(n_big):                            # the few big kept boxes
            k = big[b]
            if _iou(x1[k], y1[k], x2[k], y2[k], areas[k], jx1, jy1, jx2, jy2, ja, zero) > iou_threshold:
                suppressed = True
                break

        if not suppressed:
            # window of corners (x1k, y1k) allowed by (a) and (b), widened slightly
            fx1 = float(jx1)
            fy1 = float(jy1)
            left = filed_w                                # (a): x1j - wk < x1k < x2j
            right = wj
            up = filed_h
            down = hj
            if t > 0.0:                                   # (b): |x1k - x1j| < ratio * wj
                left = min(left, ratio * wj)
                right = min(right, ratio * wj)
                up = min(up, ratio * hj)
                down = min(down, ratio * hj)
            mx = 1e-7 * (abs(fx1) + wj + filed_w) + 1e-300
            my = 1e-7 * (abs(fy1) + hj + filed_h) + 1e-300
            cx0 = _cell(fx1 - left - mx, lo_x, inv_x, gx)
            cx1 = _cell(fx1 + right + mx, lo_x, inv_x, gx)
            cy0 = _cell(fy1 - up - my, lo_y, inv_y, gy)
            cy1 = _cell(fy1 + down + my, lo_y, inv_y, gy)
            for cy in range(cy0, cy1 + 1):
                for cx in range(cx0, cx1 + 1):
                    c = cy * gx + cx
                    for q in range(start[c], start[c] + fill[c]):
                        if _iou(kx1[q], ky1[q], kx2[q], ky2[q], ka[q], jx1, jy1, jx2, jy2, ja, zero) > iou_threshold:
                            suppressed = True
                            break
                    if suppressed:
                        break
                if suppressed:
                    break
        if suppressed:
            continue

        # j survives every earlier kept box: keep it, and file it for the boxes below it.
        keep[j] = 1
        if wj > cap_w or hj > cap_h:
            big[n_big] = j
            n_big += 1
        else:
            c = cell_of[j]
            q = start[c] + fill[c]
            fill[c] += 1
            kx1[q], ky1[q], kx2[q], ky2[q], ka[q] = jx1, jy1, jx2, jy2, ja
            filed_w = max(filed_w, wj)
            filed_h = max(filed_h, hj)


@njit(cache=True, error_model="numpy")
def batched_nms_sorted(x1, y1, x2, y2, starts, iou_threshold, use_grid, keep):
    """NMS independently on each segment [starts[s], starts[s + 1]) of class-grouped boxes.

    Within a segment the boxes are sorted by decreasing score. ``use_grid`` picks the kernel
    (the grid kernel needs iou_threshold >= 0).
    """
    for s in range(starts.shape[0] - 1):
        a = starts[s]
        b = starts[s + 1]
        if use_grid and b - a > 64:
            nms_sorted_grid(x1[a:b], y1[a:b], x2[a:b], y2[a:b], iou_threshold, keep[a:b])
        else:
            nms_sorted_greedy(x1[a:b], y1[a:b], x2[a:b], y2[a:b], iou_threshold, keep[a:b])
