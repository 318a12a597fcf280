r"""Dropout (Srivastava et al. 2014, https://jmlr.org/papers/v15/srivastava14a.html), inverted.

Shapes: x, y, gy, gx alike; mask m of the same shape.

Forward (training): draw m[i] = 1 with probability 1 - p, else 0, independently;

    y = x * m / (1 - p)

("inverted" dropout: the scaling happens at training time, so E[y] = x and evaluation is
the identity). Backward: y is linear in x with the mask fixed, dy_i/dx_i = m_i / (1 - p):

    gx = gy * m / (1 - p)

p = 1 drops everything: y = x * 0 (PyTorch's result, including NaN for infinite x).

Random numbers: the mask is ``u >= p`` with u uniform on [0, 1) drawn from ``generator``
when one is given (a ``numpy.random.Generator``), else from tinyvision's process-wide
generator (:func:`tinyvision.random.default_generator`, reseeded by
``tinyvision.random.manual_seed``). The mask is drawn on the CPU and moved to the input's
device. Masks are reproducible but not PyTorch's (a different generator).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..backend import get_array_module
from ..random import default_generator

__all__ = ["dropout", "DropoutFunction"]


class DropoutFunction(Function):
    r"""y = x * s with a fixed scaled mask s = m / (1 - p);  gx = gy * s."""

    def __init__(self, scaled_mask):
        self.scaled_mask = scaled_mask

    def forward(self, x):
        return x * self.scaled_mask

    def backward(self, gy):
        return gy * self.scaled_mask


def dropout(input, p=0.5, training=True, inplace=False, generator=None):
    r"""Inverted dropout, as ``torch.nn.functional.dropout`` (see the module docstring).

    Args:
        x (Tensor): any shape, float.
        p (float): probability of zeroing an element, 0 <= p <= 1.
        training (bool): False returns x unchanged (the identity, as PyTorch).
        inplace (bool): accepted for PyTorch compatibility; the result is always a new tensor.
        generator: ``numpy.random.Generator`` to draw the mask from (default:
            ``tinyvision.random.default_generator()``).

    >>> import numpy as np, tinyvision as tv
    >>> y = dropout(tv.tensor(np.ones(8)), p=0.5, generator=np.random.default_rng(0))
    >>> sorted(set(y.numpy().tolist()))
    [0.0, 2.0]
    """
    x = input   # PyTorch's argument names outside, math names inside
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got p={p!r}")
    if not training or p == 0:
        return x if isinstance(x, Tensor) else Tensor(x)
    xd = x.data if isinstance(x, Tensor) else np.asarray(x)
    if xd.dtype not in (np.float16, np.float32, np.float64):
        raise TypeError(f"dropout: input must be floating point, got {xd.dtype} (shape {tuple(xd.shape)})")
    xp = get_array_module(xd)
    if p == 1:
        scaled_mask = xp.zeros(xd.shape, dtype=xd.dtype)
    else:
        u = xp.asarray(default_generator(generator).random(xd.shape))
        keep = u >= p  # probability 1 - p
        scaled_mask = keep.astype(xd.dtype) / xd.dtype.type(1 - p)
    return DropoutFunction(scaled_mask)(x)
