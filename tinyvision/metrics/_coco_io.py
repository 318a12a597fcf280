"""Reading and validating COCO ground truth and detection results into flat arrays.

Everything here turns user input (a JSON path, a dict, a list of result dicts, per-image
arrays) into NumPy arrays, or raises :class:`COCOFormatError` naming the field and the
offending record (its index and a short repr of its content). Nothing here computes a metric.
"""
from __future__ import annotations

import itertools
import json
import operator
import os

import numpy as np

__all__ = ["COCOFormatError", "GroundTruth", "Detections", "load_detections", "integral_ids"]


class COCOFormatError(ValueError):
    """Malformed COCO ground truth or results: the message names the field and the record."""


def _short(record, limit=200):
    text = repr(record)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise COCOFormatError(f"{what}: {os.fspath(path)!r} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise COCOFormatError(f"{what}: cannot read {os.fspath(path)!r} ({exc})") from None


def _is_int(v):
    if isinstance(v, (float, np.floating)):
        return bool(np.isfinite(v)) and float(v).is_integer()
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _check_record(where, i, rec, fields):
    """Raise COCOFormatError for the first problem of record ``rec`` (fields: name -> kind)."""
    if not isinstance(rec, dict):
        raise COCOFormatError(f"{where}[{i}] must be a dict, got {type(rec).__name__}: {_short(rec)}")
    for name, kind in fields.items():
        if name not in rec:
            if kind.endswith("?"):
                continue
            raise COCOFormatError(f"{where}[{i}] is missing the field {name!r}: {_short(rec)}")
        v = rec[name]
        kind = kind.rstrip("?")
        if kind == "id" and not (_is_int(v) or isinstance(v, str)):
            raise COCOFormatError(f"{where}[{i}]['{name}'] must be an integer or a string, got {v!r}: "
                                  f"{_short(rec)}")
        if kind == "int" and not _is_int(v):
            raise COCOFormatError(f"{where}[{i}]['{name}'] must be an integer, got {v!r}: {_short(rec)}")
        if kind == "number" and not _is_number(v):
            raise COCOFormatError(f"{where}[{i}]['{name}'] must be a number, got {v!r}: {_short(rec)}")
        if kind == "flag" and not (_is_int(v) or isinstance(v, (bool, np.bool_))):
            raise COCOFormatError(f"{where}[{i}]['{name}'] must be 0/1 or a bool, got {v!r}: {_short(rec)}")
        if kind == "box":
            if (not isinstance(v, (list, tuple, np.ndarray)) or len(v) != 4
                    or not all(_is_number(c) for c in v)):
                raise COCOFormatError(
                    f"{where}[{i}]['{name}'] must be 4 numbers [x, y, width, height], got "
                    f"{_short(v, 80)}: {_short(rec)}")


def _column(records, name, where, fields, dtype_kinds, default=None):
    """records[*][name] as an array; on any problem find and report the first bad record."""
    if len(records) == 0:
        return np.zeros(0, dtype=np.int64 if "f" not in dtype_kinds else np.float64)
    try:
        if default is None:
            values = list(map(operator.itemgetter(name), records))   # the fast path
        else:
            values = [r.get(name, default) for r in records]
        arr = np.array(values)
    except (KeyError, TypeError, AttributeError, ValueError):
        arr = None
    if (arr is not None and dtype_kinds == "iu" and arr.dtype.kind == "f" and arr.ndim == 1
            and np.isfinite(arr).all() and (arr == np.round(arr)).all()
            and (np.abs(arr) < 2.0 ** 53).all()):
        # integral floats (1.0): pycocotools' dict lookups treat them as the int ids
        arr = arr.astype(np.int64)
    if arr is None or arr.dtype.kind not in dtype_kinds or (arr.ndim != 1 and name != "bbox"):
        for i, r in enumerate(records):
            _check_record(where, i, r, fields)
        raise COCOFormatError(f"{where}: field {name!r} has values of mixed or unsupported types")
    return arr


def _string_ids(records):
    """True when the first record's ``id`` is a string: the dataset uses string image ids."""
    return len(records) > 0 and isinstance(records[0], dict) and isinstance(records[0].get("id"), str)


def _str_column(records, name, where):
    """records[*][name] as a list of str (string image ids; ints and strings may not mix:
    pycocotools could not sort them)."""
    values = []
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise COCOFormatError(f"{where}[{i}] must be a dict, got {type(r).__name__}: {_short(r)}")
        v = r.get(name)
        if not isinstance(v, str):
            raise COCOFormatError(f"{where}[{i}]['{name}'] must be a string like the other image ids "
                                  f"(ids cannot mix strings and integers), got {v!r}: {_short(r)}")
        values.append(v)
    return values


def _boxes(records, where, fields):
    """records[*]['bbox'] as float64[N, 4]; on any problem report the first bad record."""
    n = len(records)
    if n == 0:
        return np.zeros((0, 4))
    try:
        bb = list(map(operator.itemgetter("bbox"), records))
        lengths = np.fromiter(map(len, bb), dtype=np.int64, count=n)
        if (lengths != 4).any():
            raise ValueError("bbox length")
        # one flat pass (about twice as fast as np.array on the nested lists)
        return np.fromiter(itertools.chain.from_iterable(bb), dtype=np.float64, count=4 * n).reshape(n, 4)
    except (KeyError, TypeError, ValueError):
        pass
    for i, r in enumerate(records):
        _check_record(where, i, r, fields)
    raise COCOFormatError(f"{where}: every 'bbox' must be 4 numbers")


def _check_boxes(boxes, where, records):
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise COCOFormatError(f"{where}[{i}]['bbox'] must be finite, got {boxes[i].tolist()}: "
                              f"{_short(records[i]) if records is not None else ''}")
    bad = (boxes[:, 2] < 0) | (boxes[:, 3] < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise COCOFormatError(
            f"{where}[{i}]['bbox'] has a negative width or height {boxes[i].tolist()} "
            f"(COCO boxes are [x, y, width, height]): "
            f"{_short(records[i]) if records is not None else ''}")


def integral_ids(ids, where):
    """(sorted unique ids as given — ints, or floats where not integral —, int64 array of the
    integral ones). Booleans, strings and NaN are refused by name."""
    a = np.asarray(list(ids) if not hasattr(ids, "dtype") else ids).reshape(-1)
    if a.size == 0:
        return [], np.zeros(0, dtype=np.int64)
    if a.dtype.kind not in "iuf":
        raise COCOFormatError(f"{where} must hold numeric ids, got {a.dtype} values like {a[:3].tolist()}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise COCOFormatError(f"{where} must hold finite ids, got {a[~np.isfinite(a)][:3].tolist()}")
        whole = a == np.floor(a)
        user = sorted({int(v) if w else float(v) for v, w in zip(a.tolist(), whole.tolist())})
        return user, a[whole].astype(np.int64)
    a = a.astype(np.int64)
    return sorted(set(a.tolist())), a


class GroundTruth:
    """A COCO ground-truth dataset as arrays.

    img_ids (int64[I]) sorted unique ids of ``images`` (codes for string ids, see below);
    cat_ids (int64[K0]) sorted unique ids of ``categories`` (cat_ids_listed: sorted, repeats
    kept); per annotation n, in file order: ann_img, ann_cat (int64[N]) as written
    in the record (used to select it), and src (int64[N]) the record whose content pycocotools
    actually evaluates (the last record with the same ``id``: ``COCO.anns`` is a dict keyed by
    id), whose fields are img (int64[N]), cat (int64[N]), box (float64[N, 4]) xywh,
    area (float64[N]), crowd (bool[N]), id_nonzero (bool[N]).

    String image ids (pycocotools takes any sortable id): every string id of ``images`` and
    of the annotations is replaced by its rank in their sorted union, so the codes sort like
    the strings; ``image_names`` (list[str]) maps a code back, ``image_names`` is None for
    integer ids. :meth:`encode_image_ids` turns user-facing ids into codes.
    """

    def __init__(self, dataset):
        if isinstance(getattr(dataset, "dataset", None), dict):     # a pycocotools COCO object
            dataset = dataset.dataset
        if isinstance(dataset, (str, os.PathLike)):
            dataset = _load_json(dataset, "ground truth")
        if not isinstance(dataset, dict):
            raise COCOFormatError(f"ground truth must be a COCO dict or a path to one, got "
                                  f"{type(dataset).__name__}")
        for key in ("images", "categories"):
            if key not in dataset:
                raise COCOFormatError(f"ground truth is missing the field {key!r}")
            if not isinstance(dataset[key], list):
                raise COCOFormatError(f"ground truth[{key!r}] must be a list, got "
                                      f"{type(dataset[key]).__name__}")
        anns = dataset.get("annotations", [])
        if not isinstance(anns, list):
            raise COCOFormatError(f"ground truth['annotations'] must be a list, got {type(anns).__name__}")
        self.dataset = dataset
        fields = {"id": "number", "image_id": "int", "category_id": "int", "bbox": "box",
                  "area": "number", "iscrowd": "flag?"}
        where = "annotations"
        self.image_names = None
        if _string_ids(dataset["images"]):
            names = _str_column(dataset["images"], "id", "images")
            ann_names = _str_column(anns, "image_id", where)
            self.image_names = sorted(set(names) | set(ann_names))
            self._image_code = {name: k for k, name in enumerate(self.image_names)}
            ids = np.array([self._image_code[n] for n in names], dtype=np.int64)
            self.ann_img = np.array([self._image_code[n] for n in ann_names], dtype=np.int64)
            fields["image_id"] = "id"
        else:
            ids = _column(dataset["images"], "id", "images", {"id": "int"}, "iu")
            self.ann_img = _column(anns, "image_id", where, fields, "iu").astype(np.int64)
        self.img_ids = np.unique(ids.astype(np.int64))
        cat_fields = {"id": "int"}
        cids = _column(dataset["categories"], "id", "categories", cat_fields, "iu")
        self.cat_ids = np.unique(cids.astype(np.int64))
        # pycocotools' default params.catIds = sorted(getCatIds()) keeps repeated ids (they
        # count twice with useCats=0)
        self.cat_ids_listed = np.sort(cids.astype(np.int64))
        self.cat_names = {}
        for c in dataset["categories"]:
            self.cat_names.setdefault(int(c["id"]), c.get("name", str(c["id"])))

        ann_ids = _column(anns, "id", where, fields, "iuf").astype(np.float64)
        self.ann_cat = _column(anns, "category_id", where, fields, "iu").astype(np.int64)
        box = _boxes(anns, where, fields)
        area = _column(anns, "area", where, fields, "iuf").astype(np.float64)
        crowd = _column(anns, "iscrowd", where, fields, "biu", default=0).astype(bool)
        _check_boxes(box, where, anns)
        if np.isnan(area).any():
            i = int(np.argmax(np.isnan(area)))
            raise COCOFormatError(f"{where}[{i}]['area'] is NaN: {_short(anns[i])}")
        if np.isnan(ann_ids).any():
            i = int(np.argmax(np.isnan(ann_ids)))
            raise COCOFormatError(f"{where}[{i}]['id'] is NaN: {_short(anns[i])}")
        n = len(anns)
        # COCO.anns maps id -> the last record with that id; every record whose own image and
        # category are selected is then *read* as that last record.
        uniq, inverse = np.unique(ann_ids, return_inverse=True)
        last = np.zeros(len(uniq), dtype=np.int64)
        last[inverse] = np.arange(n)            # later positions overwrite earlier ones
        self.src = last[inverse]
        self.img = self.ann_img[self.src]
        self.cat = self.ann_cat[self.src]
        self.box = box[self.src]
        self.area = area[self.src]
        self.crowd = crowd[self.src]
        self.id_nonzero = (ann_ids != 0)[self.src]
        self.ids = ann_ids[self.src]            # the annotation id each row is read as
        self.n = n

    def image_ids(self):
        """The sorted unique image ids of ``images`` as the user writes them (ints or strings)."""
        if self.image_names is None:
            return [int(i) for i in self.img_ids]
        return [self.image_names[i] for i in self.img_ids]

    def encode_image_ids(self, ids, where="params.imgIds"):
        """User-facing image ids -> (sorted unique user ids, int64 codes). String ids that
        neither ``images`` nor an annotation names are dropped: such an image has no gt and
        can have no detection, so it adds nothing to the evaluation."""
        if self.image_names is None:
            # pycocotools compares ids by value: a non-integral id (1.5) names no image, so it
            # is kept in the user list but has no code (truncating it would pick image 1).
            user, integral = integral_ids(ids, where)
            return user, np.unique(integral)
        ids = list(ids)
        bad = [v for v in ids if not isinstance(v, str)]
        if bad:
            raise COCOFormatError(f"{where} must hold string image ids like the ground truth's, got {bad[0]!r}")
        user = sorted(set(ids))
        codes = np.array([self._image_code[v] for v in user if v in self._image_code], dtype=np.int64)
        return user, codes

    def encode_detections(self, dets):
        """Replace string image ids of ``dets`` by the ground truth's codes (in place)."""
        strings = dets.img.dtype.kind == "U"
        if dets.n == 0:
            dets.img = np.zeros(0, dtype=np.int64)
            return
        if self.image_names is None:               # integer ids (the usual case)
            if strings:
                i = 0 if dets.records is None else next(
                    (j for j, r in enumerate(dets.records) if isinstance(r["image_id"], str)), 0)
                raise COCOFormatError(f"{dets.where}[{i}]['image_id'] must be an integer like the ground "
                                      f"truth's image ids: {dets.record(i)}")
            return
        if not strings:
            raise COCOFormatError(f"{dets.where}[0]['image_id'] must be a string like the ground truth's "
                                  f"image ids: {dets.record(0)}")
        names = (dets.img.tolist() if dets.records is None
                 else [r["image_id"] for r in dets.records])
        codes = np.empty(len(names), dtype=np.int64)
        images = set(self.img_ids.tolist())
        for i, name in enumerate(names):
            code = self._image_code.get(name) if isinstance(name, str) else None
            if code is None or code not in images:
                raise COCOFormatError(
                    f"{dets.where}[{i}]['image_id'] = {name!r} is not an image of the ground truth "
                    f"(pycocotools: 'Results do not correspond to current coco set'): {dets.record(i)}")
            codes[i] = code
        dets.img = codes


class Detections:
    """Detections as arrays, in input order: img, cat (int64[D]), box (float64[D, 4]) xywh,
    score (float64[D]), area (float64[D]) = w * h (computed in the input's own precision, as
    pycocotools' ``loadRes`` does); records (list or None) to quote in error messages."""

    def __init__(self, img, cat, box, score, records=None, where="detections", area=None):
        self.img, self.cat, self.box, self.score = img, cat, box, score
        self.area = box[:, 2] * box[:, 3] if area is None else area
        self.records = records
        self.where = where
        self.n = img.shape[0]

    def record(self, i):
        if self.records is not None:
            return _short(self.records[i])
        return (f"{{'image_id': {self.img[i]}, 'category_id': {self.cat[i]}, "
                f"'bbox': {self.box[i].tolist()}, 'score': {self.score[i]}}}")


def _to_numpy(x):
    """NumPy array from a NumPy/CuPy array, a tinyvision or torch tensor, or a list."""
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("cupy"):
        return x.get()
    if hasattr(x, "detach"):                  # torch.Tensor
        x = x.detach().cpu()
    if hasattr(x, "numpy"):                   # tinyvision / torch tensors
        return _to_numpy(x.numpy())
    return np.asarray(x)


def _from_arrays(per_image, box_format):
    if box_format not in ("xyxy", "xywh"):
        raise ValueError(f"box_format must be 'xyxy' or 'xywh', got {box_format!r}")
    imgs, cats, boxes, scores = [], [], [], []
    string_keys = None
    for image_id, entry in per_image.items():
        if not (_is_int(image_id) or isinstance(image_id, str)):
            raise COCOFormatError(f"detections: image id keys must be integers (or strings), got {image_id!r}")
        if string_keys is None:
            string_keys = isinstance(image_id, str)
        elif string_keys != isinstance(image_id, str):
            raise COCOFormatError(f"detections: image id keys cannot mix strings and integers, got {image_id!r}")
        if isinstance(entry, dict):
            missing = [k for k in ("boxes", "scores", "labels") if k not in entry]
            if missing:
                raise COCOFormatError(f"detections[{image_id}] is missing {missing[0]!r} "
                                      f"(expected keys 'boxes', 'scores', 'labels')")
            b, s, lab = entry["boxes"], entry["scores"], entry["labels"]
        elif isinstance(entry, (tuple, list)) and len(entry) == 3:
            b, s, lab = entry
        else:
            raise COCOFormatError(f"detections[{image_id}] must be (boxes, scores, labels) or a dict "
                                  f"with those keys, got {type(entry).__name__}")
        b = _to_numpy(b)
        s = _to_numpy(s)
        lab = _to_numpy(lab)
        if b.size == 0 and s.size == 0 and lab.size == 0:
            continue
        if b.ndim != 2 or b.shape[1] != 4:
            raise COCOFormatError(f"detections[{image_id}] boxes must have shape (N, 4), got {b.shape}")
        n = b.shape[0]
        if s.shape != (n,) or lab.shape != (n,):
            raise COCOFormatError(f"detections[{image_id}]: boxes {b.shape}, scores {s.shape} and "
                                  f"labels {lab.shape} must have the same length N")
        if b.dtype.kind not in "iuf" or s.dtype.kind not in "iuf" or lab.dtype.kind not in "iu":
            raise COCOFormatError(f"detections[{image_id}]: boxes and scores must be numeric and labels "
                                  f"integers, got {b.dtype}, {s.dtype}, {lab.dtype}")
        b = b.astype(np.float64)
        if box_format == "xyxy":
            b = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
        imgs.append(np.full(n, image_id) if string_keys else np.full(n, int(image_id), dtype=np.int64))
        cats.append(lab.astype(np.int64))
        boxes.append(b)
        scores.append(s.astype(np.float64))
    if not imgs:
        return Detections(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
    return Detections(np.concatenate(imgs), np.concatenate(cats), np.concatenate(boxes),
                      np.concatenate(scores))


def _from_records(records):
    where = "detections"
    fields = {"image_id": "id", "category_id": "int", "bbox": "box", "score": "number"}
    img = _column(records, "image_id", where, fields, "iuU")
    if img.dtype.kind != "U":
        img = img.astype(np.int64)
    cat = _column(records, "category_id", where, fields, "iu").astype(np.int64)
    box = _boxes(records, where, fields)
    score = _column(records, "score", where, fields, "iuf").astype(np.float64)
    if len(records) == 0:
        img = img.astype(np.int64).reshape(0)
        cat = cat.astype(np.int64).reshape(0)
        score = score.reshape(0)
    # loadRes' area is bb[2] * bb[3] in the coordinates' own type: a float32 product for
    # np.float32 values (e.g. results made with tolist() skipped), which can put an unmatched
    # detection in another area range than the float64 product. Python numbers (JSON) give
    # the float64 product, computed vectorised; NumPy scalars (detected on the first record)
    # take the per-record product.
    area = None
    if len(records) and isinstance(records[0]["bbox"][2], np.generic):
        area = np.fromiter((b[2] * b[3] for b in map(operator.itemgetter("bbox"), records)),
                           dtype=np.float64, count=len(records))
    return Detections(img, cat, box, score, records=records, area=area)


def _from_numpy_rows(data):
    """pycocotools' ``loadNumpyAnnotations``: rows [image_id, x, y, w, h, score, category_id].

    The ids are truncated to integers (``int(row[0])``, ``int(row[6])``); the box area
    ``w * h`` is computed in the array's own dtype (float32 rows give a float32 area, which
    pycocotools compares with the area ranges as such).
    """
    if data.ndim != 2 or data.shape[1] != 7:
        raise COCOFormatError(f"detections as an array must have shape (N, 7) with rows [image_id, x, y, "
                              f"w, h, score, category_id] (pycocotools' loadRes), got {data.shape}")
    if data.dtype.kind not in "iuf":
        raise COCOFormatError(f"detections as an (N, 7) array must be numeric, got {data.dtype}")
    bad = ~np.isfinite(data[:, [0, 6]].astype(np.float64)).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise COCOFormatError(f"detections[{i}]: image_id and category_id must be finite, got {data[i].tolist()}")
    img = np.trunc(data[:, 0]).astype(np.int64)
    cat = np.trunc(data[:, 6]).astype(np.int64)
    area = (data[:, 3] * data[:, 4]).astype(np.float64)
    return Detections(img, cat, np.ascontiguousarray(data[:, 1:5], dtype=np.float64),
                      data[:, 5].astype(np.float64), area=area)


def load_detections(detections, box_format="xyxy"):
    """Detections from a results JSON path, a list of COCO result dicts, an (N, 7) array or
    per-image arrays.

    Result dicts hold ``image_id``, ``category_id``, ``bbox`` [x, y, w, h] and ``score``;
    an (N, 7) NumPy array holds rows [image_id, x, y, w, h, score, category_id] (what
    pycocotools' ``loadRes`` accepts); per-image arrays are a dict
    ``image_id -> (boxes (N, 4), scores (N,), labels (N,))`` (or
    ``{"boxes":, "scores":, "labels":}``) with boxes in ``box_format``.
    """
    if isinstance(getattr(detections, "dataset", None), dict):   # COCO.loadRes(...) output
        detections = detections.dataset.get("annotations", [])
    if isinstance(detections, np.ndarray):
        return _from_numpy_rows(detections)
    if isinstance(detections, (str, os.PathLike)):
        detections = _load_json(detections, "results")
        if not isinstance(detections, list):
            raise COCOFormatError(f"results file must hold a list of result dicts, got "
                                  f"{type(detections).__name__}")
    if isinstance(detections, dict):
        dets = _from_arrays(detections, box_format)
    elif isinstance(detections, (list, tuple)):
        dets = _from_records(list(detections))
    else:
        raise TypeError(f"detections must be a results JSON path, a list of result dicts, an (N, 7) "
                        f"array or a dict image_id -> (boxes, scores, labels), got "
                        f"{type(detections).__name__}")
    return dets


def validate_detections(dets, gt, unknown_categories="raise", extra_cat_ids=()):
    """Check detections against the ground truth; returns a keep mask (bool[D]).

    A category is known when the ground truth lists it or ``extra_cat_ids`` (the evaluation's
    ``params.catIds``) holds it.
    """
    where = dets.where
    if np.isnan(dets.score).any():
        i = int(np.argmax(np.isnan(dets.score)))
        raise COCOFormatError(f"{where}[{i}]['score'] is NaN: {dets.record(i)}")
    _check_boxes(dets.box, where, None if dets.records is None else dets.records)
    known = np.isin(dets.img, gt.img_ids)
    if not known.all():
        i = int(np.argmax(~known))
        raise COCOFormatError(
            f"{where}[{i}]['image_id'] = {dets.img[i]} is not an image of the ground truth "
            f"(pycocotools: 'Results do not correspond to current coco set'): {dets.record(i)}")
    known = np.isin(dets.cat, np.union1d(gt.cat_ids, np.asarray(extra_cat_ids, dtype=np.int64)))
    if not known.all():
        if unknown_categories == "raise":
            i = int(np.argmax(~known))
            raise COCOFormatError(
                f"{where}[{i}]['category_id'] = {dets.cat[i]} is not a category of the ground truth "
                f"(pass unknown_categories='ignore' to drop such detections as pycocotools does): "
                f"{dets.record(i)}")
        if unknown_categories != "ignore":
            raise ValueError(f"unknown_categories must be 'raise' or 'ignore', got {unknown_categories!r}")
    return known
