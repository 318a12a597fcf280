"""The box-IoU kernel for CuPy arrays: the signature of ``kernels/cpu/boxes.py::box_iou``, as
whole-array code (torchvision's ``_box_inter_union`` step for step, so the result equals the
CPU kernel bit for bit). Runs on NumPy arrays too, which is how the tests check it without a GPU.

    area1[i] = (x2 - x1) * (y2 - y1)        area2[j] likewise
    inter = max(0, min(x2i, x2j) - max(x1i, x1j)) * max(0, min(y2i, y2j) - max(y1i, y1j))
    iou = inter / (area1[i] + area2[j] - inter),   0 where that union is 0
"""
from __future__ import annotations

from ...backend import get_array_module

__all__ = ["box_iou"]


def box_iou(boxes1, boxes2):
    """(N, 4), (M, 4) float32/float64 boxes of one dtype -> IoU (N, M)."""
    xp = get_array_module(boxes1, boxes2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])   # (N,)
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])   # (M,)
    lt = xp.maximum(boxes1[:, None, :2], boxes2[None, :, :2])               # (N, M, 2)
    rb = xp.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])               # (N, M, 2)
    wh = xp.maximum(rb - lt, boxes1.dtype.type(0))                          # disjoint -> 0
    inter = wh[:, :, 0] * wh[:, :, 1]                                       # (N, M)
    union = area1[:, None] + area2[None, :] - inter                         # (N, M)
    zero = union == 0
    return xp.where(zero, boxes1.dtype.type(0), inter / xp.where(zero, boxes1.dtype.type(1), union))
