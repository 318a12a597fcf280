"""Bounds-check cases for the pooling and resampling kernels (see boundscheck_runner.py).

Every Numba kernel of kernels/cpu/pool.py (max and average, forward and backward) on odd
geometries: dilation, ceil_mode windows clipped at the right edge, padding, strides larger
than the kernel, empty dilated windows (whose index points outside the plane: backward must
skip it), adaptive windows of varying size. float64 only (bounds do not depend on dtype).
"""
import numpy as np

from tinyvision.functional import pooling as P
from tinyvision.kernels.cpu import pool as K

# (N, C, H, W, (KH, KW), (SH, SW), (PH, PW), (DH, DW), ceil_mode)
CONFIGS = [
    (2, 3, 7, 9, (3, 2), (2, 1), (1, 1), (1, 2), True),
    (1, 2, 5, 4, (2, 2), (3, 3), (1, 0), (1, 1), True),
    (1, 2, 2, 2, (2, 2), (1, 1), (1, 1), (3, 3), False),  # empty windows
    (2, 1, 1, 7, (2, 2), (1, 3), (1, 0), (2, 1), True),   # empty rows, index past the plane
    (1, 1, 6, 6, (4, 4), (1, 1), (2, 2), (1, 1), True),
]
ADAPTIVE = [(5, 7, 3, 4), (4, 4, 7, 9), (1, 6, 1, 4)]


def _pool_case(cfg, seed):
    N, C, H, W, k, s, p, d, ceil_mode = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    OH = P._pool_output_size(H, k[0], s[0], p[0], d[0], ceil_mode)
    OW = P._pool_output_size(W, k[1], s[1], p[1], d[1], ceil_mode)
    max_tables = P._max_windows(H, OH, k[0], s[0], p[0], d[0]) + P._max_windows(W, OW, k[1], s[1], p[1], d[1])
    hs, hc, hp = P._avg_windows(H, OH, k[0], s[0], p[0])
    ws, wc, wp = P._avg_windows(W, OW, k[1], s[1], p[1])
    divisor = np.maximum(np.outer(hp, wp), 1).astype(np.float64)
    gy = rng.standard_normal((N, C, OH, OW))

    def run():
        y, i = K.max_pool2d_forward(x, *max_tables, *d)
        out = [y, i, K.max_pool2d_backward(gy, i, H, W)]
        if d == (1, 1):
            out += [K.avg_pool2d_forward(x, hs, hc, ws, wc, divisor),
                    K.avg_pool2d_backward(gy, hs, hc, ws, wc, divisor, H, W)]
        return tuple(out)

    return run


def _adaptive_case(cfg, seed):
    H, W, OH, OW = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, H, W))
    tables = P._adaptive_windows(H, OH) + P._adaptive_windows(W, OW)
    divisor = np.outer(tables[1], tables[3]).astype(np.float64)
    gy = rng.standard_normal((2, 2, OH, OW))

    def run():
        y, i = K.max_pool2d_forward(x, *tables)
        return (y, i, K.max_pool2d_backward(gy, i, H, W), K.avg_pool2d_forward(x, *tables, divisor),
                K.avg_pool2d_backward(gy, *tables, divisor, H, W))

    return run


def boundscheck_cases():
    return ([(f"pool{k}", _pool_case(cfg, k)) for k, cfg in enumerate(CONFIGS)]
            + [(f"adaptive_pool{k}", _adaptive_case(cfg, k)) for k, cfg in enumerate(ADAPTIVE)]
            + _resample_cases())


def _resample_cases():
    from tinyvision.functional import resample as R
    from tinyvision.kernels.cpu import resample as KR

    cases = []
    for k, (H, W, OH, OW) in enumerate([(3, 5, 7, 2), (1, 4, 5, 9), (6, 6, 6, 13)]):
        rng = np.random.default_rng(k)
        taps = (R._linear_taps(H, OH, None, False, np.float64), R._linear_taps(W, OW, None, True, np.float64))
        h_index, h_weight = (np.stack(a) for a in zip(*taps[0]))
        w_index, w_weight = (np.stack(a) for a in zip(*taps[1]))
        gy = rng.standard_normal((2, 2, OH, OW))
        cases.append((f"resample{k}", lambda gy=gy, a=(h_index, h_weight, w_index, w_weight), H=H, W=W:
                      KR.resample2d_backward(gy, *a, H, W)))
    return cases
