"""Fully connected layer: y = x W^T + b."""
from __future__ import annotations

from .arithmetic import add, matmul
from .shape import transpose

__all__ = ["linear"]


def linear(input, weight, bias=None):
    r"""PyTorch's F.linear.   Shapes: x (..., in), weight (out, in), bias (out,) -> y (..., out).

    y = x W^T + b.  Gradients (through matmul and add): gx = gy W, gW = gy^T x (summed over
    the leading axes), gb = gy summed over the leading axes.
    """
    x = input   # PyTorch's argument names outside, math names inside
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {tuple(x.shape)} does not end in in_features={weight.shape[1]} "
            f"(weight shape {tuple(weight.shape)})"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    y = matmul(x, transpose(weight, 0, 1))
    return add(y, bias) if bias is not None else y
