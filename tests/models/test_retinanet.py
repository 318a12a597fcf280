"""RetinaNet against torchvision's, live: the same weights give the same two losses, the same
gradient of every parameter, and in eval mode the same detections in the same order.

Backbones are resnet18-FPN (fast); one resnet50 v1 check uses the builders themselves.
Images are small (64-96 px) and of different sizes, so the transform's resize, the padding to a
multiple of 32 and the boxes' mapping back are all exercised.
"""
import copy
from functools import partial

import numpy as np
import pytest

import tinyvision as tv
from tinyvision import nn
from tinyvision.models.detection import (
    GeneralizedRCNNTransform,
    LastLevelP6P7,
    RetinaNet,
    RetinaNetHead,
    resnet_fpn_backbone,
    retinanet_resnet50_fpn,
    retinanet_resnet50_fpn_v2,
    retinanet_small,
)

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from torchvision.models.detection import RetinaNet as TorchRetinaNet  # noqa: E402
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone as t_resnet_fpn_backbone  # noqa: E402
from torchvision.models.detection.retinanet import RetinaNetHead as TorchRetinaNetHead  # noqa: E402
from torchvision.ops.feature_pyramid_network import LastLevelP6P7 as TorchLastLevelP6P7  # noqa: E402

NUM_CLASSES = 3
# float64: the same sums in a different order; float32: round-off of a deep network's gradients
LOSS_TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}
BOX_TOL = {np.float64: dict(rtol=0, atol=1e-8), np.float32: dict(rtol=0, atol=1e-3)}


def _state(torch_model):
    return {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}


def _build(version):
    """A torchvision RetinaNet on resnet18-FPN and tinyvision's with its weights.

    v1: P6 from P5, plain heads, L1 box loss, BatchNorm2d backbone (batch statistics in train).
    v2: P6 from C5, GroupNorm heads, GIoU box loss.
    """
    torch.manual_seed(0)
    if version == "v1":
        t_extra, o_extra = TorchLastLevelP6P7(256, 256), LastLevelP6P7(256, 256)
    else:
        t_extra, o_extra = TorchLastLevelP6P7(512, 256), LastLevelP6P7(512, 256)
    t_backbone = t_resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5,
                                       returned_layers=[2, 3, 4], extra_blocks=t_extra,
                                       norm_layer=torch.nn.BatchNorm2d)
    o_backbone = resnet_fpn_backbone(backbone_name="resnet18", trainable_layers=5, returned_layers=[2, 3, 4],
                                     extra_blocks=o_extra, norm_layer=nn.BatchNorm2d)
    kwargs = dict(min_size=32, max_size=48)
    if version == "v1":
        ref = TorchRetinaNet(t_backbone, NUM_CLASSES, **kwargs)
        ours = RetinaNet(o_backbone, NUM_CLASSES, **kwargs)
    else:
        t_head = TorchRetinaNetHead(256, 9, NUM_CLASSES, norm_layer=partial(torch.nn.GroupNorm, 32))
        t_head.regression_head._loss_type = "giou"
        o_head = RetinaNetHead(256, 9, NUM_CLASSES, norm_layer=partial(nn.GroupNorm, 32))
        o_head.regression_head._loss_type = "giou"
        ref = TorchRetinaNet(t_backbone, NUM_CLASSES, head=t_head, **kwargs)
        ours = RetinaNet(o_backbone, NUM_CLASSES, head=o_head, **kwargs)
    with torch.no_grad():  # make the predicted deltas and the scores spread (a fresh head predicts ~0)
        ref.head.regression_head.bbox_reg.weight.normal_(0, 0.02)
        ref.head.classification_head.cls_logits.bias.normal_(-1.0, 1.5)
    return ref, ours


def _inputs(dtype):
    rng = np.random.default_rng(0)
    images = [rng.random((3, 40, 52)).astype(dtype), rng.random((3, 32, 32)).astype(dtype),
              rng.random((3, 29, 37)).astype(dtype)]
    targets = [
        {"boxes": np.array([[3, 4, 22, 30], [15, 10, 45, 33.5], [16, 11, 44, 34]], dtype), "labels": np.array([0, 2, 2])},
        {"boxes": np.zeros((0, 4), dtype), "labels": np.zeros((0,), np.int64)},  # no objects
        {"boxes": np.array([[0, 0, 37, 29], [6, 7, 9, 12]], dtype), "labels": np.array([1, 0])},
    ]
    return images, targets


def _torch_inputs(images, targets):
    return [torch.tensor(i) for i in images], [{k: torch.tensor(v) for k, v in t.items()} for t in targets]


@pytest.fixture(scope="module", params=["v1", "v2"])
def pair(request):
    return request.param, _build(request.param)


def _loaded(pair, dtype):
    _, (ref, ours) = pair
    ref = ref.double() if dtype == np.float64 else ref.float()
    ours.load_state_dict(_state(ref))
    ours = ours.double() if dtype == np.float64 else ours.float()
    return ref, ours


def _torch_step(model, images, targets):
    model.train()
    model.zero_grad()
    losses = model(*_torch_inputs(images, targets))
    (losses["classification"] + losses["bbox_regression"]).backward()
    return ({k: float(v.detach()) for k, v in losses.items()},
            {n: p.grad.detach().numpy().astype(np.float64) for n, p in model.named_parameters()})


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_training_losses_and_every_gradient_match(pair, dtype):
    """float64: within 1e-8 of torchvision. float32: as close to the exact (float64) gradient as
    torchvision's own float32 gradient is, i.e. round-off only (BatchNorm over a few pixels
    amplifies float32 round-off in both frameworks alike)."""
    ref, ours = _loaded(pair, dtype)
    images, targets = _inputs(dtype)
    ours.train()
    t_losses, t_grads = _torch_step(ref, images, targets)
    if dtype == np.float32:
        exact_losses, exact_grads = _torch_step(copy.deepcopy(ref).double(), *_inputs(np.float64))
    o_losses = ours(images, targets)
    assert set(o_losses) == {"classification", "bbox_regression"}
    (o_losses["classification"] + o_losses["bbox_regression"]).backward()
    for k in t_losses:
        np.testing.assert_allclose(float(o_losses[k]), t_losses[k], **LOSS_TOL[dtype], err_msg=k)
    assert [n for n, _ in ours.named_parameters()] == list(t_grads)
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        g = p.grad.numpy().astype(np.float64)
        if dtype == np.float64:
            err = np.abs(g - t_grads[name]).max() / max(np.abs(t_grads[name]).max(), 1e-30)
            assert err < 1e-8, (name, err)
        else:
            exact = exact_grads[name]
            scale = max(np.abs(exact).max(), 1e-30)
            ours_err = np.abs(g - exact).max() / scale
            torch_err = np.abs(t_grads[name] - exact).max() / scale
            assert ours_err <= 4 * torch_err + 1e-5, (name, ours_err, torch_err)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_eval_detections_match_in_order(pair, dtype):
    ref, ours = _loaded(pair, dtype)
    ref.eval()
    ours.eval()
    images, _ = _inputs(dtype)
    with torch.no_grad():
        t_dets = ref([torch.tensor(i) for i in images])
    o_dets = ours(images)
    assert len(o_dets) == len(t_dets)
    for i, (o, t) in enumerate(zip(o_dets, t_dets)):
        assert len(t["boxes"]) > 10, "the test needs detections to compare"
        assert o["boxes"].shape == tuple(t["boxes"].shape), i
        t = {k: v.numpy() for k, v in t.items()}
        if dtype == np.float32:  # scores equal to round-off may come out in either order
            o, t = _ties_in_one_order(o, t["scores"]), _ties_in_one_order(t, t["scores"])
        np.testing.assert_array_equal(o["labels"], t["labels"], err_msg=f"image {i}")
        np.testing.assert_allclose(o["scores"], t["scores"], **BOX_TOL[dtype], err_msg=f"image {i}")
        np.testing.assert_allclose(o["boxes"], t["boxes"], **BOX_TOL[dtype], err_msg=f"image {i}")
        assert o["boxes"].dtype == dtype


def _ties_in_one_order(dets, scores, tie=1e-6):
    """dets reordered inside each run of consecutive positions whose reference ``scores`` differ
    by at most ``tie`` (float32 round-off: two detections scored 0.25995818 and 0.25995806 by
    torchvision may be 0.25995803 and 0.25995803 here, and a stable sort then keeps index
    order): by label, then box (rounded to 1e-2). Outside such runs the order is untouched."""
    order = np.arange(len(scores))
    starts = np.flatnonzero(np.concatenate(([True], np.abs(np.diff(scores)) > tie, [True])))
    for a, b in zip(starts[:-1], starts[1:]):
        box = np.round(dets["boxes"][a:b].astype(np.float64), 2)
        order[a:b] = a + np.lexsort((box[:, 3], box[:, 2], box[:, 1], box[:, 0], dets["labels"][a:b]))
    return {k: v[order] for k, v in dets.items()}


def test_state_dict_keys_match_the_resnet50_builders():
    torch.manual_seed(0)
    for t_builder, builder in [(torchvision.models.detection.retinanet_resnet50_fpn, retinanet_resnet50_fpn),
                               (torchvision.models.detection.retinanet_resnet50_fpn_v2, retinanet_resnet50_fpn_v2)]:
        ref = t_builder(weights=None, weights_backbone=None, num_classes=5)
        ours = builder(num_classes=5)
        t_state = ref.state_dict()
        o_state = ours.state_dict()
        assert list(o_state) == list(t_state)
        assert all(o_state[k].shape == tuple(t_state[k].shape) for k in t_state)


def test_resnet50_v1_builder_training_step_matches():
    """The v1 builder itself (resnet50, BatchNorm2d as torchvision builds it without weights)."""
    torch.manual_seed(0)
    ref = torchvision.models.detection.retinanet_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=NUM_CLASSES, min_size=64, max_size=64).double()
    ours = retinanet_resnet50_fpn(num_classes=NUM_CLASSES, min_size=64, max_size=64)
    ours.load_state_dict(_state(ref))
    ours.double()
    rng = np.random.default_rng(2)
    images = [rng.random((3, 64, 64))]
    targets = [{"boxes": np.array([[5.0, 6.0, 40.0, 50.0]]), "labels": np.array([1])}]
    t_losses = ref(*_torch_inputs(images, targets))
    (t_losses["classification"] + t_losses["bbox_regression"]).backward()
    o_losses = ours(images, targets)
    (o_losses["classification"] + o_losses["bbox_regression"]).backward()
    for k in t_losses:
        np.testing.assert_allclose(float(o_losses[k]), float(t_losses[k].detach()), rtol=1e-10, err_msg=k)
    t_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        g_ref = t_params[name].grad.numpy()
        assert np.abs(p.grad.numpy() - g_ref).max() <= 1e-8 * max(np.abs(g_ref).max(), 1e-30), name


@pytest.mark.parametrize("size,min_size,max_size", [((37, 53), 64, 80), ((90, 70), 48, 1000), ((64, 64), 64, 64)])
def test_transform_matches_torchvision(size, min_size, max_size):
    from torchvision.models.detection.transform import GeneralizedRCNNTransform as TorchTransform

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    ref = TorchTransform(min_size, max_size, mean, std)
    ours = GeneralizedRCNNTransform(min_size, max_size, mean, std)
    rng = np.random.default_rng(3)
    images = [rng.random((3,) + size).astype(np.float32), rng.random((3, 40, 40)).astype(np.float32)]
    targets = [{"boxes": np.array([[1.5, 2.0, 30.0, 33.0]], np.float32), "labels": np.array([0])},
               {"boxes": np.array([[0.0, 0.0, 40.0, 40.0]], np.float32), "labels": np.array([1])}]
    t_list, t_targets = ref(*_torch_inputs(images, targets))
    o_list, o_targets = ours(images, targets)
    assert o_list.image_sizes == [tuple(s) for s in t_list.image_sizes]
    assert o_list.tensors.shape == tuple(t_list.tensors.shape)
    assert o_list.tensors.shape[-1] % 32 == 0 and o_list.tensors.shape[-2] % 32 == 0
    # float32 bilinear: torch's compiled kernel computes the source index s * (o + 0.5) - 0.5 with a
    # fused multiply-add (one rounding), tinyvision with two; a few columns then get a lambda a few
    # ulps apart (~1e-6 on values ~2), round-off of the index, not a different rule.
    np.testing.assert_allclose(o_list.tensors, t_list.tensors.numpy(), rtol=1e-5, atol=1e-5)
    for o, t in zip(o_targets, t_targets):
        np.testing.assert_array_equal(o["boxes"], t["boxes"].numpy())
    assert targets[0]["boxes"][0, 0] == 1.5     # the caller's targets are not changed
    ref.eval()
    ours.eval()
    dets = [{"boxes": np.array([[3.0, 4.0, 20.5, 30.0]], np.float32)} for _ in images]
    t_back = ref.postprocess([{"boxes": torch.tensor(d["boxes"])} for d in dets], t_list.image_sizes,
                             [tuple(i.shape[-2:]) for i in images])
    o_back = ours.postprocess([dict(d) for d in dets], o_list.image_sizes, [tuple(i.shape[-2:]) for i in images])
    for o, t in zip(o_back, t_back):
        np.testing.assert_array_equal(o["boxes"], t["boxes"].numpy())


def _small_model(**kwargs):
    tv.manual_seed(0)
    return retinanet_small(NUM_CLASSES, widths=(8, 8, 16, 16), fpn_channels=16, head_convs=1,
                           min_size=64, max_size=64, **kwargs)


def test_images_without_boxes_give_zero_regression_loss():
    model = _small_model()
    images = np.random.default_rng(0).random((2, 3, 64, 64)).astype(np.float32)   # one (N, C, H, W) batch
    targets = [{"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}] * 2
    losses = model(images, targets)
    assert float(losses["bbox_regression"]) == 0.0
    assert np.isfinite(float(losses["classification"])) and float(losses["classification"]) > 0
    (losses["classification"] + losses["bbox_regression"]).backward()
    assert np.all(model.head.regression_head.bbox_reg.weight.grad.numpy() == 0)


def test_small_model_learns_one_image():
    """A few SGD steps on one image lower both losses (the CPU-sized builder trains)."""
    model = _small_model()
    opt = tv.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    image = np.zeros((1, 3, 64, 64), np.float32)
    image[0, :, 16:40, 20:48] = 1.0
    targets = [{"boxes": np.array([[20.0, 16.0, 48.0, 40.0]], np.float32), "labels": np.array([1])}]
    history = []
    for _ in range(8):
        losses = model(image, targets)
        total = losses["classification"] + losses["bbox_regression"]
        history.append((float(losses["classification"]), float(losses["bbox_regression"])))
        opt.zero_grad()
        total.backward()
        opt.step()
    assert history[-1][0] < history[0][0] and history[-1][1] < history[0][1], history


@pytest.mark.parametrize("target,message", [
    ({"boxes": [[10.0, 10.0, 10.0, 20.0]], "labels": [0]}, r"targets\[1\]\['boxes'\]\[0\] = \[10.0, 10.0, 10.0, 20.0\] has x2 <= x1"),
    ({"boxes": [[1.0, 1.0, 5.0, 5.0], [10.0, np.nan, 12.0, 20.0]], "labels": [0, 1]}, r"targets\[1\]\['boxes'\]\[1\].*NaN"),
    ({"boxes": [[1.0, 1.0, 5.0, 5.0]], "labels": [3]}, r"targets\[1\]\['labels'\]\[0\] = 3 .*\[0, 3\)"),
    ({"boxes": [[1.0, 1.0, 5.0, 5.0]], "labels": [-1]}, r"targets\[1\]\['labels'\]\[0\] = -1"),
    ({"boxes": [[70.0, 1.0, 90.0, 5.0]], "labels": [0]}, r"targets\[1\]\['boxes'\]\[0\].*outside its image"),
    ({"boxes": [[1.0, 1.0, 5.0]], "labels": [0]}, r"targets\[1\]\['boxes'\] must have shape \(M, 4\)"),
])
def test_bad_targets_name_the_image_and_the_box(target, message):
    model = _small_model()
    images = np.zeros((2, 3, 64, 64), np.float32)
    good = {"boxes": np.array([[1.0, 1.0, 9.0, 9.0]]), "labels": np.array([0])}
    bad = {k: np.asarray(v) for k, v in target.items()}
    with pytest.raises(ValueError, match=message):
        model(images, [good, bad])


def test_bad_images_are_named():
    model = _small_model()
    with pytest.raises(ValueError, match=r"images\[1\] has 1"):
        model.eval()([np.zeros((3, 64, 64), np.float32), np.zeros((1, 64, 64), np.float32)])
    with pytest.raises(TypeError, match=r"images\[0\] must be floating point"):
        model([np.zeros((3, 64, 64), np.uint8)])
    with pytest.raises(ValueError, match="needs targets"):
        model.train()([np.zeros((3, 64, 64), np.float32)])


def test_heads_layer_by_layer_with_compare_modules():
    """tinyvision.testing.compare_modules on the v2 heads (GroupNorm towers): every layer's output
    and every parameter's gradient agree, none diverges first."""
    from torchvision.models.detection.retinanet import RetinaNetHead as TorchHead

    from tinyvision.testing import compare_modules

    torch.manual_seed(0)
    ref = TorchHead(32, 9, NUM_CLASSES, norm_layer=partial(torch.nn.GroupNorm, 8)).double()
    ours = RetinaNetHead(32, 9, NUM_CLASSES, norm_layer=partial(nn.GroupNorm, 8))
    ours.load_state_dict(_state(ref))
    ours.double()
    rng = np.random.default_rng(4)
    features = [rng.standard_normal((2, 32, 8, 8)), rng.standard_normal((2, 32, 4, 4))]
    report = compare_modules(ours, ref, features)
    assert report.first_divergence is None, str(report)


def test_per_image_loss_parts_average_to_the_losses():
    model = _small_model()
    rng = np.random.default_rng(5)
    images = rng.random((3, 3, 64, 64)).astype(np.float32)
    targets = [{"boxes": np.array([[4.0, 5.0, 30.0, 33.0]], np.float32), "labels": np.array([2])},
               {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)},
               {"boxes": np.array([[10.0, 12.0, 20.0, 40.0], [30.0, 30.0, 60.0, 50.0]], np.float32),
                "labels": np.array([0, 1])}]
    losses = model(images, targets)
    batch, t = model.transform(list(images), targets)
    features = list(model.backbone(tv.tensor(batch.tensors)).values())
    outputs = model.head(features)
    anchors = model.anchor_generator(batch, [f.data for f in features])
    parts = model.compute_loss(t, outputs, anchors, per_image=True)
    assert parts["num_foreground"][1] == 0 and parts["num_foreground"][0] > 0
    assert parts["bbox_regression"][1] == 0
    for k in ("classification", "bbox_regression"):
        assert parts[k].shape == (3,)
        np.testing.assert_allclose(parts[k].mean(), float(losses[k]), rtol=1e-5)
