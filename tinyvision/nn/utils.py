"""Gradient clipping, PyTorch's ``torch.nn.utils.clip_grad_norm_``.

The gradients of all parameters are treated as one long vector g = (g_1, ..., g_P):

    total_norm = || (||g_1||_p, ..., ||g_P||_p) ||_p        (= ||g||_p; p = inf: max |g_i|)
    clip_coef  = min(1, max_norm / (total_norm + 1e-6))
    g_i        = g_i * clip_coef                               (in place, every parameter)

As in PyTorch the gradients are multiplied even when clip_coef is 1 (a no-op), the 1e-6 keeps a
zero gradient finite, and the norm returned is the one *before* clipping. A non-finite total
norm gives NaN gradients (PyTorch's behaviour) unless ``error_if_nonfinite=True``, which raises.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Tensor, no_grad
from ..backend import get_array_module

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their joint ``norm_type``-norm is
    at most ``max_norm``; returns the joint norm before scaling (a 0-d Tensor).

    Args:
        parameters: a Tensor or an iterable of Tensors (those without ``.grad`` are skipped).
        max_norm: the largest norm allowed.
        norm_type: p of the p-norm (``float("inf")`` for the max norm).
        error_if_nonfinite: raise ``RuntimeError`` when the norm is NaN or infinite.
        foreach: accepted for PyTorch's signature; there is one implementation here.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    parameters = list(parameters)
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"clip_grad_norm_: parameters[{i}] is a {type(p).__name__}, not a Tensor")
    max_norm, norm_type = float(max_norm), float(norm_type)
    grads = [p.grad.data for p in parameters if p.grad is not None]
    if not grads:
        return Tensor(np.zeros((), dtype=np.float32))  # PyTorch: torch.tensor(0.0)
    xp = get_array_module(grads[0])
    dtype = grads[0].dtype
    if math.isinf(norm_type):
        norms = xp.stack([xp.abs(g).max() if g.size else xp.zeros((), g.dtype) for g in grads])
        total = norms.max()
    else:
        # per-parameter norms, then the norm of those: ||g||_p computed in two stages, as PyTorch
        norms = xp.stack([(xp.abs(g.ravel()) ** norm_type).sum() ** (1.0 / norm_type)
                          if norm_type != 2.0 else xp.sqrt(xp.dot(g.ravel(), g.ravel()))
                          for g in grads])
        total = ((xp.abs(norms) ** norm_type).sum() ** (1.0 / norm_type) if norm_type != 2.0
                 else xp.sqrt(xp.dot(norms, norms)))
    total = xp.asarray(total, dtype=dtype)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                           f"{float(total)} (non-finite), so they cannot be clipped; pass "
                           "error_if_nonfinite=False to scale them anyway (giving NaN gradients)")
    clip_coef = xp.minimum(xp.asarray(max_norm, dtype=dtype) / (total + xp.asarray(1e-6, dtype=dtype)),
                           xp.asarray(1.0, dtype=dtype))
    with no_grad(), np.errstate(invalid="ignore"):   # inf * 0 -> NaN is PyTorch's result too
        for p in parameters:
            if p.grad is not None:
                p.grad.data *= clip_coef.astype(p.grad.data.dtype)
    return Tensor(total)
