"""Reverse-mode automatic differentiation: the Tensor, the Function, the backward pass.

The whole idea on one screen
----------------------------
A :class:`Tensor` wraps an array (``.data``) and, when it was produced by a differentiable
operation, a pointer to the :class:`Function` node that produced it (``.grad_fn``). Every
operation is a ``Function`` subclass with two methods on *raw arrays*, side by side:

* ``forward(*xs) -> y``       computes the value, saving what the gradient will need;
* ``backward(gy) -> gxs``     given gy = dL/dy, returns dL/dx for every input x
                              (the vector-Jacobian product; None for an input with no gradient).

``loss.backward()`` walks the graph of Function nodes from ``loss`` back to the leaves in
reverse topological order, so that a node runs its ``backward`` only after *every* path to
its outputs has delivered its share of the gradient. Shares are **added**: when a tensor is
used twice (``y = x * x``), dL/dx is the sum of the two paths' contributions (the
multivariate chain rule) — this is the ``+=`` that micrograd leaves unexplained.

Semantics (PyTorch's)
---------------------
* Leaf tensors (created by the user, ``requires_grad=True``) accumulate into ``.grad``
  across backward calls; ``zero_grad()`` / ``t.grad = None`` resets them.
* Intermediate tensors get no ``.grad`` (unless ``retain_grad()`` was called).
* ``backward()`` frees the graph's saved arrays; a second ``backward()`` through the same
  graph raises, unless the first was called with ``retain_graph=True``.
* ``backward()`` without a gradient is only allowed for a tensor with one element.
* Modifying in place (``t[...] = v``, ``t.add_(...)``) an array that a Function saved for
  its backward makes that backward raise, naming the tensor's shape and versions. A tensor,
  its ``detach()`` and the views ops return (slices, reshapes) share one version counter.
* In-place changes are not recorded in the graph, so (stricter than PyTorch) they are refused
  on a tensor that is part of a graph, and a value that requires grad cannot be written into
  a tensor; a leaf that requires grad may only be changed inside ``no_grad()``.
* Inside ``with no_grad():`` no graph is recorded (the mode is per thread).
* Gradients have their input's dtype and shape (a gradient that comes back broadcast is
  summed to the input's shape; any other shape is an error naming the Function).

docs/autograd.md walks through all of this with runnable examples.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import weakref

import numpy as np

from .backend import DeviceError, device_of, get_array_module, to_device

__all__ = [
    "Tensor",
    "Function",
    "tensor",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "set_grad_enabled",
    "GradientError",
    "result_type",
    "promote",
    "detect_anomaly",
    "set_detect_anomaly",
    "is_anomaly_enabled",
    "AnomalyError",
]


class GradientError(RuntimeError):
    """The backward pass cannot run: freed graph, in-place change, missing gradient..."""


# --------------------------------------------------------------------------------------
# Grad mode
# --------------------------------------------------------------------------------------
# Per thread, as in PyTorch: a data-loading thread under no_grad does not switch off
# recording in the training thread.
_grad_mode = threading.local()


def is_grad_enabled() -> bool:
    """Whether operations currently record the graph (in this thread)."""
    return getattr(_grad_mode, "enabled", True)


class set_grad_enabled:  # noqa: N801 - PyTorch's name
    """Turn graph recording on or off, as PyTorch's: ``set_grad_enabled(False)`` switches at once
    (a plain call changes the mode for good); ``with set_grad_enabled(False):`` restores the
    previous mode on exit."""

    def __init__(self, mode: bool):
        self.previous = is_grad_enabled()
        _grad_mode.enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.previous
        return False


@contextlib.contextmanager
def _grad_mode_block(mode: bool):
    previous = is_grad_enabled()
    _grad_mode.enabled = mode
    try:
        yield
    finally:
        _grad_mode.enabled = previous


def no_grad():
    """``with no_grad():`` — operations inside record no graph (inference, optimizer steps).
    Also a decorator: ``@no_grad()``."""
    return _grad_mode_block(False)


def enable_grad():
    """``with enable_grad():`` — record the graph even inside a ``no_grad`` block."""
    return _grad_mode_block(True)


# --------------------------------------------------------------------------------------
# Anomaly mode: find the op whose gradient first turns NaN or inf
# --------------------------------------------------------------------------------------
# Per thread, like grad mode. While on, every Function records where (in the user's code) it was
# created, and the backward pass checks each gradient a Function returns; the first non-finite
# one raises, naming the Function, the shapes and that place. Off by default: capturing a stack
# per op is slow (PyTorch's torch.autograd.detect_anomaly has the same cost and the same name).
_anomaly_mode = threading.local()


class AnomalyError(GradientError):
    """A Function's backward returned NaN or inf (raised only in anomaly mode)."""


def is_anomaly_enabled() -> bool:
    return getattr(_anomaly_mode, "enabled", False)


class set_detect_anomaly:  # noqa: N801 - PyTorch's name
    """``set_detect_anomaly(True)`` switches anomaly mode on (for good, in this thread);
    ``with set_detect_anomaly(mode):`` restores the previous mode on exit."""

    def __init__(self, mode: bool):
        self.previous = is_anomaly_enabled()
        _anomaly_mode.enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _anomaly_mode.enabled = self.previous
        return False


def detect_anomaly():
    """``with tv.autograd.detect_anomaly():`` run forward *and* backward inside it; the first
    Function whose backward returns a non-finite gradient raises :class:`AnomalyError`:

        MulBackward ... returned a gradient with 1 NaN for input 0 of shape (3,);
        the op was created at  File "train.py", line 12, in step

    A gradient that is already non-finite when it *arrives* at a Function is not blamed on that
    Function (only one that turns finite gradients non-finite is).
    """
    return set_detect_anomaly(True)


def _user_stack():
    """The creating call stack, tinyvision's own frames dropped (the user's code is the story)."""
    import os
    import traceback

    here = os.path.dirname(os.path.abspath(__file__))
    frames = [f for f in traceback.extract_stack()[:-2] if not os.path.abspath(f.filename).startswith(here)]
    return traceback.format_list(frames[-6:])


def _check_anomaly(fn, gys, gxs):
    """Raise AnomalyError if ``fn`` turned finite upstream gradients into a non-finite one."""
    for g in gys:
        if g is not None and _is_float(g.dtype) and not bool(get_array_module(g).isfinite(g).all()):
            return  # it arrived non-finite: an earlier Function is to blame (and was checked)
    for i, gx in enumerate(gxs):
        if gx is None or not _is_float(gx.dtype):
            continue
        xp = get_array_module(gx)
        bad = ~xp.isfinite(gx)
        if bool(bad.any()):
            n_nan = int(xp.isnan(gx).sum())
            n_inf = int(bad.sum()) - n_nan
            kinds = ", ".join(k for k in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} inf" if n_inf else "") if k)
            stack = getattr(fn, "_creation_stack", None)
            where = ("the op was created at (most recent call last):\n" + "".join(stack)) if stack else (
                "(the op was created outside detect_anomaly(); run the forward inside it to see where)")
            shapes = [tuple(s) if s is not None else None for s in fn.input_shapes]
            raise AnomalyError(
                f"{type(fn).__name__}.backward returned a gradient with {kinds} for input {i} of shape "
                f"{tuple(gx.shape)} (inputs {shapes}, upstream gradients finite: "
                f"{[tuple(g.shape) for g in gys]}); {where}"
            )


# --------------------------------------------------------------------------------------
# dtype rules
# --------------------------------------------------------------------------------------
def _is_float(dtype) -> bool:
    return np.issubdtype(np.dtype(dtype), np.floating)


_INT64_MAX = np.iinfo(np.int64).max


def _to_data(value, dtype=None, xp=None):
    """Turn user input into an array with tinyvision's dtype rules.

    float64 arrays stay float64 (in either byte order: non-native byte order is converted to
    native, keeping the dtype); other floats (Python floats, lists, float16) become float32,
    PyTorch's default dtype; integers become int64 (an unsigned value above 2**63 - 1, which
    int64 cannot hold, is an error rather than a wrapped negative number) and booleans stay bool.
    Ragged nested lists are refused with the lengths that disagree.
    """
    if isinstance(value, Tensor):
        value = value.data
    if xp is None:
        xp = get_array_module(value)
    if dtype is not None:
        return xp.asarray(value, dtype=dtype)
    given_as_array = hasattr(value, "dtype")  # ndarray, CuPy array or NumPy scalar
    try:
        arr = xp.asarray(value)
    except ValueError as e:
        if isinstance(value, (list, tuple)):
            raise ValueError(f"tensor: nested sequences of unequal lengths (ragged) ({_ragged_where(value)})") from None
        raise ValueError(f"tensor: cannot make an array from {type(value).__name__}: {e}") from None
    if arr.dtype.byteorder not in "=|":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype == object:
        raise TypeError(
            f"tensor: data of type {type(value).__name__} gives an object array (mixed or non-numeric "
            "elements); tensors hold bool, integer or floating-point numbers"
        )
    if arr.dtype == np.float64 and given_as_array:
        return arr
    if _is_float(arr.dtype):
        return arr.astype(np.float32, copy=False)
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and arr.size and int(arr.max()) > _INT64_MAX:
        raise OverflowError(
            f"tensor: uint64 value {int(arr.max())} does not fit in int64 (the integer dtype of tensors); "
            "convert it to float64 first if that is what you mean"
        )
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "b":
        return arr
    raise TypeError(f"cannot make a tensor from data of dtype {arr.dtype}")


def _ragged_where(seq, path="data"):
    """Name the first place in a nested list whose elements have different lengths."""
    lengths = [len(e) if isinstance(e, (list, tuple)) else None for e in seq]
    if len(set(lengths)) > 1:
        return f"{path} has elements of lengths {lengths[:8]}{'...' if len(lengths) > 8 else ''}"
    for i, e in enumerate(seq):
        if isinstance(e, (list, tuple)):
            where = _ragged_where(e, f"{path}[{i}]")
            if where:
                return where
    return ""


def _promote_types(a, b):
    """torch.promote_types for real dtypes: a float beats any integer or bool whatever its size
    (int64 with float32 is float32, not NumPy's float64); within a kind, NumPy's rule."""
    a, b = np.dtype(a), np.dtype(b)
    if (a.kind == "f") != (b.kind == "f"):
        return a if a.kind == "f" else b
    return np.promote_types(a, b)


def _combine_categories(higher, lower):
    # PyTorch's rule for joining priority classes (c10 ResultTypeState): a higher-priority
    # operand keeps its dtype unless a lower-priority one is of a higher category.
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.kind == "f":
        return higher
    if higher.kind == "b" or lower.kind == "f":
        return _promote_types(higher, lower)
    return higher


def result_type(*operands):
    """The dtype of an elementwise op on ``operands``, by PyTorch's promotion rules.

    Operands are ranked: tensors/arrays with at least one dimension, then 0-d ones, then Python
    numbers. The result takes the dtype of the highest rank unless a lower rank holds a higher
    *category* (bool < integer < floating), in which case the categories are promoted:

    * float32 tensor + int64 tensor   -> float32 (NumPy: float64)
    * float32 tensor + float64 0-d    -> float32 (a 0-d value does not widen a tensor)
    * int64 tensor + 2.5              -> float32 (a Python float is PyTorch's default dtype)
    * int32 tensor + int64 0-d        -> int32;  bool tensor + 1 -> int64

    >>> import numpy as np
    >>> result_type(np.ones(2, np.float32), np.ones(2, np.int64))
    dtype('float32')
    """
    dim = zero = wrapped = None
    for v in operands:
        if v is None:
            continue
        if isinstance(v, Tensor):
            v = v.data
        if isinstance(v, (bool, int, float)) and not hasattr(v, "dtype"):
            d = np.dtype(bool) if isinstance(v, bool) else np.dtype(np.int64) if isinstance(v, int) else np.dtype(np.float32)
            wrapped = d if wrapped is None else _promote_types(wrapped, d)
        elif getattr(v, "ndim", 0) > 0:
            dim = v.dtype if dim is None else _promote_types(dim, v.dtype)
        else:
            zero = v.dtype if zero is None else _promote_types(zero, v.dtype)
    return _combine_categories(dim, _combine_categories(zero, wrapped))


def promote(*operands):
    """Cast the array operands to :func:`result_type`; Python numbers stay as they are (NumPy
    treats them as weak, so they never widen the result)."""
    dt = result_type(*operands)
    out = []
    for v in operands:
        if hasattr(v, "dtype") and v.dtype != dt:
            v = v.astype(dt)
        elif dt is not None and dt.kind == "f" and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        out.append(v)
    return tuple(out)


# --------------------------------------------------------------------------------------
# Tensor
# --------------------------------------------------------------------------------------
def _F():
    # functional sits above autograd; Tensor methods reach it lazily (no import cycle).
    from . import functional

    return functional


class Tensor:
    """An array plus the bookkeeping for reverse-mode differentiation.

    Attributes
    ----------
    data : ndarray (NumPy or CuPy)
    grad : Tensor or None        dL/d(this), filled in by ``backward`` for leaves
    requires_grad : bool         whether gradients flow to (or through) this tensor
    grad_fn : Function or None   the node that produced it (None for leaves)
    """

    __array_priority__ = 1000  # so ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _to_data(data, dtype)
        self.grad = None
        self.grad_fn = None
        self._version = 0
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- basic properties -------------------------------------------------------------
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def device(self) -> str:
        return device_of(self.data)

    def __repr__(self):
        extra = ""
        if self.grad_fn is not None:
            extra = f", grad_fn={type(self.grad_fn).__name__}"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        body = np.array2string(self.numpy(), separator=", ", precision=4, prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{extra})"

    # ---- conversion ---------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU when needed). No gradient."""
        return to_device(self.data, "cpu")

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype, copy=False)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def to(self, device_or_dtype):
        """Move to 'cpu' / 'cuda', or cast to a dtype. Differentiable (the gradient moves back)."""
        if isinstance(device_or_dtype, str) and device_or_dtype.lower().split(":")[0] in ("cpu", "cuda", "gpu"):
            if device_or_dtype.lower() == self.device:
                return self
            return _F().to_device(self, device_or_dtype)
        return _F().astype(self, device_or_dtype)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return _F().astype(self, np.float32)

    def double(self):
        return _F().astype(self, np.float64)

    def long(self):
        return Tensor(self.data.astype(np.int64))

    def detach(self) -> "Tensor":
        """A new leaf sharing this tensor's data, outside the graph (no gradient flows back)."""
        t = Tensor.__new__(Tensor)
        t.data = self.data
        t.grad = None
        t.grad_fn = None
        t._vc = self._vc  # same storage, same version counter (as PyTorch)
        t._retains_grad = False
        t.requires_grad = False
        return t

    def clone(self):
        return _F().clone(self)

    # ---- version counter ------------------------------------------------------------------
    # ``_version`` counts in-place changes of the *storage*. A tensor, its ``detach()`` and the
    # outputs of ops that return a view of it (reshape, slicing, transpose...) share one counter
    # (a one-element list), so changing any of them in place invalidates every saved use.
    @property
    def _version(self) -> int:
        return self._vc[0]

    @_version.setter
    def _version(self, value: int):
        vc = self.__dict__.get("_vc")
        if vc is None:
            self._vc = [int(value)]
        else:
            vc[0] = int(value)

    # ---- gradient switches ----------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and not _is_float(self.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients; this tensor of shape "
                f"{self.shape} has dtype {self.dtype} (cast it with .float() or .double())"
            )
        if not requires_grad and self.grad_fn is not None:
            raise GradientError("requires_grad can only be switched off on a leaf; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward (as PyTorch's retain_grad)."""
        self._retains_grad = True

    def zero_(self):
        return self._inplace(lambda d: d.fill(0))

    def fill_(self, value):
        return self._inplace(lambda d: d.fill(value))

    # ---- in-place updates (versioned, so a saved array that changes is caught) ----------
    def _check_inplace_allowed(self, value=None):
        if not is_grad_enabled():
            return
        if self.requires_grad and self.is_leaf:
            raise GradientError(
                f"a leaf tensor of shape {self.shape} that requires grad is being changed in "
                "place; do it inside `with tv.no_grad():` (as optimizers do)"
            )
        if self.requires_grad:
            # In-place operations are not recorded in the graph: the backward pass would
            # differentiate the value *before* the change, a silent wrong gradient.
            raise GradientError(
                f"in-place change of a tensor of shape {self.shape} that is part of a graph "
                f"(produced by {type(self.grad_fn).__name__}); tinyvision does not record in-place "
                "operations: use the out-of-place form (x = x + y, F.where, F.cat) instead"
            )
        if isinstance(value, Tensor) and value.requires_grad:
            raise GradientError(
                f"in-place write of a value of shape {value.shape} that requires grad into a tensor of "
                f"shape {self.shape}: the write is not recorded, so no gradient would reach the value; "
                "build the result out of place (F.where, F.cat, F.stack) instead"
            )

    def _inplace(self, update, value=None):
        self._check_inplace_allowed(value)
        update(self.data)
        self._vc[0] += 1
        return self

    def _other_data(self, other):
        other = other.data if isinstance(other, Tensor) else other
        get_array_module(self.data, other)  # raises when devices are mixed
        return other

    def add_(self, other, alpha=1.0):
        o = self._other_data(other)
        return self._inplace(lambda d: d.__iadd__(alpha * o if alpha != 1.0 else o), other)

    def sub_(self, other, alpha=1.0):
        o = self._other_data(other)
        return self._inplace(lambda d: d.__isub__(alpha * o if alpha != 1.0 else o), other)

    def mul_(self, other):
        o = self._other_data(other)
        return self._inplace(lambda d: d.__imul__(o), other)

    def div_(self, other):
        o = self._other_data(other)
        return self._inplace(lambda d: d.__itruediv__(o), other)

    def copy_(self, other):
        o = self._other_data(other)
        o_shape = tuple(getattr(o, "shape", ()))
        try:
            np.broadcast_shapes(o_shape, self.shape)
        except ValueError:
            raise ValueError(f"copy_: source of shape {o_shape} does not broadcast to {self.shape}") from None

        def assign(d):
            d[...] = o

        return self._inplace(assign, other)

    def __setitem__(self, index, value):
        v = self._other_data(value)
        index = index.data if isinstance(index, Tensor) else index

        def assign(d):
            d[index] = v

        self._inplace(assign, value)

    # ---- operators and methods (the math lives in tinyvision.functional) ----------------
    def __add__(self, other):
        return _F().add(self, other)

    def __radd__(self, other):
        return _F().add(other, self)

    def __sub__(self, other):
        return _F().sub(self, other)

    def __rsub__(self, other):
        return _F().sub(other, self)

    def __mul__(self, other):
        return _F().mul(self, other)

    def __rmul__(self, other):
        return _F().mul(other, self)

    def __truediv__(self, other):
        return _F().div(self, other)

    def __rtruediv__(self, other):
        return _F().div(other, self)

    def __pow__(self, other):
        return _F().pow(self, other)

    def __rpow__(self, other):
        return _F().pow(other, self)

    def __neg__(self):
        return _F().neg(self)

    def __matmul__(self, other):
        return _F().matmul(self, other)

    def __rmatmul__(self, other):
        return _F().matmul(other, self)

    def __getitem__(self, index):
        return _F().getitem(self, index)

    # Comparisons give bool tensors outside the graph (they have no gradient).
    def _compare(self, other, op):
        o = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, o))

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    __hash__ = object.__hash__  # tensors are identified by object, as in PyTorch

    # Named forms of the operators (torch.Tensor has them too).
    def add(self, other):
        return _F().add(self, other)

    def sub(self, other):
        return _F().sub(self, other)

    def mul(self, other):
        return _F().mul(self, other)

    def div(self, other):
        return _F().div(self, other)

    def pow(self, exponent):
        return _F().pow(self, exponent)

    def neg(self):
        return _F().neg(self)

    def matmul(self, other):
        return _F().matmul(self, other)

    def exp(self):
        return _F().exp(self)

    def log(self):
        return _F().log(self)

    def sqrt(self):
        return _F().sqrt(self)

    def abs(self):
        return _F().abs(self)

    def sign(self):
        return _F().sign(self)

    def clamp(self, min=None, max=None):  # noqa: A002
        return _F().clamp(self, min, max)

    clip = clamp

    def where(self, condition, other):
        """``x.where(condition, y)`` = ``F.where(condition, x, y)``, as torch.Tensor.where."""
        return _F().where(condition, self, other)

    def maximum(self, other):
        return _F().maximum(self, other)

    def minimum(self, other):
        return _F().minimum(self, other)

    def relu(self):
        return _F().relu(self)

    def sigmoid(self):
        return _F().sigmoid(self)

    def tanh(self):
        return _F().tanh(self)

    def softmax(self, dim):
        return _F().softmax(self, dim)

    def log_softmax(self, dim):
        return _F().log_softmax(self, dim)

    def sum(self, dim=None, keepdim=False):
        return _F().sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return _F().mean(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        return _F().max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return _F().min(self, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return _F().amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return _F().amin(self, dim, keepdim)

    def var(self, dim=None, unbiased=True, keepdim=False, correction=None):
        return _F().var(self, dim, unbiased=unbiased, keepdim=keepdim, correction=correction)

    def std(self, dim=None, unbiased=True, keepdim=False, correction=None):
        return _F().std(self, dim, unbiased=unbiased, keepdim=keepdim, correction=correction)

    def argmax(self, dim=None, keepdim=False):
        return _F().argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _F().argmin(self, dim, keepdim)

    def reshape(self, *shape):
        return _F().reshape(self, *shape)

    def view(self, *shape):
        return _F().reshape(self, *shape)

    def transpose(self, dim0, dim1):
        return _F().transpose(self, dim0, dim1)

    def permute(self, *dims):
        return _F().permute(self, *dims)

    @property
    def T(self):
        return _F().permute(self, *reversed(range(self.ndim)))

    def flatten(self, start_dim=0, end_dim=-1):
        return _F().flatten(self, start_dim, end_dim)

    def squeeze(self, dim=None):
        return _F().squeeze(self, dim)

    def unsqueeze(self, dim):
        return _F().unsqueeze(self, dim)

    def expand(self, *shape):
        return _F().expand(self, *shape)

    def any(self):
        return bool(self.data.any())

    def all(self):
        return bool(self.data.all())

    # ---- the backward pass ------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False):
        """Compute d(self)/d(leaf) for every leaf that requires grad, accumulating into ``.grad``.

        grad : the upstream gradient dL/d(self), same shape as self. May be omitted only
               when self holds one element (then it is 1).
        retain_graph : keep the saved arrays so backward can run through this graph again.
        """
        if not self.requires_grad:
            raise GradientError(
                f"backward() on a tensor of shape {self.shape} that does not require grad "
                "(no input of the computation had requires_grad=True, or it ran under no_grad)"
            )
        xp = get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise GradientError(
                    f"backward() without a gradient is only defined for a tensor with one element; "
                    f"this one has shape {self.shape}: pass grad= of that shape"
                )
            g = xp.ones_like(self.data)
        else:
            g = grad.data if isinstance(grad, Tensor) else xp.asarray(grad)
            get_array_module(self.data, g)
            if tuple(g.shape) != self.shape:
                raise ValueError(
                    f"backward(): grad has shape {tuple(g.shape)} but the tensor has shape {self.shape}"
                )
            g = g.astype(self.dtype, copy=False)
        run_backward(self, g, retain_graph)


# --------------------------------------------------------------------------------------
# Function
# --------------------------------------------------------------------------------------
class Function:
    """One differentiable operation: ``forward`` and ``backward`` on raw arrays.

    Subclasses implement

    * ``forward(self, *xs)``  — xs are the inputs' arrays (None stays None); returns one
      array or a tuple of arrays. Call ``self.save_for_backward(...)`` for what backward needs.
    * ``backward(self, *gys)`` — one upstream gradient per output (zeros for an output that
      received none); returns one gradient per input (a tuple, or a single array when there is
      one input), None where an input needs no gradient. Gradients must have the input's shape.

    Use: ``y = MyOp(option=...)(x, w)``: non-tensor options go to ``__init__``, tensors to the call.
    Outputs listed in ``non_differentiable`` (indices into the outputs, e.g. argmax
    indices) never require grad.
    """

    non_differentiable: tuple = ()

    def __init__(self):
        pass

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def forward(self, *xs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *gys):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *inputs):
        xs = []
        for a in inputs:
            if isinstance(a, Tensor):
                xs.append(a.data)
            elif a is None or isinstance(a, (bool, int, float)):
                xs.append(a)  # Python scalars stay "weak": x * 2 keeps x's dtype (NEP 50)
            else:
                xs.append(_to_data(a))
        get_array_module(*xs)  # raises DeviceError if NumPy and CuPy arrays meet
        self.saved = ()
        ys = self.forward(*xs)
        single = not isinstance(ys, tuple)
        if single:
            ys = (ys,)

        needs_grad = is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in inputs)
        outputs = []
        for i, y in enumerate(ys):
            if isinstance(y, np.generic):  # NumPy reductions return scalars: keep a real 0-d array
                y = np.asarray(y)
            t = Tensor.__new__(Tensor)
            t.data = y
            t.grad = None
            t._version = 0
            # An output that is a view of an input's storage shares its version counter.
            for a in inputs:
                if isinstance(a, Tensor) and _may_share_memory(y, a.data):
                    t._vc = a._vc
                    break
            t._retains_grad = False
            differentiable = needs_grad and i not in self.non_differentiable and _is_float(y.dtype)
            t.requires_grad = differentiable
            t.grad_fn = self if differentiable else None
            outputs.append(t)

        if needs_grad:
            if is_anomaly_enabled():
                self._creation_stack = _user_stack()
            self.inputs = tuple(a if isinstance(a, Tensor) else None for a in inputs)
            self.input_shapes = tuple(getattr(x, "shape", None) for x in xs)
            self.input_dtypes = tuple(getattr(x, "dtype", None) for x in xs)
            self.output_meta = tuple((y.shape, y.dtype) for y in ys)
            self.outputs = tuple(weakref.ref(t) for t in outputs)
            self._freed = False
            # Remember the version of every tensor whose storage a saved array uses (the array
            # itself or a view of it), to catch in-place edits before backward reads stale values.
            # Kept: the storage's version counter (shared by the tensor and its views), not the
            # tensor itself; an output held here would make a reference cycle (output -> grad_fn
            # -> output) that only the cyclic collector frees, so a graph that never runs
            # backward would keep its arrays alive until a collection.
            saved = [s for s in self.saved if _is_array(s)]
            self._saved_versions = [
                (t._vc, t._version, tuple(t.shape))
                for t in list(self.inputs) + outputs
                if t is not None and any(_may_share_memory(s, t.data) for s in saved)
            ]
        else:
            self.saved = ()
        return outputs[0] if single else tuple(outputs)

    # ---- helpers used by the backward pass ------------------------------------------------
    def _check_saved_versions(self):
        for vc, v, shape in self._saved_versions:
            if vc[0] != v:
                raise GradientError(
                    f"{type(self).__name__}.backward needs a tensor of shape {shape} that was "
                    f"modified in place after it was used (version {v} then, {vc[0]} now); "
                    "use an out-of-place operation or .clone() before modifying"
                )

    def _release(self):
        self.saved = None
        self._saved_versions = []
        self._freed = True


def sum_to_shape(g, shape):
    """Sum ``g`` over the axes broadcasting added or stretched, so it has ``shape``: the gradient
    of broadcasting (the one copy of this rule; functional's ops and the box losses use it)."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "strides")


def _may_share_memory(a, b) -> bool:
    """Cheap overlap test (memory bounds, no exact solve) between two arrays of one device."""
    if a is b:
        return True
    if type(a) is np.ndarray and type(b) is np.ndarray:  # the common case, kept fast
        return (a.base is not None or b.base is not None) and np.may_share_memory(a, b)
    if not (_is_array(a) and _is_array(b)) or device_of(a) != device_of(b):
        return False
    return bool(get_array_module(a).may_share_memory(a, b))


def _broadcasts_to(shape, target) -> bool:
    """Whether an array of ``shape`` broadcasts to exactly ``target``."""
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _topological_order(root: Tensor):
    """Function nodes reachable from root, each after all nodes that consume its outputs.

    Iterative depth-first search (deep graphs do not hit Python's recursion limit): a node is
    appended after all its inputs' nodes, then the list is reversed.
    """
    order, visited = [], set()
    stack = [(root.grad_fn, False)]
    while stack:
        fn, inputs_done = stack.pop()
        if inputs_done:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for t in fn.inputs:
            if t is not None and t.grad_fn is not None and id(t.grad_fn) not in visited:
                stack.append((t.grad_fn, False))
    order.reverse()
    return order


def _calibrate_private_refs():
    """sys.getrefcount(g) at the top of _accumulate_leaf when the only reference to g outside it
    is one local variable of its caller: measured on this interpreter, in a call of that shape."""
    def accumulate(g):  # the shape of _accumulate_leaf: a parameter, then getrefcount
        return sys.getrefcount(g)

    gx = np.empty(1)  # the shape of run_backward: one local variable
    return accumulate(gx)


def _calibrate_private_base_refs():
    """sys.getrefcount(base) in _private when only a view (g) holds base: measured likewise."""
    def private(g):  # the shape of _private: base as a local variable, then getrefcount
        base = g.base
        return sys.getrefcount(base)

    return private(np.empty(2).reshape(1, 2))


# A leaf's first gradient is adopted rather than copied when no one else can reach its memory
# (see _private): a fresh array from a Function's backward, referenced only by the backward
# pass's own variables. Copying it cost ~25 ms of a ResNet-18 training step (47 MB of weight
# gradients; a fresh copy pays a page fault per 4 KiB) for nothing.
_PRIVATE_REFS = _calibrate_private_refs()
_PRIVATE_BASE_REFS = _calibrate_private_base_refs()


def _private(g, refs):
    """Whether the NumPy array g, seen with `refs` references (sys.getrefcount, taken at the
    top of _accumulate_leaf), is reachable only through that call: no other variable, list,
    saved tensor or user holds it, and its memory belongs to it alone — its own buffer, or
    (one level of view, e.g. a reshape of a fresh result) a base that only g holds and that
    is no larger than g. Anything else (a user's array, an incoming gradient passed through,
    the same array returned for two inputs, a workspace view) is copied."""
    if type(g) is not np.ndarray or refs > _PRIVATE_REFS:
        return False
    base = g.base
    if base is None:
        return g.flags.owndata
    return (type(base) is np.ndarray and base.base is None and base.flags.owndata
            and base.nbytes == g.nbytes and sys.getrefcount(base) <= _PRIVATE_BASE_REFS)


def _accumulate_leaf(t: Tensor, g):
    refs = sys.getrefcount(g)  # first: see _calibrate_private_refs
    if g.dtype != t.dtype:
        g = g.astype(t.dtype)  # a fresh array, held by this frame only
        refs = _PRIVATE_REFS
    if t.grad is None:
        t.grad = Tensor.__new__(Tensor)
        t.grad.data = g if (g.flags.writeable and _private(g, refs)) else g.copy()
        t.grad.grad = None
        t.grad.grad_fn = None
        t.grad._version = 0
        t.grad._retains_grad = False
        t.grad.requires_grad = False
    else:
        t.grad.data = t.grad.data + g  # accumulate across backward calls, as PyTorch


def run_backward(root: Tensor, grad, retain_graph: bool = False):
    """The backward pass from ``root`` with upstream gradient ``grad`` (an array)."""
    if root.grad_fn is None:  # a leaf: its gradient is the upstream gradient itself
        _accumulate_leaf(root, grad)
        return
    # grads[id(fn)][k]: the summed gradient arriving at output k of node fn.
    grads = {}
    root_fn = root.grad_fn
    k_root = next(k for k, r in enumerate(root_fn.outputs) if r() is root)
    grads[id(root_fn)] = {k_root: grad}
    order = _topological_order(root)
    with no_grad():
        for fn in order:
            if fn._freed:
                raise GradientError(
                    f"trying to run backward through {type(fn).__name__} a second time: its saved "
                    "arrays were freed by the first backward; pass retain_graph=True to the first call"
                )
            fn._check_saved_versions()
            arriving = grads.pop(id(fn), {})
            xp = get_array_module(*[g for g in arriving.values()])
            gys = []
            for k, (shape, dtype) in enumerate(fn.output_meta):
                g = arriving.get(k)
                gys.append(g if g is not None else xp.zeros(shape, dtype=dtype))
                out = fn.outputs[k]()
                if out is not None and out._retains_grad and g is not None:
                    _accumulate_leaf(out, g)
            gxs = fn.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            if is_anomaly_enabled():
                _check_anomaly(fn, gys, gxs)
            if len(gxs) != len(fn.inputs):
                raise GradientError(
                    f"{type(fn).__name__}.backward returned {len(gxs)} gradients for {len(fn.inputs)} inputs"
                )
            gxs = list(gxs)
            for i, (t, shape) in enumerate(zip(fn.inputs, fn.input_shapes)):
                # Take gx out of the list: then a leaf's _accumulate_leaf can tell (by reference
                # count) whether anything else holds it, and adopt it without a copy.
                gx, gxs[i] = gxs[i], None
                if t is None or gx is None or not t.requires_grad:
                    continue
                if tuple(gx.shape) != tuple(shape):
                    # A gradient may come back with the broadcast shape; anything else is a bug
                    # in that Function's backward, reported here rather than as a wrong number.
                    if not _broadcasts_to(tuple(shape), tuple(gx.shape)):
                        raise GradientError(
                            f"{type(fn).__name__}.backward returned a gradient of shape {tuple(gx.shape)} "
                            f"for input {i} of shape {tuple(shape)}"
                        )
                    gx = sum_to_shape(gx, shape)
                if gx.dtype != t.dtype:  # the gradient has its input's dtype (float32 stays float32)
                    gx = gx.astype(t.dtype)
                if t.grad_fn is None:
                    _accumulate_leaf(t, gx)
                else:
                    slot = grads.setdefault(id(t.grad_fn), {})
                    k = next(k for k, r in enumerate(t.grad_fn.outputs) if r() is t)
                    # The same tensor reached along two paths: the chain rule adds the shares.
                    slot[k] = gx if k not in slot else slot[k] + gx
            if not retain_graph:
                fn._release()


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Make a Tensor. float32 by default; float64 arrays stay float64; ints become int64.

    Like ``torch.tensor`` it always copies: changing ``data`` afterwards does not change the
    tensor. (``Tensor(array)`` wraps the array without a copy, like ``torch.as_tensor``.)

    >>> import numpy as np, tinyvision as tv
    >>> tv.tensor([1.0, 2.0]).dtype
    dtype('float32')
    >>> a = np.zeros(2)
    >>> t = tv.tensor(a)
    >>> a[0] = 5.0
    >>> t.numpy().tolist(), t.dtype
    ([0.0, 0.0], dtype('float64'))
    """
    t = Tensor(data, requires_grad=requires_grad, dtype=dtype)
    source = data.data if isinstance(data, Tensor) else data
    if _may_share_memory(t.data, source):
        t.data = t.data.copy()
    return t


__all__ += ["run_backward", "DeviceError"]
