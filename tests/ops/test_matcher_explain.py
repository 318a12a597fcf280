"""Matcher.explain: foreground / ignored / background counts and the anchors restored as
low-quality matches, checked against torchvision's Matcher run with and without them."""
import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torchvision.models.detection._utils import Matcher as TVMatcher

from tinyvision.ops import Matcher


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 30)),
                  elements=st.sampled_from([0.0, 0.1, 0.35, 0.4, 0.45, 0.5, 0.7, 0.9])))
def test_explain_counts_match_torchvision(q):
    summary = Matcher(0.5, 0.4, allow_low_quality_matches=True).explain(q)
    with_lq = TVMatcher(0.5, 0.4, allow_low_quality_matches=True)(torch.from_numpy(q)).numpy()
    without = TVMatcher(0.5, 0.4, allow_low_quality_matches=False)(torch.from_numpy(q)).numpy()
    np.testing.assert_array_equal(summary.matches, with_lq)
    assert summary.n_foreground == (with_lq >= 0).sum()
    assert summary.n_ignored == (with_lq == -2).sum() and summary.n_background == (with_lq == -1).sum()
    assert summary.n_foreground + summary.n_ignored + summary.n_background == q.shape[1]
    np.testing.assert_array_equal(summary.restored, np.flatnonzero((with_lq >= 0) & (without < 0)))
    assert summary.per_gt.sum() == summary.n_foreground and len(summary.per_gt) == q.shape[0]
