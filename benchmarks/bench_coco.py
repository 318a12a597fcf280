"""COCO box evaluation: tinyvision vs pycocotools vs faster-coco-eval, same process.

Generates a seeded synthetic COCO set (default 5000 images, 20 categories, crowd regions,
every area range, jittered-gt detections plus false positives, ~30 detections per image),
then times, interleaved over a few repeats, the path from an in-memory result list to
accumulated precision/recall arrays:

* pycocotools:      COCO.loadRes + COCOeval.evaluate + accumulate
* faster-coco-eval: COCO.loadRes + COCOeval_faster.evaluate + accumulate
* tinyvision:       COCOEvaluator.evaluate (parses the result list, matches, accumulates)

The ground truth is indexed once, outside the timings, for all three. Stats must be
identical (pycocotools mode vs pycocotools, fixed mode vs faster-coco-eval). Memory: before
each run the garbage is collected, freed heap pages are returned to the OS and the kernel's
resident-set high-water mark is reset (Linux); "peak +MiB" is the largest rise of the resident
set above its level before the run (NumPy/Numba buffers included), max over the repeats.

    python benchmarks/bench_coco.py [--images 5000] [--repeats 3] [--skip-pycocotools]
"""
import argparse
import contextlib
import copy
import io
import logging
import statistics
import sys
import time

import numpy as np


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak():
    """Collect garbage, return freed heap pages to the OS and reset the kernel's resident-set
    high-water mark (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``); returns VmRSS in KiB,
    or None where that is not available."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmRSS")
    except OSError:
        return None


def _peak_since_mib(base_kib):
    """Peak resident memory added since :func:`_reset_peak` (MiB), NaN if unknown."""
    if base_kib is None:
        return float("nan")
    return (_status_kib("VmHWM") - base_kib) / 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--categories", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ref-repeats", type=int, default=1, help="repeats of pycocotools")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-pycocotools", action="store_true")
    args = ap.parse_args(argv)

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    import faster_coco_eval
    from faster_coco_eval import COCO as FCOCO, COCOeval_faster
    from tinyvision.metrics.coco import COCOEvaluator
    from tinyvision.metrics._coco_synth import synthetic_coco

    logging.getLogger("faster_coco_eval").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    gt, results = synthetic_coco(args.images, args.categories, seed=args.seed, gts_per_image=(2, 14),
                                 dets_per_gt=2.0, fp_per_image=(5, 22), crowd_fraction=0.05,
                                 empty_image_fraction=0.03)
    n_gt = len(gt["annotations"])
    print(f"dataset: {args.images} images, {args.categories} categories, {n_gt} gts "
          f"({sum(a['iscrowd'] for a in gt['annotations'])} crowd), {len(results)} detections "
          f"({len(results) / args.images:.1f}/image); generated in {time.perf_counter() - t0:.1f} s")
    print(f"versions: numpy {np.__version__}, pycocotools (installed), faster-coco-eval "
          f"{faster_coco_eval.__version__}")

    with _quiet():
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
    fcoco_gt = FCOCO(copy.deepcopy(gt))
    tv_eval = COCOEvaluator(gt)
    tv_fixed = COCOEvaluator(gt, mode="fixed")

    def run_pycocotools():
        with _quiet():
            dt = coco_gt.loadRes(copy.copy(results))
            e = COCOeval(coco_gt, dt, "bbox")
            e.evaluate()
            e.accumulate()
        return e

    def run_faster():
        dt = fcoco_gt.loadRes(copy.copy(results))
        e = COCOeval_faster(fcoco_gt, dt, "bbox", print_function=lambda *a, **k: None)
        e.evaluate()
        e.accumulate()
        return e

    def run_tv():
        return tv_eval.evaluate(results)

    def run_tv_fixed():
        return tv_fixed.evaluate(results)

    # warm-up (Numba compile or cache load) and correctness
    t0 = time.perf_counter()
    res = run_tv()
    print(f"tinyvision first call (includes Numba compile/cache load): {time.perf_counter() - t0:.2f} s")
    res_fixed = run_tv_fixed()
    runners = {"tinyvision": run_tv, "tinyvision-fixed": run_tv_fixed, "faster-coco-eval": run_faster}
    if not args.skip_pycocotools:
        runners["pycocotools"] = run_pycocotools

    results_by_name = {}
    peaks = {}
    times = {name: [] for name in runners}
    # interleaved repeats (pycocotools, ~40x slower, only --ref-repeats times); the result
    # list copies are shallow: loadRes adds keys to the dicts, which both references overwrite
    # with the same values, and tinyvision only reads them
    for rep in range(args.repeats):
        for name, fn in runners.items():
            if name == "pycocotools" and rep >= args.ref_repeats:
                continue
            results_by_name.pop(name, None)
            base = _reset_peak()
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            peaks[name] = max(peaks.get(name, 0.0), _peak_since_mib(base))
            results_by_name[name] = out
    med = {name: statistics.median(v) for name, v in times.items()}

    # identical stats and arrays
    fe = results_by_name["faster-coco-eval"]
    with _quiet():
        fe.print_function = lambda *a, **k: None
        fe.summarize()
    checks = {
        "fixed vs faster-coco-eval precision": np.array_equal(res_fixed.precision, fe.eval["precision"]),
        "fixed vs faster-coco-eval recall": np.array_equal(res_fixed.recall, fe.eval["recall"]),
        "fixed vs faster-coco-eval stats": np.array_equal(res_fixed.stats, np.asarray(fe.stats)),
    }
    if "pycocotools" in results_by_name:
        pe = results_by_name["pycocotools"]
        with _quiet():
            pe.summarize()
        checks.update({
            "tinyvision vs pycocotools precision": np.array_equal(res.precision, pe.eval["precision"]),
            "tinyvision vs pycocotools recall": np.array_equal(res.recall, pe.eval["recall"]),
            "tinyvision vs pycocotools scores": np.array_equal(res.scores, pe.eval["scores"]),
            "tinyvision vs pycocotools stats": np.array_equal(res.stats, np.asarray(pe.stats)),
        })
    print()
    print(res.summary())
    print()
    for name, ok in checks.items():
        print(f"identical  {name}: {ok}")

    print()
    print(f"{'evaluator':<18} {'median s':>9} {'runs (s)':<28} {'peak +MiB':>9}")
    for name in runners:
        runs = ", ".join(f"{t:.3f}" for t in times[name])
        print(f"{name:<18} {med[name]:>9.3f} {runs:<28} {peaks[name]:>9.1f}")
    print()
    if "pycocotools" in med:
        print(f"speed-up vs pycocotools:      {med['pycocotools'] / med['tinyvision']:6.1f}x")
    print(f"speed-up vs faster-coco-eval: {med['faster-coco-eval'] / med['tinyvision']:6.2f}x")
    ok = all(checks.values())
    print("all stats identical:", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
