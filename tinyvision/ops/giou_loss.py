"""Generalized IoU loss (torchvision.ops.generalized_box_iou_loss), differentiable.

Rezatofighi et al., "Generalized Intersection over Union: A Metric and A Loss for Bounding Box
Regression", CVPR 2019, https://arxiv.org/abs/1902.09630.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor, sum_to_shape
from ..backend import get_array_module
from ._utils import check_real

__all__ = ["generalized_box_iou_loss", "GeneralizedBoxIoULoss"]

_REDUCTIONS = ("none", "mean", "sum")


def _max_share(a, b):
    """How d max(a, b) splits between a and b: 1/0 where one is larger, 1/2 each on a tie
    (PyTorch's convention for torch.maximum / torch.max(a, b))."""
    tie = 0.5 * (a == b)
    return (a > b) + tie, (b > a) + tie


def _min_share(a, b):
    """Split of d min(a, b): 1 to the smaller, 1/2 each on a tie."""
    tie = 0.5 * (a == b)
    return (a < b) + tie, (b < a) + tie


def _reduce(loss, reduction):
    """torchvision's reductions: "mean" of no pairs is 0 (as 0 * sum), "sum", or "none"."""
    if reduction == "mean":
        return loss.mean() if loss.size > 0 else (0.0 * loss.sum())
    if reduction == "sum":
        return loss.sum()
    return loss


def _upstream(xp, gy, loss_shape, reduction, dtype):
    """dLoss/dL per pair: gy broadcast to the unreduced shape (divided by n for "mean")."""
    if reduction == "mean":
        gy = gy / max(int(np.prod(loss_shape)), 1)
    return xp.broadcast_to(gy, loss_shape).astype(dtype)


def _corners(xp, a, b):
    """Intersection corners k = (kx1, ky1, kx2, ky2) and enclosing corners c = (cx1, ...) of
    paired boxes a, b (lists of the four coordinate arrays)."""
    k = (xp.maximum(a[0], b[0]), xp.maximum(a[1], b[1]), xp.minimum(a[2], b[2]), xp.minimum(a[3], b[3]))
    c = (xp.minimum(a[0], b[0]), xp.minimum(a[1], b[1]), xp.maximum(a[2], b[2]), xp.maximum(a[3], b[3]))
    return k, c


def _paired_inter_union(xp, a, b, k):
    """m = [boxes overlap], I = m (kx2 - kx1)(ky2 - ky1), U = A_a + A_b - I (torchvision's
    ``_loss_inter_union``)."""
    kx1, ky1, kx2, ky2 = k
    m = (ky2 > ky1) & (kx2 > kx1)
    inter = xp.where(m, (kx2 - kx1) * (ky2 - ky1), 0 * kx1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return m, inter, union


def _inter_union_backward(xp, ga, gb, a, b, k, m, gU, gI):
    """Add to ga, gb the gradient reaching the coordinates through U (the two areas) and
    through I (the intersection corners, only where m), given gU = dLoss/dU, gI = dLoss/dI."""
    kx1, ky1, kx2, ky2 = k
    for grad, box in ((ga, a), (gb, b)):
        # d/dx2 (x2 - x1)(y2 - y1) = (y2 - y1), d/dx1 = -(y2 - y1); y alike
        wdt, hgt = box[2] - box[0], box[3] - box[1]
        grad[..., 0] -= gU * hgt
        grad[..., 2] += gU * hgt
        grad[..., 1] -= gU * wdt
        grad[..., 3] += gU * wdt
    g_kx2 = xp.where(m, gI * (ky2 - ky1), 0 * gI)
    g_ky2 = xp.where(m, gI * (kx2 - kx1), 0 * gI)
    _route_corners(ga, gb, a, b, ((0, -g_kx2, _max_share), (1, -g_ky2, _max_share),
                                  (2, g_kx2, _min_share), (3, g_ky2, _min_share)))


def _enclosing_backward(ga, gb, a, b, g_cx2, g_cy2):
    """Add the gradient of the enclosing corners (g(cx1) = -g(cx2), g(cy1) = -g(cy2))."""
    _route_corners(ga, gb, a, b, ((0, -g_cx2, _min_share), (1, -g_cy2, _min_share),
                                  (2, g_cx2, _max_share), (3, g_cy2, _max_share)))


def _route_corners(ga, gb, a, b, corners):
    """Each corner's gradient goes to the argument of its max/min that attained it."""
    for k, g_corner, share in corners:
        wa, wb = share(a[k], b[k])
        ga[..., k] += g_corner * wa
        gb[..., k] += g_corner * wb


class GeneralizedBoxIoULoss(Function):
    r"""GIoU loss of paired boxes, elementwise over the leading axes.

    Shapes: boxes1 (..., 4), boxes2 (..., 4) broadcastable, (x1, y1, x2, y2); loss (...) for
    reduction "none", () for "mean" / "sum". Let a = boxes1, b = boxes2 and, per pair,

        intersection corners  kx1 = max(ax1, bx1), ky1 = max(ay1, by1),
                              kx2 = min(ax2, bx2), ky2 = min(ay2, by2)
        m = [kx2 > kx1 and ky2 > ky1]            (the boxes truly overlap)
        I = m (kx2 - kx1)(ky2 - ky1)
        U = (ax2 - ax1)(ay2 - ay1) + (bx2 - bx1)(by2 - by1) - I
        enclosing corners     cx1 = min(ax1, bx1), cy1 = min(ay1, by1),
                              cx2 = max(ax2, bx2), cy2 = max(ay2, by2)
        C = (cx2 - cx1)(cy2 - cy1)
        L = 1 - [ I / (U + eps) - (C - U) / (C + eps) ]

    exactly torchvision's formula (eps keeps both ratios finite for degenerate boxes).

    Backward. With g = dLoss/dL per pair (g = gy for "sum", gy / n for "mean"):

        dL/dU |_I = I / (U + eps)^2 - 1 / (C + eps)                      =: gU / g
        dL/dI     = -1 / (U + eps) + dL/dU * dU/dI = -1 / (U + eps) - gU / g   (dU/dI = -1)
        dL/dC     = (U + eps) / (C + eps)^2                              =: gC / g

    then through the products and the corners:

        area of a:  g(ax2) += gU (ay2 - ay1),  g(ax1) -= gU (ay2 - ay1),
                    g(ay2) += gU (ax2 - ax1),  g(ay1) -= gU (ax2 - ax1)          (b likewise)
        I:          g(kx2) = m gI (ky2 - ky1) = -g(kx1),  g(ky2) = m gI (kx2 - kx1) = -g(ky1)
        C:          g(cx2) = gC (cy2 - cy1) = -g(cx1),    g(cy2) = gC (cx2 - cx1) = -g(cy1)

    and each corner's gradient goes to the argument of its max/min that attained it — half to
    each on a tie (PyTorch's subgradient for torch.max(a, b) / torch.min(a, b)); where m = 0
    the intersection corners get no gradient (I is the constant 0 there).
    """

    def __init__(self, reduction="none", eps=1e-7):
        self.reduction = reduction
        self.eps = eps

    def forward(self, boxes1, boxes2):
        xp = get_array_module(boxes1, boxes2)
        eps = self.eps
        a = [boxes1[..., k] for k in range(4)]   # ax1, ay1, ax2, ay2
        b = [boxes2[..., k] for k in range(4)]   # bx1, by1, bx2, by2
        k, (cx1, cy1, cx2, cy2) = _corners(xp, a, b)
        m, inter, union = _paired_inter_union(xp, a, b, k)
        iou = inter / (union + eps)
        area_c = (cx2 - cx1) * (cy2 - cy1)
        loss = 1 - (iou - (area_c - union) / (area_c + eps))
        self.save_for_backward(boxes1, boxes2, m, inter, union, area_c)
        self.loss_shape = loss.shape
        return _reduce(loss, self.reduction)

    def backward(self, gy):
        boxes1, boxes2, m, inter, union, area_c = self.saved
        xp = get_array_module(gy)
        eps = self.eps
        dt = union.dtype
        g = _upstream(xp, gy, self.loss_shape, self.reduction, dt)
        a = [boxes1[..., k] for k in range(4)]
        b = [boxes2[..., k] for k in range(4)]
        k, (cx1, cy1, cx2, cy2) = _corners(xp, a, b)

        u_eps = union + eps
        c_eps = area_c + eps
        gU = g * (inter / (u_eps * u_eps) - 1 / c_eps)
        gI = -g / u_eps - gU
        gC = g * u_eps / (c_eps * c_eps)

        ga = xp.zeros(g.shape + (4,), dtype=dt)
        gb = xp.zeros(g.shape + (4,), dtype=dt)
        _inter_union_backward(xp, ga, gb, a, b, k, m, gU, gI)
        # C = (cx2 - cx1)(cy2 - cy1): g(cx2) = gC (cy2 - cy1), g(cy2) = gC (cx2 - cx1)
        _enclosing_backward(ga, gb, a, b, gC * (cy2 - cy1), gC * (cx2 - cx1))
        return sum_to_shape(ga, boxes1.shape), sum_to_shape(gb, boxes2.shape)


def _float_input(x, name):
    """Tensors pass through; arrays/lists become float arrays (ints -> float32, as torchvision)."""
    if isinstance(x, Tensor):
        check_real(x.data, name)
        if x.data.dtype.kind != "f":
            return Tensor(x.data.astype(np.float32))
        return x
    xp = get_array_module(x)
    arr = xp.asarray(x)
    check_real(arr, name)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    return arr


def generalized_box_iou_loss(boxes1, boxes2, reduction: str = "none", eps: float = 1e-7):
    """Generalized IoU loss, ``1 - GIoU``, of paired boxes (torchvision's, differentiable).

    Args:
        boxes1, boxes2 (Tensor or array[..., 4]): (x1, y1, x2, y2), broadcastable against each
            other (typically both (N, 4): predictions and their targets).
        reduction (str): "none" (loss per pair, shape (...)), "mean" (0 for no pairs) or "sum".
        eps (float): added to U and C in the two ratios, as torchvision (default 1e-7).
    Returns:
        Tensor: ``L = 1 - I / (U + eps) + (C - U) / (C + eps)``; in [0, 2] for valid boxes, 0 for
        identical boxes (up to eps). Gradients flow to both inputs (see
        :class:`GeneralizedBoxIoULoss` for the derivation; ties in max/min split the gradient
        in halves, as PyTorch). Boxes with x2 < x1 are not refused (torchvision does not either).

    >>> import numpy as np
    >>> import tinyvision as tv
    >>> p = tv.tensor(np.array([[0., 0., 2., 2.]]), requires_grad=True)
    >>> loss = generalized_box_iou_loss(p, np.array([[1., 1., 3., 3.]]), reduction="sum")
    >>> round(float(loss), 6)
    1.079365
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    b1, b2 = _check_pair(boxes1, boxes2)
    return GeneralizedBoxIoULoss(reduction, eps)(b1, b2)


def _check_pair(boxes1, boxes2):
    """Float inputs of shapes (..., 4) that broadcast together."""
    b1 = _float_input(boxes1, "boxes1")
    b2 = _float_input(boxes2, "boxes2")
    s1 = tuple(b1.shape)
    s2 = tuple(b2.shape)
    if len(s1) < 1 or len(s2) < 1 or s1[-1] != 4 or s2[-1] != 4:
        raise ValueError(f"boxes1 and boxes2 must have shape (..., 4), got {s1} and {s2}")
    try:
        np.broadcast_shapes(s1, s2)
    except ValueError:
        raise ValueError(f"boxes1 {s1} and boxes2 {s2} do not broadcast against each other") from None
    return b1, b2
