"""UNet2015 (the paper's U-Net, tinyvision/models/segmentation/unet_paper.py): the paper's
572 -> 388 shapes, the size rule, and its PyTorch twin (tinyvision.testing.torch_twins: same module tree, same weights):
same outputs and the same gradient of every parameter."""
import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision.models.segmentation import UNet2015, unet_ronneberger
from tinyvision.testing.torch_twins import TorchUNet


def test_paper_shapes_572_to_388():
    net = unet_ronneberger(in_channels=1, num_classes=2, base_channels=2)   # narrow: the shapes are the point
    assert net.output_size(572) == 388
    y = net(tv.tensor(np.zeros((1, 1, 572, 572), np.float32)))
    assert y.shape == (1, 2, 388, 388)
    full = unet_ronneberger()
    widths = [m.out_channels for m in full.modules() if type(m).__name__ == "Conv2d"]
    assert max(widths) == 1024 and widths[-1] == 2                           # 64 -> 1024, head to 2 classes
    n_params = sum(p.data.size for p in full.parameters())
    assert n_params == sum(p.numel() for p in TorchUNet(1, 2, 64, 4, padding=0).parameters())
    assert 31.0e6 < n_params < 31.1e6                                        # the paper's network: ~31 M weights


@pytest.mark.parametrize("padding,depth,size", [(0, 2, 44), (1, 3, 24)])
def test_size_rule(padding, depth, size):
    net = UNet2015(1, 2, base_channels=2, depth=depth, padding=padding)
    out = net.output_size(size)
    assert out == (size if padding else 4)
    bad = size + 2 if padding == 0 else size + 4
    with pytest.raises(ValueError, match=rf"input size {bad} is invalid.*nearest valid sizes"):
        net.output_size(bad)
    with pytest.raises(ValueError, match=rf"input shape \(1, 1, {size}, {bad}\)"):
        net(tv.tensor(np.zeros((1, 1, size, bad), np.float32)))


CASES = [
    dict(in_channels=1, num_classes=2, base=3, depth=2, padding=0, size=44, train=False),
    dict(in_channels=3, num_classes=4, base=2, depth=3, padding=1, size=16, train=False),
    dict(in_channels=3, num_classes=3, base=2, depth=2, padding=1, size=12, train=True, batch_norm=True),
    dict(in_channels=2, num_classes=2, base=2, depth=2, padding=0, size=44, train=False, skips=False),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"p{c['padding']}-d{c['depth']}"
                         f"{'-bn' if c.get('batch_norm') else ''}{'-noskip' if c.get('skips') is False else ''}")
def test_matches_torch_twin_float64(case):
    kw = dict(padding=case["padding"], batch_norm=case.get("batch_norm", False), skips=case.get("skips", True))
    torch.manual_seed(0)
    theirs = TorchUNet(case["in_channels"], case["num_classes"], case["base"], case["depth"], **kw).double()
    ours = UNet2015(case["in_channels"], case["num_classes"], case["base"], case["depth"], **kw).double()
    ref_keys = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == ref_keys
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    theirs.train(case["train"])
    ours.train(case["train"])
    x = np.random.default_rng(0).standard_normal((2, case["in_channels"], case["size"], case["size"]))
    xt, xo = torch.tensor(x, requires_grad=True), tv.tensor(x, requires_grad=True)
    yt, yo = theirs(xt), ours(xo)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    yo.backward(tv.tensor(g))
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    ref = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), ref[name].grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


def test_paper_initialisation_scale():
    net = UNet2015(1, 2, base_channels=16, depth=2)
    w = net.down[1][0].weight.numpy()           # 3x3 conv 16 -> 32: std sqrt(2 / (9 * 16))
    assert w.std() == pytest.approx(np.sqrt(2 / (9 * 16)), rel=0.05)
    assert not np.any(net.down[1][0].bias.numpy())


def test_bad_arguments():
    with pytest.raises(ValueError, match="padding must be 0"):
        UNet2015(padding=2)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        UNet2015(depth=0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got shape \(1, 44, 44\)"):
        UNet2015(1, 2, 2, 2)(tv.tensor(np.zeros((1, 44, 44), np.float32)))
