"""BoxCoder: encode/decode vs torchvision's formulas in PyTorch, round trip, clamp, gradients."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tinyvision as tv
from tinyvision.ops import BoxCoder
from tinyvision.ops.box_coder import BBOX_XFORM_CLIP
from tinyvision.testing import gradcheck


def tv_encode(ref, prop, weights):
    """torchvision's encode_boxes, re-typed."""
    wx, wy, ww, wh = weights
    px1, py1, px2, py2 = (prop[:, k].unsqueeze(1) for k in range(4))
    gx1, gy1, gx2, gy2 = (ref[:, k].unsqueeze(1) for k in range(4))
    ex_w, ex_h = px2 - px1, py2 - py1
    ex_cx, ex_cy = px1 + 0.5 * ex_w, py1 + 0.5 * ex_h
    gt_w, gt_h = gx2 - gx1, gy2 - gy1
    gt_cx, gt_cy = gx1 + 0.5 * gt_w, gy1 + 0.5 * gt_h
    dx = wx * (gt_cx - ex_cx) / ex_w
    dy = wy * (gt_cy - ex_cy) / ex_h
    dw = ww * torch.log(gt_w / ex_w)
    dh = wh * torch.log(gt_h / ex_h)
    return torch.cat((dx, dy, dw, dh), dim=1)


def tv_decode_single(rel_codes, boxes, weights, clip=math.log(1000.0 / 16)):
    """torchvision's BoxCoder.decode_single, re-typed."""
    boxes = boxes.to(rel_codes.dtype)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = rel_codes[:, 0::4] / wx
    dy = rel_codes[:, 1::4] / wy
    dw = torch.clamp(rel_codes[:, 2::4] / ww, max=clip)
    dh = torch.clamp(rel_codes[:, 3::4] / wh, max=clip)
    pcx = dx * widths[:, None] + ctr_x[:, None]
    pcy = dy * heights[:, None] + ctr_y[:, None]
    pw = torch.exp(dw) * widths[:, None]
    ph = torch.exp(dh) * heights[:, None]
    c_w = torch.tensor(0.5, dtype=pcx.dtype) * pw
    c_h = torch.tensor(0.5, dtype=pcy.dtype) * ph
    return torch.stack((pcx - c_w, pcy - c_h, pcx + c_w, pcy + c_h), dim=2).flatten(1)


def boxes(rng, n, dtype=np.float64):
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(1, 50, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


WEIGHTS = [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]


def test_clip_constant():
    assert BBOX_XFORM_CLIP == math.log(1000.0 / 16) and abs(BBOX_XFORM_CLIP - 4.135166556742356) < 1e-15


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights", WEIGHTS)
def test_encode_decode_match_torchvision(rng, dtype, weights):
    gt, anchors = boxes(rng, 50, dtype), boxes(rng, 50, dtype)
    coder = BoxCoder(weights)
    codes = coder.encode_single(gt, anchors)
    ref = tv_encode(torch.from_numpy(gt), torch.from_numpy(anchors), weights).numpy()
    assert codes.dtype == dtype
    tol = dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(codes, ref, **tol)
    rel = rng.normal(0, 2, (50, 8)).astype(dtype)   # K = 2 boxes per anchor, some dw > clip
    rel[0, 2] = 9.0
    rel[1, 3] = -9.0
    dec = coder.decode_single(rel, anchors)
    ref_dec = tv_decode_single(torch.from_numpy(rel), torch.from_numpy(anchors), weights).numpy()
    assert dec.shape == (50, 8) and dec.dtype == dtype
    # exp may differ by an ulp between NumPy and PyTorch; coordinates ~100 -> atol of a few ulps
    dec_tol = dict(rtol=2e-6, atol=3e-5) if dtype == np.float32 else tol
    np.testing.assert_allclose(dec, ref_dec, **dec_tol)


def test_decode_clamps_above_only():
    coder = BoxCoder()
    anchor = np.array([[0.0, 0.0, 10.0, 10.0]])
    big = coder.decode_single(np.array([[0.0, 0.0, 100.0, -100.0]]), anchor)
    w = big[0, 2] - big[0, 0]
    h = big[0, 3] - big[0, 1]
    np.testing.assert_allclose(w, 10 * 1000 / 16, rtol=1e-12)   # exp(clip) * 10
    assert 0 <= h < 1e-40                                        # no lower clamp: exp(-100) * 10


@given(st.integers(0, 2**32 - 1), st.sampled_from(WEIGHTS))
def test_encode_then_decode_is_identity(seed, weights):
    rng = np.random.default_rng(seed)
    gt, anchors = boxes(rng, 20), boxes(rng, 20)
    coder = BoxCoder(weights)
    back = coder.decode_single(coder.encode_single(gt, anchors), anchors)
    np.testing.assert_allclose(back, gt, rtol=1e-12, atol=1e-10)
    codes = rng.normal(0, 1, (20, 4))
    again = coder.encode_single(coder.decode_single(codes, anchors), anchors)
    np.testing.assert_allclose(again, codes, rtol=1e-9, atol=1e-10)


def test_list_forms_as_torchvision():
    rng = np.random.default_rng(3)
    coder = BoxCoder()
    gts = [boxes(rng, 3), boxes(rng, 5)]
    anchors = [boxes(rng, 3), boxes(rng, 5)]
    parts = coder.encode(gts, anchors)
    assert [p.shape for p in parts] == [(3, 4), (5, 4)]
    np.testing.assert_array_equal(parts[1], coder.encode_single(gts[1], anchors[1]))
    codes = np.concatenate(parts)
    dec = coder.decode(codes, anchors)
    assert dec.shape == (8, 1, 4)
    np.testing.assert_allclose(dec[:, 0], np.concatenate(gts), rtol=1e-12)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_decode_gradients_match_torch(rng, weights):
    anchors = boxes(rng, 6, np.float64)
    rel = rng.normal(0, 1, (6, 8))
    rel[0, 2] = 5.0 * weights[2]   # above the clip: no gradient to that dw
    rel[1, 6] = BBOX_XFORM_CLIP * weights[2]   # exactly at the clip: no gradient (torch >= 2.14 clamp)
    g = rng.standard_normal((6, 8))
    c = tv.tensor(rel, requires_grad=True)
    a = tv.tensor(anchors, requires_grad=True)
    out = BoxCoder(weights).decode_single(c, a)
    assert isinstance(out, tv.Tensor)
    out.backward(g)
    tc = torch.tensor(rel, requires_grad=True)
    ta = torch.tensor(anchors, requires_grad=True)
    tv_decode_single(tc, ta, weights).backward(torch.from_numpy(g))
    np.testing.assert_allclose(c.grad.numpy(), tc.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert c.grad.numpy()[0, 2] == 0.0


@given(st.integers(0, 2**32 - 1))
def test_decode_gradcheck(seed):
    rng = np.random.default_rng(seed)
    anchors = boxes(rng, 3)
    rel = rng.normal(0, 1, (3, 4))
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    assert gradcheck(lambda c, a: coder.decode_single(c, a), rel, anchors)


def test_bad_input():
    coder = BoxCoder()
    with pytest.raises(ValueError, match="weights"):
        BoxCoder((1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="weights"):
        BoxCoder((1.0, 0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="pair up"):
        coder.encode_single(np.zeros((2, 4)), np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"\(N, 4K\)"):
        coder.decode_single(np.zeros((2, 5)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="same N"):
        coder.decode_single(np.zeros((2, 4)), np.ones((3, 4)))
    assert coder.decode_single(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0, 4)
    assert coder.encode_single(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0, 4)


def test_decode_list_form_with_tensor_codes_is_differentiable():
    rng = np.random.default_rng(5)
    coder = BoxCoder()
    anchors = [boxes(rng, 2), boxes(rng, 3)]
    codes = rng.normal(0, 1, (5, 8))
    c = tv.tensor(codes, requires_grad=True)
    out = coder.decode(c, anchors)
    assert isinstance(out, tv.Tensor) and out.shape == (5, 2, 4)
    np.testing.assert_allclose(out.numpy(), coder.decode(codes, anchors))
    g = rng.standard_normal((5, 2, 4))
    out.backward(g)
    tc = torch.tensor(codes, requires_grad=True)
    tv_decode_single(tc, torch.from_numpy(np.concatenate(anchors)), (1.0, 1.0, 1.0, 1.0)).reshape(5, -1, 4).backward(
        torch.from_numpy(g))
    np.testing.assert_allclose(c.grad.numpy(), tc.grad.numpy(), rtol=1e-12, atol=1e-12)
