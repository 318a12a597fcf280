r"""Feature Pyramid Network (Lin et al. 2017, https://arxiv.org/abs/1612.03144), torchvision's
``torchvision.ops.FeaturePyramidNetwork``: same arguments, same state_dict keys, same numbers.

The pyramid, drawn for a ResNet with ``returned_layers=[2, 3, 4]`` (RetinaNet) on an input
(N, 3, H, W), ``out_channels = D`` (256):

    backbone (bottom-up)        lateral 1x1           top-down (nearest x2)        output 3x3
    C3 (N,  512, H/8,  W/8 ) -- inner_blocks[0] --> L3 ---(+)<-- up(M4) --> M3 -- layer_blocks[0] --> P3 (N, D, H/8,  W/8 )
    C4 (N, 1024, H/16, W/16) -- inner_blocks[1] --> L4 ---(+)<-- up(M5) --> M4 -- layer_blocks[1] --> P4 (N, D, H/16, W/16)
    C5 (N, 2048, H/32, W/32) -- inner_blocks[2] --> L5 ------------------> M5 -- layer_blocks[2] --> P5 (N, D, H/32, W/32)
                                                                  extra block LastLevelP6P7:
                                         P5 (or C5) -- p6: 3x3 s2 --> P6 (N, D, H/64,  W/64 )
                                         P6 -- ReLU -- p7: 3x3 s2 --> P7 (N, D, H/128, W/128)

(sizes are ceil-divisions: a 3x3 stride-2 conv with padding 1 maps S to floor((S - 1)/2) + 1.)

In formulas, for levels i = 0 .. L-1 from finest to coarsest (x_i the backbone's maps):

    M_{L-1} = inner_{L-1}(x_{L-1})
    M_i     = inner_i(x_i) + nearest_upsample(M_{i+1}, to the size of inner_i(x_i))
    P_i     = layer_i(M_i)

``nearest_upsample`` is ``F.interpolate(mode="nearest", size=...)``: for a lateral of odd size
it is not an exact doubling, the source index is floor(dst * in / out) (PyTorch's legacy nearest).
Note that the top-down path carries M (before the 3x3 conv), not P.

Extra blocks (the levels above the backbone's last one):

* :class:`LastLevelMaxPool` — "pool" = max_pool2d(P_last, kernel 1, stride 2), i.e. every other
  pixel (Faster R-CNN's FPN; the default of :class:`BackboneWithFPN`).
* :class:`LastLevelP6P7` — RetinaNet's P6 = conv3x3/s2(x), P7 = conv3x3/s2(ReLU(P6)), where x is
  P5 when ``in_channels == out_channels`` (torchvision's ``use_P5`` rule, v1: ``LastLevelP6P7(256,
  256)``) and C5 otherwise (the paper and v2: ``LastLevelP6P7(2048, 256)``).

Initialisation (torchvision's): every conv of the FPN and of LastLevelP6P7 gets
``kaiming_uniform_(a=1)`` weights and zero biases.
"""
from __future__ import annotations

from collections import OrderedDict

from ... import functional as F
from ... import nn

__all__ = [
    "ExtraFPNBlock",
    "FeaturePyramidNetwork",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "conv_norm_activation",
]


def conv_norm_activation(in_channels, out_channels, kernel_size=3, stride=1, padding=None,
                         norm_layer=None, activation_layer=nn.ReLU, bias=None):
    """torchvision's ``Conv2dNormActivation`` as a ``Sequential``: conv, then norm (if any), then
    activation (if any), children named "0", "1", "2" — hence keys like ``inner_blocks.0.0.weight``.

    padding defaults to (kernel_size - 1) // 2 ("same" for odd kernels); the conv has a bias
    only when there is no norm layer (a norm's shift makes a bias redundant), unless ``bias``
    says otherwise.
    """
    if padding is None:
        padding = (kernel_size - 1) // 2
    if bias is None:
        bias = norm_layer is None
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)]
    if norm_layer is not None:
        layers.append(norm_layer(out_channels))
    if activation_layer is not None:
        layers.append(activation_layer())
    return nn.Sequential(*layers)


def _kaiming_a1_zero_bias(conv):
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.constant_(conv.bias, 0)


class ExtraFPNBlock(nn.Module):
    """Base class of the blocks that add levels on top of the FPN.

    ``forward(results, x, names) -> (results, names)``: ``results`` the FPN's outputs (list of
    Tensors, finest first), ``x`` the backbone's maps that produced them, ``names`` their names;
    returns the lists extended with the new levels.
    """

    def forward(self, results, x, names):  # pragma: no cover - abstract
        raise NotImplementedError


class LastLevelMaxPool(ExtraFPNBlock):
    """One more level, "pool": P_last subsampled by 2 (max_pool2d, kernel 1, stride 2).

    (N, D, H, W) -> (N, D, floor((H - 1)/2) + 1, floor((W - 1)/2) + 1).
    """

    def forward(self, results, x, names):
        names = list(names) + ["pool"]
        results = list(results) + [F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0)]
        return results, names


class LastLevelP6P7(ExtraFPNBlock):
    """RetinaNet's P6 and P7 (two 3x3 stride-2 convs, ReLU between them).

    Args:
        in_channels (int): channels of the map P6 is computed from: P5 when it equals
            ``out_channels`` (``use_P5``), else the backbone's last map C5.
        out_channels (int): channels of P6 and P7.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for conv in (self.p6, self.p7):
            _kaiming_a1_zero_bias(conv)
        self.use_P5 = in_channels == out_channels

    def forward(self, results, x, names):
        p5, c5 = results[-1], x[-1]
        source = p5 if self.use_P5 else c5
        p6 = self.p6(source)
        p7 = self.p7(F.relu(p6))
        return list(results) + [p6, p7], list(names) + ["p6", "p7"]


class FeaturePyramidNetwork(nn.Module):
    """Top-down pyramid over a dict of feature maps (see the module docstring for the picture).

    Args:
        in_channels_list (list[int]): channels of each input map, finest (largest) first.
        out_channels (int): channels D of every output level.
        extra_blocks (ExtraFPNBlock or None): levels added on top (LastLevelMaxPool, LastLevelP6P7).
        norm_layer (callable or None): a norm after each conv (e.g. ``partial(nn.GroupNorm, 32)``);
            with it the convs have no bias.

    forward(x): an OrderedDict name -> Tensor (N, C_i, H_i, W_i), finest first; returns an
    OrderedDict with the same names (plus the extra blocks' names) -> (N, D, H_i, W_i).

    State dict keys: ``inner_blocks.{i}.0.weight/bias`` (1x1 laterals),
    ``layer_blocks.{i}.0.weight/bias`` (3x3 outputs), ``extra_blocks.p6/p7.*``.

    >>> import numpy as np, tinyvision as tv
    >>> fpn = FeaturePyramidNetwork([10, 20, 30], 5, extra_blocks=LastLevelMaxPool())
    >>> x = OrderedDict([("feat0", tv.tensor(np.zeros((1, 10, 64, 64), np.float32))),
    ...                  ("feat2", tv.tensor(np.zeros((1, 20, 16, 16), np.float32))),
    ...                  ("feat3", tv.tensor(np.zeros((1, 30, 8, 8), np.float32)))])
    >>> [(k, v.shape) for k, v in fpn(x).items()]
    [('feat0', (1, 5, 64, 64)), ('feat2', (1, 5, 16, 16)), ('feat3', (1, 5, 8, 8)), ('pool', (1, 5, 4, 4))]
    """

    def __init__(self, in_channels_list, out_channels, extra_blocks=None, norm_layer=None):
        super().__init__()
        in_channels_list = list(in_channels_list)
        if not in_channels_list:
            raise ValueError("FeaturePyramidNetwork: in_channels_list must name at least one feature map")
        self.inner_blocks = nn.ModuleList()
        self.layer_blocks = nn.ModuleList()
        for i, c in enumerate(in_channels_list):
            if int(c) <= 0:
                raise ValueError(
                    f"FeaturePyramidNetwork: in_channels_list[{i}] = {c}; every input map needs channels > 0"
                )
            self.inner_blocks.append(conv_norm_activation(int(c), out_channels, kernel_size=1, padding=0,
                                                          norm_layer=norm_layer, activation_layer=None))
            self.layer_blocks.append(conv_norm_activation(out_channels, out_channels, kernel_size=3,
                                                          norm_layer=norm_layer, activation_layer=None))
        # initialised before the extra blocks are attached (they keep their own init)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _kaiming_a1_zero_bias(m)
        if extra_blocks is not None and not isinstance(extra_blocks, ExtraFPNBlock):
            raise TypeError(f"extra_blocks must be an ExtraFPNBlock, got {type(extra_blocks).__name__}")
        self.extra_blocks = extra_blocks
        self.in_channels_list = in_channels_list
        self.out_channels = out_channels

    def forward(self, x):
        if not isinstance(x, dict):
            raise TypeError("FeaturePyramidNetwork expects an OrderedDict name -> feature map (N, C, H, W)")
        names = list(x.keys())
        feats = list(x.values())
        if len(feats) != len(self.inner_blocks):
            raise ValueError(
                f"FeaturePyramidNetwork was built for {len(self.inner_blocks)} maps "
                f"(in_channels_list={self.in_channels_list}), got {len(feats)}: {names}"
            )
        for name, f, c in zip(names, feats, self.in_channels_list):
            if len(f.shape) != 4 or f.shape[1] != c:
                raise ValueError(
                    f"FeaturePyramidNetwork: map {name!r} has shape {tuple(f.shape)}, expected (N, {c}, H, W)"
                )

        last_inner = self.inner_blocks[-1](feats[-1])             # M_{L-1}   (N, D, H_{L-1}, W_{L-1})
        results = [self.layer_blocks[-1](last_inner)]              # P_{L-1}
        for i in range(len(feats) - 2, -1, -1):
            lateral = self.inner_blocks[i](feats[i])               # (N, D, H_i, W_i)
            top_down = F.interpolate(last_inner, size=tuple(lateral.shape[-2:]), mode="nearest")
            last_inner = lateral + top_down                        # M_i
            results.insert(0, self.layer_blocks[i](last_inner))   # P_i, finest first
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, feats, names)
        return OrderedDict(zip(names, results))

    def extra_repr(self):
        return f"in_channels_list={self.in_channels_list}, out_channels={self.out_channels}"

