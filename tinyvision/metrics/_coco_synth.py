"""Seeded synthetic COCO datasets for tests and benchmarks (not a metric).

:func:`synthetic_coco` draws a ground truth and a result list that exercise every branch of
the COCO evaluation: several categories, crowd regions, objects of every area range (and areas
exactly on the range boundaries 32**2 and 96**2), images without ground truth, categories
without detections, detections that are jittered ground truths plus false positives, score
ties, and more detections per image than maxDets.
"""
from __future__ import annotations

import numpy as np

__all__ = ["synthetic_coco", "reference_eval"]


def synthetic_coco(n_images=20, n_categories=4, seed=0, *, gts_per_image=(0, 8), dets_per_gt=1.0,
                   fp_per_image=(0, 6), crowd_fraction=0.08, empty_image_fraction=0.1,
                   absent_category=True, score_levels=None, boundary_areas=True,
                   integer_boxes=False, image_size=640, zero_id=False):
    """Returns ``(gt_dict, results_list)``.

    n_images, n_categories: sizes; category ids are 1, 3, 5, ... (not contiguous).
    gts_per_image: inclusive range of gts per image; empty_image_fraction of the images have none.
    dets_per_gt: expected number of jittered detections per gt (Poisson).
    fp_per_image: inclusive range of false positives (random boxes) per image.
    crowd_fraction: share of gts with iscrowd = 1 (large boxes).
    absent_category: the last category gets gts but no detections, and one extra category
        has neither.
    score_levels: if given, scores are drawn from this many distinct values (ties).
    boundary_areas: some gts get area exactly 32**2 or 96**2 (and some boxes w*h on them).
    integer_boxes: round box coordinates to integers.
    zero_id: give one annotation the id 0 (a pycocotools quirk).
    """
    rng = np.random.default_rng(seed)
    cat_ids = [2 * k + 1 for k in range(n_categories)]
    categories = [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in cat_ids]
    if absent_category:
        categories.append({"id": 2 * n_categories + 1, "name": "never", "supercategory": "thing"})
    det_cats = cat_ids[:-1] if (absent_category and n_categories > 1) else cat_ids
    images, anns, results = [], [], []
    ann_id = 0 if zero_id else 1
    img_ids = rng.permutation(np.arange(1, 3 * n_images + 1))[:n_images]  # unsorted, gaps
    for img_id in img_ids.tolist():
        images.append({"id": img_id, "width": image_size, "height": image_size,
                       "file_name": f"{img_id}.jpg"})
        n_gt = 0 if rng.random() < empty_image_fraction else int(rng.integers(gts_per_image[0],
                                                                             gts_per_image[1] + 1))
        img_gts = []
        for _ in range(n_gt):
            cat = int(rng.choice(cat_ids))
            crowd = bool(rng.random() < crowd_fraction)
            scale = rng.choice([8.0, 24.0, 48.0, 80.0, 160.0, 300.0])
            w = float(scale * rng.uniform(0.5, 1.5)) * (2.0 if crowd else 1.0)
            h = float(scale * rng.uniform(0.5, 1.5)) * (2.0 if crowd else 1.0)
            x = float(rng.uniform(0, image_size - min(w, image_size - 1)))
            y = float(rng.uniform(0, image_size - min(h, image_size - 1)))
            if integer_boxes:
                x, y, w, h = float(round(x)), float(round(y)), float(max(1, round(w))), float(max(1, round(h)))
            area = w * h * float(rng.uniform(0.6, 1.0))          # "mask" area below the box area
            if boundary_areas and rng.random() < 0.15:
                area = float(rng.choice([32.0 ** 2, 96.0 ** 2]))
                if rng.random() < 0.5:                            # box exactly on the boundary too
                    side = np.sqrt(area)
                    w = h = float(side)
            ann = {"id": ann_id, "image_id": img_id, "category_id": cat, "bbox": [x, y, w, h],
                   "area": area, "iscrowd": int(crowd)}
            ann_id += 1
            anns.append(ann)
            img_gts.append(ann)
        # detections: jittered gts
        for g in img_gts:
            if g["category_id"] not in det_cats:
                continue
            for _ in range(int(rng.poisson(dets_per_gt))):
                x, y, w, h = g["bbox"]
                j = rng.normal(0, 0.08, size=4) * np.array([w, h, w, h])
                if rng.random() < 0.1:
                    j[:] = 0.0                                     # an exact copy: IoU 1
                bw, bh = max(w + j[2], 0.5), max(h + j[3], 0.5)
                cat = g["category_id"] if rng.random() < 0.9 else int(rng.choice(det_cats))
                results.append({"image_id": img_id, "category_id": cat,
                                "bbox": [float(x + j[0]), float(y + j[1]), float(bw), float(bh)],
                                "score": 1.0})
        # false positives
        for _ in range(int(rng.integers(fp_per_image[0], fp_per_image[1] + 1))):
            scale = rng.choice([6.0, 20.0, 40.0, 90.0, 200.0])
            w = float(scale * rng.uniform(0.5, 1.5))
            h = float(scale * rng.uniform(0.5, 1.5))
            if boundary_areas and rng.random() < 0.05:
                w = h = float(rng.choice([32.0, 96.0]))
            results.append({"image_id": img_id, "category_id": int(rng.choice(det_cats)),
                            "bbox": [float(rng.uniform(0, image_size - w)), float(rng.uniform(0, image_size - h)),
                                     w, h], "score": 0.0})
    # scores: higher for the jittered ones on average; optionally from a few levels (ties)
    perm = rng.permutation(len(results))
    results = [results[i] for i in perm]
    for r in results:
        # jittered copies of gts (marked 1.0 above) score higher than false positives on average
        s = float(rng.uniform(0.3, 1.0) if r["score"] == 1.0 else rng.uniform(0.0, 0.7))
        if score_levels:
            s = float(np.floor(s * score_levels)) / score_levels
        r["score"] = s
    gt = {"info": {"description": "tinyvision synthetic"}, "images": images, "annotations": anns,
          "categories": categories}
    return gt, results


def reference_eval(gt, results, set_params=None, backend="pycocotools"):
    """Run pycocotools (or faster-coco-eval: ``backend="faster-coco-eval"``) on copies of
    ``gt`` and ``results``; returns the COCOeval object after evaluate/accumulate/summarize
    (``stats`` is None where summarize fails, e.g. fewer than three maxDets). Progress output is
    silenced. ``set_params(params)`` may edit the parameters first. A cross-check helper: the
    reference packages are imported here, on use, and are not tinyvision dependencies.
    """
    import contextlib
    import copy
    import io
    import logging

    gt = copy.deepcopy(gt)
    results = copy.deepcopy(results)
    with contextlib.redirect_stdout(io.StringIO()):
        if backend == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
            coco = COCO()
            coco.dataset = gt
            coco.createIndex()
            e = COCOeval(coco, coco.loadRes(results), "bbox")
        elif backend == "faster-coco-eval":
            import warnings
            from faster_coco_eval import COCO as FCOCO, COCOeval_faster
            logging.getLogger("faster_coco_eval").setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                coco = FCOCO(gt)
            e = COCOeval_faster(coco, coco.loadRes(results), "bbox",
                                print_function=lambda *a, **k: None)
        else:
            raise ValueError(f"backend must be 'pycocotools' or 'faster-coco-eval', got {backend!r}")
        if set_params is not None:
            set_params(e.params)
        e.evaluate()
        e.accumulate()
        try:
            e.summarize()
        except IndexError:
            e.stats = None
    return e
