"""Numba kernels for greedy non-maximum suppression (NMS).

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

Two kernels implement the same rule:

``nms_sorted_greedy``  the textbook loop: each kept box is compared with every later box that is
                       still alive, O(n * kept). The list of live boxes is compacted as we go so
                       suppressed boxes are never looked at again.
``nms_sorted_grid``    the same decisions without comparing boxes that cannot overlap: kept boxes
                       are filed in a uniform grid of cells; a candidate is compared only with the
                       kept boxes filed in the cells it covers, and stops at the first one that
                       suppresses it. Valid when ``iou_threshold >= 0`` (then suppression needs
                       a positive intersection, and two boxes that intersect share a cell). Never
                       builds an n x n matrix; memory is O(n + filed entries).
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["nms_sorted_greedy", "nms_sorted_grid", "batched_nms_sorted"]

# A kept box that covers more cells than this is not filed cell by cell but put on a short
# list that every candidate checks directly (a few huge boxes must not flood every cell).
_MAX_CELLS_PER_BOX = 64


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


@njit(cache=True)
def _grow(a):
    b = np.empty(2 * a.shape[0], dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True, error_model="numpy")
def nms_sorted_grid(x1, y1, x2, y2, iou_threshold, keep):
    """Greedy NMS on score-sorted boxes with a uniform grid over the kept boxes.

    Requires iou_threshold >= 0. Decisions are identical to ``nms_sorted_greedy``.
    """
    n = x1.shape[0]
    if n == 0:
        return
    zero = x1[0] - x1[0]
    areas = (x2 - x1) * (y2 - y1)

    # --- the grid: cells about one mean box wide, at most ~n cells in all -------------
    lo_x = float(x1.min())
    lo_y = float(y1.min())
    span_x = float(x2.max()) - lo_x
    span_y = float(y2.max()) - lo_y
    mean_w = 0.0
    mean_h = 0.0
    for r in range(n):
        mean_w += float(x2[r]) - float(x1[r])
        mean_h += float(y2[r]) - float(y1[r])
    mean_w /= n
    mean_h /= n
    g_max = int(np.sqrt(n)) + 1  # per axis, so gx * gy <= ~n
    gx = 1
    gy = 1
    if mean_w > 0.0 and span_x > 0.0:
        gx = min(g_max, max(1, int(span_x / mean_w)))
    if mean_h > 0.0 and span_y > 0.0:
        gy = min(g_max, max(1, int(span_y / mean_h)))
    # cell index of coordinate v: floor((v - lo) * inv), clipped to [0, g - 1]. This map is
    # monotone in v, so two boxes whose intervals overlap share at least one cell index.
    inv_x = gx / span_x if span_x > 0.0 else 0.0
    inv_y = gy / span_y if span_y > 0.0 else 0.0

    # Linked lists per cell: head[c] -> entry e -> nxt[e] -> ... ; entry_box[e] = sorted position.
    head = np.full(gx * gy, -1, dtype=np.int64)
    cap = 4 * n + 16
    nxt = np.empty(cap, dtype=np.int64)
    entry_box = np.empty(cap, dtype=np.int64)
    n_entries = 0
    big = np.empty(16, dtype=np.int64)  # kept boxes covering too many cells
    n_big = 0

    for j in range(n):
        jx1, jy1, jx2, jy2, ja = x1[j], y1[j], x2[j], y2[j], areas[j]
        cx0 = min(gx - 1, int((float(jx1) - lo_x) * inv_x))
        cx1 = min(gx - 1, int((float(jx2) - lo_x) * inv_x))
        cy0 = min(gy - 1, int((float(jy1) - lo_y) * inv_y))
        cy1 = min(gy - 1, int((float(jy2) - lo_y) * inv_y))

        suppressed = False
        # 1) the few huge kept boxes
        for t in range(n_big):
            k = big[t]
            ovr = _iou(x1[k], y1[k], x2[k], y2[k], areas[k], jx1, jy1, jx2, jy2, ja, zero)
            if ovr > iou_threshold:
                suppressed = True
                break
        # 2) the kept boxes filed in the cells that j covers (first hit stops the search)
        if not suppressed:
            for cy in range(cy0, cy1 + 1):
                for cx in range(cx0, cx1 + 1):
                    e = head[cy * gx + cx]
                    while e >= 0:
                        k = entry_box[e]
                        ovr = _iou(x1[k], y1[k], x2[k], y2[k], areas[k], jx1, jy1, jx2, jy2, ja, zero)
                        if ovr > iou_threshold:
                            suppressed = True
                            break
                        e = nxt[e]
                    if suppressed:
                        break
                if suppressed:
                    break
        if suppressed:
            continue

        # j survives every earlier kept box: keep it and file it.
        keep[j] = 1
        n_cells = (cx1 - cx0 + 1) * (cy1 - cy0 + 1)
        if n_cells > _MAX_CELLS_PER_BOX:
            if n_big == big.shape[0]:
                big = _grow(big)
            big[n_big] = j
            n_big += 1
            continue
        while n_entries + n_cells > nxt.shape[0]:
            nxt = _grow(nxt)
            entry_box = _grow(entry_box)
        for cy in range(cy0, cy1 + 1):
            for cx in range(cx0, cx1 + 1):
                c = cy * gx + cx
                entry_box[n_entries] = j
                nxt[n_entries] = head[c]
                head[c] = n_entries
                n_entries += 1


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
