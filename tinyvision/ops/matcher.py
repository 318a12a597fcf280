"""Anchor-to-ground-truth matching (torchvision's det_utils.Matcher).

Given the quality matrix Q (G, A) — usually IoU(gt boxes, anchors) — each anchor a gets

    m[a] = argmax_g Q[g, a]      (ties: the first, i.e. lowest, g)
    v[a] = max_g Q[g, a]
    result[a] = m[a]   if v[a] >= high_threshold
                -2     if low_threshold <= v[a] < high_threshold     (BETWEEN_THRESHOLDS: ignore)
                -1     if v[a] < low_threshold                        (BELOW_LOW_THRESHOLD: background)

With ``allow_low_quality_matches`` every gt keeps at least its best anchors: for each g, every
anchor a with Q[g, a] equal to that gt's best value max_a Q[g, a] (ties included) is restored to
m[a] — *its own* argmax gt, which may be another gt than g when the anchor is a tie for several.

Edge cases (torchvision parity, kept on purpose):
* A gt that overlaps no anchor has best value 0, so every anchor with Q = 0 to it is restored
  to its own argmax — typically all background anchors become foreground matches of gt 0.
  This is what torchvision does (RetinaNet on an image with a gt outside all anchors); it is
  documented rather than "fixed" so results match.
* No gt (G = 0): every anchor is -1 (background). torchvision's Matcher raises here; its
  RetinaNet substitutes all -1 before calling it, which is what tinyvision returns directly.
* No anchors (A = 0): an empty int64 result.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module
from ._utils import check_finite, check_real, unwrap, wrap

__all__ = ["Matcher", "MatchSummary", "matcher_reference"]


class MatchSummary(NamedTuple):
    """What :meth:`Matcher.explain` found for one image. ``matches`` is the Matcher's result;
    ``restored``: anchors that were background or ignored by the thresholds and became
    foreground as some gt's best (low-quality) match; ``per_gt[g]``: foreground anchors of gt g."""

    matches: np.ndarray
    n_foreground: int
    n_ignored: int
    n_background: int
    restored: np.ndarray
    per_gt: np.ndarray

    def __str__(self):
        return (f"{len(self.matches)} anchors: {self.n_foreground} foreground ({len(self.restored)} restored as "
                f"low-quality matches), {self.n_ignored} ignored, {self.n_background} background; "
                f"foreground per gt: {self.per_gt.tolist()}")


class Matcher:
    """Assign each anchor (column) to a ground-truth box (row) of a quality matrix.

    Args:
        high_threshold (float): quality at or above which an anchor is matched (0.5).
        low_threshold (float): quality below which an anchor is background (0.4); in between
            it is ignored. Must be <= high_threshold.
        allow_low_quality_matches (bool): also match each gt's best anchors (ties included),
            even below low_threshold (RetinaNet: True; torchvision's default: False).

    Call with ``match_quality_matrix`` (array or Tensor[G, A]); returns int64 (A,): gt index,
    or BELOW_LOW_THRESHOLD = -1, or BETWEEN_THRESHOLDS = -2. See the module docstring for the
    edge cases.

    >>> import numpy as np
    >>> q = np.array([[0.9, 0.45, 0.1, 0.3],
    ...               [0.2, 0.10, 0.0, 0.35]])
    >>> Matcher(0.5, 0.4)(q)
    array([ 0, -2, -1, -1])
    >>> Matcher(0.5, 0.4, allow_low_quality_matches=True)(q)
    array([ 0, -2, -1,  1])
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold: float = 0.5, low_threshold: float = 0.4,
                 allow_low_quality_matches: bool = False):
        high_threshold = float(high_threshold)
        low_threshold = float(low_threshold)
        if not low_threshold <= high_threshold:
            raise ValueError(
                f"low_threshold ({low_threshold}) must be <= high_threshold ({high_threshold})"
            )
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __call__(self, match_quality_matrix):
        q, as_tensor = unwrap(match_quality_matrix, "match_quality_matrix")
        check_real(q, "match_quality_matrix")
        if q.ndim != 2:
            raise ValueError(
                f"match_quality_matrix must be (G, A) = (gt boxes, anchors), got shape {tuple(q.shape)}"
            )
        check_finite(q, "match_quality_matrix")
        xp = get_array_module(q)
        n_gt, n_anchors = q.shape
        if n_gt == 0:
            return wrap(xp.full((n_anchors,), self.BELOW_LOW_THRESHOLD, dtype=np.int64), as_tensor)
        if n_anchors == 0:
            return wrap(xp.empty((0,), dtype=np.int64), as_tensor)

        matched_vals = q.max(axis=0)                  # (A,) best quality per anchor
        matches = q.argmax(axis=0).astype(np.int64)   # (A,) first gt attaining it
        all_matches = matches.copy() if self.allow_low_quality_matches else None

        below = matched_vals < self.low_threshold
        between = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches[below] = self.BELOW_LOW_THRESHOLD
        matches[between] = self.BETWEEN_THRESHOLDS

        if self.allow_low_quality_matches:
            highest_per_gt = q.max(axis=1)                          # (G,)
            is_best = q == highest_per_gt[:, None]                  # (G, A), ties included
            anchors_to_update = is_best.any(axis=0)                 # (A,)
            matches[anchors_to_update] = all_matches[anchors_to_update]
        return wrap(matches, as_tensor)

    def explain(self, match_quality_matrix) -> MatchSummary:
        """The match of one image, counted: how many anchors are foreground, ignored and
        background, and which were restored by ``allow_low_quality_matches``.

        >>> import numpy as np
        >>> q = np.array([[0.9, 0.45, 0.1, 0.3], [0.2, 0.10, 0.0, 0.35]])
        >>> print(Matcher(0.5, 0.4, allow_low_quality_matches=True).explain(q))
        4 anchors: 2 foreground (1 restored as low-quality matches), 1 ignored, 1 background; foreground per gt: [1, 1]
        """
        matches = np.asarray(unwrap(self(match_quality_matrix), "matches")[0])
        q = np.asarray(unwrap(match_quality_matrix, "match_quality_matrix")[0])
        plain = Matcher(self.high_threshold, self.low_threshold, False)
        thresholded = np.asarray(unwrap(plain(q), "matches")[0])
        restored = np.flatnonzero((matches >= 0) & (thresholded < 0))
        fg = matches >= 0
        return MatchSummary(matches, int(fg.sum()), int((matches == self.BETWEEN_THRESHOLDS).sum()),
                            int((matches == self.BELOW_LOW_THRESHOLD).sum()), restored,
                            np.bincount(matches[fg], minlength=q.shape[0]).astype(np.int64))

    def __repr__(self):
        return (f"Matcher(high_threshold={self.high_threshold}, low_threshold={self.low_threshold}, "
                f"allow_low_quality_matches={self.allow_low_quality_matches})")


def matcher_reference(q, high_threshold, low_threshold, allow_low_quality_matches=False):
    """The matching rule as plain loops over a NumPy (G, A) matrix (for reading and tests)."""
    q = np.asarray(q)
    n_gt, n_anchors = q.shape
    out = np.full(n_anchors, -1, dtype=np.int64)
    if n_gt == 0:
        return out
    own_best = []
    for a in range(n_anchors):
        best_g = 0
        for g in range(1, n_gt):
            if q[g, a] > q[best_g, a]:   # strictly greater: ties keep the first gt
                best_g = g
        own_best.append(best_g)
        v = q[best_g, a]
        if v >= high_threshold:
            out[a] = best_g
        elif v >= low_threshold:
            out[a] = -2
        else:
            out[a] = -1
    if allow_low_quality_matches:
        for g in range(n_gt):
            best = max(q[g, a] for a in range(n_anchors))
            for a in range(n_anchors):
                if q[g, a] == best:
                    out[a] = own_best[a]
    return out
