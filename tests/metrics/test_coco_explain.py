"""COCOEvalResult.explain / pr_curve: the plain-loop re-derivation of pycocotools' matching.
Each detection's match equals pycocotools' evaluateImg (dtMatches, dtIgnore); the curve's
101 samples equal COCOEvalResult.precision, on synthetic sets with crowds, ties, empty images."""
import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tinyvision.metrics import COCOEvaluator
from tinyvision.metrics._coco_synth import synthetic_coco
from tinyvision.metrics.coco_explain import Explanation, PRCurve, Verdict


def _pycoco(gt, results):
    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO()
        c.dataset = copy.deepcopy(gt)
        c.createIndex()
        E = COCOeval(c, c.loadRes(copy.deepcopy(results)), "bbox")
        E.evaluate()
    return E


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_explain_matches_pycocotools_evaluate_img(seed):
    gt, results = synthetic_coco(n_images=8, n_categories=3, seed=seed, score_levels=4)
    res = COCOEvaluator(gt).evaluate(results)
    E = _pycoco(gt, results)
    a_all = E.params.areaRng[0]
    checked = 0
    for img in E.params.imgIds:
        for cat in E.params.catIds:
            ev = E.evaluateImg(img, cat, a_all, 100)
            for ti, t in enumerate(E.params.iouThrs[[0, 5]]):
                exp = res.explain(img, cat, iou_threshold=t)
                if ev is None:
                    assert len(exp) == 0
                    continue
                assert [r.det_id for r in exp] == list(ev["dtIds"])
                t_row = 0 if ti == 0 else 5
                for r, m, ig in zip(exp, ev["dtMatches"][t_row], ev["dtIgnore"][t_row]):
                    assert (r.gt_id or 0) == m, (img, cat, t, r)
                    assert (r.verdict == "ignored") == bool(ig)
                    assert (r.verdict == "TP") == (m > 0 and not ig)
                    checked += 1
    assert checked > 20


@pytest.mark.parametrize("mode", ["pycocotools", "fixed"])
def test_pr_curve_samples_are_the_precision_array(mode):
    gt, results = synthetic_coco(n_images=10, n_categories=3, seed=4)
    res = COCOEvaluator(gt, mode=mode).evaluate(results)
    for k, cat in enumerate(res.params.catIds):
        for t_index in (0, 5, 9):
            t = res.params.iouThrs[t_index]
            curve = res.pr_curve(cat, iou_threshold=t)
            np.testing.assert_array_equal(curve.samples, res.precision[t_index, :, k, 0, -1])
            assert np.all(np.diff(curve.envelope) <= 0)
            if curve.ap >= 0:
                assert curve.ap == pytest.approx(res.precision[t_index, :, k, 0, -1].mean(), abs=0)


def test_explain_reasons_read_as_the_rule():
    gt = {"images": [{"id": 1}], "categories": [{"id": 1}],
          "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
                          {"id": 8, "image_id": 1, "category_id": 1, "bbox": [50, 50, 40, 40], "area": 1600, "iscrowd": 1}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 9], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [1, 0, 10, 10], "score": 0.8},
            {"image_id": 1, "category_id": 1, "bbox": [60, 60, 10, 10], "score": 0.7},
            {"image_id": 1, "category_id": 1, "bbox": [20, 0, 5, 5], "score": 0.6}]
    exp = COCOEvaluator(gt).evaluate(dets).explain(1, 1)
    assert isinstance(exp, Explanation) and all(isinstance(r, Verdict) for r in exp)
    assert isinstance(COCOEvaluator(gt).evaluate(dets).pr_curve(1), PRCurve)
    assert [r.verdict for r in exp] == ["TP", "FP", "ignored", "FP"]
    assert "already taken by detection 1" in exp[1].reason
    assert "crowd region" in exp[2].reason and exp[2].gt_id == 8
    assert "below 0.5" in exp[3].reason and exp[3].gt_id is None
    assert "2 gt (1 ignored), 4 detections" in str(exp)
    with pytest.raises(ValueError, match="image_id 3"):
        COCOEvaluator(gt).evaluate(dets).explain(3, 1)
