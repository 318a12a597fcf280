r"""Convolution kernels on the CPU: a plain-loop reference and a fast im2col + GEMM version.

Notation (the whole project's letters)::

    x  (N, C, H, W)          input             w  (F, C/G, KH, KW)   weight, G = groups
    y  (N, F, OH, OW)        output            SH SW / PH PW / DH DW  stride / padding / dilation

    y[n,f,i,j] = sum_{c,u,v} w[f,c,u,v] * x[n, g*Cg + c, i*SH + u*DH - PH, j*SW + v*DW - PW]

where g = f // (F/G) is the group of output channel f, Cg = C/G, and x reads as 0 outside the
image (zero padding). ``PH``/``PW`` are the padding on the *top/left*; the bottom/right padding
is implicit in ``OH``/``OW``, which the caller passes (so ``padding='same'`` with an even kernel,
whose padding is asymmetric, needs nothing special here).

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

The batch is cut into chunks (and a single large image into bands of output rows) so that
``cols`` never exceeds ``WORKSPACE_BYTES``. im2col and col2im run in parallel over (n, c)
planes: each plane of x is read by, and each plane of gx is written by, exactly one iteration,
so the scatter-add of col2im never races.

All kernels take and return raw NumPy arrays, float32 or float64 (x and w of one dtype); the
caller (:mod:`tinyvision.kernels.conv_dispatch`) has validated every shape, so no index here
can leave its array. A 1x1, stride-1, unpadded convolution skips im2col: x itself is ``cols``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "WORKSPACE_BYTES",
    "conv2d_forward",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv2d_forward_reference",
    "conv2d_grad_input_reference",
    "conv2d_grad_weight_reference",
    "im2col",
    "col2im",
]

# Upper bound of the im2col workspace (bytes). The batch is processed in chunks of images so
# that one chunk's columns fit; an image too large on its own is cut into bands of output rows.
WORKSPACE_BYTES = 64 * 2**20


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


def conv2d_forward_reference(x, w, stride, padding, dilation, groups, out_size):
    """y (N, F, OH, OW) by the defining sum, one loop per index. Slow; for tests and reading."""
    (SH, SW), (PH, PW), (DH, DW), (OH, OW) = stride, padding, dilation, out_size
    y = np.empty((x.shape[0], w.shape[0], OH, OW), dtype=x.dtype)
    _conv2d_forward_reference(np.ascontiguousarray(x), np.ascontiguousarray(w), SH, SW, PH, PW, DH, DW, groups, OH, OW, y)
    return y


def conv2d_grad_input_reference(gy, w, stride, padding, dilation, groups, in_size):
    """gx (N, C, H, W): every gy[n,f,i,j] * w[f,c,u,v] added back to the pixel it came from."""
    (SH, SW), (PH, PW), (DH, DW), (H, W) = stride, padding, dilation, in_size
    gx = np.zeros((gy.shape[0], w.shape[1] * groups, H, W), dtype=gy.dtype)
    _conv2d_grad_input_reference(np.ascontiguousarray(gy), np.ascontiguousarray(w), SH, SW, PH, PW, DH, DW, groups, gx)
    return gx


def conv2d_grad_weight_reference(x, gy, stride, padding, dilation, groups, kernel_size):
    """gw (F, C/G, KH, KW): each weight's gradient is the sum of gy times the pixel it multiplied."""
    (SH, SW), (PH, PW), (DH, DW), (KH, KW) = stride, padding, dilation, kernel_size
    gw = np.empty((gy.shape[1], x.shape[1] // groups, KH, KW), dtype=x.dtype)
    _conv2d_grad_weight_reference(np.ascontiguousarray(x), np.ascontiguousarray(gy), SH, SW, PH, PW, DH, DW, groups, gw)
    return gw


# ======================================================================================
# im2col / col2im (Numba, parallel over (n, c) planes)
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


@njit(cache=True, parallel=True)
def _im2col(x, c0, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, cols):
    """cols[(c*KH+u)*KW+v, (n*OHc + i)*OW + j] = x[n0+n, c0+c, (i0+i)*SH+u*DH-PH, j*SW+v*DW-PW].

    cols is (Cg*KH*KW, Nc*OHc*OW), C-contiguous. One parallel iteration per (n, c) plane:
    it writes the KH*KW rows of channel c in image n's block of columns, which no other
    iteration touches.
    """
    H = x.shape[2]
    W = x.shape[3]
    L = OHc * OW
    for t in prange(Nc * Cg):
        n = t // Cg
        c = t - n * Cg
        for u in range(KH):
            for v in range(KW):
                row = (c * KH + u) * KW + v
                off = v * DW - PW
                j0, j1 = _valid_cols(off, SW, W, OW)
                for i in range(OHc):
                    h = (i0 + i) * SH + u * DH - PH
                    base = n * L + i * OW
                    if h < 0 or h >= H:
                        cols[row, base:base + OW] = 0.0
                        continue
                    cols[row, base:base + j0] = 0.0
                    if SW == 1:  # a contiguous run: a slice copy (vectorised)
                        cols[row, base + j0:base + j1] = x[n0 + n, c0 + c, h, j0 + off:j1 + off]
                    else:
                        for j in range(j0, j1):
                            cols[row, base + j] = x[n0 + n, c0 + c, h, j * SW + off]
                    cols[row, base + j1:base + OW] = 0.0


@njit(cache=True, parallel=True)
def _col2im(cols, c0, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx):
    """The adjoint of _im2col: gx[n0+n, c0+c, h, w] += cols[...] for every entry that came from (h, w).

    Parallel over (n, c) planes of gx: each plane is written by exactly one iteration
    (the scatter-add below overlaps only within that plane), so no two threads collide.
    """
    H = gx.shape[2]
    W = gx.shape[3]
    L = OHc * OW
    for t in prange(Nc * Cg):
        n = t // Cg
        c = t - n * Cg
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


def im2col(x, kernel_size, stride, padding, dilation, out_size):
    """The whole unfolded input: (C*KH*KW, N*OH*OW). For reading and testing (no chunking)."""
    (KH, KW), (SH, SW), (PH, PW), (DH, DW), (OH, OW) = kernel_size, stride, padding, dilation, out_size
    N, C = x.shape[:2]
    cols = np.empty((C * KH * KW, N * OH * OW), dtype=x.dtype)
    _im2col(np.ascontiguousarray(x), 0, C, 0, N, 0, OH, KH, KW, SH, SW, PH, PW, DH, DW, OW, cols)
    return cols


def col2im(cols, in_shape, kernel_size, stride, padding, dilation, out_size):
    """The adjoint of :func:`im2col`: (C*KH*KW, N*OH*OW) columns summed back into (N, C, H, W)."""
    (KH, KW), (SH, SW), (PH, PW), (DH, DW), (OH, OW) = kernel_size, stride, padding, dilation, out_size
    N, C = in_shape[:2]
    gx = np.zeros(in_shape, dtype=cols.dtype)
    _col2im(np.ascontiguousarray(cols), 0, C, 0, N, 0, OH, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx)
    return gx


# ======================================================================================
# Fast drivers: chunked im2col + one GEMM per (chunk, group)
# ======================================================================================
def _chunks(N, OH, OW, rows, itemsize, workspace_bytes):
    """Yield (n0, Nc, i0, OHc): images n0..n0+Nc-1, output rows i0..i0+OHc-1.

    A chunk's columns take rows * Nc * OHc * OW * itemsize bytes, kept <= workspace_bytes.
    Whole images are grouped while they fit; a single image that does not fit is cut into
    bands of output rows (at least one row, so the bound is max(budget, one row's columns)).
    """
    per_row = rows * OW * itemsize
    per_image = per_row * OH
    if per_image <= workspace_bytes:
        step = max(1, workspace_bytes // per_image)
        for n0 in range(0, N, step):
            yield n0, min(step, N - n0), 0, OH
    else:
        band = max(1, workspace_bytes // per_row)
        for n0 in range(N):
            for i0 in range(0, OH, band):
                yield n0, 1, i0, min(band, OH - i0)


def _is_pointwise(kernel_size, stride, padding, dilation):
    """1x1 kernel, stride 1, no padding: cols would be x itself (dilation is irrelevant)."""
    return tuple(kernel_size) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)


def _gy_chunk(gy, n0, Nc, f0, Fg, i0, OHc):
    """gy[n0:n0+Nc, f0:f0+Fg, i0:i0+OHc] as the (Fg, Nc*OHc*OW) matrix the GEMMs need."""
    blk = gy[n0:n0 + Nc, f0:f0 + Fg, i0:i0 + OHc]  # (Nc, Fg, OHc, OW)
    return np.ascontiguousarray(blk.transpose(1, 0, 2, 3)).reshape(Fg, -1)  # (Fg, Nc*OHc*OW)


def conv2d_forward(x, w, stride, padding, dilation, groups, out_size, workspace_bytes=None):
    """y (N, F, OH, OW) = conv2d(x, w) without bias, by im2col + GEMM per chunk and group."""
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    (SH, SW), (PH, PW), (DH, DW), (OH, OW) = stride, padding, dilation, out_size
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    G = groups
    Fg = F // G
    K = Cg * KH * KW
    y = np.empty((N, F, OH, OW), dtype=x.dtype)
    if _is_pointwise((KH, KW), stride, padding, dilation):
        for g in range(G):
            w2 = w[g * Fg:(g + 1) * Fg].reshape(Fg, Cg)
            xg = x[:, g * Cg:(g + 1) * Cg].reshape(N, Cg, H * W)
            # One (Fg, Cg) @ (Cg, H*W) product per image, written straight into y.
            y[:, g * Fg:(g + 1) * Fg] = np.matmul(w2, xg).reshape(N, Fg, OH, OW)
        return y
    budget = WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    for n0, Nc, i0, OHc in _chunks(N, OH, OW, K, x.itemsize, budget):
        cols = np.empty((K, Nc * OHc * OW), dtype=x.dtype)
        for g in range(G):
            _im2col(x, g * Cg, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, cols)
            w2 = w[g * Fg:(g + 1) * Fg].reshape(Fg, K)
            if Nc == 1 and OHc == OH:
                # One whole image: y[n0, group g] is a contiguous (Fg, OH*OW) block; GEMM into it.
                np.matmul(w2, cols, out=y[n0, g * Fg:(g + 1) * Fg].reshape(Fg, OH * OW))
            else:
                yc = (w2 @ cols).reshape(Fg, Nc, OHc, OW)  # (Fg, Nc*OHc*OW) -> per image
                y[n0:n0 + Nc, g * Fg:(g + 1) * Fg, i0:i0 + OHc] = yc.transpose(1, 0, 2, 3)
    return y


def conv2d_grad_input(gy, w, stride, padding, dilation, groups, in_size, workspace_bytes=None):
    """gx (N, C, H, W) = col2im(w2.T @ gy2): the adjoint of conv2d_forward with respect to x.

    This is also conv_transpose2d's forward pass (with x in the role of gy).
    """
    gy = np.ascontiguousarray(gy)
    w = np.ascontiguousarray(w)
    (SH, SW), (PH, PW), (DH, DW), (H, W) = stride, padding, dilation, in_size
    N, F, OH, OW = gy.shape
    _, Cg, KH, KW = w.shape
    G = groups
    Fg = F // G
    K = Cg * KH * KW
    if _is_pointwise((KH, KW), stride, padding, dilation) and (H, W) == (OH, OW):
        gx = np.empty((N, Cg * G, H, W), dtype=gy.dtype)
        for g in range(G):
            w2 = w[g * Fg:(g + 1) * Fg].reshape(Fg, Cg)
            gyg = gy[:, g * Fg:(g + 1) * Fg].reshape(N, Fg, OH * OW)
            gx[:, g * Cg:(g + 1) * Cg] = np.matmul(w2.T, gyg).reshape(N, Cg, H, W)
        return gx
    gx = np.zeros((N, Cg * G, H, W), dtype=gy.dtype)
    budget = WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    for n0, Nc, i0, OHc in _chunks(N, OH, OW, K, gy.itemsize, budget):
        for g in range(G):
            w2 = w[g * Fg:(g + 1) * Fg].reshape(Fg, K)
            gcols = w2.T @ _gy_chunk(gy, n0, Nc, g * Fg, Fg, i0, OHc)  # (K, Nc*OHc*OW)
            _col2im(gcols, g * Cg, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, gx)
    return gx


def conv2d_grad_weight(x, gy, stride, padding, dilation, groups, kernel_size, workspace_bytes=None):
    """gw (F, C/G, KH, KW) = sum over chunks of gy2 @ cols.T, one GEMM per chunk and group."""
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy)
    (SH, SW), (PH, PW), (DH, DW), (KH, KW) = stride, padding, dilation, kernel_size
    N, C, H, W = x.shape
    _, F, OH, OW = gy.shape
    G = groups
    Fg, Cg = F // G, C // G
    K = Cg * KH * KW
    if _is_pointwise((KH, KW), stride, padding, dilation):
        gw = np.empty((F, K), dtype=x.dtype)
        for g in range(G):
            gyg = gy[:, g * Fg:(g + 1) * Fg].reshape(N, Fg, OH * OW)
            xg = x[:, g * Cg:(g + 1) * Cg].reshape(N, Cg, H * W)
            # sum_n gy[n] @ x[n].T: one small (Fg, Cg) product per image, then the sum over n.
            gw[g * Fg:(g + 1) * Fg] = np.matmul(gyg, xg.transpose(0, 2, 1)).sum(axis=0)
        return gw.reshape(F, Cg, KH, KW)
    budget = WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    # Accumulate the transpose gwT = sum cols @ gy2.T, (K, F): with the long (pixel) dimension
    # as the inner product of two row-major operands, OpenBLAS runs this orientation fastest.
    gwT = np.zeros((K, F), dtype=x.dtype)
    cols = None
    for n0, Nc, i0, OHc in _chunks(N, OH, OW, K, x.itemsize, budget):
        if cols is None or cols.shape[1] != Nc * OHc * OW:
            cols = np.empty((K, Nc * OHc * OW), dtype=x.dtype)
        for g in range(G):
            _im2col(x, g * Cg, Cg, n0, Nc, i0, OHc, KH, KW, SH, SW, PH, PW, DH, DW, OW, cols)
            gwT[:, g * Fg:(g + 1) * Fg] += cols @ _gy_chunk(gy, n0, Nc, g * Fg, Fg, i0, OHc).T
    return np.ascontiguousarray(gwT.T).reshape(F, Cg, KH, KW)
