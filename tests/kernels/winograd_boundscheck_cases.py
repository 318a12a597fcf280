"""Bounds-check cases for the Winograd kernels of kernels/cpu/winograd.py (see boundscheck_runner.py).

The input and output transforms of F(2x2, 3x3) and the gy transform of the F(3x3, 2x2)
weight gradient on odd geometries: output
sizes that are not multiples of the tile size (ragged last tiles, cropped), padding 0/1/2 and
larger than the kernel reach, single rows/columns of tiles, whole-image chunks, bands of one
tile row (tiny workspace), one image (bands split between threads) and several. The kernels
are serial (no prange), so the checked build covers them as they run. float64 only.
"""
import numpy as np

from tinyvision.kernels.conv_geometry import ConvGeometry
from tinyvision.kernels.cpu import winograd as WG

# (N, C, H, W, F, (PH, PW), (OH, OW) or None for the full output)
CONFIGS = [
    (2, 3, 7, 9, 4, (1, 1), None),
    (1, 2, 5, 4, 3, (0, 0), None),
    (3, 1, 3, 8, 2, (2, 2), None),
    (1, 4, 13, 6, 5, (0, 2), None),
    (2, 2, 6, 5, 2, (4, 3), None),        # padding beyond the kernel's reach: rows of zeros
    (2, 3, 9, 9, 2, (1, 1), (8, 7)),      # output smaller than the full one (bottom/right crop)
]


def _case(cfg, seed):
    N, C, H, W, F, (PH, PW), osz = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, 3, 3))
    osz = osz or (H + 2 * PH - 2, W + 2 * PW - 2)
    gy = rng.standard_normal((N, F) + tuple(osz))
    g = ConvGeometry(stride=(1, 1), padding=(PH, PW), dilation=(1, 1), groups=1, kernel_size=(3, 3),
                     image_size=(H, W), map_size=tuple(osz))

    def run():
        out = []
        for ws in (None, 1):
            out.append(WG.winograd_conv3x3(x, w, g, ws))
            out.append(WG.winograd_conv3x3_grad_weight(x, gy, g, ws))
        return tuple(out)

    return run


def boundscheck_cases():
    return [(f"winograd{k}", _case(cfg, k)) for k, cfg in enumerate(CONFIGS)]
