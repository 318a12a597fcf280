"""COCOEvaluator against pycocotools (default mode) and faster-coco-eval (fixed mode).

Every differential test compares stats AND the precision / recall / scores arrays to 1e-12
(in practice they are bit-identical). Datasets are small: pycocotools is slow.
The bad-input tests below exercise the reader and validator in tinyvision/metrics/_coco_io.py.
"""
import copy
import json

import numpy as np
import pytest

from tinyvision.kernels.cpu.coco import coco_accumulate, coco_box_iou, coco_match
from tinyvision.metrics._coco_synth import reference_eval, synthetic_coco
from tinyvision.metrics.coco import COCOEvaluator, COCOEvalResult, COCOFormatError, Params

pytest.importorskip("pycocotools")

ATOL = 1e-12


def assert_same(res, ref, check_stats=True):
    np.testing.assert_allclose(res.precision, ref.eval["precision"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(res.recall, ref.eval["recall"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(res.scores, ref.eval["scores"], rtol=0, atol=ATOL)
    if check_stats:
        np.testing.assert_allclose(res.stats, np.asarray(ref.stats), rtol=0, atol=ATOL)


def tv_eval(gt, dets, set_params=None, mode="pycocotools", **kw):
    ev = COCOEvaluator(gt, mode=mode)
    if set_params is not None:
        set_params(ev.params)
    return ev.evaluate(dets, **kw)


# ---- parameter variations (applied to both evaluators) --------------------------------------
def _use_cats_0(p):
    p.useCats = 0


def _max_dets_small(p):
    p.maxDets = [1, 3, 5]          # fewer than the detections per image; no 100: stats[0] = -1


def _max_dets_unsorted(p):
    p.maxDets = [10, 2, 100, 300]


def _other_thresholds(p):
    p.iouThrs = np.array([0.3, 0.5, 0.75, 0.9])
    p.recThrs = np.linspace(0, 1, 11)


def _two_ranges(p):
    p.areaRng = [[0, 1e10], [0, 1024], [1024, 1e10]]
    p.areaRngLbl = ["all", "small", "large"]


def _subset(p):
    p.catIds = p.catIds[1:3]
    p.imgIds = p.imgIds[::2]


def _odd_thresholds(p):
    p.recThrs = np.array([0.5, 0.0, 1.0, 0.2, 0.9])      # unsorted: pycocotools stops early
    p.iouThrs = np.array([0.0, 0.5, 0.75, 1.0])          # 1.0 becomes 1 - 1e-10


def _odd_ranges(p):
    p.areaRng = [[0, 1e10], [0, 1024], [1024, 1e10], [5000, 10]]   # an empty range
    p.areaRngLbl = ["all", "small", "small", "large"]               # a repeated label
    p.maxDets = [0, 10, 10, 100]                                    # 0 and a repeat


def _agnostic_repeated_cats(p):
    p.useCats = 0
    p.catIds = [p.catIds[0], p.catIds[-1], p.catIds[0]]   # useCats=0 keeps repeats: gts counted twice


def _no_images(p):
    p.imgIds = []


PARAMS = {"default": None, "useCats0": _use_cats_0, "maxDets_1_3_5": _max_dets_small,
          "maxDets_unsorted": _max_dets_unsorted, "other_thresholds": _other_thresholds,
          "two_area_ranges": _two_ranges, "img_cat_subset": _subset,
          "odd_thresholds": _odd_thresholds, "odd_ranges": _odd_ranges,
          "agnostic_repeated_cats": _agnostic_repeated_cats, "no_images": _no_images}

DATASETS = {
    "plain": dict(seed=0),
    "score_ties": dict(seed=1, score_levels=4),
    "integer_boxes": dict(seed=2, integer_boxes=True),
    "crowded": dict(seed=3, crowd_fraction=0.4, gts_per_image=(3, 10)),
    "many_dets": dict(seed=4, dets_per_gt=3.0, fp_per_image=(5, 15)),
    "empty_images": dict(seed=5, empty_image_fraction=0.5),
    "zero_ann_id": dict(seed=6, zero_id=True),
    # more than 100 detections of one category per image: the cut at maxDets[-1] = 100
    "over_100_per_image": dict(seed=8, n_images=3, n_categories=1, absent_category=False,
                               fp_per_image=(110, 150), score_levels=50),
}


@pytest.fixture(scope="module")
def datasets():
    return {name: synthetic_coco(**{"n_images": 25, **kw}) for name, kw in DATASETS.items()}


@pytest.mark.parametrize("data", sorted(DATASETS))
def test_matches_pycocotools_default_params(datasets, data):
    gt, dets = datasets[data]
    assert_same(tv_eval(gt, dets), reference_eval(gt, dets))


@pytest.mark.parametrize("params", sorted(k for k in PARAMS if k != "default"))
@pytest.mark.parametrize("data", ["plain", "score_ties", "crowded"])
def test_matches_pycocotools_custom_params(datasets, data, params):
    gt, dets = datasets[data]
    ref = reference_eval(gt, dets, PARAMS[params])
    res = tv_eval(gt, dets, PARAMS[params])
    if ref.stats is None:                       # pycocotools cannot summarize this setting
        assert_same(res, ref, check_stats=False)
        with pytest.raises(ValueError, match="summarize"):
            res.stats
    else:
        assert_same(res, ref)


@pytest.mark.parametrize("params", sorted(PARAMS))
@pytest.mark.parametrize("data", ["plain", "score_ties", "zero_ann_id", "over_100_per_image"])
def test_fixed_mode_matches_faster_coco_eval(datasets, data, params):
    pytest.importorskip("faster_coco_eval")
    gt, dets = datasets[data]
    ref = reference_eval(gt, dets, PARAMS[params], backend="faster-coco-eval")
    assert_same(tv_eval(gt, dets, PARAMS[params], mode="fixed"), ref)


def test_many_seeds_default_params():
    for seed in range(10, 40):
        gt, dets = synthetic_coco(n_images=8, n_categories=3, seed=seed,
                                  score_levels=3 if seed % 2 else None, integer_boxes=seed % 3 == 0)
        assert_same(tv_eval(gt, dets), reference_eval(gt, dets))


# ---- hand-built edge cases ----------------------------------------------------------------------
def _gt(anns, n_images=2, cats=(1, 2)):
    return {"images": [{"id": i} for i in range(1, n_images + 1)],
            "categories": [{"id": c, "name": f"c{c}"} for c in cats],
            "annotations": anns}


def _ann(i, img, cat, box, area=None, crowd=0, **extra):
    a = {"id": i, "image_id": img, "category_id": cat, "bbox": list(box),
         "area": box[2] * box[3] if area is None else area, "iscrowd": crowd}
    a.update(extra)
    return a


def _det(img, cat, box, score):
    return {"image_id": img, "category_id": cat, "bbox": list(box), "score": score}


EDGE_CASES = {
    # area exactly 32**2 and 96**2 (in two ranges each), box areas on the boundaries too
    "boundary_areas": (
        [_ann(1, 1, 1, [0, 0, 32, 32]), _ann(2, 1, 1, [100, 100, 96, 96]),
         _ann(3, 2, 1, [0, 0, 40, 40], area=1024.0), _ann(4, 2, 2, [50, 50, 20, 20], area=9216)],
        [_det(1, 1, [0, 0, 32, 32], .9), _det(1, 1, [100, 100, 96, 96], .8),
         _det(2, 1, [1, 1, 40, 40], .7), _det(2, 2, [0, 0, 32, 32], .6), _det(2, 2, [50, 50, 21, 20], .5)]),
    # a crowd region matched by several detections (union = the detection's area)
    "crowd": (
        [_ann(1, 1, 1, [0, 0, 100, 100], crowd=1), _ann(2, 1, 1, [10, 10, 20, 20]),
         _ann(3, 2, 1, [0, 0, 50, 50], crowd=1, ignore=0)],
        [_det(1, 1, [12, 12, 20, 20], .9), _det(1, 1, [50, 50, 10, 10], .8),
         _det(1, 1, [60, 60, 10, 10], .8), _det(2, 1, [0, 0, 10, 10], .4)]),
    # equal IoU with two gts: the later one wins; score ties across images
    "equal_iou": (
        [_ann(1, 1, 1, [0, 0, 10, 10]), _ann(2, 1, 1, [0, 0, 10, 10]), _ann(3, 2, 1, [5, 5, 10, 10])],
        [_det(1, 1, [0, 0, 10, 10], .5), _det(2, 1, [5, 5, 10, 10], .5), _det(1, 1, [0, 0, 10, 10], .5)]),
    # a gt 'ignore' field is overwritten by iscrowd; zero-size detection; gt id 0
    "ignore_field_and_id0": (
        [_ann(0, 1, 1, [0, 0, 10, 10], ignore=1), _ann(5, 1, 2, [0, 0, 10, 10])],
        [_det(1, 1, [0, 0, 10, 10], .9), _det(1, 2, [0, 0, 0, 5], .9), _det(1, 2, [0, 0, 10, 10], .3)]),
    # duplicate annotation ids: COCO.anns keeps the last record
    "duplicate_ids": (
        [_ann(7, 1, 1, [0, 0, 10, 10]), _ann(7, 2, 2, [20, 20, 30, 30]), _ann(8, 1, 1, [5, 5, 5, 5])],
        [_det(1, 1, [0, 0, 10, 10], .9), _det(2, 2, [20, 20, 30, 30], .8), _det(1, 1, [5, 5, 5, 5], .7)]),
    # a category with gts but no detections (AP 0), one with neither (-1), image without gts
    "absent_categories": (
        [_ann(1, 1, 1, [0, 0, 10, 10])],
        [_det(2, 1, [0, 0, 10, 10], .9)]),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("params", ["default", "useCats0", "maxDets_1_3_5"])
def test_edge_cases_match_pycocotools(case, params):
    anns, dets = EDGE_CASES[case]
    gt = _gt(anns, cats=(1, 2, 3))
    ref = reference_eval(gt, dets, PARAMS[params])
    res = tv_eval(gt, dets, PARAMS[params])
    assert_same(res, ref, check_stats=ref.stats is not None)
    pytest.importorskip("faster_coco_eval")
    fref = reference_eval(gt, dets, PARAMS[params], backend="faster-coco-eval")
    assert_same(tv_eval(gt, dets, PARAMS[params], mode="fixed"), fref)


def test_category_only_in_annotations_and_params():
    """params.catIds may name a category the gt's list lacks but its annotations use."""
    gt = _gt([_ann(1, 1, 1, [0, 0, 10, 10]), _ann(2, 1, 5, [20, 20, 10, 10])], cats=(1,))
    dets = [_det(1, 5, [20, 20, 10, 10], .9), _det(1, 1, [0, 0, 10, 12], .8)]

    def cats(p):
        p.catIds = [1, 5]
    res = tv_eval(gt, dets, cats)
    assert_same(res, reference_eval(gt, dets, cats))
    assert res.precision.shape[2] == 2
    with pytest.raises(COCOFormatError, match="category_id'] = 5"):
        tv_eval(gt, dets)


def test_absent_category_conventions():
    anns, dets = EDGE_CASES["absent_categories"]
    res = tv_eval(_gt(anns, cats=(1, 2, 3)), dets)
    ap = res.ap_per_category()
    assert ap[1] == 0.0          # gts, no detections on them: AP 0
    assert ap[2] == -1.0         # detections only: no gt, -1
    assert ap[3] == -1.0         # neither
    assert (res.precision[:, :, 1:] == -1).all()


def test_golden_hand_computed():
    """1 image, 2 gts, 3 detections: TP (IoU 1), FP, TP at IoU exactly 0.5 only.

    t = 0.50: TP FP TP -> rc .5 .5 1, pr 1 .5 2/3 -> envelope 1 2/3 2/3:
              51 recall points at 1, 50 at 2/3;  t > 0.50: TP FP FP -> 51 points at 1, 50 at 0.
    """
    gt = _gt([_ann(1, 1, 1, [0, 0, 10, 10]), _ann(2, 1, 1, [20, 20, 10, 10])], n_images=1, cats=(1,))
    dets = [_det(1, 1, [0, 0, 10, 10], .9), _det(1, 1, [50, 50, 10, 10], .8),
            _det(1, 1, [20, 20, 10, 5], .7)]
    ap50 = (51 + 50 * 2 / 3) / 101
    ap_hi = 51 / 101
    expected = [(ap50 + 9 * ap_hi) / 10, ap50, ap_hi, (ap50 + 9 * ap_hi) / 10, -1, -1,
                0.5, 0.55, 0.55, 0.55, -1, -1]
    fixed = tv_eval(gt, dets, mode="fixed")
    np.testing.assert_allclose(fixed.stats, expected, rtol=0, atol=1e-15)
    bug = tv_eval(gt, dets)
    np.testing.assert_allclose(bug.stats, expected, rtol=0, atol=1e-15)
    assert bug.precision[0, 0, 0, 0, 2] == 1 / (1 + np.spacing(1)) == 0.9999999999999998
    assert fixed.precision[0, 0, 0, 0, 2] == 1.0
    assert_same(bug, reference_eval(gt, dets))


def test_summary_text_is_pycocotools(datasets, capsys):
    import contextlib
    import io
    gt, dets = datasets["plain"]
    ref = reference_eval(gt, dets)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ref.summarize()
    res = tv_eval(gt, dets)
    assert res.summary() + "\n" == buf.getvalue()
    assert str(res) == res.summary()
    stats = res.summarize()
    assert capsys.readouterr().out == buf.getvalue()
    assert stats is res.stats


def test_perfect_detections_spacing_bug_and_fixed():
    gt, _ = synthetic_coco(n_images=8, seed=7, crowd_fraction=0.0)
    dets = [_det(a["image_id"], a["category_id"], a["bbox"], 1.0 - 0.001 * i)
            for i, a in enumerate(gt["annotations"])]
    res = tv_eval(gt, dets)
    # TP / (TP + eps) rounds to 1 from TP = 2 on: only a category whose precision envelope
    # never gets past TP = 1 shows the 0.9999999999999998
    assert 1 - 1e-15 < res.stats[0] <= 1.0
    fixed = tv_eval(gt, dets, mode="fixed")
    assert fixed.stats[0] == 1.0
    assert_same(res, reference_eval(gt, dets))


def test_input_forms_agree(tmp_path, datasets):
    gt, dets = datasets["plain"]
    base = tv_eval(gt, dets)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dets))
    from_files = COCOEvaluator(str(gt_path)).evaluate(dt_path)
    np.testing.assert_array_equal(from_files.precision, base.precision)
    # per-image arrays, xywh and xyxy; image order preserved inside each image
    per_img_xywh, per_img_xyxy = {}, {}
    for d in dets:
        per_img_xywh.setdefault(d["image_id"], []).append(d)
    for img, ds in per_img_xywh.items():
        boxes = np.array([d["bbox"] for d in ds])
        scores = np.array([d["score"] for d in ds])
        labels = np.array([d["category_id"] for d in ds])
        per_img_xywh[img] = (boxes, scores, labels)
        xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        per_img_xyxy[img] = {"boxes": xyxy, "scores": scores, "labels": labels}
    ev = COCOEvaluator(gt)
    r1 = ev.evaluate(per_img_xywh, box_format="xywh")
    np.testing.assert_array_equal(r1.precision, base.precision)
    # xyxy -> xywh by subtraction: equal up to round-off in w and h
    r2 = ev.evaluate(per_img_xyxy)
    ref = [_det(img, int(l), [b[0], b[1], b[2] - b[0], b[3] - b[1]], float(s))
           for img, e in per_img_xyxy.items() for b, s, l in zip(e["boxes"], e["scores"], e["labels"])]
    assert_same(r2, reference_eval(gt, ref))


def test_empty_results_give_zero_ap():
    gt, _ = synthetic_coco(n_images=4, seed=3)
    res = tv_eval(gt, [])
    valid = res.precision[res.precision > -1]
    assert valid.size > 0 and (valid == 0).all()
    assert res.stats[0] == 0.0


def test_unknown_category_ignore_like_pycocotools(datasets):
    gt, dets = datasets["plain"]
    dets = copy.deepcopy(dets) + [_det(gt["images"][0]["id"], 999, [0, 0, 5, 5], 0.99)]
    with pytest.raises(COCOFormatError, match=r"detections\[\d+\]\['category_id'\] = 999"):
        tv_eval(gt, dets)
    assert_same(tv_eval(gt, dets, unknown_categories="ignore"), reference_eval(gt, dets))


def test_unsupported_iou_types():
    gt, dets = synthetic_coco(n_images=2, seed=0)
    for t in ("segm", "keypoints"):
        with pytest.raises(NotImplementedError, match=t):
            COCOEvaluator(gt).evaluate(dets, iou_type=t)
    with pytest.raises(ValueError, match="iou_type"):
        COCOEvaluator(gt).evaluate(dets, iou_type="boxes")


def test_params_defaults_are_pycocotools():
    from pycocotools.cocoeval import Params as RefParams
    ref, p = RefParams(iouType="bbox"), Params()
    for name in ("iouThrs", "recThrs"):
        assert getattr(p, name).dtype == np.float64
        np.testing.assert_array_equal(getattr(p, name), getattr(ref, name))
    assert p.iouThrs[8] == 0.8999999999999999
    assert p.maxDets == ref.maxDets and p.areaRng == ref.areaRng and p.areaRngLbl == ref.areaRngLbl
    assert p.useCats == 1


def test_result_helpers(datasets):
    gt, dets = datasets["plain"]
    res = tv_eval(gt, dets)
    assert isinstance(res, COCOEvalResult)
    assert list(res.stats_dict()) == ["AP", "AP50", "AP75", "APs", "APm", "APl",
                                      "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    ap = res.ap_per_category()
    valid = [v for v in ap.values() if v > -1]
    assert np.isclose(np.mean(valid), res.stats[0], atol=1e-12)
    ap50 = res.ap_per_category(iou_thr=0.5)
    assert np.isclose(np.mean([v for v in ap50.values() if v > -1]), res.stats[1], atol=1e-12)
    assert "COCOEvalResult" in repr(res)


# ---- bad input ------------------------------------------------------------------------------
BAD_DETECTIONS = [
    ([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}], r"detections\[0\] is missing the field 'score'"),
    ([_det(1, 1, [0, 0, 1, 1], .5), {"image_id": 1, "category_id": 1, "score": .4}],
     r"detections\[1\] is missing the field 'bbox'"),
    ([_det(1, 1, [0, 0, 1, 1], float("nan"))], r"detections\[0\]\['score'\] is NaN"),
    ([_det(1, 1, [0, 0, -1, 1], .5)], r"detections\[0\]\['bbox'\] has a negative width"),
    ([_det(1, 1, [0, 0, 1], .5)], r"detections\[0\]\['bbox'\] must be 4 numbers"),
    ([_det(1, 1, [0, 0, 1, float("inf")], .5)], r"detections\[0\]\['bbox'\] must be finite"),
    ([_det(1, 1, [0, 0, 1, 1], .5), _det(99, 1, [0, 0, 1, 1], .5)],
     r"detections\[1\]\['image_id'\] = 99 is not an image"),
    ([_det(1, 5, [0, 0, 1, 1], .5)], r"detections\[0\]\['category_id'\] = 5 is not a category"),
    ([_det(1, 1, [0, 0, 1, 1], "high")], r"detections\[0\]\['score'\] must be a number"),
    ([_det(1.5, 1, [0, 0, 1, 1], .5)], r"detections\[0\]\[.image_id.\] must be an integer"),
    (["not a dict"], r"detections\[0\] must be a dict"),
    (42, "detections must be"),
]


@pytest.mark.parametrize("dets,message", BAD_DETECTIONS)
def test_bad_detections_name_field_and_record(dets, message):
    gt = _gt([_ann(1, 1, 1, [0, 0, 10, 10])])
    with pytest.raises((COCOFormatError, TypeError), match=message):
        COCOEvaluator(gt).evaluate(dets)


BAD_GT = [
    ({"images": [{"id": 1}], "annotations": []}, "missing the field 'categories'"),
    ({"images": [{"name": 1}], "categories": []}, r"images\[0\] is missing the field 'id'"),
    (_gt([_ann(1, 1, 1, [0, 0, 10, 10]), {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]),
     r"annotations\[1\] is missing the field 'area'"),
    (_gt([_ann(1, 1, 1, [0, 0, -10, 10], area=5)]), r"annotations\[0\]\['bbox'\] has a negative width"),
    (_gt([_ann(1, 1, 1, [0, 0, 10, 10], area=float("nan"))]), r"annotations\[0\]\['area'\] is NaN"),
    (_gt([_ann(1, "1", 1, [0, 0, 10, 10])]), r"annotations\[0\]\['image_id'\] must be an integer"),
    ([1, 2], "ground truth must be a COCO dict"),
]


@pytest.mark.parametrize("gt,message", BAD_GT)
def test_bad_ground_truth_names_field_and_record(gt, message):
    with pytest.raises(COCOFormatError, match=message):
        COCOEvaluator(gt)


def test_malformed_json_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(COCOFormatError, match="not valid JSON"):
        COCOEvaluator(bad)
    with pytest.raises(COCOFormatError, match="cannot read"):
        COCOEvaluator(tmp_path / "missing.json")
    gt = _gt([_ann(1, 1, 1, [0, 0, 10, 10])])
    obj = tmp_path / "obj.json"
    obj.write_text(json.dumps({"image_id": 1}))
    with pytest.raises(COCOFormatError, match="list of result dicts"):
        COCOEvaluator(gt).evaluate(obj)
    with pytest.raises(COCOFormatError, match="not valid JSON"):
        COCOEvaluator(gt).evaluate(bad)


def test_bad_params_and_arrays():
    gt = _gt([_ann(1, 1, 1, [0, 0, 10, 10])])
    ev = COCOEvaluator(gt)
    ev.params.maxDets = [1, -1]
    with pytest.raises(ValueError, match="maxDets"):
        ev.evaluate([])
    ev = COCOEvaluator(gt)
    ev.params.iouThrs = [0.5, float("nan")]
    with pytest.raises(ValueError, match="iouThrs"):
        ev.evaluate([])
    with pytest.raises(ValueError, match="mode"):
        COCOEvaluator(gt, mode="fast")
    with pytest.raises(COCOFormatError, match=r"detections\[1\].*same length"):
        ev = COCOEvaluator(gt)
        ev.evaluate({1: (np.zeros((2, 4)), np.zeros(3), np.zeros(2, int))})
    with pytest.raises(COCOFormatError, match=r"shape \(N, 4\)"):
        COCOEvaluator(gt).evaluate({1: (np.zeros((2, 3)), np.zeros(2), np.zeros(2, int))})
    with pytest.raises(COCOFormatError, match="negative width"):
        COCOEvaluator(gt).evaluate({1: (np.array([[5.0, 0, 1, 1]]), np.ones(1), np.ones(1, int))})


# ---- kernels: compiled vs interpreted (the plain-loop reading of the same code) --------------
def test_kernels_compiled_equal_interpreted(datasets):
    rng = np.random.default_rng(0)
    dt = np.round(rng.uniform(0, 20, (7, 4)), 1)
    gt = np.round(rng.uniform(0, 20, (5, 4)), 1)
    crowd = np.array([0, 1, 0, 0, 1], bool)
    np.testing.assert_array_equal(coco_box_iou(dt, gt, crowd), coco_box_iou.py_func(dt, gt, crowd))
    # one group of 7 detections and 5 gts, two area ranges, three thresholds
    args = (np.array([0]), np.array([7]), np.array([0]), np.array([5]), dt, dt[:, 2] * dt[:, 3], gt,
            gt[:, 2] * gt[:, 3], crowd, np.ones(5, bool), np.array([[0, 1e10], [0, 100.0]]),
            np.array([0.1, 0.3, 0.5]))
    state = coco_match(*args)
    np.testing.assert_array_equal(state, coco_match.py_func(*args))
    acc_args = (np.array([0]), np.array([7]), np.arange(7), np.linspace(1, 0, 7), state,
                np.array([[4, 2]]), np.linspace(0, 1, 11), np.array([1, 3, 10]), True)
    for a, b in zip(coco_accumulate(*acc_args), coco_accumulate.py_func(*acc_args)):
        np.testing.assert_array_equal(a, b)


def test_box_iou_against_pycocotools_mask_iou():
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(1)
    dt = rng.uniform(0, 30, (20, 4))
    gt = rng.uniform(0, 30, (15, 4))
    dt[3, 2] = 0.0
    crowd = rng.random(15) < 0.3
    ref = mask_utils.iou(dt.tolist(), gt.tolist(), crowd.astype(int).tolist())
    np.testing.assert_array_equal(coco_box_iou(dt, gt, crowd), ref)


# ---- docs run as written ----------------------------------------------------------------------
def test_module_doctest():
    import doctest

    import tinyvision.metrics.coco as coco_module
    failures, _ = doctest.testmod(coco_module, verbose=False)
    assert failures == 0


def test_docs_example_runs(capsys):
    import pathlib
    import re
    root = pathlib.Path(__file__).resolve().parents[2]
    text = (root / "docs" / "metrics_coco.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/metrics_coco.md", "exec"), {})
    assert "Average Precision" in capsys.readouterr().out


def test_torch_and_tinyvision_tensors_as_per_image_arrays():
    torch = pytest.importorskip("torch")
    import tinyvision as tv
    gt = _gt([_ann(1, 1, 1, [0, 0, 10, 10]), _ann(2, 2, 2, [5, 5, 20, 20])])
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 9, 9]], requires_grad=True)      # xyxy
    per_image = {1: {"boxes": boxes, "scores": torch.tensor([0.9, 0.3]), "labels": torch.tensor([1, 1])},
                 2: (tv.tensor(np.array([[5.0, 5, 25, 25]])), tv.tensor(np.array([0.5])), np.array([2]))}
    res = COCOEvaluator(gt).evaluate(per_image)
    dets = [_det(1, 1, [0, 0, 10, 10], float(np.float32(0.9))), _det(1, 1, [1, 1, 8, 8], float(np.float32(0.3))),
            _det(2, 2, [5, 5, 20, 20], 0.5)]
    assert_same(res, reference_eval(gt, dets))


def test_pycocotools_objects_as_input(datasets):
    import contextlib
    import io
    from pycocotools.coco import COCO
    gt, dets = datasets["plain"]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        loaded = coco.loadRes(copy.deepcopy(dets))
    res = COCOEvaluator(coco).evaluate(loaded)
    np.testing.assert_array_equal(res.precision, tv_eval(gt, dets).precision)
