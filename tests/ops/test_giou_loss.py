"""generalized_box_iou_loss: forward and gradients vs torchvision's formula in PyTorch, gradcheck."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
from tinyvision.ops import generalized_box_iou, generalized_box_iou_loss
from tinyvision.testing import gradcheck


def tv_giou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    """torchvision.ops.generalized_box_iou_loss, re-typed from its source (torchvision does not
    import here): _loss_inter_union + enclosing box."""
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xkis1 = torch.max(x1, x1g)
    ykis1 = torch.max(y1, y1g)
    xkis2 = torch.min(x2, x2g)
    ykis2 = torch.min(y2, y2g)
    intsctk = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsctk[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
    iouk = intsctk / (unionk + eps)
    xc1 = torch.min(x1, x1g)
    yc1 = torch.min(y1, y1g)
    xc2 = torch.max(x2, x2g)
    yc2 = torch.max(y2, y2g)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    miouk = iouk - ((area_c - unionk) / (area_c + eps))
    loss = 1 - miouk
    if reduction == "mean":
        loss = loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


def boxes(rng, n, integer=False):
    if integer:  # many exact ties between coordinates: exercises the half-split subgradient
        xy = rng.integers(0, 6, (n, 2)).astype(np.float64)
        wh = rng.integers(0, 4, (n, 2)).astype(np.float64)
    else:
        xy = rng.uniform(0, 10, (n, 2))
        wh = rng.uniform(0.5, 6, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def both(b1, b2, dtype, reduction, upstream_seed=1):
    """(ours, theirs): loss values and gradients w.r.t. both inputs, random upstream grad."""
    p = tv.tensor(b1.astype(dtype), requires_grad=True)
    t = tv.tensor(b2.astype(dtype), requires_grad=True)
    loss = generalized_box_iou_loss(p, t, reduction=reduction)
    g = np.random.default_rng(upstream_seed).standard_normal(loss.shape).astype(dtype)
    loss.backward(g)
    tp = torch.tensor(b1.astype(dtype), requires_grad=True)
    tt = torch.tensor(b2.astype(dtype), requires_grad=True)
    tl = tv_giou_loss(tp, tt, reduction=reduction)
    tl.backward(torch.from_numpy(np.asarray(g)))
    return (loss.numpy(), p.grad.numpy(), t.grad.numpy()), (tl.detach().numpy(), tp.grad.numpy(), tt.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("integer", [False, True])
def test_giou_loss_matches_torch_forward_and_gradients(rng, dtype, reduction, integer):
    b1, b2 = boxes(rng, 40, integer), boxes(rng, 40, integer)
    b2[:5] = b1[:5]  # identical pairs
    ours, theirs = both(b1, b2, dtype, reduction)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for o, t in zip(ours, theirs):
        assert o.dtype == dtype
        np.testing.assert_allclose(o, t, **tol)


@settings(max_examples=10)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["none", "mean", "sum"]))
def test_giou_loss_gradcheck_float64(seed, reduction):
    rng = np.random.default_rng(seed)
    b1, b2 = boxes(rng, 4), boxes(rng, 4)
    assert gradcheck(lambda a, b: generalized_box_iou_loss(a, b, reduction=reduction), b1, b2)


def test_giou_loss_gradcheck_broadcast_and_disjoint(rng):
    b1 = boxes(rng, 5)
    far = np.array([30.0, 30.0, 33.0, 34.0])  # disjoint from all: only the enclosing term moves
    assert gradcheck(lambda a, b: generalized_box_iou_loss(a, b), b1, far)
    p = tv.tensor(b1, requires_grad=True)
    q = tv.tensor(far, requires_grad=True)
    generalized_box_iou_loss(p, q, reduction="sum").backward()
    tp = torch.tensor(b1, requires_grad=True)
    tq = torch.tensor(far, requires_grad=True)
    tv_giou_loss(tp, tq, reduction="sum").backward()
    np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(q.grad.numpy(), tq.grad.numpy(), rtol=1e-10)
    assert q.grad.shape == (4,)


@given(st.integers(0, 2**32 - 1))
def test_giou_loss_properties(seed):
    rng = np.random.default_rng(seed)
    b1, b2 = boxes(rng, 8, integer=bool(seed % 2)), boxes(rng, 8, integer=bool(seed % 3))
    loss = generalized_box_iou_loss(b1, b2).numpy()
    assert np.all((loss >= -1e-6) & (loss <= 2 + 1e-6))
    self_loss = generalized_box_iou_loss(b1, b1).numpy()
    area = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    np.testing.assert_allclose(self_loss[area > 0], 0, atol=1e-6)  # a box against itself
    np.testing.assert_allclose(self_loss[area == 0], 1, atol=1e-6)  # zero-area: I = U = C = 0
    np.testing.assert_allclose(loss, generalized_box_iou_loss(b2, b1).numpy(), atol=1e-12)  # symmetric
    # 1 - GIoU of the pairs (eps changes it by ~1e-7 relative at most)
    np.testing.assert_allclose(loss, 1 - np.diag(generalized_box_iou(b1, b2)), atol=1e-6)


def test_giou_loss_golden_and_edges():
    a = np.array([[0.0, 0.0, 2.0, 2.0]])
    b = np.array([[1.0, 1.0, 3.0, 3.0]])
    # I = 1, U = 7, C = 9: L = 1 - (1/7 - 2/9) = 68/63
    np.testing.assert_allclose(generalized_box_iou_loss(a, b).numpy(), [68 / 63], rtol=1e-7)
    empty = np.zeros((0, 4))
    assert generalized_box_iou_loss(empty, empty).shape == (0,)
    m = generalized_box_iou_loss(tv.tensor(empty, requires_grad=True), empty, reduction="mean")
    assert m.shape == () and float(m) == 0.0
    single = generalized_box_iou_loss(a[0], b[0])
    assert single.shape == ()
    ints = generalized_box_iou_loss(a.astype(np.int64), b.astype(np.int64))
    assert ints.dtype == np.float32
    with pytest.raises(ValueError, match="reduction"):
        generalized_box_iou_loss(a, b, reduction="avg")
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        generalized_box_iou_loss(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="broadcast"):
        generalized_box_iou_loss(np.zeros((2, 4)), np.zeros((3, 4)))


# ---------------------------------------------------------------------------------------
# distance_box_iou_loss
# ---------------------------------------------------------------------------------------
from tinyvision.ops import distance_box_iou_loss  # noqa: E402


def tv_diou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    """torchvision's distance_box_iou_loss (_diou_iou_loss), re-typed."""
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xkis1, ykis1 = torch.max(x1, x1g), torch.max(y1, y1g)
    xkis2, ykis2 = torch.min(x2, x2g), torch.min(y2, y2g)
    intsct = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsct[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsct
    iou = intsct / (union + eps)
    xc1, yc1 = torch.min(x1, x1g), torch.min(y1, y1g)
    xc2, yc2 = torch.max(x2, x2g), torch.max(y2, y2g)
    diag = ((xc2 - xc1) ** 2) + ((yc2 - yc1) ** 2) + eps
    x_p, y_p = (x2 + x1) / 2, (y2 + y1) / 2
    x_g, y_g = (x1g + x2g) / 2, (y1g + y2g) / 2
    cd = ((x_p - x_g) ** 2) + ((y_p - y_g) ** 2)
    loss = 1 - iou + (cd / diag)
    if reduction == "mean":
        loss = loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("integer", [False, True])
def test_diou_loss_matches_torch_forward_and_gradients(rng, dtype, reduction, integer):
    b1, b2 = boxes(rng, 40, integer), boxes(rng, 40, integer)
    b2[:5] = b1[:5]
    p = tv.tensor(b1.astype(dtype), requires_grad=True)
    t = tv.tensor(b2.astype(dtype), requires_grad=True)
    loss = distance_box_iou_loss(p, t, reduction=reduction)
    g = np.random.default_rng(1).standard_normal(loss.shape).astype(dtype)
    loss.backward(g)
    tp = torch.tensor(b1.astype(dtype), requires_grad=True)
    tt = torch.tensor(b2.astype(dtype), requires_grad=True)
    tl = tv_diou_loss(tp, tt, reduction=reduction)
    tl.backward(torch.from_numpy(np.asarray(g)))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for o, r in ((loss, tl.detach()), (p.grad, tp.grad), (t.grad, tt.grad)):
        assert o.dtype == dtype
        np.testing.assert_allclose(o.numpy(), r.numpy(), **tol)


@settings(max_examples=10)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["none", "mean", "sum"]))
def test_diou_loss_gradcheck_float64(seed, reduction):
    rng = np.random.default_rng(seed)
    b1, b2 = boxes(rng, 4), boxes(rng, 4)
    assert gradcheck(lambda a, b: distance_box_iou_loss(a, b, reduction=reduction), b1, b2)


def test_diou_loss_properties_and_edges(rng):
    b1, b2 = boxes(rng, 30), boxes(rng, 30)
    loss = distance_box_iou_loss(b1, b2).numpy()
    assert np.all((loss >= 0) & (loss <= 2))
    np.testing.assert_allclose(distance_box_iou_loss(b1, b1).numpy(), 0, atol=1e-6)
    np.testing.assert_allclose(loss, distance_box_iou_loss(b2, b1).numpy(), atol=1e-12)
    m = distance_box_iou_loss(np.zeros((0, 4)), np.zeros((0, 4)), reduction="mean")
    assert float(m) == 0.0
    with pytest.raises(ValueError, match="reduction"):
        distance_box_iou_loss(b1, b2, reduction="max")
