"""tinyvision.testing.compare_modules: agreement is reported as agreement, and a planted
divergence is found at the layer where it was planted."""
import os

import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision import nn
from tinyvision.autograd import Function
from tinyvision.interop import from_torch
from tinyvision.testing import compare_modules

RESNET_READY = os.path.exists(os.path.join(os.path.dirname(tv.__file__), "models", "resnet.py"))


def _nets(dtype=np.float32):
    """The same small conv net in both frameworks, same weights."""
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(6 * 4 * 4, 5),
    )
    ours = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5),
    )
    if dtype == np.float64:
        theirs.double()
        ours.double()
    ours.load_state_dict(from_torch(theirs))
    return ours, theirs


def _x(dtype=np.float32, n=3):
    return np.random.default_rng(0).standard_normal((n, 3, 8, 8)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_identical_nets_agree(dtype, mode):
    ours, theirs = _nets(dtype)
    getattr(ours, mode)(), getattr(theirs, mode)()
    report = compare_modules(ours, theirs, _x(dtype))
    assert report.first_divergence is None and report.ok
    names = [r.name for r in report.outputs]
    assert names == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "(model)"]  # execution order
    assert [r.shape for r in report.outputs][:2] == [(3, 4, 8, 8), (3, 4, 8, 8)]
    grads = [r.name for r in report.gradients]
    assert grads == [n for n, _ in theirs.named_parameters()] + ["input 0"]
    assert all(r.max_abs <= tv.testing.tolerance(dtype)["atol"] * 10 for r in report.outputs)
    # the gradients compared are the ones left in the models
    np.testing.assert_allclose(ours[0].weight.grad.numpy(), theirs[0].weight.grad.numpy(),
                               **tv.testing.tolerance(dtype))


@pytest.mark.parametrize("layer,param", [("0", "weight"), ("4", "weight"), ("5", "weight"), ("8", "bias")])
def test_a_changed_weight_is_found_at_its_layer(layer, param):
    ours, theirs = _nets()
    ours.eval(), theirs.eval()
    w = getattr(ours[int(layer)], param)
    w.data = w.data.copy()
    w.data.reshape(-1)[3] += 0.5  # one number
    report = compare_modules(ours, theirs, _x())
    assert report.first_divergence == layer
    assert report.first_output_divergence == layer
    rows = {r.name: r for r in report.outputs}
    for r in report.outputs[: [r.name for r in report.outputs].index(layer)]:
        assert r.ok, r.name  # everything before it agrees
    assert not rows[layer].ok and rows[layer].max_abs > 1e-3
    assert not rows["(model)"].ok
    assert f"first divergence: {layer}" in str(report)
    grad_rows = {r.name: r for r in report.gradients}
    # a changed weight changes the gradients below it too; the last layer's bias changes none
    assert grad_rows["0.weight"].ok == (layer == "8")


def test_a_small_change_within_tolerance_is_not_a_divergence():
    ours, theirs = _nets(np.float64)
    ours.eval(), theirs.eval()
    ours[4].weight.data.reshape(-1)[0] += 1e-13
    report = compare_modules(ours, theirs, _x(np.float64))
    assert report.first_divergence is None
    assert 0 < max(r.max_abs for r in report.outputs) < 1e-11
    # and tolerances tighter than the change (but above float64 round-off, which the two
    # frameworks' different summation orders leave in module 0 already) make it one
    assert compare_modules(ours, theirs, _x(np.float64), rtol=0, atol=1e-15).first_divergence == "4"


class _WrongReLUGrad(Function):
    """ReLU whose backward forgets the mask: right forward, wrong gradient."""

    def forward(self, x):
        return np.maximum(x, 0)

    def backward(self, gy):
        return gy


class _BadReLU(nn.Module):
    def forward(self, x):
        return _WrongReLUGrad()(x)


def test_a_wrong_backward_is_found_from_the_gradients():
    ours, theirs = _nets()
    ours.eval(), theirs.eval()
    ours._modules["6"] = _BadReLU()  # after the second conv: its gradients and all before are wrong
    report = compare_modules(ours, theirs, _x())
    assert report.first_output_divergence is None
    grads = {r.name: r.ok for r in report.gradients}
    assert grads["8.weight"] and grads["8.bias"]
    assert not grads["4.weight"] and not grads["0.weight"] and not grads["input 0"]
    # the diverging parameter the backward pass reaches first belongs to BatchNorm "5"
    assert report.first_gradient_divergence == "5" == report.first_divergence
    assert compare_modules(ours, theirs, _x(), backward=False).gradients == []


class _Heads(nn.Module):
    """Several outputs: a tuple and a dict, and one layer called twice."""

    def __init__(self, lib):
        super().__init__()
        self.conv = lib.Conv2d(3, 2, 1)
        self.act = lib.ReLU()
        self.fc = lib.Linear(8, 3)

    def forward(self, x):
        y = self.act(self.conv(x))
        z = self.act(-y)  # the same ReLU again: "act#2"
        return {"map": y, "pair": (z, self.fc(x.reshape(x.shape[0], -1)[:, :8]))}


class _TorchHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        self.act = torch.nn.ReLU()
        self.fc = torch.nn.Linear(8, 3)

    forward = _Heads.forward


def test_structured_outputs_and_repeated_calls():
    theirs = _TorchHeads()
    ours = _Heads(nn)
    ours.load_state_dict(from_torch(theirs))
    report = compare_modules(ours, theirs, _x())
    assert report.ok
    assert [r.name for r in report.outputs] == [
        "conv", "act", "act#2", "fc", "(model)['map']", "(model)['pair'][0]", "(model)['pair'][1]"]
    assert report.outputs[-1].shape == (3, 3)
    # plant in fc: only fc and the model's 'pair'[1] differ
    ours.fc.bias.data = ours.fc.bias.data + 1
    report = compare_modules(ours, theirs, _x())
    bad = [r.name for r in report.outputs if not r.ok]
    assert bad == ["fc", "(model)['pair'][1]"] and report.first_divergence == "fc"


def test_shape_mismatch_and_modules_only_one_side_runs():
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    ours = nn.Sequential(nn.Linear(4, 3), nn.Identity())
    ours.load_state_dict(from_torch(theirs))
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    report = compare_modules(ours, theirs, x, backward=False)
    assert report.first_divergence == "1"  # Identity vs ReLU: same name, other numbers

    class Extra(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 3)
            self.b = nn.Linear(3, 2)

        def forward(self, x):
            return self.a(x)

    class TorchExtra(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 3)
            self.b = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.b(self.a(x))

    ours, theirs = Extra(), TorchExtra()
    ours.load_state_dict(from_torch(theirs))
    report = compare_modules(ours, theirs, x)
    rows = {r.name: r for r in report.outputs}
    assert rows["a"].ok and rows["b"].ok is None and "not called in tinyvision" in rows["b"].note
    assert not rows["(model)"].ok and "shape (2, 3) vs torch (2, 2)" in rows["(model)"].note
    assert report.first_divergence == ""  # the model itself
    assert "first divergence: (model)" in str(report)


def test_report_prints_a_table():
    ours, theirs = _nets()
    text = str(compare_modules(ours, theirs, _x()))
    lines = text.splitlines()
    assert lines[0].startswith("compare_modules: rtol=0.0001, atol=1e-05")
    assert lines[1].split() == ["output", "shape", "max", "abs", "max", "rel", "ok"]
    assert any(line.split()[0] == "4" and "(3, 6, 4, 4)" in line and line.rstrip().endswith("ok") for line in lines)
    assert "0.weight" in text and lines[-1] == "first divergence: None"


# ---- resnet18 (helper A's model, torchvision's layout) ---------------------------------------
@pytest.fixture(scope="module")
def resnets():
    pytest.importorskip("torchvision")
    if not RESNET_READY:
        pytest.skip("tinyvision.models.resnet not there yet")
    import torchvision

    from tinyvision.models import resnet18

    torch.manual_seed(0)
    theirs = torchvision.models.resnet18(num_classes=10).eval()
    ours = resnet18(num_classes=10).eval()
    ours.load_state_dict(from_torch(theirs))
    return ours, theirs


def test_resnet18_agrees_and_a_planted_divergence_is_found(resnets):
    ours, theirs = resnets
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    report = compare_modules(ours, theirs, x)
    assert report.first_divergence is None, str(report)
    names = [r.name for r in report.outputs]
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"] and names[-1] == "(model)"
    assert names.index("layer1.0.relu#2") < names.index("layer1.0") < names.index("layer1")
    assert len(report.gradients) == len(list(theirs.parameters())) + 1

    w = ours.layer2[1].conv1.weight
    saved = w.data.copy()
    try:
        w.data = saved.copy()
        w.data[5, 7, 1, 1] += 0.5
        report = compare_modules(ours, theirs, x, backward=False)
        assert report.first_divergence == "layer2.1.conv1"
        assert all(r.ok for r in report.outputs[: names.index("layer2.1.conv1")])
    finally:
        w.data = saved


def test_resnet18_feature_maps_through_intermediate_layer_getter(resnets):
    from torchvision.models._utils import IntermediateLayerGetter as TorchGetter

    from tinyvision.models import IntermediateLayerGetter

    ours, theirs = resnets
    layers = {"layer2": "0", "layer3": "1", "layer4": "2"}
    ours_b, theirs_b = IntermediateLayerGetter(ours, layers), TorchGetter(theirs, layers)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    report = compare_modules(ours_b, theirs_b, x, backward=False)
    assert report.ok
    assert [r.name for r in report.outputs[-3:]] == ["(model)['0']", "(model)['1']", "(model)['2']"]
    assert [r.shape for r in report.outputs[-3:]] == [(1, 128, 4, 4), (1, 256, 2, 2), (1, 512, 1, 1)]


class _ListInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, images, target):
        return self.conv(images[0]) * target["scale"] + x_offset(target)


class _TorchListInput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)

    forward = _ListInput.forward


def x_offset(target):
    return target["labels"][0] * 0 + 1.0  # an int64 tensor in both frameworks


def test_arrays_nested_in_lists_and_dicts_are_converted():
    ours, theirs = _ListInput(), _TorchListInput()
    ours.load_state_dict(from_torch(theirs))
    images = [_x()]
    target = {"scale": np.float32([2.0]), "labels": np.array([3, 1])}
    report = compare_modules(ours, theirs, images, target)
    assert report.ok and [r.name for r in report.outputs] == ["conv", "(model)"]
    assert [r.name for r in report.gradients] == ["conv.weight", "conv.bias"]  # nested: no input grads
