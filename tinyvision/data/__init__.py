r"""Data: the synthetic shapes sets, the COCO-format loader, transforms and the batch loader.

Items. Every dataset here yields ``(image, target)``: ``image`` float32 (C, H, W) in [0, 1]
(``uint8 / 255``), ``target`` a dict of NumPy arrays —

* localization: ``{"boxes": (1, 4) float32 xyxy pixels, "labels": (1,) int64 in [0, K)}``
* detection (and :class:`CocoDetection`): ``{"boxes": (M, 4) float32 xyxy, "labels": (M,) int64,
  "image_id", "area": (M,) float32, "iscrowd": (M,) int64}``, M = 0 allowed; ``masks=True`` adds
  ``"masks"`` (M, H, W) uint8
* segmentation: ``{"mask": (H, W) int64 (0 background, 1..K class, or 1 = object), "boxes", "labels"}``

Boxes are (x1, y1, x2, y2) in pixel-edge coordinates: pixel column j spans [j, j + 1), so the
tight box of a mask is ``(min col, min row, max col + 1, max row + 1)``. Labels are 0-based
everywhere in Python; COCO files are 1-based (``category_id = label + 1`` on export).

Transforms (:mod:`tinyvision.data.transforms`) are callables
``t(image, target=None, rng=None) -> (image, target)`` that move ``boxes``, ``masks`` and ``mask``
with the image (flip, resize, crops with box clipping and dropping) or change pixels only
(``ColorJitter``, ``Normalize``); ``rng`` is a ``numpy.random.Generator`` (None: tinyvision's
process-wide one). Datasets call ``transforms(image, target, rng=...)`` with a generator seeded by
(seed, index, epoch); :class:`DataLoader` tells the dataset the epoch.

Batches: ``DataLoader(dataset, batch_size, shuffle, drop_last, collate_fn, seed)``;
:func:`default_collate` stacks same-shape arrays, :func:`detection_collate` gives
``(images (N, C, H, W) or a list, [targets])``.

>>> from tinyvision.data import ShapesLocalization, DataLoader, detection_collate
>>> loader = DataLoader(ShapesLocalization(10), batch_size=4, shuffle=True, seed=0,
...                     collate_fn=detection_collate)
>>> images, targets = next(iter(loader))
>>> images.shape, targets[0]["boxes"].shape
((4, 3, 64, 64), (1, 4))
"""
from . import coco, loader, mask, shapes, transforms  # noqa: F401
from .coco import (CocoDetection, CocoSegmentation, coco_folder, coco_ground_truth, export_coco, read_image,
                   semantic_mask, write_image)
from .loader import DataLoader, Dataset, Subset, default_collate, detection_collate, random_split
from .shapes import (SHAPE_CLASSES, SHAPES_VERSION, ShapesDetection, ShapesLocalization,
                     ShapesSegmentation, make_shapes, masks_to_boxes, write_shapes)
from .transforms import (ColorJitter, Compose, Normalize, RandomCrop, RandomHorizontalFlip,
                         RandomResizedCrop, Resize, ToFloat)

__all__ = [
    "Dataset", "Subset", "random_split", "DataLoader", "default_collate", "detection_collate",
    "SHAPE_CLASSES", "SHAPES_VERSION", "ShapesLocalization", "ShapesDetection", "ShapesSegmentation",
    "make_shapes", "masks_to_boxes", "write_shapes",
    "CocoDetection", "CocoSegmentation", "coco_folder", "coco_ground_truth", "semantic_mask", "COCOFormatError",
    "export_coco", "read_image", "write_image",
    "Compose", "Resize", "RandomHorizontalFlip", "RandomCrop", "RandomResizedCrop", "ColorJitter",
    "Normalize", "ToFloat",
]


def __getattr__(name):
    # COCOFormatError is tinyvision.metrics' class; importing it loads the metrics (and Numba),
    # so it is looked up on first use only
    if name == "COCOFormatError":
        return coco.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
