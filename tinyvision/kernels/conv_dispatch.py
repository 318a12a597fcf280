"""The one dispatch point of each convolution kernel: NumPy arrays go to ``kernels/cpu/conv.py``
(Numba), CuPy arrays to ``kernels/gpu/conv.py``; ``impl="reference"`` picks the plain-loop kernel.

Every function takes raw arrays and normalised options — pairs of ints ``stride = (SH, SW)``,
``padding = (PH, PW)`` (top/left padding), ``dilation = (DH, DW)`` and the size of the other
side (``out_size = (OH, OW)`` or ``in_size = (H, W)``) — and checks that the arrays' shapes fit
together before any kernel runs, so that a kernel never indexes outside an array. The
user-facing checks with PyTorch's rules (kernel larger than the padded input, output_padding,
'same' padding...) live in :mod:`tinyvision.functional.conv`.

On the CPU, the fast kernels choose their algorithm per call (one place,
``kernels/cpu/conv.py::_use_winograd``): Winograd (``kernels/cpu/winograd.py``) for 3x3,
stride-1, dilation-1, ungrouped convolutions with >= 4 input channels and outputs >= 12x12,
im2col + GEMM otherwise (per image, or one GEMM for the whole batch when the maps are small).

* ``conv2d_forward(x, w, ...)       -> y   (N, F, OH, OW)``  (no bias)
* ``conv2d_grad_input(gy, w, ...)   -> gx  (N, C, H, W)``    (= conv_transpose2d's forward)
* ``conv2d_grad_weight(x, gy, ...)  -> gw  (F, C/G, KH, KW)``

An empty batch (N = 0) returns the empty output (or a zero weight gradient) without running a
kernel, as PyTorch does.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module

__all__ = ["conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight", "IMPLS"]

IMPLS = ("fast", "reference")


def _module(impl, *arrays):
    """The kernel module for these arrays and this implementation."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    xp = get_array_module(*arrays)
    if xp is np:
        from .cpu import conv

        return conv, False
    if impl == "reference":
        # The reference is the CPU loops: run them on host copies (for checking the GPU path).
        from .cpu import conv

        return conv, True
    from .gpu import conv

    return conv, False


def _on_host(fn, to_cpu, *arrays):
    if not to_cpu:
        return fn(*arrays)
    xp = get_array_module(*arrays)
    out = fn(*[a.get() for a in arrays])
    return xp.asarray(out)


def _pair(name, v):
    v = tuple(int(t) for t in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be a pair (H, W), got {v}")
    return v


def _check_common(what, big, w, stride, padding, dilation, groups, small_size, big_size):
    """Shapes of the image side (N, C, H, W), weight (F, C/G, KH, KW) and output side (OH, OW)."""
    stride, padding, dilation = _pair("stride", stride), _pair("padding", padding), _pair("dilation", dilation)
    if big.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{what}: expected 4-D arrays, got shapes {tuple(big.shape)} and weight {tuple(w.shape)}")
    if big.dtype != w.dtype or big.dtype not in (np.float32, np.float64):
        raise ValueError(f"{what}: arrays must share one dtype, float32 or float64; got {big.dtype} and {w.dtype}")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or int(groups) < 1:
        raise ValueError(f"{what}: need stride >= 1, dilation >= 1, padding >= 0, groups >= 1; got "
                         f"stride={stride}, padding={padding}, dilation={dilation}, groups={groups}")
    if min(small_size) < 1 or min(big_size) < 1:
        raise ValueError(f"{what}: empty spatial size: {tuple(big_size)} -> {tuple(small_size)}")
    return stride, padding, dilation, int(groups)


def conv2d_forward(x, w, stride, padding, dilation, groups, out_size, impl="fast"):
    """y[n,f,i,j] = sum_{c,u,v} w[f,c,u,v] x[n, g*Cg+c, i*SH+u*DH-PH, j*SW+v*DW-PW] (no bias)."""
    out_size = _pair("out_size", out_size)
    stride, padding, dilation, groups = _check_common(
        "conv2d_forward", x, w, stride, padding, dilation, groups, out_size, x.shape[2:])
    if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
        raise ValueError(f"conv2d_forward: x {tuple(x.shape)} and weight {tuple(w.shape)} do not fit groups={groups}")
    if x.shape[0] == 0:  # empty batch: an empty output, as in PyTorch (no kernel runs)
        return get_array_module(x, w).zeros((0, w.shape[0]) + out_size, dtype=x.dtype)
    mod, to_cpu = _module(impl, x, w)
    fn = mod.conv2d_forward_reference if impl == "reference" else mod.conv2d_forward
    return _on_host(lambda a, b: fn(a, b, stride, padding, dilation, groups, out_size), to_cpu, x, w)


def conv2d_grad_input(gy, w, stride, padding, dilation, groups, in_size, impl="fast"):
    """gx (N, C, H, W): the adjoint of conv2d_forward in x (conv_transpose2d's forward)."""
    in_size = _pair("in_size", in_size)
    stride, padding, dilation, groups = _check_common(
        "conv2d_grad_input", gy, w, stride, padding, dilation, groups, gy.shape[2:], in_size)
    if gy.shape[1] != w.shape[0] or w.shape[0] % groups:
        raise ValueError(f"conv2d_grad_input: gy {tuple(gy.shape)} and weight {tuple(w.shape)} do not fit groups={groups}")
    if gy.shape[0] == 0:  # empty batch
        xp = get_array_module(gy, w)
        return xp.zeros((0, w.shape[1] * groups) + in_size, dtype=gy.dtype)
    mod, to_cpu = _module(impl, gy, w)
    fn = mod.conv2d_grad_input_reference if impl == "reference" else mod.conv2d_grad_input
    return _on_host(lambda a, b: fn(a, b, stride, padding, dilation, groups, in_size), to_cpu, gy, w)


def conv2d_grad_weight(x, gy, stride, padding, dilation, groups, kernel_size, impl="fast"):
    """gw[f,c,u,v] = sum_{n,i,j} gy[n,f,i,j] x[n, g*Cg+c, i*SH+u*DH-PH, j*SW+v*DW-PW]."""
    kernel_size = _pair("kernel_size", kernel_size)
    if gy.ndim != 4 or x.ndim != 4 or gy.dtype != x.dtype:
        raise ValueError(f"conv2d_grad_weight: need 4-D x and gy of one dtype, got x {tuple(x.shape)} "
                         f"{x.dtype} and gy {tuple(gy.shape)} {gy.dtype}")
    # Check with a stand-in weight shape (F, C/G, KH, KW); the kernel writes only that shape.
    groups = int(groups)
    stride, padding, dilation, groups = _check_common(
        "conv2d_grad_weight", x, np.empty((0, 0, 0, 0), x.dtype), stride, padding, dilation, groups,
        gy.shape[2:], x.shape[2:])
    if gy.shape[0] != x.shape[0] or x.shape[1] % groups or gy.shape[1] % groups or min(kernel_size) < 1:
        raise ValueError(f"conv2d_grad_weight: x {tuple(x.shape)}, gy {tuple(gy.shape)}, kernel {kernel_size} "
                         f"do not fit groups={groups}")
    if x.shape[0] == 0:  # empty batch: nothing to sum, gw = 0
        xp = get_array_module(x, gy)
        return xp.zeros((gy.shape[1], x.shape[1] // groups) + kernel_size, dtype=x.dtype)
    mod, to_cpu = _module(impl, x, gy)
    fn = mod.conv2d_grad_weight_reference if impl == "reference" else mod.conv2d_grad_weight
    return _on_host(lambda a, b: fn(a, b, stride, padding, dilation, groups, kernel_size), to_cpu, x, gy)
