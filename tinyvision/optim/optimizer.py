"""The Optimizer base class: parameter groups, per-parameter state, zero_grad."""
from __future__ import annotations

from ..autograd import Tensor

__all__ = ["Optimizer"]


class Optimizer:
    """Holds ``param_groups`` (list of dicts with "params" and hyper-parameters, as PyTorch)
    and ``state`` (per-parameter buffers such as momentum). Subclasses implement ``step``."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        params = list(params)
        if len(params) == 0:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        for g in groups:
            group = dict(self.defaults)
            group.update(g)
            group["params"] = list(group["params"])
            for p in group["params"]:
                if not isinstance(p, Tensor):
                    raise TypeError(f"{type(self).__name__} can only optimise Tensors, got {type(p).__name__}")
            self.param_groups.append(group)
        self.state = {}  # id(param) -> dict of buffers

    def zero_grad(self, set_to_none: bool = True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.data[...] = 0

    def _params_with_grad(self, group):
        for p in group["params"]:
            if p.grad is not None:
                yield p, p.grad.data

    def step(self):  # pragma: no cover - abstract
        raise NotImplementedError
