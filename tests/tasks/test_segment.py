"""The segment task (tinyvision/tasks/segment.py): data, model, loss (= CE + smp Dice, recomputed
here), metrics (= tinyvision.metrics' confusion-matrix numbers, recomputed here by hand), pictures,
and a few optimizer steps that lower the loss. Tiny sizes: the quality run is a benchmark."""
import dataclasses

import numpy as np
import pytest

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.losses import DiceLoss
from tinyvision.tasks import get_task


def tiny_config(task, **extra):
    cfg = task.config(quick=True)
    return dataclasses.replace(cfg, n_train=8, n_val=6, image_size=32, batch_size=4,
                               extra=dict(cfg.extra, base_channels=4, depth=2, **extra))


@pytest.fixture
def task():
    return get_task("segment")


def test_datasets_collate_and_model_shapes(task):
    cfg = tiny_config(task)
    train, val = task.datasets(cfg)
    assert (len(train), len(val)) == (8, 6)
    images, targets = task.collate([train[i] for i in range(4)])
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.float32
    masks = task.masks_of(targets)
    assert masks.shape == (4, 32, 32) and masks.max() < len(task.class_names)
    tv.manual_seed(0)
    model = task.build_model(cfg)
    assert model(tv.tensor(images)).shape == (4, len(task.class_names), 32, 32)
    # the held-out images are another stream
    assert not np.array_equal(train[0][0], val[0][0])


def test_loss_is_ce_plus_smp_dice(task):
    cfg = tiny_config(task, dice_weight=0.5)
    train, _ = task.datasets(cfg)
    tv.manual_seed(0)
    model = task.build_model(cfg)
    images, targets = task.collate([train[i] for i in range(4)])
    total, parts = task.loss(model, images, targets)
    logits = model(tv.tensor(images))
    masks = task.masks_of(targets)
    ce = F.cross_entropy(logits, masks).item()
    dice = DiceLoss("multiclass")(logits, masks).item()
    assert parts == pytest.approx({"ce": ce, "dice": dice}, rel=1e-5)
    assert total.item() == pytest.approx(ce + 0.5 * dice, rel=1e-5)


def test_a_few_steps_lower_the_loss(task):
    cfg = tiny_config(task)
    train, _ = task.datasets(cfg)
    tv.manual_seed(0)
    model = task.build_model(cfg)
    opt = tv.optim.AdamW(model.parameters(), lr=1e-2)
    images, targets = task.collate([train[i] for i in range(8)])
    first = None
    for _ in range(8):
        total, _ = task.loss(model, images, targets)
        first = total.item() if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert task.loss(model, images, targets)[0].item() < 0.9 * first


def test_evaluate_matches_hand_counts(task):
    cfg = tiny_config(task)
    _, val = task.datasets(cfg)
    tv.manual_seed(0)
    model = task.build_model(cfg)
    m = task.evaluate(model, val, cfg)
    images, targets = task.collate([val[i] for i in range(len(val))])
    pred = np.stack([p["mask"] for p in task.predict(model, images)])
    true = task.masks_of(targets)
    dices = []
    for c, name in enumerate(task.class_names):
        inter = np.sum((pred == c) & (true == c))
        size = np.sum(pred == c) + np.sum(true == c)
        union = np.sum((pred == c) | (true == c))
        want_d = 2 * inter / size if size else np.nan
        want_i = inter / union if union else np.nan
        np.testing.assert_allclose(m[f"dice/{name}"], want_d, equal_nan=True)
        np.testing.assert_allclose(m[f"iou/{name}"], want_i, equal_nan=True)
        if c > 0:
            dices.append(want_d)
    assert m["mean_fg_dice"] == pytest.approx(np.nanmean(dices))
    assert m["pixel_accuracy"] == pytest.approx(np.mean(pred == true))
    assert np.array(m["confusion_matrix"]).sum() == true.size


def test_predict_and_binary_mode(task):
    cfg = tiny_config(task, mode="binary")
    train, val = task.datasets(cfg)
    assert task.class_names == ("background", "object")
    tv.manual_seed(0)
    model = task.build_model(cfg)
    images, targets = task.collate([train[i] for i in range(2)])
    assert task.masks_of(targets).max() <= 1
    total, parts = task.loss(model, images, targets)
    assert np.isfinite(total.item()) and set(parts) == {"ce", "dice"}
    preds = task.predict(model, images)
    assert preds[0]["mask"].shape == (32, 32) and preds[0]["probabilities"].shape == (1, 32, 32)
    assert np.array_equal(preds[0]["mask"], (preds[0]["probabilities"][0] > 0.5).astype(np.int64))
    m = task.evaluate(model, val, cfg)
    assert set(m) >= {"mean_fg_dice", "dice/object", "iou/background", "pixel_accuracy"}


def test_draw_writes_a_png(task, tmp_path):
    cfg = tiny_config(task)
    _, val = task.datasets(cfg)
    tv.manual_seed(0)
    model = task.build_model(cfg)
    path = task.draw(model, val, tmp_path / "masks.png", n=3)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_config(task):
    cfg = tiny_config(task, model="segformer")
    with pytest.raises(ValueError, match="'unet2015' or 'unet'"):
        task.build_model(cfg)
    with pytest.raises(ValueError, match="mode"):
        task.datasets(tiny_config(task, mode="instance"))


# ---------------------------------------------------------------------------------------------
# docs/segmentation.md and the docstring examples of the segmentation modules
# ---------------------------------------------------------------------------------------------
DOCS = __import__("pathlib").Path(__file__).resolve().parents[2] / "docs"
FLAGS = __import__("doctest").ELLIPSIS | __import__("doctest").NORMALIZE_WHITESPACE


def test_docs_segmentation_snippets_run():
    import doctest

    result = doctest.testfile(str(DOCS / "segmentation.md"), module_relative=False, optionflags=FLAGS)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} snippets in docs/segmentation.md failed"


@pytest.mark.parametrize("name", ["tinyvision.losses.dice", "tinyvision.models.segmentation.unet",
                                  "tinyvision.models.segmentation.unet_paper"])
def test_module_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS)
    assert result.attempted > 0 and result.failed == 0


def test_coco_folder_gives_the_same_masks(task, tmp_path):
    from tinyvision.data.shapes import write_shapes

    cfg = dataclasses.replace(tiny_config(task), n_val=2, seed=3)
    write_shapes("segment", 6, tmp_path, seed=3, image_size=32)
    train, val = task.datasets(cfg, data_dir=tmp_path)
    assert (len(train), len(val)) == (4, 2)
    synthetic, _ = task.datasets(dataclasses.replace(cfg, n_train=6))
    for i in (0, 3):
        np.testing.assert_array_equal(train[i][1]["mask"], synthetic[i][1]["mask"])
    with pytest.raises(FileNotFoundError, match="annotations.json"):
        task.datasets(cfg, data_dir=tmp_path / "images")
