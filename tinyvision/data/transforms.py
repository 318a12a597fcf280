r"""Transforms that move boxes and masks with the image.

Every transform is a callable ``t(image, target=None, rng=None) -> (image, target)``:

* ``image``: float32 (C, H, W), values in [0, 1] until :class:`Normalize`;
* ``target``: a dict (or None) with any of
  ``boxes`` (M, 4) float32 xyxy in pixel-edge coordinates (pixel j spans [j, j+1)),
  ``labels`` (M,), ``masks`` (M, H, W) per-object masks, ``area`` (M,), ``iscrowd`` (M,),
  ``mask`` (H, W) a semantic mask; other keys (``image_id``, ...) pass through unchanged.
  The input target is never modified: a transform returns a new dict.
* ``rng``: a ``numpy.random.Generator``; None draws from tinyvision's process-wide generator
  (:func:`tinyvision.random.manual_seed`). Datasets pass a generator seeded per (item, epoch).

Geometry (what each transform does to a box; the tests check it on drawn rectangles):

* :class:`RandomHorizontalFlip`: x -> W - x, so (x1, x2) -> (W - x2, W - x1); exact.
* :class:`Resize` to (OH, OW): x -> x * OW / W, y -> y * OH / H. The image is resampled
  bilinearly (PyTorch's ``interpolate(..., mode="bilinear", align_corners=False)``, the same
  numbers), masks by nearest-exact (the source of output pixel o is floor((o + 0.5) * W / OW)),
  so a resized mask's edge lies within half an output pixel of the scaled box edge.
* :class:`RandomCrop`, :class:`RandomResizedCrop`: boxes shifted by the crop origin and clipped
  to the crop; a box narrower or lower than ``min_size`` pixels afterwards (also: one whose
  mask is empty in the crop) is dropped together with its label, mask, area and iscrowd.
  Clipping is the box of the clipped box, not of the clipped object (as torchvision does): for
  a non-rectangular object cut by the crop the clipped box can be looser than its mask.
* :class:`ColorJitter`, :class:`Normalize`, :class:`ToFloat`: pixels only.

``area`` follows the geometry: recomputed from ``masks`` when they are present, else scaled
with the box (Resize: by sx * sy; crops: by the clipped share of the box).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..functional.resample import _linear_taps, _nearest_taps, resample_gather
from ..random import default_generator

__all__ = ["Compose", "Resize", "RandomHorizontalFlip", "RandomCrop", "RandomResizedCrop", "ColorJitter",
           "Normalize", "ToFloat", "hflip", "resize", "crop", "adjust_brightness", "adjust_contrast",
           "adjust_saturation", "rgb_to_grayscale", "PER_OBJECT_KEYS"]

#: Target keys holding one entry per object (dropped together when a box is dropped).
PER_OBJECT_KEYS = ("boxes", "labels", "masks", "area", "iscrowd")


# --------------------------------------------------------------------------------------
# Checking inputs
# --------------------------------------------------------------------------------------
def _check(image, target, where):
    """Validate (image, target); returns (image, a shallow copy of target or None)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        got = f"shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{where}: image must be a (C, H, W) array, got {got}")
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"{where}: image must be floating point (use ToFloat first), got {image.dtype}")
    if target is None:
        return image, None
    if not isinstance(target, dict):
        raise TypeError(f"{where}: target must be a dict or None, got {type(target).__name__}")
    _, H, W = image.shape
    target = dict(target)
    M = None
    if "boxes" in target:
        boxes = np.asarray(target["boxes"])
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"{where}: target['boxes'] must be (M, 4), got shape {boxes.shape}")
        M = boxes.shape[0]
    for key in PER_OBJECT_KEYS[1:]:
        if key in target and M is not None and np.shape(target[key])[:1] != (M,):
            raise ValueError(f"{where}: target[{key!r}] has shape {np.shape(target[key])}, "
                             f"expected {M} entries as target['boxes'] {np.shape(target['boxes'])}")
    if "masks" in target and np.shape(target["masks"])[1:] != (H, W):
        raise ValueError(f"{where}: target['masks'] must be (M, {H}, {W}) for an image of shape "
                         f"{image.shape}, got {np.shape(target['masks'])}")
    if "mask" in target and np.shape(target["mask"]) != (H, W):
        raise ValueError(f"{where}: target['mask'] must be ({H}, {W}) for an image of shape "
                         f"{image.shape}, got {np.shape(target['mask'])}")
    return image, target


def _size_pair(size, name, where):
    if isinstance(size, (numbers.Integral, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool) and v >= 1
                       for v in size)):
        raise ValueError(f"{where}: {name} must be a positive int or a pair (height, width) of them, got {size!r}")
    return int(size[0]), int(size[1])


def _keep_objects(target, keep):
    """Drop the objects where ``keep`` is False from every per-object field."""
    for key in PER_OBJECT_KEYS:
        if key in target:
            target[key] = np.asarray(target[key])[keep]
    return target


def _recompute_area(target):
    if "masks" in target and "area" in target:
        masks = np.asarray(target["masks"])
        target["area"] = (masks != 0).sum(axis=(1, 2)).astype(
            np.asarray(target["area"]).dtype)
    return target


# --------------------------------------------------------------------------------------
# Functional forms
# --------------------------------------------------------------------------------------
def hflip(image, target=None):
    """Mirror left-right: column j -> W - 1 - j; box x -> W - x."""
    image, target = _check(image, target, "hflip")
    W = image.shape[2]
    image = image[:, :, ::-1].copy()
    if target is not None:
        if "boxes" in target:
            b = np.asarray(target["boxes"])
            target["boxes"] = np.stack([W - b[:, 2], b[:, 1], W - b[:, 0], b[:, 3]], axis=1).astype(b.dtype)
        if "masks" in target:
            target["masks"] = np.asarray(target["masks"])[:, :, ::-1].copy()
        if "mask" in target:
            target["mask"] = np.asarray(target["mask"])[:, ::-1].copy()
    return image, target


def resize(image, target=None, size=None):
    """Resize to ``size`` = (OH, OW): image bilinear (PyTorch, align_corners=False), masks
    nearest-exact, boxes scaled by (OW / W, OH / H)."""
    image, target = _check(image, target, "resize")
    OH, OW = _size_pair(size, "size", "resize")
    _, H, W = image.shape
    h_taps = _linear_taps(H, OH, None, False, image.dtype)
    w_taps = _linear_taps(W, OW, None, False, image.dtype)
    image = resample_gather(image[None], h_taps, w_taps)[0]                    # (C, OH, OW)
    if target is None:
        return image, None
    rows = _nearest_taps(H, OH, None, exact=True)[0][0]                        # source row of each output row
    cols = _nearest_taps(W, OW, None, exact=True)[0][0]
    sx, sy = OW / W, OH / H
    if "boxes" in target:
        b = np.asarray(target["boxes"])
        target["boxes"] = (b * np.array([sx, sy, sx, sy])).astype(b.dtype)
    if "masks" in target:
        target["masks"] = np.asarray(target["masks"])[:, rows[:, None], cols[None, :]]
    if "mask" in target:
        target["mask"] = np.asarray(target["mask"])[rows[:, None], cols[None, :]]
    if "area" in target:
        if "masks" in target:
            _recompute_area(target)
        else:
            area = np.asarray(target["area"])
            target["area"] = (area * (sx * sy)).astype(area.dtype)
    return image, target


def crop(image, target=None, top=0, left=0, height=None, width=None, min_size=1.0):
    """Cut the window rows [top, top + height), columns [left, left + width) (inside the image).

    Boxes are shifted by (left, top) and clipped to [0, width] x [0, height]; boxes with a side
    below ``min_size`` afterwards, and objects whose mask is empty in the window, are dropped.
    """
    image, target = _check(image, target, "crop")
    _, H, W = image.shape
    height = H - top if height is None else height
    width = W - left if width is None else width
    if not (0 <= top and 0 <= left and height >= 1 and width >= 1 and top + height <= H and left + width <= W):
        raise ValueError(f"crop: the window top={top}, left={left}, height={height}, width={width} "
                         f"is not inside the image of shape {image.shape}")
    image = image[:, top:top + height, left:left + width].copy()
    if target is None:
        return image, None
    if "masks" in target:
        target["masks"] = np.asarray(target["masks"])[:, top:top + height, left:left + width].copy()
    if "mask" in target:
        target["mask"] = np.asarray(target["mask"])[top:top + height, left:left + width].copy()
    if "boxes" in target:
        b = np.asarray(target["boxes"])
        shifted = b - np.array([left, top, left, top], dtype=b.dtype)
        clipped = np.empty_like(shifted)
        clipped[:, 0::2] = np.clip(shifted[:, 0::2], 0, width)
        clipped[:, 1::2] = np.clip(shifted[:, 1::2], 0, height)
        w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        keep = (w >= min_size) & (h >= min_size)
        if "masks" in target:
            keep &= np.asarray(target["masks"]).any(axis=(1, 2))
        if "area" in target and "masks" not in target:
            # the share of each box that survives the clipping
            old = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
            share = np.where(old > 0, w * h / np.where(old > 0, old, 1), 0)
            area = np.asarray(target["area"])
            target["area"] = (area * share).astype(area.dtype)
        target["boxes"] = clipped.astype(b.dtype)
        target = _keep_objects(target, keep)
    _recompute_area(target)
    return image, target


def rgb_to_grayscale(image):
    """(3, H, W) -> (1, H, W): 0.2989 R + 0.587 G + 0.114 B (torchvision's weights)."""
    if image.shape[0] != 3:
        raise ValueError(f"rgb_to_grayscale: needs a 3-channel (3, H, W) image, got shape {image.shape}")
    r, g, b = image[0], image[1], image[2]
    return (0.2989 * r + 0.587 * g + 0.114 * b).astype(image.dtype)[None]


def _blend(image, other, ratio):
    """clip(ratio * image + (1 - ratio) * other, 0, 1), torchvision's _blend for float images."""
    return np.clip(ratio * image + (1.0 - ratio) * other, 0.0, 1.0).astype(image.dtype)


def adjust_brightness(image, factor):
    """clip(factor * image, 0, 1) (a blend with black)."""
    return _blend(image, np.zeros_like(image), factor)


def adjust_contrast(image, factor):
    """A blend with the mean grey level of the image (one number per image)."""
    mean = rgb_to_grayscale(image).mean(dtype=image.dtype) if image.shape[0] == 3 else image.mean()
    return _blend(image, mean, factor)


def adjust_saturation(image, factor):
    """A blend with the image's grayscale version (factor 0: grey, 1: unchanged)."""
    if image.shape[0] == 1:
        return image.copy()
    return _blend(image, rgb_to_grayscale(image), factor)


# --------------------------------------------------------------------------------------
# Transform objects
# --------------------------------------------------------------------------------------
class Transform:
    """Base class: ``t(image, target=None, rng=None) -> (image, target)``."""

    def __call__(self, image, target=None, rng=None):
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply ``transforms`` in order, all drawing from the same ``rng``."""

    def __init__(self, transforms):
        transforms = list(transforms)
        bad = [t for t in transforms if not callable(t)]
        if bad:
            raise TypeError(f"Compose: every transform must be callable, got {bad[0]!r}")
        self.transforms = transforms

    def __call__(self, image, target=None, rng=None):
        rng = default_generator(rng)
        for t in self.transforms:
            image, target = t(image, target, rng=rng)
        return image, target


class Resize(Transform):
    """Resize to ``size``: an int (square ``size x size`` — not torchvision's shorter-side rule)
    or (height, width). See :func:`resize`."""

    def __init__(self, size):
        self.size = _size_pair(size, "size", "Resize")

    def __call__(self, image, target=None, rng=None):
        return resize(image, target, self.size)


class RandomHorizontalFlip(Transform):
    """Mirror left-right with probability ``p``."""

    def __init__(self, p=0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, image, target=None, rng=None):
        if default_generator(rng).uniform() < self.p:
            return hflip(image, target)
        return _check(image, target, "RandomHorizontalFlip")


class RandomCrop(Transform):
    """A uniformly placed window of ``size`` (int or (height, width), at most the image's size);
    boxes clipped, degenerate ones (a side < ``min_size``) dropped. See :func:`crop`."""

    def __init__(self, size, min_size=1.0):
        self.size = _size_pair(size, "size", "RandomCrop")
        self.min_size = float(min_size)

    def __call__(self, image, target=None, rng=None):
        rng = default_generator(rng)
        h, w = self.size
        _, H, W = np.shape(image)
        if h > H or w > W:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the image {np.shape(image)}")
        top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        return crop(image, target, top, left, h, w, self.min_size)


class RandomResizedCrop(Transform):
    """torchvision's RandomResizedCrop, moving boxes and masks: a window of ``scale`` of the
    image's area and aspect ratio (w / h) log-uniform in ``ratio`` (10 tries, else the central
    crop of the nearest allowed ratio), then :func:`resize` to ``size``."""

    def __init__(self, size, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), min_size=1.0):
        self.size = _size_pair(size, "size", "RandomResizedCrop")
        if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"RandomResizedCrop: scale must be (lo, hi) with 0 < lo <= hi <= 1, got {scale!r}")
        if not (len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f"RandomResizedCrop: ratio must be (lo, hi) with 0 < lo <= hi, got {ratio!r}")
        self.scale, self.ratio = tuple(map(float, scale)), tuple(map(float, ratio))
        self.min_size = float(min_size)

    def window(self, height, width, rng):
        """(top, left, h, w) of the crop, torchvision's ``get_params`` with NumPy's generator."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
        in_ratio = width / height                          # fallback: central crop
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, image, target=None, rng=None):
        image, target = _check(image, target, "RandomResizedCrop")
        top, left, h, w = self.window(image.shape[1], image.shape[2], default_generator(rng))
        image, target = crop(image, target, top, left, h, w, min_size=0.0)
        image, target = resize(image, target, self.size)
        if target is not None and "boxes" in target:       # drop what became degenerate at the new scale
            b = target["boxes"]
            keep = ((b[:, 2] - b[:, 0]) >= self.min_size) & ((b[:, 3] - b[:, 1]) >= self.min_size)
            if "masks" in target:
                keep &= np.asarray(target["masks"]).any(axis=(1, 2))
            target = _keep_objects(target, keep)
        return image, target


def _jitter_range(value, name):
    if isinstance(value, (tuple, list)):
        lo, hi = map(float, value)
    else:
        if value < 0:
            raise ValueError(f"ColorJitter: {name} must be >= 0 or a (lo, hi) pair, got {value!r}")
        lo, hi = max(0.0, 1.0 - value), 1.0 + value
    if not 0 <= lo <= hi:
        raise ValueError(f"ColorJitter: {name} range must satisfy 0 <= lo <= hi, got {(lo, hi)}")
    return lo, hi


class ColorJitter(Transform):
    """Random brightness, contrast and saturation, in a random order (torchvision's ColorJitter
    without hue). Each factor is uniform in [max(0, 1 - v), 1 + v] (or a given (lo, hi));
    the image stays in [0, 1]. Boxes and masks are untouched."""

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0):
        self.brightness = _jitter_range(brightness, "brightness")
        self.contrast = _jitter_range(contrast, "contrast")
        self.saturation = _jitter_range(saturation, "saturation")

    def __call__(self, image, target=None, rng=None):
        image, target = _check(image, target, "ColorJitter")
        rng = default_generator(rng)
        ops = [(adjust_brightness, self.brightness), (adjust_contrast, self.contrast),
               (adjust_saturation, self.saturation)]
        for k in rng.permutation(3):
            fn, (lo, hi) = ops[k]
            factor = rng.uniform(lo, hi)
            if (lo, hi) != (1.0, 1.0):
                image = fn(image, np.float32(factor) if image.dtype == np.float32 else factor)
        return image, target


class Normalize(Transform):
    """(image - mean[c]) / std[c] per channel."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: mean {self.mean.shape} and std {self.std.shape} differ in length")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def __call__(self, image, target=None, rng=None):
        image, target = _check(image, target, "Normalize")
        if image.shape[0] != len(self.mean):
            raise ValueError(f"Normalize: {len(self.mean)} channel statistics for an image of shape {image.shape}")
        mean = self.mean.astype(image.dtype)[:, None, None]
        std = self.std.astype(image.dtype)[:, None, None]
        return (image - mean) / std, target


class ToFloat(Transform):
    """uint8 (H, W, C) (Pillow's layout) or (H, W) -> float32 (C, H, W) in [0, 1]; a floating
    (C, H, W) image passes through as float32."""

    def __call__(self, image, target=None, rng=None):
        image = np.asarray(image)
        if image.dtype == np.uint8:
            if image.ndim == 2:
                image = image[:, :, None]
            if image.ndim != 3:
                raise ValueError(f"ToFloat: a uint8 image must be (H, W) or (H, W, C), got shape {image.shape}")
            image = image.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        elif np.issubdtype(image.dtype, np.floating):
            image = image.astype(np.float32, copy=False)
        else:
            raise TypeError(f"ToFloat: expected uint8 or floating image, got {image.dtype}")
        return _check(image, target, "ToFloat")
