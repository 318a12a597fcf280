"""Localization loss (CE + α · box loss): against PyTorch, float64 gradcheck, the closed forms of
its docstring (per-sample expansion, gradients), reductions, and bad input."""
import doctest
import math

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.losses.localization as loc_module
from tinyvision.losses import LocalizationLoss, localization_loss
from tinyvision.testing import gradcheck

CASES = [(loss, fmt) for loss in ("mse", "smooth_l1", "giou") for fmt in ("xyxy", "cxcywh")]


def make_batch(rng, n=6, k=5, box_format="xyxy"):
    """Logits, predicted boxes in (0, 1), labels and valid target boxes in the given format."""
    z = rng.standard_normal((n, k))
    y = rng.integers(0, k, n)
    if box_format == "xyxy":
        lo = rng.uniform(0.0, 0.5, (n, 2))
        target = np.concatenate([lo, lo + rng.uniform(0.1, 0.5, (n, 2))], axis=1)
        lo_p = rng.uniform(0.0, 0.5, (n, 2))
        pred = np.concatenate([lo_p, lo_p + rng.uniform(0.05, 0.5, (n, 2))], axis=1)
    else:
        target = np.concatenate([rng.uniform(0.2, 0.8, (n, 2)), rng.uniform(0.1, 0.5, (n, 2))], axis=1)
        pred = np.concatenate([rng.uniform(0.2, 0.8, (n, 2)), rng.uniform(0.05, 0.5, (n, 2))], axis=1)
    return z, pred, y, target


def torch_loss(z, b, y, t, alpha, box_loss, box_format, reduction, beta):
    """The definition in PyTorch: F.cross_entropy + α · (F.mse_loss | F.smooth_l1_loss | GIoU loss),
    per-sample box terms averaged over the 4 coordinates for "none"/"sum"."""
    TF = torch.nn.functional
    if box_loss == "giou":
        if box_format == "cxcywh":
            b = torchvision.ops.box_convert(b, "cxcywh", "xyxy")
            t = torchvision.ops.box_convert(t, "cxcywh", "xyxy")
        per = torchvision.ops.generalized_box_iou_loss(b, t, reduction="none")
    elif box_loss == "mse":
        per = TF.mse_loss(b, t, reduction="none").mean(dim=1)
    else:
        per = TF.smooth_l1_loss(b, t, reduction="none", beta=beta).mean(dim=1)
    ce = TF.cross_entropy(z, y, reduction="none")
    if reduction == "mean":
        ce, box = TF.cross_entropy(z, y), per.mean()
        if box_loss == "mse":
            box = TF.mse_loss(b, t)                       # mean over N·4: the literal definition
        elif box_loss == "smooth_l1":
            box = TF.smooth_l1_loss(b, t, beta=beta)
    elif reduction == "sum":
        ce, box = ce.sum(), per.sum()
    else:
        box = per
    return ce + alpha * box, ce, box


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("box_loss,box_format", CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_matches_torch_values_and_gradients(box_loss, box_format, reduction, rng):
    z, b, y, t = make_batch(rng, box_format=box_format)
    alpha, beta = 0.7, 0.1
    zt, bt = tv.tensor(z, requires_grad=True), tv.tensor(b, requires_grad=True)
    ours = localization_loss(zt, bt, y, t, alpha=alpha, box_loss=box_loss, box_format=box_format,
                             reduction=reduction, beta=beta)
    zr = torch.tensor(z, requires_grad=True)
    br = torch.tensor(b, requires_grad=True)
    theirs = torch_loss(zr, br, torch.tensor(y), torch.tensor(t), alpha, box_loss, box_format, reduction, beta)
    for mine, ref in zip(ours, theirs):
        np.testing.assert_allclose(mine.numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-14)
    g = rng.standard_normal(ours[0].shape)
    ours[0].backward(tv.tensor(g))
    theirs[0].backward(torch.tensor(g))
    np.testing.assert_allclose(zt.grad.numpy(), zr.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(bt.grad.numpy(), br.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_float32_matches_torch(rng):
    z, b, y, t = (a.astype(np.float32) if a.dtype.kind == "f" else a for a in make_batch(rng, n=16))
    zt, bt = tv.tensor(z, requires_grad=True), tv.tensor(b, requires_grad=True)
    total, _, _ = localization_loss(zt, bt, y, t)
    total.backward()
    zr, br = torch.tensor(z, requires_grad=True), torch.tensor(b, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zr, torch.tensor(y)) + 0.5 * torch.nn.functional.mse_loss(br, torch.tensor(t))
    ref.backward()
    assert total.dtype == np.float32
    np.testing.assert_allclose(total.item(), ref.item(), rtol=1e-6)
    np.testing.assert_allclose(zt.grad.numpy(), zr.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bt.grad.numpy(), br.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("box_loss,box_format", CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_gradcheck(box_loss, box_format, reduction, rng):
    z, b, y, t = make_batch(rng, n=3, k=4, box_format=box_format)

    def f(z, b):
        return localization_loss(z, b, y, t, alpha=1.3, box_loss=box_loss, box_format=box_format,
                                 reduction=reduction)

    assert gradcheck(f, z, b)


def test_expanded_per_sample_form_and_closed_form_gradients(rng):
    """Docstring claims: L = (1/N) Σ_n [−log p̂_y + (α/4) Σ_i (b_i − b̂_i)²];
    dL/dz = (p̂ − onehot(y)) / N;  dL/db̂ = α (b̂ − b) / (2N)."""
    n, k, alpha = 7, 5, 0.8
    z, b, y, t = make_batch(rng, n=n, k=k)
    zt, bt = tv.tensor(z, requires_grad=True), tv.tensor(b, requires_grad=True)
    total, ce, box = localization_loss(zt, bt, y, t, alpha=alpha)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expanded = np.mean(-np.log(p[np.arange(n), y]) + alpha / 4 * ((t - b) ** 2).sum(axis=1))
    assert math.isclose(total.item(), expanded, rel_tol=1e-13)
    assert math.isclose(box.item(), ((t - b) ** 2).mean(), rel_tol=1e-13)
    total.backward()
    onehot = np.eye(k)[y]
    np.testing.assert_allclose(zt.grad.numpy(), (p - onehot) / n, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(bt.grad.numpy(), alpha * (b - t) / (2 * n), rtol=1e-12, atol=1e-15)


@settings(max_examples=15)
@given(n=st.integers(1, 6), k=st.integers(1, 6), alpha=st.floats(0.0, 10.0),
       box_loss=st.sampled_from(["mse", "smooth_l1", "giou"]), seed=st.integers(0, 2**16))
def test_reductions_agree(n, k, alpha, box_loss, seed):
    """mean = mean of the per-sample losses ("none"), sum = their sum; total = class + α · box."""
    z, b, y, t = make_batch(np.random.default_rng(seed), n=n, k=k)
    parts = {r: localization_loss(tv.tensor(z), tv.tensor(b), y, t, alpha=alpha, box_loss=box_loss, reduction=r)
             for r in ("none", "mean", "sum")}
    for i in range(3):
        none = parts["none"][i].numpy()
        assert none.shape == (n,)
        np.testing.assert_allclose(parts["mean"][i].item(), none.mean(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(parts["sum"][i].item(), none.sum(), rtol=1e-12, atol=1e-15)
    total, ce, box = parts["mean"]
    assert math.isclose(total.item(), ce.item() + alpha * box.item(), rel_tol=1e-13, abs_tol=1e-15)
    assert ce.item() >= 0 and box.item() >= 0


def test_module_returns_total_and_keeps_parts(rng):
    z, b, y, t = make_batch(rng, box_format="cxcywh")
    criterion = LocalizationLoss(alpha=2.0, box_loss="giou", box_format="cxcywh")
    loss = criterion(tv.tensor(z), tv.tensor(b), y, t)
    total, ce, box = localization_loss(tv.tensor(z), tv.tensor(b), y, t, alpha=2.0, box_loss="giou",
                                       box_format="cxcywh")
    assert loss.item() == total.item()
    assert criterion.last_parts == {"class": ce.item(), "box": box.item()}
    assert "alpha=2.0" in repr(criterion)


def test_alpha_zero_is_cross_entropy(rng):
    z, b, y, t = make_batch(rng)
    bt = tv.tensor(b, requires_grad=True)
    total, ce, _ = localization_loss(tv.tensor(z, requires_grad=True), bt, y, t, alpha=0.0)
    assert total.item() == ce.item()
    total.backward()
    assert not np.any(bt.grad.numpy())


def test_doctests():
    result = doctest.testmod(loc_module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 5 and result.failed == 0


# ---- bad input: a clear error naming the argument and the shape --------------------------------
def _args(rng, **over):
    z, b, y, t = make_batch(rng, n=4, k=3)
    args = dict(class_scores=tv.tensor(z), boxes=tv.tensor(b), labels=y, target_boxes=t)
    args.update(over)
    return args


@pytest.mark.parametrize("over,match", [
    (dict(target_boxes=np.array([[0.5, 0.1, 0.2, 0.4]] * 4)), r"target_boxes\[0\].*x2 < x1"),
    (dict(labels=np.array([0, 1, 3, 0])), r"labels\[2\] = 3 is out of range.*\(4, 3\).*\[0, 3\)"),
    (dict(labels=np.array([0, -1, 1, 0])), r"labels\[1\] = -1"),
    (dict(labels=np.array([0.0, 1.0, 1.0, 0.0])), r"labels must be integer"),
    (dict(labels=np.array([0, 1, 1])), r"labels must have shape \(N,\) = \(4,\).*got \(3,\)"),
    (dict(boxes=tv.tensor(np.zeros((4, 5)))), r"boxes must have shape \(N, 4\) = \(4, 4\).*got \(4, 5\)"),
    (dict(class_scores=tv.tensor(np.zeros((4, 3, 2)))), r"class_scores must have shape \(N, K\), got \(4, 3, 2\)"),
    (dict(target_boxes=np.zeros((3, 4))), r"target_boxes must have shape \(N, 4\) = \(4, 4\).*got \(3, 4\)"),
    (dict(target_boxes=np.array([[0.1, 0.1, np.nan, 0.3]] * 4)), r"target_boxes\[0\].*not finite"),
])
def test_bad_input_is_named(over, match, rng):
    with pytest.raises((ValueError, TypeError), match=match):
        localization_loss(**_args(rng, **over))


def test_bad_cxcywh_target_and_options(rng):
    args = _args(rng, target_boxes=np.array([[0.5, 0.5, -0.1, 0.2]] * 4))
    with pytest.raises(ValueError, match=r"target_boxes\[0\].*negative width or height.*cxcywh"):
        localization_loss(**args, box_format="cxcywh")
    with pytest.raises(ValueError, match="box_loss must be one of"):
        localization_loss(**_args(rng), box_loss="l2")
    with pytest.raises(ValueError, match="box_format must be one of"):
        localization_loss(**_args(rng), box_format="xywh")
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        localization_loss(**_args(rng), alpha=-1.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        LocalizationLoss(reduction="avg")
