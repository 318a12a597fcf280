"""A tiny Task for the engine's tests: a conv + batch norm + dropout classifier with a second
(regression) head, on random 1x8x8 images. Small enough that an epoch takes milliseconds, and
it touches everything a checkpoint must carry: parameters, batch-norm buffers, Adam/SGD state,
the dropout generator, the step-dependent learning rate and the shuffled batch order."""
import numpy as np

import tinyvision as tv
import tinyvision.functional as F
from tinyvision import nn
from tinyvision.tasks import Task, TrainConfig


class TinyNet(nn.Module):
    def __init__(self, n_classes=3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.3))
        self.cls = nn.Linear(4 * 4 * 4, n_classes)
        self.reg = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        h = self.features(x)
        return self.cls(h), self.reg(h)


class Crash(RuntimeError):
    """Raised by the tiny task at a chosen step: a run killed mid-training."""


class TinyTask(Task):
    name = "tiny"

    def __init__(self, crash_at_step=None, nan_at_step=None, nan_part="reg"):
        self.crash_at_step, self.nan_at_step, self.nan_part = crash_at_step, nan_at_step, nan_part
        self.calls = 0

    def config(self, quick=False):
        return TrainConfig(epochs=2, batch_size=8, lr=0.01, optimizer="adamw", warmup_steps=3,
                           schedule="cosine", n_train=36, n_val=16, seed=5)

    def datasets(self, config, data_dir=None):
        def make(n, seed):
            rng = np.random.default_rng(seed)
            items = []
            for _ in range(n):
                label = int(rng.integers(0, 3))
                image = rng.standard_normal((1, 8, 8)).astype(np.float32) * 0.5
                image[0, 2 * label:2 * label + 3] += 1.0
                items.append((image, {"label": np.int64(label),
                                      "value": rng.random(2).astype(np.float32)}))
            return items
        return make(config.n_train, config.seed), make(config.n_val, config.seed + 1)

    def collate(self, samples):
        images = np.stack([s[0] for s in samples])
        return images, [s[1] for s in samples]

    def build_model(self, config):
        return TinyNet()

    def loss(self, model, images, targets):
        self.calls += 1
        if self.crash_at_step is not None and self.calls == self.crash_at_step:
            raise Crash(f"killed at step {self.calls}")
        logits, values = model(tv.tensor(images))
        labels = tv.tensor(np.array([t["label"] for t in targets]))
        cls = F.cross_entropy(logits, labels)
        reg = F.mse_loss(values, tv.tensor(np.stack([t["value"] for t in targets])))
        if self.nan_at_step is not None and self.calls == self.nan_at_step:
            if self.nan_part == "reg":
                reg = reg * float("nan")
            else:
                cls = cls * float("inf")
        return cls + 0.5 * reg, {"cls": float(cls.item()), "reg": float(reg.item())}

    def evaluate(self, model, dataset, config):
        images, targets = self.collate(dataset)
        logits, _ = model(tv.tensor(images))
        pred = logits.numpy().argmax(1)
        return {"accuracy": float((pred == np.array([t["label"] for t in targets])).mean())}

    def predict(self, model, images):
        logits, _ = model(tv.tensor(images))
        return [{"label": int(i)} for i in logits.numpy().argmax(1)]
