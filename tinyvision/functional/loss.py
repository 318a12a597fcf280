"""Losses with PyTorch's names, arguments and reductions.

Every loss first computes an elementwise loss l, then reduces it: ``reduction="none"``
returns l, ``"sum"`` returns sum(l), ``"mean"`` its mean — except the class-index losses
(nll_loss, cross_entropy), whose mean is *weighted*: sum(l) / sum of the target classes'
weights over the non-ignored elements (PyTorch's definition; with no weights, the number of
non-ignored targets). If every target is ignored that mean is 0/0 = nan, as in PyTorch.
"""
from __future__ import annotations

from ..autograd import Function, Tensor, promote
from ..backend import get_array_module
from .activation import log_softmax
from .arithmetic import _grad_for, broadcast_shapes

__all__ = [
    "nll_loss", "cross_entropy", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits",
]

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(name, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _array_arg(name, value):
    """A Tensor or array argument as it is; a list, tuple or number becomes an array with the
    tensor dtype rules (ints -> int64, floats -> float32); anything else is a TypeError naming it."""
    if value is None or isinstance(value, Tensor) or hasattr(value, "shape"):
        return value
    if isinstance(value, (list, tuple, int, float)) and not isinstance(value, bool):
        from ..autograd import _to_data

        try:
            return _to_data(value)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name}: cannot use {type(value).__name__} {value!r:.60} as an array ({e})") from None
    raise TypeError(f"{name} must be a Tensor or an array, got {type(value).__name__}")


def _number_arg(name, value):
    """A real-number option (label_smoothing, beta, delta): a str, bool or array is refused by name."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
            hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0 and value.dtype.kind in "iuf"):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if value != value:
        raise ValueError(f"{name} must be a number, got NaN")
    return value


def _reduce(l, reduction):
    from . import reduction as R

    if reduction == "none":
        return l
    if reduction == "sum":
        return R.sum(l)
    return R.mean(l)


# --------------------------------------------------------------------------------------
# Class-index losses
# --------------------------------------------------------------------------------------
class NLLLoss(Function):
    r"""Negative log-likelihood of class indices.

    Shapes: x (N, C) or (N, C, d1, ...) log-probabilities (or (C,) unbatched);
    t (N,) or (N, d1, ...) int64 class indices; w (C,) class weights (default 1).

    l[n] = -w[t[n]] · x[n, t[n]]       (0 where t[n] = ignore_index)
    mean:  L = sum_n l[n] / sum_{n not ignored} w[t[n]]

    dL/dx[n, c] = -w[c] [c = t[n]] · gl[n], with gl[n] = gL (sum), gL / W (mean) or the
    upstream element (none): the gradient is non-zero only at the target class.
    """

    def __init__(self, ignore_index, reduction):
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, x, t, w):
        xp = get_array_module(x, t, w)
        C = x.shape[0] if x.ndim == 1 else x.shape[1]
        # (N, C, d...) -> (M, C): class axis last, every other axis flattened.
        xs = x.reshape(1, C) if x.ndim == 1 else xp.moveaxis(x, 1, -1).reshape(-1, C)
        tf = t.reshape(-1)
        valid = tf != self.ignore_index
        bad = valid & ((tf < 0) | (tf >= C))
        if bool(bad.any()):
            first = int(tf[bad][0])
            raise ValueError(f"nll_loss: target {first} is out of bounds for {C} classes (input shape {tuple(x.shape)})")
        safe_t = xp.where(valid, tf, 0)
        wt = (w[safe_t] if w is not None else xp.ones(tf.shape, dtype=x.dtype)) * valid
        wt = wt.astype(x.dtype, copy=False)
        picked = xs[xp.arange(tf.shape[0]), safe_t]
        l = -wt * picked
        self.C, self.x_shape, self.safe_t, self.wt, self.t_shape = C, x.shape, safe_t, wt, t.shape
        if self.reduction == "none":
            return l.reshape(t.shape)
        if self.reduction == "sum":
            return l.sum()
        self.total_weight = wt.sum()
        with _ignore_fp(xp):
            return l.sum() / self.total_weight

    def backward(self, gy):
        xp = get_array_module(gy)
        M = self.safe_t.shape[0]
        if self.reduction == "none":
            gl = gy.reshape(-1)
        elif self.reduction == "sum":
            gl = xp.broadcast_to(gy, (M,))
        else:
            with _ignore_fp(xp):
                gl = xp.broadcast_to(gy / self.total_weight, (M,))
        gxs = xp.zeros((M, self.C), dtype=gy.dtype)
        gxs[xp.arange(M), self.safe_t] = -self.wt * gl
        if len(self.x_shape) == 1:
            return gxs.reshape(self.x_shape), None, None
        # (M, C) -> (N, d..., C) -> (N, C, d...)
        other = (self.x_shape[0],) + tuple(self.x_shape[2:])
        gx = xp.moveaxis(gxs.reshape(other + (self.C,)), -1, 1)
        return xp.ascontiguousarray(gx), None, None


def _ignore_fp(xp):
    import contextlib

    return xp.errstate(divide="ignore", invalid="ignore") if hasattr(xp, "errstate") else contextlib.nullcontext()


def _check_class_input(name, x, t):
    xs, ts = tuple(x.shape), tuple(t.shape)
    if len(xs) == 0:
        raise ValueError(f"{name}: input must have a class dimension, got a 0-d tensor")
    expected = () if len(xs) == 1 else (xs[0],) + xs[2:]
    if ts != expected:
        raise ValueError(
            f"{name}: input of shape {xs} (N, C, d...) needs class-index targets of shape {expected}, got {ts}"
        )
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: class-index targets must be integers, got dtype {t.dtype}")


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean"):
    """PyTorch's F.nll_loss. ``input`` holds log-probabilities, ``target`` class indices."""
    _check_reduction("nll_loss", reduction)
    input, target = _array_arg("nll_loss: input", input), _array_arg("nll_loss: target", target)
    weight = _array_arg("nll_loss: weight", weight)
    _check_class_input("nll_loss", input, target)
    C = input.shape[0] if input.ndim == 1 else input.shape[1]
    if weight is not None and tuple(weight.shape) != (C,):
        raise ValueError(f"nll_loss: weight must have shape ({C},), got {tuple(weight.shape)}")
    return NLLLoss(ignore_index, reduction)(input, _data(target), _data(weight))


def cross_entropy(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0):
    r"""PyTorch's F.cross_entropy = nll_loss(log_softmax(input, dim=1), target), with its options.

    Shapes: input (N, C) or (N, C, d1, ...) logits (or (C,)); target either class indices
    (N,) / (N, d1, ...) or class probabilities of input's shape.

    Class indices, with label smoothing ε (PyTorch's formula):
        L = (1 - ε) · NLL + (ε / C) · S,   S = -sum_c w_c log p_c per element, with S's mean
        divided by the same total weight as NLL's.
    Probabilities: l[n] = -sum_c w_c t[n, c] log p[n, c] (t smoothed to (1-ε)t + ε/C);
    mean divides by N (elements, not weights).
    Gradient (one element, no weights, no smoothing): dL/dx_c = softmax(x)_c - [c = t]; it
    flows through log_softmax and nll_loss, whose docstrings carry the two halves
    (docs/autograd.md derives it).

    >>> import math, numpy as np, tinyvision as tv
    >>> x = tv.tensor(np.array([[0.0, math.log(2.0)]]), requires_grad=True)
    >>> loss = cross_entropy(x, np.array([1]))        # -log(2/3)
    >>> round(loss.item(), 12) == round(math.log(1.5), 12)
    True
    >>> loss.backward()
    >>> x.grad.numpy().round(6).tolist()               # softmax - onehot
    [[0.333333, -0.333333]]
    """
    from . import reduction as R
    from .arithmetic import mul

    _check_reduction("cross_entropy", reduction)
    input, target = _array_arg("cross_entropy: input", input), _array_arg("cross_entropy: target", target)
    weight = _array_arg("cross_entropy: weight", weight)
    label_smoothing = _number_arg("cross_entropy: label_smoothing", label_smoothing)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.ndim == 0:
        raise ValueError("cross_entropy: input must have a class dimension, got a 0-d tensor")
    class_dim = 0 if input.ndim == 1 else 1
    C = input.shape[class_dim]
    if weight is not None and tuple(weight.shape) != (C,):
        raise ValueError(f"cross_entropy: weight must have shape ({C},), got {tuple(weight.shape)}")
    logp = log_softmax(input, dim=class_dim)
    # weight as a broadcastable (1, C, 1, ...) array for the sums over classes
    wb = None
    if weight is not None:
        xp = get_array_module(_data(weight))
        wb = xp.asarray(_data(weight)).reshape((C,) + (1,) * (input.ndim - 1 - class_dim))

    if target.dtype.kind == "f":  # class probabilities
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(
                f"cross_entropy: probability targets must have the input's shape {tuple(input.shape)}, "
                f"got {tuple(target.shape)}"
            )
        t = target
        if label_smoothing > 0:
            t = t * (1 - label_smoothing) + label_smoothing / C
        terms = mul(logp, t)
        if wb is not None:
            terms = mul(terms, wb)
        l = -R.sum(terms, dim=class_dim)
        if reduction == "mean":
            return R.sum(l) / max(l.numel(), 1)  # N·d1·... elements, not weights
        return _reduce(l, reduction)

    _check_class_input("cross_entropy", input, target)
    nll = nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0:
        return nll
    tdata = _data(target)
    xp = get_array_module(tdata)
    keep = (tdata != ignore_index)
    smooth_terms = logp if wb is None else mul(logp, wb)
    S = -R.sum(smooth_terms, dim=class_dim) * keep.astype(logp.dtype)
    if reduction == "none":
        smooth = S
    elif reduction == "sum":
        smooth = R.sum(S)
    else:
        if weight is None:
            denom = keep.sum()
        else:
            wd = xp.asarray(_data(weight))
            denom = wd[tdata[keep]].sum()
        smooth = R.sum(S) / float(denom) if float(denom) != 0 else R.sum(S) * float("nan")
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / C)


# --------------------------------------------------------------------------------------
# Regression losses
# --------------------------------------------------------------------------------------
class _PointwiseLoss(Function):
    """l = f(x - y) elementwise, then reduced; subclasses give f and f'.

    gx = f'(d) · gl,  gy = -f'(d) · gl,  d = x - y,  gl = gL (sum), gL / n (mean) or gl itself.
    """

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, y):
        shape = broadcast_shapes(type(self).__name__, getattr(x, "shape", ()), getattr(y, "shape", ()))
        x, y = promote(x, y)    # PyTorch's promotion: float32 input, int64 target -> float32
        d = x - y
        self.save_for_backward(x, y, d)
        self.n = 1
        for s in shape:
            self.n *= s
        l = self.f(d)
        if self.reduction == "none":
            return l
        if self.reduction == "sum":
            return l.sum()
        return l.mean()

    def backward(self, gL):
        x, y, d = self.saved
        g = gL if self.reduction != "mean" else gL / self.n
        gd = self.df(d) * g
        return _grad_for(x, gd), _grad_for(y, -gd)


class MSELoss(_PointwiseLoss):
    """l = (x - y)^2.   dl/dx = 2 (x - y) = -dl/dy."""

    def f(self, d):
        return d * d

    def df(self, d):
        return 2 * d


class L1Loss(_PointwiseLoss):
    """l = |x - y|.   dl/dx = sign(x - y) = -dl/dy   (0 at x = y, as PyTorch)."""

    def f(self, d):
        return get_array_module(d).abs(d)

    def df(self, d):
        return get_array_module(d).sign(d)


class SmoothL1Loss(_PointwiseLoss):
    r"""l = 0.5 d^2 / β if |d| < β else |d| - 0.5 β   (d = x - y; β = 0 is plain L1).

    dl/dd = d / β inside, sign(d) outside — continuous at |d| = β.
    """

    def __init__(self, reduction, beta):
        super().__init__(reduction)
        self.beta = beta

    def f(self, d):
        xp = get_array_module(d)
        a = xp.abs(d)
        if self.beta == 0:
            return a
        return xp.where(a < self.beta, 0.5 * d * d / self.beta, a - 0.5 * self.beta).astype(d.dtype, copy=False)

    def df(self, d):
        xp = get_array_module(d)
        if self.beta == 0:
            return xp.sign(d)
        return xp.where(xp.abs(d) < self.beta, d / self.beta, xp.sign(d)).astype(d.dtype, copy=False)


class HuberLoss(_PointwiseLoss):
    r"""l = 0.5 d^2 if |d| < δ else δ (|d| - 0.5 δ)  (= δ · smooth_l1 with β = δ).

    dl/dd = d inside, δ sign(d) outside.
    """

    def __init__(self, reduction, delta):
        super().__init__(reduction)
        self.delta = delta

    def f(self, d):
        xp = get_array_module(d)
        a = xp.abs(d)
        return xp.where(a < self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta)).astype(d.dtype, copy=False)

    def df(self, d):
        xp = get_array_module(d)
        return xp.where(xp.abs(d) < self.delta, d, self.delta * xp.sign(d)).astype(d.dtype, copy=False)


def _check_same_shape(name, input, target):
    if tuple(input.shape) != tuple(getattr(target, "shape", ())):
        raise ValueError(
            f"{name}: input of shape {tuple(input.shape)} and target of shape "
            f"{tuple(getattr(target, 'shape', ()))} must have the same shape"
        )


def mse_loss(input, target, reduction: str = "mean"):
    """Mean squared error, PyTorch's F.mse_loss."""
    _check_reduction("mse_loss", reduction)
    input, target = _array_arg("mse_loss: input", input), _array_arg("mse_loss: target", target)
    _check_same_shape("mse_loss", input, target)
    return MSELoss(reduction)(input, target)


def l1_loss(input, target, reduction: str = "mean"):
    """Mean absolute error, PyTorch's F.l1_loss."""
    _check_reduction("l1_loss", reduction)
    input, target = _array_arg("l1_loss: input", input), _array_arg("l1_loss: target", target)
    _check_same_shape("l1_loss", input, target)
    return L1Loss(reduction)(input, target)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0):
    """PyTorch's F.smooth_l1_loss (Fast R-CNN's box loss; RetinaNet's paper uses β = 1/9 ≈ 0.11)."""
    _check_reduction("smooth_l1_loss", reduction)
    input, target = _array_arg("smooth_l1_loss: input", input), _array_arg("smooth_l1_loss: target", target)
    _check_same_shape("smooth_l1_loss", input, target)
    beta = _number_arg("smooth_l1_loss: beta", beta)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    return SmoothL1Loss(reduction, float(beta))(input, target)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0):
    """PyTorch's F.huber_loss."""
    _check_reduction("huber_loss", reduction)
    input, target = _array_arg("huber_loss: input", input), _array_arg("huber_loss: target", target)
    _check_same_shape("huber_loss", input, target)
    delta = _number_arg("huber_loss: delta", delta)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    return HuberLoss(reduction, float(delta))(input, target)


# --------------------------------------------------------------------------------------
# Binary cross-entropy
# --------------------------------------------------------------------------------------
class BCELoss(Function):
    r"""l = -w [t log p + (1 - t) log(1 - p)], each log clamped at -100 (PyTorch's rule,
    so p = 0 or 1 gives a finite loss).

    dl/dp = w (p - t) / (p (1 - p)), with the denominator clamped below at 1e-12 (as PyTorch);
    dl/dt = w [log(1 - p) - log p] (clamped logs).
    """

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, p, t, w):
        xp = get_array_module(p, t, w)
        if bool(((p < 0) | (p > 1)).any()):
            raise ValueError("binary_cross_entropy: input values must lie in [0, 1] (pass probabilities, or use the _with_logits version)")
        with _ignore_fp(xp):
            logp = xp.maximum(xp.log(p), -100.0)
            log1mp = xp.maximum(xp.log1p(-p), -100.0)
        l = -(t * logp + (1 - t) * log1mp)
        if w is not None:
            l = l * w
        l = l.astype(p.dtype, copy=False)
        self.save_for_backward(p, t, w, logp, log1mp)
        self.n = l.size
        return l if self.reduction == "none" else (l.sum() if self.reduction == "sum" else l.mean())

    def backward(self, gL):
        p, t, w, logp, log1mp = self.saved
        xp = get_array_module(p)
        g = gL if self.reduction != "mean" else gL / self.n
        gp = g * (p - t) / xp.maximum(p * (1 - p), 1e-12)
        gt = g * (log1mp - logp)
        if w is not None:
            gp, gt = gp * w, gt * w
        gt = gt if hasattr(t, "shape") else None
        return gp.astype(p.dtype, copy=False), (_grad_for(t, gt) if gt is not None else None), None


class BCEWithLogitsLoss(Function):
    r"""l = w [(1 - t) x + c · softplus(-x)],  c = 1 + (pw - 1) t,  softplus(-x) = log(1 + e^{-x})
    computed stably as max(-x, 0) + log(1 + e^{-|x|}).

    (Same as -w[pw · t log σ(x) + (1 - t) log(1 - σ(x))], without ever forming log σ.)
    dl/dx = w [(1 - t) - c σ(-x)] = w [c σ(x) - pw · t]   (= w (σ(x) - t) without pos_weight);
    dl/dt = w [(pw - 1) softplus(-x) - x].
    """

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t, w, pw):
        xp = get_array_module(x, t, w, pw)
        sp = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))  # softplus(-x) = -log σ(x)
        c = 1 + (pw - 1) * t if pw is not None else 1
        l = (1 - t) * x + c * sp
        if w is not None:
            l = l * w
        l = l.astype(x.dtype, copy=False)
        self.save_for_backward(x, t, w, pw, sp)
        self.n = l.size
        return l if self.reduction == "none" else (l.sum() if self.reduction == "sum" else l.mean())

    def backward(self, gL):
        x, t, w, pw, sp = self.saved
        xp = get_array_module(x)
        g = gL if self.reduction != "mean" else gL / self.n
        sig = 0.5 * (1.0 + xp.tanh(0.5 * x))
        if pw is None:
            gx = sig - t
            gt = -x
        else:
            gx = (1 + (pw - 1) * t) * sig - pw * t
            gt = (pw - 1) * sp - x
        gx, gt = gx * g, gt * g
        if w is not None:
            gx, gt = gx * w, gt * w
        return (_grad_for(x, gx), _grad_for(t, gt) if hasattr(t, "shape") else None, None, None)


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean"):
    """PyTorch's F.binary_cross_entropy on probabilities ``input`` in [0, 1]."""
    _check_reduction("binary_cross_entropy", reduction)
    input, target = _array_arg("binary_cross_entropy: input", input), _array_arg("binary_cross_entropy: target", target)
    _check_same_shape("binary_cross_entropy", input, target)
    weight = _array_arg("binary_cross_entropy: weight", weight)
    if weight is not None:
        broadcast_shapes("binary_cross_entropy (weight)", tuple(weight.shape), tuple(input.shape))
    return BCELoss(reduction)(input, target, _data(weight))


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean", pos_weight=None):
    """PyTorch's F.binary_cross_entropy_with_logits (stable; ``pos_weight`` broadcasts over the last axis)."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    input, target = _array_arg("binary_cross_entropy_with_logits: input", input), _array_arg("binary_cross_entropy_with_logits: target", target)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    weight = _array_arg("binary_cross_entropy_with_logits: weight", weight)
    pos_weight = _array_arg("binary_cross_entropy_with_logits: pos_weight", pos_weight)
    for name, v in (("weight", weight), ("pos_weight", pos_weight)):
        if v is not None:
            broadcast_shapes(f"binary_cross_entropy_with_logits ({name})", tuple(v.shape), tuple(input.shape))
    return BCEWithLogitsLoss(reduction)(input, target, _data(weight), _data(pos_weight))
