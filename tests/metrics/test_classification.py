"""Classification metrics: golden hand-computed values, plain-loop references (counting one
sample at a time), Hypothesis invariants. scikit-learn is not needed: its semantics are encoded
in the goldens and the loops (the implementation was also cross-checked against scikit-learn
1.9 bit for bit while writing it)."""
import doctest
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.metrics.classification as cls_module
from tinyvision.metrics import (UndefinedMetricWarning, accuracy_score, average_precision_score,
                                confusion_matrix, f1_score, fbeta_score, multilabel_counts,
                                precision_recall_curve, precision_recall_fscore_support,
                                precision_score, recall_score, specificity_score)


# --------------------------------------------------------------------------------------
# plain-loop references
# --------------------------------------------------------------------------------------
def loop_counts(y_true, y_pred, labels):
    tp = {c: 0 for c in labels}
    fp = {c: 0 for c in labels}
    fn = {c: 0 for c in labels}
    tn = {c: 0 for c in labels}
    for t, p in zip(y_true, y_pred):
        for c in labels:
            if t == c and p == c:
                tp[c] += 1
            elif p == c:
                fp[c] += 1
            elif t == c:
                fn[c] += 1
            else:
                tn[c] += 1
    return tp, fp, fn, tn


def ratio(a, b, zd):
    return a / b if b else zd


def loop_prf(y_true, y_pred, labels, average, zd=0.0, beta=1.0):
    tp, fp, fn, _ = loop_counts(y_true, y_pred, labels)
    if average == "micro":
        TP, FP, FN = sum(tp.values()), sum(fp.values()), sum(fn.values())
        b2 = beta * beta
        return (ratio(TP, TP + FP, zd), ratio(TP, TP + FN, zd),
                ratio((1 + b2) * TP, (1 + b2) * TP + b2 * FN + FP, zd))
    p = [ratio(tp[c], tp[c] + fp[c], zd) for c in labels]
    r = [ratio(tp[c], tp[c] + fn[c], zd) for c in labels]
    b2 = beta * beta
    f = [ratio((1 + b2) * tp[c], (1 + b2) * tp[c] + b2 * fn[c] + fp[c], zd) for c in labels]
    if average is None:
        return p, r, f
    support = [tp[c] + fn[c] for c in labels]

    def avg(v):
        pairs = [(x, w) for x, w in zip(v, support) if not math.isnan(x)]
        if not pairs:
            return math.nan
        if average == "weighted" and sum(w for _, w in pairs) > 0:
            return sum(x * w for x, w in pairs) / sum(w for _, w in pairs)
        return sum(x for x, _ in pairs) / len(pairs)

    return avg(p), avg(r), avg(f)


def loop_pr_curve(y_true, y_score):
    """For each distinct threshold (increasing): predict positive when score >= threshold."""
    P = sum(y_true)
    ps, rs = [], []
    thresholds = sorted(set(y_score))
    for th in thresholds:
        tp = sum(1 for t, s in zip(y_true, y_score) if s >= th and t == 1)
        fp = sum(1 for t, s in zip(y_true, y_score) if s >= th and t != 1)
        ps.append(tp / (tp + fp))
        rs.append(tp / P)
    return ps + [1.0], rs + [0.0], thresholds


# --------------------------------------------------------------------------------------
# golden values
# --------------------------------------------------------------------------------------
Y_TRUE = [0, 1, 2, 2, 1, 0, 2, 1]
Y_PRED = [0, 2, 2, 2, 1, 1, 0, 1]
# per class: tp (1, 2, 2); predicted (2, 3, 3); true (2, 3, 3)


def test_golden_confusion_matrix():
    cm = confusion_matrix(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 1], [1, 0, 2]])
    assert cm.dtype == np.int64
    # labels reorder rows and columns; a label not listed drops its samples
    np.testing.assert_array_equal(confusion_matrix(Y_TRUE, Y_PRED, labels=[2, 0]),
                                  [[2, 1], [0, 1]])
    np.testing.assert_array_equal(confusion_matrix(Y_TRUE, Y_PRED, num_classes=4)[3], [0] * 4)
    np.testing.assert_allclose(confusion_matrix(Y_TRUE, Y_PRED, normalize="true")[1],
                               [0, 2 / 3, 1 / 3])
    np.testing.assert_allclose(confusion_matrix(Y_TRUE, Y_PRED, normalize="all").sum(), 1.0)
    np.testing.assert_allclose(
        confusion_matrix(Y_TRUE, Y_PRED, sample_weight=[2, 1, 1, 1, 1, 1, 1, 1])[0], [2, 1, 0])
    # string labels work too
    np.testing.assert_array_equal(confusion_matrix(["cat", "dog"], ["dog", "dog"]),
                                  [[0, 1], [0, 1]])


def test_golden_precision_recall_f1():
    p, r, f, s = precision_recall_fscore_support(Y_TRUE, Y_PRED)
    np.testing.assert_allclose(p, [1 / 2, 2 / 3, 2 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(r, [1 / 2, 2 / 3, 2 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(f, [1 / 2, 2 / 3, 2 / 3], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(s, [2, 3, 3])
    assert precision_score(Y_TRUE, Y_PRED, average="macro") == pytest.approx(11 / 18, abs=1e-15)
    assert precision_score(Y_TRUE, Y_PRED, average="weighted") == pytest.approx(
        (2 * 0.5 + 3 * 2 / 3 + 3 * 2 / 3) / 8, abs=1e-15)
    assert precision_score(Y_TRUE, Y_PRED, average="micro") == 5 / 8
    assert accuracy_score(Y_TRUE, Y_PRED) == 5 / 8
    assert accuracy_score(Y_TRUE, Y_PRED, normalize=False) == 5
    # binary: tp 2, fp 1, fn 1, tn 1
    yt, yp = [1, 1, 1, 0, 0], [1, 1, 0, 1, 0]
    assert precision_score(yt, yp) == 2 / 3
    assert recall_score(yt, yp) == 2 / 3
    assert f1_score(yt, yp) == pytest.approx(2 / 3, abs=1e-15)
    assert specificity_score(yt, yp) == 0.5
    assert precision_score(yt, yp, pos_label=0) == 0.5
    # F2 = 5 tp / (5 tp + 4 fn + fp) with tp 2, fn 1, fp 1: 10 / 15
    assert fbeta_score(yt, yp, beta=2) == pytest.approx(10 / 15, abs=1e-15)
    assert fbeta_score(yt, yp, beta=0) == precision_score(yt, yp)
    assert fbeta_score(yt, yp, beta=np.inf) == recall_score(yt, yp)


def test_zero_division_rules():
    yt, yp = [0, 0, 1], [0, 0, 0]          # class 1 is never predicted: precision 0/0
    with pytest.warns(UndefinedMetricWarning):
        assert precision_score(yt, yp) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert precision_score(yt, yp, zero_division=0) == 0.0
        assert precision_score(yt, yp, zero_division=1) == 1.0
        assert math.isnan(precision_score(yt, yp, zero_division=np.nan))
        # F stays defined (= 0) when only precision is undefined
        assert f1_score(yt, yp, zero_division=1) == 0.0
        # macro leaves NaN classes out
        p = precision_score([0, 1, 2], [0, 0, 0], average=None, zero_division=np.nan)
        assert p[0] == 1 / 3 and np.isnan(p[1:]).all()
        assert precision_score([0, 1, 2], [0, 0, 0], average="macro",
                               zero_division=np.nan) == 1 / 3
        # class absent from both y_true and y_pred: F is 0/0
        f = f1_score([0, 0], [0, 0], labels=[0, 1], average=None, zero_division=1)
        np.testing.assert_array_equal(f, [1.0, 1.0])
    with pytest.raises(ValueError, match="zero_division"):
        precision_score(yt, yp, zero_division=0.5)


def test_specificity_golden():
    # per class one-vs-rest TN / (TN + FP): class 0: fp 1, tn 5 -> 5/6; class 1: fp 1, tn 4;
    # class 2: fp 1, tn 4
    s = specificity_score(Y_TRUE, Y_PRED, average=None)
    np.testing.assert_allclose(s, [5 / 6, 4 / 5, 4 / 5], rtol=0, atol=1e-15)
    assert specificity_score(Y_TRUE, Y_PRED, average="micro") == pytest.approx(13 / 16)
    tp, fp, fn, tn, labels = multilabel_counts(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(tn, [5, 4, 4])
    np.testing.assert_array_equal(tp + fp + fn + tn, [8, 8, 8])


def test_precision_recall_curve_golden():
    p, r, t = precision_recall_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(p, [0.5, 2 / 3, 0.5, 1.0, 1.0], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(r, [1.0, 1.0, 0.5, 0.5, 0.0])
    np.testing.assert_array_equal(t, [0.1, 0.35, 0.4, 0.8])
    # tied scores form one threshold
    p, r, t = precision_recall_curve([1, 0, 1], [0.5, 0.5, 0.2])
    np.testing.assert_array_equal(t, [0.2, 0.5])
    np.testing.assert_allclose(p, [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(r, [1.0, 0.5, 0.0])
    # sklearn's step AP: sum over recall steps of precision at the step
    assert average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(
        0.5 * 1.0 + 0.5 * 2 / 3, abs=1e-15)
    # non-{0,1} labels need pos_label
    p2, r2, _ = precision_recall_curve(["a", "b", "b"], [0.1, 0.9, 0.4], pos_label="b")
    np.testing.assert_array_equal(r2, [1.0, 1.0, 0.5, 0.0])


def test_drop_intermediate():
    yt = [1, 1, 0, 0, 1, 1]
    ys = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    p, r, t = precision_recall_curve(yt, ys, drop_intermediate=True)
    # descending scores: tps = 1, 2, 2, 2, 3, 4. A threshold is dropped when tps is constant on
    # both sides of it: only 0.7 (tps 2 -> 2 -> 2); the first and last are always kept
    np.testing.assert_array_equal(t, [0.4, 0.5, 0.6, 0.8, 0.9])
    assert len(p) == len(r) == len(t) + 1


# --------------------------------------------------------------------------------------
# plain-loop agreement
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("average", [None, "macro", "micro", "weighted"])
@pytest.mark.parametrize("zd", [0.0, 1.0, np.nan], ids=["zd0", "zd1", "zdnan"])
def test_prf_matches_plain_loop(rng, average, zd):
    for _ in range(30):
        n, k = int(rng.integers(1, 15)), int(rng.integers(1, 5))
        yt, yp = rng.integers(0, k, n).tolist(), rng.integers(0, k, n).tolist()
        labels = sorted(set(yt) | set(yp)) if rng.random() < 0.5 else list(range(k + 1))
        beta = float(rng.choice([0.5, 1.0, 2.0]))
        got = precision_recall_fscore_support(yt, yp, labels=labels, average=average,
                                              zero_division=zd, beta=beta)[:3]
        ref = loop_prf(yt, yp, labels, average, zd, beta)
        for g, e in zip(got, ref):
            np.testing.assert_allclose(np.asarray(g, float), np.asarray(e, float), rtol=1e-14,
                                       atol=1e-15, equal_nan=True)


def test_pr_curve_matches_plain_loop(rng):
    for _ in range(40):
        n = int(rng.integers(1, 20))
        yt = rng.integers(0, 2, n)
        if yt.sum() == 0:
            yt[0] = 1
        ys = rng.integers(0, 6, n) / 5 if rng.random() < 0.5 else rng.random(n)
        p, r, t = precision_recall_curve(yt, ys)
        pe, re, te = loop_pr_curve(yt.tolist(), ys.tolist())
        np.testing.assert_array_equal(t, te)
        np.testing.assert_allclose(p, pe, rtol=0, atol=1e-15)
        np.testing.assert_allclose(r, re, rtol=0, atol=1e-15)
        ap = sum((re[i] - re[i + 1]) * pe[i] for i in range(len(te)))
        assert average_precision_score(yt, ys) == pytest.approx(ap, abs=1e-14)


# --------------------------------------------------------------------------------------
# Hypothesis invariants
# --------------------------------------------------------------------------------------
@st.composite
def label_pairs(draw, max_k=5):
    k = draw(st.integers(1, max_k))
    n = draw(st.integers(1, 30))
    yt = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    yp = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    return yt, yp, k


@given(label_pairs())
def test_f1_is_harmonic_mean(case):
    yt, yp, k = case
    p, r, f, _ = precision_recall_fscore_support(yt, yp, num_classes=k, zero_division=np.nan)
    for pc, rc, fc in zip(p, r, f):
        if not (np.isnan(pc) or np.isnan(rc)) and pc + rc > 0:
            assert fc == pytest.approx(2 * pc * rc / (pc + rc), rel=1e-12)
        elif not (np.isnan(pc) or np.isnan(rc)):
            assert fc == 0.0


@given(label_pairs())
def test_confusion_matrix_sums(case):
    yt, yp, k = case
    cm = confusion_matrix(yt, yp, num_classes=k)
    assert cm.sum() == len(yt)
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(yt, minlength=k))
    np.testing.assert_array_equal(cm.sum(axis=0), np.bincount(yp, minlength=k))
    assert np.trace(cm) == accuracy_score(yt, yp, normalize=False)


@given(label_pairs())
def test_micro_scores_equal_accuracy(case):
    yt, yp, k = case
    acc = accuracy_score(yt, yp)
    for fn in (precision_score, recall_score, f1_score):
        assert fn(yt, yp, num_classes=k, average="micro") == pytest.approx(acc, abs=1e-15)


@given(label_pairs(max_k=2), st.lists(st.floats(0, 1), min_size=30, max_size=30))
def test_pr_curve_and_ap_ranges(case, scores):
    yt, _, _ = case
    ys = scores[:len(yt)]
    if 1 not in yt:
        return
    p, r, t = precision_recall_curve(yt, ys)
    assert np.all(np.diff(t) > 0)
    assert np.all(np.diff(r) <= 0) and r[-1] == 0 and p[-1] == 1
    assert np.all((p >= 0) & (p <= 1))
    assert 0 <= average_precision_score(yt, ys) <= 1


# --------------------------------------------------------------------------------------
# inputs and errors
# --------------------------------------------------------------------------------------
def test_tensor_and_array_inputs():
    a = confusion_matrix(tv.tensor(np.array(Y_TRUE, dtype=np.float64)), np.array(Y_PRED))
    np.testing.assert_array_equal(a, confusion_matrix(Y_TRUE, Y_PRED))


def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"same length, got shapes \(3,\) and \(2,\)"):
        confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=r"y_pred has labels outside \[0, 2\)"):
        confusion_matrix([0, 1], [0, 2], num_classes=2)
    with pytest.raises(ValueError, match="y_true contains NaN"):
        precision_score([0, np.nan], [0, 1])
    with pytest.raises(ValueError, match="non-integer"):
        confusion_matrix([0.5, 1], [0, 1])
    with pytest.raises(ValueError, match="y_score contains NaN"):
        precision_recall_curve([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match=r"must be 1-D.*\(2, 2\)"):
        confusion_matrix([[0, 1], [1, 0]], [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="average='binary'"):
        precision_score([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="average must be"):
        precision_score([0, 1], [0, 1], average="samples")
    with pytest.raises(ValueError, match="pos_label"):
        precision_recall_curve([2, 3], [0.1, 0.2])
    with pytest.raises(ValueError, match="labels or num_classes"):
        confusion_matrix([0], [0], labels=[0], num_classes=1)


def test_docstring_examples():
    assert doctest.testmod(cls_module).failed == 0


def test_docs_metrics_md_runs():
    """docs/metrics.md's Python blocks run as written (their asserts are the checks)."""
    import pathlib
    import re

    pytest.importorskip("matplotlib")
    root = pathlib.Path(__file__).resolve().parents[2]
    text = (root / "docs" / "metrics.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    for block in blocks:
        exec(compile(block, "docs/metrics.md", "exec"), {})


def test_matches_scikit_learn_when_installed(rng):
    """scikit-learn is not a test dependency; where it is installed, compare bit for bit."""
    skm = pytest.importorskip("sklearn.metrics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(60):
            n, k = int(rng.integers(1, 12)), int(rng.integers(1, 5))
            yt, yp = rng.integers(0, k, n), rng.integers(0, k, n)
            np.testing.assert_array_equal(confusion_matrix(yt, yp), skm.confusion_matrix(yt, yp))
            for average in (None, "macro", "micro", "weighted"):
                for zd in ("warn", 0, 1, np.nan):
                    got = precision_recall_fscore_support(yt, yp, average=average,
                                                          zero_division=zd, beta=2.0)[:3]
                    ref = skm.precision_recall_fscore_support(yt, yp, average=average,
                                                              zero_division=zd, beta=2.0)[:3]
                    for g, e in zip(got, ref):
                        np.testing.assert_array_equal(np.asarray(g, float), np.asarray(e, float))
            yb = rng.integers(0, 2, n)
            ys = rng.integers(0, 4, n) / 4
            for a, b in zip(precision_recall_curve(yb, ys, drop_intermediate=True),
                            skm.precision_recall_curve(yb, ys, drop_intermediate=True)):
                np.testing.assert_array_equal(a, b)
            if yb.any():
                assert average_precision_score(yb, ys) == skm.average_precision_score(yb, ys)
