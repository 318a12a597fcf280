"""A tiny box-predicting Task (one object per 16x16 RGB image, like localize but milliseconds per
epoch) for the command line and report tests; ``MaskTask`` predicts a mask instead."""
import os

import numpy as np

import tinyvision as tv
import tinyvision.functional as F
from tinyvision import nn
from tinyvision.tasks import Task, TrainConfig

SIZE = 16


def make_items(n, seed):
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        x1, y1 = rng.integers(0, 8, size=2)
        w = int(rng.integers(4, 8))
        image = np.full((3, SIZE, SIZE), 0.1, dtype=np.float32)
        image[label, y1:y1 + w, x1:x1 + w] = 0.9
        mask = np.zeros((SIZE, SIZE), dtype=np.int64)
        mask[y1:y1 + w, x1:x1 + w] = label + 1
        items.append((image, {"boxes": np.array([[x1, y1, x1 + w, y1 + w]], dtype=np.float32),
                              "labels": np.array([label]), "mask": mask}))
    return items


class BoxTask(Task):
    name = "localize"

    def config(self, quick=False):
        return TrainConfig(epochs=1 if quick else 2, batch_size=8, lr=0.01, n_train=24, n_val=8,
                           image_size=SIZE, seed=1)

    def datasets(self, config, data_dir=None):
        return make_items(config.n_train, config.seed), make_items(config.n_val, config.seed + 1)

    def collate(self, samples):
        return np.stack([s[0] for s in samples]), [s[1] for s in samples]

    def build_model(self, config):
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
                             nn.Linear(4 * 4 * 4, 2 + 4))

    def loss(self, model, images, targets):
        out = model(tv.tensor(images))
        labels = tv.tensor(np.concatenate([t["labels"] for t in targets]))
        boxes = tv.tensor(np.concatenate([t["boxes"] for t in targets]) / SIZE)
        cls = F.cross_entropy(out[:, :2], labels)
        box = F.mse_loss(out[:, 2:], boxes)
        return cls + box, {"class_loss": float(cls.item()), "box_loss": float(box.item())}

    def evaluate(self, model, dataset, config):
        images, targets = self.collate(dataset)
        pred = model(tv.tensor(images)).numpy()[:, :2].argmax(1)
        truth = np.concatenate([t["labels"] for t in targets])
        return {"accuracy": float((pred == truth).mean()), "confusion_matrix": np.eye(2, dtype=np.int64)}

    def predict(self, model, images):
        out = model(tv.tensor(images)).numpy()
        return [{"boxes": np.clip(o[None, 2:], 0, 1) * SIZE, "labels": o[None, :2].argmax(1),
                 "scores": np.array([0.5])} for o in out]

    def draw(self, model, dataset, path, n=4):
        from tinyvision.viz import draw_boxes

        image, target = dataset[0]
        fig = draw_boxes(image, target["boxes"], target["labels"], color="white", linestyle="--")
        (pred,) = self.predict(model, image[None])
        draw_boxes(None, pred["boxes"], pred["labels"], pred["scores"], ax=fig.axes[0])
        fig.savefig(path)
        return path

    class_names = ("red", "green")

    def extra_figures(self, model, dataset, out_dir):
        from tinyvision.viz import plot_confusion_matrix

        path = os.path.join(out_dir, "confusion.png")
        plot_confusion_matrix(np.eye(2)).savefig(path)
        return {"confusion matrix": path}


class MaskTask(BoxTask):
    name = "segment"

    def predict(self, model, images):
        out = model(tv.tensor(images)).numpy()
        preds = []
        for o in out:
            x1, y1, x2, y2 = (np.clip(o[2:], 0, 1) * SIZE).astype(int)
            mask = np.zeros((images.shape[-2], images.shape[-1]), dtype=np.int64)
            mask[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)] = int(o[:2].argmax()) + 1
            preds.append({"mask": mask})
        return preds

    def draw(self, model, dataset, path, n=4):
        from tinyvision.viz import draw_masks
        from tinyvision.viz.metrics import _figure_and_axes

        image, target = dataset[0]
        (pred,) = self.predict(model, image[None])
        fig, axes = _figure_and_axes(None, nrows=1, ncols=2)
        draw_masks(image, target["mask"], ax=axes[0], title="truth")
        draw_masks(image, pred["mask"], ax=axes[1], title="prediction")
        fig.savefig(path)
        return path
