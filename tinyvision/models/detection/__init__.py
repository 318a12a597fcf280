"""Detection models: the Feature Pyramid Network and RetinaNet, torchvision's names, arguments
and state_dict keys (``backbone.body.*``, ``backbone.fpn.*``, ``head.classification_head.*``,
``head.regression_head.*``). docs/retinanet.md walks one image through the whole model.
"""
from .backbone_utils import BackboneWithFPN, SmallResNet, _resnet_fpn_extractor, resnet_fpn_backbone
from .fpn import ExtraFPNBlock, FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7
from .retinanet import (
    RetinaNet,
    RetinaNetClassificationHead,
    RetinaNetHead,
    RetinaNetRegressionHead,
    default_anchor_generator,
    retinanet_resnet50_fpn,
    retinanet_resnet50_fpn_v2,
    retinanet_small,
)
from .transform import GeneralizedRCNNTransform, ImageList

__all__ = [
    "FeaturePyramidNetwork", "ExtraFPNBlock", "LastLevelMaxPool", "LastLevelP6P7", "BackboneWithFPN",
    "resnet_fpn_backbone", "SmallResNet", "RetinaNet", "RetinaNetHead", "RetinaNetClassificationHead",
    "RetinaNetRegressionHead", "GeneralizedRCNNTransform", "ImageList", "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2", "retinanet_small", "default_anchor_generator",
]
