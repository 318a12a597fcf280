"""Weights between tinyvision and PyTorch, one to one, without pickle.

tinyvision modules use PyTorch's state_dict keys and layouts (conv weights ``(C_out, C_in/groups,
kH, kW)``, BatchNorm's ``running_mean``/``running_var``/``num_batches_tracked``), so moving
weights is a change of array type, never of names or shapes:

    from_torch(torch_model)          torch nn.Module or state dict -> OrderedDict[str, np.ndarray]
    to_torch(tv_model)               tinyvision Module or dict of arrays -> OrderedDict[str, torch.Tensor]
    to_torch(tv_model, torch_model)  ... and load it into ``torch_model`` (strict)

Both copy: changing the result never changes the source. dtypes are kept (float32 stays float32,
float64 stays float64, ``num_batches_tracked`` stays int64); the one exception is bfloat16,
which NumPy has no type for: ``from_torch`` widens it to float32 (exactly: every bfloat16 value
is a float32 value). torch is imported inside the calls only, so ``import tinyvision`` never
needs it.

>>> import torch, tinyvision as tv                                   # doctest: +SKIP
>>> from tinyvision.models import resnet18                          # doctest: +SKIP
>>> model = resnet18()                                               # doctest: +SKIP
>>> model.load_state_dict(tv.interop.from_torch(torchvision.models.resnet18()))  # doctest: +SKIP
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

__all__ = ["from_torch", "to_torch", "InteropError"]


class InteropError(TypeError):
    """A value that is not a tensor/array, or an object that is neither a module nor a state dict."""


def _is_torch_module(obj) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def from_torch(obj) -> "OrderedDict[str, np.ndarray]":
    """A torch ``nn.Module`` (its ``state_dict()``) or a state dict -> an OrderedDict of NumPy arrays.

    Keys and their order are the state dict's. Each value is detached, moved to the CPU and
    copied; its dtype is kept (bfloat16 becomes float32, NumPy having no bfloat16). Values that
    are not tensors (a module's ``_extra_state``, say) raise :class:`InteropError` naming the key.
    """
    import torch

    if _is_torch_module(obj):
        state = obj.state_dict()
    elif hasattr(obj, "items"):
        state = obj
    else:
        raise InteropError(f"from_torch: expected a torch nn.Module or a state dict, got {type(obj).__name__}")
    out = OrderedDict()
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InteropError(f"from_torch: {key!r} is a {type(value).__name__}, not a tensor")
        if value.layout != torch.strided:
            raise InteropError(f"from_torch: {key!r} has layout {value.layout}; only dense tensors convert")
        t = value.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.to(torch.float32)
        out[key] = t.numpy().copy()  # .numpy() shares memory with the tensor: copy
    return out


def to_torch(module_or_state, torch_module=None, strict: bool = True) -> "OrderedDict":
    """A tinyvision Module (its ``state_dict()``) or a mapping of names to arrays/Tensors ->
    an OrderedDict of torch tensors (CPU, same dtypes, copies).

    With ``torch_module`` (a torch ``nn.Module``), the tensors are also loaded into it with
    ``torch_module.load_state_dict(state, strict=strict)``, so a missing or misshapen key raises
    torch's error. Returns the OrderedDict either way.
    """
    import torch

    from .autograd import Tensor
    from .nn.module import Module

    if isinstance(module_or_state, Module):
        state = module_or_state.state_dict()
    elif _is_torch_module(module_or_state):
        raise InteropError("to_torch: got a torch nn.Module; it is torch already (from_torch goes the other way)")
    elif hasattr(module_or_state, "items"):
        state = module_or_state
    else:
        raise InteropError(
            f"to_torch: expected a tinyvision Module or a mapping of names to arrays, got {type(module_or_state).__name__}"
        )
    out = OrderedDict()
    for key, value in state.items():
        if isinstance(value, Tensor):
            arr = value.numpy()
        elif isinstance(value, np.ndarray) or np.isscalar(value):
            arr = np.asarray(value)
        elif isinstance(value, torch.Tensor):
            out[key] = value.detach().cpu().clone()
            continue
        else:
            raise InteropError(f"to_torch: {key!r} is a {type(value).__name__}, not an array or Tensor")
        if arr.dtype.kind not in "biufc":
            raise InteropError(f"to_torch: {key!r} has dtype {arr.dtype}; only numeric and bool arrays convert")
        # torch.from_numpy refuses non-native byte order and shares memory: a native C-order copy
        out[key] = torch.from_numpy(np.array(arr, dtype=arr.dtype.newbyteorder("="), order="C", copy=True))
    if torch_module is not None:
        if not _is_torch_module(torch_module):
            raise InteropError(f"to_torch: torch_module must be a torch nn.Module, got {type(torch_module).__name__}")
        torch_module.load_state_dict(out, strict=strict)
    return out
