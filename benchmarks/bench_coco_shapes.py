"""COCO box evaluation on unusual shapes: tinyvision (fixed mode) vs faster-coco-eval.

bench_coco.py times the standard case (5000 images, ~30 detections each). This one checks
that no other shape is pathologically slow: few images with thousands of detections each, an
LVIS-like 1000-category set (also class-agnostic, useCats = 0), and one category with a huge
maxDets. Each scenario runs tinyvision ``evaluate`` and faster-coco-eval
``loadRes + evaluate + accumulate + summarize`` interleaved in one process (medians) and
checks the 12 stats are identical.

    python benchmarks/bench_coco_shapes.py [--repeats 3]
"""
import argparse
import contextlib
import copy
import io
import logging
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import interleaved  # noqa: E402


def make(n_img, n_cat, gts_per_img, dets_per_img, seed=0):
    """A gt dict and a result list: gts of random size, detections half jittered gts (80%
    with the gt's category), half random boxes, uniform scores."""
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1} for i in range(n_img)]
    cats = [{"id": c + 1, "name": str(c)} for c in range(n_cat)]
    anns, dets = [], []
    for i in range(n_img):
        xy = rng.uniform(0, 500, (gts_per_img, 2))
        wh = rng.uniform(5, 150, (gts_per_img, 2))
        gcat = rng.integers(1, n_cat + 1, gts_per_img)
        crowd = rng.random(gts_per_img) < 0.02
        for k in range(gts_per_img):
            box = [float(xy[k, 0]), float(xy[k, 1]), float(wh[k, 0]), float(wh[k, 1])]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(gcat[k]),
                         "bbox": box, "area": box[2] * box[3] * 0.8, "iscrowd": int(crowd[k])})
        src = rng.integers(0, gts_per_img, dets_per_img)
        jitter = rng.normal(0, 0.15, (dets_per_img, 4))
        box = np.concatenate([xy[src] + jitter[:, :2] * wh[src], wh[src] * (1 + 0.3 * jitter[:, 2:])], axis=1)
        rand = rng.random(dets_per_img) < 0.5
        box[rand] = np.concatenate([rng.uniform(0, 500, (rand.sum(), 2)), rng.uniform(5, 150, (rand.sum(), 2))], axis=1)
        dcat = np.where(rng.random(dets_per_img) < 0.8, gcat[src], rng.integers(1, n_cat + 1, dets_per_img))
        score = rng.random(dets_per_img)
        dets += [{"image_id": i + 1, "category_id": int(c), "bbox": b, "score": float(s)}
                 for c, b, s in zip(dcat, box.tolist(), score)]
    return {"images": images, "categories": cats, "annotations": anns}, dets


SCENARIOS = [
    ("100 img x 2000 dets, 80 cats", dict(n_img=100, n_cat=80, gts_per_img=20, dets_per_img=2000), None),
    ("300 img x 300 dets, 1000 cats, maxDets 300", dict(n_img=300, n_cat=1000, gts_per_img=30,
                                                       dets_per_img=300, seed=1), dict(maxDets=[1, 10, 300])),
    ("same, useCats=0", dict(n_img=300, n_cat=1000, gts_per_img=30, dets_per_img=300, seed=1),
     dict(maxDets=[1, 10, 300], useCats=0)),
    ("20 img x 5000 dets, 1 cat, maxDets 10000", dict(n_img=20, n_cat=1, gts_per_img=50,
                                                     dets_per_img=5000, seed=2), dict(maxDets=[1, 100, 10000])),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    logging.getLogger("faster_coco_eval").setLevel(logging.ERROR)
    from faster_coco_eval import COCO as FCOCO, COCOeval_faster
    from tinyvision.metrics.coco import COCOEvaluator

    for name, shape, params in SCENARIOS:
        gt, dets = make(**shape)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            fgt = FCOCO(copy.deepcopy(gt))
        ev = COCOEvaluator(gt, mode="fixed")
        for k, v in (params or {}).items():
            setattr(ev.params, k, v)
        out = {}

        def run_tv():
            out["tv"] = ev.evaluate(dets).stats

        def run_fce():
            with contextlib.redirect_stdout(io.StringIO()):
                e = COCOeval_faster(fgt, fgt.loadRes(dets), "bbox", print_function=lambda *a, **k: None)
                for k, v in (params or {}).items():
                    setattr(e.params, k, v)
                e.evaluate()
                e.accumulate()
                e.summarize()
            out["fce"] = np.asarray(e.stats)

        t = interleaved({"tinyvision": run_tv, "faster-coco-eval": run_fce}, args.repeats, warmup=1)
        same = bool(np.array_equal(out["tv"], out["fce"]))
        print(f"{name:<44} tinyvision {t['tinyvision']:.3f} s  faster-coco-eval {t['faster-coco-eval']:.3f} s"
              f"  ({t['faster-coco-eval'] / t['tinyvision']:.1f}x)  stats identical: {same}", flush=True)


if __name__ == "__main__":
    main()
