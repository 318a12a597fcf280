"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), PyTorch's update rule."""
from __future__ import annotations

import math

from ..autograd import no_grad
from ..backend import get_array_module
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""PyTorch's Adam, step t = 1, 2, ...:

        g = grad + weight_decay · p                    (Adam: L2 in the gradient)
        m = m + (1 - β1)(g - m)                        (= β1 m + (1 - β1) g, PyTorch's lerp form)
        v = β2 v + (1 - β2) g²
        v̂max = max(v̂max, v)                           (amsgrad only; then v -> v̂max below)
        denom = sqrt(v) / sqrt(1 - β2^t) + eps
        p = p - lr / (1 - β1^t) · m / denom

    Note eps is added *after* the bias correction of sqrt(v), as PyTorch does.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: lr, eps and weight_decay must be >= 0")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def step(self):
        with no_grad():
            for group in self.param_groups:
                lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
                for p, g in self._params_with_grad(group):
                    xp = get_array_module(g)
                    if group["maximize"]:
                        g = -g
                    if wd != 0:
                        if self.decoupled:
                            p.data *= 1 - lr * wd  # AdamW: decay the weight itself
                        else:
                            g = g + wd * p.data
                    state = self.state.setdefault(id(p), {})
                    if not state:
                        state["step"] = 0
                        state["exp_avg"] = xp.zeros_like(p.data)
                        state["exp_avg_sq"] = xp.zeros_like(p.data)
                        if group["amsgrad"]:
                            state["max_exp_avg_sq"] = xp.zeros_like(p.data)
                    state["step"] += 1
                    t = state["step"]
                    m, v = state["exp_avg"], state["exp_avg_sq"]
                    m += (1 - b1) * (g - m)
                    v *= b2
                    v += (1 - b2) * g * g
                    bias_correction1 = 1 - b1**t
                    bias_correction2_sqrt = math.sqrt(1 - b2**t)
                    if group["amsgrad"]:
                        vmax = state["max_exp_avg_sq"]
                        xp.maximum(vmax, v, out=vmax)
                        denom = xp.sqrt(vmax) / bias_correction2_sqrt + eps
                    else:
                        denom = xp.sqrt(v) / bias_correction2_sqrt + eps
                    p.data -= ((lr / bias_correction1) * (m / denom)).astype(p.dtype, copy=False)
                    p._version += 1


class AdamW(Adam):
    r"""Adam with decoupled weight decay: p = p (1 - lr · weight_decay) before the Adam step,
    and the gradient is left alone. PyTorch's default weight_decay = 0.01."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
