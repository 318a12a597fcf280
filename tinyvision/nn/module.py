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

import itertools
import weakref
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from ..autograd import Tensor, no_grad

__all__ = ["Module", "Parameter", "RemovableHandle", "StateDictError"]


class StateDictError(ValueError, RuntimeError):
    """``load_state_dict`` could not load: missing/unexpected keys, shapes or unusable values.

    A ValueError (tinyvision's convention for bad input) and a RuntimeError (what PyTorch
    raises), so code written for either catches it."""


class _IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns, as PyTorch's ``_IncompatibleKeys``."""

    missing_keys: list
    unexpected_keys: list

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"

    __str__ = __repr__


class RemovableHandle:
    """Returned by ``register_forward_hook`` and friends: ``handle.remove()`` unregisters the
    hook (a second call does nothing); ``with handle: ...`` removes it on leaving the block."""

    _ids = itertools.count()

    def __init__(self, hooks_dict, extra_dict=None):
        self.id = next(RemovableHandle._ids)
        # weak references: a handle kept by the user must not keep a deleted module's hooks alive
        self._dicts = [weakref.ref(hooks_dict)] + ([weakref.ref(extra_dict)] if extra_dict is not None else [])

    def remove(self):
        for ref in self._dicts:
            d = ref()
            if d is not None:
                d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class _HookDict(OrderedDict):
    """An OrderedDict that can be weakly referenced (a plain dict cannot)."""


def _to_numpy_value(key, value):
    """A state_dict value -> a NumPy array, refusing what would load as garbage.

    Accepts NumPy arrays (and anything ``np.asarray`` makes numeric), tinyvision Tensors and
    torch tensors (detached, moved to the CPU; bfloat16 widened to float32, which NumPy lacks).
    An object array (e.g. of None), strings or complex numbers are refused: cast to float they
    would become NaN or lose their imaginary part without a word."""
    if isinstance(value, Tensor):
        arr = value.numpy()
    elif hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        t = value.detach().cpu()  # a torch tensor (torch is never imported here)
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        arr = t.numpy()
    elif value is None:
        raise StateDictError(f"load_state_dict: value for {key!r} is None, expected an array")
    else:
        try:
            arr = np.asarray(value)
        except Exception as e:  # noqa: BLE001 - ragged lists and the like
            raise StateDictError(f"load_state_dict: value for {key!r} ({type(value).__name__}) is not an array: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise StateDictError(
            f"load_state_dict: value for {key!r} has dtype {arr.dtype} (shape {arr.shape}); "
            "only numeric or bool arrays are loaded"
        )
    return arr


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
        object.__setattr__(self, "_forward_pre_hooks", _HookDict())
        object.__setattr__(self, "_forward_hooks", _HookDict())
        object.__setattr__(self, "_hooks_with_kwargs", _HookDict())  # hook id -> True
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
        """Run the forward pre-hooks, ``forward``, then the forward hooks (PyTorch's order)."""
        pre_hooks = self.__dict__.get("_forward_pre_hooks") or {}
        hooks = self.__dict__.get("_forward_hooks") or {}
        if not pre_hooks and not hooks:
            return self.forward(*args, **kwargs)
        with_kwargs = self.__dict__.get("_hooks_with_kwargs") or {}
        for hid, hook in list(pre_hooks.items()):
            if hid in with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise TypeError(
                            f"forward pre-hook {hook!r} with with_kwargs=True must return None or a tuple (args, kwargs)"
                        )
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hid, hook in list(hooks.items()):
            result = hook(self, args, kwargs, output) if hid in with_kwargs else hook(self, args, output)
            if result is not None:
                output = result
        return output

    # ---- hooks ---------------------------------------------------------------------------------
    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False):
        """Call ``hook(module, args, output)`` after every forward (``hook(module, args, kwargs,
        output)`` with ``with_kwargs``); a non-None return value replaces the output.
        ``args`` is the tuple of positional inputs. Hooks run in registration order
        (``prepend=True`` puts this one first). Returns a :class:`RemovableHandle`.

        >>> from tinyvision import nn
        >>> import numpy as np, tinyvision as tv
        >>> seen = []
        >>> lin = nn.Linear(3, 2)
        >>> handle = lin.register_forward_hook(lambda m, args, out: seen.append(out.shape))
        >>> _ = lin(tv.tensor(np.ones((4, 3))))
        >>> handle.remove(); _ = lin(tv.tensor(np.ones((1, 3))))
        >>> seen
        [(4, 2)]
        """
        return self._add_hook(self._forward_hooks, hook, prepend, with_kwargs)

    def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False):
        """Call ``hook(module, args)`` before every forward; a non-None return value replaces
        the positional inputs (a single value is wrapped in a tuple). With ``with_kwargs``:
        ``hook(module, args, kwargs)`` returning None or ``(args, kwargs)``. Returns a
        :class:`RemovableHandle`."""
        return self._add_hook(self._forward_pre_hooks, hook, prepend, with_kwargs)

    def _add_hook(self, store, hook, prepend, with_kwargs):
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        handle = RemovableHandle(store, self._hooks_with_kwargs)
        store[handle.id] = hook
        if prepend:
            store.move_to_end(handle.id, last=False)
        if with_kwargs:
            self._hooks_with_kwargs[handle.id] = True
        return handle

    # ---- traversal ---------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """(name, module) for this module and every submodule, depth first, parents first
        (PyTorch's order and arguments). A module reachable under two names is listed once,
        under the first, unless ``remove_duplicate=False``; ``memo`` is the set of modules
        already seen (PyTorch's argument: modules in it, and below them, are skipped)."""
        if memo is None:
            memo = set()
        if self in memo:
            return
        if remove_duplicate:
            memo.add(self)
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

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

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, p in m._parameters.items():
                if p is None or (remove_duplicate and id(p) in seen):
                    continue  # a parameter shared by two modules is listed once, as PyTorch
                seen.add(id(p))
                yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, b in m._buffers.items():
                if b is None or (remove_duplicate and id(b) in seen):
                    continue
                seen.add(id(b))
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
        module, PyTorch's key order. A module shared by two parents appears under both names,
        as in PyTorch."""
        out = OrderedDict()
        for key, t in self._state_tensors(prefix.rstrip(".")).items():
            out[key] = t.numpy().copy()
        return out

    def _state_tensors(self, prefix: str = ""):
        """name -> the Parameter or buffer Tensor that ``state_dict`` saves under that name."""
        own = OrderedDict()
        for mprefix, m in self.named_modules(prefix=prefix, remove_duplicate=False):
            base = f"{mprefix}." if mprefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    own[base + name] = p
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    own[base + name] = b
        return own

    def _prepare_state_dict(self, state_dict, prefix: str):
        """Edit ``state_dict`` in place before ``load_state_dict`` matches keys (the part of
        PyTorch's ``_load_from_state_dict`` a layer overrides): drop or rename this module's
        keys, which start with ``prefix``. The default does nothing."""

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays into parameters and buffers by dotted name.

        Values may be NumPy arrays, tinyvision Tensors or torch tensors; each is cast to the
        dtype of the parameter it fills (as PyTorch's ``copy_``). Shapes must match exactly,
        whatever ``strict`` says; with ``strict`` the key sets must match too. Every problem is
        listed in one :class:`StateDictError` (a ValueError and a RuntimeError), in PyTorch's
        words; nothing is loaded unless everything can be. Object arrays (an array of None),
        strings and complex values are refused rather than turned into NaN.
        Returns ``(missing_keys, unexpected_keys)``, a named tuple as PyTorch's.

        Before keys are matched, every submodule's ``_prepare_state_dict(state_dict, prefix)``
        may edit a shallow copy of ``state_dict`` (the caller's dict is never changed).
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"load_state_dict: expected state_dict to be dict-like, got {type(state_dict).__name__}")
        state_dict = OrderedDict(state_dict)
        state_dict.pop("_metadata", None)  # torch's version bookkeeping, not a tensor
        for mprefix, m in self.named_modules(remove_duplicate=False):
            m._prepare_state_dict(state_dict, f"{mprefix}." if mprefix else "")
        own = self._state_tensors()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        bad_values, mismatches = [], []
        converted = {}
        for k, t in own.items():
            if k not in state_dict:
                continue
            try:
                arr = _to_numpy_value(k, state_dict[k])
            except StateDictError as e:
                bad_values.append(str(e).removeprefix("load_state_dict: "))
                continue
            if tuple(arr.shape) != t.shape:
                mismatches.append(
                    f"size mismatch for {k}: copying a param with shape {tuple(arr.shape)} from checkpoint, "
                    f"the shape in current model is {t.shape}."
                )
                continue
            converted[k] = arr
        problems = []
        if strict and missing:
            problems.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if strict and unexpected:
            problems.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
        problems += mismatches + bad_values
        if problems:
            raise StateDictError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(problems)
            )
        from ..backend import get_array_module

        with no_grad():
            for k, arr in converted.items():
                t = own[k]
                xp = get_array_module(t.data)
                t.data = xp.asarray(arr, dtype=t.data.dtype).copy()
                t._version += 1
        return _IncompatibleKeys(missing, unexpected)

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
