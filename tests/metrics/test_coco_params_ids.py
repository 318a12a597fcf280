"""Non-integral params.imgIds / catIds name nothing (pycocotools compares ids by value), and the
AR stats are named after the maxDets values actually used. Live against pycocotools."""
import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tinyvision.metrics import COCOEvaluator

GT = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1}, {"id": 2}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
                      {"id": 2, "image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 0}]}
DT = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 9], "score": 0.9},
      {"image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 18], "score": 0.8},
      {"image_id": 2, "category_id": 1, "bbox": [5, 5, 20, 18], "score": 0.3}]


def _pycocotools(img_ids=None, cat_ids=None, max_dets=None):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(GT)
        gt.createIndex()
        E = COCOeval(gt, gt.loadRes(copy.deepcopy(DT)), "bbox")
        if img_ids is not None:
            E.params.imgIds = img_ids
        if cat_ids is not None:
            E.params.catIds = cat_ids
        if max_dets is not None:
            E.params.maxDets = max_dets
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E


@pytest.mark.parametrize("img_ids, cat_ids", [([1.5], None), ([1, 1.5], None), ([1.0, 2.0], None),
                                              (None, [1.7]), (None, [1, 1.7, 2]), ([2, 1.5], [2.0, 0.5])])
def test_non_integral_ids_match_pycocotools(img_ids, cat_ids):
    ev = COCOEvaluator(GT)
    if img_ids is not None:
        ev.params.imgIds = img_ids
    if cat_ids is not None:
        ev.params.catIds = cat_ids
    ours = ev.evaluate(DT)
    ref = _pycocotools(img_ids, cat_ids)
    np.testing.assert_array_equal(ours.stats, ref.stats)
    np.testing.assert_array_equal(ours.precision, ref.eval["precision"])
    np.testing.assert_array_equal(ours.recall, ref.eval["recall"])


def test_ar_names_follow_max_dets():
    ev = COCOEvaluator(GT)
    ev.params.maxDets = [1, 10, 1000]
    d = ev.evaluate(DT).stats_dict()
    assert list(d)[6:9] == ["AR1", "AR10", "AR1000"]
    ref = _pycocotools(max_dets=[1, 10, 1000])
    assert d["AR1000"] == ref.stats[8]
    ev.params.maxDets = [1, 10, 100]
    assert list(ev.evaluate(DT).stats_dict())[6:9] == ["AR1", "AR10", "AR100"]
