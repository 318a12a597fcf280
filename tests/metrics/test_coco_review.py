"""Review cases for COCOEvaluator: real-COCO-shaped inputs against the references.

Each generated case is compared in both modes -- default against pycocotools, ``mode="fixed"``
against faster-coco-eval -- on the stats and on the precision / recall / scores arrays to
1e-12 (equal values, infinities included, count as equal). The generator below draws what
real annotation files hold and the synthetic sets of test_coco.py do not: polygon and RLE
``segmentation`` fields, ``area`` unlike w * h (integral or exactly 0, 32**2, 96**2), given
``ignore`` fields, ``info``/``licenses`` sections, COCO-style category ids (1..90 with gaps,
an extra unused one), large or negative image ids, zero-width and huge/tiny gt boxes,
float32-rounded coordinates, annotations on unlisted images, duplicated ids and id 0,
detections with extra keys (``id``, ``segmentation``, ``area``: overwritten by loadRes),
bool ``iscrowd``, integer / infinite / tied scores, up to 150 false positives per image; and
one of twelve parameter settings per case (custom maxDets, a lone area range, one IoU
threshold, random recall thresholds, image and category subsets, useCats=0, ...).
"""
import contextlib
import copy
import io

import numpy as np
import pytest

from tinyvision.metrics._coco_synth import reference_eval, synthetic_coco
from tinyvision.metrics.coco import COCOEvaluator, COCOFormatError

pytest.importorskip("pycocotools")


def _coco_like(seed):
    """(gt dict, results list, set_params) drawn like a real annotation file (see above)."""
    rng = np.random.default_rng(seed)
    big_ids = rng.random() < 0.3
    n_img = int(rng.integers(1, 12))
    img_ids = rng.choice(np.arange(1, 10 ** 6 if big_ids else 40), n_img, replace=False)
    if big_ids and rng.random() < 0.5:
        img_ids = img_ids + 10 ** 12
    if rng.random() < 0.15:
        img_ids = -img_ids
    cat_ids = sorted(rng.choice(np.arange(1, 91), int(rng.integers(1, 8)), replace=False).tolist())
    images = [{"id": int(i), "file_name": f"{i}.jpg", "height": 480, "width": 640, "license": 1}
              for i in img_ids]
    anns, dets = [], []
    ann_id = int(rng.integers(1, 1000))
    for im in img_ids.tolist():
        for _ in range(int(rng.integers(0, 8))):
            cat = int(rng.choice(cat_ids))
            s = rng.choice([1, 4, 20, 32, 50, 96, 200, 500])
            x, y = float(rng.uniform(0, 600)), float(rng.uniform(0, 400))
            w, h = float(s * rng.uniform(0.3, 2)), float(s * rng.uniform(0.3, 2))
            u = rng.random()
            if u < 0.05:
                w = 0.0
            elif u > 0.95:
                h = 0.0
            if rng.random() < 0.3:
                x, y, w, h = (float(np.float32(v)) for v in (x, y, w, h))
            crowd = int(rng.random() < 0.15)
            area = w * h * rng.uniform(0.4, 1.1)
            if rng.random() < 0.1:
                area = float(rng.choice([1024.0, 9216.0, 0.0]))
            seg = ({"counts": "PPYo0", "size": [480, 640]} if crowd
                   else [[x, y, x + w, y, x + w, y + h]])
            a = {"segmentation": seg, "area": float(area), "iscrowd": crowd, "image_id": int(im),
                 "bbox": [x, y, w, h], "category_id": cat, "id": ann_id}
            if rng.random() < 0.1:
                a["ignore"] = int(rng.integers(0, 2))      # pycocotools overwrites it with iscrowd
            if rng.random() < 0.05:
                a["area"] = int(round(area))
            if rng.random() < 0.1:
                a["iscrowd"] = bool(crowd)
            if rng.random() < 0.04:
                a["bbox"] = [x, y, 1e6, 1e6]
            ann_id += int(rng.integers(1, 50))
            anns.append(a)
            for _ in range(int(rng.poisson(1.5))):            # jittered copies
                j = rng.normal(0, 0.1, 4) * np.array([w, h, w, h])
                dets.append({"image_id": int(im),
                             "category_id": cat if rng.random() < 0.85 else int(rng.choice(cat_ids)),
                             "bbox": [x + j[0], y + j[1], max(w + j[2], 0.0), max(h + j[3], 0.0)]})
        for _ in range(int(rng.integers(0, 6 if rng.random() < 0.8 else 150))):   # false positives
            s = rng.choice([1, 4, 20, 32, 50, 96, 200])
            w = 0.0 if rng.random() < 0.05 else float(s * rng.uniform(0.3, 2))
            dets.append({"image_id": int(im), "category_id": int(rng.choice(cat_ids)),
                         "bbox": [float(rng.uniform(0, 600)), float(rng.uniform(0, 400)), w,
                                  float(s * rng.uniform(0.3, 2))]})
    if anns and rng.random() < 0.3:              # an annotation on an image the file does not list
        anns.append({**anns[0], "image_id": 10 ** 7 + 3, "id": 10 ** 9})
    if anns and rng.random() < 0.3:              # a duplicated annotation id: COCO.anns keeps the last
        dup = {**anns[int(rng.integers(len(anns)))], "bbox": [1.0, 2.0, 30.0, 40.0],
               "id": anns[int(rng.integers(len(anns)))]["id"]}
        anns.insert(int(rng.integers(len(anns) + 1)), dup)
    if anns and rng.random() < 0.2:
        anns[int(rng.integers(len(anns)))]["id"] = 0
    levels = [None, 3, 10, 1][int(rng.integers(0, 4))]
    for d in dets:
        score = float(rng.random())
        d["score"] = float(np.floor(score * levels) / levels) if levels else score
        u = rng.random()
        if u < 0.02:
            d["score"] = float("inf")
        elif u < 0.04:
            d["score"] = -float("inf")
        elif u < 0.1:
            d["score"] = int(rng.integers(0, 3))
        if rng.random() < 0.1:
            d["id"] = 5
        if rng.random() < 0.1:
            d["segmentation"] = [[0, 0, 1, 1, 2, 0]]
        if rng.random() < 0.05:
            d["area"] = 3.0
        if rng.random() < 0.3:
            d["bbox"] = [float(np.float32(v)) for v in d["bbox"]]
        elif rng.random() < 0.03:
            d["bbox"] = [d["bbox"][0], d["bbox"][1], 1e-6, 1e-6]
    dets = [dets[i] for i in rng.permutation(len(dets))]
    cats = [{"id": c, "name": f"c{c}", "supercategory": "thing"} for c in cat_ids]
    if rng.random() < 0.3:
        cats.append({"id": 999, "name": "unused", "supercategory": "thing"})
    rng.shuffle(cats)
    rng.shuffle(images)
    gt = {"info": {"year": 2017, "version": "1.0"}, "licenses": [{"id": 1, "name": "cc", "url": ""}],
          "images": images, "annotations": anns, "categories": cats}
    return gt, dets, _PARAM_SETTINGS[seed % len(_PARAM_SETTINGS)]


def _recthrs_random(p):
    p.recThrs = np.sort(np.random.default_rng(len(p.imgIds)).random(7))


def _img_subset(p):
    p.imgIds = p.imgIds[::2]


def _cat_subset(p):
    p.catIds = p.catIds[::2]


def _set(**kw):
    def apply(p):
        for k, v in kw.items():
            setattr(p, k, copy.deepcopy(v))
    return apply


_PARAM_SETTINGS = [
    None,
    _set(maxDets=[5, 50, 500]),
    _set(areaRng=[[0, 1e10]], areaRngLbl=["all"]),
    _set(iouThrs=np.array([0.5])),
    _recthrs_random,
    _img_subset,
    _cat_subset,
    _set(useCats=0),
    _set(maxDets=[1, 2, 3]),
    _set(iouThrs=np.array([0.1, 0.33, 0.5, 0.95, 0.99]), useCats=0),
    _set(areaRng=[[0, 1e10], [0, 100], [100, 2000], [2000, 1e10]]),
    _set(maxDets=[100, 1, 10]),
]


def _same(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    with np.errstate(invalid="ignore"):
        diff = np.where(a == b, 0.0, np.abs(a - b))      # inf == inf counts as equal
    assert not np.isnan(diff).any() and diff.max(initial=0.0) <= 1e-12, diff.max(initial=0.0)


def _assert_matches(res, ref):
    for name in ("precision", "recall", "scores"):
        _same(getattr(res, name), ref.eval[name])
        assert res.eval[name] is getattr(res, name)         # pycocotools' eval dict, same arrays
    assert res.eval["counts"] == ref.eval["counts"]
    if ref.stats is not None:
        _same(res.stats, ref.stats)


def _as_coco(gt):
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
    return coco


@pytest.mark.parametrize("seed", range(48))
def test_coco_like_inputs_match_references(seed):
    gt, dets, set_params = _coco_like(seed)
    if not dets:
        pytest.skip("no detections: pycocotools' loadRes raises an IndexError")
    for mode, backend in (("pycocotools", "pycocotools"), ("fixed", "faster-coco-eval")):
        if backend == "faster-coco-eval":
            pytest.importorskip("faster_coco_eval")
        ref = reference_eval(gt, dets, set_params, backend=backend)
        ev = COCOEvaluator(_as_coco(gt) if seed % 3 == 0 else copy.deepcopy(gt), mode=mode)
        if set_params is not None:
            set_params(ev.params)
        res = ev.evaluate(copy.deepcopy(dets))
        _assert_matches(res, ref)
        if mode == "pycocotools" and ref.stats is not None:     # the printed table, line for line
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                ref.summarize()
            assert res.summary().splitlines() == printed.getvalue().splitlines()


def _pycocotools_numpy(gt, rows):
    """pycocotools on loadRes(ndarray): the results as (N, 7) rows."""
    from pycocotools.cocoeval import COCOeval
    coco = _as_coco(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        e = COCOeval(coco, coco.loadRes(rows), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_rows_like_load_res(dtype):
    """(N, 7) rows [image_id, x, y, w, h, score, category_id]; float32 rows get a float32
    area w * h, which puts some boxes on the other side of 32**2 than a float64 area would."""
    gt, dets = synthetic_coco(n_images=12, seed=3)
    rng = np.random.default_rng(0)
    for im in gt["images"][:5]:
        for _ in range(5):
            w = np.float32(32.0 + rng.normal(0, 1e-5))
            dets.append({"image_id": im["id"], "category_id": 1,
                         "bbox": [10.0, 10.0, float(w), float(np.float32(1024.0 / w))], "score": 0.5})
    rows = np.array([[d["image_id"], *d["bbox"], d["score"], d["category_id"]] for d in dets], dtype=dtype)
    ref = _pycocotools_numpy(gt, rows)
    ev = COCOEvaluator(gt)
    _assert_matches(ev.evaluate(rows), ref)
    # the same rows as result dicts holding NumPy scalars, and as the COCO object loadRes makes
    scalars = [{"image_id": int(r[0]), "bbox": list(r[1:5]), "score": r[5], "category_id": int(r[6])}
               for r in rows]
    _assert_matches(ev.evaluate(scalars), ref)
    with contextlib.redirect_stdout(io.StringIO()):
        _assert_matches(ev.evaluate(_as_coco(gt).loadRes(rows)), ref)
    if dtype == np.float32:
        a32 = (rows[:, 3] * rows[:, 4]).astype(np.float64)
        a64 = rows[:, 3].astype(np.float64) * rows[:, 4].astype(np.float64)
        assert ((a32 <= 1024) != (a64 <= 1024)).any()     # the case is really exercised


def test_numpy_rows_bad_shape_and_ids():
    gt, _ = synthetic_coco(n_images=2, seed=0)
    ev = COCOEvaluator(gt)
    with pytest.raises(COCOFormatError, match=r"shape \(N, 7\).*\(3, 5\)"):
        ev.evaluate(np.zeros((3, 5)))
    with pytest.raises(COCOFormatError, match="image_id and category_id must be finite"):
        ev.evaluate(np.array([[np.nan, 0, 0, 1, 1, 0.5, 1]]))
    with pytest.raises(COCOFormatError, match="score.*NaN"):
        ev.evaluate(np.array([[gt["images"][0]["id"], 0, 0, 1, 1, np.nan, 1]]))


def test_repeated_category_ids_count_twice_with_use_cats_0():
    """pycocotools' default catIds = sorted(getCatIds()) keeps a repeated category id; with
    useCats=0 its gts and detections are then gathered twice."""
    gt, dets = synthetic_coco(n_images=10, seed=1)
    gt["categories"].append(dict(gt["categories"][0]))
    for set_params in (None, _set(useCats=0)):
        ref = reference_eval(gt, dets, set_params)
        ev = COCOEvaluator(gt)
        if set_params is not None:
            set_params(ev.params)
        _assert_matches(ev.evaluate(dets), ref)


def test_many_detections_per_image_custom_max_dets():
    """Few images, hundreds of detections each, maxDets above and below the count."""
    gt, dets = synthetic_coco(n_images=4, n_categories=2, seed=11, fp_per_image=(300, 400),
                              dets_per_gt=4.0, score_levels=20)
    for set_params in (_set(maxDets=[5, 50, 500]), _set(maxDets=[1, 10, 100])):
        _assert_matches(_evaluate(gt, dets, set_params), reference_eval(gt, dets, set_params))


def _evaluate(gt, dets, set_params, mode="pycocotools"):
    ev = COCOEvaluator(gt, mode=mode)
    set_params(ev.params)
    return ev.evaluate(dets)


def _string_image_ids(gt, dets, fmt):
    name = (lambda i: fmt.format(i) if i >= 0 else "m" + fmt.format(-i))
    for im in gt["images"]:
        im["id"] = name(im["id"])
    for a in gt["annotations"]:
        a["image_id"] = name(a["image_id"])
    for d in dets:
        d["image_id"] = name(d["image_id"])
    return gt, dets


@pytest.mark.parametrize("seed", [1, 2, 4, 5, 7, 9, 13, 17])
def test_string_image_ids_match_pycocotools(seed):
    """pycocotools takes string image ids; they sort as strings ("10" before "9"), which sets
    the order of tied scores across images."""
    gt, dets, set_params = _coco_like(seed)
    gt, dets = _string_image_ids(gt, dets, ["{:012d}", "img{}", "{}"][seed % 3])
    if not dets:
        pytest.skip("no detections")
    ref = reference_eval(gt, dets, set_params)
    ev = COCOEvaluator(copy.deepcopy(gt))
    if set_params is not None:
        set_params(ev.params)
    res = ev.evaluate(copy.deepcopy(dets))
    _assert_matches(res, ref)
    assert res.params.imgIds == sorted(res.params.imgIds) and isinstance(res.params.imgIds[0], str)


def test_string_image_ids_inputs_and_errors():
    gt = {"images": [{"id": "b"}, {"id": "a"}, {"id": "10"}], "categories": [{"id": 1}],
          "annotations": [{"id": 1, "image_id": "a", "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
                          {"id": 2, "image_id": "b", "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100}]}
    ev = COCOEvaluator(gt, mode="fixed")
    assert ev.params.imgIds == ["10", "a", "b"]
    per_image = {"a": (np.array([[0, 0, 10, 10.0]]), np.array([0.9]), np.array([1]))}
    records = [{"image_id": "a", "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}]
    np.testing.assert_array_equal(ev.evaluate(per_image).precision, ev.evaluate(records).precision)
    assert ev.evaluate(records).stats[1] == pytest.approx(0.5049504950495)   # recall 1/2
    with pytest.raises(COCOFormatError, match=r"detections\[0\]\['image_id'\] must be a string"):
        ev.evaluate([{**records[0], "image_id": 1}])
    with pytest.raises(COCOFormatError, match=r"'zz' is not an image of the ground truth"):
        ev.evaluate([{**records[0], "image_id": "zz"}])
    with pytest.raises(COCOFormatError, match="cannot mix strings and integers"):
        ev.evaluate({**per_image, 3: per_image["a"]})
    ev.params.imgIds = ["a", "not-an-image"]          # an unknown id adds nothing, as in pycocotools
    assert ev.evaluate(records).stats[1] == 1.0
    ev.params.imgIds = [1]
    with pytest.raises(COCOFormatError, match="params.imgIds must hold string image ids"):
        ev.evaluate(records)
    with pytest.raises(COCOFormatError, match=r"images\[1\]\['id'\] must be a string"):
        COCOEvaluator({"images": [{"id": "a"}, {"id": 2}], "categories": []})
    with pytest.raises(COCOFormatError, match=r"detections\[1\]\['image_id'\] must be an integer"):
        COCOEvaluator({"images": [{"id": 1}], "categories": [{"id": 1}]}).evaluate(
            [{**records[0], "image_id": 1}, {**records[0], "image_id": "1"}])
