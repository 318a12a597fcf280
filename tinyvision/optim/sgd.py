"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch's rule)."""
from __future__ import annotations

from ..autograd import no_grad
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""PyTorch's SGD update, step by step:

        g = grad + weight_decay · p                     (L2 penalty folded into the gradient)
        b = g                      on the first step    (momentum buffer)
        b = momentum · b + (1 - dampening) · g          afterwards
        g = g + momentum · b   if nesterov   else  g = b
        p = p - lr · g

    Note the momentum form is PyTorch's (lr outside the buffer), not Sutskever et al.'s.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, maximize: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0 (got {lr}, {momentum}, {weight_decay})")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def step(self):
        with no_grad():
            for group in self.param_groups:
                lr, mom, damp = group["lr"], group["momentum"], group["dampening"]
                wd, nesterov = group["weight_decay"], group["nesterov"]
                for p, g in self._params_with_grad(group):
                    if group["maximize"]:
                        g = -g
                    if wd != 0:
                        g = g + wd * p.data
                    if mom != 0:
                        state = self.state.setdefault(id(p), {})
                        if "momentum_buffer" not in state:
                            buf = g.copy()
                        else:
                            buf = state["momentum_buffer"] * mom + (1 - damp) * g
                        state["momentum_buffer"] = buf
                        g = g + mom * buf if nesterov else buf
                    p.data -= (lr * g).astype(p.dtype, copy=False)
                    p._version += 1
