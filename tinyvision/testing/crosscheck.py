"""Cross-check a tinyvision function against a PyTorch one: forward values and gradients.

For framework engineers (does my op match PyTorch's?) and for tinyvision's own tests:

>>> import numpy as np                                            # doctest: +SKIP
>>> import tinyvision.functional as F, torch                       # doctest: +SKIP
>>> crosscheck(F.sigmoid, torch.sigmoid, np.random.randn(3, 4))   # doctest: +SKIP
True
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from .tolerances import tolerance

__all__ = ["crosscheck", "CrosscheckError"]


class CrosscheckError(AssertionError):
    """tinyvision and the reference disagree."""


def _compare(what, ours, theirs, rtol, atol):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        raise CrosscheckError(f"{what}: shape {ours.shape} vs reference {theirs.shape}")
    ok = np.isclose(ours, theirs, rtol=rtol, atol=atol, equal_nan=True)
    if not ok.all():
        i = np.unravel_index(int(np.argmin(ok.reshape(-1))), ours.shape) if ours.ndim else ()
        raise CrosscheckError(
            f"{what}: at {tuple(int(j) for j in i)} tinyvision gives {ours[i]!r}, the reference {theirs[i]!r} "
            f"({int((~ok).sum())} of {ok.size} elements differ beyond rtol={rtol}, atol={atol})"
        )


def crosscheck(ours, theirs, *inputs, grad=True, seed=0, rtol=None, atol=None):
    """Run ``ours`` (tinyvision) and ``theirs`` (PyTorch) on the same inputs; compare.

    inputs: NumPy arrays become tensors in both frameworks (floating ones with gradients;
    integer ones as int64 tensors, boolean ones as masks); anything else (Python scalars,
    tuples of pad widths, None) is passed to both functions as it is.
    Outputs may be tensors or tuples of tensors.
    The gradient check uses one random upstream gradient per output, the same for both.
    Tolerances default to the project's table for the inputs' dtype.
    """
    import torch

    arrays = [x.numpy() if isinstance(x, Tensor) else x for x in inputs]
    float_dtypes = [a.dtype for a in arrays if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    tol = tolerance(float_dtypes[0] if float_dtypes else np.float64)
    rtol = tol["rtol"] if rtol is None else rtol
    atol = tol["atol"] if atol is None else atol

    tv_in, th_in = [], []
    for a in arrays:
        if isinstance(a, np.ndarray):
            floating = a.dtype.kind == "f"
            if a.dtype.kind in "iu":
                a = a.astype(np.int64)  # class indices, index arrays: PyTorch's long
            tv_in.append(Tensor(a, requires_grad=grad and floating))
            th_in.append(torch.tensor(a, requires_grad=grad and floating))
        else:
            tv_in.append(a)
            th_in.append(a)
    y_ours, y_theirs = ours(*tv_in), theirs(*th_in)
    y_ours = list(y_ours) if isinstance(y_ours, (tuple, list)) else [y_ours]
    y_theirs = list(y_theirs) if isinstance(y_theirs, (tuple, list)) else [y_theirs]
    if len(y_ours) != len(y_theirs):
        raise CrosscheckError(f"{len(y_ours)} outputs vs the reference's {len(y_theirs)}")
    for k, (a, b) in enumerate(zip(y_ours, y_theirs)):
        _compare(f"output {k}", a.numpy(), b.detach().numpy(), rtol, atol)
    if not grad:
        return True
    rng = np.random.default_rng(seed)
    loss_ours, loss_theirs = None, None
    for a, b in zip(y_ours, y_theirs):
        if not (isinstance(a, Tensor) and a.requires_grad):
            continue
        g = rng.standard_normal(a.shape).astype(a.dtype)
        lo = (a * Tensor(g)).sum()
        lt = (b * torch.tensor(g)).sum()
        loss_ours = lo if loss_ours is None else loss_ours + lo
        loss_theirs = lt if loss_theirs is None else loss_theirs + lt
    if loss_ours is None:
        return True
    loss_ours.backward()
    loss_theirs.backward()
    for k, (a, b) in enumerate(zip(tv_in, th_in)):
        if isinstance(a, Tensor) and a.requires_grad:
            if b.grad is None and a.grad is None:
                continue
            if a.grad is not None and a.grad.dtype != a.dtype:
                raise CrosscheckError(
                    f"gradient of input {k}: dtype {a.grad.dtype}, but the input is {a.dtype}"
                )
            ga = a.grad.numpy() if a.grad is not None else np.zeros(a.shape)
            gb = b.grad.numpy() if b.grad is not None else np.zeros(a.shape)
            _compare(f"gradient of input {k}", ga, gb, rtol, atol)
    return True
