"""Plots render (Agg, into PNG files) and draw what they say they draw."""
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from tinyvision import viz  # noqa: E402
from tinyvision.metrics import (confusion_matrix, precision_recall_curve,  # noqa: E402
                                recall_iou_curve, voc_eval)


def _saved(fig, tmp_path, name):
    path = tmp_path / name
    fig.savefig(path, dpi=40)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 500
    return path


def test_precision_recall_curves(tmp_path, rng):
    yt = rng.integers(0, 2, 50)
    curves = {"model A": precision_recall_curve(yt, rng.random(50)),
              "model B": precision_recall_curve(yt, yt + rng.normal(0, 0.5, 50))}
    fig = viz.plot_precision_recall(curves)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["model A", "model B"]
    p, r, _ = curves["model A"]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), r)      # x is recall
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), p)
    _saved(fig, tmp_path, "pr.png")


def test_precision_recall_from_voc_result(tmp_path):
    preds = [{"boxes": [[0, 0, 9, 9], [20, 20, 29, 29]], "scores": [0.9, 0.8], "labels": [0, 1]}]
    targets = [{"boxes": [[0, 0, 9, 9], [50, 50, 59, 59]], "labels": [0, 1]}]
    fig = viz.plot_precision_recall(voc_eval(preds, targets))
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels == ["class 0 (AP 1.000)", "class 1 (AP 0.000)"]
    _saved(fig, tmp_path, "voc.png")


def test_coco_precision_array(tmp_path, rng):
    T, R, K, A, M = 10, 101, 3, 4, 3
    precision = np.sort(rng.random((T, R, K, A, M)), axis=1)[:, ::-1]
    precision[:, :, 2] = -1                                           # category without gts
    fig = viz.plot_coco_precision_recall(precision, iou_indices=[0, 5, 9])
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    mean_curve = precision[0, :, :2, 0, -1].mean(axis=1)              # category 2 left out
    np.testing.assert_allclose(ax.lines[0].get_ydata(), mean_curve)
    assert ax.lines[0].get_label() == f"IoU=0.50 (AP {mean_curve.mean():.3f})"
    _saved(fig, tmp_path, "coco.png")
    # one panel per category; the category without gts says so
    fig = viz.plot_coco_precision_recall(precision, classes=[0, 1, 2], class_names=["a", "b", "c"])
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert titles == ["a", "b", "c"]
    assert len(fig.axes[2].lines) == 0
    _saved(fig, tmp_path, "coco_classes.png")
    with pytest.raises(ValueError, match="shape"):
        viz.plot_coco_precision_recall(precision[0])


def test_recall_iou(tmp_path):
    gt = [[[0, 0, 10, 10], [0, 0, 10, 20]]]
    o, r = recall_iou_curve([[[0, 0, 10, 10]]], gt, iou_thresholds=np.linspace(0, 1, 201))
    fig = viz.plot_recall_iou({"proposals": (o, r)})
    line = fig.axes[0].lines[0]
    np.testing.assert_array_equal(line.get_xdata(), o)
    assert line.get_label().startswith("proposals (AR ~ 0.5")
    _saved(fig, tmp_path, "recall_iou.png")


def test_confusion_matrix_heat_map(tmp_path):
    cm = confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 2, 1])
    fig = viz.plot_confusion_matrix(cm, class_names=["bg", "cat", "dog"])
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), cm)
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(v) for v in cm.ravel())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["bg", "cat", "dog"]
    _saved(fig, tmp_path, "cm.png")
    fig = viz.plot_confusion_matrix(cm, normalize="true")
    np.testing.assert_allclose(fig.axes[0].images[0].get_array().sum(axis=1), [1, 1, 1])
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion_matrix(np.zeros((2, 3)))


def test_draw_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert viz.plot_confusion_matrix(np.eye(2), ax=ax) is fig


def test_missing_matplotlib_message(monkeypatch):
    import tinyvision.viz.metrics as vm

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'tinyvision\[plot\]'"):
        vm.plot_confusion_matrix(np.eye(2))


def test_coco_result_object(tmp_path):
    """The evaluator's result can be passed as is: its .precision and .params are used."""
    from tinyvision.metrics import COCOEvaluator

    gt = {"images": [{"id": 1}],
          "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
          "annotations": [
              {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 80], "area": 4000,
               "iscrowd": 0},
              {"id": 2, "image_id": 1, "category_id": 2, "bbox": [100, 40, 30, 30], "area": 900,
               "iscrowd": 0}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [12, 8, 50, 80], "score": 0.9},
            {"image_id": 1, "category_id": 2, "bbox": [90, 40, 30, 30], "score": 0.6}]
    res = COCOEvaluator(gt).evaluate(dets)
    fig = viz.plot_coco_precision_recall(res, classes=[0, 1])
    assert [a.get_title() for a in fig.axes] == ["category 1", "category 2"]
    ax = fig.axes[0]
    assert len(ax.lines) == len(res.precision)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), res.precision[0, :, 0, 0, -1])
    _saved(fig, tmp_path, "coco_result.png")


def test_image_grid_lays_out_n_panels_in_rows_of_four():
    pytest.importorskip("matplotlib")
    from tinyvision.viz.draw import image_grid

    fig, axes = image_grid(6, cell=(2.0, 2.5))
    assert len(axes) == 6 and len(fig.axes) == 8                  # 2 rows of 4, 2 left empty
    assert tuple(fig.get_size_inches()) == (8.0, 5.0)
    assert all(not ax.axison for ax in fig.axes)
    assert len(image_grid(1)[1]) == 1
