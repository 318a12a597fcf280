r"""ResNet (He et al. 2015, https://arxiv.org/abs/1512.03385) exactly as torchvision 0.29 builds it.

Same constructor arguments, same module tree, hence the same state_dict keys one to one: a
torchvision ResNet's ``state_dict()`` loads into the tinyvision model with ``strict=True``.

Shapes for a (N, 3, H, W) input (strides without dilation; C = 64 * e, e = block.expansion):

    conv1 7x7/2 + bn1 + relu  -> (N, 64, H/2, W/2)
    maxpool 3x3/2             -> (N, 64, H/4, W/4)
    layer1                    -> (N,  C, H/4, W/4)       "C2"
    layer2  (stride 2)        -> (N, 2C, H/8, W/8)       "C3"
    layer3  (stride 2)        -> (N, 4C, H/16, W/16)     "C4"
    layer4  (stride 2)        -> (N, 8C, H/32, W/32)     "C5"
    avgpool + flatten + fc    -> (N, num_classes)

(H/2^k rounds as each strided 3x3 with padding 1 does: ceil.)

Choices torchvision makes, and so this module:

* **v1.5**: a Bottleneck downsamples in its 3x3 conv (``conv2``), not in the first 1x1 as the
  paper's v1 does (https://ngc.nvidia.com/catalog/model-scripts/nvidia:resnet_50_v1_5_for_pytorch).
* ``replace_stride_with_dilation[i]``: layer i+2 keeps its resolution; its stride 2 becomes
  dilation 2 (multiplied onto the dilation so far). The first block of a layer uses the
  *previous* dilation, the following blocks the new one (as torchvision: DeepLab's output stride 8/16).
* ``groups``, ``width_per_group``: the Bottleneck's 3x3 is a grouped conv of width
  ``int(planes * width_per_group / 64) * groups`` (ResNeXt, wide ResNet). BasicBlock allows
  only groups=1, width 64, dilation 1, and says so.
* Initialisation: conv weights ~ N(0, 2 / fan_out) (``kaiming_normal_(mode="fan_out",
  nonlinearity="relu")``, fan_out = C_out * KH * KW), BatchNorm/GroupNorm weight 1 and bias 0, fc
  as ``nn.Linear``'s default. ``zero_init_residual`` sets the last norm weight of every residual
  branch to 0, so each block starts as the identity (Goyal et al. 2017, https://arxiv.org/abs/1706.02677).
  The random numbers are NumPy's, not torch's: to compare with torchvision, copy the weights.

>>> import numpy as np, tinyvision as tv
>>> from tinyvision.models import resnet18
>>> model = resnet18(num_classes=10).eval()
>>> model(tv.tensor(np.zeros((1, 3, 32, 32), np.float32))).shape
(1, 10)
>>> [k for k in model.state_dict() if k.startswith("layer2.0.downsample")]  # doctest: +NORMALIZE_WHITESPACE
['layer2.0.downsample.0.weight', 'layer2.0.downsample.1.weight', 'layer2.0.downsample.1.bias',
 'layer2.0.downsample.1.running_mean', 'layer2.0.downsample.1.running_var',
 'layer2.0.downsample.1.num_batches_tracked']
"""
from __future__ import annotations

from typing import Callable, Optional

from .. import functional as F
from .. import nn
from ..nn import init

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50", "resnet101"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 conv, no bias, padding = dilation (so stride 1 keeps H, W)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 conv, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs and a shortcut (ResNet-18/34).

    x (N, inplanes, H, W) -> relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)) (N, planes, H/s, W/s),
    shortcut = ``downsample`` (1x1 conv/s + norm) when given, else the identity.
    """

    expansion: int = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Optional[Callable[..., nn.Module]] = None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock only supports groups=1 and base_width=64 "
                             f"(got groups={groups}, base_width={base_width}); use Bottleneck for ResNeXt")
        if dilation > 1:
            raise NotImplementedError(f"Dilation > 1 not supported in BasicBlock (got dilation={dilation}); "
                                      "replace_stride_with_dilation needs Bottleneck blocks")
        self.conv1 = conv3x3(inplanes, planes, stride)   # this conv and downsample both stride
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))      # (N, planes, H/s, W/s)
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)             # (N, inplanes, H, W) -> (N, planes, H/s, W/s)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, grouped, dilated), 1x1 expand by 4, and a shortcut (ResNet-50/101).

    x (N, inplanes, H, W) -> (N, 4 planes, H/s, W/s); inner width w = int(planes * base_width/64) * groups:
    conv1 1x1 -> (N, w, H, W); conv2 3x3/s -> (N, w, H/s, W/s); conv3 1x1 -> (N, 4 planes, H/s, W/s).
    The stride sits on conv2 (v1.5), not on conv1 (the paper's v1).
    """

    expansion: int = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Optional[Callable[..., nn.Module]] = None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)   # this conv and downsample both stride
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))      # (N, w, H, W)
        out = self.relu(self.bn2(self.conv2(out)))    # (N, w, H/s, W/s)
        out = self.bn3(self.conv3(out))               # (N, 4 planes, H/s, W/s)
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """The ResNet trunk and classifier, torchvision's ``ResNet`` (arguments, defaults, module names).

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in layer1..layer4, e.g. [2, 2, 2, 2] for ResNet-18.
        num_classes: outputs of ``fc``.
        zero_init_residual: zero the last norm weight of each residual branch.
        groups, width_per_group: the Bottleneck's grouped 3x3 (ResNeXt: 32, 4; wide: 1, 128).
        replace_stride_with_dilation: three booleans, for layer2, layer3, layer4.
        norm_layer: ``callable(num_channels) -> Module``; default :class:`~tinyvision.nn.BatchNorm2d`;
            e.g. :class:`~tinyvision.ops.FrozenBatchNorm2d` or ``lambda c: nn.GroupNorm(32, c)``.
    """

    def __init__(self, block, layers, num_classes: int = 1000, zero_init_residual: bool = False,
                 groups: int = 1, width_per_group: int = 64, replace_stride_with_dilation=None,
                 norm_layer: Optional[Callable[..., nn.Module]] = None):
        super().__init__()
        if block not in (BasicBlock, Bottleneck) and not (isinstance(block, type) and hasattr(block, "expansion")):
            raise TypeError(f"ResNet: block must be BasicBlock or Bottleneck (a class with .expansion), got {block!r}")
        if len(layers) != 4:
            raise ValueError(f"ResNet: layers must give the block count of the 4 stages, got {list(layers)}")
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer

        self.inplanes = 64
        self.dilation = 1
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]   # one per layer2, layer3, layer4
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation should be None "
                             f"or a 3-element tuple, got {replace_stride_with_dilation}")
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        # torchvision's init: He-normal on fan_out for every conv, norms to the identity map.
        # (FrozenBatchNorm2d is not matched here, as in torchvision: its buffers start at 1 and 0.)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                if m.weight is not None:   # torchvision assumes affine norms; skip a non-affine one
                    init.constant_(m.weight, 1)
                    init.constant_(m.bias, 0)

        # Zero the last norm of each residual branch: every block starts as the identity.
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck) and getattr(m.bn3, "weight", None) is not None:
                    init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock) and getattr(m.bn2, "weight", None) is not None:
                    init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        """One stage: ``blocks`` blocks of output width planes * expansion; the first one strides
        (or, with ``dilate``, raises the dilation instead) and carries the projection shortcut."""
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                        previous_dilation, norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                                dilation=self.dilation, norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))   # (N, 64, H/4, W/4)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)                                      # (N, 512 e, H/32, W/32)
        x = self.avgpool(x)                                     # (N, 512 e, 1, 1)
        x = F.flatten(x, 1)                                     # (N, 512 e)
        return self.fc(x)                                       # (N, num_classes)


def _resnet(name, block, layers, weights, progress, kwargs):
    if "pretrained" in kwargs:
        if kwargs.pop("pretrained"):
            raise ValueError(f"{name}: pretrained=True needs downloaded weights, which tinyvision does not fetch; "
                             "build with weights=None and load a torchvision state_dict with load_state_dict")
    if weights is not None:
        raise ValueError(f"{name}: weights={weights!r} is not supported (tinyvision downloads nothing); "
                         "use weights=None and model.load_state_dict(tv.interop.from_torch(torchvision_model))")
    del progress  # accepted for torchvision's signature; there is no download to report
    return ResNet(block, layers, **kwargs)


def resnet18(*, weights=None, progress: bool = True, **kwargs) -> ResNet:
    """ResNet-18: BasicBlock, [2, 2, 2, 2]; ``kwargs`` go to :class:`ResNet`."""
    return _resnet("resnet18", BasicBlock, [2, 2, 2, 2], weights, progress, kwargs)


def resnet34(*, weights=None, progress: bool = True, **kwargs) -> ResNet:
    """ResNet-34: BasicBlock, [3, 4, 6, 3]; ``kwargs`` go to :class:`ResNet`."""
    return _resnet("resnet34", BasicBlock, [3, 4, 6, 3], weights, progress, kwargs)


def resnet50(*, weights=None, progress: bool = True, **kwargs) -> ResNet:
    """ResNet-50 (v1.5): Bottleneck, [3, 4, 6, 3]; ``kwargs`` go to :class:`ResNet`."""
    return _resnet("resnet50", Bottleneck, [3, 4, 6, 3], weights, progress, kwargs)


def resnet101(*, weights=None, progress: bool = True, **kwargs) -> ResNet:
    """ResNet-101 (v1.5): Bottleneck, [3, 4, 23, 3]; ``kwargs`` go to :class:`ResNet`."""
    return _resnet("resnet101", Bottleneck, [3, 4, 23, 3], weights, progress, kwargs)
