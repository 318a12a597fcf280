"""Activations: relu, leaky_relu, sigmoid, tanh, softmax, log_softmax.

Shapes: y and gx have x's shape. ReLU's gradient at exactly 0 is 0 (PyTorch's subgradient:
the mask is x > 0).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..kernels.dispatch import kernel

__all__ = ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "logsigmoid"]


def _check_dim(name, dim, ndim):
    from ._args import dim_index

    dim = dim_index(name, dim)
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{name}: dim={dim} is out of range for a tensor with {ndim} dimensions")
    return dim % max(ndim, 1)


class ReLU(Function):
    """y = max(x, 0).   dy/dx = [x > 0] (0 at x = 0)  =>  gx = gy * [x > 0] = gy * [y > 0].

    A NaN input gives NaN and passes the gradient through, as PyTorch (whose backward is
    ``gx = 0 where y <= 0 else gy``, and NaN <= 0 is false). The backward pass reads the saved
    output y (y <= 0 exactly where x <= 0, NaN included): no mask is kept. On the CPU the two passes are one
    kernel each (kernels/cpu/activation.py); elsewhere the NumPy/CuPy expressions below.
    """

    def forward(self, x):
        xp = get_array_module(x)
        if _kernel_arrays(x):
            y = kernel("activation", "relu_forward", x)(x.reshape(-1)).reshape(x.shape)
        else:
            y = xp.where(x <= 0, 0, x).astype(x.dtype, copy=False)  # NaN <= 0 is False: kept
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        xp = get_array_module(gy)
        if _kernel_arrays(gy, y):
            return kernel("activation", "relu_backward", gy, y)(gy.reshape(-1), y.reshape(-1)).reshape(gy.shape)
        return xp.where(y <= 0, 0, gy).astype(gy.dtype, copy=False)


def _kernel_arrays(*arrays):
    """True for C-contiguous NumPy float32/float64 arrays of one dtype: the CPU kernels
    (kernels/cpu/activation.py, chosen by kernels/dispatch.py) take them. Anything else (CuPy,
    float16, a strided view) runs the array formulas, on its own device."""
    a = arrays[0]
    return all(type(t) is np.ndarray and t.dtype == a.dtype and t.dtype in (np.float32, np.float64)
               and t.flags.c_contiguous for t in arrays)


class _ReluKernels:
    """relu_forward / relu_backward as chosen by the dispatch (fast, or the reference under use_impl)."""

    @staticmethod
    def relu_forward(x):
        return kernel("activation", "relu_forward", x)(x)

    @staticmethod
    def relu_backward(gy, y):
        return kernel("activation", "relu_backward", gy, y)(gy, y)


class LeakyReLU(Function):
    """y = x if x > 0 else s·x.   dy/dx = 1 if x > 0 else s (s at x = 0, as PyTorch)."""

    def __init__(self, negative_slope):
        self.s = negative_slope

    def forward(self, x):
        xp = get_array_module(x)
        self.mask = x > 0
        return xp.where(self.mask, x, x * self.s).astype(x.dtype, copy=False)

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.where(self.mask, gy, gy * self.s).astype(gy.dtype, copy=False)


class Sigmoid(Function):
    r"""y = 1 / (1 + e^{-x}).   dy/dx = y (1 - y)  =>  gx = gy * y * (1 - y).

    Stable form: y = (1 + tanh(x/2)) / 2, which cannot overflow for any x.
    """

    def forward(self, x):
        xp = get_array_module(x)
        y = 0.5 * (1.0 + xp.tanh(0.5 * x))
        self.save_for_backward(y)
        return y.astype(x.dtype, copy=False)

    def backward(self, gy):
        (y,) = self.saved
        return gy * y * (1 - y)


class LogSigmoid(Function):
    r"""y = log σ(x) = -log(1 + e^{-x}) = min(x, 0) - log(1 + e^{-|x|})   (stable form).

    dy/dx = 1 - σ(x) = σ(-x)  =>  gx = gy * σ(-x).
    """

    def forward(self, x):
        xp = get_array_module(x)
        self.save_for_backward(x)
        return (xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))).astype(x.dtype, copy=False)

    def backward(self, gy):
        (x,) = self.saved
        xp = get_array_module(x)
        return gy * (0.5 * (1.0 + xp.tanh(-0.5 * x)))


class Tanh(Function):
    """y = tanh x.   dy/dx = 1 - y^2  =>  gx = gy * (1 - y^2)."""

    def forward(self, x):
        xp = get_array_module(x)
        y = xp.tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * (1 - y * y)


class Softmax(Function):
    r"""y_i = e^{x_i} / sum_j e^{x_j} along ``dim``.

    Stable: subtract max_j x_j first (softmax is invariant to a shift).
    Jacobian dy_i/dx_k = y_i (δ_ik - y_k)  =>  gx = y * (gy - sum_i gy_i y_i)   (sum along dim).
    """

    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        xp = get_array_module(x)
        z = x - x.max(axis=self.dim, keepdims=True)
        e = xp.exp(z)
        y = e / e.sum(axis=self.dim, keepdims=True)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return y * (gy - (gy * y).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    r"""y_i = x_i - log sum_j e^{x_j} along ``dim``  (stable: log-sum-exp with the max subtracted).

    dy_i/dx_k = δ_ik - softmax(x)_k  =>  gx = gy - softmax(x) * sum_i gy_i   (sum along dim),
    with softmax(x) = e^y (no second normalisation).
    """

    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        xp = get_array_module(x)
        m = x.max(axis=self.dim, keepdims=True)
        lse = m + xp.log(xp.exp(x - m).sum(axis=self.dim, keepdims=True))
        y = x - lse
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        xp = get_array_module(y)
        return gy - xp.exp(y) * gy.sum(axis=self.dim, keepdims=True)


def relu(input, inplace: bool = False):
    """max(x, 0); the gradient at exactly 0 is 0. ``inplace`` is accepted for PyTorch
    compatibility and ignored (a new tensor is returned: tinyvision records no in-place ops).

    >>> import numpy as np, tinyvision as tv
    >>> relu(tv.tensor(np.array([-1.0, 0.0, 2.0]))).numpy().tolist()
    [0.0, 0.0, 2.0]
    """
    x = input  # PyTorch's argument names; the short math names below
    return ReLU()(x)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """x where x > 0, else negative_slope * x (gradient negative_slope at 0, as PyTorch).
    ``inplace`` is accepted for PyTorch compatibility and ignored (a new tensor is returned)."""
    x = input  # PyTorch's argument names; the short math names below
    return LeakyReLU(negative_slope)(x)


def sigmoid(input):
    """1 / (1 + e^{-x}), computed as (1 + tanh(x/2)) / 2 so it never overflows."""
    x = input  # PyTorch's argument names; the short math names below
    return Sigmoid()(x)


def logsigmoid(input):
    x = input  # PyTorch's argument names; the short math names below
    return LogSigmoid()(x)


def tanh(input):
    x = input  # PyTorch's argument names; the short math names below
    return Tanh()(x)


def softmax(input, dim: int):
    """Softmax along ``dim`` (required, as in modern PyTorch); see :class:`Softmax`.

    >>> import math, numpy as np, tinyvision as tv
    >>> softmax(tv.tensor(np.array([0.0, math.log(2.0)])), dim=0).numpy().round(6).tolist()
    [0.333333, 0.666667]
    """
    x = input  # PyTorch's argument names; the short math names below
    return Softmax(_check_dim("softmax", dim, x.ndim))(x)


def log_softmax(input, dim: int):
    """Numerically stable log-softmax along ``dim``; see :class:`LogSoftmax`.

    >>> import numpy as np, tinyvision as tv
    >>> log_softmax(tv.tensor(np.array([0.0, 1000.0])), dim=0).numpy().tolist()   # no -inf, no nan
    [-1000.0, 0.0]
    """
    x = input  # PyTorch's argument names; the short math names below
    return LogSoftmax(_check_dim("log_softmax", dim, x.ndim))(x)
