"""Bounds-check cases for the convolution kernels (see boundscheck_runner.py).

Every Numba kernel of kernels/cpu/conv.py — the three reference loops, im2col and col2im
through the three fast drivers (whole batches, batch chunks and row bands) — on odd
geometries: strides larger than the kernel, padding larger than the kernel, dilation,
groups, asymmetric kernels, output rows that lie entirely in the padding, sizes not
multiples of the stride. float64 only (bounds do not depend on the dtype).

Numba 0.68 compiles no bounds checks inside a ``parallel=True`` function — not in the prange
body, and not in the njit functions it calls either — so the "-serial" cases run the drivers
with the parallel col2im swapped for its serial twin (the same per-plane code, used by the
data-parallel workers), which is checked. (im2col is a NumPy strided copy: NumPy checks it.) Configurations with N >= 2 take
the data-parallel path anyway; N = 1 ones take the parallel-kernel path.
"""
import contextlib

import numpy as np

from tinyvision.kernels.conv_geometry import ConvGeometry
from tinyvision.kernels.cpu import conv as K

# (N, C, H, W, F, G, (KH, KW), (SH, SW), (PH, PW), (DH, DW))
CONFIGS = [
    (2, 4, 7, 9, 6, 2, (3, 2), (2, 1), (1, 2), (1, 2)),
    (1, 3, 5, 4, 3, 3, (1, 1), (3, 2), (2, 0), (1, 1)),
    (2, 2, 6, 5, 4, 1, (3, 3), (1, 1), (4, 3), (2, 1)),
    (3, 1, 3, 8, 2, 1, (2, 5), (2, 3), (0, 2), (1, 1)),
    (1, 2, 9, 9, 2, 2, (4, 4), (3, 3), (1, 1), (2, 2)),
]


def _out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _case(cfg, seed):
    N, C, H, W, F, G, ks, st, pd, dl = cfg
    rng = np.random.default_rng(seed)
    OH, OW = _out(H, ks[0], st[0], pd[0], dl[0]), _out(W, ks[1], st[1], pd[1], dl[1])
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C // G) + ks)
    gy = rng.standard_normal((N, F, OH, OW))
    g = ConvGeometry(stride=st, padding=pd, dilation=dl, groups=G, kernel_size=ks, image_size=(H, W),
                     map_size=(OH, OW))

    def run():
        out = [
            K.conv2d_forward_reference(x, w, g),
            K.conv2d_grad_input_reference(gy, w, g),
            K.conv2d_grad_weight_reference(x, gy, g),
            K.im2col(x, g),
            K.col2im(K.im2col(x, g), g),
        ]
        # Whole batch, one image per chunk, and bands of one output row (tiny workspaces).
        for ws in (None, C * ks[0] * ks[1] * OH * OW * 8, 1):
            out += [
                K.conv2d_forward(x, w, g, ws),
                K.conv2d_grad_input(gy, w, g, ws),
                K.conv2d_grad_weight(x, gy, g, ws),
            ]
        return tuple(out)

    return run


@contextlib.contextmanager
def _serial_kernels():
    """Swap the parallel K._col2im for its serial twin, for the duration."""
    saved = K._col2im
    K._col2im = K._col2im_serial
    try:
        yield
    finally:
        K._col2im = saved


def _serial(run):
    def wrapped():
        with _serial_kernels():
            return run()

    return wrapped


def boundscheck_cases():
    cases = [(f"conv{k}", _case(cfg, k)) for k, cfg in enumerate(CONFIGS)]
    cases += [(f"conv{k}-serial", _serial(_case(cfg, k))) for k, cfg in enumerate(CONFIGS)]
    return cases
