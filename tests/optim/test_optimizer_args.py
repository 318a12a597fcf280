"""The optimiser's argument checks: what PyTorch refuses, tinyvision refuses, with its message."""
import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision import nn, optim


def _torch_error(params):
    try:
        torch.optim.SGD(params, lr=0.1)
    except Exception as e:  # noqa: BLE001 - we want whatever torch raises
        return type(e)
    return None


def test_a_lone_tensor_is_refused_as_pytorch_does():
    lin, tlin = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    assert _torch_error(tlin.weight) is TypeError
    with pytest.raises(TypeError, match=r"iterable of Tensors or dicts.*shape \(2, 3\)"):
        optim.SGD(lin.weight, lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.Adam(lin.weight, lr=0.1)


def test_empty_parameter_list_has_pytorchs_message():
    assert _torch_error([]) is ValueError
    for empty in ([], iter([]), (p for p in [])):
        with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
            optim.SGD(empty, lr=0.1)


def test_not_iterable_and_not_tensors():
    assert _torch_error(3) is TypeError and _torch_error([1]) is TypeError
    with pytest.raises(TypeError, match="iterable of Tensors or dicts, but got int"):
        optim.SGD(3, lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors, but one of the params is int"):
        optim.SGD([1], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {nn.Linear(2, 2).weight}}], lr=0.1)


def test_group_with_a_single_tensor_is_wrapped_and_updates_it():
    # PyTorch accepts {"params": tensor} inside a group: the tensor itself is optimised.
    lin = nn.Linear(3, 2)
    w0 = lin.weight.numpy().copy()
    opt = optim.SGD([{"params": lin.weight}], lr=0.5)
    assert opt.param_groups[0]["params"][0] is lin.weight
    lin(tv.tensor(np.ones((1, 3)))).sum().backward()
    opt.step()
    np.testing.assert_allclose(lin.weight.numpy(), w0 - 0.5 * np.ones((2, 3)), rtol=1e-6)


def test_non_leaf_and_duplicate_groups_are_refused():
    w = tv.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([w * 2], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)
    opt = optim.SGD([w], lr=0.1)
    opt.add_param_group({"params": [tv.tensor(np.ones(2), requires_grad=True)], "lr": 0.01})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
