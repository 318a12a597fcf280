"""What the U-Net's skip connections add: the same small U-Net trained with and without them.

    python benchmarks/bench_segmentation_skips.py [--epochs E] [--n-train N] [--out docs/img/segmentation_skips.png]

Both runs use the segment task's quick recipe (tinyvision.tasks.segment) with the same seed, data
and steps; only ``extra["skips"]`` differs (UNet2015(skips=False) drops the concatenations, so
each decoder level sees only the upsampled map from below). Prints the held-out mean foreground
Dice of both and saves image | true mask | with skips | without skips for a few held-out images.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the quick recipe's")
    parser.add_argument("--n-train", type=int, default=None, help="default: the quick recipe's")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "img",
                                                      "segmentation_skips.png"))
    args = parser.parse_args(argv)

    from tinyvision.engine import fit
    from tinyvision.tasks import get_task
    from tinyvision.viz.draw import draw_masks
    from tinyvision.viz.metrics import _require_matplotlib

    results = {}
    for skips in (True, False):
        task = get_task("segment")
        cfg = task.config(quick=True)
        cfg = dataclasses.replace(cfg, epochs=args.epochs or cfg.epochs, n_train=args.n_train or cfg.n_train,
                                  extra=dict(cfg.extra, skips=skips))
        t0 = time.time()
        with tempfile.TemporaryDirectory() as out_dir:
            history = fit(task, cfg, out_dir=out_dir, progress=False)
        results[skips] = (task, history)
        print(f"skips={skips}: mean foreground Dice {history.metrics['mean_fg_dice']:.4f}, "
              f"pixel accuracy {history.metrics['pixel_accuracy']:.4f}, {time.time() - t0:.0f} s")

    task, history = results[True]
    val = history.val_set
    n = 5
    images, targets = task.collate([val[i] for i in range(n)])
    preds = {s: results[s][0].predict(results[s][1].model, images) for s in (True, False)}
    Figure = _require_matplotlib()
    fig = Figure(figsize=(2.0 * n, 8.2), layout="constrained")
    axes = fig.subplots(4, n, squeeze=False)
    rows = ["image", "true mask", "U-Net with skips", "without skips"]
    for k in range(n):
        axes[0, k].imshow(np.clip(images[k].transpose(1, 2, 0), 0, 1), interpolation="nearest")
        axes[0, k].set_axis_off()
        blank = np.zeros_like(images[k])
        draw_masks(blank, np.asarray(targets[k]["mask"]), alpha=1.0, ax=axes[1, k], legend=False)
        draw_masks(blank, preds[True][k]["mask"], alpha=1.0, ax=axes[2, k], legend=False)
        draw_masks(blank, preds[False][k]["mask"], alpha=1.0, ax=axes[3, k], legend=False,
                   class_names=task.class_names if k == n - 1 else None)
    for r, name in enumerate(rows):
        axes[r, 0].set_title(name, fontsize=9, loc="left")
    d = {s: results[s][1].metrics["mean_fg_dice"] for s in (True, False)}
    fig.suptitle(f"held-out masks: with skips (Dice {d[True]:.3f}) vs without (Dice {d[False]:.3f}), "
                 f"same steps", fontsize="medium")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print("saved", os.path.abspath(args.out))


if __name__ == "__main__":
    main()
