r"""The localization task: one shape per image; predict its class and its box.

Data: :class:`tinyvision.data.shapes.ShapesLocalization` (64x64 images, one of the five
:data:`~tinyvision.data.shapes.SHAPE_CLASSES` per image, a tight xyxy pixel box), or a COCO-format
folder with exactly one object per image. The training set uses ``config.seed``, the held-out set
``config.seed + VAL_SEED_OFFSET`` — a different stream, so no held-out image is ever trained on.

Model: :func:`tinyvision.models.multihead_small` (``extra["model"] = "small"``, the default) or
:func:`tinyvision.models.multihead_resnet18` (``"resnet18"``); boxes normalised to [0, 1].

Loss: :func:`tinyvision.losses.localization_loss`, CE + α · box loss; the targets are the pixel
boxes divided by (W, H, W, H) (and converted to (cx, cy, w, h) for a cxcywh model).

Metrics: accuracy, mean IoU and the correct-localization rate (class right and IoU >= 0.5) on
the held-out set, per class too, and the confusion matrix (:mod:`tinyvision.metrics.localization`).

The default recipe (``config()``) trains from scratch on two CPU cores in under three minutes
to accuracy >= 0.97 and mean IoU >= 0.85 on 500 held-out images (docs/localization.md shows the
run); ``config(quick=True)`` is the demo's budget of well under a minute.
"""
from __future__ import annotations

import os

import numpy as np

from .base import Task, TrainConfig, split_folder

__all__ = ["LocalizeTask", "TASK_CLASS", "VAL_SEED_OFFSET", "DEFAULT_EXTRA"]

#: The held-out set is ShapesLocalization(n_val, seed=config.seed + VAL_SEED_OFFSET).
VAL_SEED_OFFSET = 1000

_EVAL_BATCH = 100

#: The recipe's task-specific knobs (``TrainConfig.extra``); a key missing from a config's extra
#: takes its value from here. Chosen by a sweep on the shapes data (docs/localization.md).
DEFAULT_EXTRA = {"model": "small", "widths": [16, 32, 64, 128], "hidden": 256, "box_format": "cxcywh",
                 "alpha": 2.0, "box_loss": "giou", "beta": 0.1, "iou_threshold": 0.5}


def _extra(config):
    return {**DEFAULT_EXTRA, **config.extra}


def _class_names():
    from ..data.shapes import SHAPE_CLASSES

    return tuple(SHAPE_CLASSES)


class LocalizeTask(Task):
    """Single-object localization on synthetic shapes (see the module docstring)."""

    name = "localize"

    def __init__(self):
        self.class_names = _class_names()
        self.criterion = self.criterion_for(self.config())

    @staticmethod
    def criterion_for(config: TrainConfig):
        """The :class:`~tinyvision.losses.LocalizationLoss` that ``config.extra`` describes
        (``alpha``, ``box_loss``, ``box_format``, ``beta``); ``build_model`` installs it as
        ``self.criterion``, which ``loss`` uses."""
        from ..losses.localization import LocalizationLoss

        extra = _extra(config)
        return LocalizationLoss(alpha=float(extra["alpha"]), box_loss=extra["box_loss"],
                                box_format=extra["box_format"], beta=float(extra["beta"]))

    # ---- recipe --------------------------------------------------------------------------------
    def config(self, quick: bool = False) -> TrainConfig:
        extra = dict(DEFAULT_EXTRA)
        if quick:
            return TrainConfig(epochs=3, batch_size=32, lr=3e-3, weight_decay=1e-4, optimizer="adamw",
                               warmup_steps=20, schedule="cosine", n_train=1800, n_val=200, image_size=64,
                               seed=0, eval_every=0, extra=extra)
        return TrainConfig(epochs=5, batch_size=32, lr=3e-3, weight_decay=1e-4, optimizer="adamw",
                           warmup_steps=50, schedule="cosine", n_train=4800, n_val=500, image_size=64,
                           seed=0, eval_every=0, extra=extra)

    # ---- data ----------------------------------------------------------------------------------
    def datasets(self, config: TrainConfig, data_dir=None):
        if data_dir is not None:
            return self._coco_datasets(config, data_dir)
        from ..data.shapes import ShapesLocalization

        train = ShapesLocalization(config.n_train, image_size=config.image_size, seed=config.seed)
        val = ShapesLocalization(config.n_val, image_size=config.image_size, seed=config.seed + VAL_SEED_OFFSET)
        return train, val

    def _coco_datasets(self, config, data_dir):
        """A folder written by ``tinyvision data shapes --task localize``: ``images/`` and
        ``annotations.json``; or ``train/`` and ``val/`` folders each holding those. One folder is
        split in two: its last ``config.n_val`` images (at most half) are held out."""
        from ..data import coco_folder

        def read(folder):
            return _OneObject(coco_folder(folder, task="localize", seed=config.seed), folder)

        return split_folder(read, data_dir, config.n_val)


    # ---- model and loss --------------------------------------------------------------------------
    def build_model(self, config: TrainConfig):
        from ..models.multihead import multihead_resnet18, multihead_small

        extra = _extra(config)
        self.criterion = self.criterion_for(config)
        kind = extra["model"]
        box_format = extra["box_format"]
        if kind == "small":
            return multihead_small(len(self.class_names), box_format=box_format, image_size=config.image_size,
                                   widths=tuple(extra["widths"]), hidden=int(extra["hidden"]))
        if kind == "resnet18":
            return multihead_resnet18(len(self.class_names), box_format=box_format)
        raise ValueError(f"localize: config.extra['model'] must be 'small' or 'resnet18', got {kind!r}")

    def targets_to_arrays(self, targets, image_hw, box_format="xyxy"):
        """Labels (N,) int64 and normalised target boxes (N, 4) float32 in ``box_format`` from the
        targets' pixel xyxy boxes: x / W, y / H, then (cx, cy, w, h) if asked."""
        H, W = image_hw
        labels, boxes = [], []
        for n, t in enumerate(targets):
            b = np.asarray(t["boxes"], dtype=np.float32).reshape(-1, 4)
            y = np.asarray(t["labels"]).reshape(-1)
            if b.shape[0] != 1 or y.shape[0] != 1:
                raise ValueError(f"localize: targets[{n}] has boxes of shape {tuple(b.shape)} and labels of shape "
                                 f"{tuple(y.shape)}; localization needs exactly one object per image")
            boxes.append(b[0])
            labels.append(int(y[0]))
        boxes = np.stack(boxes) / np.array([W, H, W, H], dtype=np.float32)       # (N, 4) in [0, 1]
        if box_format == "cxcywh":
            boxes = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                              boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
        return np.asarray(labels, dtype=np.int64), boxes.astype(np.float32)

    def loss(self, model, images, targets):
        """``(total, {"class": CE, "box": box loss})`` of ``self.criterion`` on one batch."""
        from ..autograd import Tensor

        x = images if isinstance(images, Tensor) else Tensor(np.asarray(images))
        if model.box_format != self.criterion.box_format:
            raise ValueError(f"localize: the model predicts {model.box_format!r} boxes but the loss expects "
                             f"{self.criterion.box_format!r} (build the model with task.build_model(config))")
        labels, target_boxes = self.targets_to_arrays(targets, x.shape[2:], model.box_format)
        scores, boxes = model(x)
        total = self.criterion(scores, boxes, labels, target_boxes.astype(boxes.dtype))
        return total, dict(self.criterion.last_parts)

    # ---- predictions and metrics -----------------------------------------------------------------
    def predict(self, model, images) -> list:
        """One dict per image: ``boxes`` (1, 4) float32 xyxy pixels (clipped to the image),
        ``labels`` (1,) int64, ``scores`` (1,) float32 (the softmax probability of that label),
        ``probabilities`` (K,) float32. Runs in eval mode without gradients (the model's mode is
        restored afterwards)."""
        from ..autograd import Tensor, no_grad

        x = np.asarray(images.data if isinstance(images, Tensor) else images)
        if x.ndim == 3:
            x = x[None]
        H, W = x.shape[2:]
        was_training = model.training
        model.eval()
        try:
            with no_grad():
                scores, boxes = model(Tensor(x.astype(np.float32, copy=False)))
        finally:
            model.train(was_training)
        z = np.asarray(scores.numpy(), dtype=np.float64)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        b = _to_xyxy(np.asarray(boxes.numpy(), dtype=np.float64), model.box_format)
        b = np.clip(b * np.array([W, H, W, H]), 0.0, np.array([W, H, W, H]))
        labels = p.argmax(axis=1)
        return [{"boxes": b[n:n + 1].astype(np.float32), "labels": labels[n:n + 1].astype(np.int64),
                 "scores": p[n:n + 1, labels[n]].astype(np.float32), "probabilities": p[n].astype(np.float32)}
                for n in range(x.shape[0])]

    def _predict_dataset(self, model, dataset):
        """(pred_labels, pred_boxes, scores, true_labels, true_boxes) over the whole dataset."""
        pl, pb, ps, tl, tb = [], [], [], [], []
        for s in range(0, len(dataset), _EVAL_BATCH):
            images, targets = self.collate([dataset[i] for i in range(s, min(s + _EVAL_BATCH, len(dataset)))])
            for pred, t in zip(self.predict(model, images), targets):
                pl.append(pred["labels"][0])
                pb.append(pred["boxes"][0])
                ps.append(pred["scores"][0])
                tl.append(int(np.asarray(t["labels"]).reshape(-1)[0]))
                tb.append(np.asarray(t["boxes"], dtype=np.float64).reshape(-1, 4)[0])
        return np.array(pl, np.int64), np.array(pb), np.array(ps), np.array(tl, np.int64), np.array(tb)

    def evaluate(self, model, dataset, config: TrainConfig) -> dict:
        """``accuracy``, ``mean_iou``, ``correct_localization`` (floats), the same per class as
        ``accuracy/<class>`` ..., and ``confusion_matrix`` (K x K nested list, rows true)."""
        from ..metrics.localization import localization_metrics

        pl, pb, _, tl, tb = self._predict_dataset(model, dataset)
        m = localization_metrics(pl, pb, tl, tb, num_classes=len(self.class_names),
                                 iou_threshold=float(_extra(config)["iou_threshold"]),
                                 class_names=self.class_names)
        out = {"accuracy": m["accuracy"], "mean_iou": m["mean_iou"],
               "correct_localization": m["correct_localization"]}
        for metric in ("accuracy", "mean_iou", "correct_localization"):
            for name, per in m["per_class"].items():
                out[f"{metric}/{name}"] = per[metric]
        out["confusion_matrix"] = m["confusion_matrix"]
        return out

    # ---- pictures ------------------------------------------------------------------------------
    def draw(self, model, dataset, path, n: int = 8) -> str:
        """A grid of the first ``n`` held-out images: the true box (green, true class) and the
        predicted box (orange, dashed, predicted class, its probability and the IoU)."""
        from ..metrics.localization import paired_box_iou
        from ..viz.draw import image_grid

        n = max(1, min(n, len(dataset)))
        images, targets = self.collate([dataset[i] for i in range(n)])
        preds = self.predict(model, images)
        fig, axes = image_grid(n, cell=(2.6, 2.9))
        for k, ax in enumerate(axes):
            true_box = np.asarray(targets[k]["boxes"], dtype=np.float64).reshape(1, 4)
            true_label = int(np.asarray(targets[k]["labels"]).reshape(-1)[0])
            pred = preds[k]
            iou = float(paired_box_iou(pred["boxes"], true_box)[0])
            _draw_one(ax, images[k], true_box[0], pred["boxes"][0], true_label, int(pred["labels"][0]),
                      float(pred["scores"][0]), iou, self.class_names)
        fig.suptitle("held-out images: true box (green) and prediction (orange)", fontsize="medium")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=100)
        return os.fspath(path)

    def extra_figures(self, model, dataset, out_dir) -> dict:
        """The held-out confusion matrix as a PNG: ``{caption: path}``."""
        from ..metrics.classification import confusion_matrix
        from ..viz import plot_confusion_matrix

        pl, _, _, tl, _ = self._predict_dataset(model, dataset)
        cm = confusion_matrix(tl, pl, num_classes=len(self.class_names))
        fig = plot_confusion_matrix(cm, class_names=list(self.class_names),
                                    title=f"localize: confusion matrix ({len(tl)} held-out images)")
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "localize_confusion.png")
        fig.savefig(path, dpi=100)
        return {"Confusion matrix of the held-out images (rows: true class)": path}


def _to_xyxy(boxes, box_format):
    """(N, 4) boxes of a model's format -> (x1, y1, x2, y2) in the same (normalised) units."""
    if box_format == "xyxy":
        return boxes
    cx, cy, w, h = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _draw_one(ax, image, true_box, pred_box, true_label, pred_label, score, iou, class_names):
    """One panel: the image, the true box (green, solid) and the prediction (orange, dashed)."""
    from ..viz import draw_boxes

    draw_boxes(image, true_box[None], labels=[true_label], class_names=class_names, ax=ax, color="lime")
    draw_boxes(None, pred_box[None], labels=[pred_label], scores=[score], class_names=class_names, ax=ax,
               color="orange", linestyle="--")
    ok = true_label == pred_label and iou >= 0.5
    ax.set_title(f"true {class_names[true_label]}, pred {class_names[pred_label]}\nIoU {iou:.2f}"
                 + ("" if ok else "  (wrong)"), fontsize="small", color="black" if ok else "crimson")


class _OneObject:
    """A COCO dataset as a localization set: every image must hold exactly one object."""

    def __init__(self, dataset, where):
        self.dataset, self.where = dataset, where

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        image, target = self.dataset[index]
        m = np.asarray(target["boxes"]).reshape(-1, 4).shape[0]
        if m != 1:
            raise ValueError(f"localize: image {index} of {self.where} has {m} objects; localization needs "
                             "exactly one per image (use --task detect for several)")
        return image, {"boxes": np.asarray(target["boxes"], np.float32).reshape(1, 4),
                       "labels": np.asarray(target["labels"], np.int64).reshape(1)}

    def set_epoch(self, epoch):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


TASK_CLASS = LocalizeTask
