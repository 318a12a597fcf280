r"""COCO box evaluation: pycocotools' numbers, bug for bug, from vectorised arrays and Numba.

:class:`COCOEvaluator` reproduces ``pycocotools.cocoeval.COCOeval`` (iouType ``"bbox"``):
``evaluate()`` + ``accumulate()`` + ``summarize()`` give :class:`COCOEvalResult` with the
same ``stats``, ``precision``, ``recall`` and ``scores`` arrays (equal to the last bit on the
inputs the tests generate; they are compared to 1e-12).

Shapes (pycocotools' legend)::

    precision  float64[T, R, K, A, M]   T IoU thresholds, R recall thresholds, K categories,
    scores     float64[T, R, K, A, M]   A area ranges, M maxDets values
    recall     float64[T, K, A, M]      -1 where a (category, area) has no non-ignored gt

``precision[t, r, k, a, m]`` is the interpolated precision (the best precision at any recall
>= ``recThrs[r]``) of category k at IoU threshold t, area range a, keeping the top
``maxDets[m]`` detections per image; 0 where that recall is never reached. ``scores`` holds
the score of the detection at which that precision was read, ``recall[t, k, a, m]`` the final
recall (0 for a category without detections).

The algorithm, in pycocotools' words but on arrays:

1. **Load.** Detections get area = w * h, ``iscrowd`` 0; ground truths keep their ``area``
   field (the mask area in COCO, not the box area). ``ignore`` = ``iscrowd`` (a given
   ``ignore`` field is overwritten, as pycocotools does).
2. **Group** by (category, image). Inside a group the detections are sorted by descending score
   (stable: ties keep input order) and cut to ``maxDets[-1]``.
3. **Match** (Numba, :func:`tinyvision.kernels.cpu.coco.coco_match`): IoU on xywh without the
   +1 pixel convention, the union of a crowd gt being the detection's area; for each area
   range a gt is ignored when it is a crowd or its area is outside [lo, hi] (inclusive at both
   ends: area 32**2 is both small and medium); greedy matching per IoU threshold with
   ``min(t, 1 - 1e-10)`` as the bar, equal IoU going to the later gt, crowds matched repeatedly.
4. **Accumulate** (Numba, :func:`~tinyvision.kernels.cpu.coco.coco_accumulate`): per category
   the kept detections of all images, in descending score order (stable: image order, then
   rank), ``rc = TP_cum / n_pos``, ``pr = TP_cum / (TP_cum + FP_cum + np.spacing(1))``,
   right-to-left max envelope, sampled at the recall thresholds (``searchsorted`` left).
5. **Summarize**: the 12 stats as means over the entries > -1.

Conventions kept from pycocotools (``mode="pycocotools"``, the default):

* the ``np.spacing(1)`` in the precision denominator: a category whose precision envelope
  peaks at the first true positive scores 1 / (1 + 2.2e-16) = 0.9999999999999998, not 1 (from
  two true positives on the eps is lost to rounding);
* float64 thresholds: ``np.linspace(.5, .95, 10)``, whose element 8 is 0.8999999999999999;
* ``stats[0]`` (AP @ IoU .50:.95) looks up ``maxDets == 100`` literally: it is -1 when 100 is not
  in ``params.maxDets``; stats 1-5 and 8-11 use ``maxDets[2]``, stats 6/7 ``maxDets[0]``/``[1]``
  (so fewer than three maxDets values cannot be summarized: ``stats`` raises);
* a ground truth whose ``id`` is 0 never counts as a match when accumulating (pycocotools
  stores the matched gt id and tests it for truth): a detection matched to it is a false
  positive, and the gt stays unmatched-but-taken;
* records sharing an annotation ``id`` are all read as the last record with that id
  (``COCO.anns`` is a dict keyed by id);
* categories with no non-ignored gt in an area range give -1 there; images without gt only add
  false positives; a category without detections gives AP 0 (not -1).

``mode="fixed"`` reproduces faster-coco-eval (1.8) instead: no ``np.spacing`` (perfect AP is
exactly 1; precision is 0 before any detection counts), every recall threshold past the end
of the curve set to 0 (pycocotools stops at the first one, which matters only for unsorted
``recThrs``), stats[0] at ``maxDets[-1]``, and faster-coco-eval's stats layout: AP, AP50, AP75
and AP per area range at ``maxDets[-1]``, then AR per maxDets value and AR per area range at
``maxDets[-1]`` (the 12 familiar stats for the default parameters). Matching, ignore rules and
the gt-id-0 quirk are the same in both modes.

Not supported: ``iou_type="segm"`` and ``"keypoints"`` (they raise ``NotImplementedError``).

Deliberate differences with pycocotools on input it would accept (each is an error here):
detections whose ``category_id`` is not a category of the ground truth (pycocotools drops
them silently: pass ``unknown_categories="ignore"`` for that), negative box widths or heights,
NaN scores. Annotations without ``iscrowd`` are taken as ``iscrowd = 0`` (pycocotools raises
a KeyError). An empty result list evaluates to AP 0 (pycocotools raises an IndexError).
Category ids must be integers (integral floats such as 1.0 are accepted, as pycocotools'
dict lookups do). Image ids are integers or, as pycocotools allows, strings (mapped to integer
codes in sorted string order, which is pycocotools' image order; they cannot mix). Box
coordinates are read as float64; a result's area ``w * h`` is computed in float64 too, except
for an (N, 7) array, where it is computed in the array's dtype as pycocotools' ``loadRes``
does (float32 rows can fall on the other side of an area-range boundary).

Example
-------
>>> gt = {"images": [{"id": 1}], "categories": [{"id": 7, "name": "cat"}],
...       "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 10],
...                        "area": 100, "iscrowd": 0}]}
>>> dets = [{"image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 10], "score": 0.9},
...         {"image_id": 1, "category_id": 7, "bbox": [50, 50, 10, 10], "score": 0.8}]
>>> res = COCOEvaluator(gt).evaluate(dets)
>>> float(res.stats[0])                      # pycocotools' np.spacing: not exactly 1
0.9999999999999998
>>> print(res.summary().splitlines()[0])
 Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000
>>> float(COCOEvaluator(gt, mode="fixed").evaluate(dets).stats[0])
1.0
"""
from __future__ import annotations

import copy
import sys

import numpy as np

from ..kernels.dispatch import kernel
from ._coco_io import COCOFormatError, GroundTruth, integral_ids, load_detections, validate_detections

__all__ = ["COCOEvaluator", "COCOEvalResult", "Params", "COCOFormatError", "STAT_NAMES"]

#: Names of the 12 detection stats, in pycocotools' order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

_MODES = ("pycocotools", "fixed")


class Params:
    """Evaluation parameters, pycocotools' ``Params`` for iouType ``"bbox"`` (same names).

    imgIds   image ids to evaluate (default: every image of the ground truth)
    catIds   category ids to evaluate (default: every category of the ground truth)
    iouThrs  float64[T] IoU thresholds, ``np.linspace(.5, .95, 10)`` (element 8 is 0.8999999999999999)
    recThrs  float64[R] recall thresholds, ``np.linspace(0, 1, 101)``
    maxDets  detections kept per image (and category), ``[1, 10, 100]``; sorted at evaluation
    areaRng  [[lo, hi], ...] inclusive area ranges: all [0, 1e10], small [0, 32**2],
             medium [32**2, 96**2], large [96**2, 1e10]
    areaRngLbl  labels of the ranges, ``['all', 'small', 'medium', 'large']`` (the stats look
             ranges up by these labels)
    useCats  1: per category (default); 0: categories ignored (proposal scoring), K = 1
    """

    def __init__(self, iouType="bbox"):
        _check_iou_type(iouType)
        self.iouType = iouType
        self.imgIds = []
        self.catIds = []
        self.iouThrs = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
        self.recThrs = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
        self.maxDets = [1, 10, 100]
        self.areaRng = [[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]]
        self.areaRngLbl = ["all", "small", "medium", "large"]
        self.useCats = 1

    def __repr__(self):
        return (f"Params(iouType={self.iouType!r}, {len(self.imgIds)} imgIds, catIds={list(self.catIds)}, "
                f"iouThrs={np.asarray(self.iouThrs).tolist()}, {len(self.recThrs)} recThrs, "
                f"maxDets={list(self.maxDets)}, areaRng={np.asarray(self.areaRng).tolist()}, "
                f"areaRngLbl={list(self.areaRngLbl)}, useCats={self.useCats})")


def _check_iou_type(iou_type):
    if iou_type in ("segm", "keypoints"):
        raise NotImplementedError(
            f"iou_type={iou_type!r} is not supported by tinyvision's COCOEvaluator (only 'bbox'); "
            f"use pycocotools for mask or keypoint evaluation")
    if iou_type != "bbox":
        raise ValueError(f"iou_type must be 'bbox' (or the unsupported 'segm'/'keypoints'), got {iou_type!r}")


def _normalized(params, gt):
    """A copy of ``params`` as pycocotools' evaluate() leaves it, the area ranges as
    float64[A, 2] and the image ids as int64 codes (:meth:`GroundTruth.encode_image_ids`)."""
    p = copy.deepcopy(params)
    _check_iou_type(p.iouType)
    p.imgIds, img_codes = gt.encode_image_ids(p.imgIds)
    if p.useCats not in (0, 1, True, False):
        raise ValueError(f"params.useCats must be 0 or 1, got {p.useCats!r}")
    p.useCats = int(p.useCats)
    if p.useCats:
        p.catIds, _ = integral_ids(p.catIds, "params.catIds")       # sorted, unique
    else:   # useCats=0 keeps the list as given (repeats and order matter there)
        p.catIds = [c for c in integral_ids(p.catIds, "params.catIds")[1].tolist()]
    max_dets = list(p.maxDets)
    if not max_dets or not all(isinstance(m, (int, np.integer)) and m >= 0 for m in max_dets):
        raise ValueError(f"params.maxDets must be non-negative integers, got {p.maxDets!r}")
    p.maxDets = sorted(int(m) for m in max_dets)
    for name in ("iouThrs", "recThrs"):
        v = getattr(p, name)
        if isinstance(v, (str, bytes)) or np.asarray(v).dtype.kind not in "iuf":
            raise ValueError(f"params.{name} must be a list of numbers, got {v!r:.80}")
        setattr(p, name, np.ascontiguousarray(np.asarray(v, dtype=np.float64).reshape(-1)))
    for name in ("iouThrs", "recThrs"):
        v = getattr(p, name)
        if v.size == 0 or not np.isfinite(v).all():
            raise ValueError(f"params.{name} must be a non-empty list of finite numbers, got {v.tolist()}")
    try:
        area = np.asarray(p.areaRng, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"params.areaRng must be a list of [lo, hi] pairs of numbers, got {p.areaRng!r:.80}") from None
    if area.ndim != 2 or area.shape[1] != 2 or area.shape[0] == 0 or np.isnan(area).any():
        raise ValueError(f"params.areaRng must be a list of [lo, hi] pairs, got {p.areaRng!r}")
    p.areaRngLbl = list(p.areaRngLbl)
    return p, area, img_codes


class COCOEvalResult:
    """The outcome of :meth:`COCOEvaluator.evaluate` (pycocotools' ``COCOeval.eval`` + ``stats``).

    precision (float64[T, R, K, A, M]), scores (float64[T, R, K, A, M]),
    recall (float64[T, K, A, M]): pycocotools' arrays (-1 where a category has no
    non-ignored gt in an area range). ``params``: the parameters as evaluated (imgIds and
    catIds sorted and unique, maxDets sorted; ``catIds`` lists the K categories, or is
    ``[-1]`` with useCats=0). ``stats``: the summary numbers (see :meth:`summary`).
    """

    def __init__(self, precision, recall, scores, params, mode, cat_names=None):
        self.precision = precision
        self.recall = recall
        self.scores = scores
        self.params = params
        self.mode = mode
        self.counts = list(precision.shape)
        self._cat_names = cat_names or {}
        self._stats = None
        self._lines = None

    # -- summary (pycocotools' summarize) ---------------------------------------------------
    def _summarize_one(self, ap=1, iou_thr=None, area_lbl="all", max_dets=100):
        p = self.params
        if self.mode == "pycocotools":
            aind = [i for i, lbl in enumerate(p.areaRngLbl) if lbl == area_lbl]
            mind = [i for i, m in enumerate(p.maxDets) if m == max_dets]
        else:
            if area_lbl not in p.areaRngLbl:
                raise ValueError(f"fixed mode needs an area range labelled {area_lbl!r} in "
                                 f"params.areaRngLbl, got {p.areaRngLbl}")
            aind = p.areaRngLbl.index(area_lbl)
            mind = p.maxDets.index(max_dets)
        try:
            if ap == 1:
                s = self.precision
                if iou_thr is not None:
                    s = s[np.where(iou_thr == p.iouThrs)[0]]
                s = s[:, :, :, aind, mind]
            else:
                s = self.recall
                if iou_thr is not None:
                    s = s[np.where(iou_thr == p.iouThrs)[0]]
                s = s[:, :, aind, mind]
        except IndexError as exc:   # e.g. 0 ranges labelled 'medium' but 2 maxDets equal to 10
            raise ValueError(
                f"pycocotools' summarize fails for these parameters (area label {area_lbl!r} at "
                f"indices {aind}, maxDets={max_dets} at indices {mind}: {exc}); use mode='fixed' "
                f"or read precision/recall directly") from None
        valid = s[s > -1]
        mean_s = -1 if len(valid) == 0 else np.mean(valid)
        title = "Average Precision" if ap == 1 else "Average Recall"
        kind = "(AP)" if ap == 1 else "(AR)"
        iou_str = (f"{p.iouThrs[0]:0.2f}:{p.iouThrs[-1]:0.2f}" if iou_thr is None
                   else f"{iou_thr:0.2f}")
        line = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}".format(
            title, kind, iou_str, area_lbl, max_dets, mean_s)
        return mean_s, line

    def _compute_stats(self):
        p = self.params
        md = p.maxDets
        if self.mode == "pycocotools":
            if len(md) < 3:
                raise ValueError(
                    f"pycocotools' summarize reads maxDets[0], [1] and [2]; params.maxDets = {md} has "
                    f"{len(md)} values (pycocotools raises an IndexError). Use mode='fixed' or read "
                    f"precision/recall directly.")
            calls = [(1, None, "all", 100), (1, .5, "all", md[2]), (1, .75, "all", md[2]),
                     (1, None, "small", md[2]), (1, None, "medium", md[2]), (1, None, "large", md[2]),
                     (0, None, "all", md[0]), (0, None, "all", md[1]), (0, None, "all", md[2]),
                     (0, None, "small", md[2]), (0, None, "medium", md[2]), (0, None, "large", md[2])]
        else:   # faster-coco-eval's layout
            last = md[-1]
            ranges = p.areaRngLbl[1:]
            calls = [(1, None, "all", last), (1, .5, "all", last), (1, .75, "all", last)]
            calls += [(1, None, lbl, last) for lbl in ranges]
            calls += [(0, None, "all", m) for m in md]
            calls += [(0, None, lbl, last) for lbl in ranges]
        out = [self._summarize_one(*c) for c in calls]
        self._stats = np.array([v for v, _ in out], dtype=np.float64)
        self._lines = [line for _, line in out]

    @property
    def eval(self):
        """pycocotools' ``COCOeval.eval`` dict: ``params``, ``counts`` ([T, R, K, A, M]),
        ``precision``, ``recall``, ``scores`` (the same arrays as the attributes)."""
        return {"params": self.params, "counts": self.counts, "precision": self.precision,
                "recall": self.recall, "scores": self.scores}

    @property
    def stats(self):
        """float64[12]: AP, AP50, AP75, AP small/medium/large, AR@maxDets[0..2], AR small/medium/large."""
        if self._stats is None:
            self._compute_stats()
        return self._stats

    def summary(self):
        """pycocotools' summary table (the lines ``COCOeval.summarize()`` prints), as one string."""
        if self._lines is None:
            self._compute_stats()
        return "\n".join(self._lines)

    def summarize(self, file=None):
        """Print :meth:`summary` (to ``file``, default stdout) like ``COCOeval.summarize()``;
        returns ``stats``."""
        (file or sys.stdout).write(self.summary() + "\n")
        return self.stats

    def __str__(self):
        return self.summary()

    def __repr__(self):
        return f"COCOEvalResult(mode={self.mode!r}, counts={self.counts}, stats={self.stats.tolist()})"

    def stats_dict(self):
        """The stats as {name: value}: :data:`STAT_NAMES` for the 12 standard stats; in fixed
        mode with other area ranges or maxDets, names built from them (``AP_<label>``,
        ``AR<maxDets>``, ``AR_<label>``)."""
        stats = self.stats
        p = self.params
        if self.mode == "pycocotools" or (len(stats) == 12 and p.areaRngLbl[1:] == ["small", "medium", "large"]
                                          and len(p.maxDets) == 3):
            names = list(STAT_NAMES)
            # AR at maxDets[0..2], named after the values actually used (AR1000, not AR100,
            # for maxDets=[1, 10, 1000]); a repeated value gets a position suffix
            ar = [f"AR{m}" for m in p.maxDets[:3]]
            names[6:9] = [n if ar.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(ar)]
        else:
            labels = p.areaRngLbl[1:]
            names = (["AP", "AP50", "AP75"] + [f"AP_{lbl}" for lbl in labels]
                     + [f"AR{m}" for m in p.maxDets] + [f"AR_{lbl}" for lbl in labels])
        return {n: float(v) for n, v in zip(names, stats)}

    # -- a learner's "why" (tinyvision/metrics/coco_explain.py) --------------------------------
    def explain(self, image_id, category_id, iou_threshold=0.5, max_dets=None, area="all"):
        """Every detection of one image and category in score order, with the verdict COCO's
        matching gives it (TP / FP / ignored) and the reason; see :func:`coco_explain.explain`."""
        from .coco_explain import explain

        return explain(self, image_id, category_id, iou_threshold, max_dets, area)

    def pr_curve(self, category_id, iou_threshold=0.5, max_dets=None, area="all"):
        """One category's precision-recall points, their interpolated envelope and the 101
        recall samples whose mean is AP; see :func:`coco_explain.pr_curve`."""
        from .coco_explain import pr_curve

        return pr_curve(self, category_id, iou_threshold, max_dets, area)

    # -- per category ------------------------------------------------------------------------
    def ap_per_category(self, iou_thr=None, area="all", max_dets=None):
        """{category id: AP} at one area range and maxDets (default: 'all', ``maxDets[-1]``).

        AP is the mean of precision over the recall thresholds (and the IoU thresholds, or the
        single ``iou_thr``) skipping -1 entries; -1 when the category has no non-ignored gt.
        """
        p = self.params
        a = p.areaRngLbl.index(area)
        m = p.maxDets.index(p.maxDets[-1] if max_dets is None else max_dets)
        s = self.precision
        if iou_thr is not None:
            t = np.where(np.isclose(p.iouThrs, iou_thr, rtol=0, atol=1e-12))[0]
            if len(t) == 0:
                raise ValueError(f"iou_thr={iou_thr} is not one of params.iouThrs {p.iouThrs.tolist()}")
            s = s[t]
        out = {}
        for k, cat in enumerate(p.catIds):
            v = s[:, :, k, a, m]
            v = v[v > -1]
            out[cat] = float(np.mean(v)) if len(v) else -1.0
        return out

    def category_names(self):
        """{category id: name} for the evaluated categories."""
        return {c: self._cat_names.get(c, str(c)) for c in self.params.catIds}


class COCOEvaluator:
    """pycocotools-exact COCO box evaluation.

    Args:
        gt: a COCO ground-truth dict, the path of its JSON file, or a pycocotools ``COCO``
            object (its ``dataset`` is read). Required fields:
            ``images[*].id``, ``categories[*].id``, ``annotations[*]`` with ``id``,
            ``image_id``, ``category_id``, ``bbox`` [x, y, w, h] and ``area``
            (``iscrowd`` defaults to 0).
        mode: ``"pycocotools"`` (default, bug for bug) or ``"fixed"`` (faster-coco-eval's
            numbers: no np.spacing, stats[0] at maxDets[-1]); see the module docstring.

    ``self.params`` (:class:`Params`) can be changed before :meth:`evaluate`, like
    ``COCOeval.params``.
    """

    def __init__(self, gt, mode="pycocotools"):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.mode = mode
        self.gt = GroundTruth(gt)
        self.params = Params("bbox")
        self.params.imgIds = self.gt.image_ids()
        self.params.catIds = [int(c) for c in self.gt.cat_ids_listed]   # repeats kept, as pycocotools

    def evaluate(self, detections, iou_type="bbox", *, box_format="xyxy", mode=None,
                 unknown_categories="raise"):
        """Evaluate detections; returns :class:`COCOEvalResult`.

        Args:
            detections: a results JSON path, a list of COCO result dicts (``image_id``,
                ``category_id``, ``bbox`` [x, y, w, h], ``score``), the ``COCO`` object
                ``COCO.loadRes`` returns, an (N, 7) NumPy array of rows
                [image_id, x, y, w, h, score, category_id] (``COCO.loadRes``'s array form),
                or per-image arrays: a dict
                ``image_id -> (boxes float[N, 4], scores float[N], labels int[N])`` (or
                ``{"boxes", "scores", "labels"}`` dicts, torchvision's output) with boxes in
                ``box_format``.
            iou_type: ``"bbox"`` only.
            box_format: ``"xyxy"`` (default, torchvision's) or ``"xywh"``; per-image arrays only
                (result dicts are always COCO's xywh).
            mode: overrides the evaluator's mode for this call.
            unknown_categories: ``"raise"`` (default) or ``"ignore"`` (pycocotools: dropped).
        """
        _check_iou_type(iou_type)
        mode = self.mode if mode is None else mode
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        dets = load_detections(detections, box_format=box_format)
        self.gt.encode_detections(dets)
        p, area_rng, img_ids = _normalized(self.params, self.gt)
        # A non-integral category id (1.7) names no category: pycocotools gives it a K slot
        # whose entries stay -1. Evaluate the integral ones, then insert those slots.
        whole = [isinstance(c, int) for c in p.catIds]
        p_int = copy.copy(p)
        p_int.catIds = [c for c, w in zip(p.catIds, whole) if w]
        keep = validate_detections(dets, self.gt, unknown_categories, p_int.catIds)
        p.iouType = p_int.iouType = iou_type
        precision, recall, scores = _evaluate_arrays(self.gt, dets, keep, p_int, img_ids, area_rng, mode)
        if not all(whole):
            precision, recall, scores = (_with_empty_categories(a, whole, axis)
                                         for a, axis in ((precision, 2), (recall, 1), (scores, 2)))
        if not p.useCats:
            p.catIds = [-1]
        result = COCOEvalResult(precision, recall, scores, p, mode, self.gt.cat_names)
        result._sources = (self.gt, dets, keep, img_ids)      # for explain() / pr_curve()
        return result


def _with_empty_categories(a, whole, axis):
    """Widen ``a`` along its category ``axis`` to len(whole) slots: -1 where whole is False."""
    shape = list(a.shape)
    shape[axis] = len(whole)
    out = np.full(shape, -1.0)
    index = [slice(None)] * a.ndim
    index[axis] = np.flatnonzero(whole)
    out[tuple(index)] = a
    return out


def _select(ids, allowed):
    """(mask, index) of each id among the sorted unique ``allowed`` ids."""
    allowed = np.asarray(allowed, dtype=np.int64)
    if allowed.size == 0:
        return np.zeros(ids.shape, bool), np.zeros(ids.shape, np.int64)
    idx = np.searchsorted(allowed, ids)
    idx_c = np.minimum(idx, allowed.size - 1)
    ok = allowed[idx_c] == ids
    return ok, idx_c


def _expand_by_category(cat, cat_list):
    """useCats=0: pycocotools gathers ``[x for cId in p.catIds for x in by_cat[cId]]``.

    Returns (positions, cat_pos): every element whose category is in ``cat_list`` once per
    occurrence of its category there, tagged with that occurrence's position.
    """
    pos, tag = [], []
    for j, c in enumerate(cat_list):
        hit = np.nonzero(cat == c)[0]
        pos.append(hit)
        tag.append(np.full(hit.size, j, dtype=np.int64))
    if not pos:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(pos), np.concatenate(tag)


def _evaluate_arrays(gt, dets, keep, p, img_ids, area_rng, mode):
    """The arrays of :class:`COCOEvalResult`: group, match (Numba), accumulate (Numba).

    img_ids (int64[I]): the sorted image ids (codes for string ids) to evaluate; keep
    (bool[D]): the detections of known categories; area_rng (float64[A, 2])."""
    cat_ids = np.asarray(p.catIds, dtype=np.int64)
    n_img = max(img_ids.size, 1)
    n_area = area_rng.shape[0]
    iou_thrs = p.iouThrs
    max_det_last = p.maxDets[-1]

    # ---- ground truths: select by each record's own image (and category), read the content
    # of the record COCO.anns returns for its id, group by that content's (category, image).
    sel_ok, sel_img = _select(gt.ann_img, img_ids)
    if p.useCats:
        sel_ok &= _select(gt.ann_cat, cat_ids)[0]
    pos = np.nonzero(sel_ok)[0]
    g_img_ok, g_img = _select(gt.img[pos], img_ids)
    if p.useCats:
        g_cat_ok, g_cat = _select(gt.cat[pos], cat_ids)
        g_tag = np.zeros(pos.size, np.int64)
        ok = g_img_ok & g_cat_ok
        pos, g_img, g_cat, g_tag = pos[ok], g_img[ok], g_cat[ok], g_tag[ok]
    else:
        pos = pos[g_img_ok]
        g_img = g_img[g_img_ok]
        sub, g_tag = _expand_by_category(gt.cat[pos], p.catIds)
        pos, g_img = pos[sub], g_img[sub]
        g_cat = np.zeros(pos.size, np.int64)
    # within a group: category position (useCats=0), the selecting image, file position
    order = np.lexsort((pos, sel_img[pos], g_tag, g_img, g_cat))
    pos, g_img, g_cat = pos[order], g_img[order], g_cat[order]
    gt_key = g_cat * n_img + g_img
    gt_box = gt.box[pos]
    gt_area = gt.area[pos]
    gt_crowd = gt.crowd[pos]
    gt_counts = gt.id_nonzero[pos]      # faster-coco-eval shares the gt-id-0 quirk

    # ---- detections: same grouping; inside a group descending score (stable), cut to maxDets[-1]
    d_ok, d_img = _select(dets.img, img_ids)
    d_ok &= keep
    if p.useCats:
        c_ok, d_cat = _select(dets.cat, cat_ids)
        dpos = np.nonzero(d_ok & c_ok)[0]
        d_img, d_cat = d_img[dpos], d_cat[dpos]
        d_tag = np.zeros(dpos.size, np.int64)
    else:
        dpos0 = np.nonzero(d_ok)[0]
        sub, d_tag = _expand_by_category(dets.cat[dpos0], p.catIds)
        dpos = dpos0[sub]
        d_img = d_img[dpos]
        d_cat = np.zeros(dpos.size, np.int64)
    d_score = dets.score[dpos]
    order = np.lexsort((dpos, d_tag, -d_score, d_img, d_cat))
    dpos, d_img, d_cat, d_score = dpos[order], d_img[order], d_cat[order], d_score[order]
    dt_key = d_cat * n_img + d_img
    # rank inside the (category, image) group
    n_dt = dt_key.size
    new_group = np.ones(n_dt, bool)
    new_group[1:] = dt_key[1:] != dt_key[:-1]
    starts = np.nonzero(new_group)[0]
    group_id = np.cumsum(new_group) - 1
    rank = np.arange(n_dt) - starts[group_id] if n_dt else np.zeros(0, np.int64)
    kept = rank < max_det_last
    dpos, d_cat, d_score, rank, dt_key = dpos[kept], d_cat[kept], d_score[kept], rank[kept], dt_key[kept]
    dt_box = dets.box[dpos]
    dt_area = np.ascontiguousarray(dets.area[dpos], dtype=np.float64)

    # ---- groups with detections, and their gt ranges
    keys, dt_start = np.unique(dt_key, return_index=True)
    dt_end = np.append(dt_start[1:], dt_key.size).astype(np.int64)
    gt_start = np.searchsorted(gt_key, keys, side="left").astype(np.int64)
    gt_end = np.searchsorted(gt_key, keys, side="right").astype(np.int64)
    coco_match = kernel("coco", "coco_match", dt_area)   # the Numba kernel (kernels/dispatch.py)
    state = coco_match(dt_start.astype(np.int64), dt_end, gt_start, gt_end,
                       np.ascontiguousarray(dt_box), dt_area, np.ascontiguousarray(gt_box),
                       gt_area, gt_crowd, gt_counts, np.ascontiguousarray(area_rng), iou_thrs)

    # ---- number of non-ignored gts per (category, area)
    n_cat = cat_ids.size if p.useCats else 1
    n_pos = np.zeros((n_cat, n_area), dtype=np.int64)
    for a in range(n_area):
        lo, hi = area_rng[a]
        valid = ~gt_crowd & (gt_area >= lo) & (gt_area <= hi)
        n_pos[:, a] = np.bincount(g_cat[valid], minlength=n_cat)[:n_cat]

    # ---- accumulate: per category, descending score, ties in (image, rank) order
    acc = np.lexsort((np.arange(d_score.size), -d_score, d_cat))
    acc_cat = d_cat[acc]
    cat_start = np.searchsorted(acc_cat, np.arange(n_cat), side="left").astype(np.int64)
    cat_end = np.searchsorted(acc_cat, np.arange(n_cat), side="right").astype(np.int64)
    state_acc = np.ascontiguousarray(state[:, :, acc])
    max_dets = np.asarray(p.maxDets, dtype=np.int64)
    coco_accumulate = kernel("coco", "coco_accumulate", state_acc)
    return coco_accumulate(cat_start, cat_end, rank[acc].astype(np.int64), d_score[acc],
                           state_acc, n_pos, p.recThrs, max_dets, mode == "pycocotools")
