"""Reductions: sum, mean, max/min (with indices), amax/amin, var, std, argmax/argmin.

Shapes: x (...) -> y with the reduced axes removed (or kept as size 1 with ``keepdim=True``);
``dim=None`` reduces everything. ``dim`` may be an int or a tuple of ints, negative allowed.

The gradient of a reduction broadcasts gy back over the reduced axes: every x that fed the
sum receives gy (sum), gy / n (mean), or gy only where it *was* the max.

Max ties (PyTorch's conventions, kept here):
* ``max(x)`` / ``amax(x, dim)``: the gradient is split **evenly** among all tied maxima;
* ``max(x, dim)`` returns (values, indices) with the index of the **first** maximum, and the
  whole gradient goes to that one element.
"""
from __future__ import annotations

import builtins
from collections import namedtuple

from ..autograd import Function
from ..backend import get_array_module
from ._args import dim_index

__all__ = ["sum", "mean", "max", "min", "amax", "amin", "var", "std", "argmax", "argmin"]

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _axes(name, dim, ndim):
    """Normalise ``dim`` to a sorted tuple of non-negative axes (None -> all)."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if not isinstance(dim, (tuple, list)) else tuple(dim)
    dims = tuple(dim_index(name, d) for d in dims)
    out = []
    for d in dims:
        if not -builtins.max(ndim, 1) <= d < builtins.max(ndim, 1):
            raise ValueError(f"{name}: dim={d} is out of range for a tensor with {ndim} dimensions")
        out.append(d % builtins.max(ndim, 1) if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: dim {dims} repeats an axis")
    return tuple(sorted(out)) if ndim else ()


def _expand_back(g, shape, axes, keepdim):
    """Re-insert the reduced axes of g (size 1) so it broadcasts against an input of ``shape``."""
    xp = get_array_module(g)
    if not keepdim:
        for a in axes:
            g = xp.expand_dims(g, a)
    return xp.broadcast_to(g, shape)


class Sum(Function):
    """y = sum over axes of x.   dy/dx = 1  =>  gx = gy broadcast back over the axes."""

    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        self.shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        return _expand_back(gy, self.shape, self.axes, self.keepdim).copy()


class Mean(Function):
    """y = (1/n) sum over axes of x, n = number of reduced elements.   gx = gy / n, broadcast back."""

    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        self.shape = x.shape
        return x.mean(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        n = 1
        for a in self.axes:
            n *= self.shape[a]
        return _expand_back(gy / n, self.shape, self.axes, self.keepdim).copy()


class AMax(Function):
    """y = max over axes (amax/amin when ``take_min``).

    Ties: the gradient is shared evenly by the k tied extreme elements, gx = gy * [x == y] / k.
    """

    def __init__(self, axes, keepdim, take_min=False):
        self.axes, self.keepdim, self.take_min = axes, keepdim, take_min

    def forward(self, x):
        y = (x.min if self.take_min else x.max)(axis=self.axes, keepdims=True)
        self.save_for_backward(x, y)
        return y if self.keepdim else y.reshape([s for i, s in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        x, y = self.saved
        hit = (x == y).astype(gy.dtype)
        k = hit.sum(axis=self.axes, keepdims=True)
        return hit / k * _expand_back(gy, x.shape, self.axes, self.keepdim)


class MaxDim(Function):
    """(values, indices) = max of x along one dim (min when ``take_min``); first index on ties.

    gx = gy scattered to the returned index: gx[..., idx, ...] = gy, 0 elsewhere.
    """

    non_differentiable = (1,)

    def __init__(self, axis, keepdim, take_min=False):
        self.axis, self.keepdim, self.take_min = axis, keepdim, take_min

    def forward(self, x):
        xp = get_array_module(x)
        # argmax returns the first occurrence of the maximum; NaN wins, as in PyTorch.
        idx = (xp.argmin if self.take_min else xp.argmax)(x, axis=self.axis, keepdims=True)
        values = xp.take_along_axis(x, idx, axis=self.axis)
        self.shape, self.idx = x.shape, idx
        if not self.keepdim:
            values = xp.squeeze(values, axis=self.axis)
            idx = xp.squeeze(idx, axis=self.axis)
        return values, idx.astype(xp.int64)

    def backward(self, gy, _gidx):
        xp = get_array_module(gy)
        if not self.keepdim:
            gy = xp.expand_dims(gy, self.axis)
        # one-hot along the axis: position k == the kept index (idx has size 1 on that axis)
        positions = xp.arange(self.shape[self.axis]).reshape(
            [-1 if a == self.axis else 1 for a in range(len(self.shape))]
        )
        zero = xp.zeros((), dtype=gy.dtype)
        return xp.where(positions == self.idx, gy, zero)


class Var(Function):
    r"""y = sum (x - m)^2 / (n - c) over axes, m the mean, c the correction (1: unbiased, PyTorch's default).

    dy/dx_i = 2 (x_i - m) / (n - c)   (the d m / d x_i terms cancel: sum_j (x_j - m) = 0).
    n - c <= 0 gives inf/nan, as PyTorch.
    """

    def __init__(self, axes, correction, keepdim):
        self.axes, self.correction, self.keepdim = axes, correction, keepdim

    def forward(self, x):
        n = 1
        for a in self.axes:
            n *= x.shape[a]
        self.denom = n - self.correction
        d = x - x.mean(axis=self.axes, keepdims=True)
        self.save_for_backward(d)
        self.shape = x.shape
        xp = get_array_module(x)
        with _errstate(xp):
            return (d * d).sum(axis=self.axes, keepdims=self.keepdim) / self.denom

    def backward(self, gy):
        (d,) = self.saved
        xp = get_array_module(d)
        with _errstate(xp):
            return _expand_back(gy, self.shape, self.axes, self.keepdim) * (2.0 / self.denom if self.denom else xp.inf) * d


def _numel(x):
    n = 1
    for s in x.shape:
        n *= s
    return n


def _errstate(xp):
    import contextlib

    return xp.errstate(divide="ignore", invalid="ignore") if hasattr(xp, "errstate") else contextlib.nullcontext()


def sum(input, dim=None, keepdim: bool = False):  # noqa: A001 - PyTorch's name
    """Sum over ``dim`` (an int, a tuple, or None for all), as torch.sum."""
    return Sum(_axes("sum", dim, input.ndim), keepdim)(input)


def mean(input, dim=None, keepdim: bool = False):
    """Mean over ``dim`` (an int, a tuple, or None for all), as torch.mean; floats only."""
    x = input   # PyTorch's argument names outside, math names inside
    if x.dtype.kind not in "fc":
        raise TypeError(f"mean: needs a floating-point tensor, got dtype {x.dtype} (shape {tuple(x.shape)})")
    return Mean(_axes("mean", dim, x.ndim), keepdim)(x)


def amax(input, dim=None, keepdim: bool = False):
    """Max over ``dim`` (all by default); ties share the gradient evenly."""
    x = input   # PyTorch's argument names outside, math names inside
    if _numel(x) == 0:
        raise ValueError(f"amax: the input of shape {tuple(x.shape)} is empty")
    return AMax(_axes("amax", dim, x.ndim), keepdim)(x)


def amin(input, dim=None, keepdim: bool = False):
    x = input   # PyTorch's argument names outside, math names inside
    if _numel(x) == 0:
        raise ValueError(f"amin: the input of shape {tuple(x.shape)} is empty")
    return AMax(_axes("amin", dim, x.ndim), keepdim, take_min=True)(x)


def max(input, dim=None, keepdim: bool = False):  # noqa: A001 - PyTorch's name
    """``max(x)`` -> the maximum (ties share the gradient); ``max(x, dim)`` -> (values, indices).

    The two tie conventions are PyTorch's (see the module docstring):

    >>> import numpy as np, tinyvision as tv
    >>> x = tv.tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    >>> max(x).backward()
    >>> x.grad.numpy().tolist()                   # shared by the two tied maxima
    [0.0, 0.5, 0.5]
    >>> x.grad = None
    >>> values, indices = max(x, dim=0)
    >>> values.backward()
    >>> indices.item(), x.grad.numpy().tolist()   # all to the first one
    (1, [0.0, 1.0, 0.0])
    """
    x = input   # PyTorch's argument names outside, math names inside
    if dim is None:
        return amax(x)
    if not isinstance(dim, int):
        raise TypeError(f"max: dim must be an int, got {dim!r} (use amax for several dims)")
    if _numel(x) == 0:
        raise ValueError(f"max: the input of shape {tuple(x.shape)} is empty")
    (axis,) = _axes("max", dim, x.ndim) or (None,)
    if axis is None:  # a 0-d tensor (dim 0 or -1): its value, index 0, as PyTorch
        from .shape import reshape

        return ValuesIndices(*MaxDim(0, False)(reshape(x, (1,))))
    return ValuesIndices(*MaxDim(axis, keepdim)(x))


def min(input, dim=None, keepdim: bool = False):  # noqa: A001 - PyTorch's name
    """``min(x)`` -> the minimum; ``min(x, dim)`` -> (values, indices), first index on ties."""
    x = input   # PyTorch's argument names outside, math names inside
    if dim is None:
        return amin(x)
    if not isinstance(dim, int):
        raise TypeError(f"min: dim must be an int, got {dim!r} (use amin for several dims)")
    if _numel(x) == 0:
        raise ValueError(f"min: the input of shape {tuple(x.shape)} is empty")
    (axis,) = _axes("min", dim, x.ndim) or (None,)
    if axis is None:  # a 0-d tensor (dim 0 or -1): its value, index 0, as PyTorch
        from .shape import reshape

        return ValuesIndices(*MaxDim(0, False, take_min=True)(reshape(x, (1,))))
    return ValuesIndices(*MaxDim(axis, keepdim, take_min=True)(x))


def var(input, dim=None, unbiased: bool = True, keepdim: bool = False, correction=None):
    """Variance over ``dim``; ``correction`` (default 1 if unbiased else 0) is Bessel's correction.

    >>> import numpy as np, tinyvision as tv
    >>> x = tv.tensor(np.array([1.0, 2.0, 3.0, 4.0]))
    >>> round(var(x).item(), 12), var(x, unbiased=False).item()     # 5/3 and 5/4
    (1.666666666667, 1.25)
    """
    x = input   # PyTorch's argument names outside, math names inside
    c = (1 if unbiased else 0) if correction is None else correction
    return Var(_axes("var", dim, x.ndim), c, keepdim)(x)


def std(input, dim=None, unbiased: bool = True, keepdim: bool = False, correction=None):
    """sqrt(var): gx = gy / (2 std) * dvar/dx."""
    x = input   # PyTorch's argument names outside, math names inside
    from .elementwise import sqrt

    return sqrt(var(x, dim, unbiased=unbiased, keepdim=keepdim, correction=correction))


def argmax(input, dim=None, keepdim: bool = False):
    """Index of the first maximum (flattened when dim is None). Not differentiable."""
    x = input   # PyTorch's argument names outside, math names inside
    from ..autograd import Tensor

    data = getattr(x, "data", x)
    xp = get_array_module(data)
    if dim is None:
        if data.size == 0:
            raise ValueError(f"argmax: the input of shape {tuple(data.shape)} is empty (give a dim to reduce "
                             "over a non-empty axis)")
        return Tensor(xp.asarray(xp.argmax(data)).astype(xp.int64))
    (axis,) = _axes("argmax", dim, data.ndim) or (None,)
    if axis is None:  # a 0-d tensor: index 0, as PyTorch
        return Tensor(xp.zeros((), dtype=xp.int64))
    if data.shape[axis] == 0:
        raise ValueError(f"argmax: dim={dim} of the input of shape {tuple(data.shape)} is empty")
    return Tensor(xp.argmax(data, axis=axis, keepdims=keepdim).astype(xp.int64))


def argmin(input, dim=None, keepdim: bool = False):
    """Index of the first minimum (flattened when dim is None). Not differentiable."""
    x = input   # PyTorch's argument names outside, math names inside
    from ..autograd import Tensor

    data = getattr(x, "data", x)
    xp = get_array_module(data)
    if dim is None:
        if data.size == 0:
            raise ValueError(f"argmin: the input of shape {tuple(data.shape)} is empty (give a dim to reduce "
                             "over a non-empty axis)")
        return Tensor(xp.asarray(xp.argmin(data)).astype(xp.int64))
    (axis,) = _axes("argmin", dim, data.ndim) or (None,)
    if axis is None:  # a 0-d tensor: index 0, as PyTorch
        return Tensor(xp.zeros((), dtype=xp.int64))
    if data.shape[axis] == 0:
        raise ValueError(f"argmin: dim={dim} of the input of shape {tuple(data.shape)} is empty")
    return Tensor(xp.argmin(data, axis=axis, keepdims=keepdim).astype(xp.int64))
