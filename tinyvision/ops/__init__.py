"""Vision ops with torchvision.ops' names: boxes, IoU, NMS, anchors, box coding, matching.

Arrays in -> arrays out, Tensors in -> Tensors out (NumPy or CuPy). The differentiable ops
here are the box-regression losses :func:`generalized_box_iou_loss` and
:func:`distance_box_iou_loss` (and :meth:`BoxCoder.decode_single` on Tensors).
Conventions (0/0 in IoU, NMS score ties, matcher sentinels) are stated in each module.

>>> import numpy as np
>>> from tinyvision.ops import box_iou, nms
>>> boxes = np.array([[0., 0., 10., 10.], [0., 0., 10., 9.], [20., 20., 25., 25.]])
>>> box_iou(boxes, boxes[:1])
array([[1. ],
       [0.9],
       [0. ]])
>>> nms(boxes, np.array([0.6, 0.9, 0.5]), iou_threshold=0.5)
array([1, 2])
"""
from .anchors import AnchorGenerator, retinanet_anchor_generator
from .box_coder import BoxCoder
from .boxes import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes_to_image,
    complete_box_iou,
    distance_box_iou,
    generalized_box_iou,
    remove_small_boxes,
)
from .diou_loss import distance_box_iou_loss
from .giou_loss import generalized_box_iou_loss
from .matcher import Matcher, MatchSummary
from .misc import FrozenBatchNorm2d
from .nms import batched_nms, nms, nms_trace

__all__ = [
    "box_convert", "box_area", "box_iou", "generalized_box_iou", "distance_box_iou",
    "complete_box_iou", "clip_boxes_to_image", "remove_small_boxes", "generalized_box_iou_loss",
    "distance_box_iou_loss",
    "nms", "batched_nms", "nms_trace", "AnchorGenerator", "retinanet_anchor_generator", "BoxCoder", "Matcher", "MatchSummary",
    "FrozenBatchNorm2d",
]
