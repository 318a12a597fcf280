"""Argument checks shared by the functional ops (one place, one message style)."""
from __future__ import annotations

import operator

__all__ = ["dim_index"]


def dim_index(name: str, d) -> int:
    """``d`` as a Python int, or a TypeError naming ``name``: a dim must be an integer
    (``dim=1.5`` or ``dim="1"`` is refused, not truncated; NumPy integers are accepted)."""
    if isinstance(d, bool) or not hasattr(d, "__index__"):
        raise TypeError(f"{name}: dim must be an int (or a tuple of ints), got {d!r} ({type(d).__name__})")
    return operator.index(d)
