r"""The detection task: 0..N shapes per image, find each one (box and class) with a RetinaNet.

Data: :class:`tinyvision.data.shapes.ShapesDetection` (64x64 images by default, up to
``extra["max_objects"]`` shapes of the five classes, overlapping and crossing the border, some
images empty), or a COCO-format folder. The training set uses ``config.seed``, the held-out set
``config.seed + VAL_SEED_OFFSET``.

Model: :func:`tinyvision.models.detection.retinanet_small` — torchvision's RetinaNet (same class,
same losses, same postprocessing) on a narrow ResNet trunk, trained at the native image size
(``min_size = max_size = image_size``: the transform only normalises and pads). The pyramid and
anchors are matched to the synthetic objects (6-30 px at 64 px): the stem keeps full resolution,
so layer2, layer3, layer4 give levels at strides 4, 8, 16 with anchors of about 8-13, 16-25 and
32-50 px (three scales per octave, ratios 0.5, 1, 2) and no P6/P7 (no object needs them).

Loss: the model's own ``{"classification", "bbox_regression"}`` (focal loss / L1 on the deltas, or
GIoU), summed. Metrics: the 12 COCO box stats (pycocotools' names and values, through
:class:`tinyvision.metrics.COCOEvaluator`) on the held-out set: :func:`evaluate_coco`.

The default recipe (``config()``: 12 epochs of 2000 images, 1500 steps of 16) trains from scratch
to AP 0.699, AP50 0.924, AP75 0.816 on 200 held-out images, in 697 CPU-seconds (about six to ten
minutes on two idle cores; docs/retinanet.md has the measured run). ``config(quick=True)`` is the
demo's ~90 s budget, with a much lower bar (see docs/retinanet.md).
"""
from __future__ import annotations

import json
import os

import numpy as np

from .base import Task, TrainConfig, split_folder

__all__ = ["DetectTask", "TASK_CLASS", "VAL_SEED_OFFSET", "COCO_STAT_NAMES", "evaluate_coco", "coco_ground_truth",
           "predict_dataset"]

#: The held-out set is ShapesDetection(n_val, seed=config.seed + VAL_SEED_OFFSET).
VAL_SEED_OFFSET = 1000
#: pycocotools' summarize() order.
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_EVAL_BATCH = 50


def _class_names():
    from ..data.shapes import SHAPE_CLASSES

    return tuple(SHAPE_CLASSES)


# ----------------------------------------------------------------------------------------------
# COCO evaluation of any detector that follows torchvision's eval contract
# ----------------------------------------------------------------------------------------------
def _image_id(target, index):
    return int(np.asarray(target.get("image_id", index + 1)).reshape(-1)[0])


def coco_ground_truth(dataset, categories=None):
    """A COCO instances dict of a detection dataset's targets (boxes xyxy -> xywh, category_id =
    label + 1, the target's ``area`` (mask area) when it has one, else the box area, and its
    ``iscrowd``)."""
    images, annotations = [], []
    for index in range(len(dataset)):
        image, target = dataset[index]
        image_id = _image_id(target, index)
        images.append({"id": image_id, "height": int(image.shape[-2]), "width": int(image.shape[-1])})
        boxes = np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(target["labels"]).reshape(-1)
        areas = np.asarray(target.get("area", (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])),
                           dtype=np.float64).reshape(-1)
        crowd = np.asarray(target.get("iscrowd", np.zeros(len(boxes), np.int64))).reshape(-1)
        for box, label, area, c in zip(boxes, labels, areas, crowd):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(area), "iscrowd": int(c)})
    if categories is None:
        categories = getattr(dataset, "categories", None)
    if categories is None:
        categories = [{"id": k + 1, "name": name} for k, name in enumerate(_class_names())]
    return {"images": images, "annotations": annotations, "categories": list(categories)}


def predict_dataset(model, dataset, batch_size=_EVAL_BATCH):
    """``[(image_id, {"boxes", "scores", "labels"})]`` over the dataset, model in eval mode without
    gradients (its mode is restored)."""
    from ..autograd import no_grad

    was_training = model.training
    model.eval()
    out = []
    try:
        with no_grad():
            for start in range(0, len(dataset), batch_size):
                items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
                detections = model([np.asarray(image, dtype=np.float32) for image, _ in items])
                for k, ((_, target), det) in enumerate(zip(items, detections)):
                    out.append((_image_id(target, start + k), det))
    finally:
        model.train(was_training)
    return out


def _coco_results(predictions):
    """COCO results list: one {"image_id", "category_id", "bbox" xywh, "score"} per detection."""
    results = []
    for image_id, det in predictions:
        for box, score, label in zip(np.asarray(det["boxes"], np.float64), np.asarray(det["scores"], np.float64),
                                     np.asarray(det["labels"])):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append({"image_id": image_id, "category_id": int(label) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    return results


def coco_evaluation(model, dataset, results_path=None):
    """Run the model over ``dataset`` and evaluate; returns the :class:`COCOEvalResult`
    (``.stats``, ``.precision`` (T, R, K, A, M), ``.recall``)."""
    from ..metrics import COCOEvaluator

    results = _coco_results(predict_dataset(model, dataset))
    if results_path is not None:
        results_path = os.fspath(results_path)
        os.makedirs(os.path.dirname(os.path.abspath(results_path)), exist_ok=True)
        tmp = results_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f)
        os.replace(tmp, results_path)
    return COCOEvaluator(coco_ground_truth(dataset)).evaluate(results, iou_type="bbox")


def evaluate_coco(model, dataset, results_path=None) -> dict:
    """COCO box evaluation of a detector on a dataset of ``(image, target)``.

    Args:
        model: a detector in torchvision's contract (eval: ``model(list of (C, H, W))`` ->
            ``[{"boxes" xyxy, "scores", "labels" in [0, K)}]``), e.g. :class:`RetinaNet`.
        dataset: items ``(image, {"boxes" (M, 4) xyxy, "labels", "image_id", "area", "iscrowd"})``.
        results_path: if given, the detections are written there as a COCO results JSON
            (``[{"image_id", "category_id" (label + 1), "bbox" [x, y, w, h], "score"}]``).

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}``:
        pycocotools' 12 stats, its values (COCOEvaluator is checked against it to 1e-12).
    """
    stats = coco_evaluation(model, dataset, results_path).stats
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, stats)}


# ----------------------------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------------------------
class DetectTask(Task):
    """Multi-object detection on synthetic shapes with a CPU-sized RetinaNet (module docstring)."""

    name = "detect"

    def __init__(self):
        self.class_names = _class_names()

    # ---- recipe --------------------------------------------------------------------------------
    def config(self, quick: bool = False) -> TrainConfig:
        extra = {"max_objects": 4, "widths": [16, 32, 64, 128], "blocks": [1, 1, 1, 1], "stem_stride": 1,
                 "returned_layers": [2, 3, 4], "extra_levels": None, "fpn_channels": 64, "head_convs": 2,
                 "anchor_sizes": [[8, 10, 12], [16, 20, 25], [32, 40, 50]], "box_loss": "giou", "head_norm": "group",
                 "score_thresh": 0.05, "detections_per_img": 100}
        if quick:   # the same model, 200 steps: AP50 0.19, AP 0.08 in 105 CPU-seconds (measured)
            return TrainConfig(epochs=4, batch_size=16, lr=4e-3, weight_decay=1e-4, optimizer="adamw",
                               warmup_steps=30, schedule="cosine", n_train=800, n_val=100, image_size=64,
                               seed=0, eval_every=0, extra=extra)
        return TrainConfig(epochs=12, batch_size=16, lr=2e-3, weight_decay=1e-4, optimizer="adamw",
                           warmup_steps=100, schedule="cosine", n_train=2000, n_val=200, image_size=64,
                           seed=0, eval_every=0, extra=extra)

    # ---- data ----------------------------------------------------------------------------------
    def datasets(self, config: TrainConfig, data_dir=None):
        if data_dir is not None:
            return self._coco_datasets(config, data_dir)
        from ..data.shapes import ShapesDetection

        max_objects = int(config.extra.get("max_objects", 4))
        train = ShapesDetection(config.n_train, image_size=config.image_size, max_objects=max_objects,
                                seed=config.seed)
        val = ShapesDetection(config.n_val, image_size=config.image_size, max_objects=max_objects,
                              seed=config.seed + VAL_SEED_OFFSET)
        return train, val

    def _coco_datasets(self, config, data_dir):
        """A folder written by ``tinyvision data shapes --task detect``: ``images/`` and
        ``annotations.json``, or ``train/`` and ``val/`` folders holding those. One folder is split:
        its last ``config.n_val`` images (at most half) are held out."""
        from ..data import coco_folder

        return split_folder(lambda folder: coco_folder(folder, task="detect", seed=config.seed), data_dir,
                            config.n_val)


    # ---- model and loss --------------------------------------------------------------------------
    def build_model(self, config: TrainConfig):
        from ..models.detection import retinanet_small

        e = config.extra
        return retinanet_small(
            len(self.class_names), widths=tuple(e.get("widths", (16, 32, 64, 128))),
            blocks=tuple(e.get("blocks", (1, 1, 1, 1))), stem_stride=int(e.get("stem_stride", 1)),
            returned_layers=tuple(e.get("returned_layers", (2, 3, 4))), extra_levels=e.get("extra_levels"),
            fpn_channels=int(e.get("fpn_channels", 64)), head_convs=int(e.get("head_convs", 2)),
            anchor_sizes=tuple(tuple(s) for s in e.get("anchor_sizes", ((8, 10, 12), (16, 20, 25), (32, 40, 50)))),
            box_loss=e.get("box_loss", "l1"), head_norm=e.get("head_norm"), min_size=config.image_size, max_size=config.image_size,
            score_thresh=float(e.get("score_thresh", 0.05)),
            detections_per_img=int(e.get("detections_per_img", 100)))

    def loss(self, model, images, targets):
        """``(classification + bbox_regression, {"classification", "bbox_regression"})``."""
        losses = model(images, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
        total = losses["classification"] + losses["bbox_regression"]
        return total, {k: float(v.item()) for k, v in losses.items()}

    # ---- predictions and metrics -----------------------------------------------------------------
    def predict(self, model, images) -> list:
        """Detections per image: ``{"boxes" (D, 4) xyxy pixels, "scores" (D,), "labels" (D,)}``,
        in eval mode without gradients (the model's mode is restored)."""
        from ..autograd import Tensor, no_grad

        x = np.asarray(images.data if isinstance(images, Tensor) else images, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        was_training = model.training
        model.eval()
        try:
            with no_grad():
                return model(list(x))
        finally:
            model.train(was_training)

    def evaluate(self, model, dataset, config: TrainConfig) -> dict:
        """The 12 COCO box stats on the held-out set (see :func:`evaluate_coco`)."""
        return evaluate_coco(model, dataset)

    # ---- pictures ------------------------------------------------------------------------------
    def draw(self, model, dataset, path, n: int = 8) -> str:
        """A grid of the first ``n`` held-out images: truth (white, dashed) and detections with
        score >= 0.3 (coloured by class, with their scores)."""
        from ..viz import draw_boxes
        from ..viz.draw import image_grid

        n = max(1, min(n, len(dataset)))
        images, targets = self.collate([dataset[i] for i in range(n)])
        preds = self.predict(model, images)
        fig, axes = image_grid(n, cell=(3.0, 3.2))
        for k, ax in enumerate(axes):
            keep = np.asarray(preds[k]["scores"]) >= 0.3
            draw_boxes(images[k], targets[k]["boxes"], ax=ax, color="white", linestyle="--")
            draw_boxes(None, preds[k]["boxes"][keep], labels=preds[k]["labels"][keep],
                       scores=preds[k]["scores"][keep], class_names=self.class_names, ax=ax)
            ax.set_title(f"{len(targets[k]['boxes'])} true, {int(keep.sum())} detected", fontsize="small")
        fig.suptitle("held-out images: truth (white, dashed), detections with score >= 0.3", fontsize="medium")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=100)
        return os.fspath(path)

    def extra_figures(self, model, dataset, out_dir) -> dict:
        """COCO precision-recall curves (all classes, then per class) of the held-out set."""
        from ..viz import plot_coco_precision_recall

        result = coco_evaluation(model, dataset)
        os.makedirs(out_dir, exist_ok=True)
        out = {}
        fig = plot_coco_precision_recall(result)
        path = os.path.join(out_dir, "detect_pr_curves.png")
        fig.savefig(path, dpi=100)
        out["COCO precision-recall curves of the held-out set, one per IoU threshold (mean over classes)"] = path
        fig = plot_coco_precision_recall(result, classes=list(range(len(self.class_names))),
                                         iou_indices=[0, 5, 9], class_names=list(self.class_names))
        path = os.path.join(out_dir, "detect_pr_per_class.png")
        fig.savefig(path, dpi=100)
        out["Per-class precision-recall at IoU 0.5, 0.75, 0.95"] = path
        return out


TASK_CLASS = DetectTask
