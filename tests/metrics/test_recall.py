"""Textbook average recall (Hosang et al.): golden values, a plain-loop reference (best overlaps
by double loop, the integral by fine numerical quadrature), Hypothesis invariants."""
import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision.metrics.recall as recall_module
from tinyvision.metrics import (average_recall, best_overlaps, mean_average_recall,
                                recall_iou_curve)


def loop_iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def loop_best(preds, targets, k=None, class_aware=False):
    out, labels = [], []
    for p, t in zip(preds, targets):
        dets = list(zip(p["boxes"], p["scores"], p["labels"]))
        # top-k per image (per class): python's sort is stable
        kept = []
        groups = sorted({d[2] for d in dets}) if class_aware else [None]
        for g in groups:
            ds = [d for d in dets if class_aware is False or d[2] == g]
            ds = sorted(ds, key=lambda d: -d[1])
            kept += ds if k is None else ds[:k]
        for gb, gl in zip(t["boxes"], t["labels"]):
            best = 0.0
            for db, _, dl in kept:
                if class_aware and dl != gl:
                    continue
                best = max(best, loop_iou(gb, db))
            out.append(best)
            labels.append(gl)
    return np.array(out), np.array(labels)


def quadrature_ar(best, lo=0.5, n=200_000):
    """2 * integral_{0.5}^{1} recall(o) do by the midpoint rule (error <= 1/n per gt step)."""
    o = lo + (np.arange(n) + 0.5) * (1 - lo) / n
    b = np.sort(best)
    recall = (b.size - np.searchsorted(b, o, side="left")) / b.size
    return recall.mean()


def random_images(rng, n_images, n_classes=3, max_gt=5, max_det=10):
    preds, targets = [], []
    for _ in range(n_images):
        g, d = int(rng.integers(0, max_gt + 1)), int(rng.integers(0, max_det + 1))
        gxy = rng.uniform(0, 50, (g, 2))
        gb = np.c_[gxy, gxy + rng.uniform(3, 30, (g, 2))]
        dxy = rng.uniform(0, 50, (d, 2))
        db = np.c_[dxy, dxy + rng.uniform(3, 30, (d, 2))]
        if g and d:
            near = rng.random(d) < 0.6
            db[near] = gb[rng.integers(0, g, d)][near] + rng.normal(0, 2, (d, 4))[near]
            db[:, 2:] = np.maximum(db[:, 2:], db[:, :2])
        targets.append({"boxes": gb, "labels": rng.integers(0, n_classes, g)})
        preds.append({"boxes": db, "scores": rng.random(d),
                      "labels": rng.integers(0, n_classes, d)})
    return preds, targets


# --------------------------------------------------------------------------------------
# golden
# --------------------------------------------------------------------------------------
def test_golden_average_recall():
    gt = [[[0, 0, 10, 10], [0, 0, 10, 20], [100, 100, 110, 110]]]
    det = [[[0, 0, 10, 10], [0, 0, 10, 15]]]
    # best overlaps: 1.0, 0.75 (150/200), 0 -> AR = 2/3 * (0.5 + 0.25 + 0) = 0.5
    np.testing.assert_allclose(best_overlaps(det, gt), [1.0, 0.75, 0.0], rtol=0, atol=1e-15)
    assert average_recall(det, gt) == pytest.approx(0.5, abs=1e-15)
    o, r = recall_iou_curve(det, gt, iou_thresholds=[0.0, 0.5, 0.75, 0.76, 1.0])
    np.testing.assert_allclose(r, [1.0, 2 / 3, 2 / 3, 1 / 3, 1 / 3], rtol=0, atol=1e-15)
    # with min_iou = 0: normalise by 1 -> mean of best overlaps
    assert average_recall(det, gt, min_iou=0.0) == pytest.approx(1.75 / 3, abs=1e-15)


def test_golden_top_k_uses_scores():
    gt = [[[0, 0, 10, 10]]]
    det = [{"boxes": [[0, 0, 10, 5], [0, 0, 10, 10]], "scores": [0.9, 0.1]}]
    assert average_recall(det, gt, max_detections=1) == 0.0          # IoU 0.5 -> 0
    assert average_recall(det, gt, max_detections=2) == 1.0
    # without scores: the first k in the given order
    assert average_recall([[[0, 0, 10, 10], [0, 0, 10, 5]]], gt, max_detections=1) == 1.0
    assert average_recall(det, gt, max_detections=0) == 0.0


def test_golden_mean_average_recall_and_empty():
    preds = [{"boxes": [[0, 0, 10, 10], [0, 0, 10, 10]], "labels": [0, 2]}]
    targets = [{"boxes": [[0, 0, 10, 10], [0, 0, 10, 20]], "labels": [0, 2]}]
    # class 0: overlap 1 -> AR 1; class 2: overlap 0.5 -> AR 0
    m, per = mean_average_recall(preds, targets, num_classes=3)
    assert math.isnan(per[1]) and per[0] == 1.0 and per[2] == 0.0
    assert m == 0.5
    assert math.isnan(average_recall([np.zeros((0, 4))], [np.zeros((0, 4))]))
    o, r = recall_iou_curve([np.zeros((0, 4))], [np.zeros((0, 4))])
    assert np.isnan(r).all()


def test_differs_from_coco_style_threshold_mean():
    # one gt at best overlap 0.97: textbook 0.94, the 10-threshold mean (COCO's sampling) 1.0
    gt = [[[0, 0, 100, 100]]]
    det = [[[0, 0, 100, 97]]]
    assert average_recall(det, gt) == pytest.approx(0.94, abs=1e-12)
    _, r = recall_iou_curve(det, gt, iou_thresholds=np.linspace(0.5, 0.95, 10))
    assert r.mean() == 1.0


# --------------------------------------------------------------------------------------
# plain-loop reference and the exactness of the closed form
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [None, 1, 3])
def test_matches_plain_loop(rng, k):
    for _ in range(5):
        preds, targets = random_images(rng, int(rng.integers(1, 6)))
        b_ref, _ = loop_best(preds, targets, k)
        np.testing.assert_allclose(best_overlaps(preds, targets, k), b_ref, rtol=0, atol=1e-15)
        if b_ref.size:
            ar = average_recall(preds, targets, k)
            assert ar == pytest.approx(2 * np.sum(np.maximum(0, b_ref - 0.5)) / b_ref.size,
                                       abs=1e-14)
            assert ar == pytest.approx(quadrature_ar(b_ref), abs=2e-5)
        b_ref, l_ref = loop_best(preds, targets, k, class_aware=True)
        m, per = mean_average_recall(preds, targets, k)
        for c, v in per.items():
            bc = b_ref[l_ref == c]
            assert v == pytest.approx(2 * np.sum(np.maximum(0, bc - 0.5)) / bc.size, abs=1e-14)
        if per:
            assert m == pytest.approx(np.mean(list(per.values())), abs=1e-15)


# --------------------------------------------------------------------------------------
# Hypothesis invariants
# --------------------------------------------------------------------------------------
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=25)
@given(seeds)
def test_ar_in_unit_interval_and_perfect_is_one(seed):
    rng = np.random.default_rng(seed)
    preds, targets = random_images(rng, int(rng.integers(1, 5)))
    ar = average_recall(preds, targets)
    assert math.isnan(ar) or 0.0 <= ar <= 1.0
    perfect = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
    ar = average_recall(perfect, targets)
    m, _ = mean_average_recall(perfect, targets)
    if not math.isnan(ar):
        assert ar == pytest.approx(1.0, abs=1e-12) and m == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=25)
@given(seeds)
def test_recall_curve_is_non_increasing_and_integrates_to_ar(seed):
    rng = np.random.default_rng(seed)
    preds, targets = random_images(rng, int(rng.integers(1, 5)))
    o, r = recall_iou_curve(preds, targets, iou_thresholds=np.linspace(0, 1, 2001))
    if np.isnan(r).all():
        return
    assert np.all(np.diff(r) <= 0)
    upper = o >= 0.5
    # trapezoid on the step function: within one grid cell per gt of the exact value
    approx = 2 * np.trapezoid(r[upper], o[upper])
    assert approx == pytest.approx(average_recall(preds, targets), abs=2 * 1 / 2000 + 1e-12)


@settings(max_examples=25)
@given(seeds)
def test_more_detections_never_lower_ar(seed):
    rng = np.random.default_rng(seed)
    preds, targets = random_images(rng, int(rng.integers(1, 5)))
    ars = [average_recall(preds, targets, k) for k in (0, 1, 2, 5, None)]
    if not math.isnan(ars[0]):
        assert all(a <= b + 1e-15 for a, b in zip(ars, ars[1:]))


# --------------------------------------------------------------------------------------
# bad input, docstrings
# --------------------------------------------------------------------------------------
def test_bad_input():
    with pytest.raises(ValueError, match="one entry per image"):
        average_recall([], [np.zeros((0, 4))])
    with pytest.raises(ValueError, match=r"targets\[0\]\['boxes'\] must have shape \(N, 4\)"):
        average_recall([np.zeros((0, 4))], [[0, 0, 1]])
    with pytest.raises(ValueError, match="NaN"):
        average_recall([{"boxes": [[0, 0, 1, 1]], "scores": [np.nan]}], [[[0, 0, 1, 1]]])
    with pytest.raises(ValueError, match="'labels'"):
        mean_average_recall([[[0, 0, 1, 1]]], [[[0, 0, 1, 1]]])
    with pytest.raises(ValueError, match="x2 < x1"):
        average_recall([[[2, 0, 1, 1]]], [[[0, 0, 1, 1]]])
    with pytest.raises(ValueError, match=r"scores'\] must have shape \(1,\)"):
        average_recall([{"boxes": [[0, 0, 1, 1]], "scores": [1, 2]}], [[[0, 0, 1, 1]]])


def test_docstring_examples():
    assert doctest.testmod(recall_module).failed == 0
