"""Hypothesis strategies for tinyvision's property tests (and yours).

>>> from hypothesis import given                                    # doctest: +SKIP
>>> from tinyvision.testing import strategies as st                 # doctest: +SKIP
>>> @given(st.arrays(st.shapes(max_dims=3)))                        # doctest: +SKIP
... def test_relu_nonnegative(x): ...
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp

__all__ = ["shapes", "arrays", "broadcastable_pair", "away_from", "spread_ties", "nchw"]


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 5):
    """Array shapes with ``min_dims..max_dims`` axes of ``min_side..max_side`` each."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def away_from(x: np.ndarray, kinks=(0.0,), margin: float = 1e-2) -> np.ndarray:
    """Push values within ``margin`` of a kink (ReLU at 0, abs at 0, clamp bounds) to kink ± margin,
    so finite differences never straddle a point where the derivative jumps."""
    x = np.array(x, dtype=np.float64, copy=True)
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = k + np.where(x[near] >= k, margin, -margin)
    return x


def spread_ties(x: np.ndarray, gap: float = 1e-2) -> np.ndarray:
    """Make all values distinct, at least ``gap`` apart, keeping their order.

    The k-th smallest value moves up by k·gap (stable order for equal values), so ties and
    near-ties — the kinks of max, sort and argmax — are gone, and the values stay within
    ``x.size * gap`` of where they were.

    >>> spread_ties(np.array([1.0, 0.0, 1.0]), gap=0.5).tolist()
    [1.5, 0.0, 2.0]
    """
    x = np.array(x, dtype=np.float64, copy=True)
    flat = x.reshape(-1)
    order = np.argsort(flat, kind="stable")
    flat[order] += gap * np.arange(flat.size)
    return x


def arrays(shape, dtype=np.float64, min_value: float = -3.0, max_value: float = 3.0, kinks=None, margin=1e-2,
           distinct_gap=None):
    """Float arrays of ``shape`` (a tuple or a shapes() strategy) with values in [min, max].

    kinks: values to keep away from (by ``margin``), for gradient checks (the result may then
           lie up to ``margin`` outside [min, max]).
    distinct_gap: make every pair of values at least this far apart (:func:`spread_ties`),
           for ops whose derivative jumps at ties (max, argmax); this can push values above
           max_value by up to size·gap.
    """
    elements = hst.floats(min_value, max_value, allow_nan=False, allow_infinity=False, width=64)
    strat = hnp.arrays(np.float64, shape, elements=elements)
    if kinks:
        strat = strat.map(lambda a: away_from(a, kinks, margin))
    if distinct_gap:
        strat = strat.map(lambda a: spread_ties(a, distinct_gap))
    return strat.map(lambda a: a.astype(dtype))


@hst.composite
def broadcastable_pair(draw, max_dims: int = 4, max_side: int = 4):
    """Two shapes that broadcast together (some axes 1 or missing on one side)."""
    result = draw(shapes(min_dims=0, max_dims=max_dims, min_side=1, max_side=max_side))
    a, b = list(result), list(result)
    for i in range(len(result)):
        choice = draw(hst.integers(0, 2))
        if choice == 1:
            a[i] = 1
        elif choice == 2:
            b[i] = 1
    drop_a = draw(hst.integers(0, len(a)))
    drop_b = draw(hst.integers(0, len(b)))
    return tuple(a[drop_a:]) if draw(hst.booleans()) else tuple(a), tuple(b[drop_b:]) if draw(hst.booleans()) else tuple(b)


def nchw(max_n: int = 2, max_c: int = 4, min_hw: int = 1, max_hw: int = 8):
    """Image-batch shapes (N, C, H, W)."""
    return hst.tuples(
        hst.integers(1, max_n), hst.integers(1, max_c), hst.integers(min_hw, max_hw), hst.integers(min_hw, max_hw)
    )
