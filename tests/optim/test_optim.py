"""Optimizers and schedules follow PyTorch's update rules step for step."""
import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision import optim

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.5, "amsgrad": True}),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_optimizer_matches_pytorch_step_for_step(name, kwargs):
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((3, 4))
    a = rng.standard_normal((4, 4))
    ours_p = tv.tensor(w0.copy(), requires_grad=True)
    theirs_p = torch.tensor(w0.copy(), requires_grad=True)
    ours = getattr(optim, name)([ours_p], **kwargs)
    theirs = getattr(torch.optim, name)([theirs_p], **kwargs)
    for step in range(12):
        # A non-quadratic loss so gradients change in direction as well as size.
        lo = ((ours_p @ tv.tensor(a)).tanh() ** 2).sum() + (ours_p**2).sum() * 0.1
        lt = ((theirs_p @ torch.tensor(a)).tanh() ** 2).sum() + (theirs_p**2).sum() * 0.1
        ours.zero_grad()
        theirs.zero_grad()
        lo.backward()
        lt.backward()
        ours.step()
        theirs.step()
        np.testing.assert_allclose(ours_p.numpy(), theirs_p.detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"{name} {kwargs} diverged at step {step}")


def test_param_groups_use_their_own_hyperparameters():
    p1 = tv.tensor(np.ones(2), requires_grad=True)
    p2 = tv.tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([{"params": [p1]}, {"params": [p2], "lr": 1.0}], lr=0.1)
    (p1.sum() + p2.sum()).backward()
    opt.step()
    np.testing.assert_allclose(p1.numpy(), 0.9)
    np.testing.assert_allclose(p2.numpy(), 0.0)


def test_bad_hyperparameters_are_rejected():
    p = tv.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


SCHEDULES = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [2, 5, 5], "gamma": 0.3}),
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001}),
    ("LambdaLR", {"lr_lambda": lambda e: 1 / (1 + e)}),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedule_matches_pytorch(name, kwargs):
    ours_opt = optim.SGD([tv.tensor(np.ones(1), requires_grad=True)], lr=0.1)
    theirs_opt = torch.optim.SGD([torch.ones(1, requires_grad=True)], lr=0.1)
    ours = getattr(optim.lr_scheduler, name)(ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(theirs_opt, **kwargs)
    for epoch in range(20):  # past T_max: the cosine climbs back, as PyTorch's
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12), f"epoch {epoch}"
        theirs_opt.step()
        ours.step()
        theirs.step()
