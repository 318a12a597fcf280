"""Module and Parameter: how layers hold their weights, and how weights are named.

A :class:`Module` is an object whose attributes may be Parameters (trainable tensors),
buffers (state that is saved but not trained, e.g. BatchNorm's running mean) or other
Modules. Assigning one of those as an attribute registers it, in assignment order, so

    model.conv1.weight  <->  state_dict key "conv1.weight"

exactly as in PyTorch: a PyTorch model's ``state_dict()`` loads one to one into the
tinyvision model with the same structure (``load_state_dict`` accepts NumPy arrays or torch
tensors, anything ``np.asarray`` understands).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..autograd import Tensor, no_grad

__all__ = ["Module", "Parameter"]


class Parameter(Tensor):
    """A Tensor that is a trainable weight of a Module (``requires_grad=True`` by default)."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model. Subclasses define ``forward``; call the module.

    >>> import numpy as np
    >>> from tinyvision import nn
    >>> layer = nn.Linear(3, 2)
    >>> [name for name, _ in layer.named_parameters()]
    ['weight', 'bias']
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "training", True)

    # ---- registration by assignment -------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called (call super().__init__() first)"
            )
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()) and (value is None or isinstance(value, Tensor)):
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param):
        """Register ``param`` (a Parameter or None) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        setattr(self, name, param)
        if param is None:
            self._parameters[name] = None

    def register_buffer(self, name: str, tensor, persistent: bool = True):
        """Register a non-trainable tensor (saved in the state_dict when ``persistent``)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(tensor)
        names = self.__dict__.setdefault("_buffer_names", set())
        names.add(name)
        if not persistent:
            self._non_persistent.add(name)
        setattr(self, name, tensor)
        self._buffers[name] = tensor

    def add_module(self, name: str, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        setattr(self, name, module)

    # ---- calling -----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- traversal ---------------------------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue  # a parameter shared by two modules is listed once, as PyTorch
                seen.add(id(p))
                yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mprefix}.{name}" if mprefix else name), b

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ---- modes and gradients -----------------------------------------------------------------
    def train(self, mode: bool = True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True):
        """Reset every parameter's gradient: to None (PyTorch's default) or to zeros."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    def requires_grad_(self, requires_grad: bool = True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, device):
        """Move every parameter and buffer to ``device`` ('cpu' or 'cuda'), in place."""
        from ..backend import to_device

        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for t in store.values():
                    if t is not None:
                        t.data = to_device(t.data, device)
                        if t.grad is not None:
                            t.grad.data = to_device(t.grad.data, device)
        return self

    def double(self):
        """Cast floating-point parameters and buffers to float64 (for float64 cross-checks)."""
        return self._cast(np.float64)

    def float(self):
        return self._cast(np.float32)

    def _cast(self, dtype):
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for t in store.values():
                    if t is not None and t.data.dtype.kind == "f":
                        t.data = t.data.astype(dtype)
                        t.grad = None
        return self

    # ---- state_dict --------------------------------------------------------------------------
    def state_dict(self, prefix: str = ""):
        """An ordered dict of dotted names -> NumPy arrays (copies), parameters then buffers per
        module, PyTorch's key order."""
        out = OrderedDict()
        for mprefix, m in self.named_modules(prefix.rstrip(".")):
            base = f"{mprefix}." if mprefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[base + name] = p.numpy().copy()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[base + name] = b.numpy().copy()
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays into parameters and buffers by dotted name.

        Values may be NumPy arrays, tinyvision Tensors or torch tensors. Shapes must match
        exactly; with ``strict`` the key sets must match too. Errors list every problem.
        Returns (missing_keys, unexpected_keys), as PyTorch's NamedTuple does.
        """
        own = OrderedDict()
        for mprefix, m in self.named_modules():
            base = f"{mprefix}." if mprefix else ""
            for store in (m._parameters, m._buffers):
                for name, t in store.items():
                    if t is not None and not (store is m._buffers and name in m._non_persistent):
                        own[base + name] = t
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        converted = {}
        for k, t in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            if hasattr(v, "detach") and hasattr(v, "cpu") and not isinstance(v, Tensor):
                v = v.detach().cpu().numpy()  # a torch tensor
            arr = np.asarray(v.numpy() if isinstance(v, Tensor) else v)
            if tuple(arr.shape) != t.shape:
                problems.append(f"{k}: expected shape {t.shape}, got {tuple(arr.shape)}")
                continue
            converted[k] = arr
        if strict and (missing or unexpected):
            if missing:
                problems.append(f"missing keys: {missing}")
            if unexpected:
                problems.append(f"unexpected keys: {unexpected}")
        if problems:
            raise ValueError(f"load_state_dict for {type(self).__name__}: " + "; ".join(problems))
        from ..backend import get_array_module

        with no_grad():
            for k, arr in converted.items():
                t = own[k]
                xp = get_array_module(t.data)
                t.data = xp.asarray(arr, dtype=t.data.dtype).copy()
                t._version += 1
        return missing, unexpected

    # ---- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        children = list(self.named_children())
        if not children:
            return lines[0] + ")"
        for name, m in children:
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + "\n)"
