"""Shape and indexing ops: reshape/view, transpose/permute, flatten, (un)squeeze, expand,
indexing, cat, stack, pad, clone, dtype casts and device moves.

None of these changes a value, so every gradient is the same movement run backwards:
reshape back, transpose back, cut the concatenation apart, slice the padding off, and for
indexing *scatter-add* gy into zeros: an element picked twice (``x[[0, 0]]``) receives both
upstream entries.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..backend import get_array_module, scatter_add, to_device as _to_device
from ._args import dim_index

__all__ = [
    "reshape", "view", "transpose", "permute", "flatten", "squeeze", "unsqueeze", "expand",
    "getitem", "cat", "concat", "stack", "pad", "clone", "astype", "to_device",
]


class Reshape(Function):
    """y = x viewed with a new shape (same elements, C order).   gx = gy reshaped to x's shape."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot view a tensor of shape {tuple(x.shape)} ({x.size} elements) as {self.shape}"
            ) from None

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Permute(Function):
    """y = x with axes reordered: y.shape[i] = x.shape[dims[i]].   gx = gy permuted by the inverse."""

    def __init__(self, dims):
        self.dims = dims

    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, gy):
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return gy.transpose(inverse)


class Expand(Function):
    """y = x broadcast to ``shape``.   gx = gy summed over the broadcast axes."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        xp = get_array_module(x)
        self.in_shape = x.shape
        try:
            return xp.broadcast_to(x, self.shape)
        except ValueError:
            raise ValueError(f"expand: a tensor of shape {tuple(x.shape)} cannot be expanded to {self.shape}") from None

    def backward(self, gy):
        from .arithmetic import sum_to_shape

        return sum_to_shape(gy, self.in_shape)


def _unwrap_index(index):
    """Tensors in an index become their arrays; a list becomes an index array (NumPy's rule)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _index_on(xp, index):
    """Move the index arrays of ``index`` to the array module ``xp`` of the indexed tensor."""
    if xp is np:
        return index
    if isinstance(index, tuple):
        return tuple(xp.asarray(i) if isinstance(i, np.ndarray) else i for i in index)
    return xp.asarray(index) if isinstance(index, np.ndarray) else index


class GetItem(Function):
    """y = x[index] — basic slicing, integer arrays, boolean masks (NumPy semantics).

    gx = zeros like x, then gx[index] += gy with *scatter-add*: when integer indexing picks
    an element several times, each pick's upstream gradient is added (not overwritten).
    """

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.shape, self.dtype = x.shape, x.dtype
        self.index = _index_on(get_array_module(x), self.index)
        try:
            return x[self.index]
        except IndexError as e:
            raise IndexError(f"index {self.index!r} is invalid for a tensor of shape {tuple(x.shape)}: {e}") from None

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.shape, dtype=self.dtype)
        scatter_add(gx, self.index, gy)
        return gx


class Cat(Function):
    """y = concatenation of xs along dim.   g x_k = the slice of gy that x_k filled."""

    def __init__(self, dim):
        self.dim = dim

    def forward(self, *xs):
        xp = get_array_module(*xs)
        self.sizes = [x.shape[self.dim] for x in xs]
        return xp.concatenate(xs, axis=self.dim)

    def backward(self, gy):
        xp = get_array_module(gy)
        splits = list(np.cumsum(self.sizes)[:-1])
        return tuple(xp.split(gy, splits, axis=self.dim))


class Stack(Function):
    """y = xs stacked along a new axis dim.   g x_k = gy taken at index k of that axis."""

    def __init__(self, dim):
        self.dim = dim

    def forward(self, *xs):
        xp = get_array_module(*xs)
        return xp.stack(xs, axis=self.dim)

    def backward(self, gy):
        xp = get_array_module(gy)
        return tuple(xp.take(gy, k, axis=self.dim) for k in range(gy.shape[self.dim]))


class Pad(Function):
    """Constant, reflect or replicate padding, PyTorch's F.pad.

    ``pad`` lists (before, after) pairs starting from the **last** axis:
    (left, right, top, bottom) pads W then H.
    Constant: gx = gy with the border sliced off. Reflect/replicate copy interior values
    into the border, so their gradient scatter-adds the border back onto the copied elements.
    """

    def __init__(self, widths, mode, value):
        self.widths, self.mode, self.value = widths, mode, value

    def forward(self, x):
        xp = get_array_module(x)
        self.shape = x.shape
        if self.mode == "constant":
            return xp.pad(x, self.widths, mode="constant", constant_values=self.value)
        np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[self.mode]
        # Index arrays (position of each padded element in x) make the backward a scatter-add.
        self.index = tuple(
            xp.pad(xp.arange(n), w, mode=np_mode).reshape([-1 if i == a else 1 for i in range(x.ndim)])
            for a, (n, w) in enumerate(zip(x.shape, self.widths))
        )
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        if self.mode == "constant":
            inner = tuple(slice(b, gy.shape[a] - e) for a, (b, e) in enumerate(self.widths))
            return gy[inner].copy()
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        scatter_add(gx, self.index, gy)
        return gx


class Clone(Function):
    """y = a copy of x.   gx = gy."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


class AsType(Function):
    """y = x cast to a dtype.   gx = gy cast back to x's dtype."""

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.in_dtype)


class ToDevice(Function):
    """y = x moved to another device.   gx = gy moved back."""

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        from ..backend import device_of

        self.src = device_of(x)
        return _to_device(x, self.device)

    def backward(self, gy):
        return _to_device(gy, self.src)


def _dims_of(name, dims, ndim):
    out = []
    for d in dims:
        d = dim_index(name, d)
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise ValueError(f"{name}: dim={d} is out of range for a tensor with {ndim} dimensions")
        out.append(d % max(ndim, 1))
    return out


def reshape(input, *shape):
    """``reshape(x, (2, -1))`` or ``reshape(x, 2, -1)``."""
    x = input   # PyTorch's argument names outside, math names inside
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape(tuple(int(s) for s in shape))(x)


view = reshape


def permute(input, *dims):
    x = input   # PyTorch's argument names outside, math names inside
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if len(dims) != x.ndim:
        raise ValueError(f"permute: got {len(dims)} dims {dims} for a tensor with {x.ndim} dimensions")
    dims = _dims_of("permute", dims, x.ndim)
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {tuple(dims)} are not a permutation of 0..{x.ndim - 1}")
    return Permute(tuple(dims))(x)


def transpose(input, dim0: int, dim1: int):
    x = input   # PyTorch's argument names outside, math names inside
    d0, d1 = _dims_of("transpose", (dim0, dim1), x.ndim)
    if x.ndim == 0:  # PyTorch: transposing a 0-d tensor (dims 0 / -1) is the identity
        return Permute(())(x)
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute(tuple(dims))(x)


def flatten(input, start_dim: int = 0, end_dim: int = -1):
    """Merge axes start_dim..end_dim (inclusive) into one, as torch.flatten."""
    x = input   # PyTorch's argument names outside, math names inside
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = _dims_of("flatten", (start_dim, end_dim), x.ndim)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = tuple(x.shape)
    n = 1
    for d in shape[s : e + 1]:
        n *= d
    return reshape(x, shape[:s] + (n,) + shape[e + 1 :])


def squeeze(input, dim=None):
    x = input   # PyTorch's argument names outside, math names inside
    shape = tuple(x.shape)
    if dim is None:
        return reshape(x, tuple(d for d in shape if d != 1))
    (d,) = _dims_of("squeeze", (dim,), x.ndim)
    if shape[d] != 1:
        return reshape(x, shape)  # PyTorch: squeezing a non-1 axis is a no-op
    return reshape(x, shape[:d] + shape[d + 1 :])


def unsqueeze(input, dim: int):
    x = input   # PyTorch's argument names outside, math names inside
    dim = dim_index("unsqueeze", dim)
    ndim = x.ndim + 1
    if not -ndim <= dim < ndim:
        raise ValueError(f"unsqueeze: dim={dim} is out of range for a result with {ndim} dimensions")
    d = dim % ndim
    shape = tuple(x.shape)
    return reshape(x, shape[:d] + (1,) + shape[d:])


def expand(x, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    # -1 keeps that axis' size, as PyTorch.
    lead = len(shape) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return Expand(shape)(x)


def getitem(x, index):
    """``x[index]`` with NumPy indexing semantics; differentiable (scatter-add backward).

    An element picked twice receives both upstream gradients:

    >>> import numpy as np, tinyvision as tv
    >>> x = tv.tensor(np.array([5.0, 6.0, 7.0]), requires_grad=True)
    >>> x[[0, 0, 2]].sum().backward()
    >>> x.grad.numpy().tolist()
    [2.0, 0.0, 1.0]
    """
    return GetItem(_unwrap_index(index))(x)


def _seq_ndim(name, tensors):
    if len(tensors) == 0:
        raise ValueError(f"{name}: expected a non-empty sequence of tensors")
    return [getattr(t, "shape", np.shape(t)) for t in tensors]


def cat(tensors, dim: int = 0):
    """Concatenate along an existing axis (torch.cat); shapes must agree outside ``dim``.

    >>> import numpy as np, tinyvision as tv
    >>> cat([tv.tensor(np.zeros((2, 1))), tv.tensor(np.ones((2, 2)))], dim=1).shape
    (2, 3)
    """
    shapes = _seq_ndim("cat", tensors)
    ndim = len(shapes[0])
    if any(len(s) != ndim for s in shapes):
        raise ValueError(f"cat: all tensors need the same number of dimensions, got shapes {shapes}")
    (d,) = _dims_of("cat", (dim,), ndim)
    for s in shapes:
        if tuple(s[:d]) + tuple(s[d + 1 :]) != tuple(shapes[0][:d]) + tuple(shapes[0][d + 1 :]):
            raise ValueError(f"cat: shapes {[tuple(s) for s in shapes]} differ outside dim {dim}")
    return Cat(d)(*tensors)


concat = cat


def stack(tensors, dim: int = 0):
    """Stack along a new axis (torch.stack)."""
    shapes = _seq_ndim("stack", tensors)
    if any(tuple(s) != tuple(shapes[0]) for s in shapes):
        raise ValueError(f"stack: all tensors need the same shape, got {[tuple(s) for s in shapes]}")
    ndim = len(shapes[0]) + 1
    dim = dim_index("stack", dim)
    if not -ndim <= dim < ndim:
        raise ValueError(f"stack: dim={dim} is out of range for a result with {ndim} dimensions")
    return Stack(dim % ndim)(*tensors)


def pad(input, pad, mode: str = "constant", value: float = 0.0):
    """Pad with PyTorch's convention: ``pad`` = (last_before, last_after, prev_before, prev_after, ...).

    mode: "constant" (with ``value``), "reflect", "replicate" or "circular".

    >>> import numpy as np, tinyvision as tv
    >>> x = tv.tensor(np.array([[1.0, 2.0, 3.0]]))
    >>> pad(x, (2, 1), mode="reflect").numpy().tolist()
    [[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]
    >>> pad(x, (2, 1), mode="replicate").numpy().tolist()
    [[1.0, 1.0, 1.0, 2.0, 3.0, 3.0]]
    """
    x = input   # PyTorch's argument names outside, math names inside
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: needs an even number of entries, at most 2*ndim = {2 * x.ndim}; got {pad}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding {pad} is not supported")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"pad: unknown mode {mode!r}")
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        axis = x.ndim - 1 - k
        widths[axis] = (pad[2 * k], pad[2 * k + 1])
        if mode == "reflect" and max(widths[axis]) >= x.shape[axis]:
            raise ValueError(
                f"pad: reflect padding {widths[axis]} must be smaller than the size {x.shape[axis]} of dim {axis}"
            )
    return Pad(tuple(widths), mode, value)(x)


def clone(input):
    return Clone()(input)


def astype(x, dtype):
    return AsType(np.dtype(dtype))(x)


def to_device(x, device: str):
    return ToDevice(device)(x)
