"""Bounds-check cases for the convolution kernels (see boundscheck_runner.py).

Every Numba kernel of kernels/cpu/conv.py — the three reference loops, im2col and col2im
through the three fast drivers (whole batches, batch chunks and row bands) — on odd
geometries: strides larger than the kernel, padding larger than the kernel, dilation,
groups, asymmetric kernels, output rows that lie entirely in the padding, sizes not
multiples of the stride. float64 only (bounds do not depend on the dtype).

Numba may drop bounds checks inside a ``prange`` body (seen with Numba 0.68), so the parallel
kernels (im2col, col2im) are also run as serial copies — the same Python source compiled with
``parallel=False`` — in the "-serial" cases.
"""
import contextlib

import numpy as np
from numba import njit

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
    opts = (st, pd, dl, G)

    def run():
        out = [
            K.conv2d_forward_reference(x, w, *opts, (OH, OW)),
            K.conv2d_grad_input_reference(gy, w, *opts, (H, W)),
            K.conv2d_grad_weight_reference(x, gy, *opts, ks),
            K.im2col(x, ks, st, pd, dl, (OH, OW)),
            K.col2im(K.im2col(x, ks, st, pd, dl, (OH, OW)), x.shape, ks, st, pd, dl, (OH, OW)),
        ]
        # Whole batch, one image per chunk, and bands of one output row (tiny workspaces).
        for ws in (None, C * ks[0] * ks[1] * OH * OW * 8, 1):
            out += [
                K.conv2d_forward(x, w, *opts, (OH, OW), ws),
                K.conv2d_grad_input(gy, w, *opts, (H, W), ws),
                K.conv2d_grad_weight(x, gy, *opts, ks, ws),
            ]
        return tuple(out)

    return run


@contextlib.contextmanager
def _serial_kernels():
    """Swap K._im2col / K._col2im for serial builds of the same source, for the duration."""
    saved = K._im2col, K._col2im
    K._im2col = njit(parallel=False)(saved[0].py_func)
    K._col2im = njit(parallel=False)(saved[1].py_func)
    try:
        yield
    finally:
        K._im2col, K._col2im = saved


def _serial(run):
    def wrapped():
        with _serial_kernels():
            return run()

    return wrapped


def boundscheck_cases():
    cases = [(f"conv{k}", _case(cfg, k)) for k, cfg in enumerate(CONFIGS)]
    cases += [(f"conv{k}-serial", _serial(_case(cfg, k))) for k, cfg in enumerate(CONFIGS)]
    return cases
