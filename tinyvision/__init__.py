"""tinyvision: a from-scratch reference engine for computer vision.

>>> import numpy as np
>>> import tinyvision as tv
>>> x = tv.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad.numpy()
array([ 2., -4.,  6.])
"""
import importlib as _importlib

from .autograd import (
    Function,
    GradientError,
    Tensor,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    tensor,
)
from .backend import DeviceError, cupy_available, get_array_module, to_device
from .io import load, save
from .random import manual_seed

__version__ = "0.1.0"

# Subpackages load on first use (``tv.ops``, ``tv.metrics``...): importing tinyvision stays
# cheap and never compiles a Numba kernel nobody asked for.
_SUBMODULES = {
    "functional", "nn", "optim", "testing", "ops", "metrics", "losses", "models", "data",
    "kernels", "backend", "autograd", "viz", "cli", "random", "interop",
}


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tinyvision' has no attribute {name!r}")


__all__ = [
    "Tensor", "Function", "tensor", "no_grad", "enable_grad", "is_grad_enabled",
    "set_grad_enabled", "GradientError", "DeviceError", "cupy_available", "get_array_module",
    "to_device", "save", "load", "manual_seed",
]
