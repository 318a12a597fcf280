"""Resampling kernels for CuPy arrays: the signatures of ``kernels/cpu/resample.py``, written as
whole-array gathers (forward) and two dense matrix products (backward).

Nothing here is CuPy-specific beyond ``xp = get_array_module(x)``: the same code runs on NumPy
arrays, which is how the tests check it on a machine without a GPU. The taps (h_index,
h_weight (T, OH); w_index, w_weight (S, OW)) may be NumPy arrays; they are moved to x's device.

Forward, columns first then rows (PyTorch's order, so the float rounding agrees with the CPU
kernel bit for bit):

    u[n,c,h,q] = sum_s w_weight[s,q] * x[n,c,h,w_index[s,q]]            (N, C, H, OW)
    y[n,c,o,q] = sum_t h_weight[t,o] * u[n,c,h_index[t,o],q]            (N, C, OH, OW)

Backward: gx = Ah^T gy Aw with the dense Ah (OH, H) and Aw (OW, W) built from the taps (a
GEMM is the GPU's fast scatter).
"""
from __future__ import annotations

import numpy as np

from ...backend import get_array_module, to_device

__all__ = ["resample2d_forward", "resample2d_backward"]


def resample2d_forward(x, h_index, h_weight, w_index, w_weight):
    xp = get_array_module(x)
    u = None
    for s in range(len(w_index)):       # u[n,c,h,q] = sum_s w_weight[s,q] x[n,c,h,w_index[s,q]]
        term = x[:, :, :, xp.asarray(w_index[s])] * xp.asarray(w_weight[s], dtype=x.dtype)
        u = term if u is None else u + term
    y = None
    for t in range(len(h_index)):       # y[n,c,o,q] = sum_t h_weight[t,o] u[n,c,h_index[t,o],q]
        term = u[:, :, xp.asarray(h_index[t]), :] * xp.asarray(h_weight[t], dtype=x.dtype)[:, None]
        y = term if y is None else y + term
    return y


def _matrix(xp, index, weight, in_size, dtype):
    """A (O, in_size) with A[o, index[t, o]] += weight[t, o]: two taps may hit one column."""
    index, weight = to_device(index, "cpu"), to_device(weight, "cpu")
    A = np.zeros((index.shape[1], in_size), dtype=np.float64)
    rows = np.arange(index.shape[1])
    for t in range(index.shape[0]):
        np.add.at(A, (rows, index[t]), weight[t])
    return xp.asarray(A.astype(dtype))


def resample2d_backward(gy, h_index, h_weight, w_index, w_weight, height, width):
    xp = get_array_module(gy)
    Ah = _matrix(xp, h_index, h_weight, int(height), gy.dtype)  # (OH, H)
    Aw = _matrix(xp, w_index, w_weight, int(width), gy.dtype)   # (OW, W)
    return xp.matmul(xp.matmul(Ah.T, gy), Aw)  # (H, OH) @ (N, C, OH, OW) @ (OW, W)
