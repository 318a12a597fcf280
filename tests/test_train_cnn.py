"""End to end: a small CNN (conv-BN-ReLU-maxpool x2, flatten, linear) learns which of three shapes
— square, disc, triangle — is drawn in a noisy 24x24 image, to >= 95 % held-out accuracy.

Everything is seeded: the data (NumPy), the weights (tinyvision.random.manual_seed) and the
batch order, so the run is deterministic. It exercises conv2d, batch_norm (training and
eval, running statistics), relu, max_pool2d, flatten, linear, cross_entropy and Adam together.
"""
import time

import numpy as np
import pytest

import tinyvision as tv
import tinyvision.functional as F
from tinyvision import nn, optim
from tinyvision.random import manual_seed

SIZE = 24
CLASSES = ("square", "disc", "triangle")


def make_shapes(n, rng):
    """n images (n, 1, SIZE, SIZE) float32 and labels (n,): a filled square, disc or upward
    triangle of random size and position, random brightness, on a noisy background."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    images = np.empty((n, 1, SIZE, SIZE), dtype=np.float32)
    labels = rng.integers(0, 3, n)
    for k in range(n):
        s = rng.uniform(5.0, 9.0)  # half-size
        cx, cy = rng.uniform(s, SIZE - 1 - s, size=2)
        if labels[k] == 0:
            mask = (np.abs(xx - cx) <= s) & (np.abs(yy - cy) <= s)
        elif labels[k] == 1:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= s**2
        else:  # apex at (cx, cy - s), base of width 2s on row cy + s
            t = (yy - (cy - s)) / (2 * s)  # 0 at the apex, 1 at the base
            mask = (t >= 0) & (t <= 1) & (np.abs(xx - cx) <= s * t)
        img = mask * rng.uniform(0.6, 1.0) + rng.normal(0.0, 0.1, (SIZE, SIZE))
        images[k, 0] = img
    return images, labels


def make_model():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),    # (N, 8, 12, 12)
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),  # (N, 16, 6, 6)
        nn.Flatten(),                                                                     # (N, 576)
        nn.Linear(16 * 6 * 6, 3),
    )


def accuracy(model, images, labels):
    model.eval()
    with tv.no_grad():
        logits = model(tv.tensor(images)).numpy()
    model.train()
    return float((logits.argmax(axis=1) == labels).mean())


def train(epochs=4, batch=32, seed=0):
    rng = np.random.default_rng(seed)
    manual_seed(seed)
    x_train, y_train = make_shapes(960, rng)
    x_test, y_test = make_shapes(400, rng)
    model = make_model()
    opt = optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            loss = F.cross_entropy(model(tv.tensor(x_train[idx])), tv.tensor(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return model, losses, accuracy(model, x_test, y_test)


@pytest.mark.slow
def test_small_cnn_learns_shapes():
    t0 = time.perf_counter()
    model, losses, test_accuracy = train()
    elapsed = time.perf_counter() - t0
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert test_accuracy >= 0.95, f"held-out accuracy {test_accuracy:.3f} after {elapsed:.1f} s"
    # The running statistics moved away from their initial values (0 and 1).
    bn = model[1]
    assert int(bn.num_batches_tracked.item()) == len(losses)
    assert np.abs(bn.running_mean.numpy()).max() > 1e-3
