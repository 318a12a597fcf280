"""Segmentation metrics: golden values, a per-pixel plain-loop reference, Hypothesis invariants."""
import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.metrics.segmentation as seg
from tinyvision.metrics.segmentation import (SegmentationMetrics, dice_score, jaccard_index,
                                             mean_pixel_accuracy, pixel_accuracy,
                                             segmentation_confusion_matrix)


def loop_metrics(p, t, k, ignore=None):
    """Per-pixel loops: the confusion matrix and per-class IoU / Dice from set sizes."""
    cm = [[0] * k for _ in range(k)]
    inter = [0] * k
    size_p = [0] * k
    size_t = [0] * k
    for pv, tv_ in zip(np.ravel(p).tolist(), np.ravel(t).tolist()):
        if ignore is not None and tv_ == ignore:
            continue
        cm[tv_][pv] += 1
        size_p[pv] += 1
        size_t[tv_] += 1
        inter[pv] += pv == tv_
    iou, dice = [], []
    for c in range(k):
        union = size_p[c] + size_t[c] - inter[c]
        iou.append(inter[c] / union if union else math.nan)
        dice.append(2 * inter[c] / (size_p[c] + size_t[c]) if union else math.nan)
    return np.array(cm), np.array(iou), np.array(dice)


# --------------------------------------------------------------------------------------
# golden
# --------------------------------------------------------------------------------------
def test_golden_two_classes():
    # target: left half 1 (8 px of 16); prediction: left 3 columns -> 12 px, 8 shared
    t = np.zeros((1, 4, 4), dtype=np.int64)
    t[0, :, :2] = 1
    p = np.zeros((1, 4, 4), dtype=np.int64)
    p[0, :, :3] = 1
    np.testing.assert_array_equal(segmentation_confusion_matrix(p, t, 2), [[4, 4], [0, 8]])
    iou = jaccard_index(p, t, 2, average=None)
    dice = dice_score(p, t, 2, average=None)
    np.testing.assert_allclose(iou, [4 / 8, 8 / 12], rtol=0, atol=1e-15)
    np.testing.assert_allclose(dice, [8 / 12, 16 / 20], rtol=0, atol=1e-15)
    assert jaccard_index(p, t, 2) == pytest.approx((0.5 + 2 / 3) / 2, abs=1e-15)
    assert pixel_accuracy(p, t) == 12 / 16
    assert mean_pixel_accuracy(p, t, 2) == pytest.approx((4 / 8 + 1.0) / 2, abs=1e-15)
    # micro: TP 12, FP 4, FN 4
    assert jaccard_index(p, t, 2, average="micro") == pytest.approx(12 / 20, abs=1e-15)
    assert dice_score(p, t, 2, average="micro") == pytest.approx(24 / 32, abs=1e-15)
    # weighted by target pixels 8 and 8
    assert jaccard_index(p, t, 2, average="weighted") == pytest.approx((0.5 + 2 / 3) / 2)


def test_empty_class_conventions():
    t = np.array([[0, 0, 1]])
    p = np.array([[0, 1, 1]])
    # class 2 is absent from both
    iou = jaccard_index(p, t, 3, average=None)
    assert math.isnan(iou[2])
    assert jaccard_index(p, t, 3) == pytest.approx((0.5 + 0.5) / 2)
    assert jaccard_index(p, t, 3, empty_class_score=1.0) == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert jaccard_index(p, t, 3, empty_class_score=0.0) == pytest.approx(1 / 3)
    assert dice_score(p, t, 3, average=None, empty_class_score=1.0)[2] == 1.0
    # a class present only in the prediction is a real 0, not empty
    assert jaccard_index(np.array([[2]]), np.array([[0]]), 3, average=None).tolist()[2] == 0.0
    # everything ignored -> all empty -> NaN
    assert math.isnan(jaccard_index(p, np.full_like(t, 255), 3, ignore_index=255))
    assert math.isnan(pixel_accuracy(p, np.full_like(t, 255), ignore_index=255))


def test_ignore_index_and_scores():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 4, (2, 5, 6))
    t[rng.random(t.shape) < 0.2] = 255
    scores = rng.normal(size=(2, 4, 5, 6))
    labels = scores.argmax(axis=1)
    cm = segmentation_confusion_matrix(scores, t, 4, ignore_index=255)
    np.testing.assert_array_equal(cm, segmentation_confusion_matrix(labels, t, 4, 255))
    np.testing.assert_array_equal(cm, loop_metrics(labels, t, 4, 255)[0])
    assert cm.sum() == np.count_nonzero(t != 255)
    # tinyvision Tensors and lists are accepted
    cm_t = segmentation_confusion_matrix(tv.tensor(scores), tv.tensor(t.astype(np.float64)), 4,
                                         ignore_index=255)
    np.testing.assert_array_equal(cm, cm_t)
    np.testing.assert_array_equal(cm, segmentation_confusion_matrix(labels.tolist(), t.tolist(),
                                                                    4, 255))


def test_argmax_ties_go_to_lowest_class():
    scores = np.zeros((1, 3, 1, 2))
    scores[0, 1:, 0, 1] = 1.0                       # classes 1 and 2 tie at pixel 1
    cm = segmentation_confusion_matrix(scores, np.array([[[0, 1]]]), 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("k", [1, 2, 5])
def test_matches_plain_loop(rng, k):
    for _ in range(4):
        shape = tuple(int(s) for s in rng.integers(1, 7, 3))
        t = rng.integers(0, k, shape)
        p = np.where(rng.random(shape) < 0.6, t, rng.integers(0, k, shape))
        ignore = -1 if rng.random() < 0.5 else None
        if ignore is not None:
            t[rng.random(shape) < 0.25] = ignore
        cm, iou, dice = loop_metrics(p, t, k, ignore)
        np.testing.assert_array_equal(segmentation_confusion_matrix(p, t, k, ignore), cm)
        np.testing.assert_allclose(jaccard_index(p, t, k, ignore, average=None), iou,
                                   rtol=0, atol=1e-15)
        np.testing.assert_allclose(dice_score(p, t, k, ignore, average=None), dice,
                                   rtol=0, atol=1e-15)


def test_accumulator_equals_one_shot(rng):
    t = rng.integers(0, 3, (4, 6, 6))
    p = rng.integers(0, 3, (4, 6, 6))
    m = SegmentationMetrics(3)
    m.update(p[:1], t[:1])
    m.update(p[1:], t[1:])
    out = m.compute()
    np.testing.assert_array_equal(out["confusion_matrix"], segmentation_confusion_matrix(p, t, 3))
    assert out["mean_iou"] == jaccard_index(p, t, 3)
    assert out["mean_dice"] == dice_score(p, t, 3)
    assert out["pixel_accuracy"] == pixel_accuracy(p, t)
    assert out["mean_pixel_accuracy"] == mean_pixel_accuracy(p, t, 3)
    m.reset()
    assert m.confusion_matrix.sum() == 0


# --------------------------------------------------------------------------------------
# Hypothesis invariants
# --------------------------------------------------------------------------------------
@st.composite
def label_maps(draw):
    k = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    t = rng.integers(0, k, shape)
    p = np.where(rng.random(shape) < draw(st.floats(0, 1)), t, rng.integers(0, k, shape))
    if draw(st.booleans()):
        t[rng.random(shape) < 0.3] = 255
        return p, t, k, 255
    return p, t, k, None


@given(label_maps())
def test_dice_iou_relation_and_ranges(case):
    p, t, k, ignore = case
    j = jaccard_index(p, t, k, ignore, average=None)
    d = dice_score(p, t, k, ignore, average=None)
    np.testing.assert_array_equal(np.isnan(j), np.isnan(d))
    ok = ~np.isnan(j)
    np.testing.assert_allclose(d[ok], 2 * j[ok] / (1 + j[ok]), rtol=1e-14, atol=1e-15)
    assert np.all((j[ok] >= 0) & (j[ok] <= d[ok] + 1e-15) & (d[ok] <= 1))


@given(label_maps())
def test_confusion_matrix_counts_and_micro_scores(case):
    p, t, k, ignore = case
    cm = segmentation_confusion_matrix(p, t, k, ignore)
    kept = np.count_nonzero(t != 255) if ignore is not None else t.size
    assert cm.sum() == kept
    np.testing.assert_array_equal(cm.sum(axis=1),
                                  np.bincount(t[t != 255].ravel() if ignore else t.ravel(),
                                              minlength=k))
    if kept:
        acc = pixel_accuracy(p, t, ignore)
        assert acc == np.trace(cm) / kept
        # single-label pixels: micro Dice (pooled F1) equals pixel accuracy
        assert dice_score(p, t, k, ignore, average="micro") == pytest.approx(acc, abs=1e-14)


@given(label_maps())
def test_perfect_prediction(case):
    _, t, k, ignore = case
    p = np.where(t == 255, 0, t)
    j = jaccard_index(p, t, k, ignore, average=None)
    assert np.all(np.isnan(j) | (j == 1.0))
    if (t != 255).any():
        assert jaccard_index(p, t, k, ignore) == 1.0 and dice_score(p, t, k, ignore) == 1.0


# --------------------------------------------------------------------------------------
# bad input, docstrings
# --------------------------------------------------------------------------------------
def test_bad_input():
    t = np.zeros((2, 3, 3), dtype=np.int64)
    with pytest.raises(ValueError, match=r"got preds of shape \(2, 3, 4\)"):
        jaccard_index(np.zeros((2, 3, 4), dtype=int), t, 2)
    with pytest.raises(ValueError, match="targets has labels outside"):
        jaccard_index(t, t + 2, 2)
    with pytest.raises(ValueError, match="ignore_index"):
        jaccard_index(t, t + 255, 2)
    with pytest.raises(ValueError, match="preds has labels outside"):
        jaccard_index(t - 1, t, 2)
    with pytest.raises(ValueError, match="C = 3 != num_classes = 2"):
        jaccard_index(np.zeros((2, 3, 3, 3)), t, 2)
    with pytest.raises(ValueError, match="threshold"):
        jaccard_index(np.zeros((2, 1, 3, 3)), t, 2)
    with pytest.raises(ValueError, match="NaN"):
        jaccard_index(np.full((2, 2, 3, 3), np.nan), t, 2)
    with pytest.raises(ValueError, match="non-integer"):
        jaccard_index(np.full((2, 3, 3), 0.5), t, 2)
    with pytest.raises(ValueError, match="average"):
        jaccard_index(t, t, 2, average="samples")
    with pytest.raises(ValueError, match="num_classes"):
        jaccard_index(t, t, 0)


def test_docstring_examples():
    assert doctest.testmod(seg).failed == 0


@pytest.mark.gpu
def test_cupy_matches_numpy(rng):
    if not tv.cupy_available():
        pytest.skip("CuPy with a CUDA device is not available")
    import cupy as cp

    t = rng.integers(0, 4, (2, 16, 16))
    t[0, 0, :5] = 255
    s = rng.normal(size=(2, 4, 16, 16))
    ref = segmentation_confusion_matrix(s, t, 4, 255)
    np.testing.assert_array_equal(segmentation_confusion_matrix(cp.asarray(s), cp.asarray(t),
                                                                4, 255), ref)
