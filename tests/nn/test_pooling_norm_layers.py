"""nn pooling / normalisation / upsampling layers: PyTorch defaults, state_dict keys, loading a torch
state_dict, outputs and gradients against the torch layer, train/eval behaviour over several steps."""
import numpy as np
import pytest

import tinyvision as tv
from tinyvision import nn
from tinyvision.testing import tolerance

torch = pytest.importorskip("torch")
tnn = torch.nn


def test_batchnorm_defaults_and_state_dict_keys():
    ours, theirs = nn.BatchNorm2d(5), tnn.BatchNorm2d(5)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    for k in sd:
        np.testing.assert_array_equal(sd[k], tsd[k].numpy())
        assert sd[k].shape == tuple(tsd[k].shape)
    assert sd["weight"].dtype == np.float32 and sd["num_batches_tracked"].dtype == np.int64
    assert [n for n, _ in ours.named_parameters()] == ["weight", "bias"]
    assert list(nn.BatchNorm2d(3, affine=False).state_dict()) == list(
        tnn.BatchNorm2d(3, affine=False).state_dict())
    assert list(nn.BatchNorm2d(3, track_running_stats=False).state_dict()) == ["weight", "bias"]
    assert list(nn.GroupNorm(2, 4).state_dict()) == ["weight", "bias"]


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("cls, shape", [("BatchNorm2d", (4, 3, 5, 6)), ("BatchNorm1d", (6, 3)),
                                        ("BatchNorm1d", (4, 3, 7))])
def test_batchnorm_train_eval_steps_match_torch(cls, shape, momentum):
    rng = np.random.default_rng(0)
    C = shape[1]
    ours = getattr(nn, cls)(C, momentum=momentum).double()
    theirs = getattr(tnn, cls)(C, momentum=momentum).double()
    # Non-trivial parameters and statistics, copied from torch into tinyvision.
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.standard_normal(C)))
        theirs.bias.copy_(torch.tensor(rng.standard_normal(C)))
        theirs.running_mean.copy_(torch.tensor(rng.standard_normal(C)))
        theirs.running_var.copy_(torch.tensor(rng.random(C) + 0.5))
    ours.load_state_dict(theirs.state_dict())
    tol = tolerance(np.float64)
    for step in range(4):
        train = step < 3
        ours.train(train)
        theirs.train(train)
        x = rng.standard_normal(shape) * 3 + 2
        xt, tx = tv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = ours(xt), theirs(tx)
        g = rng.standard_normal(shape)
        y.backward(g)
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
        np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), **tol)
        np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), **tol)
        np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), **tol)
        ours.zero_grad()
        theirs.zero_grad()
        for k, v in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), err_msg=k, **tol)
    assert int(ours.num_batches_tracked.item()) == 3


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval():
    x = np.random.default_rng(1).standard_normal((4, 2, 3, 3))
    ours = nn.BatchNorm2d(2, track_running_stats=False).double().eval()
    theirs = tnn.BatchNorm2d(2, track_running_stats=False).double().eval()
    np.testing.assert_allclose(ours(tv.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               **tolerance(np.float64))


def test_batchnorm_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D"):
        nn.BatchNorm2d(3)(tv.tensor(np.zeros((2, 3, 4))))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(3)(tv.tensor(np.zeros((2, 3, 4, 4))))


def test_groupnorm_loads_torch_state_dict_and_matches():
    rng = np.random.default_rng(2)
    theirs = tnn.GroupNorm(3, 6).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.standard_normal(6)))
        theirs.bias.copy_(torch.tensor(rng.standard_normal(6)))
    ours = nn.GroupNorm(3, 6).double()
    ours.load_state_dict(theirs.state_dict())
    x = rng.standard_normal((2, 6, 4, 5))
    xt, tx = tv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = ours(xt), theirs(tx)
    g = rng.standard_normal(x.shape)
    y.backward(g)
    ty.backward(torch.tensor(g))
    tol = tolerance(np.float64)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), **tol)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), **tol)
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(4, 6)


@pytest.mark.parametrize("ours, theirs", [
    (lambda: nn.MaxPool2d(2), lambda: tnn.MaxPool2d(2)),
    (lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), lambda: tnn.MaxPool2d(3, 2, 1, ceil_mode=True)),
    (lambda: nn.MaxPool2d((2, 3), dilation=(2, 1)), lambda: tnn.MaxPool2d((2, 3), dilation=(2, 1))),
    (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), lambda: tnn.AvgPool2d(3, 2, 1, count_include_pad=False)),
    (lambda: nn.AvgPool2d(2, ceil_mode=True, divisor_override=3), lambda: tnn.AvgPool2d(2, ceil_mode=True, divisor_override=3)),
    (lambda: nn.AdaptiveAvgPool2d(1), lambda: tnn.AdaptiveAvgPool2d(1)),
    (lambda: nn.AdaptiveAvgPool2d((3, None)), lambda: tnn.AdaptiveAvgPool2d((3, None))),
    (lambda: nn.AdaptiveMaxPool2d((2, 4)), lambda: tnn.AdaptiveMaxPool2d((2, 4))),
    (lambda: nn.Upsample(scale_factor=2), lambda: tnn.Upsample(scale_factor=2)),
    (lambda: nn.Upsample(size=(5, 9), mode="bilinear"), lambda: tnn.Upsample(size=(5, 9), mode="bilinear")),
    (lambda: nn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=True),
     lambda: tnn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=True)),
    (lambda: nn.UpsamplingBilinear2d(scale_factor=2), lambda: tnn.UpsamplingBilinear2d(scale_factor=2)),
    (lambda: nn.UpsamplingNearest2d(size=4), lambda: tnn.UpsamplingNearest2d(size=4)),
], ids=lambda f: repr(f()) if callable(f) else None)
def test_parameter_free_layers_match_torch(ours, theirs):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    layer, tlayer = ours(), theirs()
    assert layer.state_dict() == {} or list(layer.state_dict()) == list(tlayer.state_dict())
    xt, tx = tv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = layer(xt), tlayer(tx)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tolerance(np.float64))
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), **tolerance(np.float64))


def test_return_indices_layers():
    x = np.random.default_rng(4).standard_normal((1, 2, 6, 6))
    y, i = nn.MaxPool2d(2, return_indices=True)(tv.tensor(x))
    ty, ti = tnn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    y, i = nn.AdaptiveMaxPool2d(4, return_indices=True)(tv.tensor(x))
    ty, ti = tnn.AdaptiveMaxPool2d(4, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(i.numpy(), ti.numpy())


# --------------------------------------------------------------------------------------
# The docstring examples and docs/pooling_norm.md run as written
# --------------------------------------------------------------------------------------
MODULES = [
    "tinyvision.functional.pooling",
    "tinyvision.functional.resample",
    "tinyvision.functional.normalization",
    "tinyvision.functional.dropout",
    "tinyvision.nn.pooling",
    "tinyvision.nn.normalization",
    "tinyvision.nn.upsample",
]


@pytest.mark.parametrize("module", MODULES)
def test_module_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"no doctests in {module}"
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests in {module} failed"


def test_docs_pooling_norm_snippets():
    import doctest
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "docs" / "pooling_norm.md"
    result = doctest.testfile(str(path), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10
    assert result.failed == 0, f"{result.failed} of {result.attempted} snippets in docs/pooling_norm.md failed"
