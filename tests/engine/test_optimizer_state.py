"""Optimizer.state_dict / load_state_dict: PyTorch's layout and buffers, and a reloaded optimizer
continues bit for bit."""
import numpy as np
import pytest

import tinyvision as tv
from tinyvision import optim

torch = pytest.importorskip("torch")

SHAPES = [(3, 2), (4,)]


def grads(step):
    rng = np.random.default_rng(step)
    return [rng.standard_normal(s) for s in SHAPES]


def run(make_opt, params, steps, start=0):
    opt = make_opt(params)
    for s in range(start, start + steps):
        for p, g in zip(params, grads(s)):
            p.grad = tv.tensor(g.copy())
        opt.step()
    return opt


CASES = {
    "sgd-momentum": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
                     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)),
    "adam-amsgrad": (lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
                     lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True)),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.01), lambda ps: torch.optim.AdamW(ps, lr=0.01)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_state_matches_torch(name):
    ours_make, torch_make = CASES[name]
    init = [np.random.default_rng(9).standard_normal(s) for s in SHAPES]
    ours = [tv.tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = run(ours_make, ours, 3)
    topt = torch_make(theirs)
    for s in range(3):
        for p, g in zip(theirs, grads(s)):
            p.grad = torch.tensor(g.copy())
        topt.step()
    mine, ref = opt.state_dict(), topt.state_dict()
    assert set(mine["state"]) == set(ref["state"]) == {0, 1}
    for i in ref["state"]:
        assert set(mine["state"][i]) == set(ref["state"][i])
        for k, v in ref["state"][i].items():
            np.testing.assert_allclose(np.asarray(mine["state"][i][k], dtype=float),
                                       v.numpy() if hasattr(v, "numpy") else v, rtol=1e-12, err_msg=k)
    assert mine["param_groups"][0]["params"] == ref["param_groups"][0]["params"] == [0, 1]
    for k in ("lr", "weight_decay"):
        assert mine["param_groups"][0][k] == ref["param_groups"][0][k]


@pytest.mark.parametrize("name", list(CASES))
def test_reloaded_optimizer_continues_exactly(name):
    make = CASES[name][0]
    init = [np.random.default_rng(9).standard_normal(s) for s in SHAPES]
    straight = [tv.tensor(a.copy(), requires_grad=True) for a in init]
    run(make, straight, 5)
    split = [tv.tensor(a.copy(), requires_grad=True) for a in init]
    state = run(make, split, 2).state_dict()
    fresh = make(split)
    fresh.load_state_dict(state)
    for s in range(2, 5):
        for p, g in zip(split, grads(s)):
            p.grad = tv.tensor(g.copy())
        fresh.step()
    for a, b in zip(straight, split):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_state_is_a_copy_and_bad_states_are_named():
    p = tv.tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = tv.tensor(np.array([1.0, 2.0, 3.0]))
    opt.step()
    state = opt.state_dict()
    buffer = state["state"][0]["momentum_buffer"].copy()
    opt.step()
    np.testing.assert_array_equal(state["state"][0]["momentum_buffer"], buffer)
    with pytest.raises(ValueError, match="expected a dict with keys 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})
    bad = {"state": {0: {"momentum_buffer": np.ones(4)}}, "param_groups": state["param_groups"]}
    with pytest.raises(ValueError, match=r"state\[0\]\['momentum_buffer'\] has shape \(4,\), its parameter \(3,\)"):
        opt.load_state_dict(bad)
    two = optim.SGD([p, tv.tensor(np.ones(2), requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="group 0 has 2 parameters, the saved one 1"):
        two.load_state_dict(state)
