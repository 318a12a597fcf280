"""tinyvision.ops and the box losses against torchvision 0.29, live, on Hypothesis-generated input.

The generated boxes are built to hit the hard cases: corners on a small integer grid (so equal
boxes, shared edges, IoU exactly at a threshold and equal scores are common), zero-width and
zero-height boxes, points, duplicated rows, and also free float boxes; every test runs in
float32 and in float64 (torchvision computes in the input dtype, and so does tinyvision).

Where tinyvision documents a different convention the test checks that convention instead:
IoU 0/0 (two zero-area boxes) is 0 in tinyvision and NaN in torchvision (ops/boxes.py).
"""
import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as hst
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchAnchorGenerator
from torchvision.models.detection.image_list import ImageList

import tinyvision as tv
from tinyvision import ops
from tinyvision.losses import sigmoid_focal_loss

DTYPES = [np.float32, np.float64]
# relative agreement for values computed with the same formula in another order / libm
RTOL = {np.float32: 2e-6, np.float64: 1e-13}


@hst.composite
def box_sets(draw, min_n=0, max_n=12, valid=True):
    """(N, 4) float64 xyxy boxes: grid or free coordinates, degenerate boxes and duplicates."""
    n = draw(hst.integers(min_n, max_n))
    if draw(hst.booleans()):   # integer grid: ties everywhere
        x1 = draw(hst.lists(hst.integers(0, 6), min_size=n, max_size=n))
        y1 = draw(hst.lists(hst.integers(0, 6), min_size=n, max_size=n))
        w = draw(hst.lists(hst.integers(0, 4), min_size=n, max_size=n))
        h = draw(hst.lists(hst.integers(0, 4), min_size=n, max_size=n))
    else:
        coord = hst.floats(0, 50, allow_nan=False, allow_subnormal=False)
        side = hst.one_of(hst.just(0.0), hst.floats(0, 20, allow_nan=False, allow_subnormal=False))
        x1, y1, w, h = (draw(hst.lists(s, min_size=n, max_size=n)) for s in (coord, coord, side, side))
    b = np.stack([np.array(x1, float), np.array(y1, float), np.array(x1, float) + np.array(w, float),
                  np.array(y1, float) + np.array(h, float)], axis=1).reshape(n, 4)
    if n > 1 and draw(hst.booleans()):   # duplicate some rows exactly
        src = draw(hst.lists(hst.integers(0, n - 1), min_size=1, max_size=n))
        dst = draw(hst.lists(hst.integers(0, n - 1), min_size=len(src), max_size=len(src)))
        b[dst] = b[src]
    if not valid and n and draw(hst.booleans()):   # some x2 < x1 (only for ops that accept it)
        b[0, [0, 2]] = b[0, [2, 0]] + np.array([1.0, 0.0])
    return b


def scores_for(draw, n):
    if draw(hst.booleans()):   # few distinct values: ties
        return np.array(draw(hst.lists(hst.sampled_from([0.25, 0.5, 0.75, 1.0]), min_size=n, max_size=n)), float)
    return np.array(draw(hst.lists(hst.floats(0, 1, allow_nan=False), min_size=n, max_size=n)), float)


def T(a):
    return torch.from_numpy(np.array(a, order="C"))   # (ascontiguousarray would make a 0-d array 1-d)


# ---- IoU family ----------------------------------------------------------------------------------------
IOU_FUNCTIONS = {
    "box_iou": (ops.box_iou, torchvision.ops.box_iou),
    "generalized_box_iou": (ops.generalized_box_iou, torchvision.ops.generalized_box_iou),
    "distance_box_iou": (ops.distance_box_iou, torchvision.ops.distance_box_iou),
    "complete_box_iou": (ops.complete_box_iou, torchvision.ops.complete_box_iou),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(IOU_FUNCTIONS))
@given(b1=box_sets(valid=False), b2=box_sets(valid=False))
def test_iou_family_matches_torchvision(name, dtype, b1, b2):
    ours_fn, theirs_fn = IOU_FUNCTIONS[name]
    b1, b2 = b1.astype(dtype), b2.astype(dtype)
    ours = ours_fn(b1, b2)
    with np.errstate(all="ignore"):
        theirs = theirs_fn(T(b1), T(b2)).numpy()
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    defined = np.isfinite(theirs)
    if name in ("box_iou", "generalized_box_iou"):
        # same operations in the same order: bit for bit where torchvision's value is defined
        np.testing.assert_array_equal(ours[defined], theirs[defined])
    else:
        scale = max(1.0, float(np.abs(theirs[defined]).max(initial=0.0)))
        np.testing.assert_allclose(ours[defined], theirs[defined], rtol=RTOL[dtype], atol=RTOL[dtype] * scale)
    if name == "box_iou":
        # documented: 0/0 (both areas 0, or "areas" cancelling) is 0, where torchvision has NaN
        assert (ours[~defined] == 0).all()
    elif name == "generalized_box_iou":
        assert np.isfinite(ours).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(b=box_sets(valid=False), fmts=hst.tuples(hst.sampled_from(["xyxy", "xywh", "cxcywh"]),
                                                hst.sampled_from(["xyxy", "xywh", "cxcywh"])),
       size=hst.tuples(hst.integers(1, 30), hst.integers(1, 30)), min_size=hst.sampled_from([0.0, 1.0, 2.5]))
def test_box_area_convert_clip_and_remove_small_match_torchvision(dtype, b, fmts, size, min_size):
    b = b.astype(dtype)
    np.testing.assert_array_equal(ops.box_area(b), torchvision.ops.box_area(T(b)).numpy())
    np.testing.assert_array_equal(ops.box_convert(b, *fmts), torchvision.ops.box_convert(T(b), *fmts).numpy())
    np.testing.assert_array_equal(ops.clip_boxes_to_image(b, size),
                                  torchvision.ops.clip_boxes_to_image(T(b), size).numpy())
    np.testing.assert_array_equal(ops.remove_small_boxes(b, min_size),
                                  torchvision.ops.remove_small_boxes(T(b), min_size).numpy())


# ---- NMS -----------------------------------------------------------------------------------------------
THRESHOLDS = hst.one_of(hst.sampled_from([0.0, 0.2, 0.25, 0.5, 0.7, 1.0]), hst.floats(0, 1))


@hst.composite
def nms_inputs(draw, max_n=40):
    b = draw(box_sets(max_n=max_n))
    return b, scores_for(draw, len(b)), draw(THRESHOLDS)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(data=nms_inputs())
def test_nms_keeps_torchvisions_boxes_in_torchvisions_order(dtype, data):
    b, s, thr = data
    b, s = b.astype(dtype), s.astype(dtype)
    ours = ops.nms(b, s, thr)
    theirs = torchvision.ops.nms(T(b), T(s), thr).numpy()
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(data=nms_inputs(), hyp=hst.data())
def test_batched_nms_matches_torchvision(dtype, data, hyp):
    b, s, thr = data
    idxs = np.array(hyp.draw(hst.lists(hst.integers(0, 3), min_size=len(b), max_size=len(b))), dtype=np.int64)
    b, s = b.astype(dtype), s.astype(dtype)
    ours = ops.batched_nms(b, s, idxs, thr)
    theirs = torchvision.ops.batched_nms(T(b), T(s), T(idxs), thr).numpy()
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_batched_nms_large_input_with_ties_matches_torchvision(dtype, rng):
    """More than 1000 boxes: torchvision's CPU batched_nms switches to its per-class loop
    (_batched_nms_vanilla) and re-sorts the kept boxes with torch's *unstable* sort, so among
    equal scores its order is the sort algorithm's accident (here: not by index). tinyvision
    documents its order (equal scores: lower index first). Compared: the kept set, the score
    sequence, and, within each run of equal scores, the same indices."""
    n = 1500
    xy = rng.integers(0, 40, (n, 2)).astype(float)
    b = np.concatenate([xy, xy + rng.integers(1, 8, (n, 2))], axis=1).astype(dtype)
    s = (rng.integers(0, 5, n) / 4).astype(dtype)
    idxs = rng.integers(0, 6, n)
    ours = ops.batched_nms(b, s, idxs, 0.5)
    theirs = torchvision.ops.batched_nms(T(b), T(s), T(idxs), 0.5).numpy()
    np.testing.assert_array_equal(np.sort(ours), np.sort(theirs))      # the same set
    np.testing.assert_array_equal(s[ours], s[theirs])                   # in score order
    assert (np.diff(ours)[np.diff(s[ours]) == 0] > 0).all()             # ties: by index
    assert not np.array_equal(ours, theirs)   # if torch's sort ever turns stable, tighten this test


# ---- anchors -------------------------------------------------------------------------------------------
@hst.composite
def anchor_configs(draw):
    levels = draw(hst.integers(1, 3))
    sizes = tuple(tuple(draw(hst.lists(hst.one_of(hst.integers(4, 128), hst.floats(4, 128)), min_size=1, max_size=3)))
                  for _ in range(levels))
    ratios = tuple(tuple(draw(hst.lists(hst.one_of(hst.sampled_from([0.5, 1.0, 2.0]), hst.floats(0.25, 4)),
                                        min_size=1, max_size=3))) for _ in range(levels))
    fmaps = [(draw(hst.integers(1, 5)), draw(hst.integers(1, 5))) for _ in range(levels)]
    image = (draw(hst.integers(max(h for h, _ in fmaps), 40)), draw(hst.integers(max(w for _, w in fmaps), 40)))
    return sizes, ratios, fmaps, image


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(config=anchor_configs())
@settings(max_examples=15)
def test_anchor_generator_matches_torchvision(dtype, config):
    sizes, ratios, fmaps, image = config
    ours_gen = ops.AnchorGenerator(sizes, ratios)
    theirs_gen = TorchAnchorGenerator(sizes, ratios)
    for a, b in zip(ours_gen.cell_anchors, theirs_gen.cell_anchors):
        np.testing.assert_array_equal(a, b.numpy())
    assert ours_gen.num_anchors_per_location() == theirs_gen.num_anchors_per_location()
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    images = ImageList(torch.zeros((1, 3) + image, dtype=tdtype), [image])
    feature_maps = [torch.zeros((1, 1, h, w), dtype=tdtype) for h, w in fmaps]
    theirs = theirs_gen(images, feature_maps)[0].numpy()
    ours = ours_gen.anchors_for_image(image, fmaps, dtype=dtype)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


# ---- box coder -----------------------------------------------------------------------------------------
@hst.composite
def coder_inputs(draw):
    n = draw(hst.integers(1, 10))
    props = draw(box_sets(min_n=n, max_n=n))
    props[:, 2:] += draw(hst.sampled_from([0.5, 1.0, 3.0]))   # anchors have a positive size
    refs = draw(box_sets(min_n=n, max_n=n))
    refs[:, 2:] += 0.25                                        # so do targets (log of the ratio)
    weights = draw(hst.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 0.5, 1.5, 3.0)]))
    codes = np.array(draw(hst.lists(hst.floats(-6, 6), min_size=4 * n, max_size=4 * n))).reshape(n, 4)
    return refs, props, weights, codes


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(data=coder_inputs())
def test_box_coder_encode_decode_match_torchvision(dtype, data):
    refs, props, weights, codes = (d.astype(dtype) if isinstance(d, np.ndarray) else d for d in data)
    ours, theirs = ops.BoxCoder(weights), det_utils.BoxCoder(weights)
    enc, tenc = ours.encode_single(refs, props), theirs.encode_single(T(refs), T(props)).numpy()
    assert enc.dtype == tenc.dtype
    np.testing.assert_allclose(enc, tenc, rtol=RTOL[dtype], atol=RTOL[dtype] * 10)
    # decode clamps dw, dh at log(1000/16) ~ 4.135: codes up to 6 hit the clamp
    dec, tdec = ours.decode_single(codes, props), theirs.decode_single(T(codes), T(props)).numpy()
    scale = max(1.0, float(np.abs(tdec).max()))
    np.testing.assert_allclose(dec, tdec, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def test_box_coder_decode_gradient_matches_torch(rng):
    n = 6
    anchors = np.concatenate([rng.uniform(0, 20, (n, 2)), rng.uniform(21, 40, (n, 2))], axis=1)
    codes = rng.normal(0, 2, (n, 8))   # two boxes per anchor; some dw, dh beyond the clamp
    gy = rng.standard_normal((n, 8))
    weights = (10.0, 10.0, 5.0, 5.0)
    c = tv.tensor(codes, requires_grad=True)
    ops.BoxCoder(weights).decode_single(c, anchors).backward(gy)
    tc = T(codes).requires_grad_(True)
    det_utils.BoxCoder(weights).decode_single(tc, T(anchors)).reshape(n, 8).backward(T(gy))
    np.testing.assert_allclose(c.grad.numpy(), tc.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---- matcher -------------------------------------------------------------------------------------------
@hst.composite
def quality_matrices(draw):
    g, a = draw(hst.integers(1, 5)), draw(hst.integers(1, 12))
    values = hst.one_of(hst.sampled_from([0.0, 0.3, 0.4, 0.5, 0.6, 1.0]), hst.floats(0, 1))
    return np.array(draw(hst.lists(values, min_size=g * a, max_size=g * a))).reshape(g, a)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("allow_low", [False, True], ids=["strict", "low_quality"])
@given(q=quality_matrices(), thresholds=hst.sampled_from([(0.5, 0.4), (0.5, 0.5), (0.6, 0.3), (0.3, 0.0)]))
def test_matcher_matches_torchvision(dtype, allow_low, q, thresholds):
    q = q.astype(dtype)
    ours = ops.Matcher(*thresholds, allow_low_quality_matches=allow_low)(q)
    theirs = det_utils.Matcher(*thresholds, allow_low_quality_matches=allow_low)(T(q)).numpy()
    np.testing.assert_array_equal(ours, theirs)


# ---- losses --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(hyp=hst.data(), reduction=hst.sampled_from(["none", "mean", "sum"]))
def test_sigmoid_focal_loss_value_and_gradient_match_torchvision(dtype, hyp, reduction):
    shape = hyp.draw(hst.sampled_from([(7,), (3, 5), (2, 3, 4)]))
    n = int(np.prod(shape))
    x = np.array(hyp.draw(hst.lists(hst.floats(-12, 12), min_size=n, max_size=n))).reshape(shape).astype(dtype)
    soft = hyp.draw(hst.booleans())
    t = np.array(hyp.draw(hst.lists(hst.floats(0, 1) if soft else hst.sampled_from([0.0, 1.0]),
                                    min_size=n, max_size=n))).reshape(shape).astype(dtype)
    alpha = hyp.draw(hst.sampled_from([-1.0, 0.25, 0.5, 1.0]))
    gamma = hyp.draw(hst.sampled_from([0.0, 1.0, 2.0, 2.5]))
    xv = tv.tensor(x, requires_grad=True)
    loss = sigmoid_focal_loss(xv, tv.tensor(t), alpha=alpha, gamma=gamma, reduction=reduction)
    xt = T(x).requires_grad_(True)
    tloss = torchvision.ops.sigmoid_focal_loss(xt, T(t), alpha=alpha, gamma=gamma, reduction=reduction)
    gy = np.ones(tuple(tloss.shape), dtype)
    loss.backward(gy)
    tloss.backward(T(gy))
    rtol = {np.float32: 2e-5, np.float64: 1e-11}[dtype]
    scale = max(1e-3, float(np.abs(tloss.detach().numpy()).max()))
    np.testing.assert_allclose(loss.numpy(), tloss.detach().numpy(), rtol=rtol, atol=rtol * scale)
    gscale = max(1e-3, float(np.abs(xt.grad.numpy()).max()))
    np.testing.assert_allclose(xv.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=rtol * gscale)


BOX_LOSSES = {
    "generalized_box_iou_loss": (ops.generalized_box_iou_loss, torchvision.ops.generalized_box_iou_loss),
    "distance_box_iou_loss": (ops.distance_box_iou_loss, torchvision.ops.distance_box_iou_loss),
}


@hst.composite
def box_pairs(draw):
    n = draw(hst.integers(0, 8))
    return draw(box_sets(min_n=n, max_n=n)), draw(box_sets(min_n=n, max_n=n))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(BOX_LOSSES))
@given(pair=box_pairs(), reduction=hst.sampled_from(["none", "mean", "sum"]))
def test_box_iou_losses_value_and_gradient_match_torchvision(name, dtype, pair, reduction):
    """Values and the gradients of both box sets, degenerate and coinciding boxes included
    (ties in the max/min of the corners: both frameworks split the gradient in halves)."""
    ours_fn, theirs_fn = BOX_LOSSES[name]
    b1, b2 = (b.astype(dtype) for b in pair)
    v1, v2 = tv.tensor(b1, requires_grad=True), tv.tensor(b2, requires_grad=True)
    t1, t2 = T(b1).requires_grad_(True), T(b2).requires_grad_(True)
    loss = ours_fn(v1, v2, reduction=reduction)
    tloss = theirs_fn(t1, t2, reduction=reduction)
    assert loss.shape == tuple(tloss.shape)
    gy = np.linspace(0.5, 1.5, tloss.numel()).reshape(tuple(tloss.shape)).astype(dtype)
    loss.backward(gy)
    tloss.backward(T(gy))
    rtol = {np.float32: 1e-5, np.float64: 1e-11}[dtype]
    lscale = max(1.0, float(np.abs(tloss.detach().numpy()).max(initial=0.0)))
    np.testing.assert_allclose(loss.numpy(), tloss.detach().numpy(), rtol=rtol, atol=rtol * lscale, err_msg="loss")
    gscale = max(1.0, float(np.abs(t1.grad.numpy()).max(initial=0.0)), float(np.abs(t2.grad.numpy()).max(initial=0.0)))
    atol = np.full((len(b1), 1), rtol * gscale)
    atol[_degenerate_pairs(b1, b2)] = _degenerate_atol(b1, b2, dtype)
    for what, a, b in (("grad boxes1", v1.grad.numpy(), t1.grad.numpy()), ("grad boxes2", v2.grad.numpy(), t2.grad.numpy())):
        assert (np.abs(a - b) <= atol + rtol * np.abs(b)).all(), (what, a, b, atol)


LOSS_EPS = 1e-7   # torchvision's default eps, added to U and C (and c^2)


def _degenerate_pairs(b1, b2, tiny=1e-3):
    """Pairs whose union U or enclosing area C is (nearly) 0: there the loss divides by ~eps."""
    b1, b2 = b1.astype(np.float64), b2.astype(np.float64)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    wi = np.clip(np.minimum(b1[:, 2], b2[:, 2]) - np.maximum(b1[:, 0], b2[:, 0]), 0, None)
    hi = np.clip(np.minimum(b1[:, 3], b2[:, 3]) - np.maximum(b1[:, 1], b2[:, 1]), 0, None)
    union = area(b1) + area(b2) - wi * hi
    wc = np.maximum(b1[:, 2], b2[:, 2]) - np.minimum(b1[:, 0], b2[:, 0])
    hc = np.maximum(b1[:, 3], b2[:, 3]) - np.minimum(b1[:, 1], b2[:, 1])
    return (union < tiny) | (wc * hc < tiny) | (wc ** 2 + hc ** 2 < tiny)


def _degenerate_atol(b1, b2, dtype):
    """Round-off of a gradient built from terms ~extent / eps that cancel (in exact arithmetic,
    often to 0): e.g. two zero-width boxes touching end to end, d(C - U)/(C + eps) / dx1 has a
    -h_C/eps from C and +h_C/eps from U; torchvision's order of operations happens to give an
    exact 0, tinyvision's a residue of 1e7 * 8 * 2^-52 = 4e-9 in float64. The bound: 16 ulps of
    (1 + extent) / eps."""
    extent = 1.0 + max(float(np.abs(b1).max(initial=0.0)), float(np.abs(b2).max(initial=0.0)))
    return 16 * np.finfo(dtype).eps * extent / LOSS_EPS


@pytest.mark.parametrize("name", list(BOX_LOSSES))
def test_box_iou_losses_point_against_zero_width_box(name):
    """The case above in numbers: a point and a zero-width box, where 1/eps terms cancel."""
    ours_fn, theirs_fn = BOX_LOSSES[name]
    b1, b2 = np.zeros((2, 4)), np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 2.0]])
    v1, v2 = tv.tensor(b1, requires_grad=True), tv.tensor(b2, requires_grad=True)
    t1, t2 = T(b1).requires_grad_(True), T(b2).requires_grad_(True)
    loss, tloss = ours_fn(v1, v2), theirs_fn(t1, t2)
    loss.backward(np.ones(2))
    tloss.backward(torch.ones(2, dtype=torch.float64))
    np.testing.assert_allclose(loss.numpy(), tloss.detach().numpy(), rtol=1e-12)
    scale = max(1.0, float(t1.grad.abs().max()), float(t2.grad.abs().max()))
    np.testing.assert_allclose(v1.grad.numpy(), t1.grad.numpy(), rtol=1e-12, atol=1e-15 * scale)
    np.testing.assert_allclose(v2.grad.numpy(), t2.grad.numpy(), rtol=1e-12, atol=1e-15 * scale)
