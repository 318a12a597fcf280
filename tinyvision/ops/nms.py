"""Non-maximum suppression (torchvision.ops.nms / batched_nms semantics).

The rule
--------
Sort the boxes by decreasing score. Walk down the list; keep a box unless a box kept before it
has ``IoU > iou_threshold`` with it (strictly greater: an IoU exactly equal to the threshold
is kept). Return the kept indices in decreasing score order.

Conventions
-----------
* **Score ties**: a stable sort of the scores in decreasing order — among equal scores the
  lower index comes first (is visited, and returned, first). torchvision's CPU kernel sorts
  the same way; its docs warn that CPU and GPU may differ on ties, tinyvision does not.
* IoU is computed in the boxes' dtype with torchvision's exact operations, so decisions at
  the threshold agree bit for bit. Two non-overlapping zero-area boxes have IoU 0/0 = NaN
  there, which never suppresses (``NaN > t`` is false); for ``iou_threshold >= 0`` this is the
  same as "IoU 0" (:func:`box_iou`'s convention).
* Bad input raises ValueError/TypeError before any kernel runs: boxes not (N, 4), scores not
  (N,), mismatched lengths, NaN/inf coordinates or scores, x2 < x1 or y2 < y1 (zero width or
  height is allowed), a NaN threshold. Empty input returns an empty int64 result.
* Integer boxes are converted to float64 (exact), float16 to float32 (torchvision's CPU
  kernel refuses both; its CUDA kernel takes float16). CuPy inputs are copied
  to the host, suppressed there by the Numba kernel, and the indices copied back.

Kernels (``tinyvision.kernels.cpu.nms``)
----------------------------------------
:func:`nms_reference` below is the algorithm as a learner writes it (Python loops). The fast
path is a Numba kernel that never builds the N x N IoU matrix (``nms_sorted_grid``): kept boxes
are filed in a uniform grid by their top-left corner, and a candidate is compared only with the
kept boxes in the window of cells where a box able to suppress it can lie (bounds from IoU > t,
derived in the kernel's docstring), stopping at the first that suppresses it. For a negative
threshold (every pair suppresses) and small inputs, the textbook O(N * kept) loop
(``nms_sorted_greedy``). Tests check all three agree. The kernel is chosen in
``kernels/dispatch.py`` (``kernel("nms", "nms_sorted", ...)``); under
``use_impl("reference")`` the compiled textbook rule ``nms_sorted_reference`` runs instead.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..backend import get_array_module, to_device
from ..kernels.dispatch import kernel
from ._utils import check_boxes, check_finite, check_ordered, check_real, unwrap, wrap

__all__ = ["nms", "batched_nms", "nms_trace", "NMSTrace", "NMSStep", "nms_reference", "batched_nms_reference",
           "nms_numpy_greedy"]


def _check_threshold(iou_threshold):
    if hasattr(iou_threshold, "item") and getattr(iou_threshold, "size", 1) != 1:
        raise TypeError(f"iou_threshold must be a number, got an array of shape {tuple(iou_threshold.shape)}")
    if hasattr(iou_threshold, "item"):
        iou_threshold = iou_threshold.item()
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)):
        raise TypeError(f"iou_threshold must be a number, got {type(iou_threshold).__name__}")
    iou_threshold = float(iou_threshold)
    if math.isnan(iou_threshold):
        raise ValueError("iou_threshold is NaN")
    return iou_threshold


def _prepare(boxes, scores, iou_threshold, idxs=None):
    """Validate and return NumPy boxes (float32/64), scores, idxs, threshold, xp, tensor flag."""
    b, tb = unwrap(boxes, "boxes")
    s, ts = unwrap(scores, "scores")
    xp = get_array_module(b, s) if idxs is None else get_array_module(b, s, unwrap(idxs, "idxs")[0])
    check_boxes(b, "boxes")
    check_real(s, "scores")
    if s.ndim != 1:
        raise ValueError(f"scores must have shape (N,), got shape {tuple(s.shape)}")
    if s.shape[0] != b.shape[0]:
        raise ValueError(
            f"boxes and scores must have the same length N, got boxes {tuple(b.shape)} and "
            f"scores {tuple(s.shape)}"
        )
    as_tensor = tb or ts
    i = None
    if idxs is not None:
        i, ti = unwrap(idxs, "idxs")
        as_tensor = as_tensor or ti
        check_real(i, "idxs")
        if i.ndim != 1 or i.shape[0] != b.shape[0]:
            raise ValueError(
                f"idxs must have shape (N,) = ({b.shape[0]},) like boxes, got shape {tuple(i.shape)}"
            )
        check_finite(i, "idxs")
        i = to_device(i, "cpu")
    thr = _check_threshold(iou_threshold)
    b = to_device(b, "cpu")
    s = to_device(s, "cpu")
    check_finite(b, "boxes")
    check_finite(s, "scores")
    check_ordered(b, "boxes")
    if b.dtype == np.float16:
        b = b.astype(np.float32)
    elif b.dtype.kind in "iu":
        b = b.astype(np.float64)
    if s.dtype.kind in "iu":
        s = s.astype(np.float64)  # so that -s cannot wrap around for unsigned integers
    return b, s, i, thr, xp, as_tensor


def _give_back(keep, xp, as_tensor):
    keep = keep.astype(np.int64, copy=False)
    if xp is not np:
        keep = xp.asarray(keep)
    return wrap(keep, as_tensor)


def _columns(b, order):
    """The four coordinate columns of the boxes in ``order``, each contiguous."""
    return tuple(np.ascontiguousarray(b[order, k]) for k in range(4))


def nms(boxes, scores, iou_threshold: float):
    """Greedy non-maximum suppression (torchvision.ops.nms).

    Args:
        boxes (array or Tensor[N, 4]): (x1, y1, x2, y2) with x1 <= x2, y1 <= y2.
        scores (array or Tensor[N]): one score per box.
        iou_threshold (float): a box is discarded when its IoU with a kept, higher-scoring box
            is **strictly greater** than this.
    Returns:
        array or Tensor[K] of int64: indices of the kept boxes, in decreasing score order
        (equal scores: lower index first).

    >>> import numpy as np
    >>> boxes = np.array([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
    >>> nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5)
    array([0, 2])
    """
    b, s, _, thr, xp, as_tensor = _prepare(boxes, scores, iou_threshold)
    n = b.shape[0]
    if n == 0:
        return _give_back(np.empty(0, dtype=np.int64), xp, as_tensor)
    order = np.argsort(-s, kind="stable")  # decreasing score; ties: lower index first
    x1, y1, x2, y2 = _columns(b, order)
    keep = kernel("nms", "nms_sorted", x1)(x1, y1, x2, y2, thr)  # uint8 (n,), kernels/dispatch.py
    return _give_back(order[keep.view(bool)], xp, as_tensor)


def batched_nms(boxes, scores, idxs, iou_threshold: float):
    """NMS independently per category (torchvision.ops.batched_nms).

    Args:
        boxes (array or Tensor[N, 4]): (x1, y1, x2, y2).
        scores (array or Tensor[N]): scores.
        idxs (array or Tensor[N]): category of each box (integers, or any finite numbers:
            boxes with equal values form one category).
        iou_threshold (float): as in :func:`nms`.
    Returns:
        array or Tensor[K] of int64: kept indices over all categories, in decreasing score
        order (equal scores: lower index first).

    Boxes of different categories never suppress each other. Implementation: NMS on each
    category's boxes as given (no coordinate offset), then the survivors merged by score.
    torchvision switches to a trick for small inputs — shifting each category's boxes by
    ``idx * (max_coordinate + 1)`` and running one NMS — whose float32 round-off can move an
    IoU across the threshold; tinyvision always runs the per-category NMS, which is what that
    trick approximates.

    >>> import numpy as np
    >>> boxes = np.array([[0., 0., 10., 10.], [1., 1., 11., 11.], [1., 1., 11., 11.]])
    >>> batched_nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), 0.5)
    array([0, 2])
    """
    if idxs is None:
        raise TypeError("batched_nms: idxs (the category of each box, shape (N,)) is required, got None; "
                        "use nms() for class-agnostic suppression")
    b, s, i, thr, xp, as_tensor = _prepare(boxes, scores, iou_threshold, idxs)
    n = b.shape[0]
    if n == 0:
        return _give_back(np.empty(0, dtype=np.int64), xp, as_tensor)
    # Group by category, and inside a category by decreasing score (lexsort is stable, so
    # equal scores keep the lower index first — the order per-category nms would use).
    order = np.lexsort((-s, i))
    grouped = i[order]
    starts = np.flatnonzero(np.concatenate(([True], grouped[1:] != grouped[:-1], [True]))).astype(np.int64)
    x1, y1, x2, y2 = _columns(b, order)
    keep = kernel("nms", "batched_nms_grouped", x1)(x1, y1, x2, y2, starts, thr)  # uint8 (n,)
    kept = np.sort(order[keep.view(bool)])                  # kept indices, increasing
    merged = kept[np.argsort(-s[kept], kind="stable")]      # by decreasing score, ties by index
    return _give_back(merged, xp, as_tensor)


# ----------------------------------------------------------------------------------------
# Plain-loop references
# ----------------------------------------------------------------------------------------
def nms_numpy_greedy(boxes, scores, iou_threshold):
    """The vectorised-NumPy greedy NMS most projects copy (py-faster-rcnn's ``py_cpu_nms``,
    without its +1 pixel convention): take the best remaining box, drop every remaining box
    whose IoU with it exceeds the threshold, repeat.

    Same result as :func:`nms` (stable score order, strict ``>``), but it computes one row of
    the IoU matrix per kept box in NumPy — O(N·K) work with a Python loop over kept boxes.
    Kept as the baseline that ``benchmarks/bench_ops.py`` times and as one more independent
    reference for the tests. Plain NumPy arrays in and out; no validation.
    """
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        inter_w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        inter_h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = inter_w * inter_h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.array(keep, dtype=np.int64)


class NMSStep(NamedTuple):
    """One step of greedy NMS: the box ``kept`` (its index and score), and every box it
    suppressed as ``(index, iou)`` pairs in score order."""

    kept: int
    score: float
    suppressed: list


class NMSTrace(list):
    """The steps of :func:`nms_trace`, in order; ``.keep`` are the kept indices (what ``nms``
    returns) and ``print(trace)`` is a table a learner can follow."""

    @property
    def keep(self):
        return np.array([step.kept for step in self], dtype=np.int64)

    def __str__(self):
        lines = [f"{'step':>4}  {'kept':>5}  {'score':>8}  suppressed (index: IoU)"]
        for k, st in enumerate(self):
            sup = ", ".join(f"{j}: {iou:.3f}" for j, iou in st.suppressed) or "-"
            lines.append(f"{k:>4}  {st.kept:>5}  {st.score:>8.4f}  {sup}")
        return "\n".join(lines)


def nms_trace(boxes, scores, iou_threshold: float) -> NMSTrace:
    """NMS as a learner writes it — sort, then two loops — recording each step: the box kept
    and the boxes it suppressed, with their IoUs. ``nms_trace(...).keep`` equals
    :func:`nms` bit for bit (the same arithmetic: NumPy scalars of the boxes' dtype, the IoU
    compared with the threshold in float64, strict ``>``, stable score order). O(N^2).

    >>> import numpy as np
    >>> boxes = np.array([[0., 0., 10., 10.], [1., 0., 11., 10.], [20., 20., 30., 30.]])
    >>> trace = nms_trace(boxes, np.array([0.6, 0.9, 0.5]), iou_threshold=0.5)
    >>> print(trace)
    step   kept     score  suppressed (index: IoU)
       0      1    0.9000  0: 0.818
       1      2    0.5000  -
    >>> trace.keep
    array([1, 2])
    """
    b, s, _, thr, _, _ = _prepare(boxes, scores, iou_threshold)
    n = len(b)
    zero = b.dtype.type(0)
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order = np.argsort(-s, kind="stable")       # highest score first, ties: lower index first
    suppressed = [False] * n
    steps = NMSTrace()
    for a in range(n):
        i = order[a]
        if suppressed[i]:
            continue
        step = NMSStep(int(i), float(s[i]), [])  # i beats everything still alive below it
        for c in range(a + 1, n):
            j = order[c]
            if suppressed[j]:
                continue
            w = max(zero, min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]))
            h = max(zero, min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]))
            inter = w * h
            with np.errstate(invalid="ignore"):
                iou = inter / (areas[i] + areas[j] - inter)   # 0/0 = NaN never suppresses
            if float(iou) > thr:                # compare in float64, as C++ does
                suppressed[j] = True
                step.suppressed.append((int(j), float(iou)))
        steps.append(step)
    return steps


def nms_reference(boxes, scores, iou_threshold: float):
    """NMS as a learner writes it (the loops of :func:`nms_trace`, keeping only the indices).
    Agrees bit for bit with :func:`nms`. Takes and returns NumPy arrays (validation as nms)."""
    return nms_trace(boxes, scores, iou_threshold).keep


def batched_nms_reference(boxes, scores, idxs, iou_threshold: float):
    """batched_nms as its definition: nms_reference per category, survivors merged by score."""
    b, s, i, thr, _, _ = _prepare(boxes, scores, iou_threshold, idxs)
    keep_mask = np.zeros(len(b), dtype=bool)
    for category in np.unique(i):
        members = np.flatnonzero(i == category)             # increasing original index
        kept = nms_reference(b[members], s[members], thr)
        keep_mask[members[kept]] = True
    kept = np.flatnonzero(keep_mask)
    return kept[np.argsort(-s[kept], kind="stable")].astype(np.int64)
