"""PyTorch twins of tinyvision models that have no PyTorch library counterpart, typed out in
PyTorch independently of tinyvision's code, with the same module tree (so a state_dict loads one
to one). Used by the parity tests and by ``benchmarks/bench_models.py``; imports torch (a test
dependency), so it is imported on use only.

* :class:`TorchUNet` — the paper's U-Net (:class:`tinyvision.models.segmentation.UNet2015`).
"""
import torch
from torch import nn as tnn

__all__ = ["TorchUNet"]


class TorchDoubleConv(tnn.Sequential):
    def __init__(self, c_in, c_out, padding, batch_norm):
        layers = []
        for c in (c_in, c_out):
            layers.append(tnn.Conv2d(c, c_out, 3, padding=padding, bias=not batch_norm))
            if batch_norm:
                layers.append(tnn.BatchNorm2d(c_out))
            layers.append(tnn.ReLU())
        super().__init__(*layers)


class TorchUp(tnn.Module):
    def __init__(self, c_in, c_out, padding, batch_norm, skips):
        super().__init__()
        self.up = tnn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        self.conv = TorchDoubleConv(2 * c_out if skips else c_out, c_out, padding, batch_norm)


class TorchUNet(tnn.Module):
    """The paper's U-Net typed out in PyTorch, independently of tinyvision's code."""

    def __init__(self, in_channels, num_classes, base, depth, padding, batch_norm=False, skips=True):
        super().__init__()
        w = [base * 2 ** k for k in range(depth + 1)]
        self.skips = skips
        self.down = tnn.ModuleList([TorchDoubleConv(in_channels if k == 0 else w[k - 1], w[k], padding, batch_norm)
                                    for k in range(depth + 1)])
        self.pool = tnn.MaxPool2d(2)
        self.up = tnn.ModuleList([TorchUp(w[k + 1], w[k], padding, batch_norm, skips) for k in reversed(range(depth))])
        self.head = tnn.Conv2d(w[0], num_classes, 1)

    def forward(self, x):
        feats = []
        for k, level in enumerate(self.down):
            x = level(x)
            if k < len(self.down) - 1:
                feats.append(x)
                x = self.pool(x)
        for block, skip in zip(self.up, reversed(feats)):
            x = block.up(x)
            if self.skips:
                dh, dw = (skip.shape[2] - x.shape[2]) // 2, (skip.shape[3] - x.shape[3]) // 2
                skip = skip[:, :, dh:dh + x.shape[2], dw:dw + x.shape[3]]
                x = torch.cat([x, skip], 1)
            x = block.conv(x)
        return self.head(x)
