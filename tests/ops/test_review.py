"""Review cases for the box ops: edge inputs checked against torchvision's formulas re-typed in
PyTorch (torchvision itself does not import here) — float16/float64 anchors, float16 IoU,
empty (0, 4) inputs everywhere, NMS corner cases, BoxCoder with Faster R-CNN weights, Matcher
ties and all-zero qualities."""
import math

import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision import ops
from tinyvision.ops.matcher import matcher_reference
from tinyvision.ops.nms import batched_nms_reference, nms_reference

TORCH_DTYPE = {np.float16: torch.float16, np.float32: torch.float32, np.float64: torch.float64}


def _boxes(rng, n, dtype=np.float64, scale=100.0):
    xy = rng.random((n, 2)) * scale
    wh = rng.random((n, 2)) * scale / 2
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


# ---------------------------------------------------------------- anchors
def _torchvision_anchors(sizes, ratios, image_size, grids, dtype):
    """torchvision: cell anchors made and rounded in float32 at construction, cast to the
    feature maps' dtype (set_cell_anchors), shifted by int32 grid offsets."""
    out = []
    for scales, ars, (gh, gw) in zip(sizes, ratios, grids):
        h = torch.sqrt(torch.as_tensor(ars, dtype=torch.float32))
        scales = torch.as_tensor(scales, dtype=torch.float32)
        ws = ((1 / h)[:, None] * scales[None, :]).view(-1)
        hs = (h[:, None] * scales[None, :]).view(-1)
        base = (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round().to(dtype)
        sx = torch.arange(gw, dtype=torch.int32) * (image_size[1] // gw)
        sy = torch.arange(gh, dtype=torch.int32) * (image_size[0] // gh)
        yy, xx = torch.meshgrid(sy, sx, indexing="ij")
        xx, yy = xx.reshape(-1), yy.reshape(-1)
        shifts = torch.stack((xx, yy, xx, yy), dim=1)
        out.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))
    return torch.cat(out).numpy()


# 12.727922439575195 * sqrt(0.5) / 2 rounds to 4 in float32 but 5 in float64: the base anchors
# must be rounded in float32 whatever the feature maps' dtype.
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("sizes,ratios", [
    (((12.727922439575195,), (6.363961219787598,)), ((0.5, 1.0), (2.0,))),
    (((32,), (64,)), ((0.5, 1.0, 2.0),) * 2),
    (((128, 256, 512),), ((0.5, 1.0, 2.0),)),
])
def test_anchor_dtype_follows_torchvision_float32_rounding(dtype, sizes, ratios):
    image_size = (513, 771)                      # non-square, not divisible by the grids
    grids = [(65, 97), (33, 49)][: len(sizes)]
    ours = ops.AnchorGenerator(sizes, ratios).anchors_for_image(image_size, grids, dtype=dtype)
    ref = _torchvision_anchors(sizes, ratios, image_size, grids, TORCH_DTYPE[dtype])
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours, ref)


def test_anchor_call_batch_of_padded_images_single_level():
    gen = ops.AnchorGenerator(((32,),), ((0.5, 1.0, 2.0),))
    fmap = tv.tensor(np.zeros((3, 4, 7, 5), np.float64))
    out = gen(np.zeros((3, 3, 60, 45), np.float32), [fmap])
    ref = _torchvision_anchors(((32,),), ((0.5, 1.0, 2.0),), (60, 45), [(7, 5)], torch.float64)
    assert len(out) == 3 and all(isinstance(a, tv.Tensor) for a in out)
    for a in out:
        np.testing.assert_array_equal(a.numpy(), ref)


# ---------------------------------------------------------------- IoU family
def _tv_box_iou_giou(b1, b2):
    """torchvision's box_iou and generalized_box_iou: corners in the input dtype, _upcast after."""
    def up(t):
        return t.float() if t.dtype == torch.float16 else t
    area1 = (up(b1)[:, 2] - up(b1)[:, 0]) * (up(b1)[:, 3] - up(b1)[:, 1])
    area2 = (up(b2)[:, 2] - up(b2)[:, 0]) * (up(b2)[:, 3] - up(b2)[:, 1])
    lt = torch.max(b1[:, None, :2], b2[:, :2])
    rb = torch.min(b1[:, None, 2:], b2[:, 2:])
    wh = up(rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    iou = inter / union
    whi = up(torch.max(b1[:, None, 2:], b2[:, 2:]) - torch.min(b1[:, None, :2], b2[:, :2])).clamp(min=0)
    areai = whi[:, :, 0] * whi[:, :, 1]
    return iou, iou - (areai - union) / areai


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_iou_and_giou_bitwise_torchvision_including_float16(dtype, rng):
    b1, b2 = _boxes(rng, 9, dtype, 300.0), _boxes(rng, 6, dtype, 300.0)
    iou, giou = _tv_box_iou_giou(torch.tensor(b1), torch.tensor(b2))
    np.testing.assert_array_equal(ops.box_iou(b1, b2), iou.numpy())
    np.testing.assert_array_equal(ops.generalized_box_iou(b1, b2), giou.numpy())


def test_uint8_boxes_do_not_wrap_around():
    # Disjoint uint8 boxes: a corner difference taken in uint8 would wrap to ~250.
    b1 = np.array([[0, 0, 10, 10]], np.uint8)
    b2 = np.array([[20, 20, 30, 30]], np.uint8)
    assert ops.box_iou(b1, b2)[0, 0] == 0
    assert ops.generalized_box_iou(b1, b2)[0, 0] == pytest.approx(-(900 - 200) / 900)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_every_box_op_takes_empty_boxes(dtype):
    empty = np.zeros((0, 4), dtype)
    some = np.array([[0, 0, 2, 2]], dtype)
    for fn in (ops.box_iou, ops.generalized_box_iou, ops.distance_box_iou, ops.complete_box_iou):
        assert fn(empty, some).shape == (0, 1)
        assert fn(some, empty).shape == (1, 0)
        assert fn(empty, empty).shape == (0, 0)
    assert ops.box_area(empty).shape == (0,)
    for a in ("xyxy", "xywh", "cxcywh"):
        for b in ("xyxy", "xywh", "cxcywh"):
            assert ops.box_convert(empty, a, b).shape == (0, 4)
    assert ops.clip_boxes_to_image(empty, (10, 20)).shape == (0, 4)
    assert ops.remove_small_boxes(empty, 1.0).shape == (0,)
    for keep in (ops.nms(empty, np.zeros(0), 0.5), ops.batched_nms(empty, np.zeros(0), np.zeros(0, np.int64), 0.5)):
        assert keep.shape == (0,) and keep.dtype == np.int64
    k = ops.nms(tv.tensor(empty.astype(np.float32)), tv.tensor(np.zeros(0, np.float32)), 0.5)
    assert isinstance(k, tv.Tensor) and k.shape == (0,)


# ---------------------------------------------------------------- NMS
def _torchvision_nms(boxes, scores, thr):
    """torchvision's CPU kernel, loop for loop (stable descending sort, IoU > thr suppresses)."""
    b = torch.tensor(boxes)
    x1, y1, x2, y2 = (b[:, k].numpy() for k in range(4))
    areas = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).numpy()
    order = torch.tensor(scores).sort(stable=True, descending=True)[1].tolist()
    zero = x1.dtype.type(0)
    suppressed, keep = set(), []
    for a, i in enumerate(order):
        if i in suppressed:
            continue
        keep.append(i)
        for j in order[a + 1:]:
            if j in suppressed:
                continue
            w = max(zero, min(x2[i], x2[j]) - max(x1[i], x1[j]))
            h = max(zero, min(y2[i], y2[j]) - max(y1[i], y1[j]))
            with np.errstate(invalid="ignore"):
                ovr = w * h / (areas[i] + areas[j] - w * h)
            if float(ovr) > thr:
                suppressed.add(j)
    return np.array(keep, dtype=np.int64)


def _nms_cases(rng):
    for dtype in (np.float32, np.float64):
        base = _boxes(rng, 8, dtype)
        dup = base[rng.integers(0, 8, 90)]                          # many exact duplicates
        grid = np.round(_boxes(rng, 90, np.float64, 6.0)).astype(dtype)  # exact IoU ties (1/2, 1/3, ...)
        yield "duplicates", dup, np.round(rng.random(90), 1).astype(dtype)
        yield "all-equal-scores", grid, np.full(90, 0.5, dtype)
        yield "one-box", base[:1], np.ones(1, dtype)
        yield "random", _boxes(rng, 120, dtype), rng.random(120).astype(dtype)


@pytest.mark.parametrize("thr", [-0.5, 0.0, 1e-9, 1 / 3, 0.5, 1.0])
def test_nms_matches_torchvision_kernel_on_hard_inputs(thr):
    rng = np.random.default_rng(7)
    for name, b, s in _nms_cases(rng):
        ref = _torchvision_nms(b, s, thr)
        np.testing.assert_array_equal(ops.nms(b, s, thr), ref, err_msg=name)
        np.testing.assert_array_equal(nms_reference(b, s, thr), ref, err_msg=name)
        out = ops.nms(tv.tensor(b), tv.tensor(s), thr)
        assert isinstance(out, tv.Tensor)
        np.testing.assert_array_equal(out.numpy(), ref, err_msg=name)
    # threshold 1: nothing can have IoU > 1, so every box survives (duplicates included)
    b = np.tile(np.array([[0.0, 0.0, 1.0, 1.0]]), (5, 1))
    np.testing.assert_array_equal(ops.nms(b, np.ones(5), 1.0), np.arange(5))
    np.testing.assert_array_equal(ops.nms(b, np.ones(5), 0.999), [0])


@pytest.mark.parametrize("idx_dtype", [np.int8, np.uint8, np.int32, np.int64, np.float64])
def test_batched_nms_id_dtypes_and_huge_ids(idx_dtype):
    rng = np.random.default_rng(3)
    b = np.round(_boxes(rng, 80, np.float64, 10.0))
    s = np.round(rng.random(80), 1)
    small = rng.integers(0, 4, 80)
    idxs = small.astype(idx_dtype)
    if idx_dtype == np.int64:
        idxs = small * (1 << 50) - (1 << 40)                 # far from the offset trick's range
    keep_mask = np.zeros(80, bool)                            # torchvision's vanilla per-class loop
    for c in np.unique(small):
        members = np.flatnonzero(small == c)
        keep_mask[members[_torchvision_nms(b[members], s[members], 0.4)]] = True
    kept = np.flatnonzero(keep_mask)
    ref = kept[torch.tensor(s[kept]).sort(descending=True, stable=True)[1].numpy()]
    np.testing.assert_array_equal(ops.batched_nms(b, s, idxs, 0.4), ref)
    np.testing.assert_array_equal(batched_nms_reference(b, s, idxs, 0.4), ref)


def test_nms_integer_and_float16_boxes_are_widened_not_refused():
    b = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    s = np.array([0.9, 0.8, 0.7])
    np.testing.assert_array_equal(ops.nms(b, s, 0.5), [0, 2])
    np.testing.assert_array_equal(ops.nms(b.astype(np.float16), s, 0.5), [0, 2])


# ---------------------------------------------------------------- BoxCoder
def _tv_decode(codes, anchors, weights, clip=math.log(1000.0 / 16)):
    w = anchors[:, 2] - anchors[:, 0]
    h = anchors[:, 3] - anchors[:, 1]
    cx = anchors[:, 0] + 0.5 * w
    cy = anchors[:, 1] + 0.5 * h
    dx, dy = codes[:, 0::4] / weights[0], codes[:, 1::4] / weights[1]
    dw = torch.clamp(codes[:, 2::4] / weights[2], max=clip)
    dh = torch.clamp(codes[:, 3::4] / weights[3], max=clip)
    px, py = dx * w[:, None] + cx[:, None], dy * h[:, None] + cy[:, None]
    pw, ph = torch.exp(dw) * w[:, None], torch.exp(dh) * h[:, None]
    return torch.stack((px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw, py + 0.5 * ph), dim=2).flatten(1)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-6), (np.float64, 1e-12)])
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_box_coder_faster_rcnn_weights_huge_deltas_and_gradients(dtype, rtol, weights, rng):
    anchors = _boxes(rng, 12, dtype)
    gt = _boxes(rng, 12, dtype)
    coder = ops.BoxCoder(weights)
    codes = coder.encode_single(gt, anchors)
    np.testing.assert_allclose(coder.decode_single(codes, anchors), gt, rtol=rtol, atol=rtol * 100)
    wt = torch.as_tensor(weights, dtype=TORCH_DTYPE[dtype])
    a_t, g_t = torch.tensor(anchors), torch.tensor(gt)
    aw, gw = a_t[:, 2:] - a_t[:, :2], g_t[:, 2:] - g_t[:, :2]
    ref = torch.cat((wt[:2] * ((g_t[:, :2] + 0.5 * gw) - (a_t[:, :2] + 0.5 * aw)) / aw, wt[2:] * torch.log(gw / aw)), 1)
    np.testing.assert_allclose(codes, ref.numpy(), rtol=rtol, atol=rtol)
    # decode of huge deltas: dw, dh clamp above at log(1000/16), not below; two boxes per anchor
    rel = (rng.standard_normal((12, 8)) * 3).astype(dtype)
    rel[0, 2], rel[1, 3], rel[2, 6], rel[3, 7] = 1e4, -1e4, 80.0, -80.0
    ct, at = torch.tensor(rel, requires_grad=True), torch.tensor(anchors, requires_grad=True)
    y = _tv_decode(ct, at, weights)
    cv, av = tv.tensor(rel, requires_grad=True), tv.tensor(anchors, requires_grad=True)
    yv = coder.decode_single(cv, av)
    assert np.isfinite(yv.numpy()).all()
    np.testing.assert_allclose(yv.numpy(), y.detach().numpy(), rtol=rtol, atol=rtol * 100)
    gy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(torch.tensor(gy))
    yv.backward(gy)
    np.testing.assert_allclose(cv.grad.numpy(), ct.grad.numpy(), rtol=rtol * 10, atol=rtol * 1e3)
    np.testing.assert_allclose(av.grad.numpy(), at.grad.numpy(), rtol=rtol * 10, atol=rtol * 1e3)


# ---------------------------------------------------------------- Matcher
def _tv_matcher(q, high, low, allow):
    q = torch.tensor(q)
    vals, matches = q.max(dim=0)
    all_matches = matches.clone()
    matches[vals < low] = -1
    matches[(vals >= low) & (vals < high)] = -2
    if allow:
        best = q.max(dim=1)[0]
        anchors = torch.where(q == best[:, None])[1]
        matches[anchors] = all_matches[anchors]
    return matches.numpy()


@pytest.mark.parametrize("kind", ["all-zero", "one-gt", "ties", "coarse"])
@pytest.mark.parametrize("allow", [False, True])
def test_matcher_edge_matrices_match_torchvision(kind, allow):
    rng = np.random.default_rng(11)
    q = {"all-zero": np.zeros((3, 20)), "one-gt": rng.random((1, 20)),
         "ties": np.round(rng.random((4, 30)) * 4) / 4, "coarse": np.round(rng.random((5, 40)), 1)}[kind]
    for high, low in ((0.5, 0.4), (0.7, 0.3), (0.5, 0.5)):
        ref = _tv_matcher(q, high, low, allow)
        np.testing.assert_array_equal(ops.Matcher(high, low, allow)(q), ref)
        np.testing.assert_array_equal(matcher_reference(q, high, low, allow), ref)
    if kind == "all-zero" and allow:
        # the documented parity edge: every anchor ties at 0 for every gt -> all matched to gt 0
        np.testing.assert_array_equal(ops.Matcher(0.5, 0.4, True)(q), np.zeros(20, np.int64))


def test_bad_arguments_raise_clear_errors():
    b = np.array([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match=r"size must be \(height, width\)"):
        ops.clip_boxes_to_image(b, 5)
    with pytest.raises(TypeError, match="sizes must hold numbers"):
        ops.AnchorGenerator((("a",),), ((1.0,),))


@pytest.mark.parametrize("ref_dtype,anchor_dtype", [(np.float64, np.float32), (np.float32, np.float64)])
def test_box_coder_encode_mixed_dtypes_bitwise(ref_dtype, anchor_dtype, rng):
    # torchvision computes the anchors' widths/centres in the anchors' dtype, the weights in the
    # reference boxes' dtype, and promotes only when combining them (float64 here: exact).
    gt, anchors = _boxes(rng, 10, ref_dtype), _boxes(rng, 10, anchor_dtype)
    weights = (10.0, 10.0, 5.0, 1 / 3)
    ours = ops.BoxCoder(weights).encode_single(gt, anchors)
    g, a = torch.tensor(gt), torch.tensor(anchors)
    wt = torch.as_tensor(weights, dtype=g.dtype)
    aw, gw = a[:, 2:] - a[:, :2], g[:, 2:] - g[:, :2]
    ref = torch.cat((wt[:2] * ((g[:, :2] + 0.5 * gw) - (a[:, :2] + 0.5 * aw)) / aw, wt[2:] * torch.log(gw / aw)), 1)
    assert ours.dtype == np.float64
    np.testing.assert_array_equal(ours, ref.numpy())


def test_clip_integer_boxes_to_float_size_promotes_like_torch_clamp():
    b = np.array([[1, -2, 30, 40]])
    out = ops.clip_boxes_to_image(b, (20.5, 10.5))
    ref = torch.stack((torch.tensor(b)[..., 0::2].clamp(min=0, max=10.5),
                       torch.tensor(b)[..., 1::2].clamp(min=0, max=20.5)), dim=-1).reshape(b.shape)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, ref.numpy())
    assert ops.clip_boxes_to_image(b, (20, 10)).dtype == b.dtype
