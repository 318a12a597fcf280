r"""segmentation_models_pytorch 0.6.0's ``Unet`` with ResNet encoders: same constructor
arguments, same module tree (so the same state_dict keys), same outputs and gradients.

``Unet(encoder_name="resnet34", encoder_depth=5, encoder_weights=None, decoder_use_batchnorm=True,
decoder_channels=(256, 128, 64, 32, 16), decoder_attention_type=None, in_channels=3, classes=1,
activation=None)``

Shapes for x (N, 3, H, W), resnet34, depth 5 (e = 1 for resnet18/34, 4 for resnet50/101)::

    encoder (a ResNet without avgpool/fc)
    f0 = x                    (N,    3, H,    W)     never concatenated
    f1 = relu(bn1(conv1 x))   (N,   64, H/2,  W/2)   ─┐
    f2 = layer1(maxpool f1)   (N,  64e, H/4,  W/4)   ─┤ the skips, used deepest first
    f3 = layer2(f2)           (N, 128e, H/8,  W/8)   ─┤
    f4 = layer3(f3)           (N, 256e, H/16, W/16)  ─┘
    f5 = layer4(f4)           (N, 512e, H/32, W/32)     the decoder's input

    decoder block i: nearest-upsample (↑) to the next size, concat (++) the skip, 2 x [3x3 conv, BN, ReLU]
    block 0:  f5 (512e) ↑ H/16, ++ f4 (256e)  -> 256 at H/16
    block 1:  256       ↑ H/8,  ++ f3 (128e)  -> 128 at H/8
    block 2:  128       ↑ H/4,  ++ f2 (64e)   ->  64 at H/4
    block 3:   64       ↑ H/2,  ++ f1 (64)    ->  32 at H/2
    block 4:   32       ↑ H,    no skip (f0, the image itself, is never concatenated) -> 16 at H
    segmentation_head: 3x3 conv 16 -> classes, padding 1  -> logits (N, classes, H, W)

The channel bookkeeping (smp's ``UnetDecoder``): drop f0, reverse the rest, so block i takes
``in = [f_depth, d_0, d_1, ...][i]`` channels, ``skip = [f_{depth-1}, ..., f_1, 0][i]`` and
gives ``decoder_channels[i]``. ``encoder_depth`` d < 5 uses f0..f_d only (the unused ResNet
stages stay in the module, as in smp, so the state_dict keys stay the same).

**Input sizes**: H and W must be divisible by the output stride min(32, 2**encoder_depth)
(smp's rule): otherwise a stride-2 stage rounds and the upsampled map no longer meets its skip.

Each 3x3 decoder conv has no bias when followed by BatchNorm (``decoder_use_batchnorm=True``) and a
bias otherwise. ``decoder_attention_type="scse"`` adds smp's concurrent spatial and channel
squeeze-and-excitation (Roy et al. 2018, https://arxiv.org/abs/1803.02579) after the concat and
after the second conv: ``x * cSE(x) + x * sSE(x)``, cSE = sigmoid(1x1(ReLU(1x1(avgpool(x)))))
(C -> C/16 -> C), sSE = sigmoid(1x1 conv C -> 1).

Initialisation as smp: encoder as torchvision's ResNet; decoder convs kaiming-uniform (fan_in,
relu), biases 0, norms 1/0; the head xavier-uniform, bias 0 (NumPy's random numbers, not
torch's: copy the weights to compare).

>>> import numpy as np, tinyvision as tv
>>> net = Unet("resnet18", encoder_depth=3, decoder_channels=(32, 16, 8), classes=2)
>>> net(tv.tensor(np.zeros((1, 3, 32, 32), np.float32))).shape
(1, 2, 32, 32)
>>> net(tv.tensor(np.zeros((1, 3, 36, 36), np.float32)))
Traceback (most recent call last):
...
ValueError: Unet: input of shape (1, 3, 36, 36): height 36 and width 36 must be divisible by the output stride 8 = min(32, 2**encoder_depth) with encoder_depth=3; pad the input to (40, 40)
"""
from __future__ import annotations

from ... import functional as F
from ... import nn
from ...nn import init
from ..resnet import BasicBlock, Bottleneck, ResNet

__all__ = [
    "Unet", "ResNetEncoder", "UnetDecoder", "UnetDecoderBlock", "Conv2dReLU", "SCSEModule",
    "Attention", "SegmentationHead", "Activation", "RESNET_ENCODERS",
]

# name -> (block, layers, out_channels of f0..f5), smp's resnet_encoders table
RESNET_ENCODERS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2], (3, 64, 64, 128, 256, 512)),
    "resnet34": (BasicBlock, [3, 4, 6, 3], (3, 64, 64, 128, 256, 512)),
    "resnet50": (Bottleneck, [3, 4, 6, 3], (3, 64, 256, 512, 1024, 2048)),
    "resnet101": (Bottleneck, [3, 4, 23, 3], (3, 64, 256, 512, 1024, 2048)),
    "resnet152": (Bottleneck, [3, 8, 36, 3], (3, 64, 256, 512, 1024, 2048)),
}


class ResNetEncoder(ResNet):
    """A torchvision ResNet without ``avgpool``/``fc`` that returns its feature pyramid.

    forward(x (N, C, H, W)) -> [f0 = x, f1 (H/2), f2 (H/4), ..., f_depth (H/2**depth)].
    ``in_channels != 3`` replaces ``conv1`` by a freshly initialised 7x7/2 conv (smp's
    ``patch_first_conv`` without pretrained weights).
    """

    def __init__(self, block, layers, out_channels, depth: int = 5, in_channels: int = 3):
        if not 1 <= depth <= 5:
            raise ValueError(f"ResNetEncoder: depth should be in range [1, 5], got {depth}")
        super().__init__(block, layers)
        del self.fc
        del self.avgpool
        self._depth = depth
        self._out_channels = (in_channels,) + tuple(out_channels[1:])
        if in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)

    @property
    def out_channels(self):
        return self._out_channels[: self._depth + 1]

    @property
    def output_stride(self):
        return min(32, 2 ** self._depth)

    def forward(self, x):
        features = [x]
        stages = [
            lambda t: self.relu(self.bn1(self.conv1(t))),      # f1 (N, 64, H/2)
            lambda t: self.layer1(self.maxpool(t)),            # f2 (N, 64e, H/4)
            self.layer2,                                       # f3 (N, 128e, H/8)
            self.layer3,                                       # f4 (N, 256e, H/16)
            self.layer4,                                       # f5 (N, 512e, H/32)
        ]
        for stage in stages[: self._depth]:
            x = stage(x)
            features.append(x)
        return features

    def load_state_dict(self, state_dict, strict: bool = True):
        state_dict = {k: v for k, v in dict(state_dict).items() if k not in ("fc.weight", "fc.bias")}
        return super().load_state_dict(state_dict, strict=strict)


def _norm_kind(use_norm):
    if use_norm is True or use_norm == "batchnorm":
        return "batchnorm"
    if use_norm is False or use_norm == "identity":
        return "identity"
    raise ValueError(f"Unet: decoder_use_batchnorm / decoder_use_norm must be True, False, 'batchnorm' or "
                     f"'identity' here, got {use_norm!r}")


class Conv2dReLU(nn.Sequential):
    """3x3 conv (bias only without a norm) + BatchNorm (or Identity) + ReLU; keys 0 / 1 as smp."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, stride=1, use_norm="batchnorm"):
        batchnorm = _norm_kind(use_norm) == "batchnorm"
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=not batchnorm),
            nn.BatchNorm2d(out_channels) if batchnorm else nn.Identity(),
            nn.ReLU(inplace=True),
        )


class SCSEModule(nn.Module):
    """x * cSE(x) + x * sSE(x): channel gates (N, C, 1, 1) and a spatial gate (N, 1, H, W)."""

    def __init__(self, in_channels, reduction=16):
        super().__init__()
        self.cSE = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),                                   # (N, C, 1, 1)
            nn.Conv2d(in_channels, in_channels // reduction, 1),       # (N, C/16, 1, 1)
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels // reduction, in_channels, 1),       # (N, C, 1, 1)
            nn.Sigmoid(),
        )
        self.sSE = nn.Sequential(nn.Conv2d(in_channels, 1, 1), nn.Sigmoid())   # (N, 1, H, W)

    def forward(self, x):
        return x * self.cSE(x) + x * self.sSE(x)


class Attention(nn.Module):
    """smp's wrapper: ``attention`` is an Identity (None) or an :class:`SCSEModule` ("scse")."""

    def __init__(self, name, **params):
        super().__init__()
        if name is None:
            self.attention = nn.Identity()
        elif name == "scse":
            self.attention = SCSEModule(**params)
        else:
            raise ValueError(f"Unet: decoder_attention_type must be None or 'scse', got {name!r}")

    def forward(self, x):
        return self.attention(x)


class UnetDecoderBlock(nn.Module):
    """x (N, Cin, h, w) -> nearest-upsample to (H, W) -> concat skip (N, Cskip, H, W) -> (N, Cout, H, W)."""

    def __init__(self, in_channels, skip_channels, out_channels, use_norm="batchnorm", attention_type=None,
                 interpolation_mode="nearest"):
        super().__init__()
        self.interpolation_mode = interpolation_mode
        self.conv1 = Conv2dReLU(in_channels + skip_channels, out_channels, 3, padding=1, use_norm=use_norm)
        self.attention1 = Attention(attention_type, in_channels=in_channels + skip_channels)
        self.conv2 = Conv2dReLU(out_channels, out_channels, 3, padding=1, use_norm=use_norm)
        self.attention2 = Attention(attention_type, in_channels=out_channels)

    def forward(self, x, height, width, skip=None):
        x = F.interpolate(x, size=(height, width), mode=self.interpolation_mode)   # (N, Cin, H, W)
        if skip is not None:
            x = F.cat([x, skip], dim=1)                                          # (N, Cin + Cskip, H, W)
            x = self.attention1(x)
        x = self.conv1(x)                                                        # (N, Cout, H, W)
        x = self.conv2(x)
        return self.attention2(x)


class UnetDecoder(nn.Module):
    """The decoder blocks, wired to the encoder features as the module docstring tabulates."""

    def __init__(self, encoder_channels, decoder_channels, n_blocks=5, use_norm="batchnorm",
                 attention_type=None, interpolation_mode="nearest"):
        super().__init__()
        if n_blocks != len(decoder_channels):
            raise ValueError(f"Unet: model depth is {n_blocks}, but decoder_channels {tuple(decoder_channels)} "
                             f"has {len(decoder_channels)} blocks (one per encoder stage)")
        encoder_channels = list(encoder_channels[1:])[::-1]      # drop f0, deepest first
        head_channels = encoder_channels[0]
        in_channels = [head_channels] + list(decoder_channels[:-1])
        skip_channels = encoder_channels[1:] + [0]               # the last block has no skip
        self.center = nn.Identity()                              # smp adds a centre block for VGG only
        self.blocks = nn.ModuleList([
            UnetDecoderBlock(c_in, c_skip, c_out, use_norm, attention_type, interpolation_mode)
            for c_in, c_skip, c_out in zip(in_channels, skip_channels, decoder_channels)
        ])

    def forward(self, features):
        sizes = [tuple(f.shape[2:]) for f in features][::-1]    # [H/2^d, ..., H/2, H]
        features = features[1:][::-1]                           # [f_d, f_{d-1}, ..., f1]
        x = self.center(features[0])
        skips = features[1:]
        for i, block in enumerate(self.blocks):
            height, width = sizes[i + 1]
            x = block(x, height, width, skips[i] if i < len(skips) else None)
        return x


class Activation(nn.Module):
    """smp's output activation by name: None/"identity", "sigmoid", "softmax2d", "softmax",
    "logsoftmax" (over ``dim``, default 1), "tanh", or a callable returning a Module."""

    def __init__(self, name, **params):
        super().__init__()
        if name is None or name == "identity":
            self.activation = nn.Identity()
        elif name == "sigmoid":
            self.activation = nn.Sigmoid()
        elif name == "softmax2d":
            self.activation = nn.Softmax(dim=1)
        elif name == "softmax":
            self.activation = nn.Softmax(dim=params.get("dim", 1))
        elif name == "logsoftmax":
            self.activation = nn.LogSoftmax(dim=params.get("dim", 1))
        elif name == "tanh":
            self.activation = nn.Tanh()
        elif callable(name):
            self.activation = name(**params)
        else:
            raise ValueError(f"Unet: activation must be None, 'identity', 'sigmoid', 'softmax2d', 'softmax', "
                             f"'logsoftmax', 'tanh' or a callable, got {name!r}")

    def forward(self, x):
        return self.activation(x)


class SegmentationHead(nn.Sequential):
    """3x3 conv (padding 1) to ``classes`` logits, Identity (no upsampling), activation."""

    def __init__(self, in_channels, out_channels, kernel_size=3, activation=None):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, padding=kernel_size // 2),
            nn.Identity(),
            Activation(activation),
        )


class Unet(nn.Module):
    """smp's Unet (module docstring). ``decoder_use_norm`` (smp 0.6's name) overrides
    ``decoder_use_batchnorm`` (the older name the issue uses) when given."""

    def __init__(self, encoder_name: str = "resnet34", encoder_depth: int = 5, encoder_weights=None,
                 decoder_use_batchnorm=True, decoder_channels=(256, 128, 64, 32, 16),
                 decoder_attention_type=None, in_channels: int = 3, classes: int = 1, activation=None,
                 decoder_use_norm=None, decoder_interpolation: str = "nearest"):
        super().__init__()
        if encoder_name not in RESNET_ENCODERS:
            raise ValueError(f"Unet: encoder_name must be one of {sorted(RESNET_ENCODERS)}, got {encoder_name!r}")
        if encoder_weights is not None:
            raise ValueError(f"Unet: encoder_weights={encoder_weights!r} cannot be downloaded here; build with "
                             "encoder_weights=None and load a state_dict (e.g. from an smp model)")
        use_norm = decoder_use_batchnorm if decoder_use_norm is None else decoder_use_norm
        block, layers, out_channels = RESNET_ENCODERS[encoder_name]
        self.encoder = ResNetEncoder(block, layers, out_channels, depth=encoder_depth, in_channels=in_channels)
        self.decoder = UnetDecoder(self.encoder.out_channels, decoder_channels, n_blocks=encoder_depth,
                                   use_norm=use_norm, attention_type=decoder_attention_type,
                                   interpolation_mode=decoder_interpolation)
        self.segmentation_head = SegmentationHead(decoder_channels[-1], classes, kernel_size=3, activation=activation)
        self.name = f"u-{encoder_name}"
        self._initialize()

    def _initialize(self):
        for m in self.decoder.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)
        for m in self.segmentation_head.modules():
            if isinstance(m, nn.Conv2d):
                init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    init.zeros_(m.bias)

    def check_input_shape(self, x):
        """smp's rule: H and W divisible by the encoder's output stride."""
        if x.ndim != 4:
            raise ValueError(f"Unet: input must be (N, C, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        s = self.encoder.output_stride
        if h % s or w % s:
            pad = (-(-h // s) * s, -(-w // s) * s)
            raise ValueError(f"Unet: input of shape {tuple(x.shape)}: height {h} and width {w} must be divisible by "
                             f"the output stride {s} = min(32, 2**encoder_depth) with encoder_depth={self.encoder._depth}; "
                             f"pad the input to {pad}")
        if x.shape[1] != self.encoder.conv1.in_channels:
            raise ValueError(f"Unet: input of shape {tuple(x.shape)} has {x.shape[1]} channels, the model was built "
                             f"with in_channels={self.encoder.conv1.in_channels}")

    def forward(self, x):
        self.check_input_shape(x)
        features = self.encoder(x)
        return self.segmentation_head(self.decoder(features))
