"""The localize task: a tiny config through the engine, the Task methods' outputs, pictures, bad
targets, the COCO-folder path — and issue 10 §5: the same model in PyTorch (same initial weights,
same batches, float64) follows tinyvision's loss curve for 20 steps to 1e-8."""
import dataclasses
import json

import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision import optim
from tinyvision.data import DataLoader
from tinyvision.engine import fit
from tinyvision.tasks import get_task

TINY_EXTRA = {"widths": [4, 8], "hidden": 8}


def tiny_config(task, **over):
    cfg = task.config(quick=True)
    extra = dict(cfg.extra, **TINY_EXTRA, **over.pop("extra", {}))
    settings = dict(epochs=1, batch_size=8, n_train=24, n_val=12, image_size=32, warmup_steps=0)
    settings.update(over)
    return dataclasses.replace(cfg, extra=extra, **settings)


def torch_twin(n_classes, widths, hidden, image_size):
    """multihead_small in torch.nn, the same module tree (so the same state_dict keys)."""
    nn = torch.nn

    class TorchMultiHead(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], 3
            for w in widths:
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
                c = w
            d = c * (image_size // 2 ** len(widths)) ** 2
            self.backbone = nn.Sequential(*layers, nn.Flatten())
            self.class_head = nn.Linear(d, n_classes)
            self.loc_head = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 4), nn.Sigmoid())

        def forward(self, x):
            f = self.backbone(x)
            return self.class_head(f), self.loc_head(f)

    return TorchMultiHead()


@pytest.mark.parametrize("box_format", ["xyxy", "cxcywh"])
def test_tiny_run_through_fit(box_format, tmp_path):
    task = get_task("localize")
    cfg = tiny_config(task, epochs=2, extra={"box_format": box_format})
    history = fit(task, cfg, tmp_path / "run", progress=False)
    assert len(history.steps) == 2 * 3 and {"loss", "class", "box"} <= set(history.steps[0])
    m = history.metrics
    for key in ("accuracy", "mean_iou", "correct_localization"):
        assert 0.0 <= m[key] <= 1.0
    names = task.class_names
    assert {f"mean_iou/{n}" for n in names} | {f"accuracy/{n}" for n in names} <= set(m)
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (len(names), len(names)) and cm.sum() == cfg.n_val
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["accuracy"] == m["accuracy"]


def test_predict_evaluate_and_pictures(tmp_path):
    task = get_task("localize")
    cfg = tiny_config(task)
    tv.manual_seed(0)
    model = task.build_model(cfg)
    train, val = task.datasets(cfg)
    images, targets = task.collate([val[i] for i in range(5)])
    assert images.shape == (5, 3, 32, 32) and images.dtype == np.float32 and len(targets) == 5
    model.train()
    preds = task.predict(model, images)
    assert model.training                                   # predict restores the mode
    assert len(preds) == 5
    for p in preds:
        assert p["boxes"].shape == (1, 4) and p["boxes"].dtype == np.float32
        assert np.all((p["boxes"] >= 0) & (p["boxes"] <= 32))          # pixels, clipped to the image
        assert p["labels"].shape == (1,) and 0 <= p["labels"][0] < len(task.class_names)
        assert p["scores"].shape == (1,) and p["scores"][0] == p["probabilities"].max()
    # evaluate agrees with the metrics computed by hand from predict
    m = task.evaluate(model, val, cfg)
    pl, pb, _, tl, tb = task._predict_dataset(model, val)
    assert m["accuracy"] == float(np.mean(pl == tl))
    # the held-out set is another stream than the training set
    assert not np.array_equal(train[0][0], val[0][0])
    png = task.draw(model, val, tmp_path / "grid.png", n=6)
    assert png.endswith("grid.png") and (tmp_path / "grid.png").stat().st_size > 1000
    figures = task.extra_figures(model, val, tmp_path)
    (caption, path), = figures.items()
    assert "onfusion" in caption and path.endswith(".png")


def test_targets_are_normalised_and_checked():
    task = get_task("localize")
    targets = [{"boxes": np.array([[8.0, 16.0, 24.0, 32.0]], np.float32), "labels": np.array([2])}]
    labels, boxes = task.targets_to_arrays(targets, (32, 64))            # H = 32, W = 64
    np.testing.assert_allclose(boxes, [[0.125, 0.5, 0.375, 1.0]])
    _, cxcywh = task.targets_to_arrays(targets, (32, 64), "cxcywh")
    np.testing.assert_allclose(cxcywh, [[0.25, 0.75, 0.25, 0.5]])
    assert labels.tolist() == [2]
    two = [{"boxes": np.zeros((2, 4), np.float32), "labels": np.array([0, 1])}]
    with pytest.raises(ValueError, match=r"targets\[0\] has boxes of shape \(2, 4\).*exactly one object"):
        task.targets_to_arrays(two, (32, 32))
    cfg = tiny_config(task, extra={"box_format": "cxcywh"})
    model = task.build_model(cfg)
    task.criterion = task.criterion_for(tiny_config(task, extra={"box_format": "xyxy"}))   # xyxy loss, cxcywh model
    with pytest.raises(ValueError, match="predicts 'cxcywh' boxes but the loss expects 'xyxy'"):
        task.loss(model, np.zeros((1, 3, 32, 32), np.float32), targets)


def test_coco_folder_round_trip(tmp_path):
    """A folder written by write_shapes (the CLI's `tinyvision data shapes`) reads back as the
    same images and targets, split into train and held-out parts."""
    from tinyvision.data import ShapesLocalization, write_shapes

    task = get_task("localize")
    write_shapes("localize", 6, tmp_path / "shapes", seed=3, image_size=32)
    cfg = tiny_config(task, n_val=2)
    train, val = task.datasets(cfg, data_dir=tmp_path / "shapes")
    assert len(train) == 4 and len(val) == 2
    ref = ShapesLocalization(6, image_size=32, seed=3)
    image, target = val[1]
    np.testing.assert_array_equal(image, ref[5][0])
    np.testing.assert_array_equal(target["boxes"], ref[5][1]["boxes"])
    assert target["labels"].tolist() == ref[5][1]["labels"].tolist()


def torch_box_loss(pred, target, criterion):
    """The box term of the task's criterion, written with PyTorch / torchvision ops."""
    import torchvision

    if criterion.box_loss == "mse":
        return torch.nn.functional.mse_loss(pred, target)
    if criterion.box_loss == "smooth_l1":
        return torch.nn.functional.smooth_l1_loss(pred, target, beta=criterion.beta)
    if criterion.box_format == "cxcywh":
        pred = torchvision.ops.box_convert(pred, "cxcywh", "xyxy")
        target = torchvision.ops.box_convert(target, "cxcywh", "xyxy")
    return torchvision.ops.generalized_box_iou_loss(pred, target, reduction="mean")


@pytest.mark.parametrize("extra", [{}, {"box_format": "xyxy", "box_loss": "mse", "alpha": 4.0}],
                         ids=["recipe", "xyxy-mse"])
def test_torch_twin_follows_the_loss_curve(extra):
    """Same init (copied), same batches, float64, AdamW with the recipe's weight decay, the task's
    loss (the recipe's, and CE + α·MSE on xyxy): the 20 losses and their CE and box parts agree
    to 1e-8."""
    task = get_task("localize")
    cfg = tiny_config(task, n_train=80, batch_size=8, extra=extra)
    tv.manual_seed(0)
    model = task.build_model(cfg).double()
    criterion = task.criterion
    twin = torch_twin(len(task.class_names), cfg.extra["widths"], cfg.extra["hidden"], cfg.image_size)
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    twin.double()
    lr = 3e-3
    opt = optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    topt = torch.optim.AdamW(twin.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    train, _ = task.datasets(cfg)
    loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, seed=0, collate_fn=task.collate)
    ours, theirs = [], []
    for epoch in range(2):
        loader.set_epoch(epoch)
        for images, targets in loader:
            x = images.astype(np.float64)
            total, parts = task.loss(model, x, targets)
            opt.zero_grad()
            total.backward()
            opt.step()
            ours.append((total.item(), parts["class"], parts["box"]))

            labels, boxes = task.targets_to_arrays(targets, x.shape[2:], criterion.box_format)
            scores, pred = twin(torch.from_numpy(x))
            ce = torch.nn.functional.cross_entropy(scores, torch.from_numpy(labels))
            box = torch_box_loss(pred, torch.from_numpy(boxes.astype(np.float64)), criterion)
            loss = ce + criterion.alpha * box
            topt.zero_grad()
            loss.backward()
            topt.step()
            theirs.append((loss.item(), ce.item(), box.item()))
    assert len(ours) == 20
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-8, atol=1e-12)
    assert ours[-1][0] < ours[0][0]                         # and it learns something


def test_localization_doc_python_blocks_run(tmp_path, monkeypatch):
    """docs/localization.md: every Python block runs as written."""
    import pathlib
    import re

    doc = pathlib.Path(__file__).resolve().parents[2] / "docs" / "localization.md"
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert len(blocks) >= 3
    for k, block in enumerate(blocks):
        exec(compile(block, f"docs/localization.md block {k}", "exec"), {})


# ---- tinyvision.metrics.localization ----------------------------------------------------------
def test_paired_box_iou_is_torchvisions_diagonal(rng):
    import torchvision

    from tinyvision.metrics import paired_box_iou

    lo = rng.uniform(0, 40, (1100, 2))                 # more than one chunk of 512
    a = np.concatenate([lo, lo + rng.uniform(1, 30, (1100, 2))], axis=1)
    b = a + rng.normal(0, 5, a.shape)
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 0.5)
    ref = torch.diagonal(torchvision.ops.box_iou(torch.tensor(a), torch.tensor(b))).numpy()
    np.testing.assert_allclose(paired_box_iou(a, b), ref, rtol=1e-12, atol=0)
    inside_out = a.copy()
    inside_out[0] = [10, 10, 5, 5]                     # x2 < x1 and y2 < y1: IoU 0, not a negative area
    assert paired_box_iou(inside_out, b)[0] == 0.0


def test_localization_metrics_by_hand():
    from tinyvision.metrics import correct_localization, localization_metrics

    pl, tl = np.array([0, 0, 1, 1, 1]), np.array([0, 0, 1, 0, 1])
    tb = np.array([[0, 0, 10, 10]] * 5, dtype=float)
    pb = np.array([[0, 0, 10, 10], [0, 0, 5, 10], [0, 0, 4, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=float)
    m = localization_metrics(pl, pb, tl, tb, num_classes=3, class_names=["a", "b", "c"])
    assert m["accuracy"] == 0.8
    assert np.isclose(m["mean_iou"], (1 + 0.5 + 0.4 + 1 + 0) / 5)
    assert m["correct_localization"] == 0.4 == correct_localization(pl, pb, tl, tb)
    assert m["per_class"]["a"] == {"n": 3, "accuracy": 2 / 3, "mean_iou": (1 + 0.5 + 1) / 3,
                                   "correct_localization": 2 / 3}
    assert m["per_class"]["b"]["correct_localization"] == 0.0
    assert m["per_class"]["c"]["n"] == 0 and np.isnan(m["per_class"]["c"]["accuracy"])
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="pred_boxes has 4 boxes but 5 were expected"):
        localization_metrics(pl, pb[:4], tl, tb, num_classes=3)
    with pytest.raises(ValueError, match=r"true_boxes must be real-valued boxes of shape \(N, 4\).*\(5, 3\)"):
        localization_metrics(pl, pb, tl, tb[:, :3], num_classes=3)
    with pytest.raises(ValueError, match="true_labels must be integer class indices"):
        localization_metrics(pl, pb, tl.astype(float), tb, num_classes=3)
    with pytest.raises(ValueError, match=r"true_labels\[3\] = 5 is outside \[0, 3\)"):
        localization_metrics(pl, pb, np.array([0, 0, 1, 5, 1]), tb, num_classes=3)


def test_metrics_doctests():
    import doctest

    import tinyvision.metrics.localization as module

    result = doctest.testmod(module, verbose=False)
    assert result.attempted >= 3 and result.failed == 0
