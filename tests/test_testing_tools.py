"""The testing tools must be able to fail: gradcheck on wrong gradients, crosscheck on wrong
ops, and the strategies must produce what they claim."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.autograd import Function
from tinyvision.backend import get_array_module
from tinyvision.testing import TOLERANCES, CrosscheckError, GradcheckError, crosscheck, gradcheck, tolerance
from tinyvision.testing import strategies as tvst


# ---- deliberately wrong Functions -------------------------------------------------------------
class SinWrongAt(Function):
    """y = sin(x), but the gradient of one element is 1.5 times too large."""

    def __init__(self, bad_index):
        self.bad_index = bad_index

    def forward(self, x):
        self.save_for_backward(x)
        return get_array_module(x).sin(x)

    def backward(self, gy):
        (x,) = self.saved
        gx = gy * np.cos(x)
        gx[self.bad_index] *= 1.5
        return gx


class MulForgetsY(Function):
    """z = x * y whose backward forgets y's gradient."""

    def forward(self, x, y):
        self.save_for_backward(x, y)
        return x * y

    def backward(self, gz):
        x, y = self.saved
        return gz * y, np.zeros_like(y)


A = np.array([[0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0]])  # row sums = column sums = 3


class TransposedJacobian(Function):
    """y = A x, with backward A gy instead of A^T gy. With an all-ones upstream gradient the
    error is invisible (A 1 = A^T 1); a random upstream gradient exposes it."""

    def forward(self, x):
        return A @ x

    def backward(self, gy):
        return A @ gy


def test_gradcheck_passes_on_a_correct_function():
    assert gradcheck(lambda x, y: F.exp(x) * y, np.array([0.3, -1.2]), np.array([2.0, 0.5]))
    assert gradcheck(lambda x: F.softmax(x, 1), np.random.default_rng(0).standard_normal((2, 3)))


def test_gradcheck_names_the_input_and_the_element():
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(2, 3\)\) at element \(1, 2\).*analytic.*numerical"):
        gradcheck(lambda t: SinWrongAt((1, 2))(t), x)
    # the second input is the wrong one
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(3,\)\) at element \(2,\)"):
        gradcheck(lambda a, b: a * SinWrongAt((2,))(b), np.ones(3), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(lambda a, b: MulForgetsY()(a, b), np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert gradcheck(lambda t: SinWrongAt((0, 0))(t), x, raise_exception=False) is False


def test_gradcheck_uses_a_random_upstream_gradient():
    x = np.array([1.0, -2.0, 0.5])
    t = tv.tensor(x, requires_grad=True)
    TransposedJacobian()(t).sum().backward()  # an all-ones upstream gradient ...
    np.testing.assert_allclose(t.grad.numpy(), A.T @ np.ones(3))  # ... cannot tell A from A^T
    with pytest.raises(GradcheckError):
        gradcheck(lambda u: TransposedJacobian()(u), x)


def test_gradcheck_runs_in_float64_and_leaves_integer_inputs_alone():
    seen = []

    def fn(x, idx):
        seen.append((x.dtype, idx.dtype))
        return x[idx] * 2

    assert gradcheck(fn, np.array([1.0, 2.0], dtype=np.float32), np.array([1, 1, 0]))
    assert all(d == (np.float64, np.int64) for d in seen)


def test_gradcheck_refuses_meaningless_calls():
    with pytest.raises(ValueError, match="no floating-point input"):
        gradcheck(lambda i: i * 2, np.array([1, 2]))
    with pytest.raises(GradcheckError, match="does not depend"):
        gradcheck(lambda x: tv.tensor(np.ones(2)), np.array([1.0, 2.0]))


class SigmoidWrongGrad(Function):
    def forward(self, x):
        y = 1 / (1 + np.exp(-x))
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * y  # should be gy * y * (1 - y)


def test_crosscheck_passes_and_fails():
    x = np.random.default_rng(1).standard_normal((3, 4))
    assert crosscheck(F.sigmoid, torch.sigmoid, x)
    assert crosscheck(F.sigmoid, torch.sigmoid, x.astype(np.float32))
    with pytest.raises(CrosscheckError, match=r"output 0: at \(.*\) tinyvision gives .* the reference"):
        crosscheck(F.sigmoid, torch.tanh, x)  # wrong forward
    with pytest.raises(CrosscheckError, match="gradient of input 0"):
        crosscheck(lambda t: SigmoidWrongGrad()(t), torch.sigmoid, x)  # right forward, wrong backward
    with pytest.raises(CrosscheckError, match="shape"):
        crosscheck(lambda t: t.sum(0), lambda t: t.sum(1), x)
    with pytest.raises(CrosscheckError, match="outputs"):
        crosscheck(lambda t: F.max(t, 1), lambda t: t.amax(1), x)


def test_crosscheck_compares_indices_and_passes_non_arrays_through():
    x = np.array([[1.0, 3.0, 2.0]])
    assert crosscheck(lambda t: F.max(t, 1), lambda t: torch.max(t, 1), x)
    assert crosscheck(lambda t, p: F.pad(t, p), lambda t, p: torch.nn.functional.pad(t, p), x, (1, 2))
    with pytest.raises(CrosscheckError, match="output 1"):  # indices differ
        crosscheck(lambda t: F.max(t, 1), lambda t: (torch.max(t, 1).values, torch.max(t, 1).indices + 1), x)


def test_tolerance_table():
    assert tolerance(np.float64) == TOLERANCES["float64"]
    assert tolerance(np.float32) == TOLERANCES["float32"]
    assert TOLERANCES["float64"]["rtol"] <= 1e-10


# ---- strategies produce what they claim --------------------------------------------------------
@settings(max_examples=40)
@given(shape=tvst.shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
def test_shapes_respect_bounds(shape):
    assert 1 <= len(shape) <= 3 and all(2 <= s <= 4 for s in shape)


@settings(max_examples=40)
@given(a=tvst.arrays(tvst.shapes(max_dims=3), dtype=np.float32, min_value=-2.0, max_value=1.0))
def test_arrays_respect_dtype_and_range(a):
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.ndim <= 3
    assert np.all(a >= -2.0) and np.all(a <= 1.0) and np.all(np.isfinite(a))


@settings(max_examples=40)
@given(a=tvst.arrays((5, 4), kinks=(0.0, 1.0), margin=0.05))
def test_arrays_keep_away_from_kinks(a):
    assert a.shape == (5, 4)
    for k in (0.0, 1.0):
        assert np.all(np.abs(a - k) >= 0.05 - 1e-12)


@settings(max_examples=40)
@given(a=tvst.arrays(tvst.shapes(min_dims=1, max_dims=2), distinct_gap=0.1))
def test_arrays_distinct_gap(a):
    flat = np.sort(a.reshape(-1))
    assert np.all(np.diff(flat) >= 0.1 - 1e-9)


@settings(max_examples=40)
@given(x=tvst.arrays((6,)))
def test_spread_ties_keeps_order(x):
    y = tvst.spread_ties(x, 0.01)
    assert np.array_equal(np.argsort(y, kind="stable"), np.argsort(x, kind="stable"))
    assert np.all(np.diff(np.sort(y)) >= 0.01 - 1e-12) and np.all(y - x <= 0.05 + 1e-12)


@settings(max_examples=60)
@given(pair=tvst.broadcastable_pair(max_dims=3, max_side=4))
def test_broadcastable_pair_broadcasts(pair):
    a, b = pair
    out = np.broadcast_shapes(a, b)
    assert len(out) <= 3 and all(1 <= s <= 4 for s in out)


@settings(max_examples=20)
@given(shape=tvst.nchw(max_n=2, max_c=3, min_hw=2, max_hw=5))
def test_nchw(shape):
    n, c, h, w = shape
    assert 1 <= n <= 2 and 1 <= c <= 3 and 2 <= h <= 5 and 2 <= w <= 5


def test_away_from_pushes_to_the_nearest_side():
    out = tvst.away_from(np.array([0.001, -0.001, 0.0, 0.5]), kinks=(0.0,), margin=0.1)
    assert out.tolist() == [0.1, -0.1, 0.1, 0.5]


def test_broadcastable_pair_finds_stretched_axes():
    # over many draws, both sides sometimes have a 1 where the other has more, and ranks differ
    seen_stretch = seen_rank = False

    @settings(max_examples=100, database=None)
    @given(pair=tvst.broadcastable_pair())
    def look(pair):
        nonlocal seen_stretch, seen_rank
        a, b = pair
        seen_rank |= len(a) != len(b)
        k = min(len(a), len(b))
        seen_stretch |= any(x != y for x, y in zip(a[len(a) - k:], b[len(b) - k:]))

    look()
    assert seen_stretch and seen_rank
