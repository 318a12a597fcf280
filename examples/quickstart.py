"""Train a tiny MLP on a generated two-moons-like task with tinyvision, and print the loss.

Run: python examples/quickstart.py
"""
import numpy as np

import tinyvision as tv
import tinyvision.functional as F
from tinyvision import nn, optim


def make_data(n, rng):
    t = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.stack([np.cos(t) + label, np.sin(t) * (1 - 2 * label) + 0.5 * label], axis=1)
    return (x + 0.1 * rng.standard_normal(x.shape)).astype(np.float32), label


def main():
    rng = np.random.default_rng(0)
    tv.manual_seed(0)
    x, y = make_data(512, rng)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    for step in range(301):
        loss = F.cross_entropy(model(tv.tensor(x)), tv.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")
    with tv.no_grad():
        accuracy = (model(tv.tensor(x)).numpy().argmax(1) == y).mean()
    print(f"training accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
