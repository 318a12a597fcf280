"""F.max_pool2d, F.avg_pool2d, F.adaptive_{max,avg}_pool2d against PyTorch, gradcheck, bad input."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.testing import gradcheck, tolerance

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def distinct_values(shape, rng, dtype=np.float64):
    """Values at least 0.01 apart: no ties, so finite differences never move an argmax."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.01 - n * 0.005).reshape(shape).astype(dtype)


def run_both(ours, theirs, x, rng, n_outputs=1, torch_backward=True):
    """Forward and backward (random upstream gradient) in tinyvision and torch."""
    xt = tv.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    y, ty = ours(xt), theirs(tx)
    y0, ty0 = (y[0], ty[0]) if n_outputs == 2 else (y, ty)
    g = rng.standard_normal(y0.shape).astype(x.dtype)
    y0.backward(g)
    if not torch_backward:
        return y, ty, xt.grad.numpy(), None
    ty0.backward(torch.tensor(g))
    return y, ty, xt.grad.numpy(), tx.grad.numpy()


@st.composite
def pool_configs(draw, dilation=True):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    dh, dw = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    H = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 11))
    W = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 11))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W)
    ceil_mode = draw(st.booleans())
    return shape, dict(kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                       ceil_mode=ceil_mode)


# --------------------------------------------------------------------------------------
# max_pool2d
# --------------------------------------------------------------------------------------
@given(pool_configs(), st.integers(0, 2**31 - 1))
def test_max_pool2d_matches_torch(config, seed):
    shape, kw = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    empty = has_empty_window(shape, kw)
    (y, i), (ty, ti), gx, tgx = run_both(
        lambda t: F.max_pool2d(t, return_indices=True, **kw),
        lambda t: TF.max_pool2d(t, return_indices=True, **kw), x, rng, n_outputs=2, torch_backward=not empty)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    if empty:
        # PyTorch's backward sends an empty window's gradient to flat offset h0*W + w0, which
        # can lie in the *next plane* or past the end of the tensor (it corrupts the heap: we
        # do not even run it). tinyvision drops gradients whose index is outside their plane.
        assert np.isfinite(gx).all()
        return
    np.testing.assert_allclose(gx, tgx, **tolerance(np.float64))


def has_empty_window(shape, kw):
    from tinyvision.functional.pooling import _max_windows, _pool_output_size

    for axis in (0, 1):
        size = shape[2 + axis]
        k, s, p, d = (kw[name][axis] for name in ("kernel_size", "stride", "padding", "dilation"))
        out = _pool_output_size(size, k, s, p, d, kw["ceil_mode"])
        if (_max_windows(size, out, k, s, p, d)[1] == 0).any():
            return True
    return False


@given(pool_configs(), st.integers(0, 2**31 - 1))
@settings(max_examples=15)
def test_max_pool2d_float32_matches_torch(config, seed):
    shape, kw = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    empty = has_empty_window(shape, kw)
    y, ty, gx, tgx = run_both(lambda t: F.max_pool2d(t, **kw), lambda t: TF.max_pool2d(t, **kw), x, rng,
                              torch_backward=not empty)
    assert y.dtype == np.float32 and gx.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    if empty:
        return  # see test_max_pool2d_matches_torch
    np.testing.assert_allclose(gx, tgx, **tolerance(np.float32))


def test_max_pool2d_ties_go_to_first_in_scan_order():
    # A constant plane: every window is a tie; PyTorch CPU picks the first element scanned
    # (top-left of the window's in-bounds part), and the whole gradient goes there.
    x = np.ones((1, 1, 4, 4))
    y, i = F.max_pool2d(tv.tensor(x), 3, stride=1, padding=1, return_indices=True)
    ty, ti = TF.max_pool2d(torch.tensor(x), 3, stride=1, padding=1, return_indices=True)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    assert i.numpy()[0, 0, 0, 0] == 0 and i.numpy()[0, 0, 2, 2] == 5  # window rows 1..3, cols 1..3
    xt = tv.tensor(x, requires_grad=True)
    F.max_pool2d(xt, 2, stride=1).sum().backward()
    # Golden: window (oh, ow) sends its gradient to (oh, ow) itself.
    expected = np.zeros((4, 4))
    expected[:3, :3] = 1
    np.testing.assert_array_equal(xt.grad.numpy()[0, 0], expected)


def test_max_pool2d_nan_and_inf_follow_torch():
    x = np.array([[[[1.0, np.nan, 2.0], [np.nan, 5.0, 1.0], [-np.inf, -np.inf, 1.0]]]])
    for kw in (dict(kernel_size=2, stride=1), dict(kernel_size=3, padding=1, stride=1)):
        y, i = F.max_pool2d(tv.tensor(x), return_indices=True, **kw)
        ty, ti = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
        np.testing.assert_array_equal(y.numpy(), ty.numpy())  # NaN == NaN for assert_array_equal
        np.testing.assert_array_equal(i.numpy(), ti.numpy())
    x = np.full((1, 1, 2, 3), -np.inf)
    y, i = F.max_pool2d(tv.tensor(x), 2, stride=1, padding=1, return_indices=True)
    ty, ti = TF.max_pool2d(torch.tensor(x), 2, stride=1, padding=1, return_indices=True)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())


def test_max_pool2d_empty_dilated_window_gives_minus_inf_and_no_gradient():
    # kernel 2, padding 1, dilation 3 on a 2x2 input: the window reads rows -1 and 2: none inside.
    x = np.arange(4.0).reshape(1, 1, 2, 2)
    xt = tv.tensor(x, requires_grad=True)
    y, i = F.max_pool2d(xt, 2, stride=1, padding=1, dilation=3, return_indices=True)
    ty, ti = TF.max_pool2d(torch.tensor(x), 2, stride=1, padding=1, dilation=3, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    y.sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), np.zeros_like(x))


@given(pool_configs(), st.integers(0, 2**31 - 1))
@settings(max_examples=10)
def test_max_pool2d_gradcheck(config, seed):
    shape, kw = config
    assume(not has_empty_window(shape, kw))  # an empty window's output is -inf
    x = distinct_values(shape, np.random.default_rng(seed))
    gradcheck(lambda t: F.max_pool2d(t, **kw), x)


def test_max_pool2d_golden():
    x = np.array([[[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]]]])
    y, i = F.max_pool2d(tv.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), [[[[6.0, 8.0]]]])
    np.testing.assert_array_equal(i.numpy(), [[[[5, 7]]]])
    y = F.max_pool2d(tv.tensor(x), 2, ceil_mode=True)  # the last row's windows are clipped
    np.testing.assert_array_equal(y.numpy(), [[[[6.0, 8.0], [10.0, 12.0]]]])


# --------------------------------------------------------------------------------------
# avg_pool2d
# --------------------------------------------------------------------------------------
@given(pool_configs(dilation=False), st.booleans(), st.sampled_from([None, 1, 3, -2]),
       st.integers(0, 2**31 - 1))
def test_avg_pool2d_matches_torch(config, count_include_pad, divisor_override, seed):
    shape, kw = config
    kw.pop("dilation")
    kw.update(count_include_pad=count_include_pad, divisor_override=divisor_override)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    y, ty, gx, tgx = run_both(lambda t: F.avg_pool2d(t, **kw), lambda t: TF.avg_pool2d(t, **kw), x, rng)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tolerance(np.float64))
    np.testing.assert_allclose(gx, tgx, **tolerance(np.float64))


@given(pool_configs(dilation=False), st.booleans(), st.integers(0, 2**31 - 1))
@settings(max_examples=15)
def test_avg_pool2d_float32_matches_torch(config, count_include_pad, seed):
    shape, kw = config
    kw.pop("dilation")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    fn = dict(count_include_pad=count_include_pad)
    y, ty, gx, tgx = run_both(lambda t: F.avg_pool2d(t, **kw, **fn), lambda t: TF.avg_pool2d(t, **kw, **fn), x, rng)
    assert y.dtype == np.float32 and gx.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tolerance(np.float32))
    np.testing.assert_allclose(gx, tgx, **tolerance(np.float32))


@given(pool_configs(dilation=False), st.booleans(), st.integers(0, 2**31 - 1))
@settings(max_examples=10)
def test_avg_pool2d_gradcheck(config, count_include_pad, seed):
    shape, kw = config
    kw.pop("dilation")
    x = np.random.default_rng(seed).standard_normal(shape)
    gradcheck(lambda t: F.avg_pool2d(t, count_include_pad=count_include_pad, **kw), x)


def test_avg_pool2d_ceil_mode_divisor_golden():
    # 3x3 input, kernel 2, stride 2, ceil_mode, padding 0: the last window in each axis
    # sticks out past the input into nothing (not padding), so it is clipped and divided
    # by its clipped size — 2, 2, 2 and 1 — whatever count_include_pad says.
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    for count_include_pad in (True, False):
        y = F.avg_pool2d(tv.tensor(x), 2, ceil_mode=True, count_include_pad=count_include_pad).numpy()
        np.testing.assert_allclose(y[0, 0], [[2.0, 3.5], [6.5, 8.0]])
    # With padding 1 (kernel 3, stride 2): corner windows hold 4 real pixels of 9 positions.
    y = F.avg_pool2d(tv.tensor(x), 3, stride=2, padding=1).numpy()
    np.testing.assert_allclose(y[0, 0, 0, 0], (0 + 1 + 3 + 4) / 9)
    y = F.avg_pool2d(tv.tensor(x), 3, stride=2, padding=1, count_include_pad=False).numpy()
    np.testing.assert_allclose(y[0, 0, 0, 0], (0 + 1 + 3 + 4) / 4)


# --------------------------------------------------------------------------------------
# adaptive pools
# --------------------------------------------------------------------------------------
@st.composite
def adaptive_configs(draw):
    H, W = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    OH, OW = draw(st.integers(1, 14)), draw(st.integers(1, 14))
    form = draw(st.sampled_from(["pair", "int", "none_h", "none_w"]))
    output_size = {"pair": (OH, OW), "int": OH, "none_h": (None, OW), "none_w": (OH, None)}[form]
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W), output_size


@given(adaptive_configs(), st.integers(0, 2**31 - 1))
def test_adaptive_avg_pool2d_matches_torch(config, seed):
    shape, output_size = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    y, ty, gx, tgx = run_both(lambda t: F.adaptive_avg_pool2d(t, output_size),
                              lambda t: TF.adaptive_avg_pool2d(t, output_size), x, rng)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tolerance(np.float64))
    np.testing.assert_allclose(gx, tgx, **tolerance(np.float64))


@given(adaptive_configs(), st.integers(0, 2**31 - 1))
def test_adaptive_max_pool2d_matches_torch(config, seed):
    shape, output_size = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if rng.random() < 0.3:
        x = np.round(x)  # many ties
    (y, i), (ty, ti), gx, tgx = run_both(
        lambda t: F.adaptive_max_pool2d(t, output_size, return_indices=True),
        lambda t: TF.adaptive_max_pool2d(t, output_size, return_indices=True), x, rng, n_outputs=2)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    np.testing.assert_allclose(gx, tgx, **tolerance(np.float64))


@given(adaptive_configs(), st.integers(0, 2**31 - 1))
@settings(max_examples=10)
def test_adaptive_pools_gradcheck(config, seed):
    shape, output_size = config
    x = distinct_values(shape, np.random.default_rng(seed))
    gradcheck(lambda t: F.adaptive_avg_pool2d(t, output_size), x)
    gradcheck(lambda t: F.adaptive_max_pool2d(t, output_size), x)


def test_adaptive_windows_golden():
    # H = 5 into 3 outputs: windows [0, 2), [1, 4), [3, 5) (they overlap).
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0]).reshape(1, 1, 5, 1)
    y = F.adaptive_avg_pool2d(tv.tensor(x), (3, 1)).numpy().ravel()
    np.testing.assert_allclose(y, [1.5, 3.0, 4.5])
    y = F.adaptive_max_pool2d(tv.tensor(x), (3, 1)).numpy().ravel()
    np.testing.assert_array_equal(y, [2.0, 4.0, 5.0])


# --------------------------------------------------------------------------------------
# Bad input: clear errors before any kernel runs
# --------------------------------------------------------------------------------------
def test_bad_input_errors():
    x = tv.tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"4-D.*\(4, 4\)"):
        F.max_pool2d(tv.tensor(np.zeros((4, 4))), 2)
    with pytest.raises(ValueError, match="4-D"):
        F.avg_pool2d(tv.tensor(np.zeros((1, 1, 1, 4, 4))), 2)
    with pytest.raises(ValueError, match="padding must be at most half"):
        F.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match="padding must be at most half"):
        F.avg_pool2d(x, (2, 4), padding=(2, 0))
    with pytest.raises(ValueError, match=r"larger than the padded input.*\(1, 1, 4, 4\)"):
        F.max_pool2d(x, 5)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.max_pool2d(x, 3, dilation=2)
    with pytest.raises(ValueError, match="stride"):
        F.max_pool2d(x, 2, stride=0)
    with pytest.raises(TypeError, match="kernel_size"):
        F.max_pool2d(x, 2.5)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.max_pool2d(tv.tensor(np.zeros((1, 1, 4, 4), dtype=np.int64)), 2)
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(x, 0)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_max_pool2d(x, (1, 2, 3))


@pytest.mark.parametrize("kw", [dict(kernel_size=3, padding=2), dict(kernel_size=5), dict(kernel_size=3, dilation=2),
                                dict(kernel_size=(1, 3), padding=(1, 0))])
def test_errors_where_torch_errors(kw):
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(RuntimeError):
        TF.max_pool2d(torch.tensor(x), **kw)
    with pytest.raises(ValueError):
        F.max_pool2d(tv.tensor(x), **kw)


def test_arrays_and_no_grad_inputs_work():
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    y = F.max_pool2d(x, 2)
    assert isinstance(y, tv.Tensor) and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), TF.max_pool2d(torch.tensor(x), 2).numpy())
