"""Containers (tinyvision/nn/containers.py): naming, indexing and iteration as PyTorch's."""
from collections import OrderedDict

import numpy as np
import torch

import tinyvision as tv
from tinyvision import nn


def test_sequential_names_indexing_and_slicing(rng):
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU) and isinstance(seq[-1], nn.Linear)
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2
    x = tv.tensor(rng.standard_normal((5, 3)))
    np.testing.assert_allclose(seq(x).numpy(), seq[2](seq[1](seq[0](x))).numpy())
    seq.append(nn.Tanh())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]


def test_sequential_from_ordered_dict_matches_torch_keys():
    ours = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU()), ("out", nn.Linear(3, 1))]))
    theirs = torch.nn.Sequential(OrderedDict([("fc", torch.nn.Linear(2, 3)), ("act", torch.nn.ReLU()),
                                              ("out", torch.nn.Linear(3, 1))]))
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_module_list_and_dict_register_parameters():
    ml = nn.ModuleList([nn.Linear(2, 2)]).extend([nn.Linear(2, 3), nn.Linear(3, 1)])
    assert len(ml) == 3 and [type(m) for m in ml] == [nn.Linear] * 3
    assert len(ml[1:]) == 2
    md = nn.ModuleDict({"a": nn.Linear(2, 2)})
    md["b"] = nn.Linear(2, 1, bias=False)
    assert list(md) == ["a", "b"] and len(md) == 2
    theirs = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 2), "b": torch.nn.Linear(2, 1, bias=False)})
    assert list(md.state_dict()) == list(theirs.state_dict())
    assert list(ml.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
