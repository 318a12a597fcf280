r"""What torchvision puts in front of a detector: ``GeneralizedRCNNTransform``.

For each image x (C, H, W), values in [0, 1]:

1. normalise      x' = (x - mean[:, None, None]) / std[:, None, None]       (in x's dtype)
2. resize         scale = min(min_size / min(H, W), max_size / max(H, W))   (Python float)
                  (H', W') = (floor(H * scale), floor(W * scale))
                  x'' = bilinear(x', size (H', W'), align_corners=False), the source coordinate of
                  output pixel o being (o + 0.5) * (H / H') - 0.5 — torch's
                  ``interpolate(scale_factor=scale, recompute_scale_factor=True)`` path, which
                  uses in/out (not 1/scale) once the size is fixed. A size that does not change
                  is copied exactly (min_size = the native size gives the image itself).
                  Target boxes are scaled by (W'/W, H'/H), the ratios computed in float32.
3. batch          every image zero-padded at the bottom/right to the batch's largest (H', W'),
                  rounded up to a multiple of ``size_divisible`` (32): (N, C, Hp, Wp).

The batch remembers each image's (H', W') (``ImageList.image_sizes``): detections are clipped
to that size, then ``postprocess`` scales their boxes back by (W/W', H/H') (float32 ratios again).

Training with several ``min_size`` values picks one per image at random (torchvision draws from
torch's generator; here from ``tinyvision.random``); evaluation uses ``min_size[-1]``.
"""
from __future__ import annotations

import math

import numpy as np

from ... import functional as F
from ... import nn
from ...autograd import Tensor, no_grad
from ...backend import get_array_module
from ...random import default_generator

__all__ = ["GeneralizedRCNNTransform", "ImageList", "resize_boxes"]


class ImageList:
    """A padded batch and the size of each image inside it (torchvision's ImageList).

    tensors: array (N, C, Hp, Wp); image_sizes: list of N (H', W') — the resized, unpadded sizes.
    """

    def __init__(self, tensors, image_sizes):
        self.tensors = tensors
        self.image_sizes = [tuple(int(v) for v in s) for s in image_sizes]

    def __repr__(self):
        return f"ImageList(tensors shape {tuple(self.tensors.shape)}, image_sizes={self.image_sizes})"


def resize_boxes(boxes, original_size, new_size):
    """Scale (M, 4) xyxy boxes from an image of ``original_size`` (H, W) to ``new_size``.

    The ratios new/original are computed in float32 (as torchvision), then applied in the boxes'
    dtype: x * ratio_w, y * ratio_h.
    """
    xp = get_array_module(boxes)
    ratio_h = np.float32(new_size[0]) / np.float32(original_size[0])
    ratio_w = np.float32(new_size[1]) / np.float32(original_size[1])
    ratios = xp.asarray([ratio_w, ratio_h, ratio_w, ratio_h], dtype=np.float32)
    if boxes.dtype.kind != "f":
        boxes = boxes.astype(np.float32)
    return boxes * ratios.astype(boxes.dtype)


def _array(x):
    return x.data if isinstance(x, Tensor) else x


class GeneralizedRCNNTransform(nn.Module):
    """Normalise, resize and batch images (and resize their target boxes); see the module docstring.

    Args:
        min_size (int or tuple[int]): target length of the shorter side.
        max_size (int): cap on the longer side.
        image_mean, image_std (3 floats): per-channel normalisation.
        size_divisible (int): the padded batch's H and W are multiples of it (32).
        fixed_size ((W, H) or None): resize every image to this size instead (torchvision's order).

    forward(images, targets=None) -> (ImageList, targets): ``images`` a list of (C, H, W) float
    arrays/Tensors; ``targets`` a list of dicts with "boxes" (M, 4), copied (never changed in
    place) with their boxes resized.
    """

    def __init__(self, min_size, max_size, image_mean, image_std, size_divisible=32, fixed_size=None,
                 **kwargs):
        super().__init__()
        if not isinstance(min_size, (list, tuple)):
            min_size = (min_size,)
        self.min_size = tuple(int(s) for s in min_size)
        self.max_size = int(max_size)
        if any(s <= 0 for s in self.min_size) or self.max_size <= 0:
            raise ValueError(f"min_size {min_size} and max_size {max_size} must be positive")
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        if len(self.image_mean) != len(self.image_std):
            raise ValueError(f"image_mean {image_mean} and image_std {image_std} must have one value per channel each")
        self.size_divisible = int(size_divisible)
        self.fixed_size = fixed_size
        self._skip_resize = bool(kwargs.pop("_skip_resize", False))
        if kwargs:
            raise TypeError(f"GeneralizedRCNNTransform: unexpected arguments {sorted(kwargs)}")

    # -- the three steps ----------------------------------------------------------------------
    def normalize(self, image):
        """(x - mean) / std per channel, in the image's dtype."""
        if image.dtype.kind != "f":
            raise TypeError(f"images must be floating point (values in [0, 1]), got dtype {image.dtype}")
        xp = get_array_module(image)
        if image.shape[0] != len(self.image_mean):
            raise ValueError(
                f"an image has {image.shape[0]} channels but image_mean/image_std have "
                f"{len(self.image_mean)} values"
            )
        mean = xp.asarray(self.image_mean, dtype=image.dtype)[:, None, None]
        std = xp.asarray(self.image_std, dtype=image.dtype)[:, None, None]
        return (image - mean) / std

    def _choose_min_size(self):
        if not self.training or len(self.min_size) == 1:
            return self.min_size[-1]
        return self.min_size[int(default_generator().integers(len(self.min_size)))]

    def resize(self, image, target=None):
        """Bilinear resize so that the shorter side is min_size (longer side at most max_size)."""
        h, w = image.shape[-2:]
        if self.training and self._skip_resize:
            return image, target
        if self.fixed_size is not None:
            size = (int(self.fixed_size[1]), int(self.fixed_size[0]))
            resized = F.interpolate(Tensor(image[None]), size=size, mode="bilinear", align_corners=False)
        else:
            scale = min(self._choose_min_size() / min(h, w), self.max_size / max(h, w))
            resized = F.interpolate(Tensor(image[None]), scale_factor=scale, mode="bilinear",
                                    recompute_scale_factor=True, align_corners=False)
        image = resized.data[0]
        if target is not None:
            target = dict(target)
            target["boxes"] = resize_boxes(_array(target["boxes"]), (h, w), image.shape[-2:])
        return image, target

    def batch_images(self, images, size_divisible=32):
        """Zero-pad to a common (C, Hp, Wp), Hp and Wp multiples of size_divisible: (N, C, Hp, Wp)."""
        xp = get_array_module(*images)
        c = max(img.shape[0] for img in images)
        hp = int(math.ceil(max(img.shape[1] for img in images) / float(size_divisible)) * size_divisible)
        wp = int(math.ceil(max(img.shape[2] for img in images) / float(size_divisible)) * size_divisible)
        batch = xp.zeros((len(images), c, hp, wp), dtype=images[0].dtype)
        for i, img in enumerate(images):
            batch[i, : img.shape[0], : img.shape[1], : img.shape[2]] = img
        return batch

    def forward(self, images, targets=None):
        images = [_array(img) for img in images]
        for i, img in enumerate(images):
            if img.ndim != 3:
                raise ValueError(f"images[{i}] must be (C, H, W), got shape {tuple(img.shape)}")
        channels = [int(img.shape[0]) for img in images]
        if len(set(channels)) > 1:
            first_odd = next(i for i, c in enumerate(channels) if c != channels[0])
            raise ValueError(
                f"images have different channel counts: images[0] has {channels[0]}, "
                f"images[{first_odd}] has {channels[first_odd]} (shape {tuple(images[first_odd].shape)})"
            )
        if targets is not None:
            if len(targets) != len(images):
                raise ValueError(f"got {len(images)} images but {len(targets)} targets")
            targets = [dict(t) for t in targets]
        with no_grad():
            out = []
            for i, img in enumerate(images):
                img = self.normalize(img)
                img, t = self.resize(img, targets[i] if targets is not None else None)
                out.append(img)
                if targets is not None:
                    targets[i] = t
            image_sizes = [tuple(img.shape[-2:]) for img in out]
            batch = self.batch_images(out, size_divisible=self.size_divisible)
        return ImageList(batch, image_sizes), targets

    def postprocess(self, result, image_shapes, original_image_sizes):
        """Map each detection's boxes from the resized image back to the original (eval only)."""
        if self.training:
            return result
        for pred, resized, original in zip(result, image_shapes, original_image_sizes):
            pred["boxes"] = resize_boxes(pred["boxes"], resized, original)
        return result

    def extra_repr(self):
        return (f"Normalize(mean={self.image_mean}, std={self.image_std}), "
                f"Resize(min_size={self.min_size}, max_size={self.max_size}, mode='bilinear')")
