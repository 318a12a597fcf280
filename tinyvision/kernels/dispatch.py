r"""The one dispatch point of every heavy kernel: which implementation, on which device.

Every heavy op keeps its kernels in ``kernels/cpu/<op>.py`` in one shape: first the plain-loop
*reference* (the formula a learner reads), then the *fast* kernel with the **same signature**;
a test (``tests/kernels/test_dispatch_contract.py``) checks that the two agree and that the
signatures match. A caller never imports a kernel module; it asks

    fn = kernel("pool", "max_pool2d_forward", x)        # the callable for x's device
    y, indices = fn(x, h_start, h_count, w_start, w_count, 1, 1)

and ``kernel`` decides:

==============  =============================================  ============================================
arrays          ``impl="fast"`` (the default)                   ``impl="reference"``
==============  =============================================  ============================================
NumPy           ``kernels.cpu.<op>.<name>``                     ``kernels.cpu.<op>.<name>_reference``
CuPy            ``kernels.gpu.<op>.<name>`` when that exists,   the CPU reference on host copies, the
                else the CPU kernel on host copies, the         results copied back to the device
                results copied back to the device
NumPy and CuPy  :class:`~tinyvision.backend.DeviceError` naming both arrays
==============  =============================================  ============================================

Only the arrays that decide the device are passed to ``kernel`` (the data, not the small
index tables, which may stay NumPy arrays: the GPU kernels move them themselves). A host copy
turns every CuPy argument into a NumPy array and every NumPy array in the result (also inside
a tuple) into a CuPy array; so a kernel in the table *returns* its outputs, never writes them
into an argument.

The heavy ops (``KERNELS`` below is the same list; "-": no GPU module yet, so CuPy input runs
the CPU kernel on host copies):

========  ===========================  ======================================  =================  ==========
op        fast, ``kernels/cpu/<op>``   reference, ``<name>_reference``         GPU, kernels/gpu   CuPy input
========  ===========================  ======================================  =================  ==========
pool      max_pool2d_forward           loops over window tables (+ NaN rule)   pool.py            on device
pool      max_pool2d_backward          scatter of gy onto each argmax          pool.py            on device
pool      avg_pool2d_forward           window sums in float64 / divisor        pool.py            on device
pool      avg_pool2d_backward          gy / divisor added over each window     pool.py            on device
resample  resample2d_forward           sums over row and column taps           resample.py        on device
resample  resample2d_backward          scatter over the taps                   resample.py        on device
boxes     box_iou                      two loops over box pairs                boxes.py           on device
nms       nms_sorted                   keep j unless a kept i < j overlaps it  -                  host (1)
nms       batched_nms_grouped          nms_sorted_reference per segment        -                  host (1)
coco      coco_match                   pycocotools' evaluateImg loops          -                  host (2)
coco      coco_accumulate              pycocotools' accumulate (cumsum)        -                  host (2)
batch_norm batch_norm_train_forward   the statistics, then xhat, y per channel -                  array (3)
batch_norm batch_norm_eval_forward    y = w (x - mu) r + b                    -                  array (3)
batch_norm batch_norm_backward        gb, gw, then gx per channel             -                  array (3)
batch_norm channel_sum                sum per channel in float64              -                  array (4)
activation relu_forward               y = 0 if x <= 0 else x (NaN kept)       -                  array (3)
activation relu_backward              gx = 0 if y <= 0 else gy                -                  array (3)
conv      conv2d_forward, _grad_*      (still dispatched by conv_dispatch.py)  conv.py            on device
========  ===========================  ======================================  =================  ==========

(1) ``ops/nms.py`` validates and sorts on the host (``to_device(..., "cpu")``) and copies the
    kept indices back, so the kernel only ever sees NumPy arrays.
(2) ``metrics/coco.py`` works on host arrays throughout (annotations are Python objects).
(3) ``functional/normalization.py`` and ``functional/activation.py`` ask for these kernels only
    for C-contiguous NumPy float32/float64 arrays; any other input (CuPy, float16, a strided
    view) runs the Function's own array formulas, which are written with ``xp`` and stay on the
    device (one elementwise expression each: no kernel of their own to write for CuPy).
(4) A convolution's bias gradient (``functional/conv.py``), asked for the same way: C-contiguous
    NumPy float32/float64 only; CuPy arrays use ``gy.sum(axis=(0, 2, 3), dtype="float64")``.

Choosing the implementation: the ``impl`` argument, or, for a whole model or metric at once
(``impl=None``, what the callers pass), the module-level default set by :func:`use_impl`::

    with use_impl("reference"):          # every heavy op runs its plain loops
        y = F.max_pool2d(x, 3)

Cost on the fast path: one :func:`~tinyvision.backend.get_array_module` and one dict lookup
per call; resolved callables (imports, host-copy wrappers) are cached.

>>> import numpy as np
>>> x = np.arange(4.0).reshape(1, 1, 2, 2)
>>> t = np.array([0]), np.array([2])
>>> kernel("pool", "max_pool2d_forward", x)(x, *t, *t, 1, 1)[0]
array([[[[3.]]]])
>>> kernel("pool", "max_pool2d_forward", x, impl="reference").__name__
'max_pool2d_forward_reference'
"""
from __future__ import annotations

import contextlib
import functools
import importlib

import numpy as np

from ..backend import get_array_module, to_device

__all__ = ["IMPLS", "KERNELS", "kernel", "use_impl", "default_impl"]

IMPLS = ("fast", "reference")

# op -> the fast kernels of kernels/cpu/<op>.py; each has a <name>_reference beside it.
KERNELS = {
    "pool": ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"),
    "resample": ("resample2d_forward", "resample2d_backward"),
    "boxes": ("box_iou",),
    "nms": ("nms_sorted", "batched_nms_grouped"),
    "coco": ("coco_match", "coco_accumulate"),
    "batch_norm": ("batch_norm_train_forward", "batch_norm_eval_forward", "batch_norm_backward", "channel_sum"),
    "activation": ("relu_forward", "relu_backward"),
}

_default_impl = "fast"
_resolved = {}  # (op, name, impl, on_gpu) -> callable


def default_impl():
    """The implementation used when a caller passes ``impl=None``: "fast" unless changed by
    :func:`use_impl`."""
    return _default_impl


@contextlib.contextmanager
def use_impl(impl):
    """Run the enclosed code with every dispatched kernel's default implementation set to
    ``impl`` ("fast" or "reference"). For tests and for reading: not thread-safe."""
    global _default_impl
    _check_impl(impl)
    previous, _default_impl = _default_impl, impl
    try:
        yield
    finally:
        _default_impl = previous


def _check_impl(impl):
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


def kernel(op, name, *arrays, impl=None):
    """The kernel ``name`` of ``op`` for ``arrays``' device and the implementation ``impl``
    ("fast", "reference", or None: :func:`default_impl`). See the module docstring."""
    if impl is None:
        impl = _default_impl
    on_gpu = get_array_module(*arrays) is not np  # raises DeviceError on mixed devices
    key = (op, name, impl, on_gpu)
    fn = _resolved.get(key)
    if fn is None:
        fn = _resolved[key] = _resolve(op, name, impl, on_gpu)
    return fn


def _resolve(op, name, impl, on_gpu):
    _check_impl(impl)
    if op not in KERNELS:
        raise ValueError(f"unknown kernel op {op!r}: expected one of {tuple(KERNELS)}")
    if name not in KERNELS[op]:
        raise ValueError(f"unknown kernel {op}.{name}: {op} has {KERNELS[op]}")
    cpu = importlib.import_module(f"{__package__}.cpu.{op}")
    if impl == "reference":
        fn = getattr(cpu, f"{name}_reference")
        return on_host(fn) if on_gpu else fn
    if not on_gpu:
        return getattr(cpu, name)
    gpu_fn = getattr(_gpu_module(op), name, None)
    return gpu_fn if gpu_fn is not None else on_host(getattr(cpu, name))


def _gpu_module(op):
    try:
        return importlib.import_module(f"{__package__}.gpu.{op}")
    except ModuleNotFoundError:
        return None


def _to_host(a):
    return to_device(a, "cpu") if type(a).__module__.startswith("cupy") else a


def _to_gpu(out):
    if isinstance(out, tuple):
        return tuple(_to_gpu(o) for o in out)
    if isinstance(out, np.ndarray):
        return to_device(out, "cuda")
    return out


def on_host(fn):
    """``fn`` run on host copies of its CuPy arguments, its array results copied to the GPU."""

    @functools.wraps(fn)
    def run_on_host(*args, **kwargs):
        out = fn(*[_to_host(a) for a in args], **{k: _to_host(v) for k, v in kwargs.items()})
        return _to_gpu(out)

    return run_on_host
