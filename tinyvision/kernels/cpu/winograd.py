r"""Winograd minimal filtering for 3x3, stride-1 convolutions (Lavin & Gray 2016, "Fast
Algorithms for Convolutional Neural Networks", https://arxiv.org/abs/1509.09308).

The idea, in one dimension
--------------------------
F(m, 3) computes m outputs of a 3-tap correlation ``y[i] = sum_u g[u] d[i + u]`` from an input
tile of alpha = m + 2 samples. Written as polynomial products evaluated at alpha points and
interpolated back (Toom-Cook), it becomes

    y = A^T [ (G g) * (B^T d) ]              (* : elementwise, alpha products instead of 3m)

For F(2, 3), with the points 0, 1, -1 and infinity::

          [1  0 -1  0]          [ 1    0    0 ]
    B^T = [0  1  1  0]      G = [1/2  1/2  1/2]      A^T = [1  1  1  0]
          [0 -1  1  0]          [1/2 -1/2  1/2]            [0  1 -1 -1]
          [0  1  0 -1]          [ 0    0    1 ]

Check the first output: with U = G g and V = B^T d,
``U0 V0 + U1 V1 + U2 V2 = g0 (d0 - d2) + (g0+g1+g2)/2 (d1+d2) + (g0-g1+g2)/2 (d2-d1)
= g0 d0 + g1 d1 + g2 d2`` — the correlation at i = 0, with 4 multiplications for 2 outputs.

This module uses m = 2 only: larger tiles (F(4, 3): 6 products for 4 outputs) need fewer
multiplications but their matrices (entries up to 8 and 1/24) cost float32 accuracy; see
docs/conv.md for the measurements that ruled F(4x4, 3x3) out.

Two dimensions, many channels
-----------------------------
Nesting the 1-D algorithm in both axes gives F(m x m, 3 x 3) (here F(2x2, 3x3), alpha = 4):
for an alpha x alpha input tile d
of channel c and the 3x3 filter g of (output channel f, input channel c),

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (m x m outputs, alpha^2 products)

The transforms are linear, so the sum over input channels moves inside, before A:

    U[e, f, c] = (G g[f, c] G^T)[e]                   filter transform     (alpha^2, F, C)
    V[e, c, t] = (B^T d[c, t] B)[e]                   input transform      (alpha^2, C, T)
    M[e, f, t] = sum_c U[e, f, c] V[e, c, t]          alpha^2 matrix products (BLAS sgemm)
    y[f, tile t] = A^T M[:, f, t] A                   output transform     (m x m per tile)

with e = (p, q) running over the alpha x alpha transformed positions and t over the tiles
(T = N * ceil(OH/m) * ceil(OW/m)). Tile t's input window starts at row ti*m - PH and column
tj*m - PW; windows overlap by 2 rows/columns. Where the output size is not a multiple of m
the last tiles reach past the image: the input reads as zero there (as in the padding) and
the outputs beyond OH x OW are not written.

Cost: the direct (im2col) product needs 9*C*F multiply-adds per output pixel; the Winograd
products need alpha^2/m^2 * C*F: 4 for F(2x2, 3x3) (2.25x fewer), plus the transforms,
which are O(C + F) per pixel rather than O(C*F).

Accuracy: F(2x2, 3x3)'s float32 error is that of the direct product (its matrices hold only
0, +-1 and 1/2). Measured in float32 against a float64 direct convolution: see docs/conv.md.

Every kernel takes its arrays and the conv's
:class:`~tinyvision.kernels.conv_geometry.ConvGeometry` (only padding and map_size matter here:
the rest is the 3x3, stride-1 case :func:`supported` accepts).

Layout and execution: the work is cut into chunks of whole images (or bands of tile rows of
one image); the threads of the data-parallel scheme (``_threads.py``) take chunks from a
shared queue one at a time, and for each one run the input transform (Numba, serial, releases
the GIL; it reads the chunk from x itself, the padding as zeros), one batched matmul ``U @ V``
(NumPy: alpha^2 sgemm calls, single-threaded BLAS) and the output transform into the chunk's
rows of y. No two threads write the same output. The weight gradient (below) sums per-thread
accumulators at the end; there each thread gets a fixed set of chunks, so the order of the
float additions (and the result, bit for bit) does not depend on thread timing.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from . import _threads

__all__ = ["winograd_conv3x3", "winograd_conv3x3_grad_weight", "filter_transform", "MATRICES", "supported"]

# The transform matrices (B^T, G, A^T) of F(2, 3) as float64 arrays, for reading and for the
# tests (the Numba transforms below spell the same products out).
MATRICES = (
    np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float),  # B^T (4, 4)
    np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], float),    # G   (4, 3)
    np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float),                                # A^T (2, 4)
)


def supported(geometry):
    """Whether this module computes the convolution: 3x3, stride 1, dilation 1, one group."""
    return (tuple(geometry.kernel_size) == (3, 3) and tuple(geometry.stride) == (1, 1)
            and tuple(geometry.dilation) == (1, 1) and geometry.groups == 1)


# From this many (f, c) filter pairs on, the filter transform is split by output channels among
# the threads (it is memory-bound: 9 reads and 16 writes per pair). One thread, float32:
# 128 x 128 filters 0.09 ms (less than handing half to a pool thread saves), 256 x 256 0.41 ms,
# 512 x 512 2.6 ms (a 16 MB U).
_SPLIT_FILTER_PAIRS = 1 << 16


_KRON_G = {}  # dtype -> kron(G, G), made once


def _kron_g(dtype):
    """kron(G, G) in `dtype`, (16, 9): (G g G^T)[p, q] = (kron(G, G) @ g.ravel())[p*4 + q]
    (the weight gradient's last step applies its transpose)."""
    key = np.dtype(dtype).str
    if key not in _KRON_G:
        _, G, _ = MATRICES
        _KRON_G[key] = np.kron(G, G).astype(dtype)
    return _KRON_G[key]


# Filters per block of the filter transform: their 9 taps are first gathered into a (9, block)
# buffer (a few KiB, in L1), so that the arithmetic and the 16 stores run along contiguous rows.
_FILTER_BLOCK = 64


@njit(cache=True, nogil=True)
def _filter_transform_rows(w9, r0, r1, flipped, U):
    """U[e, r, s] = (G g G^T)[e] for rows r in [r0, r1) of U's middle axis, every s.

    w9 (F, C, 9) is w with each 3x3 filter flattened. flipped=False: (r, s) = (f, c) and
    g = w[f, c]; flipped=True: (r, s) = (c, f) and g = w[f, c, ::-1, ::-1] (the kernel of the
    input gradient, see filter_transform). G g G^T is done as two passes of the 1-D transform
    (a, b, c) -> (a, (a + b + c)/2, (a - b + c)/2, c): down the 3 columns of g (t = G g, 4x3),
    then along the 4 rows of t. A flipped filter runs through the very same arithmetic on its
    taps read in reverse order, so its transform is bit for bit that of the flipped copy.
    Per block of filters along s, the taps are gathered into a small (9, block) buffer first:
    then both passes and the 16 stores run along contiguous rows and vectorise (one filter at
    a time with scalar stores ran 5x slower, and as a (16, 9) @ (9, F*C) GEMM 1.4-4.7x slower).
    """
    F, C = w9.shape[0], w9.shape[1]
    S = F if flipped else C
    B = _FILTER_BLOCK
    g = np.empty((9, B), dtype=U.dtype)
    t = np.empty((12, B), dtype=U.dtype)  # t[3p + v] = (G g)[p, v]
    for r in range(r0, r1):
        for s0 in range(0, S, B):
            nb = min(B, S - s0)
            for j in range(nb):
                if flipped:
                    src = w9[s0 + j, r]
                    for k in range(9):
                        g[k, j] = src[8 - k]
                else:
                    src = w9[r, s0 + j]
                    for k in range(9):
                        g[k, j] = src[k]
            for v in range(3):  # down column v: (g[0, v], g[1, v], g[2, v]) -> t[:, v]
                for j in range(nb):
                    a, b, c = g[v, j], g[3 + v, j], g[6 + v, j]
                    t[v, j] = a
                    t[3 + v, j] = (a + c + b) * 0.5
                    t[6 + v, j] = (a + c - b) * 0.5
                    t[9 + v, j] = c
            for p in range(4):  # along row p of t: U[(p, q)] for q = 0..3
                e = 4 * p
                u0, u1 = U[e, r, s0:s0 + nb], U[e + 1, r, s0:s0 + nb]
                u2, u3 = U[e + 2, r, s0:s0 + nb], U[e + 3, r, s0:s0 + nb]
                for j in range(nb):
                    a, b, c = t[3 * p, j], t[3 * p + 1, j], t[3 * p + 2, j]
                    u0[j] = a
                    u1[j] = (a + c + b) * 0.5
                    u2[j] = (a + c - b) * 0.5
                    u3[j] = c


def filter_transform(w, T=1, flipped=False, out=None):
    """U (16, F, C) = G w[f, c] G^T for every (f, c), computed in w's dtype (w contiguous); with
    T > 1 threads each transforming a range of output channels f when there are many filters.

    flipped=True: the transform of the flipped, transposed kernel wt[c, f] = w[f, c, ::-1, ::-1]
    (the input gradient's kernel, see conv.conv2d_grad_input), U (16, C, F), without making wt:
    each filter's taps are read in reverse order (_filter_transform_rows), and each thread
    writes its own range of channels c. out: a C-contiguous array of U's shape and dtype to
    write (the convolution passes a kept workspace: a fresh 16 MB U costs a page fault per
    4 KiB); by default a new array."""
    a = 4
    F, C = w.shape[:2]
    rows_out, cols_out = (C, F) if flipped else (F, C)
    U = np.empty((a * a, rows_out, cols_out), dtype=w.dtype) if out is None else out
    if U.shape != (a * a, rows_out, cols_out) or U.dtype != w.dtype or not U.flags.c_contiguous:
        raise ValueError(f"filter_transform: out must be a C-contiguous {w.dtype} array of shape "
                         f"{(a * a, rows_out, cols_out)}, got {U.dtype} {U.shape}")
    w9 = w.reshape(F, C, 9)

    def transform(rows):
        _filter_transform_rows(w9, rows[0], rows[1], flipped, U)

    _split_by_channels(transform, rows_out, T, F * C)
    return U


def _split_by_channels(fn, rows, T, pairs):
    """fn((r0, r1)) over channel ranges covering [0, rows): one range per thread when there are
    many filter pairs (>= _SPLIT_FILTER_PAIRS) and T > 1, else one call in the caller (with
    BLAS threads as blas_outside_workers allows)."""
    if T > 1 and pairs >= _SPLIT_FILTER_PAIRS:
        _threads.run_parallel(fn, _threads.row_ranges(rows, T))
    else:
        with _threads.blas_outside_workers(T):
            fn((0, rows))


# ---------------------------------------------------------------------------------------
# Input transform V = B^T d B, per (image, channel, tile row): first B^T down the columns of
# the alpha input rows (a vector loop over the row), then B along each tile. The zero padding
# is never materialised: a row above or below the image is a row of zeros, and the columns left
# and right of it stay zero in the row buffer.
# ---------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _row(x, n, c, h, zeros):
    """x[n, c, h], or a row of zeros when h is outside the image (the gy transform's ragged last
    tile row; the input transform copies its rows into a buffer instead, see there)."""
    if 0 <= h < x.shape[2]:
        return x[n, c, h]
    return zeros


@njit(cache=True, nogil=True)
def _input_transform(x, n0, Nc, top, left, TRc, TW, V):
    """V[e, c, (n*TRc + ti)*TW + tj] = (B^T d B)[e] for the 4x4 tile d of the zero-padded image
    n0 + n whose top-left corner is x[n0 + n, c, top + 2ti, left + 2tj] (indices outside x read 0).

    x (N, C, H, W), C-contiguous; V (16, C, Nc*TRc*TW). Per tile row, the alpha input rows are
    copied into a small zero-padded buffer that stays in L1 (a row outside the image is zeros,
    the columns outside it stay zero): no padded copy of the whole chunk is made (that copy, by
    NumPy, cost as much as the transform itself on 64 x 64 maps with 12 channels), and the
    vertical pass reads one array (reading four row arrays straight from x left the compiler
    unable to rule out aliasing with buf, and the loop unvectorised: 1.5-2x slower).
    """
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    m, a = 2, 4  # F(2, 3): tiles of 2 outputs, alpha = 4 inputs
    Wp = TW * m + 2
    rows = np.zeros((a, Wp), dtype=x.dtype)  # columns outside the image stay zero
    buf = np.empty((a, Wp), dtype=x.dtype)
    w_lo = max(0, -left)
    w_hi = max(w_lo, min(Wp, W - left))  # buffer columns [w_lo, w_hi) come from x ...
    width = w_hi - w_lo
    x_lo, x_hi = w_lo + left, w_lo + left + width  # ... columns [x_lo, x_hi) of x
    for n in range(Nc):
        for c in range(C):
            for ti in range(TRc):
                h0 = top + ti * m
                t0 = (n * TRc + ti) * TW
                # The alpha input rows, zero-padded, into `rows` (in L1: the copies are cheap).
                for r in range(a):
                    dst = rows[r, w_lo:w_hi]
                    h = h0 + r
                    if 0 <= h < H:
                        src = x[n0 + n, c, h, x_lo:x_hi]
                        for k in range(width):
                            dst[k] = src[k]
                    else:
                        dst[:] = 0.0
                # Vertical pass: buf[p, :] = sum_r B^T[p, r] rows[r, :]
                for w in range(Wp):
                    d0 = rows[0, w]
                    d1 = rows[1, w]
                    d2 = rows[2, w]
                    d3 = rows[3, w]
                    buf[0, w] = d0 - d2
                    buf[1, w] = d1 + d2
                    buf[2, w] = d2 - d1
                    buf[3, w] = d1 - d3
                # Horizontal pass: V[(p, q)] = sum_s buf[p, 2tj + s] B^T[q, s]
                for p in range(a):
                    e = p * a
                    for tj in range(TW):
                        s = tj * 2
                        d0 = buf[p, s]
                        d1 = buf[p, s + 1]
                        d2 = buf[p, s + 2]
                        d3 = buf[p, s + 3]
                        V[e, c, t0 + tj] = d0 - d2
                        V[e + 1, c, t0 + tj] = d1 + d2
                        V[e + 2, c, t0 + tj] = d2 - d1
                        V[e + 3, c, t0 + tj] = d1 - d3


# ---------------------------------------------------------------------------------------
# Output transform Y = A^T M A, per (image, output channel, tile row): first A along each
# tile (reading M's rows contiguously over tiles), then A^T down the columns of the row.
# ---------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _output_transform(Mt, TRc, TW, n0, Nc, i0, y):
    """y[n0+n, f, i0 + 2ti + i, 2tj + j] = (A^T M[:, f, t] A)[i, j], cropped to y's size.

    Mt (16, F, Nc*TRc*TW) with t = (n*TRc + ti)*TW + tj; i0 is the chunk's first output row.
    """
    F = Mt.shape[1]
    OH, OW = y.shape[2], y.shape[3]
    m, a = 2, 4
    Wt = TW * m
    buf = np.empty((a, Wt), dtype=Mt.dtype)
    for n in range(Nc):
        for f in range(F):
            for ti in range(TRc):
                t0 = (n * TRc + ti) * TW
                # Horizontal pass: buf[p, 2tj + j] = sum_q M[(p, q), f, t] A^T[j, q]
                for p in range(a):
                    e = p * a
                    for tj in range(TW):
                        m0 = Mt[e, f, t0 + tj]
                        m1 = Mt[e + 1, f, t0 + tj]
                        m2 = Mt[e + 2, f, t0 + tj]
                        m3 = Mt[e + 3, f, t0 + tj]
                        buf[p, 2 * tj] = m0 + m1 + m2
                        buf[p, 2 * tj + 1] = m1 - m2 - m3
                # Vertical pass: y[row h0 + i] = sum_p A^T[i, p] buf[p, :], cropped
                h0 = i0 + ti * m
                rows = min(m, OH - h0)
                for w in range(OW):
                    b0 = buf[0, w]
                    b1 = buf[1, w]
                    b2 = buf[2, w]
                    b3 = buf[3, w]
                    y[n0 + n, f, h0, w] = b0 + b1 + b2
                    if rows > 1:
                        y[n0 + n, f, h0 + 1, w] = b1 - b2 - b3


# Chunk size: the transformed input and products of one chunk (V and M) should fit about this
# many bytes (they are written, then read back by the GEMMs, then by the output transform: in a
# core's cache, that traffic stays off main memory), but each GEMM should be at least
# _MIN_TILES wide. Measured on the CI machine: see docs/conv.md.
_CHUNK_BYTES = 2 * 2**20
_MIN_TILES, _MAX_TILES = 64, 1024


def _chunks(N, TH, TW, per_tile_bytes, budget, threads):
    """(n0, Nc, tr0, TRc) chunks of about min(_CHUNK_BYTES, budget) / per_tile_bytes tiles
    (_MIN_TILES to _MAX_TILES; at least one tile row): several whole images, or bands of tile
    rows of one image, so that every one of `threads` threads has work (_threads.row_chunks)."""
    target = min(_MAX_TILES, max(_MIN_TILES, _CHUNK_BYTES // per_tile_bytes))
    target = max(1, min(target, budget // per_tile_bytes))
    return _threads.row_chunks(0, N, TH, target // TW, threads)


def winograd_conv3x3(x, w, geometry, workspace_bytes=None, U=None, flipped=False):
    """y (N, F, OH, OW) = the 3x3, stride-1 correlation of x with w (no bias), by F(2x2, 3x3).

    x (N, C, H, W) and w (F, C, 3, 3) share one dtype (float32 or float64); geometry.padding =
    (PH, PW) is the top/left zero padding; the bottom/right padding is implied by
    geometry.map_size = (OH, OW). ``U``: a precomputed :func:`filter_transform` of w (optional).
    flipped=True: correlate with wt[f, c] = w[c, f, ::-1, ::-1] instead, w (C, F, 3, 3): the
    weight of the conv whose input gradient this is (x its output gradient, y its input's
    gradient), with no copy of wt made. ``U`` is then filter_transform(w, flipped=True).
    """
    x = np.ascontiguousarray(x)
    OH, OW = geometry.map_size
    N, C = x.shape[:2]
    F = w.shape[1] if flipped else w.shape[0]
    TH = -(-OH // 2)
    macs = N * OH * OW * C * F * 9
    T, blas = _threads.threads_for_macs(N * TH, macs)
    with blas:
        return _winograd_conv3x3(x, w, geometry, workspace_bytes, U, T, flipped)


def _winograd_conv3x3(x, w, geometry, workspace_bytes, U, T, flipped=False):
    (PH, PW), (OH, OW) = geometry.padding, geometry.map_size
    N, C, H, W = x.shape
    F = w.shape[1] if flipped else w.shape[0]
    m, a = 2, 4
    TH, TW = -(-OH // m), -(-OW // m)
    if U is None:
        w = np.ascontiguousarray(w)
        shape = (a * a, w.shape[1], w.shape[0]) if flipped else (a * a, w.shape[0], w.shape[1])
        U = filter_transform(w, T, flipped, out=_threads.workspace("wg_U", shape, w.dtype))
    y = np.empty((N, F, OH, OW), dtype=x.dtype)
    budget = (_threads.WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes) // T
    per_tile = (a * a * (C + F) + C * m * m) * x.itemsize
    chunks = _chunks(N, TH, TW, per_tile, budget, T)

    def work(my_chunks):
        for n0, Nc, tr0, TRc in my_chunks:
            # The chunk's input window, zero outside the image.
            Tc = Nc * TRc * TW
            V = _threads.workspace("wg_V", (a * a, C, Tc), x.dtype)
            _input_transform(x, n0, Nc, tr0 * m - PH, -PW, TRc, TW, V)
            Mt = _threads.workspace("wg_M", (a * a, F, Tc), x.dtype)
            np.matmul(U, V, out=Mt)
            _output_transform(Mt, TRc, TW, n0, Nc, tr0 * m, y)

    _threads.run_queue(work, chunks, T)
    return y


# ---------------------------------------------------------------------------------------
# The weight gradient by F(3x3, 2x2)
# ---------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _gy_transform(gy, n0, Nc, top, TRc, TW, Ugy):
    """Ugy[e, f, (n*TRc + ti)*TW + tj] = (A h A^T)[e] for the 2x2 tile h of gy[n0 + n, f] whose
    top-left corner is (top + 2ti, 2tj); gy reads 0 past its last row and column (ragged tiles).

    A = (A^T of F(2, 3))^T: a 2-vector (h0, h1) becomes (h0, h0 + h1, h0 - h1, -h1).
    gy (N, F, OH, OW), C-contiguous; Ugy (16, F, Nc*TRc*TW).
    """
    F, OW = gy.shape[1], gy.shape[3]
    Wp = 2 * TW
    zeros = np.zeros(OW, dtype=gy.dtype)
    buf = np.zeros((4, Wp), dtype=gy.dtype)  # columns past OW stay zero
    for n in range(Nc):
        for f in range(F):
            for ti in range(TRc):
                t0 = (n * TRc + ti) * TW
                # Vertical pass: buf[p, :] = sum_r A[p, r] gy[top + 2ti + r, :]
                g0 = _row(gy, n0 + n, f, top + 2 * ti, zeros)
                g1 = _row(gy, n0 + n, f, top + 2 * ti + 1, zeros)
                for w in range(OW):
                    h0 = g0[w]
                    h1 = g1[w]
                    buf[0, w] = h0
                    buf[1, w] = h0 + h1
                    buf[2, w] = h0 - h1
                    buf[3, w] = -h1
                # Horizontal pass: Ugy[(p, q)] = sum_s buf[p, 2tj + s] A[q, s]
                for p in range(4):
                    e = 4 * p
                    for tj in range(TW):
                        h0 = buf[p, 2 * tj]
                        h1 = buf[p, 2 * tj + 1]
                        Ugy[e, f, t0 + tj] = h0
                        Ugy[e + 1, f, t0 + tj] = h0 + h1
                        Ugy[e + 2, f, t0 + tj] = h0 - h1
                        Ugy[e + 3, f, t0 + tj] = -h1


def winograd_conv3x3_grad_weight(x, gy, geometry, workspace_bytes=None):
    r"""gw (F, C, 3, 3) of the 3x3, stride-1 convolution, by F(3x3, 2x2).

    gw[f,c,u,v] = sum_{n,i,j} gy[n,f,i,j] x[n,c,i+u-PH,j+v-PW] is, per 2x2 tile of gy
    (i = 2ti + a, j = 2tj + b), a 3-output, 2-tap correlation of the 4x4 input tile d that
    starts at (2ti - PH, 2tj - PW) with the gy tile h. The F(2, 3) identity is the trilinear form
    sum_{i<2, u<3} h[i] g[u] d[i+u] = sum_e (A h)[e] (G g)[e] (B^T d)[e], symmetric in the roles
    of h and g, so reading it for the 3 outputs u gives F(3, 2) with the same matrices:

        corr[u] = sum_e G[e, u] (A h)[e] (B^T d)[e]          (A = (A^T)^T, 4 x 2)

    In 2-D, with the sum over tiles (and images) moved inside before the output transform:

        Mw[e, f, c] = sum_t (A h[n,f,t] A^T)[e] (B^T d[n,c,t] B)[e]     16 matrix products (F,T) @ (T,C)
        gw[f, c]    = G^T Mw[:, f, c] G                                   3x3 from 4x4

    16 products per tile instead of 36 (2.25x fewer multiply-adds). gy reads as 0 past its
    last row/column (ragged tiles), x as 0 outside the image. geometry.padding = (PH, PW);
    gy's shape gives (OH, OW).
    """
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy)
    N, C = x.shape[:2]
    _, F, OH, OW = gy.shape
    TH = -(-OH // 2)
    macs = N * OH * OW * C * F * 9
    T, blas = _threads.threads_for_macs(N * TH, macs)
    with blas:
        return _winograd_grad_weight(x, gy, geometry, workspace_bytes, T)


def _winograd_grad_weight(x, gy, geometry, workspace_bytes, T):
    PH, PW = geometry.padding
    N, C = x.shape[:2]
    _, F, OH, OW = gy.shape
    TH, TW = -(-OH // 2), -(-OW // 2)
    budget = (_threads.WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes) // T
    per_tile = (16 * (C + F) + 4 * (C + F)) * x.itemsize
    chunks = _chunks(N, TH, TW, per_tile, budget, T)

    def work(my_chunks):
        MwT = np.zeros((16, C, F), dtype=x.dtype)
        for n0, Nc, tr0, TRc in my_chunks:
            Tc = Nc * TRc * TW
            V = _threads.workspace("wg_V", (16, C, Tc), x.dtype)
            _input_transform(x, n0, Nc, tr0 * 2 - PH, -PW, TRc, TW, V)
            Ugy = _threads.workspace("wg_M", (16, F, Tc), x.dtype)
            _gy_transform(gy, n0, Nc, tr0 * 2, TRc, TW, Ugy)
            # Mw^T[e] += V[e] @ Ugy[e]^T: (C, Tc) @ (Tc, F), the tile sum as the inner dimension of
            # two row-major operands (OpenBLAS's fastest orientation here, as in conv.py's gw).
            MwT += np.matmul(V, Ugy.transpose(0, 2, 1))
        return MwT

    shares = _threads.run_queue(work, chunks, T, static=True)  # a fixed sum order: bitwise repeatable
    gw = np.empty((F, C, 3, 3), dtype=x.dtype)
    KGT = _kron_g(x.dtype).T  # (9, 16)

    def output_transform(rows):
        # For input channels [c0, c1): the threads' shares summed (in shares[0], in order), then
        # gw[f, c, u, v] = sum_{p,q} G[p, u] G[q, v] Mw[(p, q), f, c] = (kron(G, G)^T @ Mw^T)[(u, v), c, f].
        c0, c1 = rows
        MwT = shares[0][:, c0:c1]  # (16, c1 - c0, F): a view; this thread's channels only
        for sh in shares[1:]:
            MwT += sh[:, c0:c1]
        R = KGT @ MwT.reshape(16, -1)  # (9, (c1 - c0) * F)
        gw[:, c0:c1] = R.reshape(3, 3, c1 - c0, F).transpose(3, 2, 0, 1)

    _split_by_channels(output_transform, C, T, F * C)
    return gw
