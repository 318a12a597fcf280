"""Distance IoU loss (torchvision.ops.distance_box_iou_loss), differentiable.

Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box Regression",
AAAI 2020, https://arxiv.org/abs/1911.08287.
"""
from __future__ import annotations

from ..autograd import Function, sum_to_shape
from ..backend import get_array_module
from .giou_loss import (
    _REDUCTIONS,
    _check_pair,
    _corners,
    _enclosing_backward,
    _inter_union_backward,
    _paired_inter_union,
    _reduce,
    _upstream,
)

__all__ = ["distance_box_iou_loss", "DistanceBoxIoULoss"]


class DistanceBoxIoULoss(Function):
    r"""DIoU loss of paired boxes, elementwise over the leading axes.

    Shapes: boxes1 (..., 4), boxes2 (..., 4) broadcastable, (x1, y1, x2, y2); loss (...) for
    reduction "none", () for "mean" / "sum". With a = boxes1, b = boxes2, per pair

        I, U as in :class:`GeneralizedBoxIoULoss` (I counted only where the boxes overlap)
        enclosing box corners  cx1 = min(ax1, bx1), ..., cy2 = max(ay2, by2)
        D   = (cx2 - cx1)^2 + (cy2 - cy1)^2 + eps       (squared diagonal of the enclosing box)
        rho2 = (pa_x - pb_x)^2 + (pa_y - pb_y)^2,  p_x = (x1 + x2) / 2, p_y = (y1 + y2) / 2
        L   = 1 - I / (U + eps) + rho2 / D

    torchvision's formula (its ``_diou_iou_loss``).

    Backward, with g = dLoss/dL per pair:

        gU = g I / (U + eps)^2          gI = -g / (U + eps) - gU        (U = A_a + A_b - I)
        g(rho2) = g / D                 gD = -g rho2 / D^2
        centres:  g(pa_x) = 2 (pa_x - pb_x) g / D = -g(pb_x), and p_x = (x1 + x2) / 2 sends half
                  of it to x1 and half to x2 (y alike)
        D:        g(cx2) = 2 (cx2 - cx1) gD = -g(cx1),  g(cy2) = 2 (cy2 - cy1) gD = -g(cy1)
        I and the areas: as in :class:`GeneralizedBoxIoULoss`

    and max/min corners route their gradient to the argument that attained them (half each on
    a tie, PyTorch's convention).
    """

    def __init__(self, reduction="none", eps=1e-7):
        self.reduction = reduction
        self.eps = eps

    def forward(self, boxes1, boxes2):
        xp = get_array_module(boxes1, boxes2)
        eps = self.eps
        a = [boxes1[..., k] for k in range(4)]
        b = [boxes2[..., k] for k in range(4)]
        k, (cx1, cy1, cx2, cy2) = _corners(xp, a, b)
        m, inter, union = _paired_inter_union(xp, a, b, k)
        iou = inter / (union + eps)
        diag2 = (cx2 - cx1) ** 2 + (cy2 - cy1) ** 2 + eps
        pax, pay = (a[2] + a[0]) / 2, (a[3] + a[1]) / 2
        pbx, pby = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        rho2 = (pax - pbx) ** 2 + (pay - pby) ** 2
        loss = 1 - iou + rho2 / diag2
        self.save_for_backward(boxes1, boxes2, m, inter, union, diag2, rho2)
        self.loss_shape = loss.shape
        return _reduce(loss, self.reduction)

    def backward(self, gy):
        boxes1, boxes2, m, inter, union, diag2, rho2 = self.saved
        xp = get_array_module(gy)
        g = _upstream(xp, gy, self.loss_shape, self.reduction, union.dtype)
        a = [boxes1[..., k] for k in range(4)]
        b = [boxes2[..., k] for k in range(4)]
        k, (cx1, cy1, cx2, cy2) = _corners(xp, a, b)

        u_eps = union + self.eps
        gU = g * inter / (u_eps * u_eps)
        gI = -g / u_eps - gU
        g_rho2 = g / diag2
        gD = -g * rho2 / (diag2 * diag2)

        ga = xp.zeros(g.shape + (4,), dtype=g.dtype)
        gb = xp.zeros(g.shape + (4,), dtype=g.dtype)
        _inter_union_backward(xp, ga, gb, a, b, k, m, gU, gI)
        # centres: rho2 = (pa_x - pb_x)^2 + ..., p = (x1 + x2) / 2 sends half to x1, half to x2
        g_px = 2 * ((a[2] + a[0]) / 2 - (b[0] + b[2]) / 2) * g_rho2
        g_py = 2 * ((a[3] + a[1]) / 2 - (b[1] + b[3]) / 2) * g_rho2
        for c, gc in ((0, g_px), (2, g_px), (1, g_py), (3, g_py)):
            ga[..., c] += 0.5 * gc
            gb[..., c] -= 0.5 * gc
        # D = (cx2 - cx1)^2 + (cy2 - cy1)^2 + eps: g(cx2) = 2 (cx2 - cx1) gD, g(cy2) likewise
        _enclosing_backward(ga, gb, a, b, 2 * (cx2 - cx1) * gD, 2 * (cy2 - cy1) * gD)
        return sum_to_shape(ga, boxes1.shape), sum_to_shape(gb, boxes2.shape)


def distance_box_iou_loss(boxes1, boxes2, reduction: str = "none", eps: float = 1e-7):
    """Distance IoU loss ``1 - IoU + rho^2 / (c^2 + eps)`` of paired boxes (torchvision's).

    Args:
        boxes1, boxes2 (Tensor or array[..., 4]): (x1, y1, x2, y2), broadcastable.
        reduction (str): "none" | "mean" (0 for no pairs) | "sum".
        eps (float): added to U and to c^2 (default 1e-7).
    Returns:
        Tensor, differentiable in both inputs (derivation in :class:`DistanceBoxIoULoss`).

    >>> import numpy as np
    >>> loss = distance_box_iou_loss(np.array([[0., 0., 2., 2.]]), np.array([[1., 1., 3., 3.]]))
    >>> round(float(loss.numpy()[0]), 6)     # 1 - 1/7 + 2 / 18
    0.968254
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    b1, b2 = _check_pair(boxes1, boxes2)
    return DistanceBoxIoULoss(reduction, eps)(b1, b2)
