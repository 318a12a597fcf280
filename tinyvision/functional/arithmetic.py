"""Arithmetic with NumPy broadcasting: + - * / ** neg, and matmul.

Broadcasting and its gradient
-----------------------------
``x + y`` with x (3, 1) and y (4,) gives z (3, 4): each x[i, 0] is *used* four times, so its
gradient is the sum of the four upstream entries, ``gx = gz.sum(axis=1, keepdims=True)``.
In general the gradient of a broadcast input is the upstream gradient summed over every axis
that broadcasting stretched (``sum_to_shape``). Shapes that do not broadcast raise a
ValueError naming the operation and both shapes, before any arithmetic runs.

dtypes follow PyTorch's promotion (``tinyvision.autograd.result_type``), not NumPy's: a float32
tensor plus an int64 tensor is float32, a 0-d float64 value does not widen a float32 tensor, and
integer division ``/`` gives float32 (true division, as ``torch.div``).
"""
from __future__ import annotations

from contextlib import nullcontext as _nullcontext

import numpy as np

from ..autograd import Function, promote, result_type, sum_to_shape
from ..backend import get_array_module
from ..kernels.cpu import _threads

__all__ = ["add", "sub", "mul", "div", "pow", "neg", "matmul", "sum_to_shape", "broadcast_shapes"]


def broadcast_shapes(op: str, *shapes):
    """The broadcast shape, or a ValueError naming ``op`` and the shapes."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} do not broadcast"
        ) from None


def _shape(x):
    return tuple(getattr(x, "shape", ()))


def _grad_for(x, g):
    """Gradient for input x (None when x is a Python scalar), reduced to x's shape and dtype."""
    if not hasattr(x, "shape"):
        return None
    return sum_to_shape(g, x.shape).astype(x.dtype, copy=False)


class _Meta:
    """Shape and dtype of an operand, without its values (all that + and - need backward).

    Keeping only these means an in-place change of x or y after ``x + y`` does not
    invalidate the sum's backward — as in PyTorch.
    """

    __slots__ = ("shape", "dtype")

    def __init__(self, a):
        self.shape = tuple(a.shape) if hasattr(a, "shape") else None  # None: a Python scalar
        self.dtype = getattr(a, "dtype", None)


def _grad_meta(m, g):
    if m.shape is None:
        return None
    return sum_to_shape(g, m.shape).astype(m.dtype, copy=False)


class Add(Function):
    """z = x + y.   Shapes: x, y broadcast to z.   gx = gz, gy = gz (each summed to its shape)."""

    def forward(self, x, y):
        broadcast_shapes("add", _shape(x), _shape(y))
        x, y = promote(x, y)
        self.metas = (_Meta(x), _Meta(y))
        return x + y

    def backward(self, gz):
        mx, my = self.metas
        return _grad_meta(mx, gz), _grad_meta(my, gz)


class Sub(Function):
    """z = x - y.   gx = gz, gy = -gz (each summed to its shape)."""

    def forward(self, x, y):
        broadcast_shapes("sub", _shape(x), _shape(y))
        x, y = promote(x, y)
        self.metas = (_Meta(x), _Meta(y))
        return x - y

    def backward(self, gz):
        mx, my = self.metas
        gy = _grad_meta(my, gz)
        return _grad_meta(mx, gz), (-gy if gy is not None else None)


class Mul(Function):
    """z = x * y.   dz/dx = y, dz/dy = x  =>  gx = gz * y, gy = gz * x (summed to shape)."""

    def forward(self, x, y):
        broadcast_shapes("mul", _shape(x), _shape(y))
        x, y = promote(x, y)
        self.save_for_backward(x, y)
        return x * y

    def backward(self, gz):
        x, y = self.saved
        return _grad_for(x, gz * y), _grad_for(y, gz * x)


class Div(Function):
    """z = x / y.   dz/dx = 1/y, dz/dy = -x/y^2  =>  gx = gz / y, gy = -gz * x / y^2."""

    def forward(self, x, y):
        broadcast_shapes("div", _shape(x), _shape(y))
        x, y = promote(x, y)
        if result_type(x, y).kind != "f":   # true division of integers gives the default float
            x, y, _ = promote(x, y, 1.0)
        self.save_for_backward(x, y)
        return x / y

    def backward(self, gz):
        x, y = self.saved
        gx = gz / y
        return _grad_for(x, gx), _grad_for(y, -gx * x / y)


class Pow(Function):
    """z = x ** y.

    dz/dx = y x^(y-1);  dz/dy = x^y log x = z log x.
    Conventions at the singular points, PyTorch's:
    * where y = 0, gx = 0 (z = x^0 = 1 is constant in x, even at x = 0 where y x^(y-1) is 0·inf);
    * the y-gradient is only needed when y is a tensor; where z = 0 it is 0 (the term z·log x
      is 0·(-inf) at x = 0 and is masked to 0).
    """

    def forward(self, x, y):
        broadcast_shapes("pow", _shape(x), _shape(y))
        x, y = promote(x, y)
        z = x**y
        self.save_for_backward(x, y, z)
        return z

    def backward(self, gz):
        x, y, z = self.saved
        xp = get_array_module(gz)
        gx = None
        if hasattr(x, "shape"):
            with xp.errstate(divide="ignore", invalid="ignore") if hasattr(xp, "errstate") else _nullcontext():
                dzdx = xp.where(y == 0, 0.0, y * x ** (y - 1))
            gx = _grad_for(x, gz * dzdx)
        gy = None
        if hasattr(y, "shape"):
            with_log = xp.where(z == 0, 0.0, z * xp.log(xp.where(x == 0, 1.0, x)))
            gy = _grad_for(y, gz * with_log)
        return gx, gy


class Neg(Function):
    """y = -x.   gx = -gy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


def _blas_context(x, y):
    """Single-threaded BLAS for a small product of NumPy arrays (see _threads.blas_for_product);
    the product x @ y has about max(x.size * m, y.size * n) multiply-adds (x (..., n, k),
    y (..., k, m), either side's batch dims broadcast against the other's)."""
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
        return _nullcontext()
    n = x.shape[-2] if x.ndim > 1 else 1
    m = y.shape[-1] if y.ndim > 1 else 1
    return _threads.blas_for_product(max(x.size * m, y.size * n))


class MatMul(Function):
    r"""z = x @ y, NumPy/PyTorch matmul semantics (batched, broadcast batch dims).

    Shapes: x (..., n, k), y (..., k, m) -> z (..., n, m); 1-D operands are promoted
    (x (k,) -> (1, k), y (k,) -> (k, 1)) and the added axis removed afterwards.
    z[i, j] = sum_k x[i, k] y[k, j]  =>  gx = gz @ y^T,  gy = x^T @ gz
    (batch dims that were broadcast are summed back).
    """

    def forward(self, x, y):
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(f"matmul: both arguments need at least 1 dimension, got {x.shape} and {y.shape}")
        kx = x.shape[-1]
        ky = y.shape[0] if y.ndim == 1 else y.shape[-2]
        if kx != ky:
            raise ValueError(
                f"matmul: shapes {tuple(x.shape)} and {tuple(y.shape)} are not aligned "
                f"(inner dimensions {kx} and {ky} differ)"
            )
        if x.ndim > 2 or y.ndim > 2:
            broadcast_shapes("matmul (batch dims)", x.shape[:-2], y.shape[:-2] if y.ndim > 1 else ())
        self.save_for_backward(x, y)
        with _blas_context(x, y):
            return x @ y

    def backward(self, gz):
        x, y = self.saved
        xp = get_array_module(gz)
        # Undo the 1-D promotion: view x as (1, k), y as (k, 1), and give gz back the axes
        # that matmul removed, so every case is the batched (..., n, k) @ (..., k, m) one.
        x2 = x[None, :] if x.ndim == 1 else x  # (1, k)
        y2 = y[:, None] if y.ndim == 1 else y  # (k, 1)
        g2 = gz
        if y.ndim == 1:
            g2 = g2[..., None]  # (..., n) -> (..., n, 1)
        if x.ndim == 1:
            g2 = g2[..., None, :]  # (..., m) -> (..., 1, m)
        with _blas_context(x2, y2):
            gx = g2 @ xp.swapaxes(y2, -1, -2)  # (..., n, m) @ (..., m, k) -> (..., n, k)
            gy = xp.swapaxes(x2, -1, -2) @ g2  # (..., k, n) @ (..., n, m) -> (..., k, m)
        if x.ndim == 1:
            gx = gx[..., 0, :]  # (..., 1, k) -> (..., k)
        if y.ndim == 1:
            gy = gy[..., 0]  # (..., k, 1) -> (..., k)
        # Batch dims that broadcasting stretched are summed back.
        gx = sum_to_shape(gx, x.shape).astype(x.dtype, copy=False)
        gy = sum_to_shape(gy, y.shape).astype(y.dtype, copy=False)
        return gx, gy


def add(input, other):
    return Add()(input, other)


def sub(input, other):
    return Sub()(input, other)


def mul(input, other):
    return Mul()(input, other)


def div(input, other):
    return Div()(input, other)


def pow(input, exponent):  # noqa: A001 - PyTorch's name
    return Pow()(input, exponent)


def neg(input):
    return Neg()(input)


def matmul(input, other):
    """Matrix product with torch.matmul's rules (1-D promotion, broadcast batch dims).

    >>> import numpy as np, tinyvision as tv
    >>> matmul(tv.tensor(np.array([[1.0, 2.0], [3.0, 4.0]])), np.array([1.0, 1.0])).numpy().tolist()
    [3.0, 7.0]
    """
    return MatMul()(input, other)
