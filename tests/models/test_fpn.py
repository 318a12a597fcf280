"""FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7 and BackboneWithFPN against torchvision's,
live: same weights -> same outputs and the same gradient of every parameter and input."""
from collections import OrderedDict
from functools import partial

import numpy as np
import pytest

import tinyvision as tv
from tinyvision import nn
from tinyvision.models.detection import (
    BackboneWithFPN,
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
    SmallResNet,
    resnet_fpn_backbone,
)
from tinyvision.models.detection.backbone_utils import _resnet_fpn_extractor

torch = pytest.importorskip("torch")
tv_fpn = pytest.importorskip("torchvision.ops.feature_pyramid_network")

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}


def _weights_from(torch_module):
    return {k: v.detach().cpu().numpy() for k, v in torch_module.state_dict().items()}


def _pair(in_channels, out_channels, extra, norm, dtype):
    torch.manual_seed(0)
    t_extra = {"none": None, "pool": tv_fpn.LastLevelMaxPool(),
               "p6p7_p5": tv_fpn.LastLevelP6P7(out_channels, out_channels),
               "p6p7_c5": tv_fpn.LastLevelP6P7(in_channels[-1], out_channels)}[extra]
    ours_extra = {"none": None, "pool": LastLevelMaxPool(),
                  "p6p7_p5": LastLevelP6P7(out_channels, out_channels),
                  "p6p7_c5": LastLevelP6P7(in_channels[-1], out_channels)}[extra]
    t_norm = partial(torch.nn.GroupNorm, 2) if norm else None
    o_norm = partial(nn.GroupNorm, 2) if norm else None
    ref = tv_fpn.FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=t_extra, norm_layer=t_norm)
    ours = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=ours_extra, norm_layer=o_norm)
    with torch.no_grad():   # GroupNorm starts at (1, 0): perturb it so the test sees its parameters
        for p in ref.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    if dtype == np.float64:
        ref.double()
        ours.double()
    ours.load_state_dict(_weights_from(ref))
    return ref, ours


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("extra,norm", [("none", False), ("pool", False), ("p6p7_p5", False),
                                        ("p6p7_c5", True)])
def test_fpn_matches_torchvision(dtype, extra, norm):
    in_channels, out_channels = [3, 5, 7], 4
    ref, ours = _pair(in_channels, out_channels, extra, norm, dtype)
    assert list(ours.state_dict()) == list(ref.state_dict())
    rng = np.random.default_rng(1)
    # odd sizes: nearest upsampling is not an exact doubling (9 -> 5 -> 3)
    shapes = [(2, 3, 9, 11), (2, 5, 5, 6), (2, 7, 3, 3)]
    xs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    t_in = OrderedDict((f"feat{i}", torch.tensor(x, requires_grad=True)) for i, x in enumerate(xs))
    o_in = OrderedDict((f"feat{i}", tv.tensor(x, requires_grad=True)) for i, x in enumerate(xs))
    t_out = ref(t_in)
    o_out = ours(o_in)
    assert list(o_out) == list(t_out)
    gys = {k: rng.standard_normal(tuple(v.shape)).astype(dtype) for k, v in t_out.items()}
    for k in t_out:
        np.testing.assert_allclose(o_out[k].numpy(), t_out[k].detach().numpy(), **TOL[dtype], err_msg=k)
    sum((t_out[k] * torch.tensor(gys[k])).sum() for k in t_out).backward()
    total = None
    for k in o_out:
        term = (o_out[k] * tv.tensor(gys[k])).sum()
        total = term if total is None else total + term
    total.backward()
    t_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), **TOL[dtype], err_msg=name)
    for k in o_in:
        np.testing.assert_allclose(o_in[k].grad.numpy(), t_in[k].grad.numpy(), **TOL[dtype], err_msg=k)


def test_p6p7_uses_p5_only_when_channels_agree():
    assert LastLevelP6P7(256, 256).use_P5
    assert not LastLevelP6P7(2048, 256).use_P5


def test_fpn_shapes_per_level():
    fpn = FeaturePyramidNetwork([8, 16, 32], 12, extra_blocks=LastLevelP6P7(12, 12))
    x = OrderedDict([("0", tv.tensor(np.zeros((1, 8, 16, 16), np.float32))),
                     ("1", tv.tensor(np.zeros((1, 16, 8, 8), np.float32))),
                     ("2", tv.tensor(np.zeros((1, 32, 4, 4), np.float32)))])
    out = fpn(x)
    assert [(k, v.shape) for k, v in out.items()] == [
        ("0", (1, 12, 16, 16)), ("1", (1, 12, 8, 8)), ("2", (1, 12, 4, 4)), ("p6", (1, 12, 2, 2)),
        ("p7", (1, 12, 1, 1))]


def test_fpn_bad_input_names_the_map():
    fpn = FeaturePyramidNetwork([8, 16], 4)
    x = OrderedDict([("a", tv.tensor(np.zeros((1, 8, 8, 8), np.float32))),
                     ("b", tv.tensor(np.zeros((1, 15, 4, 4), np.float32)))])
    with pytest.raises(ValueError, match="'b'.*expected \\(N, 16, H, W\\)"):
        fpn(x)
    with pytest.raises(ValueError, match="in_channels_list\\[1\\] = 0"):
        FeaturePyramidNetwork([8, 0], 4)
    with pytest.raises(TypeError, match="ExtraFPNBlock"):
        FeaturePyramidNetwork([8], 4, extra_blocks=nn.ReLU())


def test_resnet_fpn_backbone_matches_torchvision():
    """resnet18 + FPN (default LastLevelMaxPool, FrozenBatchNorm2d) and its freezing rule."""
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone as t_resnet_fpn_backbone

    torch.manual_seed(0)
    ref = t_resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=2).double()
    ours = resnet_fpn_backbone(backbone_name="resnet18", trainable_layers=2).double()
    state = _weights_from(ref)
    # FrozenBatchNorm2d starts at the identity map: perturb its buffers so they are tested too
    rng = np.random.default_rng(0)
    for k in state:
        if k.endswith(("running_mean", "bias")) and "bn" in k:
            state[k] = state[k] + 0.1 * rng.standard_normal(state[k].shape)
    ref.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    ours.load_state_dict(state)
    assert list(ours.state_dict()) == list(ref.state_dict())
    trainable = sorted(n for n, p in ours.named_parameters() if p.requires_grad)
    assert trainable == sorted(n for n, p in ref.named_parameters() if p.requires_grad)
    assert all(n.startswith(("body.layer3", "body.layer4", "fpn")) for n in trainable)
    x = rng.random((1, 3, 64, 96))
    t_out = ref(torch.tensor(x))
    o_out = ours(tv.tensor(x))
    assert list(o_out) == ["0", "1", "2", "3", "pool"]
    for k in t_out:
        np.testing.assert_allclose(o_out[k].numpy(), t_out[k].detach().numpy(), rtol=1e-10, atol=1e-11, err_msg=k)


def test_resnet_fpn_extractor_checks_arguments():
    with pytest.raises(ValueError, match="trainable_layers"):
        _resnet_fpn_extractor(SmallResNet(), 6)
    with pytest.raises(ValueError, match="returned layer"):
        _resnet_fpn_extractor(SmallResNet(), 5, returned_layers=[0, 1])


def test_small_resnet_backbone_with_fpn_shapes():
    trunk = SmallResNet(widths=(8, 16, 24, 32), blocks=(1, 1, 1, 1), stem_stride=1)
    body = _resnet_fpn_extractor(trunk, 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(16, 16),
                                 out_channels=16)
    assert isinstance(body, BackboneWithFPN) and body.out_channels == 16
    out = body(tv.tensor(np.zeros((2, 3, 64, 64), np.float32)))
    # stem stride 1 + 2x2 pool: layer2..4 at strides 4, 8, 16; p6, p7 at 32, 64
    assert [v.shape for v in out.values()] == [(2, 16, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4), (2, 16, 2, 2),
                                               (2, 16, 1, 1)]
