"""box_convert, box_area, box_iou, generalized_box_iou, distance/complete IoU, clip, remove_small.

Outside references: torchvision's formulas re-implemented in PyTorch below (torchvision does
not import here), a plain-loop reference, and hand-computed golden values.
"""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyvision as tv
from tinyvision.ops import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes_to_image,
    complete_box_iou,
    distance_box_iou,
    generalized_box_iou,
    remove_small_boxes,
)
from tinyvision.ops.boxes import box_iou_reference


# ---------------------------------------------------------------------------------------
# torchvision's formulas, in PyTorch (the outside reference)
# ---------------------------------------------------------------------------------------
def tv_box_area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def tv_inter_union(b1, b2):
    area1, area2 = tv_box_area(b1), tv_box_area(b2)
    lt = torch.max(b1[:, None, :2], b2[:, :2])
    rb = torch.min(b1[:, None, 2:], b2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter, area1[:, None] + area2 - inter


def tv_box_iou(b1, b2):
    inter, union = tv_inter_union(b1, b2)
    return inter / union


def tv_generalized_box_iou(b1, b2):
    inter, union = tv_inter_union(b1, b2)
    iou = inter / union
    lti = torch.min(b1[:, None, :2], b2[:, :2])
    rbi = torch.max(b1[:, None, 2:], b2[:, 2:])
    whi = (rbi - lti).clamp(min=0)
    areai = whi[:, :, 0] * whi[:, :, 1]
    return iou - (areai - union) / areai


def tv_diou_iou(b1, b2, eps=1e-7):
    iou = tv_box_iou(b1, b2)
    lti = torch.min(b1[:, None, :2], b2[:, :2])
    rbi = torch.max(b1[:, None, 2:], b2[:, 2:])
    whi = (rbi - lti).clamp(min=0)
    diag = whi[:, :, 0] ** 2 + whi[:, :, 1] ** 2 + eps
    xp_, yp_ = (b1[:, 0] + b1[:, 2]) / 2, (b1[:, 1] + b1[:, 3]) / 2
    xg, yg = (b2[:, 0] + b2[:, 2]) / 2, (b2[:, 1] + b2[:, 3]) / 2
    cd = (xp_[:, None] - xg[None, :]) ** 2 + (yp_[:, None] - yg[None, :]) ** 2
    return iou - cd / diag, iou


def tv_complete_box_iou(b1, b2, eps=1e-7):
    diou, iou = tv_diou_iou(b1, b2, eps)
    w_pred = b1[:, None, 2] - b1[:, None, 0]
    h_pred = b1[:, None, 3] - b1[:, None, 1]
    w_gt = b2[:, 2] - b2[:, 0]
    h_gt = b2[:, 3] - b2[:, 1]
    v = (4 / (torch.pi**2)) * torch.pow(torch.atan(w_pred / h_pred) - torch.atan(w_gt / h_gt), 2)
    alpha = v / (1 - iou + v + eps)
    return diou - alpha * v


def random_boxes(rng, n, dtype=np.float32, span=100.0, max_wh=40.0, degenerate=0.0):
    xy = rng.uniform(0, span, (n, 2))
    wh = rng.uniform(0, max_wh, (n, 2))
    if degenerate:
        wh[rng.random(n) < degenerate, 0] = 0.0
        wh[rng.random(n) < degenerate, 1] = 0.0
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


@st.composite
def box_sets(draw, max_n=12, dtype=np.float64, integer=False):
    """(n, 4) valid boxes; coordinates either small integers (many exact ties/touches) or floats."""
    n = draw(st.integers(1, max_n))
    if integer or draw(st.booleans()):
        el = st.integers(0, 20).map(float)
    else:
        el = st.floats(0, 100, allow_nan=False, width=32)
    xy = draw(hnp.arrays(np.float64, (n, 2), elements=el))
    wh = draw(hnp.arrays(np.float64, (n, 2), elements=el))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


# ---------------------------------------------------------------------------------------
# box_convert / box_area
# ---------------------------------------------------------------------------------------
def test_box_convert_golden():
    xyxy = np.array([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 1.0, 3.0]])
    np.testing.assert_array_equal(box_convert(xyxy, "xyxy", "xywh"), [[10, 20, 20, 40], [0, 0, 1, 3]])
    np.testing.assert_array_equal(box_convert(xyxy, "xyxy", "cxcywh"), [[20, 40, 20, 40], [0.5, 1.5, 1, 3]])
    np.testing.assert_array_equal(box_convert(np.array([[20.0, 40, 20, 40]]), "cxcywh", "xywh"), [[10, 20, 20, 40]])


@given(box_sets(dtype=np.float32))
def test_box_convert_matches_torchvision_formulas_and_round_trips(b):
    t = torch.from_numpy(b)
    x1, y1, x2, y2 = t.unbind(-1)
    want = {
        "xywh": torch.stack((x1, y1, x2 - x1, y2 - y1), -1),
        "cxcywh": torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), -1),
    }
    for fmt, w in want.items():
        got = box_convert(b, "xyxy", fmt)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, w.numpy())
    # to xyxy and back: the identity up to float32 round-off
    for fmt in ("xywh", "cxcywh"):
        back = box_convert(box_convert(b, "xyxy", fmt), fmt, "xyxy")
        np.testing.assert_allclose(back, b, rtol=1e-6, atol=1e-4)
    # xywh -> cxcywh goes through xyxy, as torchvision
    xywh = box_convert(b, "xyxy", "xywh")
    np.testing.assert_array_equal(
        box_convert(xywh, "xywh", "cxcywh"), box_convert(box_convert(xywh, "xywh", "xyxy"), "xyxy", "cxcywh")
    )


def test_box_convert_dtypes_batches_and_copies():
    ints = np.array([[1, 2, 4, 7]], dtype=np.int64)
    assert box_convert(ints, "xyxy", "xywh").dtype == np.int64
    c = box_convert(ints, "xyxy", "cxcywh")
    assert c.dtype == np.float32
    np.testing.assert_array_equal(c, [[2.5, 4.5, 3, 5]])
    batch = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    assert box_convert(batch, "xyxy", "cxcywh").shape == (2, 3, 4)
    same = box_convert(batch, "xywh", "xywh")
    assert same is not batch and np.array_equal(same, batch)
    out = box_convert(tv.tensor(batch), "xyxy", "xywh")
    assert isinstance(out, tv.Tensor)


def test_box_convert_bad_input():
    with pytest.raises(ValueError, match="format"):
        box_convert(np.zeros((1, 4)), "xyxy", "yxyx")
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        box_convert(np.zeros((2, 5)), "xyxy", "xywh")
    with pytest.raises(TypeError):
        box_convert(np.zeros((2, 4), dtype=bool), "xyxy", "xywh")


def test_box_area():
    b = np.array([[0.0, 0.0, 2.0, 3.0], [1, 1, 1, 5], [3, 3, 1, 4]], dtype=np.float32)
    np.testing.assert_array_equal(box_area(b), [6, 0, -2])  # x2 < x1: negative, as torchvision
    assert box_area(b).dtype == np.float32
    assert box_area(b.astype(np.float16)).dtype == np.float32
    assert box_area(b.astype(np.int64)).dtype == np.int64
    assert box_area(b.astype(np.uint8)[:2]).dtype == np.int32
    assert box_area(np.zeros((0, 4))).shape == (0,)
    assert isinstance(box_area(tv.tensor(b)), tv.Tensor)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        box_area(np.zeros(4))


# ---------------------------------------------------------------------------------------
# box_iou
# ---------------------------------------------------------------------------------------
def test_box_iou_golden():
    a = np.array([[0.0, 0.0, 2.0, 2.0]])
    b = np.array([
        [1.0, 1.0, 3.0, 3.0],      # I = 1, U = 7
        [0.0, 0.0, 2.0, 2.0],      # itself
        [2.0, 0.0, 4.0, 2.0],      # touching edge: I = 0
        [0.0, 0.0, 1.0, 2.0],      # half inside: I = 2, U = 4
        [0.5, 0.5, 1.5, 1.5],      # inside: I = 1, U = 4
        [5.0, 5.0, 5.0, 5.0],      # a point far away
        [1.0, 1.0, 1.0, 1.0],      # a point inside: area 0 -> IoU 0
    ])
    np.testing.assert_allclose(box_iou(a, b), [[1 / 7, 1, 0, 0.5, 0.25, 0, 0]], rtol=1e-15)


def test_box_iou_zero_over_zero_is_zero():
    pts = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0, 0, 0, 5]], dtype=np.float32)
    iou = box_iou(pts, pts)
    assert not np.isnan(iou).any()
    np.testing.assert_array_equal(iou, np.zeros((3, 3)))
    # torchvision gives NaN exactly there, and agrees elsewhere
    t = tv_box_iou(torch.from_numpy(pts), torch.from_numpy(pts)).numpy()
    assert np.isnan(t).any()
    np.testing.assert_array_equal(np.where(np.isnan(t), 0, t), iou)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_box_iou_bitwise_equal_to_torchvision_formula_and_loop(rng, dtype):
    b1 = random_boxes(rng, 57, dtype, degenerate=0.1)
    b2 = random_boxes(rng, 43, dtype, degenerate=0.1)
    ours = box_iou(b1, b2)
    assert ours.dtype == dtype and ours.shape == (57, 43)
    ref = tv_box_iou(torch.from_numpy(b1), torch.from_numpy(b2)).numpy()
    ref = np.where(np.isnan(ref), 0, ref)
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(ours, box_iou_reference(b1, b2))
    # both kernels (parallel and serial) on the same input
    from tinyvision.kernels.cpu.boxes import box_iou_kernel, box_iou_kernel_serial

    for kernel in (box_iou_kernel, box_iou_kernel_serial):
        out = np.empty_like(ours)
        kernel(b1, b2, out)
        np.testing.assert_array_equal(out, ours)
    big1, big2 = random_boxes(rng, 300, dtype), random_boxes(rng, 260, dtype)
    par = np.empty((300, 260), dtype)
    box_iou_kernel(big1, big2, par)
    ref = tv_box_iou(torch.from_numpy(big1), torch.from_numpy(big2)).numpy()
    np.testing.assert_array_equal(par, np.where(np.isnan(ref), 0, ref))
    np.testing.assert_array_equal(box_iou(big1, big2), par)


def test_box_iou_non_numba_path_equals_kernel(rng):
    # integer boxes and float16 go through the array formula; compare with the float kernel
    b1 = rng.integers(0, 50, (20, 2))
    b1 = np.concatenate([b1, b1 + rng.integers(0, 20, (20, 2))], axis=1)
    b2 = b1[::-1].copy()
    got = box_iou(b1, b2)
    assert got.dtype == np.float32
    ref = tv_box_iou(torch.from_numpy(b1), torch.from_numpy(b2)).numpy()
    np.testing.assert_array_equal(got, np.where(np.isnan(ref), 0, ref))
    np.testing.assert_allclose(got, box_iou(b1.astype(np.float64), b2.astype(np.float64)), rtol=1e-6)
    assert box_iou(b1.astype(np.float16), b2).dtype == np.float32


def test_box_iou_mixed_dtypes_follow_torch_promotion(rng):
    b32 = random_boxes(rng, 5, np.float32)
    b64 = random_boxes(rng, 6, np.float64)
    assert box_iou(b32, b64).dtype == np.float64
    assert box_iou(b32, b64.astype(np.int64)).dtype == np.float32


def test_box_iou_empty_tensor_and_bad_input():
    assert box_iou(np.zeros((0, 4), np.float32), np.zeros((3, 4), np.float32)).shape == (0, 3)
    assert box_iou(np.zeros((2, 4)), np.zeros((0, 4))).shape == (2, 0)
    out = box_iou(tv.tensor(np.ones((2, 4))), np.ones((1, 4)))
    assert isinstance(out, tv.Tensor) and out.shape == (2, 1)
    with pytest.raises(ValueError, match="boxes2 must have shape"):
        box_iou(np.zeros((2, 4)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        box_iou(np.array([[0, 0, np.nan, 1.0]]), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN or inf"):
        box_iou(np.zeros((2, 4)), np.array([[0, 0, np.inf, 1.0]]))


@given(box_sets(), box_sets(), st.floats(-50, 50), st.floats(-50, 50), st.sampled_from([0.5, 2.0, 4.0]))
def test_box_iou_properties(b1, b2, dx, dy, scale):
    iou = box_iou(b1, b2)
    assert np.all((iou >= 0) & (iou <= 1))
    np.testing.assert_array_equal(iou, box_iou(b2, b1).T)                 # symmetric
    self_iou = np.diag(box_iou(b1, b1))
    area = box_area(b1)
    np.testing.assert_allclose(self_iou[area > 0], 1.0, rtol=1e-12)       # 1 on itself
    assert np.all(self_iou[area == 0] == 0)                               # degenerate: 0
    shift = np.array([dx, dy, dx, dy])
    np.testing.assert_allclose(box_iou(b1 + shift, b2 + shift), iou, atol=1e-9)   # translation
    np.testing.assert_allclose(box_iou(b1 * scale, b2 * scale), iou, atol=1e-12)  # scaling (exact x2^k)


# ---------------------------------------------------------------------------------------
# generalized / distance / complete IoU
# ---------------------------------------------------------------------------------------
def test_generalized_box_iou_golden():
    a = np.array([[0.0, 0.0, 1.0, 1.0]])
    b = np.array([[2.0, 0.0, 3.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.5, 0.0, 1.5, 1.0], [5, 5, 5, 5]])
    # disjoint: C = 3, U = 2 -> -1/3; same: 1; half: 1/3 - 0; point far: C = 25, U = 1 -> -24/25
    np.testing.assert_allclose(generalized_box_iou(a, b), [[-1 / 3, 1, 1 / 3, -24 / 25]], rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generalized_box_iou_equals_torchvision_formula(rng, dtype):
    b1 = random_boxes(rng, 30, dtype)
    b2 = random_boxes(rng, 20, dtype)
    ref = tv_generalized_box_iou(torch.from_numpy(b1), torch.from_numpy(b2)).numpy()
    np.testing.assert_array_equal(generalized_box_iou(b1, b2), ref)


def test_generalized_box_iou_degenerate_is_finite():
    pts = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 3.0]])
    g = generalized_box_iou(pts, pts)
    np.testing.assert_array_equal(g, np.zeros((2, 2)))


@given(box_sets(), box_sets())
def test_generalized_box_iou_properties(b1, b2):
    g = generalized_box_iou(b1, b2)
    iou = box_iou(b1, b2)
    assert np.all((g >= -1 - 1e-12) & (g <= 1 + 1e-12))
    assert np.all(g <= iou + 1e-12)
    np.testing.assert_allclose(g, generalized_box_iou(b2, b1).T, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distance_and_complete_iou_match_torchvision_formulas(rng, dtype):
    b1 = random_boxes(rng, 25, dtype) + np.asarray([0, 0, 1, 1], dtype)  # positive sizes
    b2 = random_boxes(rng, 15, dtype) + np.asarray([0, 0, 1, 1], dtype)
    t1, t2 = torch.from_numpy(b1), torch.from_numpy(b2)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(distance_box_iou(b1, b2), tv_diou_iou(t1, t2)[0].numpy(), **tol)
    np.testing.assert_allclose(complete_box_iou(b1, b2), tv_complete_box_iou(t1, t2).numpy(), **tol)
    d = distance_box_iou(b1, b1)
    np.testing.assert_allclose(np.diag(d), 1.0, rtol=1e-5)


# ---------------------------------------------------------------------------------------
# clip_boxes_to_image / remove_small_boxes
# ---------------------------------------------------------------------------------------
def test_clip_boxes_to_image():
    b = np.array([[-5.0, 2.0, 50.0, 120.0], [10, -3, 20, 30], [60, 200, 70, 300]], dtype=np.float32)
    got = clip_boxes_to_image(b, (100, 40))
    np.testing.assert_array_equal(got, [[0, 2, 40, 100], [10, 0, 20, 30], [40, 100, 40, 100]])
    assert got.dtype == np.float32
    assert b[0, 0] == -5  # input untouched
    t = torch.from_numpy(b)
    ref = torch.stack((t[..., 0::2].clamp(0, 40), t[..., 1::2].clamp(0, 100)), dim=2).reshape(t.shape)
    np.testing.assert_array_equal(got, ref.numpy())
    assert clip_boxes_to_image(b.astype(np.int64), (100, 40)).dtype == np.int64
    assert clip_boxes_to_image(np.zeros((2, 3, 4)), (5, 5)).shape == (2, 3, 4)
    assert clip_boxes_to_image(b, (np.int64(100), np.int64(40))).dtype == np.float32
    with pytest.raises(ValueError, match="height, width"):
        clip_boxes_to_image(b, (100,))


def test_remove_small_boxes():
    b = np.array([[0.0, 0.0, 1.0, 5.0], [0, 0, 5, 5], [0, 0, 2, 2], [0, 0, 2, 1.999]])
    keep = remove_small_boxes(b, 2.0)
    np.testing.assert_array_equal(keep, [1, 2])     # >= min_size is kept
    assert keep.dtype == np.int64
    assert remove_small_boxes(np.zeros((0, 4)), 1.0).shape == (0,)
    assert isinstance(remove_small_boxes(tv.tensor(b), 1.0), tv.Tensor)
