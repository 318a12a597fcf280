r"""COCO-format datasets: reading (:class:`CocoDetection`) and writing (:func:`export_coco`).

A COCO *instances* file is ``{"images": [...], "annotations": [...], "categories": [...]}``:

* image: ``{"id", "file_name", "width", "height"}``;
* annotation: ``{"id", "image_id", "category_id", "bbox": [x, y, w, h], "area", "iscrowd",
  "segmentation"}`` — ``bbox`` in pixel-edge coordinates (x, y the top-left corner), ``area``
  the mask's pixel count, ``segmentation`` polygons or RLE (:mod:`tinyvision.data.mask`);
* category: ``{"id", "name"}``; ids need not be contiguous.

Labels. In Python, labels are 0-based positions in the ``categories`` list (file order):
``label = dataset.cat_id_to_label[category_id]``, ``category_id = dataset.label_to_cat_id[label]``.
:func:`export_coco` writes ``category_id = label + 1``.

>>> import tempfile
>>> from tinyvision.data import ShapesDetection
>>> folder = tempfile.mkdtemp()
>>> source = ShapesDetection(3, image_size=64, masks=True)
>>> ann_file = export_coco(source, folder)
>>> back = CocoDetection(folder + "/images", ann_file, masks=True)
>>> image, target = back[1]
>>> bool((image == source[1][0]).all()), bool((target["masks"] == source[1][1]["masks"]).all())
(True, True)
"""
from __future__ import annotations

import json
import numbers
import os
import tempfile

import numpy as np

from .loader import Dataset
from .mask import MaskFormatError, mask_to_polygons, polygons_to_mask, rle_encode, segmentation_to_mask

__all__ = ["CocoDetection", "CocoSegmentation", "coco_folder", "semantic_mask", "export_coco", "coco_ground_truth",
           "COCOFormatError",
           "read_image", "write_image"]


def _format_error(message):
    """A :class:`tinyvision.metrics.COCOFormatError` (one class for every malformed COCO file in
    tinyvision), imported on first use so that importing tinyvision.data stays cheap (the
    metrics package loads Numba)."""
    from ..metrics._coco_io import COCOFormatError

    return COCOFormatError(message)


def __getattr__(name):
    if name == "COCOFormatError":
        from ..metrics._coco_io import COCOFormatError

        return COCOFormatError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------
# Image files (Pillow)
# --------------------------------------------------------------------------------------
def read_image(path):
    """An image file -> float32 (3, H, W) in [0, 1] (``uint8 / 255``; grey and RGBA become RGB)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.uint8)          # (H, W, 3)
    except (OSError, ValueError) as exc:
        raise _format_error(f"cannot read the image {os.fspath(path)!r} ({exc})") from None
    return array.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)


def write_image(path, image):
    """Write a uint8 (H, W, 3) array, or a float (3, H, W) one in [0, 1] (quantised
    ``round(255 x)``), as a PNG (lossless)."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8:
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"write_image: a float image must be (C, H, W) with C = 1 or 3, got {image.shape}")
        image = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    Image.fromarray(image).save(path, format="PNG")


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------
def _short(record, limit=160):
    text = repr(record)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_int(v):
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v):
    return isinstance(v, (numbers.Real, np.floating, np.integer)) and not isinstance(v, (bool, np.bool_))


def _load(ann_file):
    if isinstance(ann_file, dict):
        return ann_file
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise _format_error(f"{os.fspath(ann_file)!r} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise _format_error(f"cannot read the annotation file {os.fspath(ann_file)!r} ({exc})") from None
    if not isinstance(data, dict):
        raise _format_error(f"{os.fspath(ann_file)!r}: a COCO instances file is a dict, got {type(data).__name__}")
    return data


class CocoDetection(Dataset):
    """A COCO instances file and its images as ``(image, target)`` pairs.

    Args:
        root: the folder of the images (``root/file_name``).
        ann_file: the instances JSON (a path, or the already-parsed dict).
        transforms: optional ``t(image, target, rng) -> (image, target)``.
        masks: also decode every kept annotation's segmentation into ``target["masks"]``.
        keep_crowd: keep ``iscrowd=1`` annotations (default False: dropped, as torchvision's
            detection references do before training).
        seed: random transforms draw from ``SeedSequence([seed, index, epoch])`` (the epoch comes
            from :class:`DataLoader` through ``set_epoch``).

    Item ``i`` is the image with the i-th smallest id (torchvision's order:
    ``sorted(coco.imgs)``): ``image`` float32 (3, H, W) = uint8 / 255, and ``target`` =
    ``{"boxes" (M, 4) float32 xyxy, "labels" (M,) int64, "image_id", "area" (M,) float32,
    "iscrowd" (M,) int64}`` (+ ``"masks"`` (M, H, W) uint8), the annotations of that image in
    file order. Boxes follow torchvision's references: ``x2 = x + w`` in float32, clamped to
    [0, W] x [0, H]; a box with ``x2 <= x1`` or ``y2 <= y1`` afterwards is *degenerate* and dropped
    (with its label, area, iscrowd and mask). ``dataset.dropped`` counts the degenerate boxes
    dropped over the whole file, ``dataset.dropped_crowd`` the crowd annotations, and
    ``dataset.dropped_ids`` lists the annotation ids of both. Images without (kept) annotations
    stay, with M = 0 (torchvision's training reference removes them; a detector here accepts
    them). A missing ``area`` is read as the box area ``w * h``, a missing ``iscrowd`` as 0;
    images need ``width`` and ``height`` (checked against the file when it is read).

    Exposed: ``categories`` (the file's list), ``classes`` (their names), ``cat_id_to_label``,
    ``label_to_cat_id``, ``ids`` (image ids in item order), ``data`` (the parsed file).
    A malformed file raises :class:`COCOFormatError` naming the record.
    """

    def __init__(self, root, ann_file, transforms=None, masks=False, keep_crowd=False, seed=0):
        if transforms is not None and not callable(transforms):
            raise TypeError("CocoDetection: transforms must be callable (image, target, rng) -> (image, target)")
        self.root = os.fspath(root)
        self.transforms = transforms
        self.seed = int(seed)
        self.masks = bool(masks)
        self.keep_crowd = bool(keep_crowd)
        self.data = data = _load(ann_file)
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                raise _format_error(f"the instances file needs a list {key!r}, got "
                                      f"{type(data.get(key)).__name__ if key in data else 'nothing'}")
        self._read_categories(data["categories"])
        self._read_images(data["images"])
        self._read_annotations(data["annotations"])

    # -- parsing ---------------------------------------------------------------------------
    def _read_categories(self, categories):
        self.categories = categories
        self.cat_id_to_label = {}
        for k, cat in enumerate(categories):
            if not isinstance(cat, dict) or not _is_int(cat.get("id")):
                raise _format_error(f"categories[{k}] needs an integer 'id': {_short(cat)}")
            if cat["id"] in self.cat_id_to_label:
                raise _format_error(f"categories[{k}] repeats the id {cat['id']}: {_short(cat)}")
            self.cat_id_to_label[int(cat["id"])] = k
        self.label_to_cat_id = [int(cat["id"]) for cat in categories]
        self.classes = [str(cat.get("name", f"category{cat['id']}")) for cat in categories]

    def _read_images(self, images):
        self._images = {}
        for k, im in enumerate(images):
            if not isinstance(im, dict):
                raise _format_error(f"images[{k}] must be a dict: {_short(im)}")
            for field, ok in (("id", lambda v: _is_int(v) or isinstance(v, str)),
                              ("file_name", lambda v: isinstance(v, str)),
                              ("width", lambda v: _is_int(v) and v > 0), ("height", lambda v: _is_int(v) and v > 0)):
                if field not in im or not ok(im[field]):
                    raise _format_error(f"images[{k}] needs a valid {field!r} (got {im.get(field)!r}): {_short(im)}")
            if im["id"] in self._images:
                raise _format_error(f"images[{k}] repeats the image id {im['id']!r}: {_short(im)}")
            self._images[im["id"]] = im
        kinds = {type(i) is str for i in self._images}
        if len(kinds) > 1:
            raise _format_error("image ids mix integers and strings; they cannot be ordered")
        self.ids = sorted(self._images)

    def _read_annotations(self, annotations):
        self._anns = {i: [] for i in self._images}
        self.dropped, self.dropped_crowd, self.dropped_ids = 0, 0, []
        for k, ann in enumerate(annotations):
            where = f"annotations[{k}]"
            if not isinstance(ann, dict):
                raise _format_error(f"{where} must be a dict: {_short(ann)}")
            image_id = ann.get("image_id")
            if not (_is_int(image_id) or isinstance(image_id, str)) or image_id not in self._images:
                raise _format_error(f"{where} refers to the image id {ann.get('image_id')!r}, which is not "
                                      f"in 'images': {_short(ann)}")
            if not _is_int(ann.get("category_id")) or ann["category_id"] not in self.cat_id_to_label:
                raise _format_error(f"{where} refers to the category id {ann.get('category_id')!r}, which is "
                                      f"not in 'categories': {_short(ann)}")
            box = ann.get("bbox")
            if (not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_number(v) for v in box)
                    or not all(np.isfinite(float(v)) for v in box)):
                raise _format_error(f"{where}['bbox'] must be 4 finite numbers [x, y, w, h], got "
                                      f"{_short(box, 80)}: {_short(ann)}")
            crowd = ann.get("iscrowd", 0)
            if crowd not in (0, 1, True, False):
                raise _format_error(f"{where}['iscrowd'] must be 0 or 1, got {crowd!r}: {_short(ann)}")
            if "area" in ann and not _is_number(ann["area"]):
                raise _format_error(f"{where}['area'] must be a number, got {ann['area']!r}: {_short(ann)}")
            if self.masks and "segmentation" not in ann:
                raise _format_error(f"{where} has no 'segmentation' (needed with masks=True): {_short(ann)}")
            if crowd and not self.keep_crowd:
                self.dropped_crowd += 1
                self.dropped_ids.append(ann.get("id"))
                continue
            im = self._images[ann["image_id"]]
            xyxy = self._xyxy([box], im["width"], im["height"])[0]
            if not (xyxy[2] > xyxy[0] and xyxy[3] > xyxy[1]):
                self.dropped += 1
                self.dropped_ids.append(ann.get("id"))
                continue
            self._anns[ann["image_id"]].append((k, ann))

    @staticmethod
    def _xyxy(bboxes, width, height):
        """[x, y, w, h] -> xyxy in float32, clamped to the image (torchvision's references)."""
        boxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
        return boxes

    # -- items -------------------------------------------------------------------------------
    def __len__(self):
        return len(self.ids)

    def image_info(self, index):
        """The ``images`` record of item ``index``."""
        return self._images[self.ids[self._check_index(index)]]

    def __getitem__(self, index):
        i = self._check_index(index)
        info = self._images[self.ids[i]]
        W, H = info["width"], info["height"]
        image = read_image(os.path.join(self.root, info["file_name"]))
        if image.shape[1:] != (H, W):
            raise _format_error(f"image {info['file_name']!r} is {image.shape[2]}x{image.shape[1]} (WxH) but its "
                                  f"record says {W}x{H}: {_short(info)}")
        anns = self._anns[info["id"]]
        target = {
            "boxes": self._xyxy([a["bbox"] for _, a in anns], W, H),
            "labels": np.array([self.cat_id_to_label[a["category_id"]] for _, a in anns], dtype=np.int64),
            "image_id": info["id"],
            "area": np.array([a.get("area", a["bbox"][2] * a["bbox"][3]) for _, a in anns], dtype=np.float32),
            "iscrowd": np.array([int(a.get("iscrowd", 0)) for _, a in anns], dtype=np.int64),
        }
        if self.masks:
            masks = np.zeros((len(anns), H, W), dtype=np.uint8)
            for j, (k, a) in enumerate(anns):
                try:
                    masks[j] = segmentation_to_mask(a["segmentation"], H, W)
                except MaskFormatError as exc:
                    raise _format_error(f"annotations[{k}]['segmentation']: {exc}: {_short(a)}") from None
            target["masks"] = masks
        if self.transforms is not None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, i, self.epoch]))
            image, target = self.transforms(image, target, rng=rng)
        return image, target

    def __repr__(self):
        return (f"CocoDetection({len(self)} images, {sum(map(len, self._anns.values()))} annotations, "
                f"{len(self.categories)} categories, masks={self.masks}, dropped={self.dropped}, "
                f"dropped_crowd={self.dropped_crowd})")


def semantic_mask(masks, labels, binary=False):
    """Per-object masks (M, H, W) + labels (M,) -> (H, W) int64: 0 background, ``label + 1``
    (binary: 1) where an object is, later objects painted over earlier ones (file order is
    back-to-front in the files :func:`export_coco` writes)."""
    masks = np.asarray(masks)
    semantic = np.zeros(masks.shape[1:], dtype=np.int64)
    for m, label in zip(masks, np.asarray(labels)):
        semantic[m != 0] = 1 if binary else int(label) + 1
    return semantic


class CocoSegmentation(CocoDetection):
    """:class:`CocoDetection` with masks and a semantic ``target["mask"]`` (H, W) int64, the
    target of :class:`~tinyvision.data.ShapesSegmentation` (``mode="multiclass"``: 0 background,
    1..K = label + 1; ``"binary"``: 1 = object)."""

    def __init__(self, root, ann_file, mode="multiclass", transforms=None, keep_crowd=False, seed=0):
        if mode not in ("multiclass", "binary"):
            raise ValueError(f"CocoSegmentation: mode must be 'multiclass' or 'binary', got {mode!r}")
        self.mode = mode
        self._segment_transforms = transforms
        super().__init__(root, ann_file, transforms=None, masks=True, keep_crowd=keep_crowd, seed=seed)

    @property
    def num_classes(self):
        return len(self.categories) + 1 if self.mode == "multiclass" else 1

    def __getitem__(self, index):
        image, target = super().__getitem__(index)
        target["mask"] = semantic_mask(target["masks"], target["labels"], binary=self.mode == "binary")
        if self._segment_transforms is not None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self._check_index(index), self.epoch]))
            image, target = self._segment_transforms(image, target, rng=rng)
        return image, target


def coco_folder(data_dir, task="detect", transforms=None, masks=False, seed=0):
    """The dataset of a folder written by :func:`export_coco` / ``tinyvision data shapes``:
    ``data_dir/images/`` + ``data_dir/annotations.json``. task ``"segment"`` gives a
    :class:`CocoSegmentation`, anything else a :class:`CocoDetection`."""
    ann_file = os.path.join(data_dir, "annotations.json")
    if not os.path.isfile(ann_file):
        raise FileNotFoundError(f"{os.fspath(data_dir)!r} has no annotations.json (expected a folder written by "
                                f"'tinyvision data shapes' or export_coco: images/ + annotations.json)")
    root = os.path.join(data_dir, "images")
    if task == "segment":
        return CocoSegmentation(root, ann_file, transforms=transforms, seed=seed)
    return CocoDetection(root, ann_file, transforms=transforms, masks=masks, seed=seed)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
def _segmentation(mask, box, height, width, kind):
    """The COCO segmentation of one object: exact polygons when possible, else compressed RLE."""
    if mask is None:                                       # no mask: the box as a polygon
        x1, y1, x2, y2 = (float(v) for v in box)
        return [[x1, y1, x2, y1, x2, y2, x1, y2]]
    if kind == "polygon" and mask.any():
        polygons = mask_to_polygons(mask)
        # pycocotools' rasterisation of the outline must give the mask back, else use RLE
        if polygons is not None and np.array_equal(polygons_to_mask(polygons, height, width), mask):
            return polygons
    return rle_encode(mask)


def _atomic_write_json(path, obj):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".annotations-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _items(dataset):
    """(index, uint8-or-float image, labels, boxes, masks or None, image_id) for every item: the raw
    scenes of a shapes dataset (before transforms), else ``dataset[i]``."""
    for i in range(len(dataset)):
        if hasattr(dataset, "scene"):
            scene = dataset.scene(i)
            yield i, scene.image, scene.labels, scene.boxes, scene.masks, i + 1
        else:
            image, target = dataset[i]
            labels = np.asarray(target.get("labels", np.zeros(0)), dtype=np.int64).reshape(-1)
            boxes = np.asarray(target.get("boxes", np.zeros((0, 4))), dtype=np.float64).reshape(-1, 4)
            masks = None if "masks" not in target else np.asarray(target["masks"]).astype(bool)
            image_id = target.get("image_id", i + 1)
            yield i, np.asarray(image), labels, boxes, masks, int(image_id) if _is_int(image_id) else image_id


def coco_ground_truth(dataset, segmentation=None, _image_sink=None):
    """The COCO instances dict of a dataset, without writing files (e.g. the ground truth of
    :class:`~tinyvision.metrics.COCOEvaluator` for a held-out synthetic set).

    The records are those :func:`export_coco` writes (``file_name`` = ``"%06d.png" % index``,
    ``category_id = label + 1``, categories renumbered 1..K in label order with the dataset's
    names); ``segmentation``: None (no ``segmentation`` field, fastest), ``"polygon"`` or ``"rle"``.
    """
    if segmentation not in (None, "polygon", "rle"):
        raise ValueError(f"segmentation must be None, 'polygon' or 'rle', got {segmentation!r}")
    images, annotations = [], []
    max_label = -1
    for i, pixels, labels, boxes, masks, image_id in _items(dataset):
        H, W = pixels.shape[:2] if pixels.dtype == np.uint8 else pixels.shape[1:]
        file_name = f"{i:06d}.png"
        if _image_sink is not None:
            _image_sink(file_name, pixels)
        images.append({"id": image_id, "file_name": file_name, "width": int(W), "height": int(H)})
        for j in range(len(labels)):
            x1, y1, x2, y2 = (float(v) for v in boxes[j])
            mask = None if masks is None else masks[j]
            record = {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(labels[j]) + 1,
                      "bbox": [x1, y1, x2 - x1, y2 - y1],
                      "area": float(mask.sum()) if mask is not None else (x2 - x1) * (y2 - y1), "iscrowd": 0}
            if segmentation is not None:
                record["segmentation"] = _segmentation(mask, boxes[j], H, W, segmentation)
            annotations.append(record)
            max_label = max(max_label, int(labels[j]))
    if hasattr(dataset, "categories"):
        names = [c.get("name", f"class{k}") for k, c in enumerate(dataset.categories)]
    else:
        names = list(getattr(dataset, "classes", []))
    names += [f"class{k}" for k in range(len(names), max_label + 1)]
    categories = [{"id": k + 1, "name": str(name)} for k, name in enumerate(names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def export_coco(dataset, out_dir, segmentation="polygon", info=None, images_dir="images",
                ann_name="annotations.json"):
    """Write a dataset as COCO: ``out_dir/images/000000.png, ...`` and ``out_dir/annotations.json``.

    dataset: a shapes dataset (its raw scenes are written, before any transform) or any dataset
        of ``(image float (C, H, W) in [0, 1], target)`` with ``boxes``, ``labels`` and optionally
        ``masks`` (M, H, W); float images are quantised to uint8 as ``round(255 x)`` (the shapes
        images are already uint8 levels, so they read back bit for bit).
    segmentation: ``"polygon"``: each mask's outline traced along pixel edges, kept when
        pycocotools' rasterisation of it equals the mask (always, unless the mask has a hole),
        otherwise compressed RLE; ``"rle"``: compressed RLE for every object. Objects without a
        mask get the polygon of their box.

    Records: image ``id`` = ``target["image_id"]`` if present else index + 1 (shapes: index + 1);
    annotation ids 1, 2, ...; ``bbox`` = [x1, y1, x2 - x1, y2 - y1]; ``area`` = mask pixel count
    (box area without a mask); ``iscrowd`` 0; ``category_id`` = label + 1, categories 1..K named
    from ``dataset.categories`` / ``dataset.classes``. Returns the path of the annotation file
    (written atomically, after the images).
    """
    if segmentation not in ("polygon", "rle"):
        raise ValueError(f"export_coco: segmentation must be 'polygon' or 'rle', got {segmentation!r}")
    image_folder = os.path.join(out_dir, images_dir)
    os.makedirs(image_folder, exist_ok=True)
    coco = coco_ground_truth(dataset, segmentation,
                             _image_sink=lambda name, pixels: write_image(os.path.join(image_folder, name), pixels))
    coco = {"info": dict(info or {"description": "written by tinyvision.data.export_coco"}), **coco}
    path = os.path.join(out_dir, ann_name)
    _atomic_write_json(path, coco)
    return path
