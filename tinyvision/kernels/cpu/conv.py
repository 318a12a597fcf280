r"""Convolution kernels on the CPU: a plain-loop reference and a fast im2col + GEMM version.

Notation (the whole project's letters)::

    x  (N, C, H, W)          input             w  (F, C/G, KH, KW)   weight, G = groups
    y  (N, F, OH, OW)        output            SH SW / PH PW / DH DW  stride / padding / dilation

    y[n,f,i,j] = sum_{c,u,v} w[f,c,u,v] * x[n, g*Cg + c, i*SH + u*DH - PH, j*SW + v*DW - PW]

where g = f // (F/G) is the group of output channel f, Cg = C/G, and x reads as 0 outside the
image (zero padding). Every kernel takes its arrays and one
:class:`~tinyvision.kernels.conv_geometry.ConvGeometry` ``geometry`` — stride (SH, SW), padding
(PH, PW), dilation (DH, DW), groups G, kernel_size (KH, KW), image_size (H, W) and map_size
(OH, OW) — and unpacks it into those letters. ``PH``/``PW`` are the padding on the *top/left*;
the bottom/right padding is implicit in ``OH``/``OW`` (so ``padding='same'`` with an even
kernel, whose padding is asymmetric, needs nothing special here).

Three kernels, each the same sum read a different way:

* ``conv2d_forward``      y  from x, w
* ``conv2d_grad_input``   gx[n,c,h,w']  = sum over (f,i,j,u,v) with h = i*SH+u*DH-PH, w' = j*SW+v*DW-PW
                          of w[f,c,u,v] * gy[n,f,i,j]     (also conv_transpose2d's forward)
* ``conv2d_grad_weight``  gw[f,c,u,v]   = sum_{n,i,j} gy[n,f,i,j] * x[n, g*Cg+c, i*SH+u*DH-PH, j*SW+v*DW-PW]

The reference kernels (``*_reference``) are those sums as loops. The fast kernels unfold the
input into columns (im2col)::

    cols[(c*KH + u)*KW + v, (n*OH + i)*OW + j] = x[n, c, i*SH+u*DH-PH, j*SW+v*DW-PW]   (0 outside)

so that the sum over (c, u, v) is one matrix product per group, done by BLAS sgemm/dgemm::

    y   = w2 @ cols             w2 = w.reshape(F, C*KH*KW)      (F, N*OH*OW)
    gw  = gy2 @ cols.T          gy2 = gy as (F, N*OH*OW)
    gx  = col2im(w2.T @ gy2)    col2im adds every column entry back to the pixel it came from

How the fast path is organised (each choice measured on the 2-core CI machine, see docs/conv.md):

* **Small convolutions run serially** (fewer than ``_threads.SERIAL_MAX_MACS`` multiply-adds): in the
  calling thread with single-threaded BLAS, since waking a pool thread costs more than the
  second core saves there (see ``_threads.serial``).
* **Data-parallel over images.** With T threads and at least T images, each thread takes a
  contiguous share of the batch and runs its own (im2col, GEMM) steps with single-threaded
  BLAS (``_threads.py``): no barrier between steps, each thread's columns stay in its cache.
  With fewer images than threads, one thread runs the steps with the parallel col2im and
  multi-threaded BLAS.
* **Small maps: one GEMM for the whole batch** (two or more images, one group, the whole
  batch's columns at most ``_BATCHED_MAX_COLUMNS`` wide: the 8x8 and 4x4 maps of a ResNet's
  last stages). The batch is unfolded once and each GEMM spans it; the threads split the
  GEMM's rows instead of the images (output channels for y and gw, input channels for gx), so
  each streams only its share of the (large) weights and no per-thread gw needs adding up.
* **Bounded workspace.** Each thread's share is cut into chunks (a few small images, one big
  one, or bands of output rows of an image too big on its own) so that all threads' columns
  together stay within ``_threads.WORKSPACE_BYTES``; the buffers are reused between calls.
* **im2col is a NumPy strided copy** (pad the chunk once, copy from a window view): 2-4x faster
  than an explicit Numba loop nest here. **col2im** is a Numba kernel, parallel over (n, c)
  planes of gx — each plane is written by exactly one iteration, so its scatter-add never
  races — or, for narrow rows and non-overlapping tilings, a NumPy scatter per kernel tap.
* **Stride 1: gx is a convolution** of gy with the spatially flipped, channel-swapped kernel
  (im2col + GEMM instead of GEMM + col2im, 10-15% faster).
* **1x1, stride 1, unpadded** skips im2col: x itself is ``cols``.
* **3x3, stride 1** (dilation 1, one group, >= 4 input channels, output >= 12x12): Winograd
  F(2x2, 3x3) for the forward pass and gx, F(3x3, 2x2) for gw (``winograd.py``; 2.25x fewer
  multiply-adds, the same float32 accuracy; see :func:`_use_winograd`). On 4x4 to 11x11
  outputs the forward pass and gx only, when the batch has enough output tiles for the
  filter transform to pay (:func:`_use_winograd_forward`). A Winograd result
  that is not all finite (an inf in the input) is recomputed by im2col (see :func:`_finite`).

All kernels take and return raw NumPy arrays, float32 or float64 (x and w of one dtype); the
caller (:mod:`tinyvision.kernels.conv_dispatch`) has checked that the arrays' shapes are the
ones the geometry describes, so no index here can leave its array.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.lib.stride_tricks import as_strided

from . import _threads, winograd

__all__ = [
    "conv2d_forward",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv2d_forward_reference",
    "conv2d_grad_input_reference",
    "conv2d_grad_weight_reference",
    "im2col",
    "col2im",
]

# ======================================================================================
# Reference kernels: the defining sums, as loops. Read these first.
# ======================================================================================
@njit(cache=True)
def _conv2d_forward_reference(x, w, SH, SW, PH, PW, DH, DW, G, OH, OW, y):
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    Fg = F // G
    for n in range(N):
        for f in range(F):
            g = f // Fg
            for i in range(OH):
                for j in range(OW):
                    acc = 0.0
                    for c in range(Cg):
                        for u in range(KH):
                            h = i * SH + u * DH - PH
                            if h < 0 or h >= H:
                                continue  # zero padding
                            for v in range(KW):
                                ww = j * SW + v * DW - PW
                                if ww < 0 or ww >= W:
                                    continue
                                acc += w[f, c, u, v] * x[n, g * Cg + c, h, ww]
                    y[n, f, i, j] = acc


@njit(cache=True)
def _conv2d_grad_input_reference(gy, w, SH, SW, PH, PW, DH, DW, G, gx):
    N, F, OH, OW = gy.shape
    _, Cg, KH, KW = w.shape
    H, W = gx.shape[2], gx.shape[3]
    Fg = F // G
    for n in range(N):
        for f in range(F):
            g = f // Fg
            for i in range(OH):
                for j in range(OW):
                    for c in range(Cg):
                        for u in range(KH):
                            h = i * SH + u * DH - PH
                            if h < 0 or h >= H:
                                continue
                            for v in range(KW):
                                ww = j * SW + v * DW - PW
                                if ww < 0 or ww >= W:
                                    continue
                                # y[n,f,i,j] used x[n,gCg+c,h,ww] with weight w[f,c,u,v]
                                gx[n, g * Cg + c, h, ww] += w[f, c, u, v] * gy[n, f, i, j]


@njit(cache=True)
def _conv2d_grad_weight_reference(x, gy, SH, SW, PH, PW, DH, DW, G, gw):
    N, C, H, W = x.shape
    _, F, OH, OW = gy.shape
    _, Cg, KH, KW = gw.shape
    Fg = F // G
    for f in range(F):
        g = f // Fg
        for c in range(Cg):
            for u in range(KH):
                for v in range(KW):
                    acc = 0.0
                    for n in range(N):
                        for i in range(OH):
                            h = i * SH + u * DH - PH
                            if h < 0 or h >= H:
                                continue
                            for j in range(OW):
                                ww = j * SW + v * DW - PW
                                if ww < 0 or ww >= W:
                                    continue
                                acc += gy[n, f, i, j] * x[n, g * Cg + c, h, ww]
                    gw[f, c, u, v] = acc


def conv2d_forward_reference(x, w, geometry):
    """y (N, F, OH, OW) by the defining sum, one loop per index. Slow; for tests and reading."""
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    y = np.empty((x.shape[0], w.shape[0], OH, OW), dtype=x.dtype)
    _conv2d_forward_reference(np.ascontiguousarray(x), np.ascontiguousarray(w), SH, SW, PH, PW, DH, DW, G, OH, OW, y)
    return y


def conv2d_grad_input_reference(gy, w, geometry):
    """gx (N, C, H, W): every gy[n,f,i,j] * w[f,c,u,v] added back to the pixel it came from."""
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    gx = np.zeros((gy.shape[0], w.shape[1] * G, H, W), dtype=gy.dtype)
    _conv2d_grad_input_reference(np.ascontiguousarray(gy), np.ascontiguousarray(w), SH, SW, PH, PW, DH, DW, G, gx)
    return gx


def conv2d_grad_weight_reference(x, gy, geometry):
    """gw (F, C/G, KH, KW): each weight's gradient is the sum of gy times the pixel it multiplied."""
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    gw = np.empty((gy.shape[1], x.shape[1] // G, KH, KW), dtype=x.dtype)
    _conv2d_grad_weight_reference(np.ascontiguousarray(x), np.ascontiguousarray(gy), SH, SW, PH, PW, DH, DW, G, gw)
    return gw


# ======================================================================================
# im2col (NumPy strided copy) / col2im (Numba, parallel over (n, c) planes)
# ======================================================================================
@njit(cache=True, inline="always")
def _valid_cols(off, S, W, OW):
    """The range [j0, j1) of output columns j with 0 <= j*S + off < W (off = v*DW - PW)."""
    j0 = 0
    if off < 0:
        j0 = (-off + S - 1) // S
    j1 = (W - off + S - 1) // S  # first j with j*S + off >= W
    if j1 > OW:
        j1 = OW
    if j1 < j0:
        j1 = j0
    return j0, j1


def _im2col(x, c0, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, cols):
    """cols[(c*KH+u)*KW+v, (n*OHc + i)*OW + j] = x[n0+n, c0+c, (i0+i)*SH+u*DH-PH, j*SW+v*DW-PW] (0 outside).

    cols is (Cg*KH*KW, Nc*OHc*OW), C-contiguous. Done with NumPy, not Numba: copy the chunk's
    part of x into a zero-padded block once, then one strided copy from a window view of
    that block — NumPy's copy loops run 2-4x faster here than an explicit Numba loop nest
    (measured on 3x3 convs at 16-64 px; they are memory-bound and the Numba loop pays per-row
    overhead on narrow images). Releases the GIL, so the data-parallel workers overlap.
    """
    H, W = x.shape[2], x.shape[3]
    ext_h, ext_w = (KH - 1) * DH + 1, (KW - 1) * DW + 1
    need_h, need_w = (OHc - 1) * SH + ext_h, (OW - 1) * SW + ext_w  # padded rows/cols read
    top = i0 * SH - PH  # input row of the block's first row (negative: inside the top padding)
    h_lo, h_hi = max(0, top), min(H, top + need_h)
    w_lo, w_hi = max(0, -PW), min(W, need_w - PW)
    if h_lo == top and h_hi == top + need_h and w_lo == -PW and w_hi == need_w - PW:
        block = x[n0:n0 + Nc, c0:c0 + Cg, h_lo:h_hi, w_lo:w_hi]  # no padding reached: read x itself
    else:
        block = _threads.workspace("block", (Nc, Cg, need_h, need_w), x.dtype)
        block.fill(0.0)  # some of the block is padding
        if h_hi > h_lo and w_hi > w_lo:
            block[:, :, h_lo - top:h_hi - top, w_lo + PW:w_hi + PW] = x[n0:n0 + Nc, c0:c0 + Cg, h_lo:h_hi, w_lo:w_hi]
    # win[c, u, v, n, i, j] = block[n, c, i*SH + u*DH, j*SW + v*DW]: the window view, already in
    # cols' row/column order (made by strides directly: sliding_window_view's checks cost 15 us
    # a call, held under the GIL while the other worker waits for it).
    s0, s1, s2, s3 = block.strides
    win = as_strided(block, (Cg, KH, KW, Nc, OHc, OW), (s1, DH * s2, DW * s3, s0, SH * s2, SW * s3), writeable=False)
    np.copyto(cols.reshape(Cg, KH, KW, Nc, OHc, OW), win)


@njit(cache=True, nogil=True)
def _col2im_plane(cols, n, c, c0, n0, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx):
    """Add channel c of image n's columns back into the plane gx[n0+n, c0+c] (see _col2im)."""
    H = gx.shape[2]
    W = gx.shape[3]
    L = OHc * OW
    for u in range(KH):
        for v in range(KW):
            row = (c * KH + u) * KW + v
            off = v * DW - PW
            j0, j1 = _valid_cols(off, SW, W, OW)
            for i in range(OHc):
                h = (i0 + i) * SH + u * DH - PH
                if h < 0 or h >= H:
                    continue
                base = n * L + i * OW
                if SW == 1:
                    gx[n0 + n, c0 + c, h, j0 + off:j1 + off] += cols[row, base + j0:base + j1]
                else:
                    for j in range(j0, j1):
                        gx[n0 + n, c0 + c, h, j * SW + off] += cols[row, base + j]


@njit(cache=True, parallel=True)
def _col2im(cols, c0, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx):
    """The adjoint of _im2col: gx[n0+n, c0+c, h, w] += cols[...] for every entry that came from (h, w).

    Parallel over (n, c) planes of gx: each plane is written by exactly one iteration
    (the scatter-add overlaps only within that plane), so no two threads collide.
    """
    for t in prange(Nc * Cg):
        n = t // Cg
        _col2im_plane(cols, n, t - n * Cg, c0, n0, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx)


@njit(cache=True, nogil=True)
def _col2im_serial(cols, c0, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx):
    """_col2im in the calling thread (for the data-parallel workers; releases the GIL)."""
    for t in range(Nc * Cg):
        n = t // Cg
        _col2im_plane(cols, n, t - n * Cg, c0, n0, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx)


def _col2im_numpy(cols, c0, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx):
    """_col2im with NumPy: add each tap's block into a zero-padded scratch, then the scratch into gx.

    Within one tap (u, v) the strided positions are distinct, so ``+=`` on the view loses
    nothing. When the kernel tiles the image without overlap (KH = SH, KW = SW, no dilation, no
    padding: the 2x2 stride-2 transposed conv of a UNet) each tap is copied straight into gx. Faster
    than the Numba loop nest on narrow images (OW <= 32) and for those tilings; the caller
    picks (see _pick_col2im). Writes only gx[n0:n0+Nc, c0:c0+Cg].
    """
    H, W = gx.shape[2], gx.shape[3]
    need_h, need_w = (OHc - 1) * SH + (KH - 1) * DH + 1, (OW - 1) * SW + (KW - 1) * DW + 1
    c6 = cols.reshape(Cg, KH, KW, Nc, OHc, OW)
    tiling = KH == SH and KW == SW and DH == 1 and DW == 1
    if tiling and PH == 0 and PW == 0 and i0 * SH + need_h <= H and need_w <= W:
        # Unpadded tiling: every tap lands on its own pixels of gx, which nothing else writes
        # (gx starts at zero), so the taps are copied straight into gx.
        # One strided copy per tap (runs of OW along a row, not runs of KW: much faster).
        for u in range(KH):
            for v in range(KW):
                gx[n0:n0 + Nc, c0:c0 + Cg, i0 * SH + u:i0 * SH + need_h:SH, v:need_w:SW] = (
                    c6[:, u, v].transpose(1, 0, 2, 3))  # (Cg, Nc, OHc, OW) -> (Nc, Cg, OHc, OW)
        return
    gpad = _threads.workspace("gpad", (Cg, Nc, need_h, need_w), cols.dtype)
    gpad.fill(0.0)
    for u in range(KH):
        for v in range(KW):
            gpad[:, :, u * DH:u * DH + (OHc - 1) * SH + 1:SH, v * DW:v * DW + (OW - 1) * SW + 1:SW] += c6[:, u, v]
    top = i0 * SH - PH
    h_lo, h_hi = max(0, top), min(H, top + need_h)
    w_lo, w_hi = max(0, -PW), min(W, need_w - PW)
    if h_hi > h_lo and w_hi > w_lo:
        # (Cg, Nc, rows, cols) -> (Nc, Cg, rows, cols)
        gx[n0:n0 + Nc, c0:c0 + Cg, h_lo:h_hi, w_lo:w_hi] += (
            gpad[:, :, h_lo - top:h_hi - top, w_lo + PW:w_hi + PW].transpose(1, 0, 2, 3))


def _pick_col2im(parallel, KH, KW, SH, SW, DH, DW, OW):
    """The col2im to use: NumPy for narrow rows or non-overlapping tilings, else Numba."""
    if (KH == SH and KW == SW and DH == 1 and DW == 1) or (SW == 1 and OW <= 32):
        return _col2im_numpy
    return _col2im_parallel if parallel else _col2im_serial


def _col2im_parallel(*args):
    """_col2im (prange) behind a lock: one parallel-kernel launch at a time (see _threads.py).

    In a forked child the serial twin runs instead: Numba's OpenMP layer would kill the process.
    """
    if _threads.in_forked_child:
        _col2im_serial(*args)
        return
    with _threads.parallel_kernel_lock:
        _col2im(*args)


def im2col(x, geometry):
    """The whole unfolded input x (N, C, H, W): (C*KH*KW, N*OH*OW). For reading and testing (no
    chunking; ``geometry.groups`` is not used: C is all of x's channels)."""
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    N, C = x.shape[:2]
    cols = np.empty((C * KH * KW, N * OH * OW), dtype=x.dtype)
    _im2col(x, 0, C, 0, N, 0, OH, KH, KW, SH, SW, PH, PW, DH, DW, OW, cols)
    return cols


def col2im(cols, geometry):
    """The adjoint of :func:`im2col`: (C*KH*KW, N*OH*OW) columns summed back into (N, C, H, W)
    (C and N read off the columns' shape)."""
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    C, N = cols.shape[0] // (KH * KW), cols.shape[1] // (OH * OW)
    gx = np.zeros((N, C, H, W), dtype=cols.dtype)
    _col2im(np.ascontiguousarray(cols), 0, C, 0, N, 0, OH, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx)
    return gx


# ======================================================================================
# Fast drivers: chunked im2col + one GEMM per (chunk, group), data-parallel over images
# ======================================================================================
# Aim for GEMMs at least this many columns wide (several small images share one chunk).
_MIN_GEMM_COLUMNS = 1024


def _plans(N, OH, OW, K, itemsize, workspace_bytes, macs=None):
    """Each thread's (parallel_kernels, chunks) for an im2col pass over the batch (see
    _threads.batch_plans): chunks of whole images, as few as make a GEMM _MIN_GEMM_COLUMNS wide
    (its columns then stay in cache between im2col and the GEMM), or bands of output rows of
    one image whose columns (K rows, OW wide per output row) would not fit the workspace."""
    images = -(-_MIN_GEMM_COLUMNS // (OH * OW))
    return _threads.batch_plans(N, OH, K * OW * itemsize, images * OH, workspace_bytes, macs)


# Winograd for 3x3 stride-1 convolutions: F(2x2, 3x3) for the forward pass and the input
# gradient (which is one), F(3x3, 2x2) for the weight gradient (see winograd.py, docs/conv.md).
def _use_winograd(C, geometry):
    """3x3, stride 1, dilation 1, one group, C >= 4 input channels and an output (map) at least
    12x12: where Winograd measured faster than im2col + GEMM (forward 1.3-2.1x, weight gradient
    1.2-1.5x; even or slower on 8x8 outputs and with 3 input channels)."""
    return winograd.supported(geometry) and C >= 4 and min(geometry.map_size) >= 12


# Smaller maps (4x4 to 11x11: a ResNet's last two stages at 128 px, a detector's small pyramid
# levels) still run the forward pass (and the input gradient, a forward pass of gy) faster by
# Winograd when the batch holds enough 2x2 output tiles to pay for the filter transform: U is
# 16/9 the size of w and is made on every call, while each of the 16 transform-domain GEMMs is
# (F, C) @ (C, tiles). So at least _WINOGRAD_MIN_TILES_SMALL_MAP tiles, and at least one per
# _WINOGRAD_PAIRS_PER_TILE filter pairs (F * C). Measured (2 threads, float32, interleaved in one
# process; im2col -> Winograd, ms): 256 channels at 8x8, batch 4: forward 2.82 -> 2.28, input
# gradient 3.05 -> 2.48; batch 2 (32 tiles): 1.79 -> 1.54, 1.75 -> 1.78; 256 channels at 4x4,
# batch 8: 1.75 -> 1.72, 2.22 -> 1.85; 128 channels at 4x4, batch 8: 0.79 -> 0.67, 0.88 -> 0.68;
# 512 channels at 4x4, batch 16 (64 tiles): 9.41 -> 8.81, 12.04 -> 9.18, but at batch 8
# (32 tiles < 262144 / 4096) 4.99 -> 5.51, 6.10 -> 5.78. Maps under 4x4 keep im2col (a 2x2 map is
# one tile, a 3x3 map four: 256 channels at 2x2, batch 8, forward 1.15 -> 1.69; at 3x3 1.88 ->
# 2.74). The weight gradient stays on im2col there (slower by Winograd at every size measured,
# e.g. 256 channels at 8x8, batch 4: 2.85 -> 3.70).
_WINOGRAD_MIN_TILES_SMALL_MAP = 32
_WINOGRAD_PAIRS_PER_TILE = 4096
_WINOGRAD_MIN_MAP = 4


def _use_winograd_forward(N, C, F, geometry):
    """_use_winograd, or, for the forward pass only (C input and F output channels), an output of
    at least _WINOGRAD_MIN_MAP x _WINOGRAD_MIN_MAP with enough 2x2 tiles in the batch: at least
    _WINOGRAD_MIN_TILES_SMALL_MAP and F * C / _WINOGRAD_PAIRS_PER_TILE."""
    if _use_winograd(C, geometry):
        return True
    OH, OW = geometry.map_size
    tiles = N * ((OH + 1) // 2) * ((OW + 1) // 2)
    return (winograd.supported(geometry) and C >= 4 and min(OH, OW) >= _WINOGRAD_MIN_MAP
            and tiles >= max(_WINOGRAD_MIN_TILES_SMALL_MAP, F * C / _WINOGRAD_PAIRS_PER_TILE))


def _finite(result):
    """Whether a Winograd result can stand: all of it finite (one cheap pass, the sum).

    An inf in x, w or gy breaks Winograd's transforms: they add and subtract neighbouring
    values, so inf - inf = NaN appears where the direct sum (and PyTorch) gives +-inf. NaNs
    alone would land on the same outputs as the direct sum, but telling them apart costs as
    much as recomputing. So a result that is not all finite (its sum is not finite: a finite
    sum implies finite terms; an overflowing sum merely recomputes) is recomputed by im2col.
    """
    return bool(np.isfinite(result.sum()))


def _gy_chunk(gy, n0, Nc, f0, Fg, i0, OHc):
    """gy[n0:n0+Nc, f0:f0+Fg, i0:i0+OHc] as the (Fg, Nc*OHc*OW) matrix the GEMMs need."""
    blk = gy[n0:n0 + Nc, f0:f0 + Fg, i0:i0 + OHc]  # (Nc, Fg, OHc, OW)
    if Nc == 1:
        return np.ascontiguousarray(blk[0]).reshape(Fg, -1)  # a view when the chunk is whole rows
    return np.ascontiguousarray(blk.transpose(1, 0, 2, 3)).reshape(Fg, -1)  # (Fg, Nc*OHc*OW)


# --------------------------------------------------------------------------------------
# 1x1 convolutions (stride 1, unpadded): x itself is the columns; products on the pool threads
# --------------------------------------------------------------------------------------
# NumPy's matmul over a stack of images calls BLAS once per image, each call multi-threaded by
# OpenBLAS itself; on ResNet-50's 1x1 convs (about half its work) that gained nothing over one
# thread here. The threads of _threads' pool take whole images instead (or, for fewer images
# than threads, ranges of output rows), each with single-threaded BLAS.
def _pointwise_products(mats, a, out):
    """out[n, group g] = mats[g] @ a[n, group g] for every image n and group g.

    mats: G matrices (O, I) (a 1x1 conv's weight blocks, or their transposes for the input
    gradient); a (N, G*I, P), out (N, G*O, P), P pixels. Each task writes its own images (or
    its own rows of every image), so the threads never write the same entry.
    """
    N, _, P = a.shape
    G = len(mats)
    O, I = mats[0].shape

    def work(task):
        n0, n1, o0, o1 = task
        for g in range(G):
            np.matmul(mats[g][o0:o1], a[n0:n1, g * I:(g + 1) * I],
                      out=out[n0:n1, g * O + o0:g * O + o1])

    _run_pointwise(work, N, O, N * G * O * I * P)


def _pointwise_grad_weight(x, gy, G):
    """gw (F, Cg) of a 1x1 conv: sum over images of gy[n, group g] @ x[n, group g].T.

    x (N, C, P), gy (N, F, P). Small maps (P * (Fg + Cg) < Fg * Cg, a ResNet-50's 4x4 and 8x8
    stages): the per-image products would each have an inner dimension of only P and build an
    (N, Fg, Cg) stack far larger than gy and x (2048 -> 512 channels at 4x4: 33 MB, 30 ms); laid
    out as (channels, N*P) matrices instead, the sum over images is the inner dimension of one
    GEMM, gw = gy2 @ x2.T, whose rows the threads split. Larger maps: the threads sum the
    products of their own images (a fixed split, added in order: bitwise repeatable), or, with
    fewer images than threads, each computes its own rows of gw over all images.
    """
    N, C, P = x.shape
    F = gy.shape[1]
    Fg, Cg = F // G, C // G
    macs = N * F * Cg * P
    if P * (Fg + Cg) < Fg * Cg:
        gw = np.empty((F, Cg), dtype=x.dtype)
        gy2, x2 = _batch_matrix(gy), _batch_matrix(x)  # (F, N*P), (C, N*P)

        def rows(task):
            _, _, f0, f1 = task
            for g in range(G):
                np.matmul(gy2[g * Fg + f0:g * Fg + f1], x2[g * Cg:(g + 1) * Cg].T, out=gw[g * Fg + f0:g * Fg + f1])

        _run_pointwise(rows, 1, Fg, macs)
        return gw

    def share(task):
        n0, n1, f0, f1 = task
        part = np.empty((G, f1 - f0, Cg), dtype=x.dtype)
        for g in range(G):
            xg = x[n0:n1, g * Cg:(g + 1) * Cg].transpose(0, 2, 1)  # (n, P, Cg)
            part[g] = np.matmul(gy[n0:n1, g * Fg + f0:g * Fg + f1], xg).sum(axis=0)
        return task, part

    gw3 = np.zeros((G, Fg, Cg), dtype=x.dtype)
    for (_, _, f0, f1), part in _run_pointwise(share, N, Fg, macs):  # in task order
        gw3[:, f0:f1] += part  # shares of images add up; shares of rows fill their own rows
    return gw3.reshape(F, Cg)


def _run_pointwise(work, N, rows, macs):
    """[work((n0, n1, r0, r1)) ...]: all N images and all `rows` in the calling thread with
    single-threaded BLAS below SERIAL_MAX_MACS; else ranges of images on the pool's threads,
    or, with fewer images than threads, ranges of rows of every image."""
    T = _threads.num_threads()
    if _threads.serial(macs) or T <= 1 or not _threads.blas_threads_controllable():
        with _threads.blas_for_product(macs):
            return [work((0, N, 0, rows))]
    if N >= T:
        tasks = [(n0, n1, 0, rows) for n0, n1 in _threads.row_ranges(N, T)]
    else:
        tasks = [(0, N, r0, r1) for r0, r1 in _threads.row_ranges(rows, T)]
    return _threads.run_parallel(work, tasks)


# --------------------------------------------------------------------------------------
# Small maps: one GEMM for the whole batch, the threads splitting its rows
# --------------------------------------------------------------------------------------
# A late ResNet stage has small maps and big weights (512 channels at 4x4: the weight matrix is
# 9 MB, one image's columns 0.3 MB). Split by images, every thread streams the whole weight
# matrix through a GEMM only a few images wide, and the weight gradient needs one (K, F)
# accumulator per thread, summed at the end. Here the whole batch is unfolded once and every
# GEMM covers the whole batch; the threads split the GEMM's *rows* (output channels for y and
# gw, input channels for gx), so each thread streams only its part of the weights and writes
# its own rows of the result (for gx, also its own channel planes: col2im never races).
# Used when the whole batch's columns are at most this wide:
_BATCHED_MAX_COLUMNS = 1024


def _use_batched(N, OH, OW, K, G, itemsize, workspace_bytes, F):
    """Ungrouped, two or more images (one image already makes one GEMM for the batch, with
    multi-threaded BLAS), too much work to run serially (see _serial), whole-batch columns at
    most _BATCHED_MAX_COLUMNS wide and within the workspace bound."""
    budget = _threads.WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    return (G == 1 and N >= 2 and N * OH * OW <= _BATCHED_MAX_COLUMNS and not _threads.serial(F * K * N * OH * OW)
            and K * N * OH * OW * itemsize <= budget)


def _whole_batch_cols(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """cols (C*KH*KW, N*OH*OW) of the whole batch, in this thread's workspace; the threads
    unfold a range of channels each (a channel's rows of cols are one contiguous block)."""
    N, C = x.shape[:2]
    kk = KH * KW
    cols = _threads.workspace("cols_batch", (C * kk, N * OH * OW), x.dtype)

    def work(rows):
        c0, c1 = rows
        _im2col(x, c0, c1 - c0, 0, N, 0, OH, KH, KW, SH, SW, PH, PW, DH, DW, OW, cols[c0 * kk:c1 * kk])

    _threads.run_parallel(work, _threads.row_ranges(C, _threads.num_threads()))
    return cols


def _batch_matrix(a):
    """(N, F, ...) -> (F, N*...): (N, F, OH, OW) -> (F, N*OH*OW), or (N, F, P) -> (F, N*P);
    contiguous (a copy when N > 1)."""
    N, F = a.shape[:2]
    if N == 1:
        return np.ascontiguousarray(a).reshape(F, -1)
    return np.ascontiguousarray(np.swapaxes(a, 0, 1)).reshape(F, -1)


def _forward_batched(x, w, SH, SW, PH, PW, DH, DW, OH, OW):
    """y = w2 @ cols for the whole batch; thread t computes output channels [f0, f1)."""
    N = x.shape[0]
    F = w.shape[0]
    cols = _whole_batch_cols(x, w.shape[2], w.shape[3], SH, SW, PH, PW, DH, DW, OH, OW)
    w2 = w.reshape(F, -1)
    yb = np.empty((F, N * OH * OW), dtype=x.dtype)  # (F, N*OH*OW)

    def work(rows):
        f0, f1 = rows
        np.matmul(w2[f0:f1], cols, out=yb[f0:f1])

    _threads.run_parallel(work, _threads.row_ranges(F, _threads.num_threads()))
    return np.ascontiguousarray(yb.reshape(F, N, OH, OW).transpose(1, 0, 2, 3))  # -> (N, F, OH, OW)


def _grad_weight_batched(x, gy, KH, KW, SH, SW, PH, PW, DH, DW):
    """gw2 (F, K) = gy2 @ cols.T for the whole batch; thread t unfolds input channels [c0, c1)
    and computes their columns of gw2 (no per-thread accumulators to add up)."""
    N, C = x.shape[:2]
    _, F, OH, OW = gy.shape
    kk = KH * KW
    gy2 = _batch_matrix(gy)  # (F, N*OH*OW)
    gw2 = np.empty((F, C * kk), dtype=x.dtype)

    def work(rows):
        c0, c1 = rows
        cols = _threads.workspace("cols", ((c1 - c0) * kk, N * OH * OW), x.dtype)
        _im2col(x, c0, c1 - c0, 0, N, 0, OH, KH, KW, SH, SW, PH, PW, DH, DW, OW, cols)
        gw2[:, c0 * kk:c1 * kk] = gy2 @ cols.T

    _threads.run_parallel(work, _threads.row_ranges(C, _threads.num_threads()))
    return gw2.reshape(F, C, KH, KW)


def _grad_input_batched(gy, w, SH, SW, PH, PW, DH, DW, H, W):
    """gx = col2im(w2.T @ gy2) for the whole batch; thread t does input channels [c0, c1):
    their rows of the columns, then col2im into their own planes of gx."""
    N, F, OH, OW = gy.shape
    _, C, KH, KW = w.shape
    kk = KH * KW
    w2 = w.reshape(F, C * kk)
    gy2 = _batch_matrix(gy)  # (F, N*OH*OW)
    gx = np.zeros((N, C, H, W), dtype=gy.dtype)

    def work(rows):
        k0, k1 = rows  # rows of cols: channels k0 // kk ... k1 // kk - 1
        gcols = _threads.workspace("cols", (k1 - k0, N * OH * OW), gy.dtype)
        np.matmul(w2[:, k0:k1].T, gy2, out=gcols)
        col2im_k = _pick_col2im(False, KH, KW, SH, SW, DH, DW, OW)
        col2im_k(gcols, k0 // kk, (k1 - k0) // kk, 0, N, 0, OH, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx)

    _threads.run_parallel(work, _threads.row_ranges(C * kk, _threads.num_threads(), align=kk))
    return gx


# A 1x1 unpadded conv with stride > 1 (a ResNet's downsample shortcut) reads only every SH-th
# row and SW-th column of x: it is the pointwise conv of that subsampled image, one GEMM per image
# instead of im2col + GEMM (measured at 8 x 64 x 32 x 32 -> 128 channels, stride 2, 2 threads:
# forward + both gradients 3.5 ms by im2col, 1.7 this way, PyTorch 1.5).
def _subsampled_pointwise(geometry):
    """(the pointwise geometry on the subsampled image, the (rows, cols) slices of x it reads),
    or None when the conv is not a strided, unpadded 1x1 conv."""
    if tuple(geometry.kernel_size) != (1, 1) or tuple(geometry.padding) != (0, 0) or geometry.is_pointwise:
        return None
    (SH, SW), (OH, OW) = geometry.stride, geometry.map_size
    sub = geometry._replace(stride=(1, 1), dilation=(1, 1), image_size=(OH, OW))
    return sub, (slice(0, SH * (OH - 1) + 1, SH), slice(0, SW * (OW - 1) + 1, SW))


# A detector's smallest pyramid levels (1x1 to 4x4 maps) have few output pixels P = N*OH*OW
# and big weights: a copy the size of the weight then costs more than the GEMMs. So
# - the weight gradient is summed as (F, K) directly, not as (K, F) transposed at the end, for
#   P <= _FEW_PIXELS (measured, 3x3 convs, 2 threads: 256 channels at 2x2, batch 8: 1.8 -> 1.0
#   ms; at 1x1 1.2 -> 0.4; 128 channels at 4x4, batch 4: 0.55 -> 0.44; but 64 channels at 8x8,
#   batch 8, P = 512: 0.90 -> 1.11, where the (K, F) orientation's long inner sum wins);
# - the stride-1 input gradient is GEMM + col2im, not the convolution with the flipped weight
#   (a copy of w), for P <= F * _FLIP_MIN_PIXELS_PER_FILTER (256 channels at 1x1, batch 8:
#   0.90 -> 0.37 ms; at 2x2, P = 32, and at 4x4 with 128 channels, P = 64, the flipped copy was
#   5-15% faster).
_FEW_PIXELS = 128
_FLIP_MIN_PIXELS_PER_FILTER = 1 / 16


def conv2d_forward(x, w, geometry, workspace_bytes=None):
    """y (N, F, OH, OW) = conv2d(x, w) without bias, by im2col + GEMM per chunk and group."""
    subsampled = _subsampled_pointwise(geometry)
    if subsampled is not None:
        sub, (rows, cols) = subsampled
        return conv2d_forward(np.ascontiguousarray(x[:, :, rows, cols]), w, sub, workspace_bytes)
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    N, C = x.shape[:2]
    F, Cg = w.shape[:2]
    Fg = F // G
    K = Cg * KH * KW
    if _use_winograd_forward(N, C, F, geometry):
        y = winograd.winograd_conv3x3(x, w, geometry, workspace_bytes)
        if _finite(y):
            return y  # else an inf in x or w: the direct sum below (see _finite)
    y = np.empty((N, F, OH, OW), dtype=x.dtype)
    if geometry.is_pointwise:
        # One (Fg, Cg) @ (Cg, H*W) product per image and group, written straight into y.
        mats = [w[g * Fg:(g + 1) * Fg].reshape(Fg, Cg) for g in range(G)]
        _pointwise_products(mats, x.reshape(N, C, H * W), y.reshape(N, F, OH * OW))
        return y
    if _use_batched(N, OH, OW, K, G, x.itemsize, workspace_bytes, F):
        return _forward_batched(x, w, SH, SW, PH, PW, DH, DW, OH, OW)

    def work(plan):
        parallel, chunks = plan
        for n0, Nc, i0, OHc in chunks:
            cols = _threads.workspace("cols", (K, Nc * OHc * OW), x.dtype)
            for g in range(G):
                _im2col(x, g * Cg, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, cols)
                w2 = w[g * Fg:(g + 1) * Fg].reshape(Fg, K)
                if Nc == 1 and OHc == OH:
                    # One whole image: y[n0, group g] is a contiguous (Fg, OH*OW) block; GEMM into it.
                    np.matmul(w2, cols, out=y[n0, g * Fg:(g + 1) * Fg].reshape(Fg, OH * OW))
                else:
                    yc = (w2 @ cols).reshape(Fg, Nc, OHc, OW)  # (Fg, Nc*OHc*OW) -> per image
                    y[n0:n0 + Nc, g * Fg:(g + 1) * Fg, i0:i0 + OHc] = yc.transpose(1, 0, 2, 3)

    _threads.run_plans(work, _plans(N, OH, OW, K, x.itemsize, workspace_bytes, macs=F * K * N * OH * OW))
    return y


def conv2d_grad_input(gy, w, geometry, workspace_bytes=None):
    """gx (N, C, H, W) = col2im(w2.T @ gy2): the adjoint of conv2d_forward with respect to x.

    This is also conv_transpose2d's forward pass (with x in the role of gy). Each thread
    scatters into its own images of gx only.
    """
    subsampled = _subsampled_pointwise(geometry)
    if subsampled is not None:
        # The pointwise input gradient lands on the pixels x was read at; the rest get none.
        sub, (rows, cols) = subsampled
        gx_read = conv2d_grad_input(gy, w, sub, workspace_bytes)
        gx = np.zeros(gx_read.shape[:2] + tuple(geometry.image_size), dtype=gx_read.dtype)
        gx[:, :, rows, cols] = gx_read
        return gx
    gy = np.ascontiguousarray(gy)
    w = np.ascontiguousarray(w)
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    N, F = gy.shape[:2]
    Cg = w.shape[1]
    Fg = F // G
    K = Cg * KH * KW
    if geometry.is_pointwise and (H, W) == (OH, OW):
        gx = np.empty((N, Cg * G, H, W), dtype=gy.dtype)
        # gx[n, group g] = w_g.T @ gy[n, group g]: (Cg, Fg) @ (Fg, H*W) per image and group.
        mats = [w[g * Fg:(g + 1) * Fg].reshape(Fg, Cg).T for g in range(G)]
        _pointwise_products(mats, gy.reshape(N, F, OH * OW), gx.reshape(N, Cg * G, H * W))
        return gx
    flip = (SH, SW) == (1, 1) and PH <= DH * (KH - 1) and PW <= DW * (KW - 1)
    # That convolution's geometry (see below): gy on its image side, gx on its map side.
    full = geometry._replace(padding=(DH * (KH - 1) - PH, DW * (KW - 1) - PW), image_size=(OH, OW), map_size=(H, W))
    if _use_batched(N, OH, OW, K, G, gy.itemsize, workspace_bytes, F) and not (
            flip and _use_winograd_forward(N, F, Cg, full)):
        return _grad_input_batched(gy, w, SH, SW, PH, PW, DH, DW, H, W)
    if flip:
        # Stride 1: gx is itself a convolution ("full" correlation) of gy. With u' = KH-1-u,
        #   gx[n, g*Cg+c, h, w'] = sum_{f,u',v'} w[g*Fg+f, c, KH-1-u', KW-1-v'] gy[n, g*Fg+f, h + u'*DH - PH', ...]
        # where PH' = DH*(KH-1) - PH: a conv2d_forward with the kernel flipped in space and its
        # channel roles swapped per group. im2col + GEMM then replaces GEMM + col2im — faster
        # here (the GEMM's inner dimension is F*KH*KW instead of F, and no scatter).
        if G == 1 and _use_winograd_forward(N, F, Cg, full):
            # Winograd transforms the flipped kernel straight from w (winograd.filter_transform).
            gx = winograd.winograd_conv3x3(gy, w, full, workspace_bytes, flipped=True)
            if _finite(gx):
                return gx  # else an inf in gy or w: the direct sum below (see _finite)
    if flip and N * OH * OW > F * _FLIP_MIN_PIXELS_PER_FILTER:  # (else the flipped copy of w costs more)
        wt = (w.reshape(G, Fg, Cg, KH, KW)[:, :, :, ::-1, ::-1]   # flip u, v
              .transpose(0, 2, 1, 3, 4).reshape(G * Cg, Fg, KH, KW))  # (G*Cg, Fg, KH, KW)
        return conv2d_forward(gy, np.ascontiguousarray(wt), full, workspace_bytes)
    gx = np.zeros((N, Cg * G, H, W), dtype=gy.dtype)

    def work(plan):
        parallel, chunks = plan
        col2im_k = _pick_col2im(parallel, KH, KW, SH, SW, DH, DW, OW)
        for n0, Nc, i0, OHc in chunks:
            gcols = _threads.workspace("cols", (K, Nc * OHc * OW), gy.dtype)
            for g in range(G):
                w2 = w[g * Fg:(g + 1) * Fg].reshape(Fg, K)
                np.matmul(w2.T, _gy_chunk(gy, n0, Nc, g * Fg, Fg, i0, OHc), out=gcols)  # (K, Nc*OHc*OW)
                col2im_k(gcols, g * Cg, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx)

    _threads.run_plans(work, _plans(N, OH, OW, K, gy.itemsize, workspace_bytes, macs=F * K * N * OH * OW))
    return gx


def conv2d_grad_weight(x, gy, geometry, workspace_bytes=None):
    """gw (F, C/G, KH, KW) = sum over chunks of gy2 @ cols.T, one GEMM per chunk and group.

    Each thread sums its own share of the batch; the shares are added at the end.
    """
    subsampled = _subsampled_pointwise(geometry)
    if subsampled is not None:
        sub, (rows, cols) = subsampled
        return conv2d_grad_weight(np.ascontiguousarray(x[:, :, rows, cols]), gy, sub, workspace_bytes)
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy)
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    N, C = x.shape[:2]
    F = gy.shape[1]
    Fg, Cg = F // G, C // G
    K = Cg * KH * KW
    if _use_winograd(C, geometry):
        gw = winograd.winograd_conv3x3_grad_weight(x, gy, geometry, workspace_bytes)
        if _finite(gw):
            return gw  # else an inf in x or gy: the direct sum below (see _finite)
    if geometry.is_pointwise:
        return _pointwise_grad_weight(x.reshape(N, C, H * W), gy.reshape(N, F, OH * OW), G).reshape(F, Cg, KH, KW)
    if _use_batched(N, OH, OW, K, G, x.itemsize, workspace_bytes, F):
        return _grad_weight_batched(x, gy, KH, KW, SH, SW, PH, PW, DH, DW)

    # Long sums (many pixels): accumulate the transpose gwT = sum cols @ gy2.T, (K, F) — with the
    # pixels as the inner dimension of two row-major operands OpenBLAS runs this orientation
    # fastest (8-20% over gy2 @ cols.T at 2-8 K pixels) — and transpose once at the end. Short
    # sums (small maps): gw2 = sum gy2 @ cols.T, (F, K) directly, as the final transpose of a
    # (K, F) array costs more than the GEMMs there (256 channels at 2x2, batch 8: 0.9 ms to
    # transpose, 0.5 for the GEMM).
    direct = N * OH * OW <= _FEW_PIXELS

    def work(plan):
        parallel, chunks = plan
        acc = np.zeros((F, K) if direct else (K, F), dtype=x.dtype)
        for n0, Nc, i0, OHc in chunks:
            cols = _threads.workspace("cols", (K, Nc * OHc * OW), x.dtype)
            for g in range(G):
                _im2col(x, g * Cg, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, cols)
                gy2 = _gy_chunk(gy, n0, Nc, g * Fg, Fg, i0, OHc)
                if direct:
                    acc[g * Fg:(g + 1) * Fg] += gy2 @ cols.T
                else:
                    acc[:, g * Fg:(g + 1) * Fg] += cols @ gy2.T
        return acc

    shares = _threads.run_plans(work, _plans(N, OH, OW, K, x.itemsize, workspace_bytes, macs=F * K * N * OH * OW))
    acc = shares[0]
    for share in shares[1:]:
        acc += share
    return (acc if direct else np.ascontiguousarray(acc.T)).reshape(F, Cg, KH, KW)
