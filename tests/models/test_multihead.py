"""MultiHead and its builders: shapes, both box formats, state_dict keys (torchvision's resnet18 less
fc, under backbone.), image-shape errors, and parity with PyTorch twins (same weights -> same
scores, boxes and gradient of every parameter, float64)."""
import doctest

import numpy as np
import pytest
import torch
import torchvision

import tinyvision as tv
import tinyvision.models.multihead as multihead_module
from tinyvision import nn
from tinyvision.models import MultiHead, multihead_resnet18, multihead_small
from tinyvision.random import manual_seed


def _torch_small(n_classes, widths=(16, 32, 64, 64), image_size=64, hidden=0):
    """multihead_small built with torch.nn, the same module tree (so the same state_dict keys)."""
    class TorchMultiHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], 3
            for w in widths:
                layers += [torch.nn.Conv2d(c, w, 3, padding=1, bias=False), torch.nn.BatchNorm2d(w),
                           torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
                c = w
            layers.append(torch.nn.Flatten())
            d = c * (image_size // 2 ** len(widths)) ** 2
            self.backbone = torch.nn.Sequential(*layers)
            self.class_head = torch.nn.Linear(d, n_classes)
            box = [torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 4)] if hidden else [torch.nn.Linear(d, 4)]
            self.loc_head = torch.nn.Sequential(*box, torch.nn.Sigmoid())

        def forward(self, x):
            f = self.backbone(x)
            return self.class_head(f), self.loc_head(f)

    return TorchMultiHead()


def _torch_resnet18_multihead(n_classes):
    class TorchMultiHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torchvision.models.resnet18(weights=None)
            self.backbone.fc = torch.nn.Identity()
            self.class_head = torch.nn.Linear(512, n_classes)
            self.loc_head = torch.nn.Sequential(torch.nn.Linear(512, 4), torch.nn.Sigmoid())

        def forward(self, x):
            f = self.backbone(x)
            return self.class_head(f), self.loc_head(f)

    return TorchMultiHead()


def _copy(torch_model, tv_model):
    assert list(tv_model.state_dict()) == list(torch_model.state_dict())
    tv_model.load_state_dict({k: v.detach().numpy() for k, v in torch_model.state_dict().items()})
    torch_model.double()
    tv_model.double()


def _parity(tv_model, torch_model, x, rng, rtol=1e-10):
    xv, xt = tv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (sv, bv), (st, bt) = tv_model(xv), torch_model(xt)
    gs, gb = rng.standard_normal(sv.shape), rng.standard_normal(bv.shape)
    ((sv * tv.tensor(gs)).sum() + (bv * tv.tensor(gb)).sum()).backward()
    ((st * torch.tensor(gs)).sum() + (bt * torch.tensor(gb)).sum()).backward()
    for what, a, b in [("class_scores", sv.numpy(), st.detach().numpy()), ("bounding_box", bv.numpy(), bt.detach().numpy()),
                       ("input grad", xv.grad.numpy(), xt.grad.numpy())]:
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max(), err_msg=what)
    tv_params = dict(tv_model.named_parameters())
    for name, p in torch_model.named_parameters():
        ref = p.grad.numpy()
        np.testing.assert_allclose(tv_params[name].grad.numpy(), ref, rtol=rtol, atol=rtol * np.abs(ref).max() + 1e-300,
                                   err_msg=name)


@pytest.mark.parametrize("box_format", ["xyxy", "cxcywh"])
def test_small_shapes_and_range(box_format, rng):
    manual_seed(0)
    model = multihead_small(5, box_format=box_format)
    scores, box = model(tv.tensor(rng.random((3, 3, 64, 64), dtype=np.float32)))
    assert scores.shape == (3, 5) and box.shape == (3, 4)
    assert scores.dtype == np.float32 and box.dtype == np.float32
    assert model.box_format == box_format and f"box_format='{box_format}'" in repr(model)
    b = box.numpy()
    assert np.all((b > 0) & (b < 1))      # the sigmoid: normalised to the image


def test_small_other_sizes(rng):
    model = multihead_small(3, image_size=32, widths=(8, 16), hidden=16, in_channels=1)
    scores, box = model(tv.tensor(rng.random((2, 1, 32, 32), dtype=np.float32)))
    assert scores.shape == (2, 3) and box.shape == (2, 4)
    assert model.backbone[-1].__class__.__name__ == "Flatten"
    assert model.class_head.in_features == 16 * 8 * 8
    assert [k for k in model.state_dict() if k.startswith("loc_head")] == [
        "loc_head.0.weight", "loc_head.0.bias", "loc_head.2.weight", "loc_head.2.bias"]


@pytest.mark.parametrize("box_format", ["xyxy", "cxcywh"])
def test_resnet18_state_dict_keys_and_shapes(box_format, rng):
    model = multihead_resnet18(7, box_format=box_format)
    ref = torchvision.models.resnet18(weights=None)
    expected = ["backbone." + k for k in ref.state_dict() if not k.startswith("fc.")]
    expected += ["class_head.weight", "class_head.bias", "loc_head.0.weight", "loc_head.0.bias"]
    sd = model.state_dict()
    assert list(sd) == expected
    assert sd["class_head.weight"].shape == (7, 512) and sd["loc_head.0.weight"].shape == (4, 512)
    # torchvision's resnet18 weights (without fc) load into the backbone one to one
    model.backbone.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items() if not k.startswith("fc.")})
    model.eval()
    with tv.no_grad():
        scores, box = model(tv.tensor(rng.random((2, 3, 32, 32), dtype=np.float32)))
    assert scores.shape == (2, 7) and box.shape == (2, 4) and model.box_format == box_format


def test_small_matches_torch_twin(rng):
    torch.manual_seed(0)
    ref = _torch_small(5, widths=(4, 8), image_size=16, hidden=6)
    model = multihead_small(5, widths=(4, 8), image_size=16, hidden=6)
    _copy(ref, model)
    _parity(model, ref, rng.random((3, 3, 16, 16)), rng)


def test_resnet18_matches_torch_twin(rng):
    torch.manual_seed(0)
    ref = _torch_resnet18_multihead(3)
    model = multihead_resnet18(3)
    _copy(ref, model)
    _parity(model, ref, rng.random((2, 3, 32, 32)), rng, rtol=1e-9)


def test_custom_parts_and_errors(rng):
    model = MultiHead(nn.Flatten(), nn.Linear(12, 2), nn.Sequential(nn.Linear(12, 4), nn.Sigmoid()), in_channels=3)
    scores, box = model(tv.tensor(rng.random((1, 3, 2, 2), dtype=np.float32)))
    assert scores.shape == (1, 2) and box.shape == (1, 4)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 3, H, W\), got \(1, 2, 2, 2\)"):
        model(tv.tensor(rng.random((1, 2, 2, 2), dtype=np.float32)))
    small = multihead_small(2)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 3, 64, 64\), got \(2, 3, 32, 32\)"):
        small(tv.tensor(np.zeros((2, 3, 32, 32), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"images must have shape \(N, 3, 64, 64\), got \(3, 64, 64\)"):
        small(tv.tensor(np.zeros((3, 64, 64), dtype=np.float32)))
    with pytest.raises(ValueError, match="box_format must be one of"):
        multihead_small(2, box_format="xywh")
    with pytest.raises(ValueError, match="n_classes must be a positive integer"):
        multihead_resnet18(0)
    with pytest.raises(ValueError, match="divisible by 2\\^len\\(widths\\) = 16"):
        multihead_small(2, image_size=40)


def test_doctests():
    assert doctest.testmod(multihead_module, verbose=False).failed == 0
