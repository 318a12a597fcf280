r"""Convolution kernels from array operations (CuPy on the GPU), the same signatures as
:mod:`tinyvision.kernels.cpu.conv`.

The same im2col + GEMM scheme as the CPU kernels, written with whole-array operations only, so
it runs on any NumPy-like module (``xp = get_array_module(x)``): CuPy on the GPU, and NumPy in
the tests, which check it against the CPU kernels on machines without a GPU.

im2col here pads the input once, then copies one strided view per kernel tap (u, v)::

    cols[c, u, v, n, i, j] = xpad[n, c, i*SH + u*DH, j*SW + v*DW]          (xpad: x with PH, PW on top/left)

and col2im adds each tap's block back into the padded gradient (within one tap the strided
positions are distinct, so ``+=`` on the view never drops a duplicate), then crops the padding.
The batch is processed in chunks of images whose columns fit ``WORKSPACE_BYTES``. Every
kernel takes its arrays and the conv's :class:`~tinyvision.kernels.conv_geometry.ConvGeometry`.
"""
from __future__ import annotations

from ...backend import get_array_module

__all__ = ["WORKSPACE_BYTES", "conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight", "im2col", "col2im"]

WORKSPACE_BYTES = 256 * 2**20


def _padded_extent(O, S, K, D, P, H):
    """(bottom padding, padded length) so that every tap of every output index is inside."""
    need = (O - 1) * S + (K - 1) * D + 1  # rows touched, counted from the padded top
    return max(0, need - P - H), max(need, P + H)


def _tap(a, u, v, SH, SW, DH, DW, OH, OW):
    """The strided view a[:, :, u*DH + i*SH, v*DW + j*SW] for i < OH, j < OW."""
    return a[:, :, u * DH:u * DH + (OH - 1) * SH + 1:SH, v * DW:v * DW + (OW - 1) * SW + 1:SW]


def im2col(x, geometry):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW); rows ordered (c, u, v), columns (n, i, j).
    (C is all of x's channels: a caller unfolds one group at a time.)"""
    xp = get_array_module(x)
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    N, C = x.shape[:2]
    pb, _ = _padded_extent(OH, SH, KH, DH, PH, H)
    pr, _ = _padded_extent(OW, SW, KW, DW, PW, W)
    xpad = xp.pad(x, ((0, 0), (0, 0), (PH, pb), (PW, pr)))
    cols = xp.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    for u in range(KH):
        for v in range(KW):
            # (N, C, OH, OW) -> (C, N, OH, OW)
            cols[:, u, v] = _tap(xpad, u, v, SH, SW, DH, DW, OH, OW).transpose(1, 0, 2, 3)
    return cols.reshape(C * KH * KW, N * OH * OW)


def col2im(cols, geometry):
    """The adjoint of :func:`im2col`: (C*KH*KW, N*OH*OW) summed back into (N, C, H, W)
    (C and N read off the columns' shape)."""
    xp = get_array_module(cols)
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    C, N = cols.shape[0] // (KH * KW), cols.shape[1] // (OH * OW)
    _, Hp = _padded_extent(OH, SH, KH, DH, PH, H)
    _, Wp = _padded_extent(OW, SW, KW, DW, PW, W)
    gpad = xp.zeros((N, C, Hp, Wp), dtype=cols.dtype)
    c6 = cols.reshape(C, KH, KW, N, OH, OW)
    for u in range(KH):
        for v in range(KW):
            view = _tap(gpad, u, v, SH, SW, DH, DW, OH, OW)
            view += c6[:, u, v].transpose(1, 0, 2, 3)  # (C, N, OH, OW) -> (N, C, OH, OW)
    return gpad[:, :, PH:PH + H, PW:PW + W]


def _image_chunks(N, per_image, budget):
    step = max(1, budget // max(1, per_image))
    for n0 in range(0, N, step):
        yield n0, min(step, N - n0)


def conv2d_forward(x, w, geometry, workspace_bytes=None):
    """y (N, F, OH, OW) = per group w2 @ im2col(x), w2 = w.reshape(F/G, C/G*KH*KW)."""
    xp = get_array_module(x, w)
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    N = x.shape[0]
    F, Cg = w.shape[:2]
    Fg = F // G
    y = xp.empty((N, F, OH, OW), dtype=x.dtype)
    budget = WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    for n0, Nc in _image_chunks(N, Cg * KH * KW * OH * OW * x.itemsize, budget):
        for g in range(G):
            cols = im2col(x[n0:n0 + Nc, g * Cg:(g + 1) * Cg], geometry)
            yc = (w[g * Fg:(g + 1) * Fg].reshape(Fg, -1) @ cols).reshape(Fg, Nc, OH, OW)
            y[n0:n0 + Nc, g * Fg:(g + 1) * Fg] = yc.transpose(1, 0, 2, 3)
    return y


def conv2d_grad_input(gy, w, geometry, workspace_bytes=None):
    """gx (N, C, H, W) = col2im(w2.T @ gy2) per group; conv_transpose2d's forward."""
    xp = get_array_module(gy, w)
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    N, F = gy.shape[:2]
    Cg = w.shape[1]
    Fg = F // G
    gx = xp.empty((N, Cg * G, H, W), dtype=gy.dtype)
    budget = WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    for n0, Nc in _image_chunks(N, Cg * KH * KW * OH * OW * gy.itemsize, budget):
        for g in range(G):
            gy2 = gy[n0:n0 + Nc, g * Fg:(g + 1) * Fg].transpose(1, 0, 2, 3).reshape(Fg, -1)
            gcols = w[g * Fg:(g + 1) * Fg].reshape(Fg, -1).T @ gy2
            gx[n0:n0 + Nc, g * Cg:(g + 1) * Cg] = col2im(gcols, geometry)  # (Nc, Cg, H, W)
    return gx


def conv2d_grad_weight(x, gy, geometry, workspace_bytes=None):
    """gw (F, C/G, KH, KW) = sum over chunks of gy2 @ im2col(x).T, per group."""
    xp = get_array_module(x, gy)
    (SH, SW), (PH, PW), (DH, DW), G, (KH, KW), (H, W), (OH, OW) = geometry
    N, C = x.shape[:2]
    F = gy.shape[1]
    Fg, Cg = F // G, C // G
    gw = xp.zeros((F, Cg * KH * KW), dtype=x.dtype)
    budget = WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    for n0, Nc in _image_chunks(N, Cg * KH * KW * OH * OW * x.itemsize, budget):
        for g in range(G):
            cols = im2col(x[n0:n0 + Nc, g * Cg:(g + 1) * Cg], geometry)
            gy2 = gy[n0:n0 + Nc, g * Fg:(g + 1) * Fg].transpose(1, 0, 2, 3).reshape(Fg, -1)
            gw[g * Fg:(g + 1) * Fg] += gy2 @ cols.T
    return gw.reshape(F, Cg, KH, KW)
