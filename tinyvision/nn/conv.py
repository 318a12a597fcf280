"""Convolution layers: ``Conv2d`` and ``ConvTranspose2d``, with PyTorch's arguments, default
initialisation and state_dict keys (``weight``, ``bias``).

Initialisation (PyTorch's ``_ConvNd.reset_parameters``): ``kaiming_uniform_(weight, a=sqrt(5))``,
which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
where fan_in = weight.shape[1] * KH * KW. For Conv2d that is C_in/groups * KH * KW; for
ConvTranspose2d, whose weight is (C_in, C_out/groups, KH, KW), PyTorch's formula gives
C_out/groups * KH * KW — kept here for parity.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._args import int_pair
from . import init
from .module import Module, Parameter

__all__ = ["Conv2d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _int(name, value, minimum):
    """An integer argument >= ``minimum``, or an error naming it (1.5 is refused, not truncated)."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


class _ConvNd(Module):
    def _make_parameters(self, weight_shape, out_channels, bias, dtype):
        self.weight = Parameter(np.empty(weight_shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def extra_repr(self):
        """PyTorch's repr: the non-default options only."""
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if getattr(self, "padding_mode", "zeros") != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    @staticmethod
    def _check_channels(in_channels, out_channels, groups):
        _int("in_channels", in_channels, 0)
        _int("out_channels", out_channels, 0)
        _int("groups", groups, 1)
        if groups < 1:
            raise ValueError(f"groups must be a positive integer, got {groups}")
        if in_channels % groups:
            raise ValueError(f"in_channels={in_channels} must be divisible by groups={groups}")
        if out_channels % groups:
            raise ValueError(f"out_channels={out_channels} must be divisible by groups={groups}")


class Conv2d(_ConvNd):
    """2-D convolution layer: y = conv2d(x, weight, bias) (see :func:`tinyvision.functional.conv2d`).

    Shapes: x (N, C_in, H, W) -> y (N, C_out, OH, OW); weight (C_out, C_in/groups, KH, KW), bias (C_out,).
    ``padding_mode`` 'zeros' (default) pads inside the convolution; 'reflect', 'replicate' and
    'circular' pad the input first with :func:`tinyvision.functional.pad`, as PyTorch does.

    >>> import numpy as np, tinyvision as tv
    >>> from tinyvision import nn
    >>> conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    >>> conv(tv.tensor(np.zeros((2, 3, 16, 16), np.float32))).shape
    (2, 8, 16, 16)
    >>> list(conv.state_dict())
    ['weight', 'bias']
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__()
        self._check_channels(in_channels, out_channels, groups)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        where = type(self).__name__  # errors name the layer
        self.kernel_size = int_pair("kernel_size", kernel_size, minimum=1, where=where)
        self.stride = int_pair("stride", stride, minimum=1, where=where)
        self.dilation = int_pair("dilation", dilation, minimum=1, where=where)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"padding must be an int, a pair, 'valid' or 'same'; got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = int_pair("padding", padding, minimum=0, where=where)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self._make_parameters((out_channels, in_channels // groups) + self.kernel_size, out_channels, bias, dtype)

    def _explicit_padding(self):
        """F.pad's (left, right, top, bottom) for the non-zero padding modes."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            pads = []
            for d, k in zip(self.dilation[::-1], self.kernel_size[::-1]):  # width first
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        ph, pw = self.padding
        return (pw, pw, ph, ph)

    def forward(self, x):
        if self.padding_mode != "zeros":
            x = F.pad(x, self._explicit_padding(), mode=self.padding_mode)
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution layer (see :func:`tinyvision.functional.conv_transpose2d`).

    Shapes: x (N, C_in, H, W) -> y (N, C_out, OH, OW); weight (C_in, C_out/groups, KH, KW), bias (C_out,),
    OH = (H - 1)*SH - 2*PH + DH*(KH - 1) + output_padding_h + 1.
    ``forward(x, output_size=None)``: as in PyTorch, an ``output_size`` (the last two entries
    are (OH, OW)) chooses the output_padding that gives that size.

    >>> import numpy as np, tinyvision as tv
    >>> from tinyvision import nn
    >>> up = nn.ConvTranspose2d(8, 4, kernel_size=2, stride=2)
    >>> up(tv.tensor(np.zeros((1, 8, 5, 5), np.float32))).shape
    (1, 4, 10, 10)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", dtype=np.float32):
        super().__init__()
        self._check_channels(in_channels, out_channels, groups)
        if padding_mode != "zeros":
            raise ValueError(f"only 'zeros' padding_mode is supported for ConvTranspose2d (as PyTorch), got {padding_mode!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        where = type(self).__name__  # errors name the layer
        self.kernel_size = int_pair("kernel_size", kernel_size, minimum=1, where=where)
        self.stride = int_pair("stride", stride, minimum=1, where=where)
        self.padding = int_pair("padding", padding, minimum=0, where=where)
        self.output_padding = int_pair("output_padding", output_padding, minimum=0, where=where)
        self.dilation = int_pair("dilation", dilation, minimum=1, where=where)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self._make_parameters((in_channels, out_channels // groups) + self.kernel_size, out_channels, bias, dtype)

    def _output_padding(self, x, output_size):
        if output_size is None:
            return self.output_padding
        size = tuple(int(s) for s in output_size)[-2:]
        if len(size) != 2:
            raise ValueError(f"output_size must end with (OH, OW), got {output_size!r}")
        pads = []
        for k in range(2):
            smallest = ((x.shape[2 + k] - 1) * self.stride[k] - 2 * self.padding[k]
                        + self.dilation[k] * (self.kernel_size[k] - 1) + 1)
            largest = smallest + self.stride[k] - 1
            if not smallest <= size[k] <= largest:
                raise ValueError(
                    f"requested output size {size} is not reachable from input shape {tuple(x.shape)}: "
                    f"dim {k} must lie in [{smallest}, {largest}]"
                )
            pads.append(size[k] - smallest)
        return tuple(pads)

    def forward(self, x, output_size=None):
        op = self._output_padding(x, output_size)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, op, self.groups, self.dilation)

