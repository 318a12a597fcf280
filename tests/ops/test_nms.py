"""nms and batched_nms: torchvision's rule, tie order, kernels vs the plain-loop reference."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyvision as tv
from tinyvision.kernels.cpu.nms import batched_nms_sorted, nms_sorted_greedy, nms_sorted_grid
from tinyvision.ops import batched_nms, box_iou, nms
from tinyvision.ops.nms import batched_nms_reference, nms_numpy_greedy, nms_reference


def random_boxes(rng, n, dtype=np.float32, span=200.0, max_wh=40.0):
    xy = rng.uniform(0, span, (n, 2))
    wh = rng.uniform(0, max_wh, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def run_kernel(kernel, boxes, scores, thr):
    order = np.argsort(-scores, kind="stable")
    cols = [np.ascontiguousarray(boxes[order, k]) for k in range(4)]
    keep = np.zeros(len(boxes), np.uint8)
    kernel(*cols, thr, keep)
    return order[keep.astype(bool)]




# ---------------------------------------------------------------------------------------
# golden cases
# ---------------------------------------------------------------------------------------
def test_nms_golden():
    boxes = np.array([
        [0.0, 0.0, 10.0, 10.0],    # 0
        [1.0, 1.0, 11.0, 11.0],    # 1: IoU with 0 = 81 / 119 = 0.68
        [20.0, 20.0, 30.0, 30.0],  # 2: alone
        [0.0, 0.0, 10.0, 5.0],     # 3: IoU with 0 = 0.5 exactly -> kept at threshold 0.5
    ])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [0, 2, 3])
    np.testing.assert_array_equal(nms(boxes, scores, 0.49), [0, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.7), [0, 1, 2, 3])
    # re-scored: box 1 first now suppresses 0; 3 vs 1: I = 40, U = 100 + 50 - 40 -> 0.36
    np.testing.assert_array_equal(nms(boxes, np.array([0.5, 0.9, 0.7, 0.6]), 0.5), [1, 2, 3])


def test_nms_score_ties_lower_index_first():
    boxes = np.array([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]])
    scores = np.array([0.5, 0.9, 0.9, 0.9])
    # equal scores 0.9: indices 1, 2, 3 in this order; 1 suppresses 2 and 0
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [1, 3])
    np.testing.assert_array_equal(nms(boxes, np.ones(4), 0.5), [0, 3])


def test_nms_threshold_compared_in_float64_like_torchvision():
    # IoU of these float32 boxes is the float32 value 0.6 (= 0.60000002384...). The threshold
    # 0.6 as a double is smaller, so torchvision's double comparison suppresses; a float32
    # comparison (0.6f > 0.6f) would not.
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 6]], dtype=np.float32)
    iou = box_iou(boxes[:1], boxes[1:])[0, 0]
    assert iou == np.float32(0.6) and float(iou) > 0.6
    np.testing.assert_array_equal(nms(boxes, np.array([2.0, 1.0], np.float32), 0.6), [0])
    np.testing.assert_array_equal(nms_reference(boxes, np.array([2.0, 1.0]), 0.6), [0])
    np.testing.assert_array_equal(nms(boxes, np.array([2.0, 1.0], np.float32), float(iou)), [0, 1])


def test_nms_degenerate_boxes():
    # zero-area boxes: IoU 0 (0/0 never suppresses), even with identical points
    pts = np.array([[5.0, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10], [2, 3, 2, 9]])
    np.testing.assert_array_equal(nms(pts, np.array([4.0, 3, 2, 1]), 0.0), [0, 1, 2, 3])
    # a negative threshold suppresses every pair with a defined IoU (0 > -0.1: the point 0
    # suppresses box 2) but not a pair of zero-area boxes (0/0: points 0, 1 and line 3 stay)
    np.testing.assert_array_equal(nms(pts, np.array([4.0, 3, 2, 1]), -0.1), [0, 1, 3])
    np.testing.assert_array_equal(nms_reference(pts, np.array([4.0, 3, 2, 1]), -0.1), [0, 1, 3])


def test_nms_empty_and_types():
    for dtype in (np.float32, np.float64):
        k = nms(np.zeros((0, 4), dtype), np.zeros(0, dtype), 0.5)
        assert k.shape == (0,) and k.dtype == np.int64
    k = batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), 0.5)
    assert k.shape == (0,) and k.dtype == np.int64
    k = nms(tv.tensor(np.ones((1, 4), np.float32) * [0, 0, 1, 1]), tv.tensor(np.ones(1)), 0.5)
    assert isinstance(k, tv.Tensor) and k.dtype == np.int64 and k.tolist() == [0]
    ints = np.array([[0, 0, 10, 10], [1, 1, 11, 11]])
    np.testing.assert_array_equal(nms(ints, np.array([1, 2]), 0.5), [1])
    np.testing.assert_array_equal(nms(ints.astype(np.float16), np.array([1, 2], np.uint8), 0.5), [1])
    np.testing.assert_array_equal(nms(ints.tolist(), [0.1, 0.2], 0.5), [1])


@pytest.mark.parametrize(
    "boxes, scores, match",
    [
        (np.zeros((3, 5)), np.zeros(3), r"shape \(N, 4\)"),
        (np.zeros(4), np.zeros(1), r"shape \(N, 4\)"),
        (np.zeros((3, 4)), np.zeros(2), "same length"),
        (np.zeros((3, 4)), np.zeros((3, 1)), r"scores must have shape \(N,\)"),
        (np.array([[0, 0, np.nan, 1.0]]), np.zeros(1), "NaN or inf"),
        (np.array([[0, 0, np.inf, 1.0]]), np.zeros(1), "NaN or inf"),
        (np.array([[0, 0, 1, 1.0]]), np.array([np.nan]), "NaN or inf"),
        (np.array([[0, 0, 1, 1.0], [5, 0, 4, 1]]), np.zeros(2), r"boxes\[1\].*x2 < x1"),
        (np.array([[0, 3, 1, 1.0]]), np.zeros(1), r"boxes\[0\]"),
    ],
)
def test_nms_bad_input(boxes, scores, match):
    with pytest.raises(ValueError, match=match):
        nms(boxes, scores, 0.5)
    with pytest.raises(ValueError, match=match):
        batched_nms(boxes, scores, np.zeros(len(scores) if scores.ndim else 1, np.int64), 0.5)


def test_nms_bad_threshold_and_idxs():
    b, s = np.array([[0.0, 0, 1, 1]]), np.ones(1)
    with pytest.raises(ValueError, match="NaN"):
        nms(b, s, float("nan"))
    with pytest.raises(TypeError, match="iou_threshold"):
        nms(b, s, "0.5")
    with pytest.raises(ValueError, match="idxs"):
        batched_nms(b, s, np.zeros(2, np.int64), 0.5)
    with pytest.raises(ValueError, match="NaN or inf"):
        batched_nms(b, s, np.array([np.nan]), 0.5)
    with pytest.raises(TypeError, match="boxes"):
        nms(np.zeros((1, 4), bool), s, 0.5)


# ---------------------------------------------------------------------------------------
# kernels agree with the plain loop and the NumPy loop
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("thr", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_kernels_equal_reference(rng, dtype, thr):
    boxes = random_boxes(rng, 300, dtype)
    boxes[::17, 2] = boxes[::17, 0]                         # some zero-width boxes
    boxes[5::23] = boxes[4::23][: len(boxes[5::23])]        # some exact duplicates
    scores = rng.random(300).astype(dtype)
    scores[::7] = scores[0]                                 # many ties
    ref = nms_reference(boxes, scores, thr)
    np.testing.assert_array_equal(run_kernel(nms_sorted_greedy, boxes, scores, thr), ref)
    np.testing.assert_array_equal(run_kernel(nms_sorted_grid, boxes, scores, thr), ref)
    np.testing.assert_array_equal(nms(boxes, scores, thr), ref)


def test_grid_kernel_large_and_mixed_sizes(rng):
    # small boxes, a few huge ones (filed on the "big" list), a far-away cluster, touching grid
    small = random_boxes(rng, 4000, np.float32, span=1000, max_wh=60)
    huge = random_boxes(rng, 40, np.float32, span=100, max_wh=2000)
    far = random_boxes(rng, 200, np.float32, span=5, max_wh=3) + np.float32(1e5)
    boxes = np.concatenate([small, huge, far])
    scores = rng.random(len(boxes)).astype(np.float32)
    scores[-200:] += 1  # visit the far cluster first
    for thr in (0.0, 0.3, 0.5, 0.7):
        want = nms_numpy_greedy(boxes, scores, thr)
        np.testing.assert_array_equal(run_kernel(nms_sorted_grid, boxes, scores, thr), want)
        np.testing.assert_array_equal(nms(boxes, scores, thr), want)
    np.testing.assert_array_equal(run_kernel(nms_sorted_greedy, boxes, scores, 0.5), nms_numpy_greedy(boxes, scores, 0.5))


@pytest.mark.parametrize("case", ["wide_spread", "tiny", "huge_among_small", "lines", "float64_far", "stacked"])
@pytest.mark.parametrize("thr", [0.0, 1e-9, 0.3, 0.5, 0.9, 0.999999, 1.0])
def test_grid_kernel_adversarial_layouts(rng, case, thr):
    n = 400
    if case == "wide_spread":       # corners spread over 1e6, boxes ~10: nearly empty grid
        boxes = random_boxes(rng, n, np.float32, span=1e6, max_wh=10)
    elif case == "tiny":            # sub-pixel boxes, many overlapping
        boxes = random_boxes(rng, n, np.float64, span=1e-3, max_wh=1e-3)
    elif case == "huge_among_small":  # corners within 1 unit, a few boxes 1e6 wide
        boxes = random_boxes(rng, n, np.float32, span=1.0, max_wh=2.0)
        boxes[::37, 2:] += np.float32(1e6)
    elif case == "lines":           # zero-width and zero-height boxes mixed with normal ones
        boxes = random_boxes(rng, n, np.float32, span=50, max_wh=20)
        boxes[::3, 2] = boxes[::3, 0]
        boxes[1::3, 3] = boxes[1::3, 1]
    elif case == "float64_far":     # far from the origin: float64 round-off in widths
        boxes = random_boxes(rng, n, np.float64, span=100, max_wh=30) + 1e12
    else:                           # many near-identical boxes on top of each other
        base = random_boxes(rng, 20, np.float32, span=100, max_wh=30)
        boxes = (np.repeat(base, 20, axis=0) + rng.normal(0, 0.5, (n, 4))).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    scores = rng.random(n).astype(boxes.dtype)
    ref = run_kernel(nms_sorted_greedy, boxes, scores, thr)
    np.testing.assert_array_equal(run_kernel(nms_sorted_grid, boxes, scores, thr), ref)
    np.testing.assert_array_equal(nms(boxes, scores, thr), ref)


def test_batched_kernel_segments(rng):
    boxes = random_boxes(rng, 500, np.float64)
    scores = rng.random(500)
    idxs = rng.integers(0, 4, 500)
    want = batched_nms_reference(boxes, scores, idxs, 0.4)
    np.testing.assert_array_equal(batched_nms(boxes, scores, idxs, 0.4), want)
    # use_grid False must give the same
    order = np.lexsort((-scores, idxs))
    g = idxs[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1], True]).astype(np.int64)
    cols = [np.ascontiguousarray(boxes[order, k]) for k in range(4)]
    keep = np.zeros(500, np.uint8)
    batched_nms_sorted(*cols, starts, 0.4, False, keep)
    kept = np.sort(order[keep.astype(bool)])
    np.testing.assert_array_equal(kept[np.argsort(-scores[kept], kind="stable")], want)


# ---------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------
@st.composite
def nms_inputs(draw, max_n=40, distinct=False):
    n = draw(st.integers(1, max_n))
    el = st.integers(0, 30).map(float)
    xy = draw(hnp.arrays(np.float64, (n, 2), elements=el))
    wh = draw(hnp.arrays(np.float64, (n, 2), elements=st.integers(0, 15).map(float)))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    if distinct:
        scores = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(n).astype(np.float32)
    else:
        scores = draw(hnp.arrays(np.float32, n, elements=st.integers(0, 5).map(float)))
    thr = draw(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.9]))
    return boxes, scores, thr


@given(nms_inputs())
def test_nms_properties(inp):
    boxes, scores, thr = inp
    keep = nms(boxes, scores, thr)
    np.testing.assert_array_equal(keep, nms_reference(boxes, scores, thr))
    np.testing.assert_array_equal(run_kernel(nms_sorted_grid, boxes, scores, thr), keep)
    assert keep.dtype == np.int64 and len(set(keep.tolist())) == len(keep)
    # decreasing score; equal scores by increasing index
    ks = scores[keep]
    assert np.all((ks[:-1] > ks[1:]) | ((ks[:-1] == ks[1:]) & (keep[:-1] < keep[1:])))
    iou = box_iou(boxes, boxes).astype(np.float64)  # compare in float64, as torchvision's kernel
    # kept boxes pairwise IoU <= threshold
    sub = iou[np.ix_(keep, keep)]
    np.fill_diagonal(sub, 0)
    assert np.all(sub <= thr)
    # every suppressed box overlaps a kept box ranked before it with IoU > threshold
    rank = np.empty(len(boxes), int)
    rank[np.argsort(-scores, kind="stable")] = np.arange(len(boxes))
    for j in set(range(len(boxes))) - set(keep.tolist()):
        assert any(iou[k, j] > thr and rank[k] < rank[j] for k in keep)
    # idempotent
    np.testing.assert_array_equal(keep[nms(boxes[keep], scores[keep], thr)], keep)


@given(nms_inputs(distinct=True), st.integers(0, 2**32 - 1))
def test_nms_independent_of_input_order_for_distinct_scores(inp, seed):
    boxes, scores, thr = inp
    perm = np.random.default_rng(seed).permutation(len(boxes))
    keep = nms(boxes, scores, thr)
    keep_perm = nms(boxes[perm], scores[perm], thr)
    np.testing.assert_array_equal(perm[keep_perm], keep)


@given(nms_inputs(), st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_batched_nms_equals_per_class_nms_merged(inp, seed, n_classes):
    boxes, scores, thr = inp
    idxs = np.random.default_rng(seed).integers(0, n_classes, len(boxes))
    keep = batched_nms(boxes, scores, idxs, thr)
    mask = np.zeros(len(boxes), bool)
    for c in np.unique(idxs):
        members = np.flatnonzero(idxs == c)
        mask[members[nms(boxes[members], scores[members], thr)]] = True
    merged = np.flatnonzero(mask)
    merged = merged[np.argsort(-scores[merged], kind="stable")]
    np.testing.assert_array_equal(keep, merged)
    np.testing.assert_array_equal(keep, batched_nms_reference(boxes, scores, idxs, thr))
    # within a class, kept boxes overlap at most the threshold; across classes anything goes
    iou = box_iou(boxes[keep], boxes[keep]).astype(np.float64)
    same_class = idxs[keep][:, None] == idxs[keep][None, :]
    np.fill_diagonal(same_class, False)
    assert np.all(iou[same_class] <= thr)
    # one class: plain nms
    np.testing.assert_array_equal(batched_nms(boxes, scores, np.zeros(len(boxes), int), thr), nms(boxes, scores, thr))
