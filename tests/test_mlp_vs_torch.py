"""End to end: a small MLP trained with tinyvision follows PyTorch's loss curve step for step."""
import numpy as np
import pytest
import torch

import tinyvision as tv
import tinyvision.functional as F
from tinyvision import nn, optim


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-9), (np.float32, 2e-4)])
@pytest.mark.parametrize(
    "opt_name,kwargs",
    [("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adam", {"lr": 0.01}), ("AdamW", {"lr": 0.01, "weight_decay": 0.05})],
)
def test_training_follows_pytorch(opt_name, kwargs, dtype, rtol):
    x, y = _data()
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                                 torch.nn.ReLU(), torch.nn.Linear(16, 3)).to(tdtype)
    ours = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    ours.load_state_dict(theirs.state_dict())
    if dtype == np.float64:
        ours.double()
    opt_o = getattr(optim, opt_name)(ours.parameters(), **kwargs)
    opt_t = getattr(torch.optim, opt_name)(theirs.parameters(), **kwargs)
    xo, yo = tv.tensor(x.astype(dtype)), tv.tensor(y)
    xt, yt = torch.tensor(x.astype(dtype)), torch.tensor(y)
    losses_o, losses_t = [], []
    for _ in range(40):
        lo = F.cross_entropy(ours(xo), yo)
        lt = torch.nn.functional.cross_entropy(theirs(xt), yt)
        opt_o.zero_grad()
        opt_t.zero_grad()
        lo.backward()
        lt.backward()
        opt_o.step()
        opt_t.step()
        losses_o.append(lo.item())
        losses_t.append(lt.item())
    np.testing.assert_allclose(losses_o, losses_t, rtol=rtol)
    assert losses_o[-1] < 0.7 * losses_o[0]  # and it actually learned something
