"""Losses of issue 2: gradcheck properties, PyTorch cross-checks, golden values, bad input.

Same table-driven design as test_core_ops.py (see tinyvision/testing/opcases.py): one
OpCase per loss (and per target kind), drawn over layouts ((C,), (N, C), (N, C, d1, d2)), reductions,
class weights, ignore_index, label smoothing, beta/delta and pos_weight.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tinyvision.testing.opcases import OpCase, table_tests

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.testing import strategies as tvst

REDUCTIONS = st.sampled_from(["none", "mean", "sum"])


# ---- strategies ----------------------------------------------------------------------------
@st.composite
def class_layout(draw):
    """(input shape, class-index target shape, class axis) for (C,), (N, C) and (N, C, d1, d2)."""
    C = draw(st.integers(1, 4))
    layout = draw(st.sampled_from(["unbatched", "batched", "spatial"]))
    if layout == "unbatched":
        return (C,), (), 0
    N = draw(st.integers(1, 3))
    if layout == "batched":
        return (N, C), (N,), 1
    d1, d2 = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    return (N, C, d1, d2), (N, d1, d2), 1


@st.composite
def class_index_args(draw, smoothing=True):
    """Logits or log-probabilities, class indices (some set to ignore_index) and options."""
    xshape, tshape, class_axis = draw(class_layout())
    C = xshape[class_axis]
    x = draw(tvst.arrays(xshape, min_value=-4.0, max_value=4.0))
    t = draw(hnp.arrays(np.int64, tshape, elements=st.integers(0, C - 1)))
    reduction = draw(REDUCTIONS)
    ignore_index = draw(st.sampled_from([-100, 0, 2]))  # 0: a real class can be the ignored one
    drop = draw(hnp.arrays(np.bool_, tshape))
    t = np.where(drop, ignore_index, t).astype(np.int64)
    if reduction == "mean" and np.all(t == ignore_index):
        t = np.asarray(np.where(t == ignore_index, (ignore_index + 1) % C if ignore_index >= 0 else 0, t))
        if np.all(t == ignore_index):  # C == 1 and class 0 is the ignored one
            ignore_index = -100
    kw = {"reduction": reduction, "ignore_index": ignore_index}
    if draw(st.booleans()):
        kw["weight"] = draw(tvst.arrays((C,), min_value=0.2, max_value=2.0))
    if smoothing:
        kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.45]))
    return (x, t), kw


@st.composite
def probability_target_args(draw):
    """Class-probability targets (rows sum to 1) of the input's shape; they get gradients too."""
    xshape, _, class_axis = draw(class_layout())
    x = draw(tvst.arrays(xshape, min_value=-4.0, max_value=4.0))
    z = draw(tvst.arrays(xshape))
    t = np.exp(z) / np.exp(z).sum(axis=class_axis, keepdims=True)
    kw = {"reduction": draw(REDUCTIONS), "label_smoothing": draw(st.sampled_from([0.0, 0.2]))}
    if draw(st.booleans()):
        kw["weight"] = draw(tvst.arrays((xshape[class_axis],), min_value=0.2, max_value=2.0))
    return (x, t), kw


@st.composite
def regression_args(draw, kinks_of=lambda kw: (0.0,), **option_strategies):
    """input = target + d with d kept away from the loss's kinks (which may depend on the options)."""
    shape = draw(tvst.shapes(min_dims=0, max_dims=3, max_side=4))
    kw = {"reduction": draw(REDUCTIONS)}
    kw.update({k: draw(s) for k, s in option_strategies.items()})
    target = draw(tvst.arrays(shape))
    d = draw(tvst.arrays(shape, kinks=kinks_of(kw), margin=0.05))
    return (np.asarray(target + d), target), kw


@st.composite
def bce_args(draw, logits=False):
    shape = draw(tvst.shapes(min_dims=0, max_dims=3, max_side=4))
    x = draw(tvst.arrays(shape, min_value=-4.0, max_value=4.0) if logits else tvst.arrays(shape, min_value=0.05, max_value=0.95))
    t = draw(tvst.arrays(shape, min_value=0.0, max_value=1.0))
    kw = {"reduction": draw(REDUCTIONS)}
    if draw(st.booleans()):  # weight: the input's shape or a suffix of it (broadcast)
        kw["weight"] = draw(tvst.arrays(shape[draw(st.integers(0, len(shape))):], min_value=0.2, max_value=2.0))
    if logits and len(shape) and draw(st.booleans()):  # pos_weight: one per class (last axis)
        kw["pos_weight"] = draw(tvst.arrays(shape[-1:], min_value=0.2, max_value=3.0))
    return (x, t), kw


CASES = [
    OpCase("cross_entropy-class-indices", F.cross_entropy, TF.cross_entropy, class_index_args()),
    OpCase("cross_entropy-probabilities", F.cross_entropy, TF.cross_entropy, probability_target_args()),
    OpCase("nll_loss", F.nll_loss, TF.nll_loss, class_index_args(smoothing=False)),
    OpCase(
        "nll_loss-of-log_softmax",
        lambda x, t, **kw: F.nll_loss(F.log_softmax(x, 0 if x.ndim == 1 else 1), t, **kw),
        lambda x, t, **kw: TF.nll_loss(torch.log_softmax(x, 0 if x.ndim == 1 else 1), t, **kw),
        class_index_args(smoothing=False),
    ),
    OpCase("mse_loss", F.mse_loss, TF.mse_loss, regression_args(kinks_of=lambda kw: ())),
    OpCase("l1_loss", F.l1_loss, TF.l1_loss, regression_args()),
    OpCase(
        "smooth_l1_loss",
        F.smooth_l1_loss,
        TF.smooth_l1_loss,
        regression_args(kinks_of=lambda kw: (-kw["beta"], kw["beta"]), beta=st.sampled_from([0.0, 0.11, 1.0, 2.0])),
    ),
    OpCase(
        "huber_loss",
        F.huber_loss,
        TF.huber_loss,
        regression_args(kinks_of=lambda kw: (-kw["delta"], kw["delta"]), delta=st.sampled_from([0.5, 1.0, 2.0])),
    ),
    OpCase("binary_cross_entropy", F.binary_cross_entropy, TF.binary_cross_entropy, bce_args()),
    OpCase(
        "binary_cross_entropy_with_logits",
        F.binary_cross_entropy_with_logits,
        TF.binary_cross_entropy_with_logits,
        bce_args(logits=True),
    ),
]


# Every op in the table: a Hypothesis gradcheck and a float64/float32 PyTorch cross-check.
test_gradcheck, test_matches_torch = table_tests(CASES, gradcheck_examples=20, torch_examples=15)


# ---- golden values, computed by hand -------------------------------------------------------
def _loss_and_grad(loss_fn, x, *rest, **kw):
    t = tv.tensor(x, requires_grad=True)
    loss = loss_fn(t, *rest, **kw)
    loss.backward()
    return loss.item(), t.grad.numpy()


def test_golden_cross_entropy_is_softmax_minus_onehot():
    # logits (0, ln 2): softmax (1/3, 2/3); target 1: loss = -ln(2/3) = ln 1.5, gradient p - onehot
    loss, g = _loss_and_grad(F.cross_entropy, np.array([[0.0, math.log(2.0)]]), np.array([1]))
    assert loss == pytest.approx(math.log(1.5), rel=1e-15)
    np.testing.assert_allclose(g, [[1 / 3, -1 / 3]], rtol=1e-14)


def test_golden_cross_entropy_label_smoothing():
    # eps = 0.3, C = 2: (1 - eps) * NLL + eps / C * (-(ln 1/3 + ln 2/3))
    loss, _ = _loss_and_grad(F.cross_entropy, np.array([[0.0, math.log(2.0)]]), np.array([1]), label_smoothing=0.3)
    expected = 0.7 * math.log(1.5) + 0.15 * (math.log(3.0) + math.log(1.5))
    assert loss == pytest.approx(expected, rel=1e-14)


def test_golden_weighted_nll_mean_divides_by_target_weights():
    # l = (-w[0] * -1, -w[1] * -4) = (2, 4); mean = 6 / (w[0] + w[1]) = 6 / 3 = 2
    x = np.array([[-1.0, -2.0], [-3.0, -4.0]])
    loss, g = _loss_and_grad(F.nll_loss, x, np.array([0, 1]), weight=np.array([2.0, 1.0]))
    assert loss == pytest.approx(2.0, rel=1e-15)
    np.testing.assert_allclose(g, [[-2 / 3, 0.0], [0.0, -1 / 3]], rtol=1e-15)
    # ignore_index: the second row counts for nothing, in the loss and in the denominator
    loss, g = _loss_and_grad(F.nll_loss, x, np.array([0, -100]), weight=np.array([2.0, 1.0]))
    assert loss == pytest.approx(1.0, rel=1e-15)
    np.testing.assert_allclose(g, [[-1.0, 0.0], [0.0, 0.0]])


def test_all_targets_ignored_gives_nan_like_torch():
    x = np.zeros((2, 3))
    ours = F.cross_entropy(tv.tensor(x), np.array([-100, -100])).item()
    theirs = TF.cross_entropy(torch.tensor(x), torch.tensor([-100, -100])).item()
    assert math.isnan(ours) and math.isnan(theirs)


def test_golden_regression_losses():
    x, y = np.array([0.5, 3.0, -2.0]), np.zeros(3)
    # smooth L1, beta = 1: 0.5 * 0.25, 3 - 0.5, 2 - 0.5
    assert F.smooth_l1_loss(tv.tensor(x), y, reduction="sum").item() == pytest.approx(0.125 + 2.5 + 1.5)
    # beta = 0 is plain L1
    assert F.smooth_l1_loss(tv.tensor(x), y, beta=0.0).item() == pytest.approx(5.5 / 3)
    # huber, delta = 2: 0.5 * 0.25, 2 * (3 - 1), 0.5 * 4 (|d| = delta is the outer branch: 2 * (2 - 1))
    assert F.huber_loss(tv.tensor(x), y, reduction="sum", delta=2.0).item() == pytest.approx(0.125 + 4.0 + 2.0)
    assert F.mse_loss(tv.tensor(x), y).item() == pytest.approx((0.25 + 9 + 4) / 3)
    _, g = _loss_and_grad(F.l1_loss, x, y, reduction="sum")
    np.testing.assert_array_equal(g, [1.0, 1.0, -1.0])


def test_golden_binary_cross_entropy():
    # logit 0, target 1: -ln sigma(0) = ln 2; gradient sigma(0) - 1 = -1/2
    loss, g = _loss_and_grad(F.binary_cross_entropy_with_logits, np.array([0.0]), np.array([1.0]))
    assert loss == pytest.approx(math.log(2.0), rel=1e-15)
    np.testing.assert_allclose(g, [-0.5])
    # pos_weight 3 scales the positive term: 3 ln 2, gradient 3 (sigma(0) - 1)
    loss, g = _loss_and_grad(F.binary_cross_entropy_with_logits, np.array([0.0]), np.array([1.0]),
                             pos_weight=np.array([3.0]))
    assert loss == pytest.approx(3 * math.log(2.0), rel=1e-15)
    np.testing.assert_allclose(g, [-1.5])
    loss, g = _loss_and_grad(F.binary_cross_entropy, np.array([0.25]), np.array([1.0]))
    assert loss == pytest.approx(math.log(4.0), rel=1e-15)
    np.testing.assert_allclose(g, [-4.0])  # -t / p


def test_bce_with_logits_is_stable_for_huge_logits():
    x = np.array([-1000.0, 1000.0, 0.0])
    t = np.array([1.0, 0.0, 0.5])
    assert crosscheck_both(F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits, x, t)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_bce_clamps_log_at_minus_100_like_torch():
    p = np.array([0.0, 1.0, 0.5])
    t = np.array([1.0, 0.0, 1.0])
    ours = F.binary_cross_entropy(tv.tensor(p), t, reduction="none").numpy()
    theirs = TF.binary_cross_entropy(torch.tensor(p), torch.tensor(t), reduction="none").numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-15)
    assert ours[0] == 100.0


def crosscheck_both(ours, theirs, *arrays):
    from tinyvision.testing import crosscheck

    return crosscheck(ours, theirs, *arrays) and crosscheck(
        ours, theirs, *[a.astype(np.float32) if a.dtype.kind == "f" else a for a in arrays]
    )


# ---- bad input -------------------------------------------------------------------------------
def _x(*shape):
    return tv.tensor(np.zeros(shape), requires_grad=True)


BAD_INPUT = [
    (lambda: F.cross_entropy(_x(2, 3), np.array([0, 3])), ValueError, ["target 3", "3 classes", "(2, 3)"]),
    (lambda: F.cross_entropy(_x(2, 3), np.array([0, -1])), ValueError, ["target -1", "3 classes"]),
    (lambda: F.nll_loss(_x(2, 3, 4), np.full((2, 4), 7)), ValueError, ["target 7", "3 classes"]),
    (lambda: F.cross_entropy(_x(2, 3), np.array([0, 1, 2])), ValueError, ["(2, 3)", "(2,)", "(3,)"]),
    (lambda: F.cross_entropy(_x(2, 3, 4), np.zeros((2, 3), np.int64)), ValueError, ["(2, 3, 4)", "(2, 4)", "(2, 3)"]),
    (lambda: F.cross_entropy(_x(2, 3), np.zeros((2, 4))), ValueError, ["probability", "(2, 3)", "(2, 4)"]),
    (lambda: F.cross_entropy(_x(2, 3), np.array([0, 1]), weight=np.ones(2)), ValueError, ["weight", "(3,)", "(2,)"]),
    (lambda: F.cross_entropy(_x(2, 3), np.array([0, 1]), reduction="avg"), ValueError, ["reduction", "avg"]),
    (lambda: F.cross_entropy(_x(2, 3), np.array([0, 1]), label_smoothing=1.5), ValueError, ["label_smoothing", "1.5"]),
    (lambda: F.cross_entropy(_x(), np.array(0)), ValueError, ["class dimension"]),
    (lambda: F.nll_loss(_x(2, 3), np.array([0.0, 1.0])), TypeError, ["integers", "float64"]),
    (lambda: F.mse_loss(_x(2, 3), np.zeros((3, 2))), ValueError, ["mse_loss", "(2, 3)", "(3, 2)"]),
    (lambda: F.l1_loss(_x(4), np.zeros(1)), ValueError, ["l1_loss", "(4,)", "(1,)"]),
    (lambda: F.smooth_l1_loss(_x(4), np.zeros(4), beta=-1.0), ValueError, ["beta", "-1.0"]),
    (lambda: F.huber_loss(_x(4), np.zeros(4), delta=0.0), ValueError, ["delta", "0.0"]),
    (lambda: F.binary_cross_entropy(_x(2), np.zeros(3)), ValueError, ["(2,)", "(3,)"]),
    (lambda: F.binary_cross_entropy(tv.tensor(np.array([1.5])), np.zeros(1)), ValueError, ["[0, 1]", "logits"]),
    (lambda: F.binary_cross_entropy_with_logits(_x(2, 3), np.zeros((2, 3)), pos_weight=np.ones(2)), ValueError,
     ["pos_weight", "(2,)", "(2, 3)"]),
]


@pytest.mark.parametrize(
    "call, error, words", BAD_INPUT, ids=[f"{i:02d}-" + " ".join(c[2][:2]) for i, c in enumerate(BAD_INPUT)]
)
def test_bad_input_raises_clear_error(call, error, words):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"
