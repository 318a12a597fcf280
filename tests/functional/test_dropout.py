"""F.dropout: inverted scaling, mask statistics, gradient = the same mask, p edge cases, errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.random import manual_seed
from tinyvision.testing import gradcheck


@given(st.floats(0.0, 0.95), st.integers(0, 2**31 - 1), st.sampled_from([np.float32, np.float64]))
@settings(max_examples=20)
def test_dropout_zeroes_or_scales_and_backward_uses_the_same_mask(p, seed, dtype):
    rng = np.random.default_rng(seed)
    x = (rng.random((4, 5, 6)) + 0.5).astype(dtype)  # nonzero, so zeros in y mark dropped elements
    xt = tv.tensor(x, requires_grad=True)
    y = F.dropout(xt, p, generator=np.random.default_rng(seed))
    kept = y.numpy() != 0
    np.testing.assert_allclose(y.numpy()[kept], (x / dtype(1 - p))[kept], rtol=1e-6)
    g = rng.standard_normal(x.shape).astype(dtype)
    y.backward(g)
    assert xt.grad.dtype == dtype
    np.testing.assert_allclose(xt.grad.numpy(), np.where(kept, g / dtype(1 - p), 0), rtol=1e-6)


def test_dropout_keep_rate_and_mean():
    x = np.ones(200_000)
    p = 0.3
    y = F.dropout(tv.tensor(x), p, generator=np.random.default_rng(1)).numpy()
    kept = (y != 0).mean()
    assert abs(kept - (1 - p)) < 4 * np.sqrt(p * (1 - p) / x.size)  # 4 sigma
    assert abs(y.mean() - 1.0) < 0.01  # inverted dropout keeps the expectation


def test_dropout_is_reproducible():
    x = tv.tensor(np.ones((3, 4)))
    a = F.dropout(x, 0.5, generator=np.random.default_rng(7)).numpy()
    b = F.dropout(x, 0.5, generator=np.random.default_rng(7)).numpy()
    np.testing.assert_array_equal(a, b)
    manual_seed(3)
    c = F.dropout(x, 0.5).numpy()
    manual_seed(3)
    np.testing.assert_array_equal(c, F.dropout(x, 0.5).numpy())


def test_dropout_edge_cases():
    x = tv.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x  # identity in evaluation
    np.testing.assert_array_equal(F.dropout(x, 0.0).numpy(), x.numpy())
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.0, 0.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])


def test_dropout_gradcheck():
    x = np.random.default_rng(0).standard_normal((3, 4))
    # A fixed generator per call: every evaluation of the function draws the same mask.
    gradcheck(lambda t: F.dropout(t, 0.4, generator=np.random.default_rng(5)), x)


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(tv.tensor(np.ones(3)), p)


def test_dropout_matches_torch_semantics_on_its_mask():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
    y = F.dropout(tv.tensor(x), 0.25, generator=np.random.default_rng(2)).numpy()
    mask = torch.tensor((y != 0).astype(np.float32))
    # PyTorch's own formula on the same mask: input * (mask / (1 - p)).
    np.testing.assert_allclose(y, (torch.tensor(x) * mask.div(0.75)).numpy(), rtol=1e-6)
