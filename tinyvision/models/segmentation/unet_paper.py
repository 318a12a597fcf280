r"""The original U-Net: Ronneberger, Fischer & Brox 2015, "U-Net: Convolutional Networks for
Biomedical Image Segmentation", https://arxiv.org/abs/1505.04597 (Fig. 1).

``UNet2015(in_channels=1, num_classes=2, base_channels=64, depth=4, padding=0)`` is the paper's
network; ``padding=1`` keeps every map the size of its input (the common "same" variant).
Composition only: conv2d, ReLU, max-pool, transposed conv, concatenation, crop.

The U for the paper's setting (padding=0, base 64, depth 4, a 572 x 572 tile; N C H W, N omitted)::

    input  1 x 572²                                                         output  2 x 388²
      │                                                                           ▲
    [3x3 conv, ReLU] x 2                                                  1x1 conv (head)
      64 x 570² -> 64 x 568² ───────── crop 568² -> 392², concat ──────▶ 128 x 392² -> [3x3, ReLU] x 2
      │ 2x2 max-pool                                                       -> 64 x 390² -> 64 x 388²
      ▼                                                                           ▲ 2x2 up-conv 128 -> 64
     64 x 284² -> 128 x 282² -> 128 x 280² ─ crop 280² -> 200², concat ─▶ 256 x 200² -> 128 x 198² -> 128 x 196²
      │                                                                           ▲ 2x2 up-conv 256 -> 128
      ▼                                                                           │
    128 x 140² -> 256 x 138² -> 256 x 136² ─ crop 136² -> 104², concat ─▶ 512 x 104² -> 256 x 102² -> 256 x 100²
      │                                                                           ▲ 2x2 up-conv 512 -> 256
      ▼                                                                           │
    256 x 68² -> 512 x 66² -> 512 x 64² ──── crop 64² -> 56², concat ───▶ 1024 x 56² -> 512 x 54² -> 512 x 52²
      │                                                                           ▲ 2x2 up-conv 1024 -> 512
      ▼ 2x2 max-pool                                                              │
    512 x 32² -> 1024 x 30² -> 1024 x 28² (the bottom of the U) ──────────────────┘

Level k (k = 0 .. depth) has ``base_channels * 2**k`` channels. Each encoder level is two 3x3
convs + ReLU, then a 2x2 max-pool (stride 2) down; each decoder level a 2x2 transposed conv
(stride 2) that doubles the size and halves the channels, the concatenation ``[up, skip]``
along channels with the encoder map of that level, and two 3x3 convs + ReLU; a 1x1 conv maps
the last ``base_channels`` to ``num_classes`` logits.

**Why crop.** Unpadded 3x3 convs lose 2 pixels per conv, so the encoder map of a level is larger
than the upsampled decoder map it meets; the paper keeps its centre ("cropping is necessary due
to the loss of border pixels in every convolution"). The output then covers only the centre of
the input tile (388 of 572: the overlap-tile strategy feeds mirrored borders to fill it).

**Which sizes work** (padding=0): every map that is pooled must have an even size, and every
conv must have something left to convolve. Going down, s_0 = H, a level's convs give s_k - 4,
which must be even (and > 0), then s_{k+1} = (s_k - 4) / 2; at the bottom s_depth - 4 > 0.
Up, t -> 2t - 4 per level. 572 is valid for depth 4 (572 -> 568 -> 284 -> ... -> 28 -> 388);
:meth:`UNet2015.output_size` and the error message compute it. With padding=1: H divisible by
2**depth, output H.

Not from the paper, available as options: ``batch_norm=True`` puts a BatchNorm after each 3x3
conv (biases dropped, as is usual before a norm) — training from scratch converges faster.
Initialisation: the paper's "Gaussian with standard deviation sqrt(2/N), N the number of
incoming nodes" = ``kaiming_normal_(fan_in, relu)`` for every conv and up-conv weight; biases 0.

>>> import numpy as np, tinyvision as tv
>>> net = UNet2015(in_channels=1, num_classes=2, base_channels=4, depth=4)
>>> net.output_size(572)
388
>>> net(tv.tensor(np.zeros((1, 1, 188, 188), np.float32))).shape
(1, 2, 4, 4)
"""
from __future__ import annotations

from ... import functional as F
from ... import nn
from ...nn import init

__all__ = ["UNet2015", "unet_ronneberger", "DoubleConv", "UpBlock", "center_crop"]


def center_crop(x, height: int, width: int):
    """The central (height, width) window of x (N, C, H, W) -> (N, C, height, width)."""
    h, w = x.shape[-2:]
    top, left = (h - height) // 2, (w - width) // 2
    return x[:, :, top:top + height, left:left + width]


class DoubleConv(nn.Sequential):
    """[3x3 conv (+ BatchNorm) + ReLU] x 2:  x (N, Cin, H, W) -> (N, Cout, H - 4 + 4p, W - 4 + 4p)."""

    def __init__(self, in_channels: int, out_channels: int, padding: int = 0, batch_norm: bool = False):
        layers = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=padding, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UpBlock(nn.Module):
    """Decoder level: x (N, Cin, H, W) + skip (N, Cin/2, Hs, Ws) -> (N, Cin/2, 2H - 4 + 4p, ...)."""

    def __init__(self, in_channels: int, out_channels: int, padding: int = 0, batch_norm: bool = False):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels, padding, batch_norm)

    def forward(self, x, skip):
        x = self.up(x)                                         # (N, Cout, 2H, 2W)
        skip = center_crop(skip, x.shape[2], x.shape[3])       # (N, Cout, 2H, 2W); a no-op when padded
        x = F.cat([x, skip], dim=1)                            # (N, 2 Cout, 2H, 2W)
        return self.conv(x)                                    # (N, Cout, 2H - 4 + 4p, ...)


class UNet2015(nn.Module):
    """Ronneberger et al.'s U-Net (module docstring for the picture and the size rule).

    Args:
        in_channels: image channels (the paper: 1).
        num_classes: output channels, one logit map per class (the paper: 2).
        base_channels: channels of the first level, doubled at each level down (the paper: 64).
        depth: number of 2x2 poolings (the paper: 4; levels 0..depth).
        padding: 0 (the paper: valid convs, skips centre-cropped) or 1 (same-size convs).
        batch_norm: BatchNorm after every 3x3 conv (not in the paper).

    Shapes: x (N, in_channels, H, W) -> logits (N, num_classes, output_size(H), output_size(W)).
    ``skips=False`` builds the same U with the concatenations removed (each up-block sees only
    the upsampled map): the ablation the docs use to show what the skips add.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 64, depth: int = 4,
                 padding: int = 0, batch_norm: bool = False, skips: bool = True):
        super().__init__()
        if padding not in (0, 1):
            raise ValueError(f"UNet2015: padding must be 0 (the paper) or 1 (same size), got {padding!r}")
        if depth < 1:
            raise ValueError(f"UNet2015: depth must be >= 1, got {depth}")
        self.depth, self.padding, self.skips = int(depth), int(padding), bool(skips)
        widths = [base_channels * 2 ** k for k in range(depth + 1)]          # channels of level k
        self.down = nn.ModuleList(
            [DoubleConv(in_channels, widths[0], padding, batch_norm)]
            + [DoubleConv(widths[k - 1], widths[k], padding, batch_norm) for k in range(1, depth + 1)]
        )
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.up = nn.ModuleList([UpBlock(widths[k + 1], widths[k], padding, batch_norm) for k in reversed(range(depth))])
        if not skips:  # each decoder level's convs see only the upsampled map
            for block, k in zip(self.up, reversed(range(depth))):
                block.conv = DoubleConv(widths[k], widths[k], padding, batch_norm)
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    init.zeros_(m.bias)

    def extra_repr(self):
        return f"depth={self.depth}, padding={self.padding}, skips={self.skips}"

    # -- sizes ----------------------------------------------------------------------------
    def _sizes(self, size: int):
        """The encoder sizes before each pool and the output size, or the first problem found."""
        shrink = 4 * (1 - self.padding)                  # two 3x3 convs lose 4 pixels unpadded
        s, before_pool = int(size), []
        for k in range(self.depth):
            s = s - shrink
            if s <= 0 or s % 2:
                rule = ("after the two unpadded convs of every level but the last, the size must be even and > 0: "
                        "H -> H - 4, then halved" if shrink else f"H must be divisible by 2**depth = {2 ** self.depth}")
                return None, f"level {k} has size {s} before its 2x2 max-pool ({rule})"
            before_pool.append(s)
            s //= 2
        s -= shrink
        if s <= 0:
            return None, f"the bottom level (size {s + shrink}) is too small for two unpadded 3x3 convs"
        for _ in range(self.depth):
            s = 2 * s - shrink
            if s <= 0:
                return None, "a decoder level is left with no pixels"
        return s, None

    def output_size(self, size: int) -> int:
        """The output height (width) for an input height (width); ValueError if invalid."""
        out, problem = self._sizes(size)
        if problem:
            raise ValueError(f"UNet2015(depth={self.depth}, padding={self.padding}): input size {size} is invalid: "
                             f"{problem}; nearest valid sizes: {self._nearest_valid(size)}")
        return out

    def _nearest_valid(self, size):
        below = next((s for s in range(size - 1, 0, -1) if self._sizes(s)[1] is None), None)
        above = next(s for s in range(size + 1, size + 2 ** (self.depth + 3)) if self._sizes(s)[1] is None)
        return [s for s in (below, above) if s is not None]

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"UNet2015: input must be (N, C, H, W), got shape {tuple(x.shape)}")
        for size in x.shape[2:]:
            try:
                self.output_size(size)
            except ValueError as err:
                raise ValueError(f"{err} (input shape {tuple(x.shape)})") from None
        skips = []
        for k, level in enumerate(self.down):
            x = level(x)                                  # (N, base 2^k, s_k - 4, ...)
            if k < self.depth:
                skips.append(x)
                x = self.pool(x)                          # (N, base 2^k, (s_k - 4) / 2, ...)
        for block, skip in zip(self.up, reversed(skips)):
            if self.skips:
                x = block(x, skip)
            else:
                x = block.conv(block.up(x))
        return self.head(x)                               # (N, num_classes, out, out)


def unet_ronneberger(in_channels: int = 1, num_classes: int = 2, **kwargs) -> UNet2015:
    """The paper's configuration: base 64, depth 4, unpadded (572² -> 388²)."""
    kwargs.setdefault("base_channels", 64)
    kwargs.setdefault("depth", 4)
    kwargs.setdefault("padding", 0)
    return UNet2015(in_channels, num_classes, **kwargs)
