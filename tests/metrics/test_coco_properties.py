"""Hypothesis properties of COCOEvaluator, and differential checks on generated datasets.

Boxes live on a coarse integer grid (scaled by 8) so that equal IoUs, IoU exactly at a
threshold, areas exactly 32**2 / 96**2 and score ties all happen often.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinyvision.metrics._coco_synth import reference_eval
from tinyvision.metrics.coco import COCOEvaluator

pytest.importorskip("pycocotools")

ATOL = 1e-12
SCALE = 8.0


@st.composite
def boxes(draw):
    x = draw(st.integers(0, 12))
    y = draw(st.integers(0, 12))
    w = draw(st.integers(1, 12))
    h = draw(st.integers(1, 12))
    return [x * SCALE, y * SCALE, w * SCALE, h * SCALE]


@st.composite
def coco_cases(draw, max_images=3, max_gts=4, max_dets=6, tie_scores=True, crowd=True):
    n_images = draw(st.integers(1, max_images))
    cats = [1, 2, 3][: draw(st.integers(1, 3))]
    images = [{"id": 10 * (i + 1)} for i in range(n_images)]
    categories = [{"id": c, "name": str(c)} for c in cats + [9]]      # 9: never used
    anns, dets = [], []
    ann_id = 1
    for img in images:
        img_gts = []
        for _ in range(draw(st.integers(0, max_gts))):
            box = draw(boxes())
            area = draw(st.sampled_from(["box", "box", "half", "small_edge", "medium_edge"]))
            area = {"box": box[2] * box[3], "half": box[2] * box[3] / 2,
                    "small_edge": 32.0 ** 2, "medium_edge": 96.0 ** 2}[area]
            ann = {"id": ann_id, "image_id": img["id"], "category_id": draw(st.sampled_from(cats)),
                   "bbox": box, "area": area, "iscrowd": int(crowd and draw(st.booleans())
                                                            and draw(st.booleans()))}
            ann_id += 1
            anns.append(ann)
            img_gts.append(ann)
        for _ in range(draw(st.integers(0, max_dets))):
            if img_gts and draw(st.booleans()):
                g = draw(st.sampled_from(img_gts))
                dx, dy, dw, dh = (draw(st.integers(-1, 1)) * SCALE for _ in range(4))
                box = [g["bbox"][0] + dx, g["bbox"][1] + dy, max(g["bbox"][2] + dw, SCALE),
                       max(g["bbox"][3] + dh, SCALE)]
                cat = g["category_id"]
            else:
                box = draw(boxes())
                cat = draw(st.sampled_from(cats))
            if tie_scores:
                score = draw(st.sampled_from([0.2, 0.4, 0.6, 0.8, 1.0]))
            else:
                score = draw(st.floats(0.0, 1.0, allow_nan=False))
            dets.append({"image_id": img["id"], "category_id": cat, "bbox": box, "score": score})
    return {"images": images, "categories": categories, "annotations": anns}, dets


@st.composite
def param_setters(draw):
    use_cats = draw(st.sampled_from([1, 1, 0]))
    max_dets = sorted(draw(st.sets(st.sampled_from([1, 2, 3, 5, 100]), min_size=3, max_size=4)))
    thr = draw(st.sampled_from(["default", "coarse"]))

    def setter(p):
        p.useCats = use_cats
        p.maxDets = list(max_dets)
        if thr == "coarse":
            p.iouThrs = np.array([0.25, 0.5, 0.75])
            p.recThrs = np.linspace(0, 1, 21)
    return setter


def _run(gt, dets, setter=None, mode="pycocotools"):
    ev = COCOEvaluator(gt, mode=mode)
    if setter is not None:
        setter(ev.params)
    return ev.evaluate(dets)


def _assert_same(res, ref):
    np.testing.assert_allclose(res.precision, ref.eval["precision"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(res.recall, ref.eval["recall"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(res.scores, ref.eval["scores"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(res.stats, np.asarray(ref.stats), rtol=0, atol=ATOL)


@settings(max_examples=80)
@given(coco_cases(), param_setters())
def test_matches_pycocotools(case, setter):
    gt, dets = case
    assume(dets)                                   # pycocotools cannot load an empty result list
    _assert_same(_run(gt, dets, setter), reference_eval(gt, dets, setter))


@settings(max_examples=40)
@given(coco_cases(), param_setters())
def test_fixed_mode_matches_faster_coco_eval(case, setter):
    pytest.importorskip("faster_coco_eval")
    gt, dets = case
    assume(dets)
    ref = reference_eval(gt, dets, setter, backend="faster-coco-eval")
    _assert_same(_run(gt, dets, setter, mode="fixed"), ref)


@given(coco_cases(), st.sampled_from(["pycocotools", "fixed"]))
def test_values_are_probabilities_or_minus_one(case, mode):
    gt, dets = case
    res = _run(gt, dets, mode=mode)
    for arr in (res.precision, res.recall, res.stats):
        ok = (arr == -1) | ((arr >= 0) & (arr <= 1))
        assert ok.all()
    # -1 exactly where a (category, area) has no non-ignored gt, for every T, R, M
    no_gt = (res.recall == -1)
    assert (no_gt == no_gt[:1, :, :, :1]).all()


@given(coco_cases(max_dets=0, crowd=True))
def test_perfect_detections(case):
    """Each non-crowd gt detected by its own box: AP 1 (fixed), 1 - eps at most (pycocotools)."""
    gt, _ = case
    real = [a for a in gt["annotations"] if not a["iscrowd"]]
    assume(real)
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
             "score": 1.0 - 0.01 * i} for i, a in enumerate(real)]
    fixed = _run(gt, dets, mode="fixed")
    assert fixed.stats[0] == fixed.stats[1] == fixed.stats[2] == 1.0
    assert fixed.stats[8] == 1.0                    # AR @ 100
    bug = _run(gt, dets)
    assert 1.0 - 1e-15 < bug.stats[0] <= 1.0
    assert (bug.precision[:, 0, :, 0, 2][bug.precision[:, 0, :, 0, 2] > -1] <= 1.0).all()


@given(coco_cases(tie_scores=False), st.randoms(use_true_random=False))
def test_permuting_detections_with_distinct_scores(case, random):
    gt, dets = case
    scores = [d["score"] for d in dets]
    assume(len(set(scores)) == len(scores))
    shuffled = list(dets)
    random.shuffle(shuffled)
    a, b = _run(gt, dets), _run(gt, shuffled)
    np.testing.assert_array_equal(a.precision, b.precision)
    np.testing.assert_array_equal(a.recall, b.recall)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.stats, b.stats)


@given(coco_cases(), st.integers(0, 2), st.sampled_from(["pycocotools", "fixed"]))
def test_adding_lowest_scored_false_positive_never_raises_ap(case, img_index, mode):
    """A detection scored below all others that overlaps no gt cannot raise any AP.

    (A lowest-scored detection that *is* a true positive raises recall and so AP; the property
    is about the extra false positive.)
    """
    gt, dets = case
    img = gt["images"][img_index % len(gt["images"])]["id"]
    low = min([d["score"] for d in dets], default=1.0) / 2
    extra = {"image_id": img, "category_id": 1, "bbox": [5000.0, 5000.0, 40.0, 40.0], "score": low}
    before, after = _run(gt, dets, mode=mode), _run(gt, dets + [extra], mode=mode)
    assert (after.stats[:6] <= before.stats[:6]).all()
    np.testing.assert_array_equal(after.recall, before.recall)
    assert (after.precision <= before.precision).all()


@given(coco_cases(max_dets=8))
def test_recall_monotone_in_iou_threshold(case):
    gt, dets = case
    res = _run(gt, dets)
    r = res.recall                                   # (T, K, A, M), thresholds increasing
    valid = r[0] > -1
    assert (np.diff(r, axis=0)[:, valid] <= 0).all()
