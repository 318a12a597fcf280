"""Which array library an array lives on: NumPy (CPU) or CuPy (GPU).

This module is the only place that knows both libraries. Everything else asks
``xp = get_array_module(*arrays)`` and writes ``xp.exp(x)``, ``xp.zeros(...)``,
so one line of math runs on either device.

CuPy is optional: importing tinyvision never imports it eagerly, and asking for
the GPU without CuPy (or without a CUDA device) raises :class:`DeviceError`
saying which of the two is missing.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "DeviceError",
    "cupy_available",
    "get_array_module",
    "device_of",
    "to_device",
    "as_array",
    "scatter_add",
]


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot give, or devices were mixed."""


_cupy = None
_cupy_checked = False


def _import_cupy():
    """Import CuPy once; return the module or None."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy  # noqa: F401

            _cupy = cupy
        except Exception:  # ImportError, or a CUDA runtime that fails to load
            _cupy = None
    return _cupy


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    cp = _import_cupy()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CUDA driver missing or broken: the GPU is not usable
        return False


def _is_cupy_array(x) -> bool:
    # Check the type's module without importing CuPy: a NumPy-only machine never pays for it.
    return type(x).__module__.startswith("cupy")


def get_array_module(*xs):
    """Return ``numpy`` or ``cupy``: the library that holds the given arrays.

    Non-array arguments (Python scalars, None) are ignored. Tensors are looked through
    to their ``.data``. Mixing NumPy and CuPy arrays raises :class:`DeviceError`
    naming both, instead of an implicit (and slow, or failing) transfer.

    >>> import numpy as np
    >>> get_array_module(np.zeros(3), 2.0) is np
    True
    """
    found_cpu = found_gpu = None
    for x in xs:
        x = getattr(x, "data", x) if type(x).__name__ == "Tensor" else x
        if _is_cupy_array(x):
            found_gpu = x
        elif isinstance(x, np.ndarray):
            found_cpu = x
    if found_gpu is not None and found_cpu is not None:
        raise DeviceError(
            "arrays on different devices meet in one operation: a NumPy array of shape "
            f"{found_cpu.shape} (cpu) and a CuPy array of shape {found_gpu.shape} (cuda); "
            "move one with .to('cpu') or .to('cuda') first"
        )
    if found_gpu is not None:
        return _import_cupy()
    return np


def device_of(x) -> str:
    """'cpu' for NumPy arrays (and scalars), 'cuda' for CuPy arrays."""
    return "cuda" if _is_cupy_array(x) else "cpu"


def _normalise_device(device: str) -> str:
    d = str(device).lower()
    if d == "cpu":
        return "cpu"
    if d == "gpu" or d == "cuda" or d.startswith("cuda:"):
        return "cuda"
    raise DeviceError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def to_device(x, device: str):
    """Return array ``x`` on ``device`` ('cpu' or 'cuda'); no copy when it is already there."""
    device = _normalise_device(device)
    if device == "cpu":
        if _is_cupy_array(x):
            return x.get()
        return np.asarray(x)
    cp = _import_cupy()
    if cp is None:
        raise DeviceError(
            "device 'cuda' was asked for but CuPy is not installed "
            "(pip install 'tinyvision[gpu]'), so there is no GPU backend"
        )
    if not cupy_available():
        raise DeviceError("device 'cuda' was asked for but CuPy sees no CUDA device on this machine")
    return cp.asarray(x)


def as_array(x, dtype=None, xp=None):
    """``x`` as an array of the module ``xp`` (default: the one ``x`` already lives on)."""
    if xp is None:
        xp = get_array_module(x)
    return xp.asarray(x, dtype=dtype)


def _is_basic_index(index) -> bool:
    """True when ``index`` uses only ints, slices, None and Ellipsis (no arrays, no masks)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice, np.integer)) for i in items)


def scatter_add(target, index, values):
    """``target[index] += values`` in place, *adding* where an index repeats.

    Basic indexing never repeats an element, so plain ``+=`` is right (and fast); integer-array
    and mask indexing go through ``np.add.at`` / ``cupyx.scatter_add``, which accumulate.
    """
    if _is_basic_index(index):
        target[index] += values
    elif _is_cupy_array(target):
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)
    return target
