"""nn.Conv2d / nn.ConvTranspose2d: PyTorch's shapes, default initialisation, state_dict keys,
padding modes and output_size; a torch layer's weights load one to one and give its outputs."""
import math

import numpy as np
import pytest

import tinyvision as tv
from tinyvision import nn

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.")


def test_conv2d_parameters_and_state_dict():
    conv = nn.Conv2d(6, 8, (3, 5), stride=2, padding=(1, 2), groups=2)
    assert conv.weight.shape == (8, 3, 3, 5) and conv.bias.shape == (8,)
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert list(nn.Conv2d(6, 8, 3, bias=False).state_dict()) == ["weight"]
    t = torch.nn.Conv2d(6, 8, (3, 5), stride=2, padding=(1, 2), groups=2)
    assert list(t.state_dict()) == list(conv.state_dict())
    assert [tuple(v.shape) for v in t.state_dict().values()] == [v.shape for v in conv.state_dict().values()]


def test_conv_transpose2d_parameters_and_state_dict():
    up = nn.ConvTranspose2d(6, 8, 2, stride=2, groups=2)
    t = torch.nn.ConvTranspose2d(6, 8, 2, stride=2, groups=2)
    assert up.weight.shape == tuple(t.weight.shape) == (6, 4, 2, 2)
    assert list(up.state_dict()) == list(t.state_dict()) == ["weight", "bias"]


@pytest.mark.parametrize(
    "make, fan_in",
    [
        (lambda: nn.Conv2d(64, 96, 3), 64 * 9),
        (lambda: nn.Conv2d(64, 96, (1, 5), groups=4), 16 * 5),
        # PyTorch computes a transposed conv's fan_in from weight dim 1: C_out/groups * KH * KW.
        (lambda: nn.ConvTranspose2d(96, 64, 4, stride=2), 64 * 16),
        (lambda: nn.ConvTranspose2d(96, 64, 2, groups=2), 32 * 4),
    ],
    ids=["conv3x3", "conv-grouped", "convT4x4", "convT-grouped"],
)
def test_default_init_is_pytorchs(make, fan_in):
    """kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias the same bound."""
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.98 * bound  # uses the whole range
    # U(-a, a): mean 0, variance a^2 / 3 (tens of thousands of draws: 3% is many sigmas)
    assert abs(w.mean()) < 0.02 * bound
    assert abs(w.var() / (bound**2 / 3) - 1) < 0.03


def test_torch_weights_load_and_outputs_match():
    torch.manual_seed(0)
    t = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    conv.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 9)).astype(np.float32)
    np.testing.assert_allclose(conv(tv.tensor(x)).numpy(), t(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)

    tt = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
    up = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
    up.load_state_dict({k: v.detach().numpy() for k, v in tt.state_dict().items()})
    np.testing.assert_allclose(up(tv.tensor(x)).numpy(), tt(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [(1, 2), "same", "valid"])
def test_padding_modes_match_torch(mode, padding):
    torch.manual_seed(1)
    kw = dict(kernel_size=(3, 4), padding=padding, padding_mode=mode, dtype=torch.float64)
    t = torch.nn.Conv2d(2, 3, **kw)
    conv = nn.Conv2d(2, 3, (3, 4), padding=padding, padding_mode=mode, dtype=np.float64)
    conv.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 7))
    X, tx = tv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = conv(X), t(tx)
    gy = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(gy)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(conv.weight.grad.numpy(), t.weight.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size", [(9, 9), (10, 10), (9, 10)])
def test_conv_transpose2d_output_size(size):
    t = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, dtype=torch.float64)
    up = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, dtype=np.float64)
    up.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    y = up(tv.tensor(x), output_size=size)
    ty = t(torch.tensor(x), output_size=list(size))
    assert y.shape == tuple(ty.shape) == (1, 3) + size
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="not reachable"):
        up(tv.tensor(x), output_size=(11, 11))


def test_parameters_receive_gradients():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    y = conv(tv.tensor(np.ones((2, 3, 5, 5), np.float32)))
    y.sum().backward()
    assert conv.weight.grad.shape == (4, 3, 3, 3) and conv.bias.grad.shape == (4,)
    np.testing.assert_allclose(conv.bias.grad.numpy(), np.full(4, 2 * 25.0))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nn.Conv2d(5, 4, 3, groups=2), "in_channels"),
        (lambda: nn.Conv2d(4, 5, 3, groups=2), "out_channels"),
        (lambda: nn.Conv2d(4, 4, 3, stride=2, padding="same"), "strided"),
        (lambda: nn.Conv2d(4, 4, 3, padding="full"), "padding"),
        (lambda: nn.Conv2d(4, 4, 3, padding_mode="mirror"), "padding_mode"),
        (lambda: nn.ConvTranspose2d(4, 4, 3, padding_mode="reflect"), "zeros"),
    ],
)
def test_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_repr_mentions_options():
    assert "stride=(2, 2)" in repr(nn.Conv2d(3, 4, 3, stride=2))
    assert "output_padding=(1, 1)" in repr(nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=1))


def test_repr_matches_pytorch():
    import torch

    from tinyvision import nn as tnn

    for args, kw in [((3, 4, 3), {"padding": 1, "bias": False, "padding_mode": "reflect"}),
                     ((3, 4, 3), {"stride": 2, "dilation": 2, "groups": 1})]:
        assert repr(tnn.Conv2d(*args, **kw)) == repr(torch.nn.Conv2d(*args, **kw))
    kw = {"stride": 2, "output_padding": 1, "dilation": 2, "groups": 1}
    assert repr(tnn.ConvTranspose2d(4, 6, 2, **kw)) == repr(torch.nn.ConvTranspose2d(4, 6, 2, **kw))
