r"""Backbones for detection: a ResNet trunk with an FPN on top (torchvision's
``models.detection.backbone_utils``), plus a narrow ResNet for CPU-sized detectors.

``_resnet_fpn_extractor(backbone, trainable_layers, returned_layers, extra_blocks, norm_layer)``:

* freezes the backbone's parameters outside the last ``trainable_layers`` of
  [layer4, layer3, layer2, layer1, conv1] (5 also trains bn1) — ``requires_grad_(False)``;
* returns ``layer{k}`` for k in ``returned_layers`` (default [1, 2, 3, 4]) under the names
  "0", "1", ... (:class:`~tinyvision.models.IntermediateLayerGetter`);
* puts an FPN of ``out_channels`` (256) on them, with ``extra_blocks`` (default LastLevelMaxPool).

For torchvision's ResNets the channels of layer k are (inplanes / 8) * 2^(k - 1) — 64, 128, 256,
512 times the block expansion; a backbone may instead say its own in ``stage_channels``.
"""
from __future__ import annotations

import warnings

from ... import nn
from .fpn import ExtraFPNBlock, FeaturePyramidNetwork, LastLevelMaxPool

__all__ = ["BackboneWithFPN", "resnet_fpn_backbone", "_resnet_fpn_extractor", "_validate_trainable_layers",
           "SmallResNet"]


class BackboneWithFPN(nn.Module):
    """A backbone's intermediate maps, then an FPN: ``body`` (IntermediateLayerGetter) + ``fpn``.

    Args:
        backbone (Module): children run in order (a ResNet).
        return_layers (dict): child name -> output name, e.g. {"layer2": "0", "layer3": "1", "layer4": "2"}.
        in_channels_list (list[int]): channels of those maps, in order.
        out_channels (int): the FPN's channels (``self.out_channels``, which RetinaNet reads).
        extra_blocks, norm_layer: as :class:`FeaturePyramidNetwork` (default LastLevelMaxPool).

    forward(x (N, 3, H, W)) -> OrderedDict "0", "1", ..., extra names -> (N, out_channels, H_l, W_l).
    Keys: ``body.conv1.weight``, ``body.layer1.0.conv1.weight``, ..., ``fpn.inner_blocks.0.0.weight``, ...
    """

    def __init__(self, backbone, return_layers, in_channels_list, out_channels, extra_blocks=None,
                 norm_layer=None):
        super().__init__()
        from .._utils import IntermediateLayerGetter

        if extra_blocks is None:
            extra_blocks = LastLevelMaxPool()
        self.body = IntermediateLayerGetter(backbone, return_layers=return_layers)
        self.fpn = FeaturePyramidNetwork(in_channels_list=in_channels_list, out_channels=out_channels,
                                         extra_blocks=extra_blocks, norm_layer=norm_layer)
        self.out_channels = out_channels

    def forward(self, x):
        return self.fpn(self.body(x))


def _validate_trainable_layers(is_trained, trainable_backbone_layers, max_value, default_value):
    """torchvision's rule: without pretrained weights every layer trains (a given value is
    overridden, with a warning); with them the default is ``default_value``; range [0, max_value]."""
    if not is_trained:
        if trainable_backbone_layers is not None:
            warnings.warn(
                "trainable_backbone_layers has no effect without pretrained weights; "
                f"falling back to trainable_backbone_layers={max_value} so that all layers are trainable")
        trainable_backbone_layers = max_value
    if trainable_backbone_layers is None:
        trainable_backbone_layers = default_value
    if not 0 <= trainable_backbone_layers <= max_value:
        raise ValueError(f"trainable_backbone_layers must be in [0, {max_value}], got {trainable_backbone_layers}")
    return trainable_backbone_layers


def _resnet_fpn_extractor(backbone, trainable_layers, returned_layers=None, extra_blocks=None, norm_layer=None,
                          out_channels=256):
    """A ResNet trunk -> :class:`BackboneWithFPN` (see the module docstring). ``out_channels`` is
    an addition (torchvision fixes 256) so that CPU-sized models can use a narrow pyramid."""
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in [0, 5], got {trainable_layers}")
    layers_to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        layers_to_train.append("bn1")
    for name, parameter in backbone.named_parameters():
        if all(not name.startswith(layer) for layer in layers_to_train):
            parameter.requires_grad_(False)
    if extra_blocks is None:
        extra_blocks = LastLevelMaxPool()
    if not isinstance(extra_blocks, ExtraFPNBlock):
        raise TypeError(f"extra_blocks must be an ExtraFPNBlock, got {type(extra_blocks).__name__}")
    if returned_layers is None:
        returned_layers = [1, 2, 3, 4]
    returned_layers = list(returned_layers)
    if not returned_layers or min(returned_layers) <= 0 or max(returned_layers) >= 5:
        raise ValueError(f"each returned layer must be in [1, 4], got {returned_layers}")
    return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned_layers)}
    stage_channels = getattr(backbone, "stage_channels", None)
    if stage_channels is not None:
        in_channels_list = [stage_channels[k - 1] for k in returned_layers]
    else:
        in_channels_stage2 = backbone.inplanes // 8
        in_channels_list = [in_channels_stage2 * 2 ** (k - 1) for k in returned_layers]
    return BackboneWithFPN(backbone, return_layers, in_channels_list, out_channels,
                           extra_blocks=extra_blocks, norm_layer=norm_layer)


def resnet_fpn_backbone(*, backbone_name, weights=None, norm_layer=None, trainable_layers=3, returned_layers=None,
                        extra_blocks=None):
    """torchvision's ``resnet_fpn_backbone``: ``resnet{18,34,50,101}`` with ``norm_layer``
    (default FrozenBatchNorm2d, as torchvision) and an FPN of 256 channels.

    ``weights``: None, or a state dict with torchvision's ResNet keys (tinyvision downloads nothing).
    """
    from .. import resnet as resnet_module
    from ...ops.misc import FrozenBatchNorm2d

    builders = {"resnet18": resnet_module.resnet18, "resnet34": resnet_module.resnet34,
                "resnet50": resnet_module.resnet50, "resnet101": resnet_module.resnet101}
    if backbone_name not in builders:
        raise ValueError(f"backbone_name must be one of {sorted(builders)}, got {backbone_name!r}")
    backbone = builders[backbone_name](norm_layer=norm_layer if norm_layer is not None else FrozenBatchNorm2d)
    if weights is not None:
        backbone.load_state_dict(weights)
    return _resnet_fpn_extractor(backbone, trainable_layers, returned_layers, extra_blocks)


class SmallResNet(nn.Module):
    """A narrow ResNet trunk for CPU-sized detectors, torchvision's module names (conv1, bn1,
    relu, maxpool, layer1..layer4) so that :func:`_resnet_fpn_extractor` takes it as is.

    Args:
        widths (4 ints): channels of layer1..layer4 (torchvision's resnet18: 64, 128, 256, 512).
        blocks (4 ints): BasicBlocks per stage (resnet18: 2, 2, 2, 2).
        stem_stride (int): stride of the 3x3 stem conv; with the 2x2 max-pool layer1 is at stride
            2 * stem_stride (resnet18's 7x7/2 stem + 3x3/2 pool: 4). Strides of layer1..4:
            s, 2s, 4s, 8s with s = 2 * stem_stride.
        norm_layer: default BatchNorm2d.

    forward(x (N, 3, H, W)) -> layer4's map (N, widths[3], H/8s, W/8s) (no classifier).
    """

    def __init__(self, widths=(16, 32, 64, 128), blocks=(1, 1, 1, 1), stem_stride=1, norm_layer=None,
                 in_channels=3):
        super().__init__()
        from ..resnet import BasicBlock, conv1x1

        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError(f"SmallResNet: widths and blocks need 4 values each, got {widths}, {blocks}")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=stem_stride, padding=1, bias=False)
        self.bn1 = norm_layer(widths[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        inplanes = widths[0]
        for k, (width, count) in enumerate(zip(widths, blocks), start=1):
            stride = 1 if k == 1 else 2
            downsample = None
            if stride != 1 or inplanes != width:
                downsample = nn.Sequential(conv1x1(inplanes, width, stride), norm_layer(width))
            stage = [BasicBlock(inplanes, width, stride, downsample, norm_layer=norm_layer)]
            stage += [BasicBlock(width, width, norm_layer=norm_layer) for _ in range(1, count)]
            setattr(self, f"layer{k}", nn.Sequential(*stage))
            inplanes = width
        self.inplanes = inplanes
        self.stage_channels = tuple(int(w) for w in widths)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for k in range(1, 5):
            x = getattr(self, f"layer{k}")(x)
        return x
