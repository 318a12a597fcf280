"""Numba kernel for the pairwise IoU matrix of two sets of (x1, y1, x2, y2) boxes.

Same operations, in the same order and dtype, as torchvision's ``box_iou``::

    area1[i] = (x2 - x1) * (y2 - y1)        area2[j] likewise
    w = max(0, min(x2i, x2j) - max(x1i, x1j))   h likewise
    inter = w * h ;  union = area1[i] + area2[j] - inter ;  iou = inter / union

except one documented convention: where union == 0 (two zero-area boxes) the IoU is 0, where
torchvision gives 0 / 0 = NaN. Each output element is written once; rows run in parallel
(``prange`` over i: the rows are independent outputs).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["box_iou_kernel"]


@njit(cache=True, parallel=True, error_model="numpy")
def box_iou_kernel(boxes1, boxes2, out):
    """out[i, j] = IoU(boxes1[i], boxes2[j]); boxes float32 or float64, out of the same dtype."""
    n = boxes1.shape[0]
    m = boxes2.shape[0]
    # Columns of boxes2 as contiguous arrays, so the inner loop over j streams (and vectorises).
    bx1 = np.ascontiguousarray(boxes2[:, 0])
    by1 = np.ascontiguousarray(boxes2[:, 1])
    bx2 = np.ascontiguousarray(boxes2[:, 2])
    by2 = np.ascontiguousarray(boxes2[:, 3])
    area2 = (bx2 - bx1) * (by2 - by1)
    for i in prange(n):
        ax1 = boxes1[i, 0]
        ay1 = boxes1[i, 1]
        ax2 = boxes1[i, 2]
        ay2 = boxes1[i, 3]
        area1 = (ax2 - ax1) * (ay2 - ay1)
        zero = ax1 - ax1
        row = out[i]
        for j in range(m):
            w = min(ax2, bx2[j]) - max(ax1, bx1[j])
            h = min(ay2, by2[j]) - max(ay1, by1[j])
            w = max(w, zero)  # clamp(min=0)
            h = max(h, zero)
            inter = w * h
            union = area1 + area2[j] - inter
            iou = inter / union
            row[j] = iou if union != zero else zero
