r"""Layers torchvision keeps in ``torchvision.ops.misc``: :class:`FrozenBatchNorm2d`.

A detection backbone is usually fine-tuned with batches of one or two images, far too few for
batch statistics; torchvision then freezes every BatchNorm into a fixed per-channel affine map.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from ..backend import get_array_module
from ..nn.module import Module

__all__ = ["FrozenBatchNorm2d"]


class FrozenBatchNorm2d(Module):
    r"""BatchNorm2d whose statistics and affine parameters are fixed (torchvision.ops.misc semantics).

    Shapes: x, y (N, C, H, W); buffers weight w, bias b, running_mean m, running_var v (C,).

    It is eval-mode BatchNorm folded into one scale and one shift per channel, computed the way
    torchvision computes them (same order of operations, so float32 results agree to round-off):

        s[c] = w[c] / sqrt(v[c] + eps),    t[c] = b[c] - m[c] s[c],    y = x s[c] + t[c]

    All four are *buffers*, not parameters: nothing here is trained, and in train mode it does
    the same as in eval mode. The only gradient is the input's, gx = gy s[c] (autograd of the
    product and the sum above).

    state_dict keys: ``weight``, ``bias``, ``running_mean``, ``running_var``. A BatchNorm2d
    state dict loads as is: its ``num_batches_tracked`` is dropped on load, as torchvision does.

    >>> import numpy as np, tinyvision as tv
    >>> bn = FrozenBatchNorm2d(2)
    >>> list(bn.state_dict())
    ['weight', 'bias', 'running_mean', 'running_var']
    >>> bn
    FrozenBatchNorm2d(2, eps=1e-05)
    """

    def __init__(self, num_features: int, eps: float = 1e-5, dtype=np.float32):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", Tensor(np.ones(num_features, dtype=dtype)))
        self.register_buffer("bias", Tensor(np.zeros(num_features, dtype=dtype)))
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
        self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))

    def _prepare_state_dict(self, state_dict, prefix: str):
        """Drop a BatchNorm's ``num_batches_tracked`` before the keys are matched (torchvision's
        ``_load_from_state_dict``): a frozen layer counts no batches."""
        state_dict.pop(prefix + "num_batches_tracked", None)

    def forward(self, x):
        if (x.ndim if hasattr(x, "ndim") else np.ndim(x)) != 4:
            raise ValueError(f"FrozenBatchNorm2d: expected 4D input (N, C, H, W), got shape {tuple(x.shape)}")
        C = self.weight.shape[0]
        if x.shape[1] != C:
            raise ValueError(f"FrozenBatchNorm2d: input has {x.shape[1]} channels (shape {tuple(x.shape)}), "
                             f"the layer has num_features={C}")
        # buffers (C,) -> (1, C, 1, 1), before any arithmetic, as torchvision does
        xp = get_array_module(self.weight.data)
        w = self.weight.data.reshape(1, -1, 1, 1)
        b = self.bias.data.reshape(1, -1, 1, 1)
        v = self.running_var.data.reshape(1, -1, 1, 1)
        m = self.running_mean.data.reshape(1, -1, 1, 1)
        scale = w * (1.0 / xp.sqrt(v + self.eps)).astype(w.dtype)   # s = w rsqrt(v + eps)
        shift = b - m * scale                                       # t = b - m s
        if not isinstance(x, Tensor):
            x = Tensor(x)
        return x * Tensor(scale) + Tensor(shift)

    def __repr__(self):
        return f"{type(self).__name__}({self.weight.shape[0]}, eps={self.eps})"


def apply_state_dict_hooks(module: Module, state_dict):
    """A shallow copy of ``state_dict`` after every submodule's ``_prepare_state_dict`` hook ran
    (the step torch's ``_load_from_state_dict`` performs). ``Module.load_state_dict`` now runs
    these hooks itself, so this is only needed to inspect what a model will load; running the
    hooks twice is harmless (they drop keys)."""
    state_dict = dict(state_dict)
    for mprefix, m in module.named_modules():
        hook = getattr(m, "_prepare_state_dict", None)
        if hook is not None:
            hook(state_dict, f"{mprefix}." if mprefix else "")
    return state_dict
