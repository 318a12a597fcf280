"""tinyvision.models.segmentation.Unet against segmentation_models_pytorch 0.6.0's Unet, live:
same state_dict keys and shapes, same weights -> same logits and the same gradient of every
parameter (train and eval mode, float64 to 1e-8, float32 to round-off), the input-size rule."""
import warnings

import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision.models.segmentation import Unet

smp = pytest.importorskip("segmentation_models_pytorch")


def pair(**kwargs):
    """(ours, smp's) built alike, smp's weights copied into ours."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # decoder_use_batchnorm is deprecated in smp 0.6 (still honoured)
        theirs = smp.Unet(encoder_weights=None, **kwargs)
    ours = Unet(**kwargs)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state)
    return ours, theirs


def randomize_norms(theirs):
    """Non-trivial BN affine and running stats, so eval mode is not the identity map."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def compare(ours, theirs, x, train, dtype, rtol, atol):
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    ours = ours.double() if dtype == np.float64 else ours.float()
    theirs.train(train)
    ours.train(train)
    x = x.astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    xo = tv.tensor(x, requires_grad=True)
    yt, yo = theirs(xt), ours(xo)
    assert tuple(yo.shape) == tuple(yt.shape)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=rtol, atol=atol, err_msg="logits")
    g = np.random.default_rng(0).standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.tensor(g))
    yo.backward(tv.tensor(g))
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=atol, err_msg="input gradient")
    torch_params = dict(theirs.named_parameters())
    ours_params = dict(ours.named_parameters())
    assert sorted(ours_params) == sorted(torch_params)
    for name, p in ours_params.items():
        ref = torch_params[name].grad
        if ref is None:     # a ResNet stage deeper than encoder_depth: unused, in both
            assert p.grad is None, name
            continue
        assert p.grad is not None, name
        scale = float(np.abs(ref.numpy()).max()) or 1.0
        np.testing.assert_allclose(p.grad.numpy(), ref.numpy(), rtol=rtol, atol=atol * scale, err_msg=name)
    if train:  # BatchNorm's running statistics moved the same way
        buffers = dict(theirs.named_buffers())
        for name, b in ours.named_buffers():
            np.testing.assert_allclose(np.asarray(b.numpy(), np.float64), buffers[name].double().numpy(),
                                       rtol=rtol, atol=atol, err_msg=name)


CASES = {
    "resnet18-d5": dict(encoder_name="resnet18", encoder_depth=5, decoder_channels=(32, 16, 16, 8, 8), classes=3),
    "resnet34-d3": dict(encoder_name="resnet34", encoder_depth=3, decoder_channels=(16, 8, 8), classes=2),
    "resnet50-d3": dict(encoder_name="resnet50", encoder_depth=3, decoder_channels=(16, 16, 8), classes=1),
    "scse-nobn-1ch": dict(encoder_name="resnet18", encoder_depth=2, decoder_channels=(32, 16), classes=2,
                          in_channels=1, decoder_attention_type="scse", decoder_use_batchnorm=False),
}
SIZES = {"resnet18-d5": 32, "resnet34-d3": 16, "resnet50-d3": 16, "scse-nobn-1ch": 16}


@pytest.mark.parametrize("case,train", [("resnet18-d5", True), ("resnet18-d5", False), ("resnet34-d3", True),
                                        ("resnet50-d3", False), ("resnet50-d3", True), ("scse-nobn-1ch", True)],
                         ids=lambda v: {True: "train", False: "eval"}.get(v, v) if isinstance(v, bool) else v)
def test_float64_logits_and_every_gradient(case, train):
    kwargs = CASES[case]
    ours, theirs = pair(**kwargs)
    randomize_norms(theirs)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    # train mode at depth 5 needs a 2x2 bottom map: BatchNorm over 2 values of a 1x1 map is ill-conditioned
    s = 64 if (case == "resnet18-d5" and train) else SIZES[case]
    x = np.random.default_rng(1).standard_normal((2, kwargs.get("in_channels", 3), s, s))
    compare(ours, theirs, x, train, np.float64, rtol=1e-8, atol=1e-10)


def test_float32_to_round_off():
    ours, theirs = pair(**CASES["resnet18-d5"])
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 64))  # (2, 3, 64, 64): the brief's size
    compare(ours, theirs, x, True, np.float32, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_default_state_dict_keys_and_shapes_are_smp_s(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = smp.Unet(encoder_name=name, encoder_weights=None)
    ours = Unet(encoder_name=name)
    ref = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert list(got) == list(ref)
    assert got == ref


def test_input_size_rule_and_other_errors():
    net = Unet("resnet18", encoder_depth=4, decoder_channels=(16, 16, 8, 8))
    with pytest.raises(ValueError, match=r"\(1, 3, 40, 24\).*height 40 and width 24 must be divisible by the "
                                         r"output stride 16 = min\(32, 2\*\*encoder_depth\).*\(48, 32\)"):
        net(tv.tensor(np.zeros((1, 3, 40, 24), np.float32)))
    with pytest.raises(ValueError, match="1 channels.*in_channels=3"):
        net(tv.tensor(np.zeros((1, 1, 32, 32), np.float32)))
    with pytest.raises(ValueError, match="depth is 4.*has 3 blocks"):
        Unet("resnet18", encoder_depth=4, decoder_channels=(16, 8, 8))
    with pytest.raises(ValueError, match="encoder_name must be one of"):
        Unet("vgg11")
    with pytest.raises(ValueError, match="encoder_weights"):
        Unet("resnet18", encoder_weights="imagenet")
    with pytest.raises(ValueError, match="attention_type"):
        Unet("resnet18", decoder_attention_type="cbam")
