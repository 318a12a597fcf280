r"""Pooling: max_pool2d, avg_pool2d, adaptive_max_pool2d, adaptive_avg_pool2d (PyTorch semantics).

Shapes: x (N, C, H, W) -> y (N, C, OH, OW) (an unbatched x (C, H, W) gives (C, OH, OW), as in
PyTorch); kernel (KH, KW), stride (SH, SW), padding (PH, PW),
dilation (DH, DW). Every integer argument may be an int or an (height, width) pair.

Output size (PyTorch's ``pooling_output_shape``), per axis with input size H:

    OH = floor((H + 2 PH - DH (KH - 1) - 1 + (SH - 1 if ceil_mode else 0)) / SH) + 1
    if ceil_mode and (OH - 1) SH >= H + PH:  OH -= 1

The second line is the ceil_mode rule: the last window must *start* inside the input or the
left padding, never entirely in the right padding. Valid arguments (else ValueError, raised
before any kernel runs): PH <= KH // 2 (integer division: PyTorch's "pad should be at most
half of kernel size"), OH >= 1 (the kernel must fit the padded input).

Every op here is one :class:`Function` whose forward and backward call a kernel chosen by
``tinyvision.kernels.dispatch.kernel("pool", ...)`` (Numba on the CPU, CuPy on the GPU, or the
plain-loop reference under ``use_impl("reference")``) through *window tables*: for each
output row the first in-bounds input row and the number of in-bounds rows of its window,
and likewise for columns. Padding is never materialised: max pooling skips padded
positions (as if they held -inf), average pooling counts them in the divisor only.
"""
from __future__ import annotations

import numpy as np

from .._args import int_pair
from ..autograd import Function, Tensor
from ..kernels.dispatch import kernel

__all__ = [
    "max_pool2d",
    "avg_pool2d",
    "adaptive_max_pool2d",
    "adaptive_avg_pool2d",
    "MaxPool2dFunction",
    "AvgPool2dFunction",
]


# --------------------------------------------------------------------------------------
# Argument checking (all of it before a kernel runs)
# --------------------------------------------------------------------------------------
def _check_input(x, op):
    """x must be a 4-D float32/float64 array or Tensor: (N, C, H, W)."""
    data = x.data if isinstance(x, Tensor) else x
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        raise TypeError(f"{op}: input must be a Tensor or an array, got {type(x).__name__}")
    if data.ndim != 4:
        raise ValueError(
            f"{op}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {tuple(data.shape)} "
            f"({data.ndim}-D)"
        )
    if data.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: input must be float32 or float64, got {data.dtype} (shape {tuple(data.shape)})")
    if 0 in data.shape[2:]:
        raise ValueError(f"{op}: input of shape {tuple(data.shape)} has an empty spatial dimension")
    return tuple(data.shape)


def _pool_output_size(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape along one axis (see the module docstring)."""
    numerator = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1  # floor division, also for a negative numerator
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _window_arguments(op, shape, kernel_size, stride, padding, dilation, ceil_mode):
    """Check and normalise the window arguments; return pairs and the output size."""
    kernel = int_pair("kernel_size", kernel_size, minimum=1, where=op, allow_single=True)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else int_pair("stride", stride, minimum=1, where=op, allow_single=True)
    padding = int_pair("padding", padding, minimum=0, where=op, allow_single=True)
    dilation = int_pair("dilation", dilation, minimum=1, where=op, allow_single=True)
    for axis, k, p in (("height", kernel[0], padding[0]), ("width", kernel[1], padding[1])):
        if p > k // 2:
            raise ValueError(
                f"{op}: padding must be at most half of kernel_size along the {axis} "
                f"(padding {p}, kernel_size {k}): got padding={padding}, kernel_size={kernel}"
            )
    H, W = shape[2:]
    OH = _pool_output_size(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    OW = _pool_output_size(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if OH < 1 or OW < 1:
        raise ValueError(
            f"{op}: kernel_size={kernel} (dilation={dilation}) is larger than the padded input: "
            f"input shape {shape}, padding={padding} gives output size ({OH}, {OW}), which is too small"
        )
    return kernel, stride, padding, dilation, (OH, OW)


def _add_batch_axis(x):
    """PyTorch also pools an unbatched x (C, H, W): as the batch (1, C, H, W). Returns the
    4-D input and whether the axis was added (differentiably, through reshape)."""
    data = x.data if isinstance(x, Tensor) else x
    if getattr(data, "ndim", None) == 3:
        from .shape import reshape

        return reshape(x, (1,) + tuple(data.shape)), True
    return x, False


def _drop_batch_axis(out, added):
    """Undo :func:`_add_batch_axis` on a result y, or (y, indices)."""
    if not added:
        return out
    from .shape import reshape

    if isinstance(out, tuple):
        y, indices = out
        return reshape(y, tuple(y.shape[1:])), Tensor(indices.data.reshape(indices.shape[1:]))
    return reshape(out, tuple(out.shape[1:]))


# --------------------------------------------------------------------------------------
# Window tables (see kernels/cpu/pool.py): per output row, first row and number of rows
# --------------------------------------------------------------------------------------
def _max_windows(size, out, k, s, p, d):
    """Dilated window of output o: rows o*s - p + i*d for i < k, those inside [0, size)."""
    raw = np.arange(out, dtype=np.int64) * s - p
    # Step over the padding: the first row is the smallest raw + m*d >= 0 (m >= 0).
    first = np.where(raw < 0, raw + ((-raw + d - 1) // d) * d, raw)
    end = np.minimum(raw + (k - 1) * d + 1, size)  # exclusive
    count = np.maximum((end - first + d - 1) // d, 0)
    return first, count


def _avg_windows(size, out, k, s, p):
    """Window of output o: [o*s - p, min(o*s - p + k, size + p)), then clipped to the input.
    Returns (start, count, padded_length): padded_length is the count_include_pad factor."""
    start = np.arange(out, dtype=np.int64) * s - p
    end = np.minimum(start + k, size + p)
    padded_length = end - start
    start_in, end_in = np.maximum(start, 0), np.minimum(end, size)
    count = np.maximum(end_in - start_in, 0)
    return start_in, count, padded_length


def _adaptive_windows(size, out):
    """PyTorch's adaptive window: [floor(o*size/out), ceil((o+1)*size/out))."""
    o = np.arange(out, dtype=np.int64)
    start = (o * size) // out
    end = -((-(o + 1) * size) // out)
    return start, end - start


# --------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------
class MaxPool2dFunction(Function):
    r"""Max over a window: one Function for max_pool2d and adaptive_max_pool2d.

    Shapes: x (N, C, H, W); y, indices (N, C, OH, OW); gy like y; gx like x.

    Forward: with W(oh, ow) the (in-bounds) window of output (oh, ow) given by the tables,

        y[n,c,oh,ow] = max_{(h,w) in W(oh,ow)} x[n,c,h,w],
        indices[n,c,oh,ow] = h* W + w*   the first argmax in row-major scan order
                                        (a NaN wins, and the last NaN is kept: PyTorch CPU).

    Backward: y is locally the selection y = x[n,c,h*,w*], so dy/dx[n,c,h,w] = 1 at the
    argmax and 0 elsewhere (the subgradient convention at ties: all of it goes to the first
    maximum, none is shared). By the chain rule, summing over the windows that chose (h, w):

        gx[n,c,h,w] = sum_{(oh,ow): indices[n,c,oh,ow] = h*W + w} gy[n,c,oh,ow]

    The ``indices`` output is not differentiable.
    """

    non_differentiable = (1,)

    def __init__(self, h_start, h_count, w_start, w_count, dilation=(1, 1)):
        self.tables = (h_start, h_count, w_start, w_count)
        self.dilation = dilation

    def forward(self, x):
        self.input_hw = x.shape[2:]
        y, indices = kernel("pool", "max_pool2d_forward", x)(x, *self.tables, *self.dilation)
        self.save_for_backward(indices)
        return y, indices

    def backward(self, gy, gindices):
        (indices,) = self.saved
        return kernel("pool", "max_pool2d_backward", gy)(gy, indices, *self.input_hw)


class AvgPool2dFunction(Function):
    r"""Sum over a window divided by a per-output divisor: avg_pool2d and adaptive_avg_pool2d.

    Shapes: x (N, C, H, W); y, gy (N, C, OH, OW); gx like x; divisor D (OH, OW).

    Forward:  y[n,c,oh,ow] = (1 / D[oh,ow]) * sum_{(h,w) in W(oh,ow)} x[n,c,h,w]

    Backward: y is linear in x with dy[n,c,oh,ow]/dx[n,c,h,w] = 1/D[oh,ow] when (h, w) lies in
    W(oh, ow), else 0; summing over every window that contains (h, w):

        gx[n,c,h,w] = sum_{(oh,ow): (h,w) in W(oh,ow)} gy[n,c,oh,ow] / D[oh,ow]
    """

    def __init__(self, h_start, h_count, w_start, w_count, divisor):
        self.tables = (h_start, h_count, w_start, w_count)
        self.divisor = divisor

    def forward(self, x):
        self.input_hw = x.shape[2:]
        return kernel("pool", "avg_pool2d_forward", x)(x, *self.tables, self.divisor)

    def backward(self, gy):
        return kernel("pool", "avg_pool2d_backward", gy)(gy, *self.tables, self.divisor, *self.input_hw)


# --------------------------------------------------------------------------------------
# Public wrappers (PyTorch's names and signatures)
# --------------------------------------------------------------------------------------
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    r"""2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    ``y[n,c,oh,ow] = max_{i<KH, j<KW} x[n,c, oh*SH - PH + i*DH, ow*SW - PW + j*DW]``, the
    maximum taken over the positions inside the input (padding acts as -inf).

    Args:
        x (Tensor[N, C, H, W]): float32 or float64.
        kernel_size, stride (default: kernel_size), padding, dilation: int or (h, w).
        ceil_mode: round the output size up (see the module docstring for the rule).
        return_indices: also return ``indices`` (int64 Tensor[N, C, OH, OW]): the argmax's
            flat position h*W + w in its input plane, PyTorch's convention.

    Conventions: ties go to the first maximum in row-major scan order (the whole gradient
    goes there); a window holding NaN outputs NaN (index of its last NaN), as PyTorch CPU.

    >>> import numpy as np, tinyvision as tv
    >>> x = tv.tensor(np.array([[[[1., 2.], [4., 3.]]]]))
    >>> y, i = max_pool2d(x, 2, return_indices=True)
    >>> y.numpy().ravel(), i.numpy().ravel()
    (array([4.]), array([2]))
    """
    x = input  # PyTorch's argument names; the short math names below
    x, unbatched = _add_batch_axis(x)
    shape = _check_input(x, "max_pool2d")
    kernel, stride, padding, dilation, (OH, OW) = _window_arguments(
        "max_pool2d", shape, kernel_size, stride, padding, dilation, ceil_mode)
    H, W = shape[2:]
    h_start, h_count = _max_windows(H, OH, kernel[0], stride[0], padding[0], dilation[0])
    w_start, w_count = _max_windows(W, OW, kernel[1], stride[1], padding[1], dilation[1])
    y, indices = MaxPool2dFunction(h_start, h_count, w_start, w_count, dilation)(x)
    return _drop_batch_axis((y, indices) if return_indices else y, unbatched)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    r"""2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    ``y[n,c,oh,ow] = (1/D) * sum of x over the window's positions inside the input``.

    The window of output (oh, ow) spans rows [oh*SH - PH, min(oh*SH - PH + KH, H + PH)) — it is
    clipped to the *padded* input, which only matters with ceil_mode — and likewise columns.
    The divisor D is

    * ``divisor_override`` when given;
    * else, with ``count_include_pad=True``, the clipped window's area (padding counts, the
      part past the padding does not);
    * else the number of window positions inside the input.

    A window lying entirely in the padding outputs 0.

    >>> import numpy as np, tinyvision as tv
    >>> avg_pool2d(tv.tensor(np.arange(4.).reshape(1, 1, 2, 2)), 2).numpy().ravel()
    array([1.5])
    """
    x = input  # PyTorch's argument names; the short math names below
    x, unbatched = _add_batch_axis(x)
    shape = _check_input(x, "avg_pool2d")
    kernel, stride, padding, _, (OH, OW) = _window_arguments(
        "avg_pool2d", shape, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, (int, np.integer)) \
                or divisor_override == 0:
            raise ValueError(f"avg_pool2d: divisor_override must be a nonzero int, got {divisor_override!r}")
    H, W = shape[2:]
    h_start, h_count, h_padded = _avg_windows(H, OH, kernel[0], stride[0], padding[0])
    w_start, w_count, w_padded = _avg_windows(W, OW, kernel[1], stride[1], padding[1])
    if divisor_override is not None:
        divisor = np.full((OH, OW), float(divisor_override))
    elif count_include_pad:
        divisor = np.outer(h_padded, w_padded).astype(np.float64)
    else:
        divisor = np.outer(h_count, w_count).astype(np.float64)
    # An empty window sums to 0; give it divisor 1 so it outputs 0, never 0/0.
    divisor[np.outer(h_count, w_count) == 0] = 1.0
    return _drop_batch_axis(AvgPool2dFunction(h_start, h_count, w_start, w_count, divisor)(x), unbatched)


def _adaptive_output_size(output_size, shape, op):
    """int, or a pair whose None entries keep the input's size."""
    H, W = shape[2:]
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
        output_size = (H if output_size[0] is None else output_size[0],
                       W if output_size[1] is None else output_size[1])
    return int_pair("output_size", output_size, minimum=1, where=op, allow_single=True)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    r"""Adaptive 2-D max pooling, as ``torch.nn.functional.adaptive_max_pool2d``.

    Output row oh (of OH) pools input rows [floor(oh*H/OH), ceil((oh+1)*H/OH)); columns alike.
    Windows overlap when OH does not divide H. ``output_size`` is an int or a pair, a None
    entry keeping that input size. Ties, NaN and indices as :func:`max_pool2d`.
    """
    x = input  # PyTorch's argument names; the short math names below
    x, unbatched = _add_batch_axis(x)
    shape = _check_input(x, "adaptive_max_pool2d")
    OH, OW = _adaptive_output_size(output_size, shape, "adaptive_max_pool2d")
    H, W = shape[2:]
    h_start, h_count = _adaptive_windows(H, OH)
    w_start, w_count = _adaptive_windows(W, OW)
    y, indices = MaxPool2dFunction(h_start, h_count, w_start, w_count)(x)
    return _drop_batch_axis((y, indices) if return_indices else y, unbatched)


def adaptive_avg_pool2d(input, output_size):
    r"""Adaptive 2-D average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    ``y[n,c,oh,ow]`` is the mean of x over rows [floor(oh*H/OH), ceil((oh+1)*H/OH)) and columns
    [floor(ow*W/OW), ceil((ow+1)*W/OW)). ``output_size=1`` is global average pooling.

    >>> import numpy as np, tinyvision as tv
    >>> adaptive_avg_pool2d(tv.tensor(np.arange(6.).reshape(1, 1, 2, 3)), (1, None)).numpy()
    array([[[[1.5, 2.5, 3.5]]]])
    """
    x = input  # PyTorch's argument names; the short math names below
    x, unbatched = _add_batch_axis(x)
    shape = _check_input(x, "adaptive_avg_pool2d")
    OH, OW = _adaptive_output_size(output_size, shape, "adaptive_avg_pool2d")
    H, W = shape[2:]
    h_start, h_count = _adaptive_windows(H, OH)
    w_start, w_count = _adaptive_windows(W, OW)
    divisor = np.outer(h_count, w_count).astype(np.float64)
    return _drop_batch_axis(AvgPool2dFunction(h_start, h_count, w_start, w_count, divisor)(x), unbatched)
