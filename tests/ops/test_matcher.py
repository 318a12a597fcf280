"""Matcher: thresholds, sentinels, ties, low-quality matches, edge cases; vs a plain-loop and a
PyTorch re-typing of torchvision's Matcher."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyvision as tv
from tinyvision.ops import Matcher, box_iou
from tinyvision.ops.matcher import matcher_reference


def tv_matcher(q, high, low, allow_low_quality):
    """torchvision's Matcher.__call__ + set_low_quality_matches_, re-typed in PyTorch."""
    q = torch.from_numpy(q)
    matched_vals, matches = q.max(dim=0)
    all_matches = matches.clone()
    matches[matched_vals < low] = -1
    matches[(matched_vals >= low) & (matched_vals < high)] = -2
    if allow_low_quality:
        highest, _ = q.max(dim=1)
        pred_inds = torch.where(q == highest[:, None])[1]
        matches[pred_inds] = all_matches[pred_inds]
    return matches.numpy()


def test_golden_thresholds_and_sentinels():
    q = np.array([
        [0.50, 0.49, 0.40, 0.39, 0.0],
        [0.10, 0.20, 0.30, 0.00, 0.0],
    ])
    np.testing.assert_array_equal(Matcher(0.5, 0.4)(q), [0, -2, -2, -1, -1])  # 0.5 matched, 0.4 ignored
    assert Matcher.BELOW_LOW_THRESHOLD == -1 and Matcher.BETWEEN_THRESHOLDS == -2


def test_ties_first_gt_and_low_quality_restores_own_argmax():
    q = np.array([
        [0.3, 0.3, 0.1],
        [0.3, 0.2, 0.3],
    ])
    # anchor 0: tie between gts -> gt 0 (the first); all below 0.4 -> -1 without low quality
    np.testing.assert_array_equal(Matcher(0.5, 0.4)(q), [-1, -1, -1])
    # gt 0's best = 0.3 at anchors 0, 1 (ties included); gt 1's best = 0.3 at anchors 0, 2.
    # Each restored anchor gets its own argmax: anchor 0 -> gt 0 (first of the tie), 1 -> 0, 2 -> 1
    np.testing.assert_array_equal(Matcher(0.5, 0.4, True)(q), [0, 0, 1])


def test_gt_overlapping_no_anchor_edge_case():
    # gt 1 overlaps nothing: its best IoU is 0, so every anchor with IoU 0 to it is "restored"
    # to its own argmax (torchvision parity, documented): background anchors become gt 0.
    gts = np.array([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 110.0, 110.0]])
    anchors = np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 3.0]])
    q = box_iou(gts, anchors)
    np.testing.assert_array_equal(Matcher(0.5, 0.4)(q), [0, -1, -1])
    np.testing.assert_array_equal(Matcher(0.5, 0.4, True)(q), [0, 0, 0])
    np.testing.assert_array_equal(tv_matcher(q, 0.5, 0.4, True), [0, 0, 0])


def test_empty_and_types():
    m = Matcher(0.5, 0.4, True)
    out = m(np.zeros((0, 5)))
    np.testing.assert_array_equal(out, [-1] * 5)        # no gt: all background
    assert out.dtype == np.int64
    assert m(np.zeros((3, 0))).shape == (0,)
    t = m(tv.tensor(np.array([[0.9, 0.1]])))
    assert isinstance(t, tv.Tensor) and t.tolist() == [0, -1]


def test_bad_input():
    with pytest.raises(ValueError, match="low_threshold"):
        Matcher(0.4, 0.5)
    with pytest.raises(ValueError, match=r"\(G, A\)"):
        Matcher()(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        Matcher()(np.array([[np.nan, 0.5]]))


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 12)),
               elements=st.sampled_from([0.0, 0.1, 0.3, 0.4, 0.45, 0.5, 0.7, 1.0])),
    st.sampled_from([(0.5, 0.4), (0.5, 0.5), (0.7, 0.3)]),
    st.booleans(),
)
def test_matches_reference_and_torch(q, thresholds, allow):
    high, low = thresholds
    got = Matcher(high, low, allow)(q)
    np.testing.assert_array_equal(got, matcher_reference(q, high, low, allow))
    np.testing.assert_array_equal(got, tv_matcher(q, high, low, allow))
    assert got.dtype == np.int64
    assert np.all((got >= -2) & (got < q.shape[0]))
    fg = got >= 0
    if not allow:
        assert np.all(q.max(axis=0)[fg] >= high)
    else:  # every gt with a positive best IoU keeps at least one anchor
        for g in range(q.shape[0]):
            assert np.any(q[g] == q[g].max()) and np.any(fg[q[g] == q[g].max()])
