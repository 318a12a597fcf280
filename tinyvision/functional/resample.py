r"""Resampling: ``interpolate`` (nearest, nearest-exact, bilinear) with PyTorch's exact indices.

Shapes: x (N, C, H, W) -> y (N, C, OH, OW).

Both modes are *separable*: each output pixel mixes a few input rows, then a few columns,
with weights that depend on the output row (resp. column) only. Written as matrices
Ah (OH, H) and Aw (OW, W), with at most two nonzeros per row,

    y[n,c] = Ah @ x[n,c] @ Aw^T

and the gradient of this linear map is its transpose (see :class:`Resample2dFunction`).
What distinguishes the modes is only how a destination index maps to source indices and
weights; the formulas are PyTorch's (``aten/src/ATen/native/UpSample.h``), including the
arithmetic precision they are evaluated in, since an index computed as floor(o * scale)
changes when ``scale`` is rounded differently.

Scale. With ``size`` given, or ``scale_factor`` with ``recompute_scale_factor=True``, the
per-axis scale is in/out. With ``scale_factor`` given (and recompute_scale_factor not True) the
output size is floor(in * scale_factor) and the scale used for the source index is
1/scale_factor, which differs from in/out when in * scale_factor is not an integer.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Tensor
from ..backend import get_array_module
from ..kernels.dispatch import kernel

__all__ = ["interpolate", "Resample2dFunction"]

_MODES = ("nearest", "nearest-exact", "bilinear")


class Resample2dFunction(Function):
    r"""A separable linear resampling y = Ah x Aw^T, given as taps.

    Shapes: x (N, C, H, W); y, gy (N, C, OH, OW); Ah (OH, H); Aw (OW, W).

    The taps: for output row o, rows ``h_index[t][o]`` with weights ``h_weight[t][o]``
    (t = 0, 1 for bilinear; t = 0 with weight 1 for nearest), likewise for columns.

    Forward, columns first then rows — PyTorch's order of operations, so the float rounding
    agrees:

        u[n,c,h,p] = sum_t Aw-tap_t(p) * x[n,c,h, w_index[t][p]]          (N, C, H, OW)
        y[n,c,o,p] = sum_t Ah-tap_t(o) * u[n,c, h_index[t][o], p]          (N, C, OH, OW)

    i.e. y[n,c,o,p] = sum_{a,b} Ah[o,a] x[n,c,a,b] Aw[p,b].

    Backward: dy[n,c,o,p]/dx[n,c,a,b] = Ah[o,a] Aw[p,b], so

        gx[n,c,a,b] = sum_{o,p} Ah[o,a] gy[n,c,o,p] Aw[p,b],   i.e.  gx = Ah^T @ gy @ Aw

    a scatter of each gy[o, p] over the taps (``kernels/cpu/resample.py``, Numba) on the CPU,
    two dense matrix products on the GPU (``kernels/gpu/resample.py``), both chosen by
    ``kernels/dispatch.py``; a source pixel read by several outputs
    (upsampling) collects all their gradients.
    """

    def __init__(self, h_taps, w_taps, in_hw):
        self.h_taps, self.w_taps = h_taps, w_taps
        self.in_hw = in_hw
        # The taps as the kernels take them: (index (T, OH), weight (T, OH)), likewise columns.
        self.h_table = tuple(np.stack(a) for a in zip(*h_taps))
        self.w_table = tuple(np.stack(a) for a in zip(*w_taps))

    @staticmethod
    def _matrix(xp, taps, out_size, in_size, dtype):
        A = np.zeros((out_size, in_size), dtype=np.float64)
        rows = np.arange(out_size)
        for index, weight in taps:
            np.add.at(A, (rows, index), weight)  # two taps may hit the same column
        return xp.asarray(A.astype(dtype))

    def forward(self, x):
        # One kernel per device (kernels/dispatch.py): Numba on the CPU, gathers on the GPU.
        return kernel("resample", "resample2d_forward", x)(x, *self.h_table, *self.w_table)

    def backward(self, gy):
        # gx = Ah^T gy Aw: a Numba scatter over the taps on the CPU, O(N C OH OW); two dense
        # matrix products on the GPU.
        H, W = self.in_hw
        return kernel("resample", "resample2d_backward", gy)(gy, *self.h_table, *self.w_table, H, W)


def resample_gather(x, h_taps, w_taps):
    """The forward y = Ah x Aw^T as two gathers over the taps (lists of (index, weight)), columns
    first: array code on any device, for callers that hold taps as lists (data transforms).
    Equals the CPU and GPU kernels bit for bit."""
    xp = get_array_module(x)
    u = None
    for index, weight in w_taps:        # u[n,c,h,q] = sum_s w_weight[s,q] x[n,c,h,w_index[s,q]]
        term = x[:, :, :, xp.asarray(index)] * xp.asarray(weight, dtype=x.dtype)
        u = term if u is None else u + term
    y = None
    for index, weight in h_taps:        # y[n,c,o,q] = sum_t h_weight[t,o] u[n,c,h_index[t,o],q]
        term = u[:, :, xp.asarray(index), :] * xp.asarray(weight, dtype=x.dtype)[:, None]
        y = term if y is None else y + term
    return y


# --------------------------------------------------------------------------------------
# Source indices and weights along one axis (PyTorch's formulas, PyTorch's precision)
# --------------------------------------------------------------------------------------
def _nearest_taps(in_size, out_size, scale, exact):
    """Nearest: src = min(floor(o * s), in - 1); nearest-exact: min(floor((o + 0.5) * s), in - 1).

    s = 1/scale_factor when a scale is given, else in/out, held in float32 whatever the input
    dtype (PyTorch computes nearest indices in float). Legacy nearest short-cuts out == in
    (identity) and out == 2*in (o // 2) as PyTorch does.
    """
    o = np.arange(out_size)
    s = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(in_size) / np.float32(out_size)
    if exact:
        # (o + 0.5) is a double times a float: computed in double, then rounded to float.
        src = np.floor(((o + 0.5) * np.float64(s)).astype(np.float32)).astype(np.int64)
    elif out_size == in_size:
        src = o
    elif out_size == 2 * in_size:
        src = o >> 1
    else:
        src = np.floor(o.astype(np.float32) * s).astype(np.int64)
    return [(np.minimum(src, in_size - 1), np.ones(out_size))]


def _linear_taps(in_size, out_size, scale, align_corners, dtype):
    """Bilinear along one axis, in the input's precision (float32 for float32 input):

    out == in:           src = o (a copy, PyTorch's short-cut)
    align_corners=True:  src = o * (in - 1)/(out - 1)        (0 when out == 1)
    align_corners=False: src = max(s * (o + 0.5) - 0.5, 0),  s = 1/scale_factor or in/out
    i0 = min(floor(src), in - 1), i1 = i0 + 1 if i0 < in - 1 else i0,
    lambda = clamp(src - i0, 0, 1); weights (1 - lambda, lambda).
    """
    T = np.dtype(dtype).type
    o = np.arange(out_size).astype(dtype)
    if out_size == in_size:
        # PyTorch's short-cut: an axis that keeps its size is copied (src = o), whatever the
        # scale_factor that produced the size (e.g. 3 * 1.3 -> 3 copies, not resamples, rows).
        index = np.arange(out_size)
        return [(index, np.ones(out_size, dtype=dtype)), (index, np.zeros(out_size, dtype=dtype))]
    if align_corners:
        s = T(in_size - 1) / T(out_size - 1) if out_size > 1 else T(0)
        src = s * o
    else:
        s = T(1.0 / scale) if scale is not None and scale > 0 else T(in_size) / T(out_size)
        src = s * (o + T(0.5)) - T(0.5)
        src = np.where(src < 0, T(0), src).astype(dtype)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    lam = np.clip(src - i0.astype(dtype), T(0), T(1)).astype(dtype)
    i1 = np.where(i0 < in_size - 1, i0 + 1, i0)
    return [(i0, (T(1) - lam).astype(dtype)), (i1, lam)]


def _pair_of(value, name, kind):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"interpolate: {name} must be one value or a pair for a 4-D input, got {value!r}")
        values = tuple(value)
    else:
        values = (value, value)
    allowed = (int, np.integer) if kind is int else (int, float, np.integer, np.floating)
    if any(isinstance(v, bool) or not isinstance(v, allowed) for v in values):
        what = "an int or a pair of ints" if kind is int else "a number or a pair of numbers"
        raise TypeError(f"interpolate: {name} must be {what}, got {value!r}")
    return tuple(kind(v) for v in values)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    r"""Resize images, as ``torch.nn.functional.interpolate`` for 4-D input.

    Args:
        x (Tensor[N, C, H, W]): float32 or float64.
        size (int or (OH, OW)): the output size; or
        scale_factor (float or pair): output size floor(H * scale_factor). Exactly one of the two.
        mode: ``"nearest"`` (PyTorch's legacy nearest: src = floor(dst * scale)),
            ``"nearest-exact"`` (src = floor((dst + 0.5) * scale), pixel centres) or ``"bilinear"``.
        align_corners (bilinear only; default False): True maps the corner pixels' centres onto
            each other, src = dst * (in - 1)/(out - 1); False treats pixels as unit squares,
            src = (dst + 0.5) * scale - 0.5, clamped below at 0.
        recompute_scale_factor: with scale_factor, True computes the output size and then uses
            scale = in/out for the indices (instead of 1/scale_factor).

    >>> import numpy as np, tinyvision as tv
    >>> x = tv.tensor(np.array([[[[0., 1.]]]]))
    >>> interpolate(x, scale_factor=(1, 2), mode="bilinear").numpy()
    array([[[[0.  , 0.25, 0.75, 1.  ]]]])
    >>> interpolate(x, size=(1, 4), mode="nearest").numpy()
    array([[[[0., 0., 1., 1.]]]])
    """
    x = input   # PyTorch's argument names outside, math names inside
    data = x.data if isinstance(x, Tensor) else x
    if not hasattr(data, "ndim"):
        raise TypeError(f"interpolate: input must be a Tensor or an array, got {type(x).__name__}")
    if data.ndim != 4:
        raise ValueError(f"interpolate: input must be 4-D (N, C, H, W), got shape {tuple(data.shape)}")
    if data.dtype not in (np.float32, np.float64):
        raise TypeError(f"interpolate: input must be float32 or float64, got {data.dtype}")
    if mode not in _MODES:
        raise ValueError(f"interpolate: mode must be one of {_MODES}, got {mode!r}")
    if antialias:
        raise ValueError("interpolate: antialias=True is not supported")
    if mode != "bilinear" and align_corners is not None:
        raise ValueError(f"interpolate: align_corners can only be set with mode='bilinear', got mode={mode!r}")
    align_corners = bool(align_corners) if align_corners is not None else False
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    H, W = data.shape[2:]
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor is only meaningful with scale_factor")
        out = _pair_of(size, "size", int)
        scales = (None, None)
    else:
        factors = _pair_of(scale_factor, "scale_factor", float)
        if not all(math.isfinite(f) and f > 0 for f in factors):
            raise ValueError(f"interpolate: scale_factor must be positive and finite, got {scale_factor!r}")
        out = (math.floor(H * factors[0]), math.floor(W * factors[1]))
        scales = (None, None) if recompute_scale_factor else factors
    if min(out) < 1:
        raise ValueError(
            f"interpolate: output size {out} for input shape {tuple(data.shape)} must be positive "
            f"(size={size!r}, scale_factor={scale_factor!r})"
        )
    if mode == "bilinear":
        h_taps = _linear_taps(H, out[0], scales[0], align_corners, data.dtype)
        w_taps = _linear_taps(W, out[1], scales[1], align_corners, data.dtype)
    else:
        exact = mode == "nearest-exact"
        h_taps = _nearest_taps(H, out[0], scales[0], exact)
        w_taps = _nearest_taps(W, out[1], scales[1], exact)
    return Resample2dFunction(h_taps, w_taps, (H, W))(x)
