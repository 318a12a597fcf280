"""sigmoid_focal_loss (tinyvision/losses/focal.py) against the paper's curve, torchvision's
formula re-typed in PyTorch (torchvision does not import here), and float64 gradcheck."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hst

import tinyvision as tv
from tinyvision.losses import sigmoid_focal_loss
from tinyvision.testing import crosscheck, gradcheck
from tinyvision.testing import strategies as st


def torchvision_focal(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss's formula, line for line (v0.29)."""
    p = torch.sigmoid(inputs)
    ce_loss = torch.nn.functional.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


# Figure 1 of the paper (REFERENCE.md §2): FL at p_t = 0.1 / 0.5 / 0.9, α disabled.
GOLDEN = {
    0.0: (2.302585, 0.693147, 0.105361),
    0.5: (2.184424, 0.490129, 0.033318),
    1.0: (2.072327, 0.346574, 0.010536),
    2.0: (1.865094, 0.173287, 0.001054),
    5.0: (1.359653, 0.021661, 1e-6),
}


@pytest.mark.parametrize("gamma", sorted(GOLDEN))
def test_paper_curve_golden_values(gamma):
    p_t = np.array([0.1, 0.5, 0.9])
    logits = np.log(p_t / (1 - p_t))  # a positive target with probability p_t
    loss = sigmoid_focal_loss(tv.tensor(logits), tv.tensor(np.ones(3)), alpha=-1, gamma=gamma).numpy()
    np.testing.assert_allclose(loss, GOLDEN[gamma], atol=5e-7)
    # and the same p_t reached from a negative target
    loss_neg = sigmoid_focal_loss(tv.tensor(-logits), tv.tensor(np.zeros(3)), alpha=-1, gamma=gamma).numpy()
    np.testing.assert_allclose(loss_neg, loss, rtol=1e-12)


CONFIGS = [(0.25, 2.0, "none"), (0.25, 2.0, "mean"), (-1, 0.0, "sum"), (0.75, 0.5, "none"),
           (0.0, 5.0, "mean"), (1.0, 1.0, "sum")]


@pytest.mark.parametrize("alpha,gamma,reduction", CONFIGS)
def test_matches_torchvision_formula_forward_and_gradients(alpha, gamma, reduction, rng):
    x = rng.standard_normal((6, 5)) * 3
    t = (rng.random((6, 5)) < 0.3).astype(np.float64)
    t[0] = rng.random(5)  # soft targets: the target gradient is exercised too
    crosscheck(lambda a, b: sigmoid_focal_loss(a, b, alpha, gamma, reduction),
               lambda a, b: torchvision_focal(a, b, alpha, gamma, reduction), x, t)
    crosscheck(lambda a, b: sigmoid_focal_loss(a, b, alpha, gamma, reduction),
               lambda a, b: torchvision_focal(a, b, alpha, gamma, reduction),
               x.astype(np.float32), t.astype(np.float32))


@given(x=st.arrays(st.shapes(min_dims=1, max_dims=3, max_side=4), min_value=-6, max_value=6),
       alpha=hst.sampled_from([-1.0, 0.25, 0.6]), gamma=hst.sampled_from([0.0, 1.0, 2.0, 3.5]),
       reduction=hst.sampled_from(["none", "mean", "sum"]), seed=hst.integers(0, 2**16))
def test_gradcheck(x, alpha, gamma, reduction, seed):
    t = np.random.default_rng(seed).random(x.shape)
    gradcheck(lambda a, b: sigmoid_focal_loss(a, b, alpha, gamma, reduction), x, t)


def test_large_logits_are_finite():
    x = tv.tensor(np.array([-1000.0, 1000.0, 80.0]), requires_grad=True)
    loss = sigmoid_focal_loss(x, tv.tensor(np.array([1.0, 0.0, 1.0])))
    loss.sum().backward()
    assert np.isfinite(loss.numpy()).all() and np.isfinite(x.grad.numpy()).all()
    assert loss.numpy()[0] == pytest.approx(0.25 * 1000.0)


def test_integer_and_bool_targets_mean_the_same_as_floats(rng):
    x = tv.tensor(rng.standard_normal(8))
    t = rng.random(8) < 0.5
    ref = sigmoid_focal_loss(x, tv.tensor(t.astype(np.float32))).numpy()
    np.testing.assert_array_equal(sigmoid_focal_loss(x, tv.tensor(t)).numpy(), ref)
    np.testing.assert_array_equal(sigmoid_focal_loss(x, tv.tensor(t.astype(np.int64))).numpy(), ref)


def test_bad_input():
    x = tv.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        sigmoid_focal_loss(x, tv.tensor(np.zeros((3, 2))))
    with pytest.raises(ValueError, match="reduction"):
        sigmoid_focal_loss(x, tv.tensor(np.zeros((2, 3))), reduction="avg")
    with pytest.raises(ValueError, match="gamma"):
        sigmoid_focal_loss(x, tv.tensor(np.zeros((2, 3))), gamma=-1)
    with pytest.raises(ValueError, match="alpha"):
        sigmoid_focal_loss(x, tv.tensor(np.zeros((2, 3))), alpha=1.5)
    assert math.isclose(float(sigmoid_focal_loss(x, tv.tensor(np.zeros((2, 3))), reduction="sum")),
                        6 * 0.75 * math.log(2) * 0.25, rel_tol=1e-12)


def test_docstring_examples_run():
    import doctest

    import tinyvision.losses.focal as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
