"""The detect task: its recipe, its loss, and evaluate_coco checked against pycocotools itself."""
import json
import os

import numpy as np
import pytest

from tinyvision.tasks import get_task
from tinyvision.tasks.detect import COCO_STAT_NAMES, coco_ground_truth, evaluate_coco


class _NoisyOracle:
    """A stand-in detector: each image's true boxes, jittered, with random scores and some labels
    wrong, plus one spurious box — enough to make every COCO stat non-trivial."""

    def __init__(self, dataset, seed=0):
        self.targets = [dataset[i][1] for i in range(len(dataset))]
        self.rng = np.random.default_rng(seed)
        self.calls = 0
        self.training = True

    def eval(self):
        self.training = False
        return self

    def train(self, mode=True):
        self.training = mode
        return self

    def __call__(self, images):
        out = []
        for image in images:
            t = self.targets[self.calls]
            self.calls += 1
            boxes = np.asarray(t["boxes"], np.float64).reshape(-1, 4)
            boxes = boxes + self.rng.normal(0, 1.5, boxes.shape)
            labels = np.asarray(t["labels"]).copy()
            flip = self.rng.random(len(labels)) < 0.15
            labels[flip] = (labels[flip] + 1) % 5
            spurious = np.array([[5.0, 5.0, 20.0, 25.0]])
            out.append({"boxes": np.concatenate([boxes, spurious]).astype(np.float32),
                        "scores": self.rng.random(len(boxes) + 1).astype(np.float32),
                        "labels": np.concatenate([labels, [0]]).astype(np.int64)})
        return out


def test_evaluate_coco_equals_pycocotools(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from tinyvision.data import ShapesDetection

    dataset = ShapesDetection(30, image_size=64, max_objects=4, seed=5)
    results_path = tmp_path / "results.json"
    stats = evaluate_coco(_NoisyOracle(dataset), dataset, results_path=results_path)
    assert list(stats) == list(COCO_STAT_NAMES)

    gt = COCO()
    gt.dataset = coco_ground_truth(dataset)
    gt.createIndex()
    dt = gt.loadRes(str(results_path))
    ev = COCOeval(gt, dt, "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    np.testing.assert_allclose([stats[k] for k in COCO_STAT_NAMES], ev.stats, rtol=0, atol=1e-12)
    assert 0.1 < stats["AP50"] < 1.0
    with open(results_path) as f:
        first = json.load(f)[0]
    assert set(first) == {"image_id", "category_id", "bbox", "score"} and 1 <= first["category_id"] <= 5


@pytest.fixture(scope="module")
def quick():
    task = get_task("detect")
    config = task.config(quick=True)
    config.n_train, config.n_val = 8, 4
    return task, config


def test_recipe_datasets_and_loss(quick):
    task, config = quick
    train, val = task.datasets(config)
    assert len(train) == 8 and len(val) == 4
    assert val[0][1]["image_id"] != train[0][1]["image_id"] or not np.array_equal(val[0][0], train[0][0])
    images, targets = task.collate([train[i] for i in range(4)])
    assert images.shape == (4, 3, config.image_size, config.image_size)
    model = task.build_model(config)
    total, parts = task.loss(model, images, targets)
    assert set(parts) == {"classification", "bbox_regression"}
    assert np.isclose(float(total), parts["classification"] + parts["bbox_regression"])
    total.backward()
    assert all(p.grad is not None for p in model.parameters())
    preds = task.predict(model, images)
    assert len(preds) == 4 and set(preds[0]) == {"boxes", "scores", "labels"}
    assert model.training   # predict restores the mode


def test_evaluate_draw_and_figures(quick, tmp_path):
    task, config = quick
    _, val = task.datasets(config)
    model = task.build_model(config)
    metrics = task.evaluate(model, val, config)
    assert list(metrics) == list(COCO_STAT_NAMES)
    assert all(-1.0 <= v <= 1.0 for v in metrics.values())
    path = task.draw(model, val, str(tmp_path / "det.png"), n=4)
    assert os.path.getsize(path) > 1000
    figures = task.extra_figures(model, val, str(tmp_path))
    assert len(figures) == 2 and all(os.path.getsize(p) > 1000 for p in figures.values())
