"""Normalisation layers: BatchNorm1d, BatchNorm2d, GroupNorm (PyTorch's defaults and state_dict keys).

state_dict keys: ``weight``, ``bias`` (when affine), ``running_mean``, ``running_var``,
``num_batches_tracked`` (when track_running_stats) — a torch BatchNorm's state_dict loads as is.
See :mod:`tinyvision.functional.normalization` for the math and the gradients.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm"]


class _BatchNorm(Module):
    """Shared body of BatchNorm1d/2d.

    Parameters: weight (C,) = 1, bias (C,) = 0 (when ``affine``).
    Buffers: running_mean (C,) = 0, running_var (C,) = 1, num_batches_tracked () = 0 (int64)
    (when ``track_running_stats``).

    In training mode the batch statistics normalise and the running statistics are updated
    with factor ``momentum``; ``momentum=None`` makes the running statistics the cumulative
    (equal-weight) average over batches: factor 1/num_batches_tracked. In eval mode the
    running statistics normalise (or, without track_running_stats, the batch's).
    """

    _expected_dims: tuple = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float32):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
            self.bias.data[...] = 0

    def _check_input_dim(self, x):
        ndim = (x.data if isinstance(x, Tensor) else x).ndim
        if ndim not in self._expected_dims:
            wanted = " or ".join(f"{d}D" for d in self._expected_dims)
            raise ValueError(f"{type(self).__name__}: expected {wanted} input (got {ndim}D input of shape "
                             f"{tuple((x.data if isinstance(x, Tensor) else x).shape)})")

    def forward(self, x):
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            training=use_batch_stats,
            momentum=factor,
            eps=self.eps,
        )

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of x (N, C) or (N, C, L) over N (and L) per channel (Ioffe & Szegedy 2015,
    https://arxiv.org/abs/1502.03167)."""

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of x (N, C, H, W) over N, H, W per channel (Ioffe & Szegedy 2015,
    https://arxiv.org/abs/1502.03167).

    >>> import numpy as np, tinyvision as tv
    >>> bn = BatchNorm2d(2)
    >>> list(bn.state_dict())
    ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    """

    _expected_dims = (4,)


class GroupNorm(Module):
    """Group normalisation over ``num_groups`` groups of ``num_channels`` channels (Wu & He 2018,
    https://arxiv.org/abs/1803.08494); weight (C,) = 1, bias (C,) = 0 when ``affine``."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32):
        super().__init__()
        if num_groups < 1 or num_channels % num_groups != 0:
            raise ValueError(f"GroupNorm: num_channels={num_channels} must be divisible by num_groups={num_groups}")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = Parameter(np.ones(num_channels, dtype=dtype))
            self.bias = Parameter(np.zeros(num_channels, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
