"""tinyvision.interop: weights from and to a real torch model, one to one, dtypes kept."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision import nn
from tinyvision.interop import InteropError, from_torch, to_torch


def _torch_net(dtype=torch.float32):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 2, 3, stride=2, bias=False), torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 3, 5),
    ).to(dtype)
    # non-trivial BatchNorm state: one training step's statistics
    net.train()
    net(torch.randn(2, 3, 7, 7, dtype=dtype))
    return net.eval()


def _tv_net():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 2, 3, stride=2, bias=False), nn.Flatten(), nn.Linear(2 * 3 * 3, 5),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_from_torch_keeps_keys_order_dtypes_and_values(dtype):
    net = _torch_net(dtype)
    sd = from_torch(net)
    assert list(sd) == list(net.state_dict())
    for k, v in net.state_dict().items():
        assert isinstance(sd[k], np.ndarray)
        assert sd[k].dtype == v.numpy().dtype, k
        np.testing.assert_array_equal(sd[k], v.numpy())
    assert sd["1.num_batches_tracked"].dtype == np.int64 and sd["1.num_batches_tracked"] == 1
    # a state dict converts the same as the module
    assert list(from_torch(net.state_dict())) == list(sd)


def test_from_torch_copies():
    net = _torch_net()
    sd = from_torch(net)
    sd["0.weight"][...] = 0
    assert net[0].weight.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_converted_weights_give_torch_outputs(rng, dtype):
    net = _torch_net(dtype)
    ours = _tv_net()
    if dtype == torch.float64:
        ours.double()
    ours.load_state_dict(from_torch(net))
    ours.eval()
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32 if dtype == torch.float32 else np.float64)
    tol = tv.testing.tolerance(x.dtype)
    np.testing.assert_allclose(ours(tv.tensor(x)).numpy(), net(torch.from_numpy(x)).detach().numpy(), **tol)


def test_to_torch_round_trip_and_loading_into_a_torch_module(rng):
    ours = _tv_net()
    sd = to_torch(ours)
    assert list(sd) == list(ours.state_dict())
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    assert sd["1.num_batches_tracked"].dtype == torch.int64
    assert sd["0.weight"].dtype == torch.float32
    target = _torch_net()
    returned = to_torch(ours, target)
    assert list(returned) == list(sd)
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[k].numpy(), v)
    # and back: the same arrays
    for k, v in from_torch(target).items():
        np.testing.assert_array_equal(v, ours.state_dict()[k])
    # a mapping of arrays and Tensors converts too, copies, big-endian made native
    arr = np.arange(6, dtype=">f8").reshape(2, 3)
    out = to_torch({"a": arr, "b": tv.tensor(np.ones(2)), "c": np.int64(3)})
    assert out["a"].dtype == torch.float64 and out["b"].dtype == torch.float64 and out["c"].dtype == torch.int64
    np.testing.assert_array_equal(out["a"].numpy(), arr)
    out["a"][0, 0] = 100.0
    assert arr[0, 0] == 0.0


def test_to_torch_into_a_mismatched_module_raises_torchs_error():
    ours = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):
        to_torch(ours, torch.nn.Sequential(torch.nn.Linear(4, 2)))


def test_bfloat16_widens_to_float32():
    sd = from_torch({"w": torch.tensor([1.5, -2.0], dtype=torch.bfloat16)})
    assert sd["w"].dtype == np.float32
    np.testing.assert_array_equal(sd["w"], [1.5, -2.0])


def test_bad_inputs_name_the_key():
    with pytest.raises(InteropError, match="nn.Module or a state dict, got int"):
        from_torch(3)
    with pytest.raises(InteropError, match="'extra' is a str, not a tensor"):
        from_torch({"w": torch.ones(1), "extra": "hello"})
    with pytest.raises(InteropError, match="'w' has dtype object"):
        to_torch({"w": np.array([None])})
    with pytest.raises(InteropError, match="'w' is a list"):
        to_torch({"w": [1.0, 2.0]})
    with pytest.raises(InteropError, match="torch already"):
        to_torch(torch.nn.Linear(2, 2))
    with pytest.raises(InteropError, match="torch_module must be"):
        to_torch({"w": np.ones(1)}, object())


def test_import_tinyvision_interop_does_not_import_torch():
    code = "import sys, tinyvision.interop, tinyvision as tv; tv.interop.from_torch; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
