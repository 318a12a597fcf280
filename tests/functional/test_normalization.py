"""F.batch_norm and F.group_norm against PyTorch (forward, gradients, running statistics), gradcheck."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.testing import gradcheck, tolerance

torch = pytest.importorskip("torch")
TF = torch.nn.functional


@st.composite
def bn_inputs(draw):
    C = draw(st.integers(1, 4))
    spatial = draw(st.sampled_from([(), (3,), (2, 3), (1, 1), (4, 5)]))
    N = draw(st.integers(1, 3))
    if N * int(np.prod(spatial)) < 2:
        N = 2
    return (N, C) + spatial


@given(bn_inputs(), st.booleans(), st.booleans(), st.sampled_from([0.1, 0.5, 0.0, 1.0]),
       st.sampled_from([np.float64, np.float32]), st.integers(0, 2**31 - 1))
def test_batch_norm_matches_torch_over_steps(shape, training, affine, momentum, dtype, seed):
    rng = np.random.default_rng(seed)
    C = shape[1]
    w = rng.standard_normal(C).astype(dtype) if affine else None
    b = rng.standard_normal(C).astype(dtype) if affine else None
    rm, rv = rng.standard_normal(C).astype(dtype), (rng.random(C) + 0.5).astype(dtype)
    ours_rm, ours_rv = tv.tensor(rm.copy()), tv.tensor(rv.copy())
    theirs_rm, theirs_rv = torch.tensor(rm.copy()), torch.tensor(rv.copy())
    tol = tolerance(dtype)
    for step in range(3):  # running statistics evolve over several batches
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        params = [tv.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
        tparams = [torch.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
        y = F.batch_norm(params[0], ours_rm, ours_rv, params[1], params[2], training=training,
                         momentum=momentum, eps=1e-3)
        ty = TF.batch_norm(tparams[0], theirs_rm, theirs_rv, tparams[1], tparams[2], training=training,
                           momentum=momentum, eps=1e-3)
        y.backward(g)
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
        np.testing.assert_allclose(ours_rm.numpy(), theirs_rm.numpy(), **tol)
        np.testing.assert_allclose(ours_rv.numpy(), theirs_rv.numpy(), **tol)
        for p, tp in zip(params, tparams):
            if p is not None:
                assert p.grad.dtype == dtype
                np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=tol["rtol"], atol=10 * tol["atol"])


def test_batch_norm_without_running_stats():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 2, 2))
    y = F.batch_norm(tv.tensor(x), None, None, training=True)
    ty = TF.batch_norm(torch.tensor(x), None, None, training=True)
    np.testing.assert_allclose(y.numpy(), ty.numpy(), **tolerance(np.float64))


def test_batch_norm_running_var_uses_unbiased_variance():
    # Golden: x = [1, 3] for one channel: mean 2, biased var 1, unbiased var 2.
    rm, rv = np.zeros(1), np.ones(1)
    y = F.batch_norm(tv.tensor(np.array([[1.0], [3.0]])), rm, rv, training=True, momentum=1.0, eps=0.0)
    np.testing.assert_allclose(y.numpy().ravel(), [-1.0, 1.0])  # normalised with the biased var
    np.testing.assert_allclose(rm, [2.0])
    np.testing.assert_allclose(rv, [2.0])


@given(bn_inputs(), st.booleans(), st.integers(0, 2**31 - 1))
@settings(max_examples=15)
def test_batch_norm_gradcheck(shape, training, seed):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x, w, b = rng.standard_normal(shape), rng.standard_normal(C), rng.standard_normal(C)
    rm, rv = rng.standard_normal(C), rng.random(C) + 0.5
    # Fresh copies of the running statistics per call: gradcheck calls the function many times.
    gradcheck(lambda x, w, b: F.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training), x, w, b)


@st.composite
def gn_inputs(draw):
    G = draw(st.integers(1, 3))
    C = G * draw(st.integers(1, 3))
    spatial = draw(st.sampled_from([(), (3,), (2, 3), (4, 4)]))
    if C // G * int(np.prod(spatial)) == 1 and draw(st.integers(0, 3)) > 0:
        # One value per statistic: xhat is 0 up to round-off; only the error path is exact.
        spatial = (2,)
    return (draw(st.integers(1, 3)), C) + spatial, G


@given(gn_inputs(), st.booleans(), st.sampled_from([np.float64, np.float32]), st.integers(0, 2**31 - 1))
def test_group_norm_matches_torch(config, affine, dtype, seed):
    shape, G = config
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rng.standard_normal(shape) * 3 - 1).astype(dtype)
    if x.size // G == 1:  # PyTorch refuses: one value per group statistic
        with pytest.raises(ValueError, match="more than 1 value"):
            F.group_norm(tv.tensor(x), G)
        return
    if x[0].size == G:  # one value per group in each sample: xhat = 0 up to float round-off
        x = np.broadcast_to(x[:, :1], x.shape).copy() if dtype == np.float32 else x
    w = rng.standard_normal(C).astype(dtype) if affine else None
    b = rng.standard_normal(C).astype(dtype) if affine else None
    params = [tv.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
    tparams = [torch.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
    y = F.group_norm(params[0], G, params[1], params[2])
    ty = TF.group_norm(tparams[0], G, tparams[1], tparams[2])
    g = rng.standard_normal(shape).astype(dtype)
    y.backward(g)
    ty.backward(torch.tensor(g))
    tol = tolerance(dtype)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    for p, tp in zip(params, tparams):
        if p is not None:
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=tol["rtol"], atol=10 * tol["atol"])


@given(gn_inputs(), st.integers(0, 2**31 - 1))
@settings(max_examples=15)
def test_group_norm_gradcheck(config, seed):
    shape, G = config
    rng = np.random.default_rng(seed)
    C = shape[1]
    if int(np.prod(shape[1:])) // G < 2:
        shape = shape + (2,)
    gradcheck(lambda x, w, b: F.group_norm(x, G, w, b), rng.standard_normal(shape), rng.standard_normal(C),
              rng.standard_normal(C))


def test_bad_input_errors():
    x = tv.tensor(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3, 1, 1\)"):
        F.batch_norm(tv.tensor(np.zeros((1, 3, 1, 1))), None, None, training=True)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\)"):
        F.batch_norm(x, np.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match="training=False"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        F.batch_norm(x, np.zeros(3), np.ones(3), weight=np.ones(2))
    with pytest.raises(ValueError, match="at least 2 dims"):
        F.batch_norm(tv.tensor(np.zeros(3)), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="divisor of the number of channels 3"):
        F.group_norm(x, 2)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        F.group_norm(x, 3, bias=np.zeros(2))
