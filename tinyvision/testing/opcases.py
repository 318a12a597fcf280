"""Table-driven op testing: one line per op, checked by gradcheck and against PyTorch.

tinyvision's own tests (tests/functional/test_core_ops.py, test_losses.py) are tables of
:class:`OpCase`; your ops can be too. An :class:`OpCase` is one line of a table: a
tinyvision function, the PyTorch function it must equal, and a Hypothesis strategy that
draws its arguments as ``(arrays, kwargs)``:

* ``arrays`` — a tuple of NumPy arrays passed positionally. Floating ones are the inputs
  that get gradients (gradcheck perturbs each of their elements; crosscheck compares the
  gradient of each); integer and boolean ones (class indices, index arrays, masks) go in
  as integer/bool tensors in both frameworks.
* ``kwargs`` — everything that is not differentiated: ``dim``, ``reduction``, class weights
  (arrays here are converted to torch tensors for the reference and cast with the inputs).

The strategies keep values away from the op's kinks (ReLU at 0, clamp bounds, |d| = beta,
ties of max), so central differences never straddle a jump in the derivative.

Each case is then run three ways: ``check_gradients`` (float64 finite differences), and
``check_against_torch`` in float64 (forward and every gradient to 1e-10) and float32 (the
project's float32 tolerance). :func:`table_tests` turns a table into those two pytest tests::

    CASES = [OpCase("sigmoid", F.sigmoid, torch.sigmoid, unary(-8.0, 8.0)), ...]
    test_gradcheck, test_matches_torch = table_tests(CASES)

Needs the test dependencies (Hypothesis; PyTorch for ``check_against_torch``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import strategies as st

from . import strategies as tvst
from .crosscheck import crosscheck
from .gradcheck import gradcheck
from .tolerances import tolerance

__all__ = [
    "OpCase", "args", "small_shapes", "unary", "binary", "dims_for", "all_axes_if_none",
    "check_gradients", "check_against_torch", "table_tests",
]


@dataclass(frozen=True)
class OpCase:
    id: str
    ours: Callable  # (*Tensors, **kwargs) -> Tensor or tuple of Tensors
    theirs: Callable  # (*torch.Tensors, **kwargs) -> torch.Tensor or tuple
    inputs: st.SearchStrategy  # draws (tuple_of_arrays, kwargs)

    def __repr__(self):  # readable Hypothesis failure reports
        return f"OpCase({self.id})"


# ---- building blocks for input strategies ---------------------------------------------
def args(*array_strategies, **kwarg_strategies):
    """A strategy for (arrays, kwargs) from one strategy per array and per keyword."""
    return st.tuples(st.tuples(*array_strategies), st.fixed_dictionaries(kwarg_strategies))


def small_shapes(min_dims=0, max_dims=3, max_side=4, min_side=1):
    return tvst.shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def unary(lo=-3.0, hi=3.0, kinks=None, min_dims=0, max_dims=3, **kwarg_strategies):
    """One array of a small shape with values in [lo, hi], kept away from ``kinks``."""
    shape = small_shapes(min_dims, max_dims)
    return args(tvst.arrays(shape, min_value=lo, max_value=hi, kinks=kinks), **kwarg_strategies)


@st.composite
def binary(draw, x_range=(-3.0, 3.0), y_range=(-3.0, 3.0), y_kinks=None, y_margin=1e-2, separate=False):
    """Two arrays whose shapes broadcast (axes of size 1 or missing on either side).

    separate: keep x and y at least 0.05 apart everywhere (on grids 0.1 apart, offset by
    0.05), for maximum/minimum whose derivative jumps where x == y.
    """
    sa, sb = draw(tvst.broadcastable_pair(max_dims=3, max_side=4))
    x = draw(tvst.arrays(sa, min_value=x_range[0], max_value=x_range[1]))
    y = draw(tvst.arrays(sb, min_value=y_range[0], max_value=y_range[1], kinks=y_kinks, margin=y_margin))
    if separate:
        x, y = np.asarray(np.round(x, 1)), np.asarray(np.round(y, 1) + 0.05)
    return (x, y), {}


@st.composite
def dims_for(draw, ndim, allow_none=True, allow_tuple=True):
    """A ``dim`` argument for a tensor with ``ndim`` axes: None, an int (maybe negative) or a tuple."""
    options = []
    if allow_none or ndim == 0:
        options.append(st.none())
    if ndim > 0:
        options.append(st.integers(-ndim, ndim - 1))
        if allow_tuple:
            options.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple))
    return draw(st.one_of(*options))


def all_axes_if_none(dim, ndim):
    """PyTorch spells 'every axis' as a tuple for amax/var with keepdim; None for sum()."""
    return tuple(range(ndim)) if dim is None else dim


# ---- running a case ---------------------------------------------------------------------
def _cast(v, dtype):
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return v.astype(dtype)
    return v


def _to_torch(v):
    import torch

    if isinstance(v, np.ndarray):
        return torch.from_numpy(v.copy())
    return v


def check_gradients(case: OpCase, drawn):
    """Float64 central differences vs the analytic backward (tinyvision.testing.gradcheck)."""
    arrays, kwargs = drawn
    assert gradcheck(lambda *xs: case.ours(*xs, **kwargs), *arrays)


def check_against_torch(case: OpCase, drawn, dtype=np.float64):
    """Forward values and all input gradients vs PyTorch, in ``dtype`` (project tolerances)."""
    arrays, kwargs = drawn
    arrays = [_cast(a, dtype) for a in arrays]
    kw_ours = {k: _cast(v, dtype) for k, v in kwargs.items()}
    kw_torch = {k: _to_torch(_cast(v, dtype)) for k, v in kwargs.items()}
    tol = tolerance(dtype)
    assert crosscheck(
        lambda *xs: case.ours(*xs, **kw_ours),
        lambda *xs: case.theirs(*xs, **kw_torch),
        *arrays,
        rtol=tol["rtol"],
        atol=tol["atol"],
    )


def table_tests(cases, gradcheck_examples: int = 20, torch_examples: int = 12):
    """The two tests every table gets, parametrized over ``cases`` (one pytest id per op):
    a Hypothesis gradcheck, and a PyTorch cross-check in float64 and float32.

    Bind them to ``test_*`` names in a test module so pytest collects them.
    """
    import pytest
    from hypothesis import given, settings

    @pytest.mark.parametrize("case", cases, ids=lambda c: c.id)
    @settings(max_examples=gradcheck_examples)
    @given(data=st.data())
    def test_gradcheck(case, data):
        check_gradients(case, data.draw(case.inputs, label="(arrays, kwargs)"))

    @pytest.mark.parametrize("case", cases, ids=lambda c: c.id)
    @settings(max_examples=torch_examples)
    @given(data=st.data())
    def test_matches_torch(case, data):
        drawn = data.draw(case.inputs, label="(arrays, kwargs)")
        check_against_torch(case, drawn, np.float64)
        check_against_torch(case, drawn, np.float32)

    return test_gradcheck, test_matches_torch
