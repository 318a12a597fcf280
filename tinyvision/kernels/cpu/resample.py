"""Separable resampling (interpolate) on raw NumPy arrays: plain-loop references, then the fast
Numba forward and backward kernels with the same signatures (``kernels/dispatch.py``).

The forward of ``F.interpolate`` is a pair of gathers, columns first then rows (written with
array indexing in ``kernels/gpu/resample.py``, the GPU path): with taps as below,

    u[h, q] = sum_s w_weight[s, q] * x[h, w_index[s, q]]                (H, OW)
    y[o, q] = sum_t h_weight[t, o] * u[h_index[t, o], q]                (OH, OW)

evaluated here in the same order and dtype (so bit for bit the same), without the (N, C, H, OW)
temporaries. The backward is the transpose, gx = Ah^T gy Aw, a *scatter*: output pixel (o, q) sends
gy[o, q] * wh[t, o] * ww[s, q] to input pixel (h_index[t, o], w_index[s, q]) for every row
tap t and column tap s (one tap for nearest, two for bilinear).

Taps are given as arrays: h_index, h_weight (T, OH) and w_index, w_weight (S, OW), every
index inside the input (the caller clamps them). The threads split the N*C planes only (``_threads.run_plane_ranges``):
within a plane several outputs add into the same input pixel.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from . import _threads

__all__ = ["resample2d_forward_reference", "resample2d_backward_reference", "resample2d_forward", "resample2d_backward"]


# ======================================================================================
# Plain-loop references (the formulas above, one output pixel at a time, vectorised only
# over the independent (N, C) planes), with the fast kernels' signatures.
# ======================================================================================
def resample2d_forward_reference(x, h_index, h_weight, w_index, w_weight):
    """y[n,c,o,q] = sum_t h_weight[t,o] * (sum_s w_weight[s,q] * x[n,c,h_index[t,o],w_index[s,q]]),
    the column sum first (the order, hence the rounding, of the fast kernel and PyTorch)."""
    N, C = x.shape[:2]
    T, OH = h_index.shape
    S, OW = w_index.shape
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    hw = h_weight.astype(x.dtype)
    ww = w_weight.astype(x.dtype)
    for o in range(OH):
        for q in range(OW):
            acc = None
            for t in range(T):
                u = x[:, :, h_index[t, o], w_index[0, q]] * ww[0, q]      # u[h, q], the column pass
                for s in range(1, S):
                    u = u + x[:, :, h_index[t, o], w_index[s, q]] * ww[s, q]
                acc = u * hw[t, o] if acc is None else acc + u * hw[t, o]
            y[:, :, o, q] = acc
    return y


def resample2d_backward_reference(gy, h_index, h_weight, w_index, w_weight, height, width):
    """Plain loops: gx[n,c,h_index[t,o],w_index[s,q]] += gy[n,c,o,q] * h_weight[t,o] * w_weight[s,q]."""
    N, C, OH, OW = gy.shape
    gx = np.zeros((N, C, height, width), dtype=gy.dtype)
    for o in range(OH):
        for q in range(OW):
            for t in range(h_index.shape[0]):
                for s in range(w_index.shape[0]):
                    gx[:, :, h_index[t, o], w_index[s, q]] += gy[:, :, o, q] * h_weight[t, o] * w_weight[s, q]
    return gx



# ======================================================================================
# Fast Numba kernels
# ======================================================================================
@njit(cache=True, nogil=True)
def _resample_forward_planes(x, h_index, h_weight, w_index, w_weight, y, p0, p1):
    H = x.shape[1]
    T, OH = h_index.shape
    S, OW = w_index.shape
    u = np.empty((H, OW), dtype=x.dtype)           # the column pass of one plane
    for p in range(p0, p1):
        for h in range(H):
            for q in range(OW):
                acc = x[p, h, w_index[0, q]] * w_weight[0, q]
                for s in range(1, S):
                    acc = acc + x[p, h, w_index[s, q]] * w_weight[s, q]
                u[h, q] = acc
        for o in range(OH):                        # the row pass
            for q in range(OW):
                acc = u[h_index[0, o], q] * h_weight[0, o]
                for t in range(1, T):
                    acc = acc + u[h_index[t, o], q] * h_weight[t, o]
                y[p, o, q] = acc


def resample2d_forward(x, h_index, h_weight, w_index, w_weight):
    """y (N, C, OH, OW) from x (N, C, H, W) float32/float64 and taps (T, OH), (S, OW) whose
    indices lie inside the input (the caller clamps them)."""
    N, C, H, W = x.shape
    dtype = x.dtype
    OH, OW = h_index.shape[1], w_index.shape[1]
    y = np.empty((N * C, OH, OW), dtype=dtype)
    _threads.run_plane_ranges(
        _resample_forward_planes, N * C, N * C * (H * OW * w_index.shape[0] + OH * OW * h_index.shape[0]),
        np.ascontiguousarray(x).reshape(N * C, H, W),
        np.ascontiguousarray(h_index, dtype=np.int64), np.ascontiguousarray(h_weight, dtype=dtype),
        np.ascontiguousarray(w_index, dtype=np.int64), np.ascontiguousarray(w_weight, dtype=dtype), y)
    return y.reshape(N, C, OH, OW)


@njit(cache=True, nogil=True)
def _resample_backward_planes(gy, h_index, h_weight, w_index, w_weight, gx, p0, p1):
    OH, OW = gy.shape[1], gy.shape[2]
    T = h_index.shape[0]
    S = w_index.shape[0]
    for p in range(p0, p1):
        gx[p, :, :] = 0  # zeroed by the thread that owns the plane (first touch)
        for o in range(OH):
            for t in range(T):
                h = h_index[t, o]
                wh = h_weight[t, o]
                for q in range(OW):
                    g = gy[p, o, q] * wh
                    for s in range(S):
                        gx[p, h, w_index[s, q]] += g * w_weight[s, q]


def resample2d_backward(gy, h_index, h_weight, w_index, w_weight, height, width):
    """Fast scatter (see the module docstring). gy (N, C, OH, OW) float32/float64 -> gx (N, C, H, W)."""
    N, C, OH, OW = gy.shape
    dtype = gy.dtype
    gx = np.empty((N * C, int(height), int(width)), dtype=dtype)
    _threads.run_plane_ranges(
        _resample_backward_planes, N * C, gy.size * h_index.shape[0] * w_index.shape[0] + N * C * int(height) * int(width),
        np.ascontiguousarray(gy).reshape(N * C, OH, OW),
        np.ascontiguousarray(h_index, dtype=np.int64), np.ascontiguousarray(h_weight, dtype=dtype),
        np.ascontiguousarray(w_index, dtype=np.int64), np.ascontiguousarray(w_weight, dtype=dtype), gx)
    return gx.reshape(N, C, height, width)
