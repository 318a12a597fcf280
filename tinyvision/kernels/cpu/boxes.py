"""The pairwise IoU matrix of two sets of (x1, y1, x2, y2) boxes: a plain-loop reference, then
the fast Numba kernel with the same signature (``box_iou``, chosen by ``kernels/dispatch.py``).

Same operations, in the same order and dtype, as torchvision's ``box_iou``::

    area1[i] = (x2 - x1) * (y2 - y1)        area2[j] likewise
    w = max(0, min(x2i, x2j) - max(x1i, x1j))   h likewise
    inter = w * h ;  union = area1[i] + area2[j] - inter ;  iou = inter / union

except one documented convention: where union == 0 (two zero-area boxes) the IoU is 0, where
torchvision gives 0 / 0 = NaN. Each output element is written once.

Two compiled entry points with one row routine, picked by ``box_iou``: ``box_iou_kernel`` runs
the rows in parallel (``prange`` over i: the rows are independent outputs) and
``box_iou_kernel_serial`` in one thread — for all but very large matrices, where starting the
thread pool costs more than the work.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["box_iou_reference", "box_iou", "box_iou_kernel", "box_iou_kernel_serial"]


def box_iou_reference(boxes1, boxes2):
    """IoU[i, j] by two plain loops over NumPy scalars of the boxes' dtype (float32/float64):
    the formula above, in the same order, with IoU = 0 where the union is 0."""
    zero = boxes1.dtype.type(0)
    out = np.zeros((len(boxes1), len(boxes2)), dtype=boxes1.dtype)
    for i in range(len(boxes1)):
        ax1, ay1, ax2, ay2 = boxes1[i]
        area_a = (ax2 - ax1) * (ay2 - ay1)
        for j in range(len(boxes2)):
            bx1, by1, bx2, by2 = boxes2[j]
            area_b = (bx2 - bx1) * (by2 - by1)
            w = max(min(ax2, bx2) - max(ax1, bx1), zero)  # overlap width, 0 if disjoint
            h = max(min(ay2, by2) - max(ay1, by1), zero)
            inter = w * h
            union = area_a + area_b - inter
            out[i, j] = inter / union if union != zero else zero
    return out


# Below this many outputs (64 MB of float32) the serial kernel is used: the loop streams at
# several G elements/s on one core, and a parallel region's start and barrier cost more than
# the work — far more on a loaded machine, where a waiting thread may miss a whole time slice.
PARALLEL_MIN_ELEMENTS = 1 << 24


@njit(cache=True, error_model="numpy", inline="always")
def _iou_row(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, area2, row):
    """row[j] = IoU(box a, box j of the second set), for every j."""
    area1 = (ax2 - ax1) * (ay2 - ay1)
    zero = ax1 - ax1
    for j in range(row.shape[0]):
        w = min(ax2, bx2[j]) - max(ax1, bx1[j])
        h = min(ay2, by2[j]) - max(ay1, by1[j])
        w = max(w, zero)  # clamp(min=0): disjoint boxes have no overlap
        h = max(h, zero)
        inter = w * h
        union = area1 + area2[j] - inter
        iou = inter / union
        row[j] = iou if union != zero else zero


@njit(cache=True)
def _columns(boxes2):
    # The columns of the second set as contiguous arrays, so the loop over j streams.
    bx1 = np.ascontiguousarray(boxes2[:, 0])
    by1 = np.ascontiguousarray(boxes2[:, 1])
    bx2 = np.ascontiguousarray(boxes2[:, 2])
    by2 = np.ascontiguousarray(boxes2[:, 3])
    return bx1, by1, bx2, by2, (bx2 - bx1) * (by2 - by1)


@njit(cache=True, parallel=True, error_model="numpy")
def box_iou_kernel(boxes1, boxes2, out):
    """out[i, j] = IoU(boxes1[i], boxes2[j]); boxes float32 or float64, out of the same dtype."""
    bx1, by1, bx2, by2, area2 = _columns(boxes2)
    for i in prange(boxes1.shape[0]):
        _iou_row(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], bx1, by1, bx2, by2, area2, out[i])


@njit(cache=True, error_model="numpy")
def box_iou_kernel_serial(boxes1, boxes2, out):
    """As :func:`box_iou_kernel`, in one thread."""
    bx1, by1, bx2, by2, area2 = _columns(boxes2)
    for i in range(boxes1.shape[0]):
        _iou_row(boxes1[i, 0], boxes1[i, 1], boxes1[i, 2], boxes1[i, 3], bx1, by1, bx2, by2, area2, out[i])


def box_iou(boxes1, boxes2):
    """The fast kernel: (N, 4), (M, 4) contiguous float arrays of one dtype -> (N, M); the
    parallel kernel for very large matrices, else the serial one."""
    out = np.empty((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)
    if out.size == 0:
        return out
    kernel = box_iou_kernel if out.size >= PARALLEL_MIN_ELEMENTS else box_iou_kernel_serial
    kernel(boxes1, boxes2, out)
    return out
