r"""Normalisation: batch_norm (training and evaluation) and group_norm, closed-form gradients.

Shapes: x (N, C, *) — (N, C), (N, C, L) or (N, C, H, W); weight w, bias b, running_mean,
running_var (C,). A statistic is computed over a *set* S of M elements of x:

* batch_norm: S = {all n and all spatial positions} for one channel c      (M = N * prod(*))
* group_norm: S = {the C/G channels of group g and all positions} for one n  (M = C/G * prod(*))

Both then do the same thing, which is why they share one derivation:

    mu = (1/M) sum_S x,   var = (1/M) sum_S (x - mu)^2    (biased),   r = 1 / sqrt(var + eps)
    xhat = (x - mu) r,     y = w[c] xhat + b[c]

Gradient of the normalisation (the derivation the code follows)
--------------------------------------------------------------
Write g = gy * w[c] = dL/dxhat. Within one set S, xhat depends on every x of S through
mu and r. With dmu/dx_j = 1/M and dvar/dx_j = (2/M)(x_j - mu) (the (x - mu) terms' own
dependence on mu sums to zero), dr/dx_j = -(1/2) r^3 dvar/dx_j = -(r^3/M)(x_j - mu), so

    dxhat_i/dx_j = r [delta_ij - 1/M] - (x_i - mu) r^3 (x_j - mu) / M
                 = (r/M) [M delta_ij - 1 - xhat_i xhat_j]

and the gradient gx_j = sum_i g_i dxhat_i/dx_j is

    gx = (r/M) * (M g - sum_S g - xhat * sum_S (g xhat))

Parameters:  gw[c] = sum over the positions of channel c of gy * xhat,   gb[c] = sum gy.

In evaluation mode batch_norm uses fixed running statistics: y = w (x - running_mean) r + b with
r = 1/sqrt(running_var + eps) constant, so gx = gy w r (no mean/variance terms).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..backend import get_array_module
from ..kernels.dispatch import kernel

__all__ = ["batch_norm", "group_norm", "BatchNormFunction", "GroupNormFunction"]


def _data(t):
    return t.data if isinstance(t, Tensor) else t


def _param_shape(ndim):
    """(C,) parameters broadcast against (N, C, *) as (1, C, 1, ...)."""
    return (1, -1) + (1,) * (ndim - 2)


def _affine(xhat, w, b):
    """y = w[c] xhat + b[c] (a missing w or b is 1 or 0): the step both norms end with."""
    shape = _param_shape(xhat.ndim)
    y = xhat
    if w is not None:
        y = y * w.reshape(shape)
    if b is not None:
        y = y + b.reshape(shape)
    return y


def _affine_backward(gy, xhat, w):
    """Gradients of y = w[c] xhat + b[c]: gw[c] = sum gy xhat, gb[c] = sum gy (over every axis
    but the channel axis 1), and g = dL/dxhat = gy w[c]."""
    axes = (0,) + tuple(range(2, gy.ndim))
    gw = (gy * xhat).sum(axis=axes) if w is not None else None
    gb = gy.sum(axis=axes)
    g = gy * w.reshape(_param_shape(gy.ndim)) if w is not None else gy
    return g, gw, gb


def _normalise_backward(g, xhat, r, axes, M):
    """gx = (r/M) (M g - sum g - xhat sum(g xhat)), sums over ``axes`` (kept)."""
    sum_g = g.sum(axis=axes, keepdims=True)
    sum_gx = (g * xhat).sum(axis=axes, keepdims=True)
    return (r / M) * (M * g - sum_g - xhat * sum_gx)


class BatchNormFunction(Function):
    r"""Batch normalisation over (N, *) per channel; see the module docstring for the derivation.

    Shapes: x, y, gy, gx (N, C, *); w, b, gw, gb (C,).

    training=True:  mu, var from the batch (biased var);  stored in ``self.mean``, ``self.var_sum``
                    for the running-statistics update, which is not part of the graph.
        gx = (r/M) (M g - sum g - xhat sum(g xhat)),  g = gy w
    training=False: mu = running_mean, var = running_var (constants)
        gx = gy w r
    Both: gw = sum gy xhat,  gb = sum gy  (sums over all axes but 1).
    """

    def __init__(self, training, eps, running_mean=None, running_var=None):
        self.training = training
        self.eps = eps
        self.running_mean = running_mean
        self.running_var = running_var

    def forward(self, x, w, b):
        if _kernel_arrays(x, w, b):
            return self._forward_kernels(x, w, b)
        self.kernels = False
        xp = get_array_module(x)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = _param_shape(x.ndim)
        if self.training:
            # Statistics accumulated in float64 (as PyTorch's CPU kernel does), then cast.
            mean = x.mean(axis=axes, dtype=xp.float64)
            M = x.size // x.shape[1]
            var_sum = ((x - mean.astype(x.dtype).reshape(shape)) ** 2).sum(axis=axes, dtype=xp.float64)
            var = var_sum / M
            self.mean, self.var_sum = mean, var_sum  # for the running-statistics update
        else:
            mean = self.running_mean.astype(xp.float64)
            var = self.running_var.astype(xp.float64)
        r = (1.0 / xp.sqrt(var + self.eps)).astype(x.dtype).reshape(shape)
        xhat = (x - mean.astype(x.dtype).reshape(shape)) * r
        self.save_for_backward(xhat, r, w)
        return _affine(xhat, w, b)

    def backward(self, gy):
        if self.kernels:
            return self._backward_kernels(gy)
        xhat, r, w = self.saved
        g, gw, gb = _affine_backward(gy, xhat, w)  # g = dL/dxhat
        if self.training:
            axes = (0,) + tuple(range(2, gy.ndim))
            M = gy.size // gy.shape[1]
            gx = _normalise_backward(g, xhat, r, axes, M)
        else:
            gx = g * r
        return gx, gw, gb

    # The same formulas as one CPU kernel per pass (kernels/cpu/batch_norm.py): the statistics
    # and y in one pass per channel; gw, gb and gx in another. It keeps x (not xhat) for the
    # backward pass and recomputes xhat there.
    # (kernels/dispatch.py picks the fast kernels, or the plain-loop references under use_impl.)
    def _forward_kernels(self, x, w, b):
        self.kernels = True
        N, C = x.shape[:2]
        x3 = np.ascontiguousarray(x).reshape(N, C, -1)  # (N, C, *) -> (N, C, L)
        w1 = np.ones(C, x.dtype) if w is None else w
        b1 = np.zeros(C, x.dtype) if b is None else b
        if self.training:
            y, self.mean, self.var_sum, mu, r = kernel("batch_norm", "batch_norm_train_forward", x3)(
                x3, w1, b1, self.eps)
        else:
            mu = self.running_mean.astype(np.float64).astype(x.dtype)
            r = (1.0 / np.sqrt(self.running_var.astype(np.float64) + self.eps)).astype(x.dtype)
            y = kernel("batch_norm", "batch_norm_eval_forward", x3)(x3, w1, b1, mu, r)
        self.save_for_backward(x3, mu, r, w1)
        self.has_weight = w is not None
        return y.reshape(x.shape)

    def _backward_kernels(self, gy):
        x3, mu, r, w1 = self.saved
        gy3 = np.ascontiguousarray(gy).reshape(x3.shape)
        gx, gw, gb = kernel("batch_norm", "batch_norm_backward", gy3)(gy3, x3, w1, mu, r, self.training)
        return gx.reshape(gy.shape), (gw if self.has_weight else None), gb


def _kernel_arrays(x, w, b):
    """True when the CPU kernels (kernels/cpu/batch_norm.py, via kernels/dispatch.py) apply:
    NumPy arrays, one float dtype for x, w and b, a non-empty input. Otherwise the array
    formulas above run (on CuPy too)."""
    if type(x) is not np.ndarray or x.dtype not in (np.float32, np.float64) or x.size == 0:
        return False
    return all(p is None or (type(p) is np.ndarray and p.dtype == x.dtype) for p in (w, b))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    r"""Batch normalisation, as ``torch.nn.functional.batch_norm``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` per channel (axis 1), statistics over
    the batch and all spatial positions.

    Args:
        x (Tensor[N, C, *]): (N, C), (N, C, L) or (N, C, H, W).
        running_mean, running_var (Tensor[C] or None): buffers. In training they are updated
            in place (when given):
            ``running_mean = (1 - momentum) * running_mean + momentum * mean`` and
            ``running_var = (1 - momentum) * running_var + momentum * var * M/(M - 1)``
            — the *unbiased* variance goes into the running estimate, while the batch is
            normalised with the *biased* one (PyTorch's convention). In evaluation
            (``training=False``) they are the statistics used.
        weight, bias (Tensor[C] or None): the affine parameters (None: 1 and 0).
        momentum (float): the update factor above.

    Gradients flow to x, weight and bias (derivation: module docstring); never to the
    running statistics.

    >>> import numpy as np, tinyvision as tv
    >>> rm, rv = np.zeros(1), np.ones(1)
    >>> y = batch_norm(tv.tensor(np.array([[1.0], [3.0]])), rm, rv, training=True, momentum=0.5)
    >>> y.numpy().ravel().round(4), rm, rv
    (array([-1.,  1.]), array([1.]), array([1.5]))
    """
    x = input  # PyTorch's argument names; the short math names below
    xd = _data(x)
    if not hasattr(xd, "ndim") or xd.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, *) with at least 2 dims, got shape "
                         f"{tuple(getattr(xd, 'shape', ()))}")
    if xd.dtype not in (np.float32, np.float64):
        raise TypeError(f"batch_norm: input must be float32 or float64, got {xd.dtype}")
    C = xd.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and tuple(_data(t).shape) != (C,):
            raise ValueError(f"batch_norm: {name} must have shape ({C},) for input of shape "
                             f"{tuple(xd.shape)}, got {tuple(_data(t).shape)}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    M = xd.size // C
    if training:
        if M <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                             f"got input of shape {tuple(xd.shape)}")
        fn = BatchNormFunction(True, eps)
        y = fn(x, weight, bias)
        if running_mean is not None:
            if momentum is None:
                raise ValueError("batch_norm: momentum must be a float (nn.BatchNorm handles momentum=None)")
            rm, rv = _data(running_mean), _data(running_var)
            new_mean = (1 - momentum) * rm + momentum * fn.mean.astype(rm.dtype)
            new_var = (1 - momentum) * rv + momentum * (fn.var_sum / (M - 1)).astype(rv.dtype)
            _assign(running_mean, new_mean)
            _assign(running_var, new_var)
        return y
    if running_mean is None:
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
    return BatchNormFunction(False, eps, _data(running_mean).copy(), _data(running_var).copy())(x, weight, bias)


def _assign(buffer, value):
    """Write ``value`` into a running-statistics buffer in place (Tensor or array)."""
    if isinstance(buffer, Tensor):
        buffer.data[...] = value
        buffer._version += 1  # an in-place change, visible to autograd's saved-tensor check
    else:
        buffer[...] = value


class GroupNormFunction(Function):
    r"""Group normalisation (Wu & He 2018, https://arxiv.org/abs/1803.08494).

    Shapes: x, y, gy, gx (N, C, *); w, b, gw, gb (C,); G groups, C % G == 0. Statistics per
    (n, g) over the group's C/G channels and all positions (M = C/G * prod(*)), biased var.

        xhat = (x - mu[n,g]) r[n,g],  y = w[c] xhat + b[c]
        gx = (r/M) (M g - sum g - xhat sum(g xhat))   with g = gy w[c], sums within (n, g)
        gw[c] = sum_{n, positions} gy xhat,  gb[c] = sum_{n, positions} gy
    """

    def __init__(self, num_groups, eps):
        self.G = num_groups
        self.eps = eps

    def forward(self, x, w, b):
        xp = get_array_module(x)
        N = x.shape[0]
        xg = x.reshape(N, self.G, -1)  # (N, C, *) -> (N, G, C/G * prod(*))
        mean = xg.mean(axis=2, keepdims=True, dtype=xp.float64)
        var = ((xg - mean.astype(x.dtype)) ** 2).mean(axis=2, keepdims=True, dtype=xp.float64)
        r = (1.0 / xp.sqrt(var + self.eps)).astype(x.dtype)
        xhat = ((xg - mean.astype(x.dtype)) * r).reshape(x.shape)
        self.save_for_backward(xhat, r, w)
        return _affine(xhat, w, b)

    def backward(self, gy):
        xhat, r, w = self.saved
        N = gy.shape[0]
        g, gw, gb = _affine_backward(gy, xhat, w)  # g = dL/dxhat
        g = g.reshape(N, self.G, -1)               # (N, C, *) -> (N, G, C/G * prod(*))
        xg = xhat.reshape(N, self.G, -1)
        gx = _normalise_backward(g, xg, r, (2,), xg.shape[2])
        return gx.reshape(gy.shape), gw, gb


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    r"""Group normalisation, as ``torch.nn.functional.group_norm``.

    Channels are split into ``num_groups`` consecutive groups; each (sample, group) is
    normalised by its own mean and biased variance over the group's channels and positions,
    then ``weight[c], bias[c]`` scale and shift per channel. Independent of the batch size,
    identical in training and evaluation. num_groups=1 is LayerNorm over (C, *); num_groups=C
    is InstanceNorm.

    >>> import numpy as np, tinyvision as tv
    >>> group_norm(tv.tensor(np.array([[1.0, 3.0]])), 1).numpy().round(4)
    array([[-1.,  1.]])
    """
    x = input  # PyTorch's argument names; the short math names below
    xd = _data(x)
    if not hasattr(xd, "ndim") or xd.ndim < 2:
        raise ValueError(f"group_norm: input must be (N, C, *), got shape {tuple(getattr(xd, 'shape', ()))}")
    if xd.dtype not in (np.float32, np.float64):
        raise TypeError(f"group_norm: input must be float32 or float64, got {xd.dtype}")
    C = xd.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or num_groups < 1 \
            or C % num_groups != 0:
        raise ValueError(f"group_norm: num_groups={num_groups!r} must be a positive divisor of the "
                         f"number of channels {C} (input shape {tuple(xd.shape)})")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(_data(t).shape) != (C,):
            raise ValueError(f"group_norm: {name} must have shape ({C},) for input of shape "
                             f"{tuple(xd.shape)}, got {tuple(_data(t).shape)}")
    if xd.size == 0:
        raise ValueError(f"group_norm: empty input of shape {tuple(xd.shape)}")
    if xd.size // num_groups == 1:
        # PyTorch's check (F.group_norm's _verify_batch_size): N * C/G * prod(*) values must
        # exceed 1, else every output is 0 (a variance of one value).
        raise ValueError(f"group_norm: expected more than 1 value per channel, got input of shape "
                         f"{tuple(xd.shape)} with num_groups={num_groups}")
    return GroupNormFunction(int(num_groups), eps)(x, weight, bias)
