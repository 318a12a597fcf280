"""Numerical gradient checking (float64 central differences), as a public tool.

The check, for a function f of several tensors with output y:

1. draw a random upstream gradient G of y's shape (a random direction catches errors that
   an all-ones gradient hides: e.g. a transposed Jacobian that happens to sum correctly);
2. analytic: run ``y.backward(G)`` once, giving g_k = d<G, y>/d x_k for every input at once;
3. numeric: for every element x_k[i], (<G, f(x + eps e_i)> - <G, f(x - eps e_i)>) / (2 eps);
4. compare with |analytic - numeric| <= atol + rtol |numeric|, and on failure raise
   naming the input, the worst element and both values.

Everything runs on float64 copies of the inputs, so float32 round-off cannot hide an error.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, no_grad
from ..backend import to_device

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


def _as_float64_inputs(inputs):
    tensors, wrt = [], []
    for k, x in enumerate(inputs):
        if x is None or isinstance(x, (int, float, bool)):
            tensors.append(x)
            continue
        data = x.data if isinstance(x, Tensor) else np.asarray(x)
        if np.issubdtype(data.dtype, np.floating):
            wants = x.requires_grad if isinstance(x, Tensor) else True
            t = Tensor(data.astype(np.float64), requires_grad=wants)
            tensors.append(t)
            if wants:
                wrt.append(k)
        else:
            tensors.append(Tensor(data))  # integer targets, masks: passed through, not checked
    return tensors, wrt


def _outputs(y):
    return list(y) if isinstance(y, (tuple, list)) else [y]


def _weighted_sum(ys, gs):
    return sum(float(np.sum(to_device(y.data, "cpu") * g)) for y, g in zip(ys, gs) if g is not None)


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, raise_exception=True):
    """Check ``fn``'s analytic gradients against central differences, in float64.

    fn     : takes the inputs as Tensors, returns a Tensor (or a tuple of Tensors).
    inputs : arrays or Tensors. Floating-point ones are copied to float64 and checked (a
             Tensor with ``requires_grad=False`` is passed through unchecked); integer ones
             (class indices, masks) are passed as they are.
    Returns True, or raises :class:`GradcheckError` naming the worst element.

    >>> import numpy as np, tinyvision as tv
    >>> gradcheck(lambda x: (x * x).sum(), np.array([1.0, 2.0]))
    True
    """
    rng = np.random.default_rng(seed)
    tensors, wrt = _as_float64_inputs(inputs)
    if not wrt:
        raise ValueError("gradcheck: no floating-point input to check")
    ys = _outputs(fn(*tensors))
    gs = []
    for y in ys:
        if isinstance(y, Tensor) and y.requires_grad:
            gs.append(rng.standard_normal(y.shape))
        else:
            gs.append(None)
    if all(g is None for g in gs):
        raise GradcheckError("gradcheck: the function's output does not depend on any checked input")
    # Analytic: one backward with the random upstream gradient (several outputs: sum of <G, y>).
    total = None
    for y, g in zip(ys, gs):
        if g is not None:
            term = (y * Tensor(g)).sum()
            total = term if total is None else total + term
    total.backward()

    worst = None
    for k in wrt:
        x = tensors[k]
        analytic = np.zeros(x.shape) if x.grad is None else to_device(x.grad.data, "cpu")
        if analytic.shape != x.shape:
            raise GradcheckError(
                f"gradcheck: the analytic gradient of input {k} has shape {analytic.shape}, "
                f"the input has shape {x.shape}"
            )
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1)
        with no_grad():
            for i in range(flat.size):
                orig = flat[i]
                flat[i] = orig + eps
                f_plus = _weighted_sum(_outputs(fn(*tensors)), gs)
                flat[i] = orig - eps
                f_minus = _weighted_sum(_outputs(fn(*tensors)), gs)
                flat[i] = orig
                numeric.reshape(-1)[i] = (f_plus - f_minus) / (2 * eps)
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if err.size and (np.nanmax(err) > 0 or np.isnan(err).any()):
            i = int(np.nanargmax(np.where(np.isnan(err), np.inf, err)))
            idx = np.unravel_index(i, x.shape)
            cand = (float(err.reshape(-1)[i]) if not np.isnan(err.reshape(-1)[i]) else np.inf, k, idx,
                    float(analytic.reshape(-1)[i]), float(numeric.reshape(-1)[i]))
            if worst is None or cand[0] > worst[0]:
                worst = cand
    if worst is not None:
        _, k, idx, a, n = worst
        msg = (
            f"gradcheck failed for input {k} (shape {tensors[k].shape}) at element {tuple(int(j) for j in idx)}: "
            f"analytic {a!r} vs numerical {n!r} (|diff| {abs(a - n):.3g} > atol {atol} + rtol {rtol} * |numerical|)"
        )
        if raise_exception:
            raise GradcheckError(msg)
        return False
    return True
