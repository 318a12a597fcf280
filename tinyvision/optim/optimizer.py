"""The Optimizer base class: parameter groups, per-parameter state, zero_grad."""
from __future__ import annotations

from ..autograd import Tensor

__all__ = ["Optimizer"]


class Optimizer:
    """Holds ``param_groups`` (list of dicts with "params" and hyper-parameters, as PyTorch)
    and ``state`` (per-parameter buffers such as momentum). Subclasses implement ``step``."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        # A lone Tensor is iterable (over its rows), so list(weight) would quietly give
        # row views that the optimiser updates while the weight never changes: refuse it
        # as PyTorch does.
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params argument given to the optimizer should be an iterable of "
                f"Tensors or dicts, but got a Tensor of shape {params.shape} (pass [tensor] or model.parameters())"
            )
        try:
            params = list(params)
        except TypeError:
            raise TypeError(
                f"{type(self).__name__}: params argument given to the optimizer should be an iterable of "
                f"Tensors or dicts, but got {type(params).__name__}"
            ) from None
        if len(params) == 0:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        self.state = {}  # id(param) -> dict of buffers
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict):
        """Add a group (a dict with "params" and optional hyper-parameters), PyTorch's checks."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(self.defaults)
        group.update(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]  # inside a group PyTorch accepts a single tensor
        elif isinstance(params, set):
            raise TypeError(
                f"{name}: optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        group["params"] = list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not (p.is_leaf or p._retains_grad):
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (shape {p.shape})")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self.param_groups.append(group)

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

    # ---- state_dict (written for the engine's checkpoints; PyTorch's layout) -----------------
    def state_dict(self) -> dict:
        """PyTorch's layout: ``{"state": {index: {name: array or number}}, "param_groups":
        [{hyper-parameters..., "params": [index, ...]}]}``, parameters numbered 0, 1, ... in
        group order. Buffers are copied (NumPy arrays), so later steps do not change it."""
        index = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for pid, buffers in self.state.items():
            if pid not in index:
                continue
            state[index[pid]] = {name: _host_copy(v) if hasattr(v, "shape") else v
                                 for name, v in buffers.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` returned (same parameters, same group sizes).
        Buffers go to each parameter's device and dtype; hyper-parameters (lr, betas, ...)
        are replaced by the saved ones, as PyTorch does."""
        from ..backend import get_array_module

        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("Optimizer.load_state_dict: expected a dict with keys 'state' and "
                             f"'param_groups', got {type(state_dict).__name__}"
                             + (f" with keys {sorted(state_dict)}" if isinstance(state_dict, dict) else ""))
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(f"Optimizer.load_state_dict: the state has {len(saved)} parameter groups, "
                             f"this optimizer {len(self.param_groups)}")
        params = {}
        for i, (group, sgroup) in enumerate(zip(self.param_groups, saved)):
            if len(group["params"]) != len(sgroup["params"]):
                raise ValueError(f"Optimizer.load_state_dict: group {i} has {len(group['params'])} "
                                 f"parameters, the saved one {len(sgroup['params'])}")
            for p, j in zip(group["params"], sgroup["params"]):
                params[int(j)] = p
        new_state = {}
        for j, buffers in state_dict["state"].items():
            if int(j) not in params:
                raise ValueError(f"Optimizer.load_state_dict: state for parameter {j}, which no group holds")
            p = params[int(j)]
            xp = get_array_module(p.data)
            restored = {}
            for name, v in buffers.items():
                if hasattr(v, "shape") and getattr(v, "ndim", 0) > 0:
                    if tuple(v.shape) != tuple(p.shape):
                        raise ValueError(f"Optimizer.load_state_dict: state[{j}][{name!r}] has shape "
                                         f"{tuple(v.shape)}, its parameter {tuple(p.shape)}")
                    restored[name] = xp.array(v, dtype=v.dtype)
                else:
                    restored[name] = v.item() if hasattr(v, "item") else v
            new_state[id(p)] = restored
        for group, sgroup in zip(self.param_groups, saved):
            for k, v in sgroup.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(group.get(k), tuple) else v
        self.state = new_state


def _host_copy(a):
    """A NumPy copy of a NumPy or CuPy array."""
    return a.get() if type(a).__module__.startswith("cupy") else a.copy()
