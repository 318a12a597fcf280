r"""Sigmoid focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection",
https://arxiv.org/abs/1708.02002), torchvision's ``sigmoid_focal_loss`` semantics.

Shapes: logits x, targets t, loss l all alike (any shape); t in [0, 1] (usually 0/1 one-hot,
background rows all zeros: RetinaNet has no background class).

Forward, elementwise (p = σ(x)):

    ce  = -[t log p + (1 - t) log(1 - p)] = max(x, 0) - x t + log(1 + e^{-|x|})   (stable form)
    p_t = p t + (1 - p)(1 - t)                 the probability given to the true label
    l   = α_t · ce · (1 - p_t)^γ,              α_t = α t + (1 - α)(1 - t);  α < 0: α_t = 1

γ = 0 is (α-weighted) binary cross-entropy; γ > 0 shrinks the loss of well-classified
examples (p_t -> 1) so the many easy background anchors stop dominating.

Derivation of the gradients (m = (1 - p_t)^γ, m' = γ (1 - p_t)^{γ-1}):

    dce/dx  = p - t                            dce/dt = -x
    dp_t/dx = (2t - 1) p (1 - p)               dp_t/dt = 2p - 1
    dl/dx   = α_t [ (p - t) m  -  ce m' (2t - 1) p (1 - p) ]
    dl/dt   = α_t [ -x m  -  ce m' (2p - 1) ]  +  (2α - 1) ce m     (last term only when α >= 0)

When γ = 0 the m' terms vanish (m = 1); they are dropped explicitly rather than computed as
0 · (1 - p_t)^{-1}, which would be 0 · inf = nan where p_t = 1.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module

__all__ = ["sigmoid_focal_loss"]

_REDUCTIONS = ("none", "mean", "sum")


class SigmoidFocalLoss(Function):
    """Elementwise focal loss with its explicit gradient (see the module docstring)."""

    def __init__(self, alpha, gamma, reduction):
        self.alpha, self.gamma, self.reduction = alpha, gamma, reduction

    def forward(self, x, t):
        xp = get_array_module(x, t)
        p = 0.5 * (1.0 + xp.tanh(0.5 * x))                      # σ(x), overflow-free
        ce = xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))
        p_t = p * t + (1 - p) * (1 - t)
        m = (1 - p_t) ** self.gamma
        l = ce * m
        if self.alpha >= 0:
            l = (self.alpha * t + (1 - self.alpha) * (1 - t)) * l
        self.save_for_backward(x, t, p, ce, p_t, m)
        l = l.astype(x.dtype, copy=False)
        if self.reduction == "none":
            return l
        return l.mean() if self.reduction == "mean" else l.sum()

    def backward(self, gl):
        x, t, p, ce, p_t, m = self.saved
        g = gl / x.size if self.reduction == "mean" else gl
        a = self.alpha
        alpha_t = a * t + (1 - a) * (1 - t) if a >= 0 else 1.0
        dldx = (p - t) * m
        dldt = -x * m
        if self.gamma != 0:
            m_prime = self.gamma * (1 - p_t) ** (self.gamma - 1)
            dldx = dldx - ce * m_prime * (2 * t - 1) * p * (1 - p)
            dldt = dldt - ce * m_prime * (2 * p - 1)
        dldx = alpha_t * dldx
        dldt = alpha_t * dldt + ((2 * a - 1) * ce * m if a >= 0 else 0)
        gx = (g * dldx).astype(x.dtype, copy=False)
        gt = (g * dldt).astype(t.dtype, copy=False) if t.dtype.kind == "f" else None
        return gx, gt


def sigmoid_focal_loss(inputs, targets, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none"):
    """torchvision.ops.sigmoid_focal_loss: α-balanced focal loss on logits.

    inputs (Tensor[*]) logits; targets (Tensor[*]) same shape, 0/1 (or soft) labels.
    alpha: weight of the positive class in [0, 1], or -1 to disable weighting; gamma >= 0.
    reduction: "none" (default, as torchvision), "mean" or "sum".

    >>> import numpy as np, tinyvision as tv
    >>> x = tv.tensor(np.array([0.0, 2.0]))
    >>> round(float(sigmoid_focal_loss(x, tv.tensor(np.array([1.0, 0.0])), alpha=-1, gamma=0).sum()), 6)
    2.820075
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"sigmoid_focal_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if tuple(inputs.shape) != tuple(targets.shape):
        raise ValueError(
            f"sigmoid_focal_loss: inputs of shape {tuple(inputs.shape)} and targets of shape "
            f"{tuple(targets.shape)} must have the same shape"
        )
    if gamma < 0:
        raise ValueError(f"sigmoid_focal_loss: gamma must be >= 0, got {gamma}")
    if alpha >= 0 and alpha > 1:
        raise ValueError(f"sigmoid_focal_loss: alpha must be in [0, 1] (or negative to disable), got {alpha}")
    if inputs.dtype.kind != "f":
        raise TypeError(f"sigmoid_focal_loss: inputs must be floating point logits, got dtype {inputs.dtype}")
    if targets.dtype.kind != "f":  # 0/1 labels given as ints or bools: the same numbers as floats
        targets = targets.to(inputs.dtype) if hasattr(targets, "grad_fn") else targets.astype(inputs.dtype)
    return SigmoidFocalLoss(float(alpha), float(gamma), reduction)(inputs, targets)
