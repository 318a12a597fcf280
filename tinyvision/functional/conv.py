r"""2-D convolution and transposed convolution, PyTorch's semantics and layouts.

Notation (the project's letters)::

    N batch   C input channels   H W input height/width     G groups, Cg = C/G, Fg = F/G
    F output channels            KH KW kernel size          SH SW stride   PH PW padding   DH DW dilation
    OH OW output height/width    g = f // Fg, the group of output channel f

Convolution (cross-correlation, as every deep-learning framework computes it)::

    y[n,f,i,j] = b[f] + sum_{c<Cg, u<KH, v<KW} w[f,c,u,v] * x[n, g*Cg + c, i*SH + u*DH - PH, j*SW + v*DW - PW]

with x read as 0 outside the image (zero padding), and::

    OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1       OW likewise.

Every gradient is the same sum read backwards (gy = dL/dy):

* ``gb[f]       = sum_{n,i,j} gy[n,f,i,j]``                       (b is added to every y[n,f,i,j])
* ``gw[f,c,u,v] = sum_{n,i,j} gy[n,f,i,j] * x[n, g*Cg+c, i*SH+u*DH-PH, j*SW+v*DW-PW]``
                                                                  (w[f,c,u,v] multiplies exactly those x)
* ``gx[n,g*Cg+c,h,w'] = sum over (f in group g, u, v, i, j) with h = i*SH+u*DH-PH, w' = j*SW+v*DW-PW
  of gy[n,f,i,j] * w[f,c,u,v]``                                   (each x feeds every y whose window covers it)

The transposed convolution is defined *as* the input gradient of a convolution: its forward
pass is ``gx`` above with x in the role of gy, and its input gradient is a convolution. So the
three kernels (:mod:`tinyvision.kernels.conv_dispatch`) serve both ops, each called with the
one :class:`~tinyvision.kernels.conv_geometry.ConvGeometry` that the public function built
after checking its arguments (for conv_transpose2d, the geometry of the underlying conv2d: its
``image_size`` is the transposed convolution's output, its ``map_size`` the input):

=====================  ==============================  ==========================================
                       conv2d                          conv_transpose2d
=====================  ==============================  ==========================================
forward                conv2d_forward(x, w)            conv2d_grad_input(x, w)
gx                     conv2d_grad_input(gy, w)        conv2d_forward(gy, w)
gw                     conv2d_grad_weight(x, gy)       conv2d_grad_weight(gy, x)
=====================  ==============================  ==========================================
"""
from __future__ import annotations

import numbers

import numpy as np

from .._args import int_pair
from ..autograd import Function, Tensor, _to_data
from ..kernels import conv_dispatch as K
from ..kernels.conv_geometry import ConvGeometry
from ..kernels.dispatch import kernel

__all__ = ["conv2d", "conv_transpose2d"]


# --------------------------------------------------------------------------------------
# Argument checks (all before any kernel runs)
# --------------------------------------------------------------------------------------
def _array(t):
    """The array behind a Tensor; other input converted as Function.__call__ will convert it."""
    if t is None or isinstance(t, Tensor):
        return None if t is None else t.data
    return t if hasattr(t, "ndim") and hasattr(t, "dtype") else _to_data(t)


def _check_arrays(op, x, w, b, weight_layout):
    """x (N, C, H, W) and w 4-D floats of one dtype; b 1-D of that dtype or None."""
    if getattr(x, "ndim", None) != 4:
        raise ValueError(
            f"{op}: input must be 4-D (N, C, H, W), got shape {tuple(getattr(x, 'shape', ()))} "
            "(for a single image use x[None])"
        )
    if getattr(w, "ndim", None) != 4:
        raise ValueError(f"{op}: weight must be 4-D {weight_layout}, got shape {tuple(getattr(w, 'shape', ()))}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: input must be float32 or float64, got {x.dtype} (shape {tuple(x.shape)})")
    if w.dtype != x.dtype:
        raise ValueError(
            f"{op}: input (shape {tuple(x.shape)}, {x.dtype}) and weight (shape {tuple(w.shape)}, "
            f"{w.dtype}) must have the same dtype"
        )
    if min(x.shape[2:]) < 1:
        raise ValueError(f"{op}: input height and width must be >= 1, got input shape {tuple(x.shape)}")
    if x.shape[1] < 1 or min(w.shape) < 1:
        # (PyTorch rejects an empty weight too; an empty batch N = 0 is fine and gives an empty output.)
        raise ValueError(
            f"{op}: input channels and every weight dimension must be >= 1; got input shape "
            f"{tuple(x.shape)} and weight shape {tuple(w.shape)} {weight_layout}"
        )
    if b is not None and b.dtype != x.dtype:
        raise ValueError(
            f"{op}: input ({x.dtype}) and bias (shape {tuple(b.shape)}, {b.dtype}) must have the same dtype"
        )


def _check_options(op, stride, dilation, groups, padding):
    if min(stride) < 1:
        raise ValueError(f"{op}: stride must be >= 1, got {stride}")
    if min(dilation) < 1:
        raise ValueError(f"{op}: dilation must be >= 1, got {dilation}")
    if min(padding) < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {padding}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")


def _check_bias(op, b, channels):
    if b is not None and tuple(b.shape) != (channels,):
        raise ValueError(f"{op}: bias must have shape ({channels},) (one per output channel), got {tuple(b.shape)}")


def _conv2d_geometry(x, w, b, stride, padding, dilation, groups):
    """Check conv2d's arguments (the only check they get); return their ConvGeometry.

    Its ``padding`` is the top/left padding; for 'same' with an even kernel the bottom/right
    padding is one more, which only map_size (OH, OW) records."""
    op = "conv2d"
    _check_arrays(op, x, w, b, "(C_out, C_in/groups, KH, KW)")
    stride = int_pair("stride", stride, where=op)
    dilation = int_pair("dilation", dilation, where=op)
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    if isinstance(padding, str):
        if padding == "valid":
            pad_hw = (0, 0)
            total = (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"conv2d: padding='same' is not supported for strided convolutions (stride={stride})")
            # PyTorch's rule: total = D*(K-1); the odd pixel, if any, goes to the bottom/right.
            total = (dilation[0] * (KH - 1), dilation[1] * (KW - 1))
            pad_hw = (total[0] // 2, total[1] // 2)
        else:
            raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same'; got {padding!r}")
    else:
        pad_hw = int_pair("padding", padding, where=op)
        total = (2 * pad_hw[0], 2 * pad_hw[1])
    _check_options(op, stride, dilation, groups, pad_hw)
    if C % groups:
        raise ValueError(f"conv2d: input channels C={C} (input shape {tuple(x.shape)}) are not divisible by groups={groups}")
    if F % groups:
        raise ValueError(f"conv2d: out channels {F} (weight shape {tuple(w.shape)}) are not divisible by groups={groups}")
    if Cg * groups != C:
        raise ValueError(
            f"conv2d: weight of shape {tuple(w.shape)} expects {Cg * groups} input channels "
            f"(C_in/groups={Cg}, groups={groups}), but the input of shape {tuple(x.shape)} has {C}"
        )
    _check_bias(op, b, F)
    ext = (dilation[0] * (KH - 1) + 1, dilation[1] * (KW - 1) + 1)
    if H + total[0] < ext[0] or W + total[1] < ext[1]:
        raise ValueError(
            f"conv2d: kernel {KH}x{KW} with dilation {dilation} spans {ext[0]}x{ext[1]}, larger than the "
            f"padded input {H + total[0]}x{W + total[1]} (input shape {tuple(x.shape)}, padding {padding!r})"
        )
    out = ((H + total[0] - ext[0]) // stride[0] + 1, (W + total[1] - ext[1]) // stride[1] + 1)
    return ConvGeometry(stride=stride, padding=pad_hw, dilation=dilation, groups=int(groups),
                        kernel_size=(KH, KW), image_size=(H, W), map_size=out)


def _conv_transpose2d_geometry(x, w, b, stride, padding, output_padding, groups, dilation):
    """Check conv_transpose2d's arguments (the only check they get); return the ConvGeometry of
    the conv2d whose input gradient this is: image side = this op's output (OH, OW), map side =
    its input (H, W)."""
    op = "conv_transpose2d"
    _check_arrays(op, x, w, b, "(C_in, C_out/groups, KH, KW)")
    stride = int_pair("stride", stride, where=op)
    padding = int_pair("padding", padding, where=op)
    output_padding = int_pair("output_padding", output_padding, where=op)
    dilation = int_pair("dilation", dilation, where=op)
    _check_options(op, stride, dilation, groups, padding)
    N, C, H, W = x.shape
    Cw, Fg, KH, KW = w.shape
    if C % groups:
        raise ValueError(f"conv_transpose2d: input channels C={C} (input shape {tuple(x.shape)}) are not divisible by groups={groups}")
    if Cw != C:
        raise ValueError(
            f"conv_transpose2d: weight of shape {tuple(w.shape)} expects {Cw} input channels "
            f"(layout (C_in, C_out/groups, KH, KW)), but the input of shape {tuple(x.shape)} has {C}"
        )
    for k, name in enumerate("HW"):
        op_k = output_padding[k]
        if op_k < 0 or not (op_k < stride[k] or op_k < dilation[k]):
            raise ValueError(
                f"conv_transpose2d: output_padding must be >= 0 and smaller than either stride or dilation "
                f"(PyTorch's rule); got output_padding={output_padding}, stride={stride}, dilation={dilation}"
            )
    _check_bias(op, b, Fg * groups)
    out = tuple(
        (size - 1) * s - 2 * p + d * (k - 1) + op_k + 1
        for size, s, p, d, k, op_k in zip((H, W), stride, padding, dilation, (KH, KW), output_padding)
    )
    if min(out) < 1:
        raise ValueError(
            f"conv_transpose2d: the output size {out} is empty: input shape {tuple(x.shape)}, kernel {KH}x{KW}, "
            f"stride {stride}, padding {padding}, dilation {dilation}, output_padding {output_padding}"
        )
    return ConvGeometry(stride=stride, padding=padding, dilation=dilation, groups=int(groups),
                        kernel_size=(KH, KW), image_size=out, map_size=(H, W))


def _bias_grad(gy):
    """gb[f] = sum_{n,i,j} gy[n,f,i,j], accumulated in float64 and rounded once to gy's dtype
    (a float32 sum over N*OH*OW terms otherwise drifts by ~1e-6 relative, more than PyTorch's).
    C-contiguous NumPy float32/float64 gy: the per-channel sum kernel (kernels/cpu/batch_norm.py:
    one pass, the threads sharing the channels); any other gy (and an empty one): the same sum
    with xp."""
    if type(gy) is np.ndarray and gy.dtype in (np.float32, np.float64) and gy.flags.c_contiguous and gy.size:
        N, F = gy.shape[:2]
        gy3 = gy.reshape(N, F, -1)
        return kernel("batch_norm", "channel_sum", gy3)(gy3).astype(gy.dtype, copy=False)
    return gy.sum(axis=(0, 2, 3), dtype="float64").astype(gy.dtype, copy=False)


# --------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------
class _ConvFunction(Function):
    """What conv2d and conv_transpose2d share: the ConvGeometry their arguments were checked
    into (handed unchanged to every kernel), and which inputs need a gradient (a gradient
    nobody asked for is not computed: each is a full kernel)."""

    def __init__(self, geometry):
        self.geometry = geometry

    def _needs(self, k):
        inputs = getattr(self, "inputs", None)
        return inputs is None or (inputs[k] is not None and inputs[k].requires_grad)


class Conv2dFunction(_ConvFunction):
    r"""y = conv2d(x, w) + b.

    Shapes: x (N, C, H, W), w (F, C/G, KH, KW), b (F,) -> y (N, F, OH, OW); gy, gx, gw, gb alike.

    Forward:  y[n,f,i,j] = b[f] + sum_{c,u,v} w[f,c,u,v] x[n, g*Cg+c, i*SH+u*DH-PH, j*SW+v*DW-PW]
    Backward (differentiate the sum term by term):
      gb[f]       = sum_{n,i,j} gy[n,f,i,j]
      gw[f,c,u,v] = sum_{n,i,j} gy[n,f,i,j] x[n, g*Cg+c, i*SH+u*DH-PH, j*SW+v*DW-PW]
      gx[n,g*Cg+c,h,w'] = sum_{f,u,v,i,j : i*SH+u*DH-PH = h, j*SW+v*DW-PW = w'} gy[n,f,i,j] w[f,c,u,v]
    """

    def forward(self, x, w, b):
        y = K.conv2d_forward(x, w, self.geometry)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        self.save_for_backward(x, w)
        self.has_bias = b is not None
        return y

    def backward(self, gy):
        x, w = self.saved
        gx = K.conv2d_grad_input(gy, w, self.geometry) if self._needs(0) else None
        gw = K.conv2d_grad_weight(x, gy, self.geometry) if self._needs(1) else None
        gb = _bias_grad(gy) if self.has_bias else None
        return gx, gw, gb


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    r"""2-D convolution over a batch of images, as ``torch.nn.functional.conv2d``.

    Shapes: x (N, C, H, W), w (F, C/G, KH, KW), b (F,) or None -> y (N, F, OH, OW).

    ``y[n,f,i,j] = b[f] + sum_{c,u,v} w[f,c,u,v] x[n, g*Cg+c, i*SH+u*DH-PH, j*SW+v*DW-PW]``
    (x is 0 outside the image; g = f // (F/G) is output channel f's group, Cg = C/G), with
    ``OH = floor((H + 2*PH - DH*(KH-1) - 1) / SH) + 1`` and OW likewise.

    stride, padding, dilation: an int or a pair (height, width). padding may also be
    ``'valid'`` (no padding) or ``'same'`` (OH = H, OW = W; stride 1 only): the total padding
    DH*(KH-1) is split with the odd pixel at the bottom/right, as PyTorch does.
    groups: C and F split into G groups; output group g sees only input group g.

    Gradients (derivation in :class:`Conv2dFunction` and docs/conv.md)::

        gb = sum_{n,i,j} gy      gw = gy (x) unfolded x      gx = gy scattered back through w

    Raises ValueError (naming the argument and the shapes) for a non-4-D input, a weight that
    does not match the input's channels and groups, a kernel larger than the padded input, an
    empty image (H, W or C = 0) or weight, or x, w, b of different dtypes; TypeError for a
    non-float input. An empty batch (N = 0) gives an empty output, as in PyTorch.

    >>> import numpy as np, tinyvision as tv
    >>> import tinyvision.functional as F
    >>> x = tv.tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
    >>> w = tv.tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    >>> y = F.conv2d(x, w, stride=2)       # sums of the four 2x2 blocks
    >>> y.numpy()[0, 0]
    array([[10., 18.],
           [42., 50.]])
    >>> y.sum().backward()
    >>> x.grad.numpy()[0, 0, 0]            # every pixel is in exactly one window
    array([1., 1., 1., 1.])
    """
    x, w, b = input, weight, bias  # PyTorch's argument names; the short math names below
    xa, wa, ba = _array(x), _array(w), _array(b)
    geometry = _conv2d_geometry(xa, wa, ba, stride, padding, dilation, groups)
    return Conv2dFunction(geometry)(x, w, b)


# --------------------------------------------------------------------------------------
# conv_transpose2d
# --------------------------------------------------------------------------------------
class ConvTranspose2dFunction(_ConvFunction):
    r"""y = conv_transpose2d(x, w) + b: the adjoint of conv2d with respect to its input.

    Shapes: x (N, C, H, W), w (C, F/G, KH, KW), b (F,) -> y (N, F, OH, OW); gy, gx, gw, gb alike.

    Forward (each input pixel stamps the kernel, scaled, onto the output):
      y[n, g*Fg+f, i*SH+u*DH-PH, j*SW+v*DW-PW] += x[n,c,i,j] w[c,f,u,v]   for c in group g, then + b
      = conv2d's input gradient with x in the role of gy: ``conv2d_grad_input(x, w)``.
    Backward (the adjoint of an adjoint is the operator itself):
      gx[n,c,i,j] = sum_{f,u,v} w[c,f,u,v] gy[n, g*Fg+f, i*SH+u*DH-PH, j*SW+v*DW-PW]
                  = conv2d(gy, w) (w read as a conv weight (C, F/G, KH, KW))
      gw[c,f,u,v] = sum_{n,i,j} x[n,c,i,j] gy[n, g*Fg+f, i*SH+u*DH-PH, j*SW+v*DW-PW]
                  = conv2d's weight gradient with (x, gy) -> (gy, x)
      gb[f]       = sum_{n,i,j} gy[n,f,i,j]
    """

    def forward(self, x, w, b):
        y = K.conv2d_grad_input(x, w, self.geometry)  # x on the map side, y on the image side
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        self.save_for_backward(x, w)
        self.has_bias = b is not None
        return y

    def backward(self, gy):
        x, w = self.saved
        gx = K.conv2d_forward(gy, w, self.geometry) if self._needs(0) else None
        gw = K.conv2d_grad_weight(gy, x, self.geometry) if self._needs(1) else None
        gb = _bias_grad(gy) if self.has_bias else None
        return gx, gw, gb


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    r"""2-D transposed convolution ("deconvolution"), as ``torch.nn.functional.conv_transpose2d``.

    Shapes: x (N, C, H, W), w (C, F/G, KH, KW), b (F,) or None -> y (N, F, OH, OW).

    The adjoint of conv2d in its input: every x[n,c,i,j] adds x[n,c,i,j] * w[c,f,u,v] to
    ``y[n, g*Fg+f, i*SH+u*DH-PH, j*SW+v*DW-PW]`` (dropped outside the output), then + b[f], with
    ``OH = (H - 1)*SH - 2*PH + DH*(KH - 1) + OPH + 1`` and OW likewise. OPH/OPW
    (``output_padding``) add rows/columns at the bottom/right to pick one of the input sizes
    that a strided conv2d maps to (H, W); PyTorch's rule: each must be smaller than the stride
    or the dilation.

    Gradients: gx = conv2d(gy, w), gw = conv2d's weight gradient with (gy, x), gb = sum gy
    (derivation in :class:`ConvTranspose2dFunction` and docs/conv.md).

    Raises ValueError (naming the argument and the shapes) for a non-4-D input, a weight whose
    first dimension differs from the input's channels, channels not divisible by groups, an
    output_padding too large, an empty image, weight or output, or x, w, b of different
    dtypes; TypeError for a non-float input. An empty batch (N = 0) gives an empty output.

    >>> import numpy as np, tinyvision as tv
    >>> import tinyvision.functional as F
    >>> x = tv.tensor(np.array([[[[1.0, 2.0]]]]), requires_grad=True)    # (1, 1, 1, 2)
    >>> w = tv.tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    >>> F.conv_transpose2d(x, w, stride=2).numpy()[0, 0]                # each pixel -> a 2x2 block
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.]])
    """
    x, w, b = input, weight, bias  # PyTorch's argument names; the short math names below
    xa, wa, ba = _array(x), _array(w), _array(b)
    geometry = _conv_transpose2d_geometry(xa, wa, ba, stride, padding, output_padding, groups, dilation)
    return ConvTranspose2dFunction(geometry)(x, w, b)
