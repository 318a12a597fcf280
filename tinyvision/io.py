"""Saving and loading weights as ``.npz`` — never pickle — written atomically.

``save(obj, path)`` accepts a Module (its ``state_dict()``) or a mapping of names to arrays.
The file is written to a temporary file in the same directory and moved into place with
``os.replace``, so a crash mid-write leaves the previous file intact (never a half-written
one). ``load(path)`` reads with ``allow_pickle=False`` and returns an ordered dict that
``Module.load_state_dict`` accepts.
"""
from __future__ import annotations

import os
import tempfile
from collections import OrderedDict

import numpy as np

__all__ = ["save", "load"]


def save(obj, path) -> str:
    """Write a Module's state_dict (or a dict of arrays) to ``path`` (.npz), atomically."""
    from .autograd import Tensor

    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not hasattr(state, "items"):
        raise TypeError(f"save: expected a Module or a mapping of names to arrays, got {type(obj).__name__}")
    arrays = OrderedDict()
    for k, v in state.items():
        if not isinstance(k, str):
            raise TypeError(f"save: keys must be strings, got {k!r}")
        a = v.numpy() if isinstance(v, Tensor) else np.asarray(v)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"save: {k!r} has dtype {a.dtype}; only numeric and bool arrays are saved (no pickle)")
        arrays[k] = a
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"  # np.savez would add it anyway; make the returned path true
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(path) -> "OrderedDict[str, np.ndarray]":
    """Read a ``.npz`` written by :func:`save` (no pickle) into an ordered dict of arrays."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as data:
            return OrderedDict((k, data[k]) for k in data.files)
    except ValueError as e:
        raise ValueError(f"load: {path!s} holds object arrays, which would need pickle; refusing ({e})") from None
