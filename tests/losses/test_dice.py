"""Dice / Jaccard / Tversky (tinyvision/losses/dice.py) against segmentation_models_pytorch 0.6.0,
live: values and gradients in every mode and option (Hypothesis + hand cases), the lesson's
dice_loss gradchecked in float64 with its docstring gradient, and the bad-input errors."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hst

import tinyvision as tv
from tinyvision.losses import DiceLoss, JaccardLoss, TverskyLoss, dice_loss, soft_dice_score
from tinyvision.testing import gradcheck

smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")

OURS = {"dice": DiceLoss, "jaccard": JaccardLoss, "tversky": TverskyLoss}
THEIRS = {"dice": smp_losses.DiceLoss, "jaccard": smp_losses.JaccardLoss, "tversky": smp_losses.TverskyLoss}


def both(kind, kwargs, y_pred, y_true):
    """(our loss, our grad, smp's loss, smp's grad) for the same inputs."""
    ours = OURS[kind](**kwargs)
    x = tv.tensor(y_pred, requires_grad=True)
    loss = ours(x, y_true)
    loss.backward()
    theirs = THEIRS[kind](**kwargs)
    xt = torch.tensor(y_pred, requires_grad=True)
    tt = torch.tensor(y_true)
    loss_t = theirs(xt, tt)
    loss_t.backward()
    return loss.item(), x.grad.numpy(), loss_t.item(), xt.grad.numpy()


def assert_same(kind, kwargs, y_pred, y_true, rtol=1e-10, atol=1e-12):
    lv, g, lv_t, g_t = both(kind, kwargs, y_pred, y_true)
    np.testing.assert_allclose(lv, lv_t, rtol=rtol, atol=atol, err_msg=f"{kind} {kwargs} loss")
    np.testing.assert_allclose(g, g_t, rtol=rtol, atol=atol, err_msg=f"{kind} {kwargs} gradient")


def make_inputs(rng, mode, n, c, h, w, from_logits, ignore_index, absent):
    """Logits (or probabilities) and targets for ``mode``; ``absent`` classes never appear."""
    c = 1 if mode == "binary" else c
    logits = rng.standard_normal((n, c, h, w)) * 2
    if not from_logits:
        if mode == "multiclass":
            e = np.exp(logits - logits.max(1, keepdims=True))
            logits = e / e.sum(1, keepdims=True)
        else:
            logits = 1 / (1 + np.exp(-logits))
    if mode == "multiclass":
        allowed = [k for k in range(c) if k not in absent] or [0]
        target = rng.choice(allowed, size=(n, h, w)).astype(np.int64)
    elif mode == "binary":
        target = (rng.random((n, 1, h, w)) < 0.4).astype(np.float64)
        if absent:
            target[:] = 0
    else:
        target = (rng.random((n, c, h, w)) < 0.4).astype(np.float64)
        for k in absent:
            if k < c:
                target[:, k] = 0
    if ignore_index is not None:
        drop = rng.random(target.shape) < 0.25
        target = np.where(drop, ignore_index, target).astype(target.dtype)
    return logits, target


@settings(max_examples=40)
@given(
    kind=hst.sampled_from(sorted(OURS)),
    mode=hst.sampled_from(["binary", "multiclass", "multilabel"]),
    n=hst.integers(1, 3), c=hst.integers(2, 4), h=hst.integers(1, 5), w=hst.integers(1, 5),
    from_logits=hst.booleans(), log_loss=hst.booleans(),
    smooth=hst.sampled_from([0.0, 0.0, 1.0, 0.3]),
    ignore_index=hst.sampled_from([None, None, -1, 255]),
    absent=hst.sets(hst.integers(0, 3), max_size=2),
    use_classes=hst.booleans(), use_weights=hst.booleans(),
    tversky=hst.tuples(hst.sampled_from([0.3, 0.5, 0.7]), hst.sampled_from([0.3, 0.5, 0.7]),
                       hst.sampled_from([1.0, 0.75, 2.0])),
    seed=hst.integers(0, 2**16),
)
def test_matches_smp_every_mode_and_option(kind, mode, n, c, h, w, from_logits, log_loss, smooth,
                                          ignore_index, absent, use_classes, use_weights, tversky, seed):
    rng = np.random.default_rng(seed)
    y_pred, y_true = make_inputs(rng, mode, n, c, h, w, from_logits, ignore_index, absent)
    kwargs = dict(mode=mode, log_loss=log_loss, from_logits=from_logits, smooth=smooth, ignore_index=ignore_index)
    if mode != "binary" and use_classes:
        kwargs["classes"] = sorted(rng.choice(c, size=int(rng.integers(1, c + 1)), replace=False).tolist())
    if mode != "binary" and use_weights:
        kwargs["class_weights"] = rng.uniform(0.2, 2.0, size=c).round(3).tolist()
    if kind == "tversky":
        kwargs.update(alpha=tversky[0], beta=tversky[1], gamma=tversky[2])
    assert_same(kind, kwargs, y_pred, y_true)


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("kind", sorted(OURS))
def test_float32_matches_smp_to_round_off(kind, mode, rng):
    y_pred, y_true = make_inputs(rng, mode, 2, 3, 8, 8, True, 255, set())
    y_pred = y_pred.astype(np.float32)
    y_true = y_true if mode == "multiclass" else y_true.astype(np.float32)
    lv, g, lv_t, g_t = both(kind, {"mode": mode, "ignore_index": 255}, y_pred, y_true)
    assert g.dtype == np.float32
    np.testing.assert_allclose(lv, lv_t, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, g_t, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Hand cases
# ---------------------------------------------------------------------------------------------
def test_absent_class_gets_zero_loss_but_stays_in_the_mean():
    # p = 1/2 everywhere, 4 pixels, classes 0 and 1 present, class 2 absent
    y_pred = np.zeros((1, 3, 2, 2))
    y_true = np.array([[[0, 0], [0, 1]]])
    p = 1 / 3
    d0 = 2 * 3 * p / (4 * p + 3)
    d1 = 2 * 1 * p / (4 * p + 1)
    expected = ((1 - d0) + (1 - d1) + 0.0) / 3            # the absent class counts as 0 in a mean over 3
    loss = DiceLoss("multiclass")(tv.tensor(y_pred), y_true).item()
    assert loss == pytest.approx(expected, rel=1e-12)
    assert_same("dice", {"mode": "multiclass"}, y_pred, y_true)
    # selecting only the absent class: loss 0 and no gradient
    x = tv.tensor(y_pred, requires_grad=True)
    DiceLoss("multiclass", classes=[2])(x, y_true).backward()
    assert not np.any(x.grad.numpy())


def test_ignore_index_pixels_change_nothing():
    rng = np.random.default_rng(1)
    y_pred = rng.standard_normal((2, 3, 4, 4))
    y_true = rng.integers(0, 3, size=(2, 4, 4))
    ignored = y_true.copy()
    ignored[:, 0, :] = 255
    x = tv.tensor(y_pred, requires_grad=True)
    loss = DiceLoss("multiclass", ignore_index=255)(x, ignored)
    loss.backward()
    assert not np.any(x.grad.numpy()[:, :, 0, :])          # ignored pixels get no gradient
    # ... and changing the logits there leaves the loss alone
    y2 = y_pred.copy()
    y2[:, :, 0, :] = 50.0
    assert DiceLoss("multiclass", ignore_index=255)(tv.tensor(y2), ignored).item() == pytest.approx(loss.item(), rel=1e-12)
    assert_same("dice", {"mode": "multiclass", "ignore_index": 255}, y_pred, ignored)


def test_from_logits_false_takes_probabilities_as_given():
    p = np.array([[[[0.9, 0.8], [0.1, 0.0]]]])
    y = np.array([[[[1.0, 1.0], [0.0, 0.0]]]])
    loss = DiceLoss("binary", from_logits=False)(tv.tensor(p), y).item()
    assert loss == pytest.approx(1 - 1.7 / 1.9, rel=1e-12)     # I = 1.7, (Σp + Σy)/2 = 1.9
    assert_same("dice", {"mode": "binary", "from_logits": False}, p, y)
    assert_same("jaccard", {"mode": "binary", "from_logits": False}, p, y)


def test_binary_target_without_channel_axis():
    rng = np.random.default_rng(2)
    y_pred = rng.standard_normal((2, 1, 3, 3))
    y_true = (rng.random((2, 3, 3)) < 0.5).astype(np.float64)
    assert_same("dice", {"mode": "binary"}, y_pred, y_true)


def test_tversky_with_half_half_is_dice():
    rng = np.random.default_rng(3)
    y_pred, y_true = make_inputs(rng, "multilabel", 2, 3, 4, 4, True, None, set())
    a = TverskyLoss("multilabel", alpha=0.5, beta=0.5)(tv.tensor(y_pred), y_true).item()
    b = DiceLoss("multilabel")(tv.tensor(y_pred), y_true).item()
    assert a == pytest.approx(b, rel=1e-12)


def test_dice_and_jaccard_relation_per_class():
    # hard predictions: D = 2J / (1 + J) for one class
    p = np.array([[[1.0, 1.0, 0.0, 0.0, 1.0]]])
    y = np.array([[[1.0, 0.0, 0.0, 1.0, 1.0]]])
    d = 1 - DiceLoss("binary", from_logits=False)(tv.tensor(p), y).item()
    j = 1 - JaccardLoss("binary", from_logits=False)(tv.tensor(p), y).item()
    assert (d, j) == pytest.approx((2 / 3, 0.5))
    assert d == pytest.approx(2 * j / (1 + j))


# ---------------------------------------------------------------------------------------------
# The lesson's dice_loss
# ---------------------------------------------------------------------------------------------
def torch_dice(p, y, dims, smooth, eps, variant):
    """The three forms re-typed in PyTorch (product: smp < 0.4; l1: smp 0.6; squared: V-Net)."""
    if variant == "l1":
        return 1 - smp_losses._functional.soft_dice_score(p, y, smooth, eps, dims)
    if variant == "product":
        num = 2 * (p * y).sum(dims) + smooth
        den = (p.sum(dims) + y.sum(dims) + smooth).clamp_min(eps)
    else:
        num = 2 * (p * y).sum(dims) + smooth
        den = ((p * p).sum(dims) + (y * y).sum(dims) + smooth).clamp_min(eps)
    return 1 - num / den


@pytest.mark.parametrize("variant", ["product", "l1", "squared"])
@pytest.mark.parametrize("dims,reduction", [(None, "mean"), ((0, 2), "mean"), ((0, 2), "none"), ((1,), "sum")])
@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_dice_loss_gradcheck_and_torch(variant, dims, reduction, smooth, rng):
    p = rng.uniform(0.05, 0.95, size=(2, 3, 5))
    y = rng.uniform(0.0, 1.0, size=(2, 3, 5))          # soft targets: the forms differ, all checked
    fn = lambda a, b: dice_loss(a, b, dims=dims, smooth=smooth, variant=variant, reduction=reduction)  # noqa: E731
    gradcheck(fn, p, y)
    pt, yt = torch.tensor(p, requires_grad=True), torch.tensor(y, requires_grad=True)
    ref = torch_dice(pt, yt, dims if dims is not None else (0, 1, 2), smooth, 1e-7, variant)
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    ours_p, ours_y = tv.tensor(p, requires_grad=True), tv.tensor(y, requires_grad=True)
    out = fn(ours_p, ours_y)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(tv.tensor(g))
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(ours_p.grad.numpy(), pt.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ours_y.grad.numpy(), yt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_dice_loss_gradient_is_the_docstring_formula(rng):
    p = rng.uniform(0.01, 0.99, size=50)
    y = (rng.random(50) < 0.3).astype(np.float64)
    x = tv.tensor(p, requires_grad=True)
    loss = dice_loss(x, y)
    loss.backward()
    q = p.sum() + y.sum()
    d = 2 * (p * y).sum() / q
    assert loss.item() == pytest.approx(1 - d, rel=1e-14)
    np.testing.assert_allclose(x.grad.numpy(), (d - 2 * y) / q, rtol=1e-13)


def test_variants_agree_where_the_module_says(rng):
    p = rng.uniform(0.01, 0.99, size=(3, 40))
    y = (rng.random((3, 40)) < 0.5).astype(np.float64)
    val = {v: dice_loss(tv.tensor(p), y, dims=1, variant=v, reduction="none").numpy() for v in ("product", "l1", "squared")}
    np.testing.assert_allclose(val["product"], val["l1"], rtol=1e-12)      # binary y, s = 0
    assert not np.allclose(val["product"], val["squared"])                  # V-Net differs ...
    perfect = {v: dice_loss(tv.tensor(y), y, dims=1, variant=v, reduction="none").numpy() for v in val}
    for v in perfect:                                                         # ... but all give 0 at p = y
        np.testing.assert_allclose(perfect[v], 0, atol=1e-15)
    soft = rng.uniform(0, 1, size=(3, 40))                                   # soft targets: l1 != product
    assert not np.allclose(dice_loss(tv.tensor(p), soft, dims=1, variant="l1", reduction="none").numpy(),
                           dice_loss(tv.tensor(p), soft, dims=1, variant="product", reduction="none").numpy())
    # the class losses' score with variant="l1" is dice_loss's l1 form
    s = soft_dice_score(tv.tensor(p), y, dims=(1,)).numpy()
    np.testing.assert_allclose(1 - s, val["l1"], rtol=1e-12)


def test_empty_target_and_prediction_is_zero_over_eps():
    z = np.zeros(6)
    assert dice_loss(tv.tensor(z), z).item() == 1.0          # D = 0 / eps
    assert dice_loss(tv.tensor(z), z, smooth=1.0).item() == 0.0   # D = s / s


@pytest.mark.parametrize("variant", ["product", "l1"])
def test_class_variant_option_matches_dice_loss_form(variant, rng):
    # DiceLoss(variant=...) on probabilities = dice_loss with smp's smoothing (s once in the Tversky ratio)
    p = rng.uniform(0.01, 0.99, size=(2, 1, 4, 4))
    y = (rng.random((2, 1, 4, 4)) < 0.5).astype(np.float64)
    ours = DiceLoss("binary", from_logits=False, variant=variant)(tv.tensor(p), y).item()
    assert ours == pytest.approx(dice_loss(tv.tensor(p), y, variant="l1").item(), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    x = tv.tensor(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"\[0, 3\).*found 3"):
        DiceLoss("multiclass")(x, np.full((2, 4, 4), 3))
    with pytest.raises(ValueError, match=r"found -1"):
        DiceLoss("multiclass", ignore_index=255)(x, np.full((2, 4, 4), -1))
    DiceLoss("multiclass", ignore_index=255)(x, np.full((2, 4, 4), 255))   # all ignored: allowed
    with pytest.raises(ValueError, match=r"\(2, 4, 4\).*got shape \(2, 4, 5\)"):
        DiceLoss("multiclass")(x, np.zeros((2, 4, 5), dtype=np.int64))
    with pytest.raises(TypeError, match="integer class indices"):
        DiceLoss("multiclass")(x, np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"one channel.*\(2, 3, 4, 4\)"):
        DiceLoss("binary")(x, np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(2, 3, 4, 4\)"):
        JaccardLoss("multilabel")(x, np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"\[0, 1\].*found 2"):
        TverskyLoss("multilabel")(x, np.full((2, 3, 4, 4), 2.0))
    with pytest.raises(ValueError, match="mode must be one of"):
        DiceLoss("multi")
    with pytest.raises(ValueError, match="binary"):
        DiceLoss("binary", classes=[0])
    with pytest.raises(ValueError, match=r"classes \[5\] out of range for 3"):
        DiceLoss("multiclass", classes=[5])(x, np.zeros((2, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"probabilities of shape \(3,\) and targets of shape \(4,\)"):
        dice_loss(tv.tensor(np.zeros(3)), np.zeros(4))
    with pytest.raises(ValueError, match="variant must be one of"):
        dice_loss(tv.tensor(np.zeros(3)), np.zeros(3), variant="cube")
