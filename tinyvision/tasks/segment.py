r"""The segmentation task: label every pixel of a synthetic-shapes image with its shape class.

Data: :class:`tinyvision.data.shapes.ShapesSegmentation` (64x64 images, 1-3 shapes, a semantic
mask: 0 background, 1..5 = label + 1 of the front-most shape; ``extra["mode"] = "binary"``: 1 =
any shape), or a COCO-format folder written by ``tinyvision data shapes --task segment``
(:class:`tinyvision.data.CocoSegmentation`). The held-out set uses ``config.seed +
VAL_SEED_OFFSET``, another stream: no held-out image is trained on.

Model (``extra["model"]``): ``"unet2015"`` (default) — the paper's U-Net
(:class:`~tinyvision.models.segmentation.UNet2015`) made small: ``base_channels`` 12,
``depth`` 4 (the bottom sees 4 x 4 cells of 16 px: context enough to tell the shapes apart;
depth 3 learned far slower), padded 3x3 convs so the mask has the image's size, and BatchNorm
after each conv (not in the paper; it lets Adam train from scratch in minutes);
or ``"unet"`` — smp's Unet with a ResNet encoder (``encoder``, ``decoder_channels``).

Loss: cross-entropy (mean over pixels) + smp's multiclass :class:`~tinyvision.losses.DiceLoss`
(``extra["loss"]`` = ``"ce+dice"`` default, ``"ce"`` or ``"dice"``; binary mode uses
``binary_cross_entropy_with_logits`` and binary Dice). CE gives every pixel a well-scaled
gradient from the first step; Dice counts each class as a whole, so the small shapes weigh as
much as the large background (docs/segmentation.md compares the two on an imbalanced mask).

Metrics (:mod:`tinyvision.metrics.segmentation`, pooled over all held-out pixels): per-class
Dice and IoU, ``mean_fg_dice`` / ``mean_fg_iou`` (the mean over the foreground classes, the
headline number), ``mean_dice``/``mean_iou`` over all classes, and ``pixel_accuracy``.

The default recipe (12 epochs, 1200 steps) trains from scratch to mean foreground Dice 0.955 on
300 held-out images in 264 s of wall time on an idle 2-core machine (docs/segmentation.md has the
table and the runs on a busy one); 8 epochs give 0.934.
``config(quick=True)`` (200 steps) is the demo's budget and reaches about 0.5.
"""
from __future__ import annotations

import os

import numpy as np

from .base import Task, TrainConfig, split_folder

__all__ = ["SegmentTask", "TASK_CLASS", "VAL_SEED_OFFSET"]

#: The held-out set is ShapesSegmentation(n_val, seed=config.seed + VAL_SEED_OFFSET).
VAL_SEED_OFFSET = 1000

_EVAL_BATCH = 50
_LOSSES = ("ce+dice", "ce", "dice")


def _class_names(mode):
    from ..data.shapes import SHAPE_CLASSES

    return ("background",) + tuple(SHAPE_CLASSES) if mode == "multiclass" else ("background", "object")


class SegmentTask(Task):
    """Semantic segmentation on synthetic shapes (see the module docstring)."""

    name = "segment"

    def __init__(self):
        self.mode = "multiclass"
        self.class_names = _class_names(self.mode)

    # ---- recipe --------------------------------------------------------------------------------
    def config(self, quick: bool = False) -> TrainConfig:
        extra = {"mode": "multiclass", "model": "unet2015", "base_channels": 12, "depth": 4, "batch_norm": True,
                 "loss": "ce+dice", "dice_weight": 1.0}
        if quick:
            return TrainConfig(epochs=4, batch_size=16, lr=5e-3, weight_decay=1e-4, optimizer="adamw",
                               warmup_steps=10, schedule="cosine", eval_every=0, n_train=800, n_val=100,
                               image_size=64, seed=0, extra=extra)
        return TrainConfig(epochs=12, batch_size=16, lr=5e-3, weight_decay=1e-4, optimizer="adamw",
                           warmup_steps=30, schedule="cosine", eval_every=0, n_train=1600, n_val=300,
                           image_size=64, seed=0, extra=extra)

    def _mode(self, config):
        mode = config.extra.get("mode", "multiclass")
        if mode not in ("multiclass", "binary"):
            raise ValueError(f"segment: config.extra['mode'] must be 'multiclass' or 'binary', got {mode!r}")
        self.mode = mode
        self.class_names = _class_names(mode)
        return mode

    # ---- data ----------------------------------------------------------------------------------
    def datasets(self, config: TrainConfig, data_dir=None):
        mode = self._mode(config)
        if data_dir is not None:
            return self._coco_datasets(config, data_dir, mode)
        from ..data.shapes import ShapesSegmentation

        train = ShapesSegmentation(config.n_train, image_size=config.image_size, seed=config.seed, mode=mode)
        val = ShapesSegmentation(config.n_val, image_size=config.image_size, seed=config.seed + VAL_SEED_OFFSET,
                                 mode=mode)
        return train, val

    def _coco_datasets(self, config, data_dir, mode):
        """``data_dir/{images, annotations.json}`` (its last ``n_val`` images, at most half, held
        out) or ``data_dir/train`` + ``data_dir/val`` each holding those."""
        from ..data import CocoSegmentation

        def read(folder):
            ann = os.path.join(folder, "annotations.json")
            if not os.path.exists(ann):
                raise FileNotFoundError(f"segment: {ann} not found (expected a folder written by "
                                        "`tinyvision data shapes --task segment`)")
            return CocoSegmentation(os.path.join(folder, "images"), ann, mode=mode, seed=config.seed)

        return split_folder(read, data_dir, config.n_val)


    @staticmethod
    def masks_of(targets):
        """The targets' masks stacked: (N, H, W) int64."""
        masks = [np.asarray(t["mask"]) for t in targets]
        shapes = {m.shape for m in masks}
        if len(shapes) != 1:
            raise ValueError(f"segment: the masks of one batch must have one shape, got {sorted(shapes)}")
        return np.stack(masks).astype(np.int64)

    # ---- model and loss --------------------------------------------------------------------------
    def _channels(self):
        return len(self.class_names) if self.mode == "multiclass" else 1

    def build_model(self, config: TrainConfig):
        self._mode(config)
        extra = self._extra = dict(config.extra)     # the loss reads its knobs from here
        kind = extra.get("model", "unet2015")
        if kind == "unet2015":
            from ..models.segmentation import UNet2015

            return UNet2015(in_channels=3, num_classes=self._channels(), base_channels=int(extra.get("base_channels", 8)),
                            depth=int(extra.get("depth", 3)), padding=1, batch_norm=bool(extra.get("batch_norm", True)),
                            skips=bool(extra.get("skips", True)))
        if kind == "unet":
            from ..models.segmentation import Unet

            depth = int(extra.get("depth", 4))
            return Unet(extra.get("encoder", "resnet18"), encoder_depth=depth,
                        decoder_channels=tuple(extra.get("decoder_channels", (64, 32, 16, 16)[:depth])),
                        classes=self._channels())
        raise ValueError(f"segment: config.extra['model'] must be 'unet2015' or 'unet', got {kind!r}")

    def loss(self, model, images, targets):
        """``(total, {"ce": ..., "dice": ...})``: CE over pixels + dice_weight x smp's Dice loss
        (``loss`` and ``dice_weight`` from the config the model was built with)."""
        from .. import functional as F
        from ..autograd import Tensor
        from ..losses import DiceLoss

        extra = getattr(self, "_extra", None) or self.config().extra
        kind = extra.get("loss", "ce+dice")
        if kind not in _LOSSES:
            raise ValueError(f"segment: config.extra['loss'] must be one of {_LOSSES}, got {kind!r}")
        x = images if isinstance(images, Tensor) else Tensor(np.asarray(images))
        masks = self.masks_of(targets)
        logits = model(x)                                             # (N, C, H, W)
        if tuple(logits.shape[2:]) != masks.shape[1:]:
            raise ValueError(f"segment: the model's logits {tuple(logits.shape)} do not cover the masks "
                             f"{masks.shape} (use padding=1 or crop the masks)")
        parts, total = {}, None
        if self.mode == "multiclass":
            ce = F.cross_entropy(logits, masks)
            dice = DiceLoss("multiclass")(logits, masks)
        else:
            target = masks[:, None].astype(logits.dtype)
            ce = F.binary_cross_entropy_with_logits(logits, target)
            dice = DiceLoss("binary")(logits, target)
        w = float(extra.get("dice_weight", 1.0))
        if kind in ("ce+dice", "ce"):
            total = ce
        if kind in ("ce+dice", "dice"):
            total = dice * w if total is None else total + dice * w
        parts["ce"], parts["dice"] = float(ce.item()), float(dice.item())
        return total, parts

    # ---- predictions and metrics -----------------------------------------------------------------
    def predict(self, model, images) -> list:
        """One dict per image: ``mask`` (H, W) int64 (argmax over classes; binary: logit > 0) and
        ``probabilities`` (C, H, W) float32 (softmax; binary: sigmoid, one channel). Eval mode,
        no gradients (the model's mode is restored afterwards)."""
        from ..autograd import Tensor, no_grad

        x = np.asarray(images.data if isinstance(images, Tensor) else images)
        if x.ndim == 3:
            x = x[None]
        was_training = model.training
        model.eval()
        try:
            with no_grad():
                z = np.asarray(model(Tensor(x.astype(np.float32, copy=False))).numpy(), dtype=np.float64)
        finally:
            model.train(was_training)
        if z.shape[1] == 1:
            p = 1 / (1 + np.exp(-z))
            labels = (z[:, 0] > 0).astype(np.int64)
        else:
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            labels = z.argmax(axis=1).astype(np.int64)             # ties -> the lowest class
        return [{"mask": labels[n], "probabilities": p[n].astype(np.float32)} for n in range(x.shape[0])]

    def evaluate(self, model, dataset, config: TrainConfig) -> dict:
        """``mean_fg_dice``, ``mean_fg_iou``, ``mean_dice``, ``mean_iou``, ``pixel_accuracy``,
        ``dice/<class>`` and ``iou/<class>`` for every class (NaN for a class absent from both the
        predictions and the targets), and ``confusion_matrix`` (K x K nested list, rows true)."""
        from ..metrics.segmentation import SegmentationMetrics

        self._mode(config)
        k = len(self.class_names)
        metrics = SegmentationMetrics(num_classes=k)
        for s in range(0, len(dataset), _EVAL_BATCH):
            images, targets = self.collate([dataset[i] for i in range(s, min(s + _EVAL_BATCH, len(dataset)))])
            preds = np.stack([p["mask"] for p in self.predict(model, images)])
            metrics.update(preds, self.masks_of(targets))
        m = metrics.compute()
        dice, iou = np.asarray(m["dice"], float), np.asarray(m["iou"], float)
        fg = slice(1, None)
        out = {
            "mean_fg_dice": float(np.nanmean(dice[fg])) if np.isfinite(dice[fg]).any() else float("nan"),
            "mean_fg_iou": float(np.nanmean(iou[fg])) if np.isfinite(iou[fg]).any() else float("nan"),
            "mean_dice": float(m["mean_dice"]), "mean_iou": float(m["mean_iou"]),
            "pixel_accuracy": float(m["pixel_accuracy"]),
        }
        for c, name in enumerate(self.class_names):
            out[f"dice/{name}"] = float(dice[c])
            out[f"iou/{name}"] = float(iou[c])
        out["confusion_matrix"] = m["confusion_matrix"].tolist()
        return out

    # ---- pictures ------------------------------------------------------------------------------
    def draw(self, model, dataset, path, n: int = 8) -> str:
        """Three rows for the first ``n`` held-out images: the image | the true mask | the
        predicted mask (classes coloured as ``tinyvision.viz.draw_masks`` colours them), with
        each image's foreground Dice in the title."""
        from ..viz.draw import draw_masks
        from ..viz.metrics import _require_matplotlib

        Figure = _require_matplotlib()
        n = max(1, min(n, len(dataset)))
        images, targets = self.collate([dataset[i] for i in range(n)])
        preds = self.predict(model, images)
        fig = Figure(figsize=(1.9 * n, 6.2), layout="constrained")
        axes = fig.subplots(3, n, squeeze=False)
        for k in range(n):
            truth, pred = np.asarray(targets[k]["mask"]), preds[k]["mask"]
            inter = np.sum((truth == pred) & (truth > 0))
            denom = np.sum(truth > 0) + np.sum(pred > 0)
            dice = 2 * inter / denom if denom else 1.0
            axes[0, k].imshow(np.clip(np.transpose(images[k], (1, 2, 0)), 0, 1), interpolation="nearest")
            axes[0, k].set_axis_off()
            axes[0, k].set_title(f"image {k}", fontsize=8)
            draw_masks(np.zeros_like(images[k]), truth, alpha=1.0, ax=axes[1, k], title="true mask", legend=False,
                       class_names=self.class_names)
            draw_masks(np.zeros_like(images[k]), pred, alpha=1.0, ax=axes[2, k], title=f"predicted (Dice {dice:.2f})",
                       legend=k == n - 1, class_names=self.class_names)
        fig.suptitle("held-out images | true masks | predicted masks", fontsize="medium")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=100)
        return os.fspath(path)


TASK_CLASS = SegmentTask
