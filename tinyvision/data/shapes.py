r"""Synthetic shapes: the embedded default data of the three tasks.

One generator draws a *scene*: a cluttered background (a two-colour gradient, a few faint lines)
with 0..M filled shapes of :data:`SHAPE_CLASSES` painted back to front, then uniform pixel noise,
then quantised to uint8. Three views read it:

* :class:`ShapesLocalization` — one object wholly inside the image; target ``boxes`` (1, 4),
  ``labels`` (1,).
* :class:`ShapesDetection` — 0..``max_objects`` objects of several classes and sizes; they may
  overlap and touch the border, but each keeps at least ``min_visible`` of its own pixels;
  ``empty_fraction`` of the images have none. Target ``boxes`` (M, 4), ``labels`` (M,),
  ``image_id``, ``area``, ``iscrowd`` (torchvision's COCO convention).
* :class:`ShapesSegmentation` — the same kind of scene; target ``mask`` (H, W) int64 with 0 the
  background and 1..K the class of the front-most object at each pixel (``mode="binary"``:
  1 = any object), plus ``boxes`` and ``labels``.

Geometry. Pixel (row i, column j) is the unit square [j, j+1) x [i, i+1) and is inside a shape
when its centre (j + 0.5, i + 0.5) is. Every object's mask is the set of its *visible* pixels
(after occlusion by the objects painted over it and clipping by the border), and its box is the
tight box of that mask, in pixel-edge coordinates: ``x1 = min column, x2 = max column + 1``, so
box and mask agree exactly (and so do the COCO ``bbox`` and ``area`` that :func:`export_coco`
writes). The image is quantised to uint8 levels (``image = uint8 / 255``), so a PNG export is
lossless and reads back bit for bit.

Determinism. Item ``i`` of a view with seed ``s`` is drawn from
``SeedSequence([SHAPES_VERSION, s, view, i])``: the same image on every machine and for every
``n`` (a dataset of 10 is the first 10 items of one of 1000). Random transforms, if any, draw
from ``SeedSequence([SHAPES_VERSION, s, view, i, 1 + epoch])``. Any change to the generator
that changes a pixel bumps :data:`SHAPES_VERSION`.

>>> ds = ShapesDetection(4, image_size=96, seed=0)
>>> image, target = ds[1]
>>> image.shape, image.dtype, target["boxes"].shape[1], target["labels"].dtype
((3, 96, 96), dtype('float32'), 4, dtype('int64'))
>>> bool((ShapesDetection(100, image_size=96)[1][0] == image).all())   # independent of n
True
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .loader import Dataset

__all__ = ["SHAPE_CLASSES", "SHAPES_VERSION", "Scene", "draw_scene", "shape_mask", "masks_to_boxes", "make_shapes",
           "ShapesLocalization", "ShapesDetection", "ShapesSegmentation", "write_shapes"]

#: Class names; label k (0-based) is ``SHAPE_CLASSES[k]``; COCO category id k + 1.
SHAPE_CLASSES = ("circle", "square", "triangle", "star", "cross")

#: Bumped whenever the generator's output changes for some (seed, index).
SHAPES_VERSION = 1

_VIEW_CODES = {"localize": 1, "detect": 2, "segment": 3}


# --------------------------------------------------------------------------------------
# Rasterising one shape
# --------------------------------------------------------------------------------------
def _star_vertices(cx, cy, r, inner=0.45, points=5):
    """Vertices of a ``points``-pointed star, first point straight up (image y grows down)."""
    k = np.arange(2 * points)
    radius = np.where(k % 2 == 0, r, inner * r)
    angle = -np.pi / 2 + k * np.pi / points
    return np.stack([cx + radius * np.cos(angle), cy + radius * np.sin(angle)], axis=1)


def _inside_polygon(px, py, vertices):
    """Even-odd rule: a point is inside when a ray to +x crosses the outline an odd number of times.

    px, py: pixel-centre coordinates (any broadcastable shapes); vertices (V, 2) as (x, y).
    """
    inside = np.zeros(np.broadcast(px, py).shape, dtype=bool)
    x0, y0 = vertices[:, 0], vertices[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for a, b, c, d in zip(x0, y0, x1, y1):
        if b == d:
            continue                                  # a horizontal edge never crosses the ray
        straddles = (b > py) != (d > py)              # the edge spans the row py (half-open)
        x_cross = a + (py - b) * (c - a) / (d - b)    # where the edge meets the row
        inside ^= straddles & (px < x_cross)
    return inside


def _shape_window(kind, cx, cy, size, height, width):
    """The shape's pixels inside the image as ``(rows slice, cols slice, window mask, full_area)``."""
    r = size / 2.0
    # the unclipped window of pixels whose centres can be inside: columns j0..j1-1, rows i0..i1-1
    j0, j1 = math.floor(cx - r), math.ceil(cx + r) + 1
    i0, i1 = math.floor(cy - r), math.ceil(cy + r) + 1
    px = np.arange(j0, j1, dtype=np.float64)[None, :] + 0.5 - cx      # (1, w) relative to centre
    py = np.arange(i0, i1, dtype=np.float64)[:, None] + 0.5 - cy      # (h, 1)
    if kind == "circle":
        inside = px * px + py * py < r * r
    elif kind == "square":
        inside = (np.abs(px) < r) & (np.abs(py) < r)
    elif kind == "triangle":                                           # apex up, base down
        inside = _inside_polygon(px, py, np.array([[0.0, -r], [r, r], [-r, r]]))
    elif kind == "star":
        inside = _inside_polygon(px, py, _star_vertices(0.0, 0.0, r))
    elif kind == "cross":
        arm = 0.18 * size
        inside = ((np.abs(px) < r) & (np.abs(py) < arm)) | ((np.abs(py) < r) & (np.abs(px) < arm))
    else:
        raise ValueError(f"shape_mask: kind must be one of {SHAPE_CLASSES}, got {kind!r}")
    full_area = int(inside.sum())
    a0, a1, b0, b1 = max(i0, 0), min(i1, height), max(j0, 0), min(j1, width)
    a1, b1 = max(a1, a0), max(b1, b0)
    window = inside[a0 - i0:a1 - i0, b0 - j0:b1 - j0]
    return slice(a0, a1), slice(b0, b1), window, full_area


def shape_mask(kind, cx, cy, size, height, width):
    """The pixels of one shape, clipped to a (height, width) image.

    kind: a name of :data:`SHAPE_CLASSES`; (cx, cy): centre in pixel coordinates; size: the side
    of the square the shape is inscribed in (circle: diameter; triangle: base = height = size;
    star: outer diameter, inner radius 0.45 of the outer; cross: arms 0.36 * size wide).
    Returns ``(mask (height, width) bool, full_area)`` where ``full_area`` counts the shape's
    pixels before clipping (so ``mask.sum() / full_area`` is the share inside the image).
    """
    rows, cols, window, full_area = _shape_window(kind, cx, cy, size, height, width)
    mask = np.zeros((height, width), dtype=bool)
    mask[rows, cols] = window
    return mask, full_area


def masks_to_boxes(masks):
    """Tight boxes (M, 4) float32 xyxy in pixel-edge coordinates of (M, H, W) masks.

    ``x1 = min column, y1 = min row, x2 = max column + 1, y2 = max row + 1``; an empty mask
    gives (0, 0, 0, 0). (torchvision.ops.masks_to_boxes returns max column without the + 1.)
    """
    masks = np.asarray(masks, dtype=bool)
    M = masks.shape[0]
    boxes = np.zeros((M, 4), dtype=np.float32)
    cols = masks.any(axis=1)                       # (M, W)
    rows = masks.any(axis=2)                       # (M, H)
    for k in range(M):
        c, r = np.flatnonzero(cols[k]), np.flatnonzero(rows[k])
        if c.size:
            boxes[k] = (c[0], r[0], c[-1] + 1, r[-1] + 1)
    return boxes


# --------------------------------------------------------------------------------------
# A scene
# --------------------------------------------------------------------------------------
@dataclass
class Scene:
    """One generated image and its objects, in painting order (back to front).

    image     uint8 (H, W, 3)
    instances int16 (H, W): index of the visible object at each pixel, -1 for background
    labels    int64 (M,) in [0, K)
    boxes     float32 (M, 4) xyxy, the tight boxes of the visible masks
    full_areas int64 (M,): each shape's own pixel count, before clipping and occlusion
    """

    image: np.ndarray
    instances: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    full_areas: np.ndarray = None

    @property
    def masks(self):
        """(M, H, W) bool visible masks (disjoint)."""
        return self.instances[None, :, :] == np.arange(len(self.labels), dtype=np.int16)[:, None, None]

    @property
    def areas(self):
        """(M,) float32 visible pixel counts."""
        counts = np.bincount(self.instances.ravel() + 1, minlength=len(self.labels) + 1)
        return counts[1:].astype(np.float32)

    def semantic(self, binary=False):
        """(H, W) int64: 0 background, else label + 1 (binary: 1) of the visible object."""
        values = np.ones(len(self.labels), dtype=np.int64) if binary else 1 + self.labels
        lookup = np.concatenate([[0], values]).astype(np.int64)      # instance index + 1 -> class
        return lookup[self.instances.astype(np.int64) + 1]


def _background(rng, H, W, clutter):
    """A two-colour linear gradient in a random direction plus up to three faint 1-px lines."""
    c0 = rng.uniform(0.1, 0.9, size=3)
    c1 = np.clip(c0 + rng.uniform(-0.3, 0.3, size=3), 0.0, 1.0)
    theta = rng.uniform(0, 2 * np.pi)
    diagonal = math.hypot(H, W)
    # t = 0.5 + <pixel centre - image centre, (cos, sin)> / diagonal, in [0, 1]
    tx = (np.arange(W) + 0.5 - W / 2) * (np.cos(theta) / diagonal)
    ty = (np.arange(H) + 0.5 - H / 2) * (np.sin(theta) / diagonal)
    t = (0.5 + ty[:, None] + tx[None, :]).astype(np.float32)            # (H, W)
    image = c0.astype(np.float32) + (c1 - c0).astype(np.float32) * t[..., None]   # (H, W, 3)
    n_lines = int(rng.integers(0, 4)) if clutter else 0
    for _ in range(n_lines):
        (ax, bx), (ay, by) = rng.uniform(0, W, 2), rng.uniform(0, H, 2)
        colour, alpha = rng.uniform(0, 1, 3), rng.uniform(0.1, 0.25)
        # the pixels under points spaced 1/2 px along the segment
        steps = int(2 * math.hypot(bx - ax, by - ay)) + 2
        u = np.linspace(0.0, 1.0, steps)
        cols = np.minimum((ax + u * (bx - ax)).astype(np.int64), W - 1)
        rows = np.minimum((ay + u * (by - ay)).astype(np.int64), H - 1)
        on_line = np.unique(rows * W + cols)
        flat = image.reshape(-1, 3)
        flat[on_line] = (1 - alpha) * flat[on_line] + alpha * colour
    return image


def _contrasting_colour(rng, under):
    """A random colour at Euclidean distance >= 0.4 from ``under`` (the background there)."""
    for _ in range(20):
        colour = rng.uniform(0, 1, 3)
        if np.sqrt(np.sum((colour - under) ** 2)) >= 0.4:
            return colour
    return np.where(under < 0.5, 1.0, 0.0)        # the opposite corner of the colour cube


def draw_scene(rng, image_size, n_objects, object_size, *, min_visible=0.6, border_overlap=0.0,
               noise=0.03, clutter=True, classes=SHAPE_CLASSES, max_tries=30):
    """Draw one scene with ``n_objects`` shapes (fewer if some cannot be placed).

    rng: a NumPy Generator (the only source of randomness); image_size: int or (H, W);
    object_size (lo, hi): the size of each shape is uniform in [lo, hi] pixels;
    min_visible: every object keeps at least this share of its own pixels visible (inside the
    image and not covered by later objects); border_overlap: the share of a shape's extent
    that may lie outside the image (0: wholly inside); noise: std of the uniform pixel noise
    (in [0, 1] units); clutter: draw faint lines on the background. A placement that violates
    ``min_visible`` for the new object or an earlier one is redrawn up to ``max_tries`` times,
    then the object is skipped.
    """
    H, W = (image_size, image_size) if isinstance(image_size, numbers.Integral) else map(int, image_size)
    lo, hi = object_size
    image = _background(rng, H, W, clutter)
    instances = np.full((H, W), -1, dtype=np.int16)
    full_areas, visible, labels = [], [], []
    for _ in range(n_objects):
        for _try in range(max_tries):
            label = int(rng.integers(len(classes)))
            size = rng.uniform(lo, hi)
            r = size / 2
            slack = border_overlap * size                # how far the extent may cross a border
            cx = rng.uniform(r - slack, W - r + slack) if W - r + slack > r - slack else W / 2
            cy = rng.uniform(r - slack, H - r + slack) if H - r + slack > r - slack else H / 2
            rows, cols, window, full = _shape_window(classes[label], cx, cy, size, H, W)
            own = int(window.sum())
            if full == 0 or own < min_visible * full:
                continue
            # pixels of each earlier object the new one would cover
            covered = np.bincount(instances[rows, cols][window] + 1, minlength=len(labels) + 1)[1:]
            if all(visible[k] - covered[k] >= min_visible * full_areas[k] for k in range(len(labels))):
                break
        else:
            continue                                      # no valid placement: skip this object
        for k in range(len(labels)):
            visible[k] -= int(covered[k])
        patch = image[rows, cols]                         # (h, w, 3) view
        colour = _contrasting_colour(rng, patch[window].mean(axis=0))
        patch[window] = colour
        instances[rows, cols][window] = len(labels)
        labels.append(label)
        full_areas.append(full)
        visible.append(own)
    if noise > 0:
        # uniform pixel noise of standard deviation `noise` (a uniform on [-a, a] has std a / sqrt(3));
        # five times cheaper to draw than Gaussian noise, and as good at defeating exact colour lookups
        u = rng.random(size=image.shape, dtype=np.float32) - np.float32(0.5)      # std 1 / sqrt(12)
        image += np.float32(noise * math.sqrt(12.0)) * u
    image = np.round(np.clip(image, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    scene = Scene(image=image, instances=instances, labels=labels, boxes=np.zeros((len(labels), 4), np.float32),
                  full_areas=np.asarray(full_areas, dtype=np.int64))
    scene.boxes = masks_to_boxes(scene.masks)
    return scene


# --------------------------------------------------------------------------------------
# The three views
# --------------------------------------------------------------------------------------
def _check_positive_int(value, name, owner, minimum=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _Shapes(Dataset):
    """What the three views share: seeding, the scene cache, transforms, COCO export hooks."""

    view = ""
    classes = SHAPE_CLASSES
    version = SHAPES_VERSION

    def __init__(self, n, image_size, seed, object_size, min_objects, max_objects, empty_fraction,
                 min_visible, border_overlap, noise, clutter, transforms, cache):
        owner = type(self).__name__
        self.n = _check_positive_int(n, "n", owner, minimum=0)
        self.image_size = _check_positive_int(image_size, "image_size", owner, minimum=8)
        self.seed = _check_positive_int(seed, "seed", owner, minimum=0)
        if object_size is None:
            object_size = self._default_object_size(self.image_size)
        lo, hi = (float(v) for v in object_size)
        if not 2 <= lo <= hi:
            raise ValueError(f"{owner}: object_size must be (lo, hi) with 2 <= lo <= hi, got {object_size!r}")
        if hi > self.image_size:
            raise ValueError(f"{owner}: object_size {object_size!r} exceeds image_size {self.image_size}")
        self.object_size = (lo, hi)
        self.min_objects = _check_positive_int(min_objects, "min_objects", owner, minimum=0)
        self.max_objects = _check_positive_int(max_objects, "max_objects", owner, minimum=self.min_objects)
        if not 0.0 <= empty_fraction <= 1.0:
            raise ValueError(f"{owner}: empty_fraction must be in [0, 1], got {empty_fraction!r}")
        if not 0.0 < min_visible <= 1.0:
            raise ValueError(f"{owner}: min_visible must be in (0, 1], got {min_visible!r}")
        if not 0.0 <= border_overlap < 0.5:
            raise ValueError(f"{owner}: border_overlap must be in [0, 0.5), got {border_overlap!r}")
        if noise < 0:
            raise ValueError(f"{owner}: noise must be >= 0, got {noise!r}")
        if transforms is not None and not callable(transforms):
            raise TypeError(f"{owner}: transforms must be callable (image, target, rng) -> (image, target)")
        self.empty_fraction = float(empty_fraction)
        self.min_visible = float(min_visible)
        self.border_overlap = float(border_overlap)
        self.noise = float(noise)
        self.clutter = bool(clutter)
        self.transforms = transforms
        self.cache = bool(cache)
        self._scenes = {}

    @staticmethod
    def _default_object_size(image_size):
        raise NotImplementedError

    @property
    def categories(self):
        """COCO categories: ``[{"id": k + 1, "name": SHAPE_CLASSES[k], "supercategory": "shape"}]``."""
        return [{"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(self.classes)]

    def __len__(self):
        return self.n

    def _rng(self, index, *extra):
        seq = np.random.SeedSequence([self.version, self.seed, _VIEW_CODES[self.view], index, *extra])
        return np.random.default_rng(seq)

    def scene(self, index) -> Scene:
        """The raw scene of item ``index`` (no transforms), cached when ``cache=True``."""
        i = self._check_index(index)
        if i in self._scenes:
            return self._scenes[i]
        rng = self._rng(i)
        # the number of objects: none with probability empty_fraction, else uniform in
        # [max(min_objects, 1), max_objects]
        empty = rng.uniform() < self.empty_fraction
        count = 0 if empty or self.max_objects == 0 else int(
            rng.integers(max(self.min_objects, 1), self.max_objects + 1))
        scene = draw_scene(rng, self.image_size, count, self.object_size, min_visible=self.min_visible,
                           border_overlap=self.border_overlap, noise=self.noise, clutter=self.clutter,
                           classes=self.classes)
        if self.cache:
            self._scenes[i] = scene
        return scene

    def _target(self, scene, index):
        raise NotImplementedError

    def __getitem__(self, index):
        i = self._check_index(index)
        scene = self.scene(i)
        image = scene.image.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)   # (3, H, W)
        target = self._target(scene, i)
        if self.transforms is not None:
            image, target = self.transforms(image, target, rng=self._rng(i, 1 + self.epoch))
        return image, target

    def __repr__(self):
        return (f"{type(self).__name__}(n={self.n}, image_size={self.image_size}, seed={self.seed}, "
                f"object_size={self.object_size}, version={self.version})")


class ShapesLocalization(_Shapes):
    """One shape per image, wholly inside it: ``(image (3, H, W) float32 in [0, 1],
    {"boxes": (1, 4) float32 xyxy pixels, "labels": (1,) int64 in [0, K)})``.

    object_size defaults to (image_size / 4, 3 * image_size / 4): 16-48 px at 64 px.
    ``masks=True`` adds ``"masks"`` (1, H, W) uint8.
    """

    view = "localize"

    def __init__(self, n, image_size=64, seed=0, *, object_size=None, noise=0.03, clutter=True,
                 transforms=None, cache=True, masks=False):
        super().__init__(n, image_size, seed, object_size, 1, 1, 0.0, 1.0, 0.0, noise, clutter,
                         transforms, cache)
        self.masks = bool(masks)

    @staticmethod
    def _default_object_size(image_size):
        return (image_size / 4, 3 * image_size / 4)

    def _target(self, scene, index):
        target = {"boxes": scene.boxes.copy(), "labels": scene.labels.copy()}
        if self.masks:
            target["masks"] = scene.masks.astype(np.uint8)
        return target


class ShapesDetection(_Shapes):
    """0..``max_objects`` shapes per image: ``(image, {"boxes" (M, 4) xyxy float32, "labels"
    (M,) int64, "image_id" int (index + 1, the id :func:`export_coco` writes), "area" (M,)
    float32 visible-mask areas, "iscrowd" (M,) int64 zeros})``, M = 0 allowed.

    object_size defaults to (3/32, 15/32) of image_size: 12-60 px at 128 px. Objects may overlap
    (each keeps ``min_visible`` of its pixels) and extend ``border_overlap`` of their size past
    the border; ``empty_fraction`` of the images have no object, the others
    ``min_objects``..``max_objects`` (uniform; at least 1). ``masks=True`` adds ``"masks"``
    (M, H, W) uint8, the visible masks.
    """

    view = "detect"

    def __init__(self, n, image_size=128, max_objects=6, seed=0, *, min_objects=1, object_size=None,
                 empty_fraction=0.05, min_visible=0.6, border_overlap=0.25, noise=0.03, clutter=True,
                 transforms=None, cache=True, masks=False):
        super().__init__(n, image_size, seed, object_size, min_objects, max_objects, empty_fraction,
                         min_visible, border_overlap, noise, clutter, transforms, cache)
        self.masks = bool(masks)

    @staticmethod
    def _default_object_size(image_size):
        return (image_size * 3 / 32, image_size * 15 / 32)

    def _target(self, scene, index):
        M = len(scene.labels)
        target = {"boxes": scene.boxes.copy(), "labels": scene.labels.copy(), "image_id": index + 1,
                  "area": scene.areas, "iscrowd": np.zeros(M, dtype=np.int64)}
        if self.masks:
            target["masks"] = scene.masks.astype(np.uint8)
        return target


class ShapesSegmentation(_Shapes):
    """Scenes of 1..``max_objects`` shapes with a semantic mask: ``(image, {"mask": (H, W) int64,
    "boxes": (M, 4), "labels": (M,)})``.

    mode="multiclass": mask 0 = background, 1..K = ``label + 1`` of the front-most shape;
    mode="binary": 1 = any shape. object_size defaults to (3/16, 5/8) of image_size (12-40 px at
    64 px). ``masks=True`` adds the per-object ``"masks"`` (M, H, W) uint8.
    """

    view = "segment"

    def __init__(self, n, image_size=64, seed=0, mode="multiclass", *, max_objects=3, min_objects=1,
                 object_size=None, empty_fraction=0.0, min_visible=0.5, border_overlap=0.25, noise=0.03,
                 clutter=True, transforms=None, cache=True, masks=False):
        if mode not in ("multiclass", "binary"):
            raise ValueError(f"ShapesSegmentation: mode must be 'multiclass' or 'binary', got {mode!r}")
        super().__init__(n, image_size, seed, object_size, min_objects, max_objects, empty_fraction,
                         min_visible, border_overlap, noise, clutter, transforms, cache)
        self.mode = mode
        self.masks = bool(masks)

    @property
    def num_classes(self):
        """Channels of a segmentation model's output: background + K (multiclass) or 1 (binary)."""
        return len(self.classes) + 1 if self.mode == "multiclass" else 1

    @staticmethod
    def _default_object_size(image_size):
        return (image_size * 3 / 16, image_size * 5 / 8)

    def _target(self, scene, index):
        target = {"mask": scene.semantic(binary=self.mode == "binary"), "boxes": scene.boxes.copy(),
                  "labels": scene.labels.copy()}
        if self.masks:
            target["masks"] = scene.masks.astype(np.uint8)
        return target


# --------------------------------------------------------------------------------------
# Writing a set to disk (the CLI's `tinyvision data shapes`)
# --------------------------------------------------------------------------------------
_VIEWS = {"localize": ShapesLocalization, "detect": ShapesDetection, "segment": ShapesSegmentation}


def make_shapes(task, n, seed=0, image_size=None, **kwargs):
    """The synthetic dataset of a task name: ``"localize"``, ``"detect"`` or ``"segment"``."""
    if task not in _VIEWS:
        raise ValueError(f"shapes: task must be one of {sorted(_VIEWS)}, got {task!r}")
    if image_size is not None:
        kwargs["image_size"] = image_size
    return _VIEWS[task](n, seed=seed, **kwargs)


def write_shapes(task, n, out_dir, seed=0, image_size=None, segmentation="polygon", **kwargs):
    """Write ``n`` synthetic images of ``task`` to ``out_dir`` in COCO format; returns the path
    of the annotation file.

    task: ``"localize"`` | ``"detect"`` | ``"segment"``; image_size: None for the view's default
    (64, 128, 64); segmentation: ``"polygon"`` (exact outlines, RLE where a mask has holes) or
    ``"rle"`` (compressed RLE); other keyword arguments go to the dataset class.

    Writes ``out_dir/images/000000.png ...`` and ``out_dir/annotations.json`` (instances; category
    id = label + 1; ``info`` records the task, seed and :data:`SHAPES_VERSION`). Read it back with
    ``CocoDetection(out_dir + "/images", out_dir + "/annotations.json", masks=True)``.
    """
    from .coco import export_coco

    dataset = make_shapes(task, n, seed=seed, image_size=image_size, **kwargs)
    return export_coco(dataset, out_dir, segmentation=segmentation,
                       info={"description": f"tinyvision synthetic shapes ({task})", "task": task,
                             "seed": int(seed), "shapes_version": SHAPES_VERSION, "n": int(n)})
