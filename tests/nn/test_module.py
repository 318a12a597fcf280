"""Module bookkeeping: registration order, state_dict keys as PyTorch, loading torch weights."""
import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision import nn


def _mlp_pair():
    ours = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    return ours, theirs


def test_state_dict_keys_match_pytorch():
    ours, theirs = _mlp_pair()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        assert ours.state_dict()[k].shape == tuple(v.shape)


def test_load_torch_state_dict_gives_torch_outputs(rng):
    ours, theirs = _mlp_pair()
    ours.load_state_dict(theirs.state_dict())
    x = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(tv.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_nested_names_and_custom_module():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.register_buffer("steps", np.zeros((), dtype=np.int64))
            self.heads = nn.ModuleList([nn.Linear(2, 1), nn.Linear(2, 1, bias=False)])

        def forward(self, x):
            return self.fc(x)

    class TorchBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)
            self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
            self.heads = torch.nn.ModuleList([torch.nn.Linear(2, 1), torch.nn.Linear(2, 1, bias=False)])

    assert list(Block().state_dict()) == list(TorchBlock().state_dict())
    names = [n for n, _ in Block().named_parameters()]
    assert names == ["fc.weight", "fc.bias", "heads.0.weight", "heads.0.bias", "heads.1.weight"]


def test_load_state_dict_reports_every_problem():
    ours, _ = _mlp_pair()
    sd = ours.state_dict()
    sd["0.weight"] = np.zeros((2, 2))
    del sd["2.bias"]
    sd["extra"] = np.zeros(1)
    with pytest.raises(ValueError) as e:
        ours.load_state_dict(sd)
    msg = str(e.value)
    assert "0.weight" in msg and "(8, 4)" in msg and "(2, 2)" in msg
    assert "2.bias" in msg and "extra" in msg


def test_load_state_dict_non_strict_returns_missing_and_unexpected():
    ours, _ = _mlp_pair()
    sd = ours.state_dict()
    del sd["2.bias"]
    sd["extra"] = np.zeros(1)
    missing, unexpected = ours.load_state_dict(sd, strict=False)
    assert missing == ["2.bias"] and unexpected == ["extra"]


def test_train_eval_zero_grad_and_shared_parameters(rng):
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2  # a shared layer is listed once
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model(tv.tensor(rng.standard_normal((2, 3)))).sum().backward()
    assert shared.weight.grad is not None
    model.zero_grad()
    assert shared.weight.grad is None


def test_assigning_before_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"super\(\)\.__init__\(\)"):
        Broken()


def test_linear_init_matches_pytorch_bounds():
    layer = nn.Linear(50, 40)
    bound = 1 / np.sqrt(50)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-bound, bound) has std bound/sqrt(3): 2000 draws pin it within a few percent.
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound


@pytest.mark.parametrize(
    "name,kwargs",
    [("kaiming_uniform_", {"a": 5**0.5}), ("kaiming_normal_", {}), ("xavier_uniform_", {"gain": 2.0}),
     ("xavier_normal_", {})],
)
def test_init_distributions_match_pytorch(name, kwargs):
    shape = (64, 32, 3, 3)
    ours = getattr(nn.init, name)(tv.tensor(np.zeros(shape)), **kwargs).numpy()
    theirs = getattr(torch.nn.init, name)(torch.zeros(shape, dtype=torch.float64), **kwargs).numpy()
    # Same distribution: same scale to within sampling error (18k samples), same support.
    assert abs(ours.std() / theirs.std() - 1) < 0.03
    assert abs(ours.mean()) < 0.03 * theirs.std()
    if "uniform" in name:
        assert abs(np.abs(ours).max() / np.abs(theirs).max() - 1) < 0.01


def test_calculate_gain_table():
    for nl, param in [("relu", None), ("tanh", None), ("leaky_relu", 0.2), ("sigmoid", None), ("selu", None)]:
        assert nn.init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))


def test_module_double_and_repr():
    m = nn.Sequential(nn.Linear(2, 2)).double()
    assert m[0].weight.dtype == np.float64
    assert "Linear(in_features=2, out_features=2, bias=True)" in repr(m)


def test_dropout_layer_is_identity_in_eval(rng):
    x = tv.tensor(rng.standard_normal((4, 5)))
    d = nn.Dropout(0.5).eval()
    np.testing.assert_array_equal(d(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match="p must be"):
        nn.Dropout(1.5)
