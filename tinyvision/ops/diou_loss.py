"""Distance IoU loss (torchvision.ops.distance_box_iou_loss), differentiable.

Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box Regression",
AAAI 2020, https://arxiv.org/abs/1911.08287.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from .giou_loss import _REDUCTIONS, _check_pair, _max_share, _min_share, _reduce, _sum_to, _upstream

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
        kx1, ky1 = xp.maximum(a[0], b[0]), xp.maximum(a[1], b[1])
        kx2, ky2 = xp.minimum(a[2], b[2]), xp.minimum(a[3], b[3])
        m = (ky2 > ky1) & (kx2 > kx1)
        inter = xp.where(m, (kx2 - kx1) * (ky2 - ky1), 0 * kx1)
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        iou = inter / (union + eps)
        cx1, cy1 = xp.minimum(a[0], b[0]), xp.minimum(a[1], b[1])
        cx2, cy2 = xp.maximum(a[2], b[2]), xp.maximum(a[3], b[3])
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
        kx1, ky1 = xp.maximum(a[0], b[0]), xp.maximum(a[1], b[1])
        kx2, ky2 = xp.minimum(a[2], b[2]), xp.minimum(a[3], b[3])
        cx1, cy1 = xp.minimum(a[0], b[0]), xp.minimum(a[1], b[1])
        cx2, cy2 = xp.maximum(a[2], b[2]), xp.maximum(a[3], b[3])

        u_eps = union + self.eps
        gU = g * inter / (u_eps * u_eps)
        gI = -g / u_eps - gU
        g_rho2 = g / diag2
        gD = -g * rho2 / (diag2 * diag2)

        shape = g.shape + (4,)
        ga = xp.zeros(shape, dtype=g.dtype)
        gb = xp.zeros(shape, dtype=g.dtype)
        # areas
        for grad, box in ((ga, a), (gb, b)):
            wdt, hgt = box[2] - box[0], box[3] - box[1]
            grad[..., 0] -= gU * hgt
            grad[..., 2] += gU * hgt
            grad[..., 1] -= gU * wdt
            grad[..., 3] += gU * wdt
        # centres: rho2 = (pa_x - pb_x)^2 + ..., p = (x1 + x2) / 2
        g_px = 2 * ((a[2] + a[0]) / 2 - (b[0] + b[2]) / 2) * g_rho2
        g_py = 2 * ((a[3] + a[1]) / 2 - (b[1] + b[3]) / 2) * g_rho2
        for k, gc in ((0, g_px), (2, g_px), (1, g_py), (3, g_py)):
            ga[..., k] += 0.5 * gc
            gb[..., k] -= 0.5 * gc
        # intersection and enclosing corners
        g_kx2 = xp.where(m, gI * (ky2 - ky1), 0 * gI)
        g_ky2 = xp.where(m, gI * (kx2 - kx1), 0 * gI)
        g_cx2 = 2 * (cx2 - cx1) * gD
        g_cy2 = 2 * (cy2 - cy1) * gD
        for k, g_corner, share in (
            (0, -g_kx2, _max_share), (1, -g_ky2, _max_share),
            (2, g_kx2, _min_share), (3, g_ky2, _min_share),
            (0, -g_cx2, _min_share), (1, -g_cy2, _min_share),
            (2, g_cx2, _max_share), (3, g_cy2, _max_share),
        ):
            wa, wb = share(a[k], b[k])
            ga[..., k] += g_corner * wa
            gb[..., k] += g_corner * wb
        return _sum_to(ga, boxes1.shape), _sum_to(gb, boxes2.shape)


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
