"""Argument checks shared by the public functions and layers (validated once, there; the
kernels below trust what they are given)."""
from __future__ import annotations

import operator

__all__ = ["int_pair"]


def _as_int(v):
    """v as an int, or None: Python and NumPy integers (anything with __index__), never a bool."""
    if isinstance(v, bool):
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def int_pair(name, value, *, minimum=None, where=None, allow_single=False):
    """An integer or a pair of integers -> (height, width), each >= ``minimum`` when one is given.

    ``allow_single``: a 1-tuple (k,) means (k, k), as PyTorch's pooling functions take it.
    Anything else is a TypeError naming the argument (1.5 is refused, not truncated); a value
    below ``minimum`` a ValueError. ``where`` (the public function or layer) prefixes both.

    >>> int_pair("stride", 2), int_pair("padding", (1, 0), minimum=0)
    ((2, 2), (1, 0))
    """
    prefix = f"{where}: " if where else ""
    if isinstance(value, (tuple, list)):
        if len(value) == 1 and allow_single:
            value_hw = (value[0], value[0])
        elif len(value) == 2:
            value_hw = tuple(value)
        else:
            value_hw = (None, None)
    else:
        value_hw = (value, value)
    pair = tuple(_as_int(v) for v in value_hw)
    if None in pair:
        raise TypeError(f"{prefix}{name} must be an integer or a pair of integers, got {value!r}")
    if minimum is not None and min(pair) < minimum:
        raise ValueError(f"{prefix}{name} must be >= {minimum}, got {value!r}")
    return pair
