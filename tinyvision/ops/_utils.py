"""Input handling shared by the box ops: Tensor/array in and out, shape and value checks.

Convention for every non-differentiable op in ``tinyvision.ops``: **arrays in -> arrays out,
Tensors in -> Tensors out** (a Tensor result carries no gradient). Python lists are accepted
and treated as NumPy arrays.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from ..backend import get_array_module

__all__ = []


def unwrap(x, name):
    """Return (array, was_tensor) for an array, a Tensor, or a nested list of numbers."""
    if isinstance(x, Tensor):
        return x.data, True
    if hasattr(x, "__cuda_array_interface__"):
        return x, False
    if isinstance(x, np.ndarray):
        if x.dtype.byteorder not in "=|":   # byte-swapped (e.g. read from a big-endian file)
            x = x.astype(x.dtype.newbyteorder("="))
        return x, False
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array or a Tensor, got {type(x).__name__}") from exc
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__} of mixed objects")
    return arr, False


def wrap(arr, as_tensor):
    """Give ``arr`` back as a Tensor (no gradient) when the input was one."""
    return Tensor(arr) if as_tensor else arr


def check_real(arr, name):
    """Numbers only: bool, complex and object arrays are refused with a TypeError."""
    kind = np.dtype(arr.dtype).kind
    if kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers (float or int), got dtype {arr.dtype}")


def check_boxes(arr, name, batch_ok=False):
    """``arr`` must be (N, 4) — or (..., 4) when ``batch_ok`` — of real numbers."""
    check_real(arr, name)
    ok = arr.ndim >= 1 and arr.shape[-1] == 4 if batch_ok else arr.ndim == 2 and arr.shape[1] == 4
    if not ok:
        want = "(..., 4)" if batch_ok else "(N, 4)"
        raise ValueError(f"{name} must have shape {want} in (x1, y1, x2, y2), got shape {tuple(arr.shape)}")


def check_finite(arr, name):
    """Refuse NaN and +-inf, naming the first offending row."""
    xp = get_array_module(arr)
    if np.dtype(arr.dtype).kind != "f" or arr.size == 0:
        return
    bad = ~xp.isfinite(arr)
    if bool(bad.any()):
        flat_row = int(xp.argmax(bad.reshape(arr.shape[0], -1).any(axis=1))) if arr.ndim > 1 else int(xp.argmax(bad))
        raise ValueError(
            f"{name} contains NaN or inf (first at row {flat_row}: {arr[flat_row].tolist()}); "
            "coordinates and scores must be finite"
        )


def check_ordered(boxes, name):
    """Refuse boxes with x2 < x1 or y2 < y1, naming the first one (zero width/height is fine)."""
    xp = get_array_module(boxes)
    if boxes.shape[0] == 0:
        return
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bool(bad.any()):
        r = int(xp.argmax(bad))
        raise ValueError(
            f"{name}[{r}] = {boxes[r].tolist()} has x2 < x1 or y2 < y1; boxes must be "
            "(x1, y1, x2, y2) with x1 <= x2 and y1 <= y2"
        )


def upcast(arr):
    """torchvision's ``_upcast``: float16 -> float32, small ints -> int32; float32/64, int32/64 kept.

    Used before products (areas, intersections) so they do not overflow a narrow dtype.
    """
    dt = np.dtype(arr.dtype)
    if dt.kind == "f":
        return arr if dt in (np.float32, np.float64) else arr.astype(np.float32)
    return arr if dt in (np.int32, np.int64) else arr.astype(np.int32)


def float_for_ratio(arr):
    """The dtype a ratio of ``arr``'s values is computed in (torch's true division):
    float32 and float64 kept, everything else float32 (PyTorch's default dtype)."""
    dt = np.dtype(arr.dtype)
    return dt if dt in (np.float32, np.float64) else np.dtype(np.float32)
