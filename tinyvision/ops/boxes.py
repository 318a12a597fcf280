"""Box representations and comparisons, with torchvision.ops' names and semantics.

Notation (used by every docstring here)
---------------------------------------
N, M      numbers of boxes in the two sets being compared
xyxy      (x1, y1, x2, y2): top-left and bottom-right corners — the format every function here
          takes unless it says otherwise. A *valid* box has x1 <= x2 and y1 <= y2.
xywh      (x1, y1, w, h)           cxcywh   (cx, cy, w, h), cx = (x1 + x2) / 2
area      A = (x2 - x1) * (y2 - y1)
I, U      intersection area and union area, U = A1 + A2 - I
C         area of the smallest box enclosing both

Conventions
-----------
* Arrays in -> arrays out; Tensors in -> Tensors out (no gradient: the differentiable box
  loss is :func:`tinyvision.ops.generalized_box_iou_loss`).
* Arithmetic is torchvision's, operation for operation, in the input dtype, widened where
  torchvision's ``_upcast`` widens: box_iou / generalized_box_iou take float16 corner
  differences in float16 and widen them to float32 before any product (distance / complete IoU
  widen the boxes first); small integer types are widened to int32 first (torchvision would
  let a uint8 difference wrap around); integer IoU is float32.
* **0 / 0 is 0.** Where U = 0 (two zero-area boxes) IoU is 0; torchvision returns NaN there.
  Where C = 0 the GIoU penalty term is 0. Everywhere else the values are torchvision's.
* Boxes with x2 < x1 or y2 < y1 are *not* refused by box_iou / generalized_box_iou: like
  torchvision, the formula is evaluated as written (their "area" is negative). ``nms`` refuses them.
* NaN or inf coordinates are refused (ValueError) by box_iou and generalized_box_iou.
* Every function runs on CuPy arrays too (``xp = get_array_module(...)``); box_iou on
  float32/float64 runs the box-IoU kernel of ``kernels/dispatch.py`` (Numba on the CPU, array
  code on the GPU); integer and float16 boxes the same formula in array form.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..kernels.dispatch import kernel
from ._utils import check_boxes, check_finite, float_for_ratio, unwrap, upcast, wrap

__all__ = [
    "box_convert",
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "distance_box_iou",
    "complete_box_iou",
    "clip_boxes_to_image",
    "remove_small_boxes",
    "box_iou_reference",
]

_FORMATS = ("xyxy", "xywh", "cxcywh")


# ----------------------------------------------------------------------------------------
# Format conversion
# ----------------------------------------------------------------------------------------
def _half_sum(xp, a, b):
    """(a + b) / 2 with torch's true division: integer input gives float32."""
    s = a + b
    if np.dtype(s.dtype).kind in "iu":
        s = s.astype(np.float32)
    return s / 2


def _as_float_for_half(a):
    """torch's ``0.5 * w`` on an integer tensor is float32: widen integers before the product."""
    return a.astype(np.float32) if np.dtype(a.dtype).kind in "iu" else a


def _xywh_to_xyxy(xp, b):
    x, y, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return xp.stack((x, y, x + w, y + h), axis=-1)


def _xyxy_to_xywh(xp, b):
    x1, y1, x2, y2 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return xp.stack((x1, y1, x2 - x1, y2 - y1), axis=-1)


def _cxcywh_to_xyxy(xp, b):
    b = _as_float_for_half(b)
    cx, cy, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return xp.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), axis=-1)


def _xyxy_to_cxcywh(xp, b):
    x1, y1, x2, y2 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    cx = _half_sum(xp, x1, x2)
    cy = _half_sum(xp, y1, y2)
    w = (x2 - x1).astype(cx.dtype)
    h = (y2 - y1).astype(cx.dtype)
    return xp.stack((cx, cy, w, h), axis=-1)


def box_convert(boxes, in_fmt: str, out_fmt: str):
    """Convert boxes between "xyxy", "xywh" and "cxcywh" (torchvision.ops.box_convert).

    Args:
        boxes (array or Tensor[..., 4]): boxes in ``in_fmt``.
        in_fmt, out_fmt (str): one of "xyxy" (x1, y1, x2, y2), "xywh" (x1, y1, w, h),
            "cxcywh" (cx, cy, w, h).

    Returns:
        array or Tensor[..., 4] in ``out_fmt`` (a copy, also when the formats are equal).

    Formulas (torchvision's): ``w = x2 - x1``, ``cx = (x1 + x2) / 2``,
    ``x1 = cx - 0.5 w``, ``x2 = cx + 0.5 w``, ``x2 = x + w``. A conversion between two
    non-xyxy formats goes through xyxy, as torchvision does. Integer boxes stay integer for
    xyxy <-> xywh and become float32 when cxcywh is involved (torch's true division).

    >>> import numpy as np
    >>> box_convert(np.array([[10., 20., 30., 60.]]), "xyxy", "cxcywh")
    array([[20., 40., 20., 40.]])
    """
    arr, as_tensor = unwrap(boxes, "boxes")
    check_boxes(arr, "boxes", batch_ok=True)
    if in_fmt not in _FORMATS or out_fmt not in _FORMATS:
        raise ValueError(
            f"unsupported box format conversion {in_fmt!r} -> {out_fmt!r}: formats are {_FORMATS}"
        )
    xp = get_array_module(arr)
    if in_fmt == out_fmt:
        return wrap(arr.copy(), as_tensor)
    if in_fmt == "xywh":
        arr = _xywh_to_xyxy(xp, arr)
    elif in_fmt == "cxcywh":
        arr = _cxcywh_to_xyxy(xp, arr)
    if out_fmt == "xywh":
        arr = _xyxy_to_xywh(xp, arr)
    elif out_fmt == "cxcywh":
        arr = _xyxy_to_cxcywh(xp, arr)
    return wrap(arr, as_tensor)


# ----------------------------------------------------------------------------------------
# Areas and pairwise overlaps
# ----------------------------------------------------------------------------------------
def box_area(boxes):
    """Area A = (x2 - x1) * (y2 - y1) of each box (torchvision.ops.box_area).

    Args:
        boxes (array or Tensor[N, 4]): (x1, y1, x2, y2).
    Returns:
        array or Tensor[N]: float32/float64 as the input (float16 -> float32), integer boxes
        give integer areas (int32/int64). A box with x2 < x1 gets a negative "area", as in
        torchvision (the formula is not guarded).

    >>> import numpy as np
    >>> box_area(np.array([[0., 0., 2., 3.], [1., 1., 1., 5.]]))
    array([6., 0.])
    """
    arr, as_tensor = unwrap(boxes, "boxes")
    check_boxes(arr, "boxes")
    return wrap(_area(arr), as_tensor)


def _area(b):
    b = upcast(b)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _pair_dtype(a, b):
    """torch's type promotion for two box tensors: a float wins over an int; widest float."""
    da, db = np.dtype(a.dtype), np.dtype(b.dtype)
    fa, fb = da.kind == "f", db.kind == "f"
    if fa and not fb:
        return da
    if fb and not fa:
        return db
    return np.promote_types(da, db)


def _upcast_dtype(dt):
    """The dtype :func:`upcast` gives: float16 -> float32, small integers -> int32."""
    if dt.kind == "f":
        return dt if dt in (np.float32, np.float64) else np.dtype(np.float32)
    return dt if dt in (np.int32, np.int64) else np.dtype(np.int32)


def _prepare_pair(boxes1, boxes2, upcast_floats=True):
    """Validated (xp, boxes1, boxes2, as_tensor) in their common dtype.

    Small integer types are always widened to int32 first (so that a corner difference cannot
    wrap around, as it would in uint8). float16 is widened to float32 here only when
    ``upcast_floats``: torchvision's box_iou / generalized_box_iou take the corner maxima and
    their differences in float16 and widen afterwards, its distance / complete IoU widen first.
    """
    a1, t1 = unwrap(boxes1, "boxes1")
    a2, t2 = unwrap(boxes2, "boxes2")
    check_boxes(a1, "boxes1")
    check_boxes(a2, "boxes2")
    check_finite(a1, "boxes1")
    check_finite(a2, "boxes2")
    xp = get_array_module(a1, a2)
    dt = _pair_dtype(a1, a2)
    if dt.kind != "f" or upcast_floats:
        dt = _upcast_dtype(dt)
    return xp, a1.astype(dt, copy=False), a2.astype(dt, copy=False), (t1 or t2)


def _inter_union(xp, b1, b2):
    """I (N, M) and U (N, M), torchvision's ``_box_inter_union`` step for step."""
    area1 = _area(b1)                                       # (N,)
    area2 = _area(b2)                                       # (M,)
    lt = xp.maximum(b1[:, None, :2], b2[None, :, :2])       # (N, M, 2) top-left of I
    rb = xp.minimum(b1[:, None, 2:], b2[None, :, 2:])       # (N, M, 2) bottom-right of I
    wh = upcast(rb - lt)
    wh = xp.maximum(wh, wh.dtype.type(0))                   # clamp(min=0): disjoint -> 0
    inter = wh[:, :, 0] * wh[:, :, 1]                       # (N, M)
    union = area1[:, None] + area2[None, :] - inter         # (N, M)
    return inter, union


def _ratio_zero_on_zero(xp, num, den):
    """num / den computed in torch's true-division dtype, and 0 where den == 0."""
    dt = float_for_ratio(num)
    num = num.astype(dt, copy=False)
    den = den.astype(dt, copy=False)
    zero = den == 0
    safe = xp.where(zero, dt.type(1), den)
    return xp.where(zero, dt.type(0), num / safe)


def box_iou(boxes1, boxes2):
    """Pairwise intersection over union (Jaccard index), torchvision.ops.box_iou.

    Args:
        boxes1 (array or Tensor[N, 4]), boxes2 (array or Tensor[M, 4]): (x1, y1, x2, y2).
    Returns:
        array or Tensor[N, M]: ``IoU[i, j] = I / U`` with
        ``I = max(0, min(x2i, x2j) - max(x1i, x1j)) * max(0, min(y2i, y2j) - max(y1i, y1j))``
        and ``U = A_i + A_j - I``; float32 for float32 (and integer) input, float64 for float64.

    Conventions: IoU = 0 where U = 0 (two zero-area boxes; torchvision gives NaN); a zero-area
    box has IoU 0 with everything else. NaN/inf coordinates raise ValueError. Boxes with
    x2 < x1 follow the formula (as torchvision). NumPy float input runs a parallel Numba kernel;
    the result equals torchvision's bit for bit (same operations, same order, same dtype).

    >>> import numpy as np
    >>> box_iou(np.array([[0., 0., 2., 2.]]), np.array([[1., 1., 3., 3.], [0., 0., 2., 2.]]))
    array([[0.14285714, 1.        ]])
    """
    xp, b1, b2, as_tensor = _prepare_pair(boxes1, boxes2, upcast_floats=False)
    if b1.dtype in (np.float32, np.float64):  # the kernel (kernels/dispatch.py): Numba or CuPy
        b1, b2 = xp.ascontiguousarray(b1), xp.ascontiguousarray(b2)
        return wrap(kernel("boxes", "box_iou", b1, b2)(b1, b2), as_tensor)
    inter, union = _inter_union(xp, b1, b2)
    return wrap(_ratio_zero_on_zero(xp, inter, union), as_tensor)


def generalized_box_iou(boxes1, boxes2):
    """Pairwise generalized IoU (Rezatofighi et al. 2019, https://arxiv.org/abs/1902.09630).

    Args:
        boxes1 (array or Tensor[N, 4]), boxes2 (array or Tensor[M, 4]): (x1, y1, x2, y2).
    Returns:
        array or Tensor[N, M]: ``GIoU = IoU - (C - U) / C``, C the area of the smallest box
        enclosing both. In [-1, 1] for valid boxes, and GIoU <= IoU.

    Conventions as :func:`box_iou` (IoU = 0 where U = 0); in addition the penalty
    ``(C - U) / C`` is 0 where C = 0 (both boxes collapse onto one line or point), where
    torchvision gives NaN. Elsewhere torchvision's values, operation for operation.

    >>> import numpy as np
    >>> generalized_box_iou(np.array([[0., 0., 1., 1.]]), np.array([[2., 0., 3., 1.]]))
    array([[-0.33333333]])
    """
    xp, b1, b2, as_tensor = _prepare_pair(boxes1, boxes2, upcast_floats=False)
    inter, union = _inter_union(xp, b1, b2)
    iou = _ratio_zero_on_zero(xp, inter, union)
    lti = xp.minimum(b1[:, None, :2], b2[None, :, :2])      # (N, M, 2) enclosing top-left
    rbi = xp.maximum(b1[:, None, 2:], b2[None, :, 2:])      # (N, M, 2) enclosing bottom-right
    whi = upcast(rbi - lti)
    whi = xp.maximum(whi, whi.dtype.type(0))
    areai = whi[:, :, 0] * whi[:, :, 1]                     # C, (N, M)
    return wrap(iou - _ratio_zero_on_zero(xp, areai - union, areai), as_tensor)


def _diou_parts(xp, b1, b2, eps):
    """IoU, and the DIoU penalty rho^2 / (c^2 + eps) (torchvision's ``_box_diou_iou``)."""
    inter, union = _inter_union(xp, b1, b2)
    iou = _ratio_zero_on_zero(xp, inter, union)
    dt = iou.dtype
    b1 = b1.astype(dt, copy=False)
    b2 = b2.astype(dt, copy=False)
    lti = xp.minimum(b1[:, None, :2], b2[None, :, :2])
    rbi = xp.maximum(b1[:, None, 2:], b2[None, :, 2:])
    whi = xp.maximum(rbi - lti, dt.type(0))
    diag2 = whi[:, :, 0] ** 2 + whi[:, :, 1] ** 2 + eps     # c^2 + eps, squared diagonal of C
    xp1 = (b1[:, 0] + b1[:, 2]) / 2
    yp1 = (b1[:, 1] + b1[:, 3]) / 2
    xg = (b2[:, 0] + b2[:, 2]) / 2
    yg = (b2[:, 1] + b2[:, 3]) / 2
    rho2 = (xp1[:, None] - xg[None, :]) ** 2 + (yp1[:, None] - yg[None, :]) ** 2  # centre distance^2
    return iou, rho2 / diag2


def distance_box_iou(boxes1, boxes2, eps: float = 1e-7):
    """Pairwise distance IoU (Zheng et al. 2020, https://arxiv.org/abs/1911.08287).

    ``DIoU = IoU - rho^2 / (c^2 + eps)``: rho the distance between the boxes' centres, c the
    diagonal of the smallest enclosing box. Shapes and conventions as :func:`box_iou`
    (IoU = 0 where U = 0); returns array or Tensor[N, M].
    """
    xp, b1, b2, as_tensor = _prepare_pair(boxes1, boxes2)
    iou, penalty = _diou_parts(xp, b1, b2, eps)
    return wrap(iou - penalty, as_tensor)


def complete_box_iou(boxes1, boxes2, eps: float = 1e-7):
    """Pairwise complete IoU (Zheng et al. 2020): ``CIoU = DIoU - alpha v`` with
    ``v = 4 / pi^2 (atan(w1 / h1) - atan(w2 / h2))^2`` and ``alpha = v / (1 - IoU + v + eps)``.

    Shapes and conventions as :func:`box_iou`; a zero-height box makes ``w / h`` infinite
    (atan = pi/2) and a zero-size box 0 / 0 = NaN, as in torchvision. Returns array or Tensor[N, M].
    """
    xp, b1, b2, as_tensor = _prepare_pair(boxes1, boxes2)
    iou, penalty = _diou_parts(xp, b1, b2, eps)
    dt = iou.dtype
    b1 = b1.astype(dt, copy=False)
    b2 = b2.astype(dt, copy=False)
    w1 = b1[:, None, 2] - b1[:, None, 0]
    h1 = b1[:, None, 3] - b1[:, None, 1]
    w2 = b2[:, 2] - b2[:, 0]
    h2 = b2[:, 3] - b2[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (4 / (np.pi ** 2)) * (xp.arctan(w1 / h1) - xp.arctan(w2 / h2)) ** 2
        alpha = v / (1 - iou + v + eps)
    return wrap(iou - penalty - alpha * v, as_tensor)


# ----------------------------------------------------------------------------------------
# Clipping and filtering
# ----------------------------------------------------------------------------------------
def _py_number(v, name):
    if hasattr(v, "item"):
        v = v.item()
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    return v


def clip_boxes_to_image(boxes, size):
    """Clip boxes to lie inside an image (torchvision.ops.clip_boxes_to_image).

    Args:
        boxes (array or Tensor[..., 4]): (x1, y1, x2, y2).
        size (tuple[int, int]): (height, width) of the image.
    Returns:
        array or Tensor[..., 4], same dtype (integer boxes with a float height or width give
        float32, as torch.clamp): x1, x2 clamped to [0, width], y1, y2 to [0, height].
        (A box entirely outside the image becomes a zero-width or zero-height box on the border.)

    >>> import numpy as np
    >>> clip_boxes_to_image(np.array([[-5., 2., 50., 120.]]), (100, 40))
    array([[  0.,   2.,  40., 100.]])
    """
    arr, as_tensor = unwrap(boxes, "boxes")
    check_boxes(arr, "boxes", batch_ok=True)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"size must be (height, width), got {size!r}")
    height = _py_number(size[0], "size[0] (height)")
    width = _py_number(size[1], "size[1] (width)")
    xp = get_array_module(arr)
    out = arr.copy()
    if out.dtype.kind in "iu" and (isinstance(height, float) or isinstance(width, float)):
        out = out.astype(np.float32)  # torch.clamp promotes integer boxes to a float bound's dtype
    out[..., 0::2] = xp.clip(arr[..., 0::2], 0, width)
    out[..., 1::2] = xp.clip(arr[..., 1::2], 0, height)
    return wrap(out, as_tensor)


def remove_small_boxes(boxes, min_size: float):
    """Indices of the boxes whose width and height are both >= min_size (torchvision's).

    Args:
        boxes (array or Tensor[N, 4]): (x1, y1, x2, y2).
        min_size (float): minimum side length.
    Returns:
        array or Tensor[K] of int64: kept indices, in increasing order.

    >>> import numpy as np
    >>> remove_small_boxes(np.array([[0., 0., 1., 5.], [0., 0., 5., 5.]]), 2.0)
    array([1])
    """
    arr, as_tensor = unwrap(boxes, "boxes")
    check_boxes(arr, "boxes")
    min_size = _py_number(min_size, "min_size")
    xp = get_array_module(arr)
    ws = arr[:, 2] - arr[:, 0]
    hs = arr[:, 3] - arr[:, 1]
    keep = (ws >= min_size) & (hs >= min_size)
    return wrap(xp.nonzero(keep)[0].astype(np.int64), as_tensor)


# ----------------------------------------------------------------------------------------
# The plain-loop reference (for learners and for the tests)
# ----------------------------------------------------------------------------------------
def box_iou_reference(boxes1, boxes2):
    """box_iou written as two Python loops over NumPy scalars of the boxes' dtype
    (``kernels/cpu/boxes.py::box_iou_reference``, after the same checks as box_iou).

    Slow; it exists to be read and to check the fast kernel. Same arithmetic (in the same
    dtype and order) as :func:`box_iou`, with the same 0-where-U-is-0 convention (float16
    boxes are widened first here, so they may differ from box_iou in the last bit).
    """
    from ..kernels.cpu.boxes import box_iou_reference as loops

    b1 = np.asarray(boxes1)
    b2 = np.asarray(boxes2)
    check_boxes(b1, "boxes1")
    check_boxes(b2, "boxes2")
    dt = _pair_dtype(b1, b2)
    if dt.kind != "f":
        raise TypeError("box_iou_reference takes float boxes")
    return loops(upcast(b1.astype(dt)), upcast(b2.astype(dt)))
