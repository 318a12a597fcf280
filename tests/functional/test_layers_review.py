"""Review cases for pooling, interpolate and normalisation: edge configurations checked against
PyTorch, forward and gradients in float64."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinyvision as tv
import tinyvision.functional as F
import tinyvision.nn as nn


def _check(fn_tv, fn_torch, x, rng, tol=1e-10):
    xt = torch.tensor(x, requires_grad=True)
    yt = fn_torch(xt)
    xv = tv.tensor(x, requires_grad=True)
    yv = fn_tv(xv)
    assert yv.shape == tuple(yt.shape)
    np.testing.assert_allclose(yv.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    gy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(gy))
    yv.backward(gy)
    np.testing.assert_allclose(xv.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)


POOL_CASES = [  # (input shape, kernel, stride, padding, dilation, ceil_mode)
    ((2, 3, 1, 1), 1, None, 0, 1, False),          # 1x1 input
    ((1, 2, 5, 7), (5, 7), None, 0, 1, False),     # kernel == input size
    ((1, 2, 6, 5), 2, 3, 0, 1, True),              # stride > kernel, ceil_mode
    ((1, 1, 9, 9), 2, 2, 1, 4, False),             # large dilation
    ((1, 1, 5, 5), 3, 2, 1, 1, True),              # ceil_mode, last window starts in the padding
    ((1, 1, 4, 6), (1, 3), (4, 1), (0, 1), (1, 2), True),
]


@pytest.mark.parametrize("shape,k,s,p,d,ceil", POOL_CASES)
def test_max_pool_edges_match_torch(shape, k, s, p, d, ceil, rng):
    x = rng.standard_normal(shape)
    _check(lambda t: F.max_pool2d(t, k, s, p, d, ceil_mode=ceil),
           lambda t: TF.max_pool2d(t, k, s, p, d, ceil_mode=ceil), x, rng)


@pytest.mark.parametrize("shape,k,s,p,d,ceil", [c for c in POOL_CASES if c[4] == 1])
@pytest.mark.parametrize("count_include_pad,divisor", [(True, None), (False, None), (True, 3)])
def test_avg_pool_edges_match_torch(shape, k, s, p, d, ceil, count_include_pad, divisor, rng):
    x = rng.standard_normal(shape)
    _check(lambda t: F.avg_pool2d(t, k, s, p, ceil, count_include_pad, divisor),
           lambda t: TF.avg_pool2d(t, k, s, p, ceil, count_include_pad, divisor), x, rng)


def test_max_pool_window_entirely_in_padding():
    # 1x1 input, kernel 2, padding 1, dilation 2: the only window reads rows -1 and 1, both
    # padding. PyTorch outputs -inf with index 2 (past the plane); tinyvision gives the same
    # forward, and its backward drops that gradient instead of writing out of bounds.
    x = tv.tensor(np.array([[[[3.0]]]]), requires_grad=True)
    y, idx = F.max_pool2d(x, 2, None, 1, 2, return_indices=True)
    yt, it = TF.max_pool2d(torch.tensor(x.numpy()), 2, None, 1, 2, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), yt.numpy())
    np.testing.assert_array_equal(idx.numpy(), it.numpy())
    y.backward(np.ones(y.shape))
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((1, 1, 1, 1)))


@pytest.mark.parametrize("out", [1, (5, 9), (None, 2), (7, 1)])
def test_adaptive_pools_including_output_larger_than_input(out, rng):
    x = rng.standard_normal((2, 2, 3, 4))
    _check(lambda t: F.adaptive_max_pool2d(t, out), lambda t: TF.adaptive_max_pool2d(t, out), x, rng)
    _check(lambda t: F.adaptive_avg_pool2d(t, out), lambda t: TF.adaptive_avg_pool2d(t, out), x, rng)


@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None), ("bilinear", False),
                                        ("bilinear", True)])
@pytest.mark.parametrize("scale,recompute", [(1.7, None), (0.5, None), (3.3, True), (3.3, False),
                                             ((2.5, 0.6), None), (1 / 3, True)])
def test_interpolate_non_integer_scale_factors(mode, align, scale, recompute, rng):
    x = rng.standard_normal((1, 2, 7, 10))
    _check(lambda t: F.interpolate(t, None, scale, mode, align, recompute_scale_factor=recompute),
           lambda t: TF.interpolate(t, None, scale, mode, align, recompute_scale_factor=recompute), x, rng)


@pytest.mark.parametrize("in_hw,size", [((1, 1), (3, 4)), ((4, 5), (1, 1)), ((1, 6), (5, 1)), ((3, 3), (3, 7))])
def test_bilinear_align_corners_with_size_one(in_hw, size, rng):
    x = rng.standard_normal((1, 1) + in_hw)
    for align in (True, False):
        _check(lambda t: F.interpolate(t, size, mode="bilinear", align_corners=align),
               lambda t: TF.interpolate(t, size, mode="bilinear", align_corners=align), x, rng)


@pytest.mark.parametrize("shape", [(4, 3), (3, 3, 5), (1, 3, 4), (2, 3, 2, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_1d_2d_inputs_and_running_stats(shape, training, rng):
    x = rng.standard_normal(shape) * 2 + 1
    C = shape[1]
    w, b = rng.standard_normal(C), rng.standard_normal(C)
    rm, rv = rng.standard_normal(C), rng.random(C) + 0.5
    rm_t, rv_t = torch.tensor(rm), torch.tensor(rv)
    _check(lambda t: F.batch_norm(t, rm, rv, tv.tensor(w), tv.tensor(b), training, 0.3, 1e-3),
           lambda t: TF.batch_norm(t, rm_t, rv_t, torch.tensor(w), torch.tensor(b), training, 0.3, 1e-3), x, rng)
    np.testing.assert_allclose(rm, rm_t.numpy(), rtol=1e-12)   # updated in place alike
    np.testing.assert_allclose(rv, rv_t.numpy(), rtol=1e-12)


def test_batch_norm_bad_calls_raise_like_torch():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(tv.tensor(np.ones((1, 3))), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(tv.tensor(np.ones((2, 3))), None, None, training=False)
    # eval mode with N = 1 is fine
    assert F.batch_norm(tv.tensor(np.ones((1, 3))), np.zeros(3), np.ones(3)).shape == (1, 3)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("track", [True, False])
def test_batch_norm_module_momentum_none_and_no_running_stats(momentum, track, rng):
    ours = nn.BatchNorm1d(3, momentum=momentum, track_running_stats=track, dtype=np.float64)
    ref = torch.nn.BatchNorm1d(3, momentum=momentum, track_running_stats=track, dtype=torch.float64)
    for step in range(4):
        training = step < 3                      # three training batches, then eval
        ours.train(training)
        ref.train(training)
        x = rng.standard_normal((5, 3, 2)) * 3 + step
        np.testing.assert_allclose(ours(tv.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-10)
    if track:
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(ref, name).numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 6), (2, 6, 5), (1, 6, 3, 2)])
@pytest.mark.parametrize("groups", [1, 3, 6])
def test_group_norm_groups_one_and_c(shape, groups, rng):
    x = rng.standard_normal(shape)
    C = shape[1]
    w, b = rng.standard_normal(C), rng.standard_normal(C)
    wt, bt = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    wv, bv = tv.tensor(w, requires_grad=True), tv.tensor(b, requires_grad=True)
    _check(lambda t: F.group_norm(t, groups, wv, bv, 1e-4), lambda t: TF.group_norm(t, groups, wt, bt, 1e-4), x, rng)
    np.testing.assert_allclose(wv.grad.numpy(), wt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bv.grad.numpy(), bt.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear"])
def test_interpolate_numba_forward_equals_array_gathers_bitwise(dtype, mode, rng):
    # The CPU forward is a Numba kernel; the array version (the GPU path) must agree bit for bit.
    from tinyvision.functional.resample import _linear_taps, _nearest_taps, resample_gather

    x = rng.standard_normal((2, 3, 7, 10)).astype(dtype)
    for size in [(13, 4), (7, 10), (1, 1), (20, 31)]:
        if mode == "bilinear":
            h, w = _linear_taps(7, size[0], None, False, dtype), _linear_taps(10, size[1], None, False, dtype)
        else:
            exact = mode == "nearest-exact"
            h, w = _nearest_taps(7, size[0], None, exact), _nearest_taps(10, size[1], None, exact)
        y = F.interpolate(tv.tensor(x), size, mode=mode).numpy()
        ref = resample_gather(x, h, w)
        assert y.dtype == ref.dtype == dtype
        np.testing.assert_array_equal(y, ref)


def test_interpolate_refuses_non_integer_size():
    x = tv.tensor(np.ones((1, 1, 4, 4)))
    with pytest.raises(TypeError, match="size must be an int or a pair of ints"):
        F.interpolate(x, size=2.5)
    assert F.interpolate(x, size=np.int64(3)).shape == (1, 1, 3, 3)


@pytest.mark.parametrize("op,args", [("max_pool2d", (3, 2, 1)), ("avg_pool2d", (2,)),
                                     ("adaptive_max_pool2d", ((2, 3),)), ("adaptive_avg_pool2d", (3,))])
def test_pooling_unbatched_chw_input_like_torch(op, args, rng):
    x = rng.standard_normal((3, 7, 6))
    _check(lambda t: getattr(F, op)(t, *args), lambda t: getattr(TF, op)(t, *args), x, rng)
    if op.endswith("max_pool2d"):
        y, idx = getattr(F, op)(tv.tensor(x), *args, return_indices=True)
        yt, it = getattr(TF, op)(torch.tensor(x), *args, return_indices=True)
        assert idx.shape == tuple(it.shape)
        np.testing.assert_array_equal(idx.numpy(), it.numpy())
