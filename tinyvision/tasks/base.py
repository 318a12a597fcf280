"""What one task hands the training loop: data, model, loss, metrics, pictures.

The engine calls these methods and nothing else, so a task's recipe (which model, which loss,
how it is scored) lives in one file per task (``localize.py``, ``detect.py``, ``segment.py``).

Batches: every task's datasets yield ``(image, target)`` with ``image`` a float32 (C, H, W)
array and ``target`` a dict of arrays; ``collate`` turns a list of them into
``(images (N, C, H, W) float32 ndarray, targets: list of N dicts)``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["Task", "TrainConfig", "split_folder"]


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (``tinyvision train`` flags override them)."""

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"          # "sgd" | "adam" | "adamw"
    momentum: float = 0.9             # SGD only
    warmup_steps: int = 0             # linear warm-up from lr * warmup_factor to lr
    warmup_factor: float = 0.001
    schedule: str = "cosine"          # "cosine" | "constant" | "step" (after warm-up, per step)
    grad_clip_norm: float | None = None   # clip_grad_norm_ to this before each step
    eval_every: int = 1               # evaluate every k epochs (0: only after the last)
    n_train: int = 1000               # synthetic data sizes
    n_val: int = 200
    image_size: int = 64
    seed: int = 0
    extra: dict = field(default_factory=dict)   # task-specific knobs (model width, alpha, ...)

    def to_dict(self) -> dict:
        return asdict(self)


class Task:
    """One task's recipe. Subclasses set ``name`` and implement every method below."""

    name: str = ""
    class_names: tuple = ()   # names of labels 0..K-1 (pictures, ``tinyvision predict``);
                              # empty: the synthetic shapes' SHAPE_CLASSES

    def config(self, quick: bool = False) -> TrainConfig:
        """The default recipe; ``quick`` is the ``tinyvision demo --quick`` one (a few seconds-
        to-a-minute budget on 2 cores, smaller data and model, lower targets)."""
        raise NotImplementedError

    def datasets(self, config: TrainConfig, data_dir=None):
        """``(train, val)`` datasets: synthetic (seeded by ``config.seed``) when ``data_dir`` is
        None, else read from a COCO-format folder written by ``tinyvision data shapes``."""
        raise NotImplementedError

    def collate(self, samples):
        """List of ``(image, target)`` -> ``(images (N, C, H, W) float32, targets list)``: the
        images stacked (every task's images share one size), the targets kept as they are."""
        import numpy as np

        images = np.stack([np.asarray(image, dtype=np.float32) for image, _ in samples])   # (N, C, H, W)
        return images, [target for _, target in samples]

    def build_model(self, config: TrainConfig):
        """A fresh ``nn.Module`` (weights from tinyvision's default init, seeded by the engine)."""
        raise NotImplementedError

    def loss(self, model, images, targets):
        """``(total, parts)``: ``total`` a scalar Tensor to backpropagate; ``parts`` a dict of
        the named loss terms as Python floats (the NaN guard and the loss log name them)."""
        raise NotImplementedError

    def evaluate(self, model, dataset, config: TrainConfig) -> dict:
        """Held-out metrics as a flat dict of floats (model in eval mode, no grad)."""
        raise NotImplementedError

    def predict(self, model, images) -> list:
        """Predictions for a batch (N, C, H, W), one dict per image, in image coordinates."""
        raise NotImplementedError

    def draw(self, model, dataset, path, n: int = 8) -> str:
        """A PNG of ``n`` held-out images with truth and prediction; returns the path."""
        raise NotImplementedError

    def extra_figures(self, model, dataset, out_dir) -> dict:
        """Task-specific figures for the report (e.g. COCO PR curves, a confusion matrix):
        ``{caption: png_path}``. Optional."""
        return {}


def split_folder(read, data_dir, n_val):
    """``(train, val)`` from a COCO-format folder: its ``train/`` and ``val/`` subfolders when both
    exist, else the folder's last ``n_val`` images (at most half) held out. ``read(folder)`` makes
    one dataset of a folder."""
    import os

    from ..data import Subset

    data_dir = os.fspath(data_dir)
    if os.path.isdir(os.path.join(data_dir, "train")) and os.path.isdir(os.path.join(data_dir, "val")):
        return read(os.path.join(data_dir, "train")), read(os.path.join(data_dir, "val"))
    full = read(data_dir)
    cut = len(full) - min(n_val, len(full) // 2)
    return Subset(full, list(range(cut))), Subset(full, list(range(cut, len(full))))
