"""Core differentiable ops of issue 2 (item 5): gradcheck properties, PyTorch cross-checks,
golden values and bad input.

The table CASES has one line per op (and per variant worth its own id): the tinyvision
function, the PyTorch function, and the strategy for its arguments
(see tinyvision/testing/opcases.py).
Every line is run as

* ``test_gradcheck``        — Hypothesis property: float64 central differences agree with backward;
* ``test_matches_torch``    — forward and every gradient equal PyTorch's, float64 (1e-10) and
                              float32 (round-off tolerance), on drawn inputs.

Adding an op is adding one line to CASES.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tinyvision.testing.opcases import (
    OpCase,
    all_axes_if_none,
    binary,
    dims_for,
    small_shapes,
    table_tests,
    unary,
)

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.testing import strategies as tvst


# ---- strategies for the ops that need more than "an array" -------------------------------
@st.composite
def matmul_args(draw):
    """1-D and 2-D operands, and batched ones whose batch dims broadcast."""
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    batch_x, batch_y = draw(tvst.broadcastable_pair(max_dims=2, max_side=3))
    x_vec, y_vec = draw(st.booleans()), draw(st.booleans())
    if draw(st.booleans()):  # plain matrices / vectors half of the time
        batch_x = batch_y = ()
    sx = (k,) if x_vec else tuple(batch_x) + (n, k)
    sy = (k,) if y_vec else tuple(batch_y) + (k, m)
    return (draw(tvst.arrays(sx)), draw(tvst.arrays(sy))), {}


@st.composite
def reduce_args(draw, distinct=False, allow_tuple=True, allow_none=True, min_dims=0):
    shape = draw(small_shapes(min_dims=min_dims))
    x = draw(tvst.arrays(shape, distinct_gap=0.05 if distinct else None))
    dim = draw(dims_for(len(shape), allow_none=allow_none, allow_tuple=allow_tuple))
    return (x,), {"dim": dim, "keepdim": draw(st.booleans())}


@st.composite
def var_args(draw):
    (x,), kw = draw(reduce_args())
    axes = range(x.ndim) if kw["dim"] is None else ([kw["dim"]] if isinstance(kw["dim"], int) else kw["dim"])
    n = int(np.prod([x.shape[a] for a in axes])) if x.ndim else 1
    kw["correction"] = draw(st.sampled_from([0, 1])) if n > 1 else 0  # n - correction > 0
    return (x,), kw


@st.composite
def dim_args(draw, min_dims=1, lo=-3.0, hi=3.0):
    shape = draw(small_shapes(min_dims=min_dims))
    return (draw(tvst.arrays(shape, min_value=lo, max_value=hi)),), {"dim": draw(st.integers(-len(shape), len(shape) - 1))}


@st.composite
def reshape_args(draw):
    shape = draw(small_shapes(min_dims=1))
    target = draw(st.sampled_from([tuple(reversed(shape)), (-1,), (shape[0], -1), (1,) + shape + (1,)]))
    return (draw(tvst.arrays(shape)),), {"shape": target}


@st.composite
def transpose_args(draw):
    shape = draw(small_shapes(min_dims=1))
    d0, d1 = (draw(st.integers(-len(shape), len(shape) - 1)) for _ in range(2))
    return (draw(tvst.arrays(shape)),), {"dim0": d0, "dim1": d1}


@st.composite
def permute_args(draw):
    shape = draw(small_shapes(min_dims=1))
    return (draw(tvst.arrays(shape)),), {"dims": tuple(draw(st.permutations(range(len(shape)))))}


@st.composite
def flatten_args(draw):
    shape = draw(small_shapes(min_dims=1))
    s = draw(st.integers(0, len(shape) - 1))
    e = draw(st.integers(s, len(shape) - 1))
    neg = draw(st.booleans())  # negative spelling of end_dim
    return (draw(tvst.arrays(shape)),), {"start_dim": s, "end_dim": e - len(shape) if neg else e}


@st.composite
def basic_index_args(draw):
    """Ints (maybe negative), slices with positive steps (PyTorch has no negative steps), None, Ellipsis."""
    shape = draw(small_shapes(min_dims=1))
    index = []
    for n in shape[: draw(st.integers(1, len(shape)))]:
        kind = draw(st.sampled_from(["int", "slice", "full"]))
        if kind == "int":
            index.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.none() | st.integers(-n, n))
            stop = draw(st.none() | st.integers(-n, n))
            index.append(slice(start, stop, draw(st.none() | st.integers(1, 3))))
        else:
            index.append(slice(None))
    if draw(st.booleans()):
        index.insert(draw(st.integers(0, len(index))), None)
    if draw(st.booleans()):
        index.append(Ellipsis)
    return (draw(tvst.arrays(shape)),), {"index": tuple(index)}


@st.composite
def int_index_args(draw):
    """An integer index array (with repeats, negative entries) on one axis: scatter-add backward."""
    shape = draw(small_shapes(min_dims=1))
    axis = draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    idx_shape = draw(small_shapes(min_dims=1, max_dims=2, max_side=5))
    idx = draw(hnp.arrays(np.int64, idx_shape, elements=st.integers(-n, n - 1)))
    return (draw(tvst.arrays(shape)), idx), {"axis": axis}


@st.composite
def two_index_args(draw):
    """x[i, j] with two integer arrays that broadcast against each other."""
    shape = draw(small_shapes(min_dims=2))
    si, sj = draw(tvst.broadcastable_pair(max_dims=2, max_side=4))
    i = draw(hnp.arrays(np.int64, si, elements=st.integers(0, shape[0] - 1)))
    j = draw(hnp.arrays(np.int64, sj, elements=st.integers(-shape[1], shape[1] - 1)))
    return (draw(tvst.arrays(shape)), i, j), {}


@st.composite
def mask_args(draw):
    shape = draw(small_shapes(min_dims=1))
    mask_shape = shape[: draw(st.integers(1, len(shape)))]
    return (draw(tvst.arrays(shape)), draw(hnp.arrays(np.bool_, mask_shape))), {}


@st.composite
def cat_args(draw, new_axis=False):
    shape = list(draw(small_shapes(min_dims=1)))
    ndim = len(shape) + (1 if new_axis else 0)
    dim = draw(st.integers(-ndim, ndim - 1))
    arrays = []
    for _ in range(draw(st.integers(1, 3))):
        s = list(shape)
        if not new_axis:
            s[dim % len(s)] = draw(st.integers(1, 3))
        arrays.append(draw(tvst.arrays(tuple(s))))
    return tuple(arrays), {"dim": dim}


@st.composite
def pad_args(draw):
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    if mode == "constant":
        shape = draw(small_shapes(min_dims=1))
        k = draw(st.integers(1, len(shape)))
    else:  # PyTorch: 1-pair pads take 2-D/3-D input, 2-pair pads 3-D/4-D
        k = draw(st.integers(1, 2))
        ndim = k + draw(st.integers(1, 2))
        shape = tuple(draw(st.integers(1, 3)) for _ in range(ndim - k)) + tuple(
            draw(st.integers(2, 4)) for _ in range(k)
        )
    pad = []
    for j in range(k):
        n = shape[len(shape) - 1 - j]
        top = {"constant": 3, "reflect": n - 1, "replicate": 3, "circular": n}[mode]
        pad += [draw(st.integers(0, top)), draw(st.integers(0, top))]
    kw = {"pad": tuple(pad), "mode": mode}
    if mode == "constant":
        kw["value"] = draw(st.sampled_from([0.0, -1.5]))
    return (draw(tvst.arrays(shape)),), kw


@st.composite
def where_args(draw):
    (x, y), _ = draw(binary())
    cshape = draw(st.sampled_from([x.shape, y.shape, np.broadcast_shapes(x.shape, y.shape)]))
    return (draw(hnp.arrays(np.bool_, cshape)), x, y), {}


@st.composite
def clamp_args(draw):
    lo = draw(st.none() | st.sampled_from([-1.0, 0.5]))
    hi = draw(st.sampled_from([1.0, 2.0]) if lo is None else st.none() | st.sampled_from([1.0, 2.0]))
    kinks = tuple(b for b in (lo, hi) if b is not None)
    x = draw(tvst.arrays(small_shapes(), kinks=kinks))
    return (x,), {"min": lo, "max": hi}


def _torch_var(x, dim, keepdim, correction):
    return torch.var(x, dim=all_axes_if_none(dim, x.ndim), correction=correction, keepdim=keepdim)


def _torch_sum(x, dim, keepdim):
    return x.sum() if dim is None and not keepdim else x.sum(dim=all_axes_if_none(dim, x.ndim), keepdim=keepdim)


def _torch_mean(x, dim, keepdim):
    return x.mean() if dim is None and not keepdim else x.mean(dim=all_axes_if_none(dim, x.ndim), keepdim=keepdim)


def _torch_pad(x, pad, mode, value=0.0):
    return TF.pad(x, pad, mode=mode, value=value) if mode == "constant" else TF.pad(x, pad, mode=mode)


def _leading(axis):
    return (slice(None),) * axis


# ---- the table ---------------------------------------------------------------------------
CASES = [
    # arithmetic (operators and functions), broadcasting with gradient reduction
    OpCase("add", lambda x, y: x + y, lambda x, y: x + y, binary()),
    OpCase("F.add", F.add, torch.add, binary()),
    OpCase("sub", lambda x, y: x - y, lambda x, y: x - y, binary()),
    OpCase("mul", lambda x, y: x * y, lambda x, y: x * y, binary()),
    OpCase("div", lambda x, y: x / y, lambda x, y: x / y, binary(y_kinks=(0.0,), y_margin=0.5)),
    OpCase("pow-tensor-exponent", lambda x, y: x**y, lambda x, y: x**y, binary(x_range=(0.5, 2.0), y_range=(-2.0, 2.0))),
    OpCase("pow-int-exponent", lambda x: x**3, lambda x: x**3, unary()),
    OpCase("pow-fractional-exponent", lambda x: F.pow(x, -1.5), lambda x: torch.pow(x, -1.5), unary(0.2, 3.0)),
    OpCase("rpow", lambda x: 2.0**x, lambda x: 2.0**x, unary()),
    OpCase("scalar-rsub-rdiv", lambda x: (1.5 - x) / (x * x + 1.0), lambda x: (1.5 - x) / (x * x + 1.0), unary()),
    OpCase("neg", lambda x: -x, lambda x: -x, unary()),
    OpCase("F.neg", F.neg, torch.neg, unary()),
    OpCase("matmul", lambda x, y: x @ y, lambda x, y: x @ y, matmul_args()),
    OpCase("F.matmul", F.matmul, torch.matmul, matmul_args()),
    # elementwise
    OpCase("exp", F.exp, torch.exp, unary()),
    OpCase("log", F.log, torch.log, unary(0.05, 4.0)),
    OpCase("sqrt", F.sqrt, torch.sqrt, unary(0.05, 4.0)),
    OpCase("abs", F.abs, torch.abs, unary(kinks=(0.0,))),
    OpCase("clamp", lambda x, min, max: F.clamp(x, min, max), lambda x, min, max: torch.clamp(x, min, max), clamp_args()),
    OpCase("maximum", F.maximum, torch.maximum, binary(separate=True)),
    OpCase("minimum", F.minimum, torch.minimum, binary(separate=True)),
    OpCase("where", F.where, torch.where, where_args()),
    # activations
    OpCase("relu", F.relu, torch.relu, unary(kinks=(0.0,))),
    OpCase(
        "leaky_relu",
        lambda x, s: F.leaky_relu(x, s),
        lambda x, s: TF.leaky_relu(x, s),
        unary(kinks=(0.0,), s=st.sampled_from([0.01, 0.2, 1.5])),
    ),
    OpCase("sigmoid", F.sigmoid, torch.sigmoid, unary(-8.0, 8.0)),
    OpCase("tanh", F.tanh, torch.tanh, unary()),
    OpCase("softmax", lambda x, dim: F.softmax(x, dim), lambda x, dim: torch.softmax(x, dim), dim_args(lo=-10, hi=10)),
    OpCase(
        "log_softmax",
        lambda x, dim: F.log_softmax(x, dim),
        lambda x, dim: torch.log_softmax(x, dim),
        dim_args(lo=-10, hi=10),
    ),
    # reductions
    OpCase("sum", lambda x, dim, keepdim: F.sum(x, dim, keepdim), _torch_sum, reduce_args()),
    OpCase("mean", lambda x, dim, keepdim: F.mean(x, dim, keepdim), _torch_mean, reduce_args()),
    OpCase("max-all", F.max, torch.max, unary(min_dims=0).map(lambda d: ((tvst.spread_ties(d[0][0], 0.05),), {}))),
    OpCase(
        "max-dim",
        lambda x, dim, keepdim: F.max(x, dim, keepdim),
        lambda x, dim, keepdim: torch.max(x, dim, keepdim),
        reduce_args(distinct=True, allow_tuple=False, allow_none=False, min_dims=1),
    ),
    OpCase(
        "min-dim",
        lambda x, dim, keepdim: F.min(x, dim, keepdim),
        lambda x, dim, keepdim: torch.min(x, dim, keepdim),
        reduce_args(distinct=True, allow_tuple=False, allow_none=False, min_dims=1),
    ),
    OpCase(
        "amax",
        lambda x, dim, keepdim: F.amax(x, dim, keepdim),
        lambda x, dim, keepdim: torch.amax(x, all_axes_if_none(dim, x.ndim), keepdim),
        reduce_args(distinct=True),
    ),
    OpCase(
        "var",
        lambda x, dim, keepdim, correction: F.var(x, dim, keepdim=keepdim, correction=correction),
        _torch_var,
        var_args(),
    ),
    # shape
    OpCase("reshape", lambda x, shape: F.reshape(x, shape), lambda x, shape: x.reshape(shape), reshape_args()),
    OpCase("view", lambda x, shape: x.view(*shape), lambda x, shape: x.view(*shape), reshape_args()),
    OpCase(
        "transpose",
        lambda x, dim0, dim1: F.transpose(x, dim0, dim1),
        lambda x, dim0, dim1: x.transpose(dim0, dim1),
        transpose_args(),
    ),
    OpCase("permute", lambda x, dims: F.permute(x, dims), lambda x, dims: x.permute(dims), permute_args()),
    OpCase(
        "flatten",
        lambda x, start_dim, end_dim: F.flatten(x, start_dim, end_dim),
        lambda x, start_dim, end_dim: torch.flatten(x, start_dim, end_dim),
        flatten_args(),
    ),
    OpCase("getitem-basic", lambda x, index: x[index], lambda x, index: x[index], basic_index_args()),
    OpCase(
        "getitem-int-array",
        lambda x, i, axis: x[_leading(axis) + (i,)],
        lambda x, i, axis: x[_leading(axis) + (i,)],
        int_index_args(),
    ),
    OpCase("getitem-two-int-arrays", lambda x, i, j: x[i, j], lambda x, i, j: x[i, j], two_index_args()),
    OpCase("getitem-mask", lambda x, m: x[m], lambda x, m: x[m], mask_args()),
    OpCase("cat", lambda *xs, dim: F.cat(list(xs), dim), lambda *xs, dim: torch.cat(xs, dim), cat_args()),
    OpCase(
        "stack",
        lambda *xs, dim: F.stack(list(xs), dim),
        lambda *xs, dim: torch.stack(xs, dim),
        cat_args(new_axis=True),
    ),
    OpCase("pad", lambda x, **kw: F.pad(x, **kw), _torch_pad, pad_args()),
]


# Every op in the table: a Hypothesis gradcheck and a float64/float32 PyTorch cross-check.
test_gradcheck, test_matches_torch = table_tests(CASES, gradcheck_examples=20, torch_examples=12)


# ---- conventions at the kinks (and edge shapes), against PyTorch on the exact values ---------
KINK_CASES = [
    ("relu'(0) = 0", F.relu, torch.relu, [np.array([-1.0, 0.0, 2.0])]),
    ("abs'(0) = 0", F.abs, torch.abs, [np.array([-1.0, 0.0, 2.0])]),
    ("leaky_relu'(0) = slope", lambda x: F.leaky_relu(x, 0.1), lambda x: TF.leaky_relu(x, 0.1), [np.array([-1.0, 0.0, 2.0])]),
    ("clamp stops at both number bounds", lambda x: F.clamp(x, -1.0, 1.0), lambda x: torch.clamp(x, -1.0, 1.0),
     [np.array([-2.0, -1.0, 0.0, 1.0, 2.0])]),
    ("clamp_min stops at its number bound", lambda x: F.clamp(x, min=0.0), lambda x: torch.clamp(x, min=0.0),
     [np.array([-1.0, 0.0, 1.0])]),
    ("clamp splits ties with tensor bounds",
     lambda x: F.clamp(x, tv.tensor(np.array([0.0, 1.0, 1.0, 3.0, 0.0])), tv.tensor(np.array([1.0, 1.0, 2.0, 1.0, 1.0]))),
     lambda x: torch.clamp(x, torch.tensor([0.0, 1.0, 1.0, 3.0, 0.0], dtype=torch.float64),
                           torch.tensor([1.0, 1.0, 2.0, 1.0, 1.0], dtype=torch.float64)),
     [np.array([0.0, 1.0, 1.0, 2.0, 0.5])]),
    ("clamp with min > max gives max", lambda x: F.clamp(x, 1.0, -1.0), lambda x: torch.clamp(x, 1.0, -1.0),
     [np.array([-2.0, 0.0, 2.0])]),
    ("maximum splits ties", F.maximum, torch.maximum, [np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])]),
    ("minimum splits ties", F.minimum, torch.minimum, [np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])]),
    ("max(x) shares ties evenly", F.max, torch.max, [np.array([[1.0, 3.0], [3.0, 3.0]])]),
    ("max(x, dim): first index takes all", lambda x: F.max(x, 1), lambda x: torch.max(x, 1),
     [np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 0.0, 5.0]])]),
    ("min(x, dim): first index takes all", lambda x: F.min(x, 0), lambda x: torch.min(x, 0),
     [np.array([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])]),
    ("amax shares ties evenly", lambda x: F.amax(x, 1), lambda x: torch.amax(x, 1),
     [np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 0.0, 5.0]])]),
    ("pow: 0 ** 0 has gradient 0", lambda x: x**0, lambda x: x**0, [np.array([0.0, 2.0])]),
    ("pow: tensor exponent at x = 0", lambda x, y: x**y, lambda x, y: x**y,
     [np.array([0.0, 0.0, 2.0]), np.array([0.0, 2.0, 0.5])]),
    ("sqrt at 0: inf gradient", F.sqrt, torch.sqrt, [np.array([0.0, 4.0])]),
    ("softmax of huge logits", lambda x: F.softmax(x, 0), lambda x: torch.softmax(x, 0), [np.array([1000.0, 1000.0, -1000.0])]),
    ("log_softmax of huge logits", lambda x: F.log_softmax(x, 0), lambda x: torch.log_softmax(x, 0),
     [np.array([0.0, 1000.0, -1000.0])]),
    ("sigmoid saturates", F.sigmoid, torch.sigmoid, [np.array([-800.0, 0.0, 800.0])]),
    ("repeated indices scatter-add", lambda x, i: x[i], lambda x, i: x[i], [np.arange(4.0), np.array([0, 0, 3, -1, 0])]),
    # 0-d tensors
    ("0-d softmax", lambda x: F.softmax(x, 0), lambda x: torch.softmax(x, 0), [np.array(1.5)]),
    ("0-d max(x, dim)", lambda x: F.max(x, -1), lambda x: torch.max(x, -1), [np.array(1.5)]),
    ("0-d min(x, dim, keepdim)", lambda x: F.min(x, 0, True), lambda x: torch.min(x, 0, True), [np.array(1.5)]),
    ("0-d transpose", lambda x: F.transpose(x, 0, -1), lambda x: torch.transpose(x, 0, -1), [np.array(1.5)]),
    ("0-d sum(dim=0)", lambda x: F.sum(x, 0), lambda x: torch.sum(x, 0), [np.array(1.5)]),
    ("0-d flatten", F.flatten, torch.flatten, [np.array(1.5)]),
]


@pytest.mark.parametrize("fn, ref, arrays", [c[1:] for c in KINK_CASES], ids=[c[0] for c in KINK_CASES])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_kink_conventions_match_torch(fn, ref, arrays):
    from tinyvision.testing import crosscheck

    assert crosscheck(fn, ref, *arrays)
    assert crosscheck(fn, ref, *[a.astype(np.float32) if a.dtype.kind == "f" else a for a in arrays])


# ---- golden values, computed by hand --------------------------------------------------------
def _grad(fn, *arrays, upstream=None):
    ts = [tv.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    y.backward(upstream)
    return y.numpy(), [t.grad.numpy() for t in ts]


def test_golden_softmax_of_0_and_ln2():
    # e^0 : e^{ln 2} = 1 : 2, so softmax = (1/3, 2/3); log_softmax = (ln 1/3, ln 2/3).
    x = np.array([0.0, math.log(2.0)])
    np.testing.assert_allclose(F.softmax(tv.tensor(x), 0).numpy(), [1 / 3, 2 / 3], rtol=1e-15)
    np.testing.assert_allclose(F.log_softmax(tv.tensor(x), 0).numpy(), [math.log(1 / 3), math.log(2 / 3)], rtol=1e-15)
    # d y_1 / d x = y_1 (e_1 - y) = (2/3)(-1/3, 1 - 2/3) = (-2/9, 2/9)
    _, (gx,) = _grad(lambda t: F.softmax(t, 0)[1], x)
    np.testing.assert_allclose(gx, [-2 / 9, 2 / 9], rtol=1e-14)


def test_golden_sigmoid_tanh():
    y, (gx,) = _grad(lambda t: F.sigmoid(t).sum(), np.array([0.0, math.log(3.0)]))
    # sigma(ln 3) = 3/4; sigma' = y (1 - y) = 1/4 and 3/16
    np.testing.assert_allclose(F.sigmoid(tv.tensor(np.array([0.0, math.log(3.0)]))).numpy(), [0.5, 0.75], rtol=1e-15)
    np.testing.assert_allclose(gx, [0.25, 3 / 16], rtol=1e-15)
    _, (gx,) = _grad(lambda t: F.tanh(t).sum(), np.array([0.0]))
    np.testing.assert_allclose(gx, [1.0])


def test_golden_var_and_mean():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert F.var(tv.tensor(x)).item() == pytest.approx(5 / 3, rel=1e-15)  # sum of squares 5, / (4 - 1)
    assert F.var(tv.tensor(x), unbiased=False).item() == pytest.approx(1.25, rel=1e-15)
    # d var / d x_i = 2 (x_i - 2.5) / 3
    _, (gx,) = _grad(lambda t: F.var(t), x)
    np.testing.assert_allclose(gx, 2 * (x - 2.5) / 3, rtol=1e-15)
    _, (gx,) = _grad(lambda t: F.mean(t), x)
    np.testing.assert_allclose(gx, [0.25] * 4)


def test_golden_broadcast_gradient_is_summed():
    # x (3, 1) + y (4,) -> (3, 4): each x[i] is used 4 times, each y[j] 3 times.
    (_, (gx, gy)) = _grad(lambda a, b: (a + b).sum(), np.zeros((3, 1)), np.zeros(4))
    np.testing.assert_array_equal(gx, np.full((3, 1), 4.0))
    np.testing.assert_array_equal(gy, np.full(4, 3.0))
    (_, (gx, gy)) = _grad(lambda a, b: (a * b).sum(), np.array([[1.0], [2.0]]), np.array([10.0, 20.0]))
    np.testing.assert_array_equal(gx, [[30.0], [30.0]])  # sum_j y_j
    np.testing.assert_array_equal(gy, [3.0, 3.0])  # sum_i x_i


def test_golden_matmul():
    y, (ga, gb) = _grad(lambda a, b: a @ b, np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, 1.0]),
                        upstream=np.array([1.0, 10.0]))
    np.testing.assert_array_equal(y, [3.0, 7.0])
    np.testing.assert_array_equal(ga, [[1.0, 1.0], [10.0, 10.0]])  # g_i b_k
    np.testing.assert_array_equal(gb, [31.0, 42.0])  # sum_i g_i a_ik
    y, (ga, gb) = _grad(lambda a, b: a @ b, np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert y.shape == () and y == 11.0
    np.testing.assert_array_equal(ga, [3.0, 4.0])
    np.testing.assert_array_equal(gb, [1.0, 2.0])


def test_golden_max_ties_both_conventions():
    x = np.array([1.0, 3.0, 3.0])
    _, (g,) = _grad(lambda t: F.max(t), x)
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])  # max(x): ties share evenly
    v, i = F.max(tv.tensor(x), 0)
    assert v.item() == 3.0 and i.item() == 1 and i.dtype == np.int64 and not i.requires_grad
    _, (g,) = _grad(lambda t: F.max(t, 0).values, x)
    np.testing.assert_array_equal(g, [0.0, 1.0, 0.0])  # max(x, dim): the first index takes all


def test_golden_indexing_scatter_adds():
    _, (g,) = _grad(lambda t: t[[0, 0, 2]].sum(), np.array([5.0, 6.0, 7.0]))
    np.testing.assert_array_equal(g, [2.0, 0.0, 1.0])
    _, (g,) = _grad(lambda t: t[1:, ::2].sum(), np.zeros((3, 3)))
    np.testing.assert_array_equal(g, [[0, 0, 0], [1, 0, 1], [1, 0, 1]])


def test_golden_pad_modes():
    x = np.array([[1.0, 2.0, 3.0]])
    assert F.pad(tv.tensor(x), (2, 1), mode="reflect").numpy().tolist() == [[3, 2, 1, 2, 3, 2]]
    assert F.pad(tv.tensor(x), (2, 1), mode="replicate").numpy().tolist() == [[1, 1, 1, 2, 3, 3]]
    assert F.pad(tv.tensor(x), (2, 1), mode="circular").numpy().tolist() == [[2, 3, 1, 2, 3, 1]]
    assert F.pad(tv.tensor(x), (1, 0), value=9.0).numpy().tolist() == [[9, 1, 2, 3]]
    # reflect copies x[2] twice, x[1] three times, x[0] once: gradient of the sum = copy counts
    _, (g,) = _grad(lambda t: F.pad(t, (2, 1), mode="reflect").sum(), x)
    np.testing.assert_array_equal(g, [[1.0, 3.0, 2.0]])


def test_golden_cat_stack_where():
    _, (ga, gb) = _grad(lambda a, b: F.cat([a, b], 0), np.zeros(2), np.zeros(1), upstream=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(ga, [1.0, 2.0])
    np.testing.assert_array_equal(gb, [3.0])
    _, (ga, gb) = _grad(lambda a, b: F.stack([a, b], 1), np.zeros(2), np.zeros(2), upstream=np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(ga, [1.0, 3.0])
    np.testing.assert_array_equal(gb, [2.0, 4.0])
    c = np.array([True, False])
    _, (ga, gb) = _grad(lambda a, b: F.where(c, a, b), np.zeros(2), np.zeros(2), upstream=np.array([5.0, 7.0]))
    np.testing.assert_array_equal(ga, [5.0, 0.0])
    np.testing.assert_array_equal(gb, [0.0, 7.0])


# ---- Tensor methods reach the same functions ----------------------------------------------
def test_tensor_methods_match_functions(rng):
    a = rng.standard_normal((2, 3, 4))
    x = tv.tensor(a)
    pairs = [
        (x.sum(1), a.sum(1)), (x.mean((0, 2), keepdim=True), a.mean((0, 2), keepdims=True)),
        (x.max(), a.max()), (x.max(2).values, a.max(2)), (x.max(2).indices, a.argmax(2)),
        (x.amax(1), a.max(1)), (x.var(1, unbiased=False), a.var(1)), (x.exp(), np.exp(a)),
        (x.abs().sqrt(), np.sqrt(np.abs(a))), (x.abs().log(), np.log(np.abs(a))), (x.clamp(-0.5, 0.5), np.clip(a, -0.5, 0.5)),
        (x.relu(), np.maximum(a, 0)), (x.tanh(), np.tanh(a)), (x.sigmoid(), 1 / (1 + np.exp(-a))),
        (x.softmax(-1), np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
        (x.reshape(6, 4), a.reshape(6, 4)), (x.view(-1), a.reshape(-1)), (x.transpose(0, 2), a.transpose(2, 1, 0)),
        (x.permute(1, 2, 0), a.transpose(1, 2, 0)), (x.flatten(1), a.reshape(2, 12)), (x.T, a.T),
        (x.maximum(tv.tensor(a[0])), np.maximum(a, a[0])), (x[0, 1:, None], a[0, 1:, None]),
        (x @ tv.tensor(a[0].T), a @ a[0].T), (x.neg(), -a),
        (x.add(1.0).mul(2.0).sub(x).div(4.0).pow(2), (((a + 1) * 2 - a) / 4) ** 2),
        (x.matmul(tv.tensor(a[0].T)), a @ a[0].T),
    ]
    for ours, expected in pairs:
        np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-12)


# ---- bad input: clear errors naming the shapes ----------------------------------------------
def _t(*shape):
    return tv.tensor(np.zeros(shape), requires_grad=True)


BAD_INPUT = [
        (lambda: _t(2, 3) + _t(4), ValueError, ["add", "(2, 3)", "(4,)"]),
        (lambda: _t(2, 3) - np.zeros(4), ValueError, ["sub", "(2, 3)", "(4,)"]),
        (lambda: _t(2, 3) * _t(3, 2), ValueError, ["mul", "(2, 3)", "(3, 2)"]),
        (lambda: _t(2, 3) / _t(2), ValueError, ["div", "(2, 3)", "(2,)"]),
        (lambda: _t(2, 3) ** _t(2), ValueError, ["pow", "(2, 3)", "(2,)"]),
        (lambda: _t(2, 3) @ _t(4, 5), ValueError, ["matmul", "(2, 3)", "(4, 5)"]),
        (lambda: _t(2, 2, 3) @ _t(3, 3, 1), ValueError, ["matmul", "(2,)", "(3,)"]),
        (lambda: _t() @ _t(3), ValueError, ["matmul", "()"]),
        (lambda: F.maximum(_t(2), _t(3)), ValueError, ["maximum", "(2,)", "(3,)"]),
        (lambda: F.minimum(_t(2), _t(3)), ValueError, ["minimum", "(2,)", "(3,)"]),
        (lambda: F.where(np.ones(4, bool), _t(2), _t(2)), ValueError, ["where", "(4,)", "(2,)"]),
        (lambda: F.cat([_t(2, 3), _t(2, 4)], 0), ValueError, ["cat", "(2, 3)", "(2, 4)"]),
        (lambda: F.cat([_t(2, 3), _t(2)], 0), ValueError, ["cat", "(2, 3)", "(2,)"]),
        (lambda: F.cat([], 0), ValueError, ["cat", "empty"]),
        (lambda: F.stack([_t(2, 3), _t(3, 2)]), ValueError, ["stack", "(2, 3)", "(3, 2)"]),
        (lambda: _t(2, 3).reshape(4, 2), ValueError, ["reshape", "(2, 3)", "(4, 2)"]),
        (lambda: _t(2, 3).permute(0, 0), ValueError, ["permute", "(0, 0)"]),
        (lambda: _t(2, 3).permute(0), ValueError, ["permute", "2 dimensions"]),
        (lambda: _t(2, 3).transpose(0, 2), ValueError, ["transpose", "dim=2", "2 dimensions"]),
        (lambda: _t(2, 3).flatten(1, 0), ValueError, ["flatten"]),
        (lambda: F.softmax(_t(2, 3), 2), ValueError, ["softmax", "dim=2"]),
        (lambda: F.log_softmax(_t(2, 3), -3), ValueError, ["log_softmax", "dim=-3"]),
        (lambda: _t(2, 3).sum(2), ValueError, ["sum", "dim=2"]),
        (lambda: _t(2, 3).mean((0, 0)), ValueError, ["mean", "repeats"]),
        (lambda: _t(2, 0).max(), ValueError, ["amax", "(2, 0)", "empty"]),
        (lambda: _t(2, 3).max((0, 1)), TypeError, ["max", "amax"]),
        (lambda: _t(2, 3)[2], IndexError, ["(2, 3)"]),
        (lambda: _t(2, 3)[:, [0, 5]], IndexError, ["(2, 3)"]),
        (lambda: F.pad(_t(2, 3), (3, 0), mode="reflect"), ValueError, ["reflect", "3"]),
        (lambda: F.pad(_t(2, 3), (1, 1, 1)), ValueError, ["pad", "even"]),
        (lambda: F.pad(_t(2, 3), (1, 1), mode="mirror"), ValueError, ["pad", "mirror"]),
        (lambda: F.clamp(_t(2)), ValueError, ["clamp", "min", "max"]),
        (lambda: F.clamp(_t(2), _t(2)), TypeError, ["clamp", "requires grad"]),
        (lambda: _t(2, 3).expand(3, 3), ValueError, ["expand", "(2, 3)", "(3, 3)"]),
        (lambda: F.mean(tv.tensor([1, 2])), TypeError, ["mean", "int64"]),
]


@pytest.mark.parametrize(
    "call, error, words", BAD_INPUT, ids=[f"{i:02d}-" + " ".join(c[2][:2]) for i, c in enumerate(BAD_INPUT)]
)
def test_bad_input_raises_clear_error(call, error, words):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"
