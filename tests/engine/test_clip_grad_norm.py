"""clip_grad_norm_ against torch.nn.utils.clip_grad_norm_: the returned norm and the clipped
gradients, every norm order, float32 and float64, clipping and not clipping."""
import numpy as np
import pytest

import tinyvision as tv
from tinyvision.nn.utils import clip_grad_norm_

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), (2, 2, 2), (1,)]


def pair(dtype, scale, seed):
    rng = np.random.default_rng(seed)
    grads = [(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]
    ours = [tv.tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad = tv.tensor(g.copy())
        t.grad = torch.from_numpy(g.copy())
    return ours, theirs


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-6)], ids=["float64", "float32"])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")], ids=["L2", "L1", "L3", "Linf"])
@pytest.mark.parametrize("max_norm, scale", [(1.5, 1.0), (100.0, 1.0), (1.0, 1e-9)],
                         ids=["clips", "below-max", "tiny-grads"])
def test_matches_torch(dtype, tol, norm_type, max_norm, scale):
    ours, theirs = pair(dtype, scale, seed=len(str(norm_type)) + int(max_norm))
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert total.numpy().dtype == dtype
    np.testing.assert_allclose(total.numpy(), expected.numpy(), rtol=tol, atol=0)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol * 1e-9)


def test_skips_params_without_grad_and_accepts_one_tensor():
    a = tv.tensor(np.ones(3), requires_grad=True)
    b = tv.tensor(np.ones(2), requires_grad=True)
    a.grad = tv.tensor(np.full(3, 4.0))
    total = clip_grad_norm_([a, b], 1.0)
    assert float(total.numpy()) == pytest.approx(np.sqrt(48))
    assert b.grad is None
    assert float(clip_grad_norm_(a, 1.0).numpy()) == pytest.approx(1.0, rel=1e-5)
    assert float(clip_grad_norm_([b], 1.0).numpy()) == 0.0  # no gradients at all: PyTorch's 0


def test_nonfinite_norm():
    a = tv.tensor(np.ones(2), requires_grad=True)
    a.grad = tv.tensor(np.array([np.inf, 1.0]))
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([a], 1.0, error_if_nonfinite=True)
    t = torch.ones(2, dtype=torch.float64, requires_grad=True)
    t.grad = torch.tensor([np.inf, 1.0], dtype=torch.float64)
    clip_grad_norm_([a], 1.0)
    torch.nn.utils.clip_grad_norm_([t], 1.0)
    np.testing.assert_array_equal(a.grad.numpy(), t.grad.numpy())  # both NaN-filled, as PyTorch
    with pytest.raises(TypeError, match=r"parameters\[0\] is a ndarray"):
        clip_grad_norm_([np.ones(2)], 1.0)
