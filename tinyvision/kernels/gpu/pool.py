"""Pooling kernels for CuPy arrays: the window-table kernels of ``kernels/cpu/pool.py``,
same signatures and conventions, written as whole-array gathers and scatter-adds.

Nothing here is CuPy-specific beyond ``xp = get_array_module(x)``: the same code runs on
NumPy arrays, which is how the test suite checks it on a machine without a GPU. See
``kernels/cpu/pool.py`` for the window tables and the tie / NaN / empty-window conventions.

How it works, for an output grid (OH, OW) whose windows hold at most KH x KW elements:

    rows[oh, i] = h_start[oh] + i * dilation_h,  valid while i < h_count[oh]    (OH, KH)
    cols[ow, j] = w_start[ow] + j * dilation_w,  valid while j < w_count[ow]    (OW, KW)
    v = x[:, :, rows[:, :, None, None], cols[None, None, :, :]]     (N, C, OH, KH, OW, KW)

then a reduction over (KH, KW), invalid slots masked out (-inf for max, 0 for sums).
Backward scatter-adds into the flat input with ``bincount`` (float64 accumulation: the
sums of many gradients do not depend on the order the GPU adds them in, up to float64
round-off, then cast back to the input dtype).
"""
from __future__ import annotations

from ...backend import get_array_module

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"]


def _offsets(xp, start, count, dilation):
    """(positions (O, K), valid (O, K), clipped positions safe to gather) along one axis."""
    start = xp.asarray(start, dtype=xp.int64)
    count = xp.asarray(count, dtype=xp.int64)
    K = max(int(count.max()) if count.size else 1, 1)
    k = xp.arange(K, dtype=xp.int64)
    pos = start[:, None] + k[None, :] * dilation  # (O, K)
    valid = k[None, :] < count[:, None]  # (O, K)
    safe = xp.where(valid, pos, 0)
    return pos, valid, safe


def _gather(x, h_safe, w_safe):
    """x (N, C, H, W) -> (N, C, OH, KH, OW, KW)."""
    return x[:, :, h_safe[:, :, None, None], w_safe[None, None, :, :]]


def max_pool2d_forward(x, h_start, h_count, w_start, w_count, dilation_h=1, dilation_w=1):
    xp = get_array_module(x)
    N, C, H, W = x.shape
    h_pos, h_valid, h_safe = _offsets(xp, h_start, h_count, dilation_h)
    w_pos, w_valid, w_safe = _offsets(xp, w_start, w_count, dilation_w)
    OH, KH = h_pos.shape
    OW, KW = w_pos.shape
    valid = h_valid[:, :, None, None] & w_valid[None, None, :, :]  # (OH, KH, OW, KW)
    v = xp.where(valid, _gather(x, h_safe, w_safe), -xp.inf).astype(x.dtype, copy=False)
    # (N, C, OH, KH, OW, KW) -> (N, C, OH, OW, KH*KW): the window in scan order (row-major)
    v = v.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, OH, OW, KH * KW)
    flat = (h_pos[:, :, None, None] * W + w_pos[None, None, :, :])  # (OH, KH, OW, KW)
    flat = flat.transpose(0, 2, 1, 3).reshape(OH, OW, KH * KW)
    # First maximum in scan order; a window with NaN takes its last NaN (PyTorch CPU's rule).
    is_nan = xp.isnan(v)
    first_max = xp.argmax(xp.where(is_nan, -xp.inf, v), axis=-1)
    last_nan = KH * KW - 1 - xp.argmax(is_nan[..., ::-1], axis=-1)
    k = xp.where(is_nan.any(axis=-1), last_nan, first_max)  # (N, C, OH, OW)
    y = xp.take_along_axis(v, k[..., None], axis=-1)[..., 0]
    ii, jj = xp.meshgrid(xp.arange(OH), xp.arange(OW), indexing="ij")
    indices = flat[ii[None, None], jj[None, None], k]
    return xp.ascontiguousarray(y), xp.ascontiguousarray(indices.astype(xp.int64))


def max_pool2d_backward(gy, indices, height, width):
    xp = get_array_module(gy)
    N, C = gy.shape[:2]
    HW = int(height) * int(width)
    plane = xp.arange(N * C, dtype=xp.int64).reshape(N, C, 1, 1) * HW
    keep = (indices >= 0) & (indices < HW)  # empty windows point outside the plane
    target = (plane + indices)[keep]
    gx = xp.bincount(target, weights=gy[keep].astype(xp.float64), minlength=N * C * HW)
    return gx.astype(gy.dtype).reshape(N, C, int(height), int(width))


def avg_pool2d_forward(x, h_start, h_count, w_start, w_count, divisor):
    xp = get_array_module(x)
    _, h_valid, h_safe = _offsets(xp, h_start, h_count, 1)
    _, w_valid, w_safe = _offsets(xp, w_start, w_count, 1)
    valid = h_valid[:, :, None, None] & w_valid[None, None, :, :]  # (OH, KH, OW, KW)
    v = xp.where(valid, _gather(x, h_safe, w_safe).astype(xp.float64), 0.0)
    total = v.sum(axis=(3, 5))  # (N, C, OH, OW)
    return (total / xp.asarray(divisor, dtype=xp.float64)).astype(x.dtype)


def avg_pool2d_backward(gy, h_start, h_count, w_start, w_count, divisor, height, width):
    xp = get_array_module(gy)
    N, C, OH, OW = gy.shape
    HW = int(height) * int(width)
    h_pos, h_valid, _ = _offsets(xp, h_start, h_count, 1)
    w_pos, w_valid, _ = _offsets(xp, w_start, w_count, 1)
    KH, KW = h_pos.shape[1], w_pos.shape[1]
    valid = h_valid[:, :, None, None] & w_valid[None, None, :, :]  # (OH, KH, OW, KW)
    flat = h_pos[:, :, None, None] * int(width) + w_pos[None, None, :, :]
    plane = xp.arange(N * C, dtype=xp.int64).reshape(N, C, 1, 1, 1, 1) * HW
    g = gy.astype(xp.float64) / xp.asarray(divisor, dtype=xp.float64)  # (N, C, OH, OW)
    g = xp.broadcast_to(g[:, :, :, None, :, None], (N, C, OH, KH, OW, KW))
    mask = xp.broadcast_to(valid, g.shape)
    target = xp.broadcast_to(plane + flat, g.shape)[mask]
    gx = xp.bincount(target, weights=g[mask], minlength=N * C * HW)
    return gx.astype(gy.dtype).reshape(N, C, int(height), int(width))
