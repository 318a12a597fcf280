r"""RetinaNet (Lin et al. 2017, "Focal Loss for Dense Object Detection", https://arxiv.org/abs/1708.02002),
torchvision's ``torchvision.models.detection.RetinaNet``: its arguments, its state_dict keys,
its losses and its detections, number for number.

One forward pass, shapes for a batch of N images, K classes, A anchors per cell:

    images (list of (C, H_i, W_i))
      -> transform: normalise, resize, pad          ImageList (N, C, Hp, Wp), sizes (H'_i, W'_i)
      -> backbone + FPN                             P_l (N, D, H_l, W_l), l = 3..7
      -> head.classification_head                   (N, A*K, H_l, W_l) -> (N, H_l W_l A, K), levels concatenated
         head.regression_head                       (N, A*4, H_l, W_l) -> (N, H_l W_l A, 4)
      -> anchor_generator                           per image (sum_l H_l W_l A, 4), same row order
    train:
      -> match: IoU(gt, anchors) -> Matcher(0.5, 0.4, low-quality matches): per anchor a gt index,
         -1 (background) or -2 (ignored)
      -> classification = mean_i [ sum over anchors a not ignored, classes k of
                                   FL(logit[i,a,k], onehot[i,a,k]) / max(1, fg_i) ]
         bbox_regression = mean_i [ sum over fg anchors of box_loss / max(1, fg_i) ]
         (FL = sigmoid focal loss, α = 0.25, γ = 2; box_loss = L1 on the BoxCoder deltas (v1) or
         GIoU on the decoded boxes (v2); fg_i = the foreground anchors of image i)
    eval:
      -> per level: p = σ(logits) flattened anchor-major; keep p > score_thresh; the top
         topk_candidates; anchor = idx // K, label = idx % K; decode; clip to (H'_i, W'_i)
      -> all levels: batched_nms(nms_thresh) per class, first detections_per_img
      -> boxes scaled back to (H_i, W_i): [{"boxes", "scores", "labels"}]

The loss is written batched (one focal loss over all images, each anchor weighted by
valid / (N max(1, fg_i))), which is the same sum as torchvision's per-image loop.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial

import numpy as np

from ... import functional as F
from ... import nn
from ...autograd import Tensor
from ...backend import get_array_module
from ...losses import sigmoid_focal_loss
from ...ops import (
    AnchorGenerator,
    BoxCoder,
    Matcher,
    batched_nms,
    box_iou,
    clip_boxes_to_image,
    distance_box_iou_loss,
    generalized_box_iou_loss,
)
from .backbone_utils import SmallResNet, _resnet_fpn_extractor, _validate_trainable_layers
from .fpn import ExtraFPNBlock, LastLevelMaxPool, LastLevelP6P7, conv_norm_activation
from .transform import GeneralizedRCNNTransform

__all__ = [
    "RetinaNet",
    "RetinaNetHead",
    "RetinaNetClassificationHead",
    "RetinaNetRegressionHead",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "default_anchor_generator",
    "retinanet_small",
]

_BOX_LOSSES = ("l1", "smooth_l1", "giou", "diou")


def default_anchor_generator():
    """torchvision's ``_default_anchorgen``: sizes (x, int(x 2^{1/3}), int(x 2^{2/3})) for
    x = 32 .. 512 on P3..P7, ratios 0.5, 1, 2 — nine anchors per cell."""
    sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512))
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


def _flatten_level(x, per_anchor):
    """(N, A * per_anchor, H, W) -> (N, H W A, per_anchor), rows ordered y, x, anchor — the
    anchors' order."""
    N, _, H, W = x.shape
    x = F.reshape(x, (N, -1, per_anchor, H, W))     # (N, A, per_anchor, H, W)
    x = F.permute(x, (0, 3, 4, 1, 2))               # (N, H, W, A, per_anchor)
    return F.reshape(x, (N, -1, per_anchor))        # (N, H W A, per_anchor)


def _tower(in_channels, num_convs, norm_layer):
    """num_convs x (3x3 conv + [norm] + ReLU), width kept, torchvision's init N(0, 0.01), bias 0."""
    tower = nn.Sequential(*[conv_norm_activation(in_channels, in_channels, norm_layer=norm_layer)
                            for _ in range(num_convs)])
    for m in tower.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
    return tower


class RetinaNetClassificationHead(nn.Module):
    """Per level: ``num_convs`` x (3x3 conv, [norm], ReLU), then a 3x3 conv to A*K logits.

    Args:
        in_channels (int): channels D of the FPN levels.
        num_anchors (int): anchors per cell A.
        num_classes (int): K (no background class: sigmoid per class).
        prior_probability (float): π; ``cls_logits`` bias = -log((1 - π)/π), so every anchor
            starts at p = π = 0.01 and the 100k background anchors do not swamp the first steps.
        norm_layer: e.g. ``partial(nn.GroupNorm, 32)`` (v2); None (v1): convs with bias.
        num_convs (int): depth of the tower (4 in torchvision; smaller for CPU-sized models).

    forward(list of (N, D, H_l, W_l)) -> (N, sum_l H_l W_l A, K).
    Keys: ``conv.{i}.0.weight`` (+ ``conv.{i}.0.bias`` or ``conv.{i}.1.*``), ``cls_logits.*``.
    """

    def __init__(self, in_channels, num_anchors, num_classes, prior_probability=0.01, norm_layer=None,
                 num_convs=4):
        super().__init__()
        self.conv = _tower(in_channels, num_convs, norm_layer)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors * num_classes, kernel_size=3, stride=1, padding=1)
        nn.init.normal_(self.cls_logits.weight, std=0.01)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_probability) / prior_probability))
        self.num_classes = num_classes
        self.num_anchors = num_anchors
        self.BETWEEN_THRESHOLDS = Matcher.BETWEEN_THRESHOLDS

    def forward(self, x):
        return F.cat([_flatten_level(self.cls_logits(self.conv(f)), self.num_classes) for f in x], dim=1)

    def compute_loss(self, targets, head_outputs, matched_idxs, per_image=False):
        r"""Focal loss, summed over the non-ignored anchors and all classes of each image, divided
        by that image's foreground count (at least 1), averaged over the images.

        Targets: one-hot rows for foreground anchors (the matched gt's label), zero rows for
        background; ignored anchors (-2) are left out. ``per_image=True``: the (N,) array of the
        per-image terms (no graph), whose mean is the loss.
        """
        logits = head_outputs["cls_logits"]                              # (N, HWA, K)
        n_images, n_anchors, n_classes = logits.shape
        xp = get_array_module(logits.data)
        onehot = xp.zeros((n_images, n_anchors, n_classes), dtype=logits.dtype)
        weight = xp.zeros((n_images, n_anchors), dtype=logits.dtype)    # valid / (N max(1, fg))
        for i, (target, matched) in enumerate(zip(targets, matched_idxs)):
            fg = xp.nonzero(matched >= 0)[0]
            labels = xp.asarray(target["labels"]).astype(np.int64)
            onehot[i, fg, labels[matched[fg]]] = 1
            valid = matched != self.BETWEEN_THRESHOLDS
            weight[i] = valid / (max(1, int(fg.size)) * n_images)
        loss = sigmoid_focal_loss(logits, Tensor(onehot), reduction="none")  # (N, HWA, K)
        if per_image:
            return (loss.data * weight[:, :, None]).sum(axis=(1, 2)) * n_images
        return (loss * Tensor(weight[:, :, None])).sum()


class RetinaNetRegressionHead(nn.Module):
    """Per level: ``num_convs`` x (3x3 conv, [norm], ReLU), then a 3x3 conv to A*4 box deltas.

    Args:
        in_channels, num_anchors, norm_layer, num_convs: as the classification head.
        loss_type (str): "l1" (v1: L1 on the encoded deltas), "smooth_l1" (with ``beta``; the
            paper's box loss, β = 0.11), "giou" (v2: 1 - GIoU of the decoded boxes) or "diou".
        beta (float): smooth L1's β (torchvision's default 1.0).

    forward(list of (N, D, H_l, W_l)) -> (N, sum_l H_l W_l A, 4).
    Keys: ``conv.*``, ``bbox_reg.weight``, ``bbox_reg.bias``.
    """

    def __init__(self, in_channels, num_anchors, norm_layer=None, num_convs=4, loss_type="l1", beta=1.0):
        super().__init__()
        self.conv = _tower(in_channels, num_convs, norm_layer)
        self.bbox_reg = nn.Conv2d(in_channels, num_anchors * 4, kernel_size=3, stride=1, padding=1)
        nn.init.normal_(self.bbox_reg.weight, std=0.01)
        nn.init.zeros_(self.bbox_reg.bias)
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self._loss_type = loss_type
        self.beta = float(beta)

    @property
    def _loss_type(self):
        return self.__dict__["_box_loss_type"]

    @_loss_type.setter
    def _loss_type(self, value):
        if value not in _BOX_LOSSES:
            raise ValueError(f"RetinaNetRegressionHead: loss_type must be one of {_BOX_LOSSES}, got {value!r}")
        object.__setattr__(self, "_box_loss_type", value)

    def forward(self, x):
        return F.cat([_flatten_level(self.bbox_reg(self.conv(f)), 4) for f in x], dim=1)

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs, per_image=False):
        r"""Box loss summed over each image's foreground anchors, divided by their count (at
        least 1), averaged over the images. An image with no foreground adds 0.
        ``per_image=True``: the (N,) array of the per-image terms (no graph)."""
        regression = head_outputs["bbox_regression"]                     # (N, HWA, 4)
        n_images = regression.shape[0]
        xp = get_array_module(regression.data)
        rows_image, rows_anchor, gt_boxes, anchor_boxes, weights = [], [], [], [], []
        for i, (target, anchors_i, matched) in enumerate(zip(targets, anchors, matched_idxs)):
            fg = xp.nonzero(matched >= 0)[0]
            boxes = xp.asarray(_data(target["boxes"]))
            rows_image.append(xp.full(fg.shape, i, dtype=np.int64))
            rows_anchor.append(fg)
            gt_boxes.append(boxes[matched[fg]])
            anchor_boxes.append(_data(anchors_i)[fg])
            weights.append(xp.full(fg.shape, 1.0 / (max(1, int(fg.size)) * n_images)))
        index = (xp.concatenate(rows_image), xp.concatenate(rows_anchor))
        pred = regression[index]                                         # (F, 4), F fg anchors in all
        gt = xp.concatenate(gt_boxes)
        anchor_boxes = xp.concatenate(anchor_boxes)
        w = Tensor(xp.concatenate(weights).astype(regression.dtype))     # (F,)
        kind = self._loss_type
        if kind in ("l1", "smooth_l1"):
            target_deltas = self.box_coder.encode_single(gt, anchor_boxes)
            if kind == "l1":
                per_row = F.l1_loss(pred, Tensor(target_deltas), reduction="none").sum(dim=1)
            else:
                per_row = F.smooth_l1_loss(pred, Tensor(target_deltas), reduction="none", beta=self.beta).sum(dim=1)
        else:
            decoded = self.box_coder.decode_single(pred, Tensor(anchor_boxes))
            fn = generalized_box_iou_loss if kind == "giou" else distance_box_iou_loss
            per_row = fn(decoded, gt, reduction="none")
        if per_image:
            return xp.bincount(index[0], weights=per_row.data * w.data * n_images, minlength=n_images)
        return (per_row * w).sum()


def _data(x):
    return x.data if isinstance(x, Tensor) else x


class RetinaNetHead(nn.Module):
    """The two heads side by side: ``classification_head`` and ``regression_head``.

    forward(features) -> {"cls_logits": (N, HWA, K), "bbox_regression": (N, HWA, 4)}.
    """

    def __init__(self, in_channels, num_anchors, num_classes, norm_layer=None, num_convs=4):
        super().__init__()
        self.classification_head = RetinaNetClassificationHead(
            in_channels, num_anchors, num_classes, norm_layer=norm_layer, num_convs=num_convs)
        self.regression_head = RetinaNetRegressionHead(in_channels, num_anchors, norm_layer=norm_layer,
                                                       num_convs=num_convs)

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs, per_image=False):
        return {
            "classification": self.classification_head.compute_loss(targets, head_outputs, matched_idxs,
                                                                    per_image=per_image),
            "bbox_regression": self.regression_head.compute_loss(targets, head_outputs, anchors, matched_idxs,
                                                                 per_image=per_image),
        }

    def forward(self, x):
        return {"cls_logits": self.classification_head(x), "bbox_regression": self.regression_head(x)}


class RetinaNet(nn.Module):
    """RetinaNet, torchvision's contract (see the module docstring for the whole pass).

    Args:
        backbone (Module): returns an OrderedDict of feature maps (or one Tensor), all with
            ``backbone.out_channels`` channels (e.g. :class:`BackboneWithFPN`).
        num_classes (int): K, the number of object classes; labels are in [0, K).
        min_size, max_size: the transform's resize (see :class:`GeneralizedRCNNTransform`).
        image_mean, image_std: normalisation (ImageNet's by default).
        anchor_generator (AnchorGenerator): default P3-P7 sizes 32..812, ratios 0.5, 1, 2.
        head (Module): default :class:`RetinaNetHead` (v1).
        proposal_matcher (Matcher): default ``Matcher(fg_iou_thresh, bg_iou_thresh, True)``.
        score_thresh, nms_thresh, detections_per_img, topk_candidates: postprocessing.
        fg_iou_thresh, bg_iou_thresh: an anchor is foreground at IoU >= fg, background below bg.
        **kwargs: passed to the transform (``size_divisible``, ``fixed_size``).

    Call:
        train mode: ``model(images, targets)`` -> {"classification": Tensor, "bbox_regression": Tensor},
            ``targets`` a list of {"boxes": (M, 4) xyxy in pixels, "labels": (M,) ints in [0, K)};
            M = 0 is valid (every anchor background, regression loss 0).
        eval mode: ``model(images)`` -> list of {"boxes" (D, 4), "scores" (D,), "labels" (D,)} arrays,
            in each original image's coordinates, by decreasing score.
        ``images``: a list of (C, H, W) float arrays/Tensors (sizes may differ) or one (N, C, H, W) batch.

    Bad input raises a ValueError naming the image and the box: boxes with x2 <= x1 or y2 <= y1,
    boxes that do not overlap their image, NaN/inf coordinates, labels outside [0, K),
    images with different channel counts.
    """

    def __init__(self, backbone, num_classes, min_size=800, max_size=1333, image_mean=None, image_std=None,
                 anchor_generator=None, head=None, proposal_matcher=None, score_thresh=0.05, nms_thresh=0.5,
                 detections_per_img=300, fg_iou_thresh=0.5, bg_iou_thresh=0.4, topk_candidates=1000, **kwargs):
        super().__init__()
        if not hasattr(backbone, "out_channels"):
            raise ValueError("backbone must have an attribute out_channels (the channels of every feature map)")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone = backbone
        if anchor_generator is None:
            anchor_generator = default_anchor_generator()
        if not isinstance(anchor_generator, AnchorGenerator):
            raise TypeError(f"anchor_generator must be an AnchorGenerator, got {type(anchor_generator).__name__}")
        self.anchor_generator = anchor_generator
        if head is None:
            head = RetinaNetHead(backbone.out_channels, anchor_generator.num_anchors_per_location()[0], num_classes)
        self.head = head
        self.proposal_matcher = proposal_matcher or Matcher(fg_iou_thresh, bg_iou_thresh,
                                                            allow_low_quality_matches=True)
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        if image_mean is None:
            image_mean = [0.485, 0.456, 0.406]
        if image_std is None:
            image_std = [0.229, 0.224, 0.225]
        self.transform = GeneralizedRCNNTransform(min_size, max_size, image_mean, image_std, **kwargs)
        self.num_classes = int(num_classes)
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.topk_candidates = topk_candidates

    # -- input checks -------------------------------------------------------------------------
    def _check_targets(self, images, targets):
        if targets is None:
            raise ValueError("RetinaNet in train mode needs targets: a list of {'boxes', 'labels'} per image")
        if len(targets) != len(images):
            raise ValueError(f"got {len(images)} images but {len(targets)} targets")
        for i, (img, t) in enumerate(zip(images, targets)):
            if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
                raise ValueError(f"targets[{i}] must be a dict with 'boxes' (M, 4) and 'labels' (M,)")
            boxes = np.asarray(_to_numpy(t["boxes"]))
            labels = np.asarray(_to_numpy(t["labels"]))
            if boxes.ndim != 2 or boxes.shape[-1] != 4:
                raise ValueError(f"targets[{i}]['boxes'] must have shape (M, 4), got {tuple(boxes.shape)}")
            if labels.shape != (boxes.shape[0],):
                raise ValueError(
                    f"targets[{i}]: labels of shape {tuple(labels.shape)} for {boxes.shape[0]} boxes")
            if boxes.dtype.kind not in "fiu":
                raise TypeError(f"targets[{i}]['boxes'] must be numbers, got dtype {boxes.dtype}")
            if labels.size and labels.dtype.kind not in "iu":
                raise TypeError(f"targets[{i}]['labels'] must be integers, got dtype {labels.dtype}")
            h, w = img.shape[-2:]
            for j, box in enumerate(boxes):
                where = f"targets[{i}]['boxes'][{j}] = {box.tolist()}"
                if not np.all(np.isfinite(box)):
                    raise ValueError(f"{where} contains NaN or inf")
                if box[2] <= box[0] or box[3] <= box[1]:
                    raise ValueError(f"{where} has x2 <= x1 or y2 <= y1; boxes need positive width and height")
                if box[2] <= 0 or box[3] <= 0 or box[0] >= w or box[1] >= h:
                    raise ValueError(f"{where} lies outside its image of size (H, W) = {(h, w)}")
            bad = np.flatnonzero((labels < 0) | (labels >= self.num_classes))
            if bad.size:
                j = int(bad[0])
                raise ValueError(
                    f"targets[{i}]['labels'][{j}] = {int(labels[j])} (box {boxes[j].tolist()}) is outside "
                    f"[0, num_classes) = [0, {self.num_classes})")

    # -- training -----------------------------------------------------------------------------
    def compute_loss(self, targets, head_outputs, anchors, per_image=False):
        """Match every image's anchors to its boxes, then the heads' two losses.

        ``per_image=True`` (for lessons and debugging; no graph): ``{"classification" (N,),
        "bbox_regression" (N,), "num_foreground" (N,)}`` — each image's own terms, whose means
        are the two losses (torchvision averages per-image losses)."""
        matched_idxs = []
        for anchors_i, t in zip(anchors, targets):
            boxes = _data(t["boxes"])
            if boxes.shape[0] == 0:
                xp = get_array_module(anchors_i)
                matched_idxs.append(xp.full((anchors_i.shape[0],), -1, dtype=np.int64))
                continue
            matched_idxs.append(self.proposal_matcher(box_iou(boxes, anchors_i)))   # (HWA,)
        if per_image:
            parts = self.head.compute_loss(targets, head_outputs, anchors, matched_idxs, per_image=True)
            parts["num_foreground"] = np.array([int((np.asarray(m) >= 0).sum()) for m in matched_idxs])
            return parts
        return self.head.compute_loss(targets, head_outputs, anchors, matched_idxs)

    # -- inference ------------------------------------------------------------------------------
    def postprocess_detections(self, head_outputs, anchors, image_shapes):
        """Per image: per level, score threshold and top-k; decode and clip; batched NMS; cut.

        head_outputs: {"cls_logits": list over levels of (N, H_l W_l A, K) arrays,
        "bbox_regression": likewise (.., 4)}; anchors: per image a list over levels of arrays.
        """
        class_logits = head_outputs["cls_logits"]
        box_regression = head_outputs["bbox_regression"]
        detections = []
        for index, image_shape in enumerate(image_shapes):
            xp = get_array_module(class_logits[0])
            image_boxes, image_scores, image_labels = [], [], []
            for logits_l, deltas_l, anchors_l in zip(class_logits, box_regression, anchors[index]):
                logits_l, deltas_l = logits_l[index], deltas_l[index]
                num_classes = logits_l.shape[-1]
                scores = F.sigmoid(Tensor(logits_l.reshape(-1))).data          # anchor-major, class-minor
                candidates = xp.nonzero(scores > self.score_thresh)[0]
                scores = scores[candidates]
                k = min(self.topk_candidates, int(candidates.size))
                order = xp.argsort(-scores, kind="stable")[:k]                  # top-k, by decreasing score
                scores, candidates = scores[order], candidates[order]
                anchor_idxs = candidates // num_classes
                labels = candidates % num_classes
                boxes = self.box_coder.decode_single(deltas_l[anchor_idxs], anchors_l[anchor_idxs])
                boxes = clip_boxes_to_image(boxes, tuple(image_shape))
                image_boxes.append(boxes)
                image_scores.append(scores)
                image_labels.append(labels)
            boxes = xp.concatenate(image_boxes, axis=0)
            scores = xp.concatenate(image_scores, axis=0)
            labels = xp.concatenate(image_labels, axis=0)
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            detections.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return detections

    # -- the pass -------------------------------------------------------------------------------
    def forward(self, images, targets=None):
        images = _as_image_list(images)
        if self.training:
            self._check_targets(images, targets)
        original_image_sizes = [tuple(int(v) for v in img.shape[-2:]) for img in images]
        if targets is not None:
            targets = [dict(t, boxes=_to_array(t["boxes"], images[0]), labels=_to_numpy(t["labels"]))
                       for t in targets]
        image_list, targets = self.transform(images, targets)

        features = self.backbone(Tensor(image_list.tensors))
        if isinstance(features, Tensor):
            features = OrderedDict([("0", features)])
        features = list(features.values())
        head_outputs = self.head(features)
        anchors = self.anchor_generator(image_list, [f.data for f in features])   # per image (HWA, 4)

        if self.training:
            return self.compute_loss(targets, head_outputs, anchors)

        # split the outputs (and the anchors) back into levels: H_l W_l A rows each
        hwa = head_outputs["cls_logits"].shape[1]
        hw = [f.shape[2] * f.shape[3] for f in features]
        a = hwa // sum(hw)
        splits = np.cumsum([n * a for n in hw])[:-1].tolist()
        xp = get_array_module(head_outputs["cls_logits"].data)
        split_outputs = {k: xp.split(v.data, splits, axis=1) for k, v in head_outputs.items()}
        split_anchors = [xp.split(anc, splits, axis=0) for anc in anchors]
        detections = self.postprocess_detections(split_outputs, split_anchors, image_list.image_sizes)
        return self.transform.postprocess(detections, image_list.image_sizes, original_image_sizes)


def _to_numpy(x):
    if isinstance(x, Tensor):
        return x.numpy()
    if hasattr(x, "detach") and hasattr(x, "cpu"):   # a torch tensor
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _to_array(boxes, like):
    """Target boxes as an array on the images' device (float: kept; ints: float32)."""
    arr = _to_numpy(boxes)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    xp = get_array_module(_data(like))
    return xp.asarray(arr)


def _as_image_list(images):
    """A list of (C, H, W) arrays from a list/tuple or from one (N, C, H, W) array or Tensor."""
    if isinstance(images, (list, tuple)):
        out = [_data(img) if isinstance(img, Tensor) else (img if hasattr(img, "ndim") else np.asarray(img))
               for img in images]
    else:
        batch = _data(images)
        if not hasattr(batch, "ndim") or batch.ndim != 4:
            raise ValueError(
                f"images must be a list of (C, H, W) images or one (N, C, H, W) batch, got "
                f"{type(images).__name__} of shape {tuple(getattr(batch, 'shape', ()))}")
        out = list(batch)
    if not out:
        raise ValueError("images is empty")
    for i, img in enumerate(out):
        if img.ndim != 3:
            raise ValueError(f"images[{i}] must be (C, H, W), got shape {tuple(img.shape)}")
        if img.dtype.kind != "f":
            raise TypeError(f"images[{i}] must be floating point with values in [0, 1], got dtype {img.dtype}")
    channels = [img.shape[0] for img in out]
    for i, c in enumerate(channels):
        if c != channels[0]:
            raise ValueError(f"images have different channel counts: images[0] has {channels[0]}, "
                             f"images[{i}] has {c} (shape {tuple(out[i].shape)})")
    return out


# ----------------------------------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------------------------------
def _load_backbone_weights(backbone, weights_backbone):
    """weights_backbone: a state dict (arrays or torch tensors, torchvision's ResNet keys)."""
    if not hasattr(weights_backbone, "keys"):
        raise TypeError("weights_backbone must be a state dict (name -> array), e.g. "
                        "{k: v.numpy() for k, v in torchvision.models.resnet50(weights=...).state_dict().items()}")
    backbone.load_state_dict(weights_backbone)


def retinanet_resnet50_fpn(num_classes=91, weights_backbone=None, trainable_backbone_layers=None, **kwargs):
    """RetinaNet with a ResNet-50-FPN backbone, torchvision's v1 recipe.

    P3-P5 from layer2-layer4, P6/P7 from P5 (``LastLevelP6P7(256, 256)``), the v1 head (no norm,
    4 convs), L1 box loss. Without ``weights_backbone`` every layer trains and the backbone keeps
    BatchNorm2d; with it (a torchvision ResNet-50 state dict) the norms are FrozenBatchNorm2d and
    ``trainable_backbone_layers`` (default 3) of layer4 .. conv1 train.
    """
    from ...ops.misc import FrozenBatchNorm2d
    from ..resnet import resnet50

    is_trained = weights_backbone is not None
    trainable = _validate_trainable_layers(is_trained, trainable_backbone_layers, 5, 3)
    norm_layer = FrozenBatchNorm2d if is_trained else nn.BatchNorm2d
    backbone = resnet50(norm_layer=norm_layer)
    if is_trained:
        _load_backbone_weights(backbone, weights_backbone)
    backbone = _resnet_fpn_extractor(backbone, trainable, returned_layers=[2, 3, 4],
                                     extra_blocks=LastLevelP6P7(256, 256))
    return RetinaNet(backbone, num_classes, **kwargs)


def retinanet_resnet50_fpn_v2(num_classes=91, weights_backbone=None, trainable_backbone_layers=None, **kwargs):
    """RetinaNet v2 (torchvision's improved recipe): P6 from C5 (``LastLevelP6P7(2048, 256)``),
    GroupNorm(32) in both head towers (convs without bias), GIoU box loss. The backbone keeps
    BatchNorm2d, as torchvision's v2 builder does."""
    from ..resnet import resnet50

    is_trained = weights_backbone is not None
    trainable = _validate_trainable_layers(is_trained, trainable_backbone_layers, 5, 3)
    backbone = resnet50()
    if is_trained:
        _load_backbone_weights(backbone, weights_backbone)
    backbone = _resnet_fpn_extractor(backbone, trainable, returned_layers=[2, 3, 4],
                                     extra_blocks=LastLevelP6P7(2048, 256))
    anchor_generator = default_anchor_generator()
    head = RetinaNetHead(backbone.out_channels, anchor_generator.num_anchors_per_location()[0], num_classes,
                         norm_layer=partial(nn.GroupNorm, 32))
    head.regression_head._loss_type = "giou"
    return RetinaNet(backbone, num_classes, anchor_generator=anchor_generator, head=head, **kwargs)


class _NoExtraLevels(ExtraFPNBlock):
    """The FPN's own levels only (no P6/P7, no pool)."""

    def forward(self, results, x, names):
        return list(results), list(names)


def retinanet_small(num_classes, *, backbone="small", widths=(16, 32, 64, 128), blocks=(1, 1, 1, 1),
                    stem_stride=1, returned_layers=(2, 3, 4), extra_levels="p6p7", fpn_channels=64,
                    head_convs=2, anchor_sizes=None, aspect_ratios=(0.5, 1.0, 2.0), head_norm=None,
                    box_loss="l1", min_size=64, max_size=64, **kwargs):
    """A CPU-sized RetinaNet: the same model class, narrower and shallower.

    Args:
        num_classes (int): K.
        backbone: "small" (a :class:`SmallResNet` with ``widths``, ``blocks``, ``stem_stride``) or
            "resnet18" / "resnet34" / "resnet50" (torchvision's trunks, BatchNorm2d).
        returned_layers: the backbone stages the FPN reads (2, 3, 4 -> P3-P5 for torchvision's
            strides; with SmallResNet's stem_stride=1 they sit at strides 4, 8, 16).
        extra_levels: "p6p7" (two more levels from P5, v1's rule), "p6p7_c5" (from C5), "pool" or None.
        fpn_channels (int): D, the width of the FPN and of the head towers.
        head_convs (int): depth of each head tower (torchvision: 4).
        anchor_sizes: one tuple of sizes per level; default three scales per octave from 16 px,
            doubling per level: ((16, 20, 25), (32, 40, 50), ...).
        aspect_ratios: h / w, the same on every level.
        head_norm: None or "group" (GroupNorm with min(32, D // 4) groups... D divisible by it).
        box_loss: "l1" | "smooth_l1" | "giou" | "diou".
        min_size, max_size: the transform (set both to the native image size to skip resizing).
        **kwargs: further RetinaNet arguments (score_thresh, detections_per_img, ...).
    """
    if backbone == "small":
        trunk = SmallResNet(widths=widths, blocks=blocks, stem_stride=stem_stride)
    elif backbone in ("resnet18", "resnet34", "resnet50"):
        from .. import resnet as resnet_module

        trunk = getattr(resnet_module, backbone)()
    else:
        raise ValueError(f"backbone must be 'small', 'resnet18', 'resnet34' or 'resnet50', got {backbone!r}")
    returned_layers = list(returned_layers)
    top_channels = (trunk.stage_channels[returned_layers[-1] - 1] if hasattr(trunk, "stage_channels")
                    else trunk.inplanes // 8 * 2 ** (returned_layers[-1] - 1))
    extras = {"p6p7": lambda: LastLevelP6P7(fpn_channels, fpn_channels),
              "p6p7_c5": lambda: LastLevelP6P7(top_channels, fpn_channels),
              "pool": LastLevelMaxPool, None: _NoExtraLevels}
    if extra_levels not in extras:
        raise ValueError(f"extra_levels must be one of {list(extras)}, got {extra_levels!r}")
    body = _resnet_fpn_extractor(trunk, 5, returned_layers=returned_layers, extra_blocks=extras[extra_levels](),
                                 out_channels=fpn_channels)
    n_levels = len(returned_layers) + {"p6p7": 2, "p6p7_c5": 2, "pool": 1, None: 0}[extra_levels]
    if anchor_sizes is None:
        anchor_sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3)))
                             for x in (16 * 2 ** i for i in range(n_levels)))
    anchor_sizes = tuple(tuple(s) if isinstance(s, (tuple, list)) else (s,) for s in anchor_sizes)
    if len(anchor_sizes) != n_levels:
        raise ValueError(f"anchor_sizes gives {len(anchor_sizes)} levels but the pyramid has {n_levels}")
    anchor_generator = AnchorGenerator(anchor_sizes, (tuple(aspect_ratios),) * n_levels)
    norm_layer = None
    if head_norm == "group":
        norm_layer = partial(nn.GroupNorm, min(32, max(1, fpn_channels // 4)))
    elif head_norm is not None:
        raise ValueError(f"head_norm must be None or 'group', got {head_norm!r}")
    head = RetinaNetHead(fpn_channels, anchor_generator.num_anchors_per_location()[0], num_classes,
                         norm_layer=norm_layer, num_convs=head_convs)
    head.regression_head._loss_type = box_loss
    return RetinaNet(body, num_classes, min_size=min_size, max_size=max_size, anchor_generator=anchor_generator,
                     head=head, **kwargs)
