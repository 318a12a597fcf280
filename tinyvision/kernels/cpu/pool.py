"""Pooling kernels on raw NumPy arrays: plain-loop references, then the fast Numba kernels.

Layout (the contract of ``kernels/dispatch.py``): each fast kernel ``<name>`` below has a
``<name>_reference`` above it with the same signature, written as plain loops; the
``*_definition`` functions compute the same pools from PyTorch's arguments (kernel_size,
stride, padding, dilation, ceil_mode, adaptive output size) without window tables.

Notation (the whole file): x (N, C, H, W) the input, y (N, C, OH, OW) the output, P = N*C
independent planes. A pooling output y[n, c, oh, ow] reads one *window* of its plane.

Window tables
-------------
The fast kernels do not know about kernel sizes, strides, paddings, dilations, ceil_mode or
adaptive pooling: the caller (``tinyvision.functional.pooling``) turns those into *window
tables*, one entry per output row and per output column:

    rows of window (oh, .) :  h_start[oh] + i * dilation_h   for i in range(h_count[oh])
    cols of window (., ow) :  w_start[ow] + j * dilation_w   for j in range(w_count[ow])

Every listed row and column lies inside the input (padding is never read), so a kernel can
index without checks. The same four int64 arrays describe max_pool2d (dilated, clipped
windows), avg_pool2d (dilation 1) and the adaptive pools (windows of varying size), so one
kernel serves each family, and the CuPy kernels in ``kernels/gpu/pool.py`` take the same
arguments.

Conventions (PyTorch CPU's, checked by the tests)
-------------------------------------------------
* max: the scan goes row by row, column by column; a value replaces the running maximum
  when it is *strictly* greater (ties keep the first maximum in scan order) or when it is
  NaN (so a window holding NaN outputs NaN, with the index of its *last* NaN). The running
  maximum starts at -inf with the index of the window's first element, so an all -inf
  window points to its first element.
* indices are flat positions in the input *plane*: h * W + w.
* An empty max window (possible only with dilation larger than the input allows) outputs
  -inf with index h_start*W + w_start, which may point outside the plane; backward ignores
  indices outside [0, H*W), as PyTorch's gradient does.
* avg: the window sum is accumulated in float64 and divided by ``divisor[oh, ow]``.

Parallelism: the threads split the P planes only (``_threads.run_plane_ranges``). Windows of one plane overlap
when the stride is smaller than the kernel, so backward's scatter-add into gx would race if two
threads shared a plane; different planes never share a pixel.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from . import _threads

__all__ = [
    "max_pool2d_forward_reference",
    "max_pool2d_backward_reference",
    "avg_pool2d_forward_reference",
    "avg_pool2d_backward_reference",
    "max_pool2d_definition",
    "avg_pool2d_definition",
    "avg_pool2d_backward_definition",
    "adaptive_max_pool2d_definition",
    "adaptive_avg_pool2d_definition",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
]


# ======================================================================================
# Plain-loop references, with the fast kernels' signatures (window tables): one output pixel
# at a time, vectorised only over the independent (N, C) planes. Slow, obviously right.
# ======================================================================================
def _running_max(best, best_index, v, flat):
    """One step of the max scan: v replaces the maximum when strictly greater (ties keep the
    first) or NaN (so the last NaN wins)."""
    better = (v > best) | np.isnan(v)
    return np.where(better, v, best), np.where(better, flat, best_index)


def max_pool2d_forward_reference(x, h_start, h_count, w_start, w_count, dilation_h=1, dilation_w=1):
    """y[n,c,oh,ow] = max over i < h_count[oh], j < w_count[ow] of
    x[n,c, h_start[oh] + i*DH, w_start[ow] + j*DW]; indices = h*W + w of that maximum."""
    N, C, H, W = x.shape
    OH, OW = len(h_start), len(w_start)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    indices = np.empty((N, C, OH, OW), dtype=np.int64)
    for oh in range(OH):
        for ow in range(OW):
            best = np.full((N, C), -np.inf, dtype=x.dtype)
            best_index = np.full((N, C), h_start[oh] * W + w_start[ow], dtype=np.int64)
            for i in range(h_count[oh]):
                h = h_start[oh] + i * dilation_h
                for j in range(w_count[ow]):
                    w = w_start[ow] + j * dilation_w
                    best, best_index = _running_max(best, best_index, x[:, :, h, w], h * W + w)
            y[:, :, oh, ow] = best
            indices[:, :, oh, ow] = best_index
    return y, indices


def max_pool2d_backward_reference(gy, indices, height, width):
    """gx[n,c,h,w] = sum of gy[n,c,oh,ow] over the outputs whose max sat at (h, w); indices
    outside the plane (empty windows) are skipped."""
    N, C, OH, OW = gy.shape
    HW = int(height) * int(width)
    gx = np.zeros((N, C, HW), dtype=gy.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    k = indices[n, c, oh, ow]
                    if 0 <= k < HW:
                        gx[n, c, k] += gy[n, c, oh, ow]
    return gx.reshape(N, C, int(height), int(width))


def avg_pool2d_forward_reference(x, h_start, h_count, w_start, w_count, divisor):
    """y[n,c,oh,ow] = (sum of x over rows h_start[oh] + i, i < h_count[oh], and columns
    w_start[ow] + j, j < w_count[ow], accumulated in float64) / divisor[oh, ow]."""
    N, C = x.shape[:2]
    OH, OW = len(h_start), len(w_start)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    for oh in range(OH):
        for ow in range(OW):
            total = np.zeros((N, C), dtype=np.float64)
            for h in range(h_start[oh], h_start[oh] + h_count[oh]):
                for w in range(w_start[ow], w_start[ow] + w_count[ow]):
                    total += x[:, :, h, w]
            y[:, :, oh, ow] = total / divisor[oh, ow]
    return y


def avg_pool2d_backward_reference(gy, h_start, h_count, w_start, w_count, divisor, height, width):
    """gx[n,c,h,w] = sum over the windows (oh, ow) containing (h, w) of gy[n,c,oh,ow] / divisor[oh, ow]."""
    N, C, OH, OW = gy.shape
    gx = np.zeros((N, C, int(height), int(width)), dtype=gy.dtype)
    for oh in range(OH):
        for ow in range(OW):
            g = gy[:, :, oh, ow] / divisor[oh, ow]
            for h in range(h_start[oh], h_start[oh] + h_count[oh]):
                for w in range(w_start[ow], w_start[ow] + w_count[ow]):
                    gx[:, :, h, w] += g
    return gx


# ======================================================================================
# Definitions from PyTorch's arguments (kernel_size, stride, padding, ...), independent of
# the window tables: the tests use them to check the tables that functional/pooling.py builds.
# ======================================================================================
def max_pool2d_definition(x, kernel_size, stride, padding, dilation, output_size):
    """y[n,c,oh,ow] = max over i<KH, j<KW of x[n,c, oh*SH - PH + i*DH, ow*SW - PW + j*DW],
    skipping positions in the padding. Returns (y, indices) with indices = h*W + w of the max.

    kernel_size, stride, padding, dilation, output_size: (height, width) pairs.
    """
    N, C, H, W = x.shape
    KH, KW = kernel_size
    SH, SW = stride
    PH, PW = padding
    DH, DW = dilation
    OH, OW = output_size
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    indices = np.empty((N, C, OH, OW), dtype=np.int64)
    for oh in range(OH):
        for ow in range(OW):
            # First in-bounds row/column of the (dilated) window: step over the padding.
            h0 = oh * SH - PH
            while h0 < 0:
                h0 += DH
            w0 = ow * SW - PW
            while w0 < 0:
                w0 += DW
            best = np.full((N, C), -np.inf, dtype=x.dtype)
            best_index = np.full((N, C), h0 * W + w0, dtype=np.int64)
            for i in range(KH):
                h = oh * SH - PH + i * DH
                if h < 0 or h >= H:
                    continue
                for j in range(KW):
                    w = ow * SW - PW + j * DW
                    if w < 0 or w >= W:
                        continue
                    v = x[:, :, h, w]
                    better = (v > best) | np.isnan(v)  # strictly greater: ties keep the first
                    best = np.where(better, v, best)
                    best_index = np.where(better, h * W + w, best_index)
            y[:, :, oh, ow] = best
            indices[:, :, oh, ow] = best_index
    return y, indices


def _avg_window(o, S, P, K, size):
    """PyTorch's avg-pool window along one axis: (start, end) inside the input, and the
    window's length clipped to input + padding (count_include_pad's divisor factor)."""
    start = o * S - P
    end = min(start + K, size + P)
    padded_length = end - start
    return max(start, 0), min(end, size), padded_length


def _avg_divisor(h0, h1, ph, w0, w1, pw, count_include_pad, divisor_override):
    """divisor_override if given; else the window's area clipped to the padded input
    (count_include_pad=True), or the number of its in-bounds elements."""
    if divisor_override is not None:
        return divisor_override
    if count_include_pad:
        return ph * pw
    return (h1 - h0) * (w1 - w0)


def avg_pool2d_definition(x, kernel_size, stride, padding, output_size, count_include_pad=True,
                         divisor_override=None):
    """y[n,c,oh,ow] = (sum of x over the window's in-bounds part) / divisor, where divisor is
    divisor_override if given, else the window's area clipped to the padded input
    (count_include_pad=True), else the number of in-bounds elements."""
    N, C, H, W = x.shape
    OH, OW = output_size
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    for oh in range(OH):
        h0, h1, ph = _avg_window(oh, stride[0], padding[0], kernel_size[0], H)
        for ow in range(OW):
            w0, w1, pw = _avg_window(ow, stride[1], padding[1], kernel_size[1], W)
            if h0 >= h1 or w0 >= w1:
                y[:, :, oh, ow] = 0  # a window entirely in the padding (ceil_mode edge)
                continue
            divisor = _avg_divisor(h0, h1, ph, w0, w1, pw, count_include_pad, divisor_override)
            total = np.zeros((N, C), dtype=np.float64)
            for h in range(h0, h1):
                for w in range(w0, w1):
                    total += x[:, :, h, w]
            y[:, :, oh, ow] = total / divisor
    return y


def avg_pool2d_backward_definition(gy, input_shape, kernel_size, stride, padding,
                                  count_include_pad=True, divisor_override=None):
    """gx[n,c,h,w] = sum over the windows containing (h, w) of gy[n,c,oh,ow] / divisor."""
    N, C, H, W = input_shape
    OH, OW = gy.shape[2:]
    gx = np.zeros(input_shape, dtype=gy.dtype)
    for oh in range(OH):
        h0, h1, ph = _avg_window(oh, stride[0], padding[0], kernel_size[0], H)
        for ow in range(OW):
            w0, w1, pw = _avg_window(ow, stride[1], padding[1], kernel_size[1], W)
            if h0 >= h1 or w0 >= w1:
                continue
            divisor = _avg_divisor(h0, h1, ph, w0, w1, pw, count_include_pad, divisor_override)
            gx[:, :, h0:h1, w0:w1] += (gy[:, :, oh, ow] / divisor)[:, :, None, None]
    return gx


def _adaptive_window(o, size, out_size):
    """PyTorch's adaptive window: [floor(o*size/out_size), ceil((o+1)*size/out_size))."""
    start = (o * size) // out_size
    end = -((-(o + 1) * size) // out_size)  # ceil division on integers
    return start, end


def adaptive_max_pool2d_definition(x, output_size):
    """Max over the adaptive window of each output; (y, indices) as max_pool2d_definition."""
    N, C, H, W = x.shape
    OH, OW = output_size
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    indices = np.empty((N, C, OH, OW), dtype=np.int64)
    for oh in range(OH):
        h0, h1 = _adaptive_window(oh, H, OH)
        for ow in range(OW):
            w0, w1 = _adaptive_window(ow, W, OW)
            best = np.full((N, C), -np.inf, dtype=x.dtype)
            best_index = np.full((N, C), h0 * W + w0, dtype=np.int64)
            for h in range(h0, h1):
                for w in range(w0, w1):
                    v = x[:, :, h, w]
                    better = (v > best) | np.isnan(v)
                    best = np.where(better, v, best)
                    best_index = np.where(better, h * W + w, best_index)
            y[:, :, oh, ow] = best
            indices[:, :, oh, ow] = best_index
    return y, indices


def adaptive_avg_pool2d_definition(x, output_size):
    """Mean over the adaptive window of each output."""
    N, C, H, W = x.shape
    OH, OW = output_size
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    for oh in range(OH):
        h0, h1 = _adaptive_window(oh, H, OH)
        for ow in range(OW):
            w0, w1 = _adaptive_window(ow, W, OW)
            y[:, :, oh, ow] = x[:, :, h0:h1, w0:w1].astype(np.float64).sum(axis=(2, 3)) / ((h1 - h0) * (w1 - w0))
    return y


# ======================================================================================
# Fast Numba kernels on window tables. x is viewed as P = N*C planes; each kernel does the
# planes [p0, p1) serially and releases the GIL; _threads.run_plane_ranges hands ranges of
# planes to the threads (the caller and the pool threads; no Numba prange, see there).
# ======================================================================================
@njit(cache=True, nogil=True)
def _max_pool_planes(x, h_start, h_count, w_start, w_count, dilation_h, dilation_w, y, indices, p0, p1):
    W = x.shape[2]
    OH = h_start.shape[0]
    OW = w_start.shape[0]
    for p in range(p0, p1):
        plane = x[p]
        for oh in range(OH):
            hs = h_start[oh]
            hc = h_count[oh]
            for ow in range(OW):
                ws = w_start[ow]
                wc = w_count[ow]
                best = -np.inf
                best_index = hs * W + ws
                for i in range(hc):
                    h = hs + i * dilation_h
                    for j in range(wc):
                        w = ws + j * dilation_w
                        v = plane[h, w]
                        if v > best or v != v:  # strictly greater, or NaN (v != v)
                            best = v
                            best_index = h * W + w
                y[p, oh, ow] = best
                indices[p, oh, ow] = best_index


@njit(cache=True, nogil=True)
def _max_pool_backward_planes(gy, indices, gx, p0, p1):
    OH, OW = gy.shape[1], gy.shape[2]
    HW = gx.shape[1]
    for p in range(p0, p1):
        gx[p, :] = 0  # zeroed here, by the thread that owns the plane (first touch)
        for oh in range(OH):
            for ow in range(OW):
                k = indices[p, oh, ow]
                if k >= 0 and k < HW:
                    gx[p, k] += gy[p, oh, ow]


@njit(cache=True, nogil=True)
def _avg_pool_planes(x, h_start, h_count, w_start, w_count, divisor, y, p0, p1):
    OH = h_start.shape[0]
    OW = w_start.shape[0]
    for p in range(p0, p1):
        plane = x[p]
        for oh in range(OH):
            hs = h_start[oh]
            he = hs + h_count[oh]
            for ow in range(OW):
                ws = w_start[ow]
                we = ws + w_count[ow]
                total = 0.0  # float64 accumulator
                for h in range(hs, he):
                    for w in range(ws, we):
                        total += plane[h, w]
                y[p, oh, ow] = total / divisor[oh, ow]


@njit(cache=True, nogil=True)
def _avg_pool_backward_planes(gy, h_start, h_count, w_start, w_count, divisor, gx, p0, p1):
    OH, OW = gy.shape[1], gy.shape[2]
    for p in range(p0, p1):
        gx[p, :, :] = 0  # zeroed by the thread that owns the plane (first touch)
        for oh in range(OH):
            hs = h_start[oh]
            he = hs + h_count[oh]
            for ow in range(OW):
                ws = w_start[ow]
                we = ws + w_count[ow]
                g = gy[p, oh, ow] / divisor[oh, ow]
                for h in range(hs, he):
                    for w in range(ws, we):
                        gx[p, h, w] += g


def _window_work(x_planes, h_count, w_count):
    return x_planes.shape[0] * (int(np.sum(h_count)) * int(np.sum(w_count)) + 1)


def _planes(a):
    """(N, C, A, B) -> contiguous (N*C, A, B) view (copy only when not contiguous)."""
    N, C, A, B = a.shape
    return np.ascontiguousarray(a).reshape(N * C, A, B)


def _table(t):
    return np.ascontiguousarray(t, dtype=np.int64)


def max_pool2d_forward(x, h_start, h_count, w_start, w_count, dilation_h=1, dilation_w=1):
    """Fast max pooling over window tables. x (N, C, H, W) float32/float64 ->
    (y (N, C, OH, OW), indices (N, C, OH, OW) int64, flat h*W + w)."""
    N, C = x.shape[:2]
    planes = _planes(x)
    OH, OW = len(h_start), len(w_start)
    y = np.empty((N * C, OH, OW), dtype=x.dtype)
    indices = np.empty((N * C, OH, OW), dtype=np.int64)
    _threads.run_plane_ranges(_max_pool_planes, N * C, _window_work(planes, h_count, w_count), planes, _table(h_start),
                _table(h_count), _table(w_start), _table(w_count), int(dilation_h), int(dilation_w), y, indices)
    return y.reshape(N, C, OH, OW), indices.reshape(N, C, OH, OW)


def max_pool2d_backward(gy, indices, height, width):
    """gx (N, C, height, width): each gy[n,c,oh,ow] added at its max's position."""
    N, C = gy.shape[:2]
    HW = int(height) * int(width)
    gx = np.empty((N * C, HW), dtype=gy.dtype)
    _threads.run_plane_ranges(_max_pool_backward_planes, N * C, gy.size + N * C * HW, _planes(gy), _planes(indices), gx)
    return gx.reshape(N, C, height, width)


def avg_pool2d_forward(x, h_start, h_count, w_start, w_count, divisor):
    """Fast average pooling: y = (window sum) / divisor[oh, ow] (divisor (OH, OW) float64)."""
    N, C = x.shape[:2]
    planes = _planes(x)
    OH, OW = len(h_start), len(w_start)
    y = np.empty((N * C, OH, OW), dtype=x.dtype)
    _threads.run_plane_ranges(_avg_pool_planes, N * C, _window_work(planes, h_count, w_count), planes, _table(h_start),
                _table(h_count), _table(w_start), _table(w_count), np.ascontiguousarray(divisor, dtype=np.float64), y)
    return y.reshape(N, C, OH, OW)


def avg_pool2d_backward(gy, h_start, h_count, w_start, w_count, divisor, height, width):
    """gx: each gy[n,c,oh,ow] / divisor[oh, ow] added over its window."""
    N, C = gy.shape[:2]
    gx = np.empty((N * C, int(height), int(width)), dtype=gy.dtype)
    work = N * C * (int(np.sum(h_count)) * int(np.sum(w_count)) + int(height) * int(width))
    _threads.run_plane_ranges(_avg_pool_backward_planes, N * C, work, _planes(gy), _table(h_start), _table(h_count),
                _table(w_start), _table(w_count), np.ascontiguousarray(divisor, dtype=np.float64), gx)
    return gx.reshape(N, C, height, width)
