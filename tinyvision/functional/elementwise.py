"""Elementwise math: exp, log, sqrt, abs, clamp, maximum, minimum, where.

Shapes: every op here maps x (any shape) to y of the same (broadcast) shape; gx has x's shape.
Conventions at the kinks, as PyTorch:
* abs'(0) = 0 (sign(0) = 0);
* clamp with number bounds passes the gradient where min < x < max, boundaries excluded
  (PyTorch >= 2.14); with tensor bounds an x equal to a bound gets half (the tie rule of
  maximum/minimum, which is how PyTorch differentiates clamp(Tensor, Tensor, Tensor));
* maximum/minimum split the gradient in half between x and y where x == y.
"""
from __future__ import annotations

from ..autograd import Function, is_grad_enabled, promote
from ..backend import get_array_module
from .arithmetic import _grad_for, _shape, broadcast_shapes

__all__ = ["exp", "log", "sqrt", "abs", "clamp", "clip", "maximum", "minimum", "where", "sign"]


class Exp(Function):
    """y = e^x.   dy/dx = e^x = y  =>  gx = gy * y (reuse y: no second exp)."""

    def forward(self, x):
        xp = get_array_module(x)
        y = xp.exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * y


class Log(Function):
    """y = ln x.   dy/dx = 1/x  =>  gx = gy / x.   (x <= 0 gives nan/-inf, as PyTorch.)"""

    def forward(self, x):
        xp = get_array_module(x)
        self.save_for_backward(x)
        return xp.log(x)

    def backward(self, gy):
        (x,) = self.saved
        return gy / x


class Sqrt(Function):
    """y = sqrt(x).   dy/dx = 1 / (2 sqrt(x)) = 1/(2y)  =>  gx = gy / (2 y)   (inf at 0)."""

    def forward(self, x):
        xp = get_array_module(x)
        y = xp.sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy / (2 * y)


class Abs(Function):
    """y = |x|.   dy/dx = sign(x), with sign(0) = 0 (PyTorch's subgradient)  =>  gx = gy * sign(x)."""

    def forward(self, x):
        xp = get_array_module(x)
        self.save_for_backward(x)
        return xp.abs(x)

    def backward(self, gy):
        (x,) = self.saved
        xp = get_array_module(x)
        return gy * xp.sign(x)


class Sign(Function):
    """y = sign(x).   Piecewise constant: gx = 0 everywhere (PyTorch's convention)."""

    def forward(self, x):
        xp = get_array_module(x)
        self.shape_dtype = (x.shape, x.dtype)
        return xp.sign(x)

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.zeros(*self.shape_dtype)


class Clamp(Function):
    """y = min(max(x, lo), hi).

    dy/dx, as PyTorch 2.14 defines it at the kinks:
    * number bounds: 1 where lo < x < hi strictly, else 0 (a value sitting on a bound gets no
      gradient: the subgradient PyTorch chose, since the output is constant on that side);
    * tensor bounds: 1 strictly inside; where x equals a bound it gets 1/2 per bound it equals
      (clamp read as maximum then minimum, each tie split in half); 0 where lo > hi (y = hi).
    Tensor bounds are constants here (use maximum/minimum to differentiate through them).
    """

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = get_array_module(x)
        if self.lo is not None and self.hi is not None and not hasattr(self.lo, "shape") and self.lo > self.hi:
            # PyTorch's rule when min > max: every element becomes max.
            y = xp.full_like(x, self.hi)
        else:
            y = x
            if self.lo is not None:
                y = xp.maximum(y, self.lo)
            if self.hi is not None:
                y = xp.minimum(y, self.hi)
        self.save_for_backward(x)
        return y.astype(x.dtype, copy=False)

    def backward(self, gy):
        (x,) = self.saved
        xp = get_array_module(x)
        lo, hi = self.lo, self.hi
        tensor_bounds = any(getattr(b, "ndim", 0) > 0 for b in (lo, hi))
        inside = xp.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x > lo
        if hi is not None:
            inside &= x < hi
        slope = inside.astype(gy.dtype)
        if tensor_bounds:
            # ties with a tensor bound take half each; nothing passes where lo > hi
            if lo is not None:
                slope = slope + 0.5 * (x == lo)
            if hi is not None:
                slope = slope + 0.5 * (x == hi)
            if lo is not None and hi is not None:
                slope = xp.where(xp.asarray(lo) > xp.asarray(hi), 0, slope)
        return (gy * slope).astype(gy.dtype, copy=False)


class Maximum(Function):
    """z = max(x, y) elementwise (broadcasting).

    gx = gz where x > y, gy = gz where y > x; where x == y each gets gz / 2 (PyTorch's tie rule).
    """

    def forward(self, x, y):
        xp = get_array_module(x, y)
        broadcast_shapes("maximum", _shape(x), _shape(y))
        x, y = promote(x, y)
        self.save_for_backward(x, y)
        return xp.maximum(x, y)

    def backward(self, gz):
        x, y = self.saved
        xp = get_array_module(gz)
        share_x = xp.where(x > y, 1.0, xp.where(x == y, 0.5, 0.0)).astype(gz.dtype)
        return _grad_for(x, gz * share_x), _grad_for(y, gz * (1 - share_x))


class Minimum(Function):
    """z = min(x, y) elementwise. gx = gz where x < y, gy where y < x; ties split in half."""

    def forward(self, x, y):
        xp = get_array_module(x, y)
        broadcast_shapes("minimum", _shape(x), _shape(y))
        x, y = promote(x, y)
        self.save_for_backward(x, y)
        return xp.minimum(x, y)

    def backward(self, gz):
        x, y = self.saved
        xp = get_array_module(gz)
        share_x = xp.where(x < y, 1.0, xp.where(x == y, 0.5, 0.0)).astype(gz.dtype)
        return _grad_for(x, gz * share_x), _grad_for(y, gz * (1 - share_x))


class Where(Function):
    """z = x where condition else y (broadcasting).   gx = gz·[c], gy = gz·[not c]; c gets none."""

    def forward(self, condition, x, y):
        xp = get_array_module(condition, x, y)
        if getattr(condition, "dtype", None) is not None and condition.dtype != bool:
            condition = condition.astype(bool)
        broadcast_shapes("where", _shape(condition), _shape(x), _shape(y))
        x, y = promote(x, y)
        self.save_for_backward(condition, x, y)
        return xp.where(condition, x, y)

    def backward(self, gz):
        c, x, y = self.saved
        xp = get_array_module(gz)
        zero = xp.zeros((), dtype=gz.dtype)
        return None, _grad_for(x, xp.where(c, gz, zero)), _grad_for(y, xp.where(c, zero, gz))


def exp(input):
    return Exp()(input)


def log(input):
    return Log()(input)


def sqrt(input):
    return Sqrt()(input)


def abs(input):  # noqa: A001 - PyTorch's name
    return Abs()(input)


def sign(input):
    return Sign()(input)


def clamp(input, min=None, max=None):  # noqa: A002 - PyTorch's names
    """Clamp x into [min, max] (either may be None). Gradient passes where min < x < max.

    Bounds may be numbers or tensors (broadcast against x); tensor bounds are constants here
    (one that requires grad is refused rather than silently not differentiated). If
    min > max every element becomes max, as in PyTorch.

    >>> import numpy as np, tinyvision as tv
    >>> clamp(tv.tensor(np.array([-2.0, 0.5, 2.0])), -1.0, 1.0).numpy()
    array([-1. ,  0.5,  1. ])
    """
    x = input   # PyTorch's argument names outside, math names inside
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    for name, bound in (("min", min), ("max", max)):
        if getattr(bound, "requires_grad", False) and is_grad_enabled():
            raise TypeError(
                f"clamp: the {name} bound (a tensor of shape {bound.shape}) requires grad, but clamp treats "
                "its bounds as constants; use F.maximum / F.minimum to differentiate through the bounds"
            )
    unwrap = lambda v: getattr(v, "data", v)  # noqa: E731 - tensor bounds act as constants
    return Clamp(unwrap(min), unwrap(max))(x)


clip = clamp


def maximum(input, other):
    return Maximum()(input, other)


def minimum(input, other):
    return Minimum()(input, other)


def where(condition, input, other):
    """Elementwise select, PyTorch's ``torch.where(condition, x, y)``."""
    return Where()(condition, input, other)
