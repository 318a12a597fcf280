r"""The geometry of one 2-D convolution, carried as one value from the argument check to the kernel.

:func:`tinyvision.functional.conv2d` and :func:`~tinyvision.functional.conv_transpose2d` check
the user's arguments once (PyTorch's rules, PyTorch's error messages) and build a
:class:`ConvGeometry`; the autograd Function stores it; the dispatch point
(:mod:`tinyvision.kernels.conv_dispatch`) and every kernel take it as it is. One geometry serves
all three kernels of a convolution and the transposed convolution built on them, because it
names the two sides of the conv2d sum rather than "input" and "output"::

    image side  x, gx   (N, C, H, W)       H, W   = image_size
    map side    y, gy   (N, F, OH, OW)     OH, OW = map_size
    weight      w, gw   (F, C/G, KH, KW)   KH, KW = kernel_size

    y[n,f,i,j] = sum_{c<C/G, u<KH, v<KW} w[f,c,u,v] * x[n, g*C/G + c, i*SH + u*DH - PH, j*SW + v*DW - PW]

=======================  ===================================  ==================================
kernel                   reads                                writes
=======================  ===================================  ==================================
conv2d_forward           x (image side), w                    y (map side)
conv2d_grad_input        gy (map side), w                     gx (image side)
conv2d_grad_weight       x (image side), gy (map side)        gw (F, C/G, KH, KW)
=======================  ===================================  ==================================

A transposed convolution *is* conv2d_grad_input, so its geometry is that of the underlying
conv2d: its input is the map side and its output the image side (``image_size`` is the
transposed convolution's output size).

The sizes, for a conv2d with symmetric padding (PyTorch's formula)::

    OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1          OW likewise

``map_size`` is stored rather than recomputed, because it need not follow from that formula:
``padding='same'`` with an even kernel pads one more row at the bottom than ``PH`` (the
bottom/right padding is implied by OH/OW), and a transposed convolution's ``output_padding``
picks one of the image sizes that map to the same OH. The kernels handle any consistent
(image_size, map_size): a tap that falls outside the image reads, or writes, nothing.

>>> g = ConvGeometry(stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=1,
...                  kernel_size=(3, 3), image_size=(8, 8), map_size=(4, 4))
>>> g.map_size == conv_output_size(g.image_size, g.kernel_size, g.stride, g.padding, g.dilation)
True
>>> g.kernel_extent                      # rows and columns one window spans: DH*(KH-1) + 1
(3, 3)
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["ConvGeometry", "conv_output_size"]


class ConvGeometry(NamedTuple):
    """One conv2d, in the project's letters (all pairs are (height, width) of Python ints).

    stride (SH, SW); padding (PH, PW), the top/left zero padding; dilation (DH, DW); groups G;
    kernel_size (KH, KW); image_size (H, W), the x / gx side; map_size (OH, OW), the y / gy side.
    """

    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    kernel_size: tuple[int, int]
    image_size: tuple[int, int]
    map_size: tuple[int, int]

    @property
    def kernel_extent(self):
        """(DH*(KH-1) + 1, DW*(KW-1) + 1): the rows and columns of the image one window spans."""
        (KH, KW), (DH, DW) = self.kernel_size, self.dilation
        return (DH * (KH - 1) + 1, DW * (KW - 1) + 1)

    @property
    def is_pointwise(self):
        """1x1 kernel, stride 1, no padding: y is a matrix product per pixel (dilation is irrelevant)."""
        return tuple(self.kernel_size) == (1, 1) and tuple(self.stride) == (1, 1) and tuple(self.padding) == (0, 0)


def conv_output_size(image_size, kernel_size, stride, padding, dilation):
    """(OH, OW) = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1, and OW likewise.

    >>> conv_output_size((7, 7), (3, 3), (2, 2), (1, 1), (1, 1))
    (4, 4)
    """
    return tuple((size + 2 * p - d * (k - 1) - 1) // s + 1
                 for size, k, s, p, d in zip(image_size, kernel_size, stride, padding, dilation))
