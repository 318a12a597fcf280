r"""Batch-normalisation kernels on the CPU: a plain-loop reference and a fast parallel version.

Notation: x viewed as (N, C, L) (L = H*W, or 1 for (N, C) input); per channel c the set S of
its M = N*L values. The formulas (derived in :mod:`tinyvision.functional.normalization`)::

    mu = (1/M) sum_S x,   var = (1/M) sum_S (x - mu)^2,   r = 1 / sqrt(var + eps)
    xhat = (x - mu) r,    y = w xhat + b
    gb = sum_S gy,  gw = sum_S gy xhat
    gx = w r (gy - gb/M - xhat gw/M)          (training: mu and var depend on x)
    gx = w r gy                               (evaluation: mu, r are constants)

Rounding follows the NumPy path of the functional op: sums accumulated in float64, mu and r
rounded once to x's dtype, xhat and y computed in x's dtype. The backward kernels recompute
xhat from x, mu and r instead of reading a saved xhat (one array fewer to keep and to read).

Kernels (same signatures for the reference and the fast one; arrays of one float dtype,
C-contiguous, shapes checked by the caller)::

    batch_norm_train_forward(x, w, b, eps)           -> y, mean (C,) f64, var_sum (C,) f64, mu (C,), r (C,)
    batch_norm_eval_forward(x, w, b, mu, r)          -> y
    batch_norm_backward(gy, x, w, mu, r, training)   -> gx, gw (C,), gb (C,)
    channel_sum(x)                                   -> (C,) f64: sum_S x (a conv's bias gradient)

The fast kernels cut the channels into chunks that the threads share (see _run: each chunk
writes only its own channels of y / gx and its own entries of the (C,) outputs, so nothing
races). Within a channel the first pass (statistics, or the two gradient sums) leaves the
channel's values in cache for the second (normalise, or gx): two passes over memory in
place of the NumPy path's five to eight.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from . import _threads

__all__ = [
    "batch_norm_train_forward",
    "batch_norm_eval_forward",
    "batch_norm_backward",
    "batch_norm_train_forward_reference",
    "batch_norm_eval_forward_reference",
    "batch_norm_backward_reference",
    "channel_sum",
    "channel_sum_reference",
]


# ======================================================================================
# Reference kernels: the formulas above, one loop nest per quantity. Read these first.
# ======================================================================================
@njit(cache=True)
def _train_forward_reference(x, w, b, eps, y, mean, var_sum, mu, r):
    N, C, L = x.shape
    M = N * L
    for c in range(C):
        s = 0.0
        for n in range(N):
            for k in range(L):
                s += x[n, c, k]
        mean[c] = s / M                 # float64
        mu[c] = mean[c]                 # rounded to x's dtype
        q = 0.0
        for n in range(N):
            for k in range(L):
                d = x[n, c, k] - mu[c]
                q += d * d
        var_sum[c] = q
        r[c] = 1.0 / np.sqrt(q / M + eps)
        for n in range(N):
            for k in range(L):
                xhat = (x[n, c, k] - mu[c]) * r[c]
                y[n, c, k] = xhat * w[c] + b[c]


@njit(cache=True)
def _eval_forward_reference(x, w, b, mu, r, y):
    N, C, L = x.shape
    for c in range(C):
        for n in range(N):
            for k in range(L):
                xhat = (x[n, c, k] - mu[c]) * r[c]
                y[n, c, k] = xhat * w[c] + b[c]


@njit(cache=True)
def _backward_reference(gy, x, w, mu, r, training, gx, gw, gb):
    N, C, L = x.shape
    M = N * L
    for c in range(C):
        sg = 0.0
        sgx = 0.0
        for n in range(N):
            for k in range(L):
                xhat = (x[n, c, k] - mu[c]) * r[c]
                sg += gy[n, c, k]
                sgx += gy[n, c, k] * xhat
        gb[c] = sg
        gw[c] = sgx
        for n in range(N):
            for k in range(L):
                xhat = (x[n, c, k] - mu[c]) * r[c]
                if training:
                    gx[n, c, k] = w[c] * r[c] * (gy[n, c, k] - sg / M - xhat * (sgx / M))
                else:
                    gx[n, c, k] = w[c] * r[c] * gy[n, c, k]


@njit(cache=True)
def _channel_sum_reference(x, out):
    N, C, L = x.shape
    for c in range(C):
        s = 0.0
        for n in range(N):
            for k in range(L):
                s += x[n, c, k]
        out[c] = s


def _outputs_like(x):
    C = x.shape[1]
    return np.empty_like(x), np.empty(C, np.float64), np.empty(C, np.float64), np.empty(C, x.dtype), np.empty(C, x.dtype)


def batch_norm_train_forward_reference(x, w, b, eps):
    """y, mean, var_sum, mu, r by the formulas, one loop nest each (serial)."""
    y, mean, var_sum, mu, r = _outputs_like(x)
    _train_forward_reference(x, w, b, float(eps), y, mean, var_sum, mu, r)
    return y, mean, var_sum, mu, r


def batch_norm_eval_forward_reference(x, w, b, mu, r):
    """y = w (x - mu) r + b with given (C,) mu and r (serial loops)."""
    y = np.empty_like(x)
    _eval_forward_reference(x, w, b, mu, r, y)
    return y


def batch_norm_backward_reference(gy, x, w, mu, r, training):
    """gx, gw, gb by the formulas (serial loops)."""
    C = x.shape[1]
    gx, gw, gb = np.empty_like(x), np.empty(C, x.dtype), np.empty(C, x.dtype)
    _backward_reference(gy, x, w, mu, r, bool(training), gx, gw, gb)
    return gx, gw, gb


def channel_sum_reference(x):
    """sum_S x per channel, accumulated in float64 (serial loops): the gb of the formulas above,
    and a convolution's bias gradient (summed over the batch and the pixels)."""
    out = np.empty(x.shape[1], np.float64)
    _channel_sum_reference(x, out)
    return out


# ======================================================================================
# Fast kernels: one channel per parallel iteration, two passes over the channel's values.
# ======================================================================================
# The sums over a row of L values: float64 accumulators, vectorised ("reassoc" lets LLVM split
# each sum into several partial sums: 4x faster than one serial chain of adds; the result
# differs from the reference's order of additions by float64 round-off only).
@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _row_sum(row):
    s = 0.0
    for k in range(row.shape[0]):
        s += row[k]
    return s


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _row_sum_sq_dev(row, m):
    q = 0.0
    for k in range(row.shape[0]):
        d = row[k] - m
        q += d * d
    return q


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _row_grad_sums(g, row, m, rc):
    """(sum g, sum g * xhat) over a row, xhat = (row - m) rc."""
    sg = 0.0
    sgx = 0.0
    for k in range(row.shape[0]):
        sg += g[k]
        sgx += g[k] * ((row[k] - m) * rc)
    return sg, sgx


@njit(cache=True, nogil=True)
def _normalise_row(row, m, rc, wc, bc, out):
    for k in range(row.shape[0]):
        out[k] = ((row[k] - m) * rc) * wc + bc


@njit(cache=True, nogil=True)
def _train_forward_channel(x, w, b, eps, y, mean, var_sum, mu, r, c):
    N, _, L = x.shape
    M = N * L
    s = 0.0
    for n in range(N):
        s += _row_sum(x[n, c])
    mean[c] = s / M
    mu[c] = mean[c]  # rounded to x's dtype
    m = mu[c]
    q = 0.0
    for n in range(N):
        q += _row_sum_sq_dev(x[n, c], m)
    var_sum[c] = q
    r[c] = 1.0 / np.sqrt(q / M + eps)
    for n in range(N):
        _normalise_row(x[n, c], m, r[c], w[c], b[c], y[n, c])


@njit(cache=True, nogil=True)
def _eval_forward_channel(x, w, b, mu, r, y, c):
    for n in range(x.shape[0]):
        _normalise_row(x[n, c], mu[c], r[c], w[c], b[c], y[n, c])


@njit(cache=True, nogil=True)
def _backward_channel(gy, x, w, mu, r, training, gx, gw, gb, coef, c):
    N, _, L = x.shape
    M = N * L
    m, rc = mu[c], r[c]
    sg = 0.0
    sgx = 0.0
    for n in range(N):
        a, q = _row_grad_sums(gy[n, c], x[n, c], m, rc)
        sg += a
        sgx += q
    gb[c] = sg
    gw[c] = sgx
    # gx = k (gy - a - xhat * q) with k = w r, a = sum gy / M, q = sum gy xhat / M, each
    # rounded to x's dtype (through coef, (C, 3) of that dtype) so the loop runs in that dtype.
    coef[c, 0] = w[c] * rc
    coef[c, 1] = sg / M if training else 0.0
    coef[c, 2] = sgx / M if training else 0.0
    kc, a, q = coef[c, 0], coef[c, 1], coef[c, 2]
    for n in range(N):
        row = x[n, c]
        g = gy[n, c]
        out = gx[n, c]
        for k in range(L):
            out[k] = kc * (g[k] - a - ((row[k] - m) * rc) * q)


@njit(cache=True, nogil=True)
def _channel_sum_range(x, out, c0, c1):
    for c in range(c0, c1):
        s = 0.0
        for n in range(x.shape[0]):
            s += _row_sum(x[n, c])
        out[c] = s


@njit(cache=True, nogil=True)
def _train_forward_range(x, w, b, eps, y, mean, var_sum, mu, r, c0, c1):
    for c in range(c0, c1):
        _train_forward_channel(x, w, b, eps, y, mean, var_sum, mu, r, c)


@njit(cache=True, nogil=True)
def _eval_forward_range(x, w, b, mu, r, y, c0, c1):
    for c in range(c0, c1):
        _eval_forward_channel(x, w, b, mu, r, y, c)


@njit(cache=True, nogil=True)
def _backward_range(gy, x, w, mu, r, training, gx, gw, gb, coef, c0, c1):
    for c in range(c0, c1):
        _backward_channel(gy, x, w, mu, r, training, gx, gw, gb, coef, c)


# Work sharing. The kernels are memory-bound: one thread does the 2M values of a ResNet stem's
# output in 1-4 ms. A fixed split over two threads (a prange loop) waits for its slower half,
# and on a busy machine a thread can wait a whole time slice for a core: measured on the shared
# 2-core CI machine, a prange version's median was 5-25 ms where one thread took 1-4 ms. Above
# PARALLEL_MIN_SIZE values the channels are cut into chunks that the calling thread and the
# pool threads claim in turn (_threads.run_chunks), so the work goes to whichever threads are
# running. With the pool's threads sleeping between calls that measured slower than one thread
# under load (waking a helper cost more than it saved); with them polling for work (_threads._Pool)
# the split pays from about a million values: train forward + backward with ReLU, 2 threads vs 1,
# 8x64x64x64 3.1 vs 3.6 ms, 8x256x32x32 3.2 vs 4.1, 8x512x16x16 1.6 vs 1.7, but 8x64x32x32
# (half a million) 0.63 vs 0.48.
PARALLEL_MIN_SIZE = 1 << 20
_CHUNK_SIZE = 1 << 18  # about this many values per chunk (whole channels, at least one)


def _run(range_kernel, x, *args):
    """range_kernel(*args, c0, c1) over all channels: one call, or chunks shared by the threads."""
    N, C, L = x.shape
    per_chunk = max(1, min(C, _CHUNK_SIZE // max(1, N * L)))
    chunks = -(-C // per_chunk)
    if x.size < PARALLEL_MIN_SIZE or chunks < 2:
        range_kernel(*args, 0, C)
        return
    _threads.run_chunks(lambda k: range_kernel(*args, k * per_chunk, min(C, (k + 1) * per_chunk)), chunks)


def batch_norm_train_forward(x, w, b, eps):
    """Training forward: y (N, C, L) and the statistics (mean and var_sum in float64; mu, r in x's dtype)."""
    y, mean, var_sum, mu, r = _outputs_like(x)
    _run(_train_forward_range, x, x, w, b, float(eps), y, mean, var_sum, mu, r)
    return y, mean, var_sum, mu, r


def batch_norm_eval_forward(x, w, b, mu, r):
    """Evaluation forward: y = w (x - mu) r + b with fixed (C,) mu and r in x's dtype."""
    y = np.empty_like(x)
    _run(_eval_forward_range, x, x, w, b, mu, r, y)
    return y


def batch_norm_backward(gy, x, w, mu, r, training):
    """gx (N, C, L), gw (C,), gb (C,); training=True includes the statistics' dependence on x."""
    C = x.shape[1]
    gx, gw, gb = np.empty_like(x), np.empty(C, x.dtype), np.empty(C, x.dtype)
    coef = np.empty((C, 3), x.dtype)
    _run(_backward_range, x, gy, x, w, mu, r, bool(training), gx, gw, gb, coef)
    return gx, gw, gb


def channel_sum(x):
    """sum_S x per channel, (C,) float64: one vectorised pass, the channels shared by the threads
    from PARALLEL_MIN_SIZE values. (NumPy's x.sum(axis=(0, 2), dtype=float64) took 1.05 ms on an
    8 x 64 x 64 x 64 float32 gradient here, 2 threads, this kernel 0.22: NumPy converts and
    reduces along strided axes.)"""
    out = np.empty(x.shape[1], np.float64)
    _run(_channel_sum_range, x, x, out)
    return out
