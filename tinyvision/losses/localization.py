r"""The localization loss of a :class:`~tinyvision.models.MultiHead`: CE + α · box loss.

tinyvision defines this loss (no framework has it; REFERENCE.md §7) as a sum of two PyTorch losses,
each reduced the way PyTorch reduces it:

    L = F.cross_entropy(z, y)  +  α · F.mse_loss(b̂, b)            (box_loss="mse", reduction="mean")

Shapes: N samples, K classes; z (N, K) class logits, y (N,) labels in [0, K), b̂ (N, 4) predicted
box, b (N, 4) target box, both in the same ``box_format`` and normalised to [0, 1] of the image
(see :mod:`tinyvision.models.multihead` for why). p̂ = softmax(z) row by row.

From the PyTorch form to the lesson's per-sample form
-----------------------------------------------------
F.cross_entropy averages over the N samples; F.mse_loss averages over all N·4 numbers:

    L_class = (1/N) Σ_n −log p̂_{n, y_n}
    L_box   = (1/(4N)) Σ_n Σ_{i=1..4} (b_{n,i} − b̂_{n,i})²

so
    L = L_class + α L_box = (1/N) Σ_n [ −log p̂_{n, y_n} + (α/4) Σ_{i=1..4} (b_{n,i} − b̂_{n,i})² ].

Per sample this is the lesson's  −log p̂_y + α' Σ_i (b_i − b̂_i)²  with α' = α / 4: the factor 1/4
is the mean over the four coordinates that F.mse_loss takes and the lesson's sum does not. (The
lesson's α' = 0.5 is α = 2 here.) The batch loss is the mean of the per-sample losses.

Gradient with respect to the logits
-----------------------------------
−log p̂_y = −z_y + log Σ_j e^{z_j}, so  ∂(−log p̂_y)/∂z_c = −[c = y] + e^{z_c} / Σ_j e^{z_j}
= p̂_c − [c = y], and with the mean over the batch

    ∂L/∂z_{n,c} = (p̂_{n,c} − [c = y_n]) / N.

The box term does not depend on z (the heads are separate), so α does not appear here.

Gradient with respect to the box outputs
----------------------------------------
    ∂L/∂b̂_{n,i} = α · (1/(4N)) · 2 (b̂_{n,i} − b_{n,i}) = α (b̂_{n,i} − b_{n,i}) / (2N).

CE does not depend on b̂. Through the model's sigmoid b̂ = σ(s):
∂L/∂s_{n,i} = α (b̂ − b) b̂ (1 − b̂) / (2N) — small where the sigmoid saturates.

Both gradients meet in the shared backbone: its features f receive
(∂L_class/∂z)·(∂z/∂f) + α (∂L_box/∂b̂)·(∂b̂/∂f); α sets how much each task shapes them.

The other box losses (same structure, another per-coordinate or per-box term)
-----------------------------------------------------------------------------
* ``box_loss="smooth_l1"``: α · F.smooth_l1_loss(b̂, b, beta=β), also a mean over N·4. With
  d = b̂ − b: ℓ(d) = d²/(2β) for |d| < β, |d| − β/2 beyond; ∂L/∂b̂_{n,i} = α ℓ'(d_{n,i}) / (4N),
  ℓ' = d/β inside, sign(d) outside. Default β = 0.1 (not PyTorch's 1.0): in normalised
  coordinates |d| < 1 always, so β = 1 would make it 0.5 · MSE everywhere.
* ``box_loss="giou"``: α · mean_n (1 − GIoU(b̂_n, b_n)) (torchvision's
  ``generalized_box_iou_loss``, on xyxy corners; cxcywh boxes are converted first,
  x1 = cx − w/2, y1 = cy − h/2, x2 = cx + w/2, y2 = cy + h/2, a linear map the gradient flows
  back through). Its gradient is derived in :class:`tinyvision.ops.giou_loss.GeneralizedBoxIoULoss`.

Reductions
----------
The per-sample loss is l_n = CE_n + α · B_n with B_n = (1/4) Σ_i (b̂_{n,i} − b_{n,i})² (mse), the same
mean of smooth-L1 terms (smooth_l1) or 1 − GIoU_n (giou). ``"none"`` returns the l_n (N,),
``"mean"`` their mean (the formula above), ``"sum"`` their sum (so for mse: CE summed +
α · F.mse_loss(sum) / 4). The parts returned by :func:`localization_loss` are reduced the same way.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..backend import get_array_module
from ..nn import Module
from ..ops.giou_loss import generalized_box_iou_loss

__all__ = ["localization_loss", "LocalizationLoss", "BOX_LOSSES"]

BOX_LOSSES = ("mse", "smooth_l1", "giou")
_BOX_FORMATS = ("xyxy", "cxcywh")
_REDUCTIONS = ("none", "mean", "sum")


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _check_inputs(class_scores, boxes, labels, target_boxes, box_format):
    """Shapes (N, K), (N, 4), (N,), (N, 4); integer labels in [0, K); finite, well-formed targets.
    Returns labels and target_boxes as arrays."""
    name = "localization_loss"
    zs = tuple(class_scores.shape)
    if len(zs) != 2 or zs[1] < 1:
        raise ValueError(f"{name}: class_scores must have shape (N, K), got {zs}")
    n, k = zs
    if tuple(boxes.shape) != (n, 4):
        raise ValueError(f"{name}: boxes must have shape (N, 4) = ({n}, 4) to match class_scores {zs}, "
                         f"got {tuple(boxes.shape)}")
    if class_scores.dtype.kind != "f" or boxes.dtype.kind != "f":
        raise TypeError(f"{name}: class_scores and boxes must be floating point, got {class_scores.dtype} "
                        f"and {boxes.dtype}")
    y = _data(labels)
    if not hasattr(y, "shape"):
        y = np.asarray(y)
    if tuple(y.shape) != (n,):
        raise ValueError(f"{name}: labels must have shape (N,) = ({n},) to match class_scores {zs}, "
                         f"got {tuple(y.shape)}")
    if np.dtype(y.dtype).kind not in "iu":
        raise TypeError(f"{name}: labels must be integer class indices, got dtype {y.dtype}")
    xp = get_array_module(y)
    bad = (y < 0) | (y >= k)
    if n and bool(bad.any()):
        r = int(xp.argmax(bad))
        raise ValueError(f"{name}: labels[{r}] = {int(y[r])} is out of range for class_scores of shape "
                         f"{zs} (labels must lie in [0, {k}))")
    b = _data(target_boxes)
    if not hasattr(b, "shape"):
        b = np.asarray(b)
    if tuple(b.shape) != (n, 4):
        raise ValueError(f"{name}: target_boxes must have shape (N, 4) = ({n}, 4) to match class_scores "
                         f"{zs}, got {tuple(b.shape)}")
    if np.dtype(b.dtype).kind != "f":
        raise TypeError(f"{name}: target_boxes must be floating point, got dtype {b.dtype}")
    if n and not bool(xp.isfinite(b).all()):
        r = int(xp.argmax(~xp.isfinite(b).all(axis=1)))
        raise ValueError(f"{name}: target_boxes[{r}] = {b[r].tolist()} is not finite")
    if box_format == "xyxy":
        bad, what = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1]), "x2 < x1 or y2 < y1"
    else:
        bad, what = (b[:, 2] < 0) | (b[:, 3] < 0), "a negative width or height"
    if n and bool(bad.any()):
        r = int(xp.argmax(bad))
        raise ValueError(f"{name}: target_boxes[{r}] = {b[r].tolist()} has {what}, which is not a box in "
                         f"box_format={box_format!r} (target_boxes shape {tuple(b.shape)})")
    return y, b


def _cxcywh_to_xyxy(b):
    """(cx, cy, w, h) -> (cx - w/2, cy - h/2, cx + w/2, cy + h/2), differentiable (Tensor in, out)."""
    cx, cy, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    return F.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=1)   # (N, 4)


def _reduce(per_sample, reduction):
    if reduction == "none":
        return per_sample
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def localization_loss(class_scores, boxes, labels, target_boxes, alpha: float = 0.5, box_loss: str = "mse",
                      box_format: str = "xyxy", reduction: str = "mean", beta: float = 0.1):
    """CE + α · box loss of a MultiHead's outputs (the module docstring derives it).

    Args:
        class_scores (Tensor[N, K]): class logits.
        boxes (Tensor[N, 4]): predicted boxes, normalised to [0, 1], in ``box_format``.
        labels (array or Tensor[N], int): true classes in [0, K).
        target_boxes (array or Tensor[N, 4]): true boxes, normalised, in ``box_format`` (x1 <= x2 and
            y1 <= y2 for "xyxy"; w, h >= 0 for "cxcywh"). No gradient flows to them.
        alpha (float >= 0): weight of the box term.
        box_loss (str): "mse" (F.mse_loss), "smooth_l1" (F.smooth_l1_loss with ``beta``) or "giou"
            (torchvision's generalized_box_iou_loss).
        box_format (str): "xyxy" or "cxcywh".
        reduction (str): "mean" (default), "sum" or "none" (per-sample losses, shape (N,)).
        beta (float): smooth-L1 threshold (box_loss="smooth_l1" only).

    Returns:
        (total, class_loss, box_loss): Tensors, ``total = class_loss + alpha * box_loss``.

    >>> import numpy as np, tinyvision as tv
    >>> z = tv.tensor(np.zeros((1, 2)), requires_grad=True)          # p̂ = (1/2, 1/2)
    >>> b = tv.tensor(np.array([[0.1, 0.1, 0.5, 0.5]]), requires_grad=True)
    >>> total, ce, box = localization_loss(z, b, np.array([0]), np.array([[0.1, 0.1, 0.7, 0.5]]), alpha=2.0)
    >>> round(ce.item(), 6), round(box.item(), 6)                    # log 2, 0.2^2 / 4
    (0.693147, 0.01)
    >>> total.backward()
    >>> b.grad.numpy().round(6).tolist()                            # α (b̂ − b) / (2N)
    [[0.0, 0.0, -0.2, 0.0]]
    """
    if box_loss not in BOX_LOSSES:
        raise ValueError(f"localization_loss: box_loss must be one of {BOX_LOSSES}, got {box_loss!r}")
    if box_format not in _BOX_FORMATS:
        raise ValueError(f"localization_loss: box_format must be one of {_BOX_FORMATS}, got {box_format!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"localization_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"localization_loss: alpha must be a finite number >= 0, got {alpha!r}")
    y, b = _check_inputs(class_scores, boxes, labels, target_boxes, box_format)
    b = b.astype(boxes.dtype, copy=False)

    if reduction == "mean":
        # The definition, literally: two PyTorch losses with their own means (over N, over N·4).
        class_loss = F.cross_entropy(class_scores, y)
        if box_loss == "mse":
            box_term = F.mse_loss(boxes, b)
        elif box_loss == "smooth_l1":
            box_term = F.smooth_l1_loss(boxes, b, beta=beta)
        else:
            box_term = _giou_per_sample(boxes, b, box_format).mean()
    else:
        class_loss = _reduce(F.cross_entropy(class_scores, y, reduction="none"), reduction)   # CE_n
        if box_loss == "mse":
            per_sample = F.mse_loss(boxes, b, reduction="none").mean(dim=1)                  # (N, 4) -> (N,)
        elif box_loss == "smooth_l1":
            per_sample = F.smooth_l1_loss(boxes, b, reduction="none", beta=beta).mean(dim=1)
        else:
            per_sample = _giou_per_sample(boxes, b, box_format)
        box_term = _reduce(per_sample, reduction)
    total = class_loss + alpha * box_term
    return total, class_loss, box_term


def _giou_per_sample(boxes, target_boxes, box_format):
    """1 - GIoU per sample (N,), on xyxy corners."""
    if box_format == "cxcywh":
        boxes = _cxcywh_to_xyxy(boxes)                       # Tensor: the gradient flows back
        t = target_boxes
        xp = get_array_module(t)
        target_boxes = xp.stack([t[:, 0] - 0.5 * t[:, 2], t[:, 1] - 0.5 * t[:, 3],
                                 t[:, 0] + 0.5 * t[:, 2], t[:, 1] + 0.5 * t[:, 3]], axis=1)
    return generalized_box_iou_loss(boxes, target_boxes, reduction="none")


class LocalizationLoss(Module):
    """Module form of :func:`localization_loss`: ``forward(class_scores, boxes, labels, target_boxes)``
    returns the total; the last call's parts are kept as ``last_parts`` = {"class": float, "box": float}.

    >>> import numpy as np, tinyvision as tv
    >>> criterion = LocalizationLoss(alpha=1.0)
    >>> loss = criterion(tv.tensor(np.zeros((2, 3))), tv.tensor(np.full((2, 4), 0.5)),
    ...                  np.array([0, 2]), np.array([[0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]]))
    >>> round(loss.item(), 6)                                        # log 3 + (4 · 0.25) / 8
    1.223612
    """

    def __init__(self, alpha: float = 0.5, box_loss: str = "mse", reduction: str = "mean",
                 box_format: str = "xyxy", beta: float = 0.1):
        super().__init__()
        if box_loss not in BOX_LOSSES:
            raise ValueError(f"LocalizationLoss: box_loss must be one of {BOX_LOSSES}, got {box_loss!r}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"LocalizationLoss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if box_format not in _BOX_FORMATS:
            raise ValueError(f"LocalizationLoss: box_format must be one of {_BOX_FORMATS}, got {box_format!r}")
        self.alpha, self.box_loss, self.reduction = alpha, box_loss, reduction
        self.box_format, self.beta = box_format, beta
        self.last_parts = {}

    def forward(self, class_scores, boxes, labels, target_boxes):
        total, class_loss, box_term = localization_loss(
            class_scores, boxes, labels, target_boxes, alpha=self.alpha, box_loss=self.box_loss,
            box_format=self.box_format, reduction=self.reduction, beta=self.beta)
        if self.reduction != "none":
            self.last_parts = {"class": float(class_loss.item()), "box": float(box_term.item())}
        return total

    def extra_repr(self):
        return (f"alpha={self.alpha}, box_loss={self.box_loss!r}, box_format={self.box_format!r}, "
                f"reduction={self.reduction!r}")
