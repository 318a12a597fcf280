"""The one dispatch point of each convolution kernel: NumPy arrays go to ``kernels/cpu/conv.py``
(Numba), CuPy arrays to ``kernels/gpu/conv.py``; ``impl="reference"`` picks the plain-loop kernel.

Every function takes raw arrays and one :class:`~tinyvision.kernels.conv_geometry.ConvGeometry`
(stride, padding, dilation, groups, kernel_size, image_size (H, W), map_size (OH, OW)), built
and validated once by :mod:`tinyvision.functional.conv` with PyTorch's rules (kernel larger
than the padded input, output_padding, 'same' padding...). Here only a safety net runs, for
whoever calls this layer directly: the arrays must be 4-D floats of one dtype whose shapes are
the ones the geometry describes (:func:`_check_fit`), so that a Numba kernel never indexes
outside an array.

On the CPU, the fast kernels choose their algorithm per call (one place,
``kernels/cpu/conv.py::_use_winograd``): Winograd (``kernels/cpu/winograd.py``) for 3x3,
stride-1, dilation-1, ungrouped convolutions with >= 4 input channels and outputs >= 12x12
(forward pass and input gradient also on 4x4 to 11x11 outputs of a large enough batch: ``_use_winograd_forward``),
im2col + GEMM otherwise (per image, or one GEMM for the whole batch when the maps are small).

* ``conv2d_forward(x, w, geometry)       -> y   (N, F, OH, OW)``  (no bias)
* ``conv2d_grad_input(gy, w, geometry)   -> gx  (N, C, H, W)``    (= conv_transpose2d's forward)
* ``conv2d_grad_weight(x, gy, geometry)  -> gw  (F, C/G, KH, KW)``

>>> import numpy as np
>>> g = ConvGeometry(stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1,
...                  kernel_size=(3, 3), image_size=(8, 8), map_size=(8, 8))
>>> conv2d_forward(np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3)), g).shape
(2, 4, 8, 8)

An empty batch (N = 0) returns the empty output (or a zero weight gradient) without running a
kernel, as PyTorch does.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .conv_geometry import ConvGeometry

__all__ = ["ConvGeometry", "conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight", "IMPLS"]

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


def _check_fit(fn, geometry, x=None, w=None, gy=None):
    """The safety net: x (N, C, H, W), w (F, C/G, KH, KW) and gy (N, F, OH, OW), those given, are
    4-D arrays of one float dtype with the shapes ``geometry`` describes; the geometry is sane
    (stride, dilation, groups, sizes >= 1, padding >= 0). Not a second validation of the user's
    arguments (F.conv2d did that, with PyTorch's messages): just enough that no kernel indexes
    outside an array. Raises ValueError naming ``fn``, the shapes and the geometry."""
    if not isinstance(geometry, ConvGeometry):
        raise TypeError(f"{fn}: geometry must be a ConvGeometry, got {geometry!r}")
    arrays = {name: a for name, a in (("x", x), ("weight", w), ("gy", gy)) if a is not None}
    shapes = ", ".join(f"{name} {tuple(a.shape)}" for name, a in arrays.items())

    def fail(why):
        raise ValueError(f"{fn}: {why}; got {shapes} ({', '.join(f'{a.dtype}' for a in arrays.values())}) "
                         f"for {geometry}")

    g = geometry
    pairs = (g.stride, g.dilation, g.kernel_size, g.image_size, g.map_size, g.padding)
    if not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        fail("every size in the geometry must be a pair (height, width)")
    if (min(*g.stride, *g.dilation, *g.kernel_size, *g.image_size, *g.map_size) < 1
            or min(g.padding) < 0 or g.groups < 1):
        fail("the geometry needs stride, dilation, kernel, image and map sizes >= 1, padding >= 0, groups >= 1")
    if any(a.ndim != 4 for a in arrays.values()):
        fail("expected 4-D arrays")
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) != 1 or dtypes.pop() not in (np.float32, np.float64):
        fail("the arrays must share one dtype, float32 or float64")
    G = g.groups
    if x is not None and tuple(x.shape[2:]) != tuple(g.image_size):
        fail(f"x's height and width must be image_size {tuple(g.image_size)}")
    if gy is not None and tuple(gy.shape[2:]) != tuple(g.map_size):
        fail(f"gy's height and width must be map_size {tuple(g.map_size)}")
    if w is not None:
        if tuple(w.shape[2:]) != tuple(g.kernel_size) or w.shape[0] % G:
            fail(f"the weight must be (F, C/G, KH, KW) with KH, KW = {tuple(g.kernel_size)} and F divisible by G={G}")
        if x is not None and x.shape[1] != w.shape[1] * G:
            fail(f"x's channels must be the weight's C/G={w.shape[1]} times G={G}")
        if gy is not None and gy.shape[1] != w.shape[0]:
            fail(f"gy's channels must be the weight's F={w.shape[0]}")
    if x is not None and gy is not None and (x.shape[0] != gy.shape[0] or x.shape[1] % G or gy.shape[1] % G):
        fail(f"x and gy must have the same batch size and channels divisible by G={G}")


def conv2d_forward(x, w, geometry, impl="fast"):
    """y[n,f,i,j] = sum_{c,u,v} w[f,c,u,v] x[n, g*Cg+c, i*SH+u*DH-PH, j*SW+v*DW-PW] (no bias)."""
    _check_fit("conv2d_forward", geometry, x=x, w=w)
    if x.shape[0] == 0:  # empty batch: an empty output, as in PyTorch (no kernel runs)
        return get_array_module(x, w).zeros((0, w.shape[0]) + tuple(geometry.map_size), dtype=x.dtype)
    mod, to_cpu = _module(impl, x, w)
    fn = mod.conv2d_forward_reference if impl == "reference" else mod.conv2d_forward
    return _on_host(lambda a, b: fn(a, b, geometry), to_cpu, x, w)


def conv2d_grad_input(gy, w, geometry, impl="fast"):
    """gx (N, C, H, W): the adjoint of conv2d_forward in x (conv_transpose2d's forward)."""
    _check_fit("conv2d_grad_input", geometry, w=w, gy=gy)
    if gy.shape[0] == 0:  # empty batch
        xp = get_array_module(gy, w)
        return xp.zeros((0, w.shape[1] * geometry.groups) + tuple(geometry.image_size), dtype=gy.dtype)
    mod, to_cpu = _module(impl, gy, w)
    fn = mod.conv2d_grad_input_reference if impl == "reference" else mod.conv2d_grad_input
    return _on_host(lambda a, b: fn(a, b, geometry), to_cpu, gy, w)


def conv2d_grad_weight(x, gy, geometry, impl="fast"):
    """gw[f,c,u,v] = sum_{n,i,j} gy[n,f,i,j] x[n, g*Cg+c, i*SH+u*DH-PH, j*SW+v*DW-PW]."""
    _check_fit("conv2d_grad_weight", geometry, x=x, gy=gy)
    if x.shape[0] == 0:  # empty batch: nothing to sum, gw = 0
        xp = get_array_module(x, gy)
        return xp.zeros((gy.shape[1], x.shape[1] // geometry.groups) + tuple(geometry.kernel_size), dtype=x.dtype)
    mod, to_cpu = _module(impl, x, gy)
    fn = mod.conv2d_grad_weight_reference if impl == "reference" else mod.conv2d_grad_weight
    return _on_host(lambda a, b: fn(a, b, geometry), to_cpu, x, gy)
