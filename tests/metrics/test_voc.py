"""Pascal VOC AP: golden hand-computed cases, a plain-loop port of the devkit's VOCevaldet.m /
VOCap / VOC2007 11-point loop, and Hypothesis invariants."""
import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision.metrics.voc as voc_module
from tinyvision.metrics import VOCEvaluator, voc_ap, voc_eval


# --------------------------------------------------------------------------------------
# Plain-loop reference, written from the devkit's description (one detection at a time)
# --------------------------------------------------------------------------------------
def devkit_ap(rec, prec, use_07):
    if use_07:
        ap = 0.0
        for i in range(11):
            t = i / 10
            ps = [p for r, p in zip(rec, prec) if r >= t]
            ap += (max(ps) if ps else 0.0) / 11
        return ap
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    ap = 0.0
    for i in range(1, len(mrec)):
        if mrec[i] != mrec[i - 1]:
            ap += (mrec[i] - mrec[i - 1]) * mpre[i]
    return ap


def devkit_eval_class(preds, targets, cls, thr=0.5, use_07=False, strict=False, off=1.0):
    gts = []
    npos = 0
    for t in targets:
        boxes = [list(map(float, b)) for b, l in zip(t["boxes"], t["labels"]) if l == cls]
        diff = [bool(d) for d, l in zip(t.get("difficult", [False] * len(t["labels"])),
                                        t["labels"]) if l == cls]
        npos += sum(not d for d in diff)
        gts.append({"BB": boxes, "diff": diff, "det": [False] * len(boxes)})
    dets = []  # (image, score, box) in the given order
    for i, p in enumerate(preds):
        for b, s, l in zip(p["boxes"], p["scores"], p["labels"]):
            if l == cls:
                dets.append((i, float(s), list(map(float, b))))
    dets = sorted(dets, key=lambda d: -d[1])  # Python's sort is stable, as MATLAB's
    tp, fp = [], []
    for i, _, bb in dets:
        ovmax, jmax = -math.inf, -1
        for j, g in enumerate(gts[i]["BB"]):
            iw = min(bb[2], g[2]) - max(bb[0], g[0]) + off
            ih = min(bb[3], g[3]) - max(bb[1], g[1]) + off
            if iw > 0 and ih > 0:
                ua = ((bb[2] - bb[0] + off) * (bb[3] - bb[1] + off)
                      + (g[2] - g[0] + off) * (g[3] - g[1] + off) - iw * ih)
                ov = iw * ih / ua
                if ov > ovmax:
                    ovmax, jmax = ov, j
        ok = ovmax > thr if strict else ovmax >= thr
        if ok:
            if gts[i]["diff"][jmax]:
                tp.append(0), fp.append(0)
            elif not gts[i]["det"][jmax]:
                tp.append(1), fp.append(0)
                gts[i]["det"][jmax] = True
            else:
                tp.append(0), fp.append(1)
        else:
            tp.append(0), fp.append(1)
    ctp = np.cumsum(tp).astype(float)
    cfp = np.cumsum(fp).astype(float)
    if npos == 0:
        return float("nan"), None, None
    rec = ctp / npos
    prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    return devkit_ap(rec, prec, use_07), rec, prec


def random_dataset(rng, n_images, n_classes, grid=False, max_gt=5, max_det=8):
    """Boxes on a coarse grid (many exact IoU ties and threshold hits) or continuous."""
    preds, targets = [], []
    for _ in range(n_images):
        g = int(rng.integers(0, max_gt + 1))
        d = int(rng.integers(0, max_det + 1))

        def boxes(k):
            if grid:
                xy = rng.integers(0, 6, (k, 2)) * 5.0
                wh = rng.integers(1, 4, (k, 2)) * 5.0 - 1
            else:
                xy = rng.uniform(0, 40, (k, 2))
                wh = rng.uniform(2, 25, (k, 2))
            return np.concatenate([xy, xy + wh], axis=1)

        gb = boxes(g)
        targets.append({"boxes": gb, "labels": rng.integers(0, n_classes, g),
                        "difficult": rng.random(g) < 0.2})
        # half the detections jitter a gt, half are anywhere
        db = boxes(d)
        if g:
            near = rng.random(d) < 0.5
            src = gb[rng.integers(0, g, d)]
            db[near] = src[near] + (0 if grid else rng.normal(0, 2, (d, 4))[near])
            db[:, 2:] = np.maximum(db[:, 2:], db[:, :2])
        scores = (rng.integers(0, 4, d) / 4.0) if grid else rng.random(d)
        preds.append({"boxes": db, "scores": scores, "labels": rng.integers(0, n_classes, d)})
    return preds, targets


# --------------------------------------------------------------------------------------
# voc_ap: golden values
# --------------------------------------------------------------------------------------
def test_voc_ap_golden_all_point():
    # points (0.5, 1), (0.5, 0.5), (1, 2/3): envelope 1 on (0, 0.5], 2/3 on (0.5, 1]
    assert voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 1 / 3, abs=1e-15)
    # a precision dip is filled by the envelope
    assert voc_ap([0.25, 0.25, 0.5, 0.75], [1.0, 0.5, 0.2, 0.6]) == pytest.approx(
        0.25 * 1.0 + 0.5 * 0.6, abs=1e-15)
    assert voc_ap([], []) == 0.0
    assert voc_ap([1.0], [1.0]) == 1.0


def test_voc_ap_golden_11_point():
    # recall 0.5 at precision 1, then 1.0 at 2/3: t=0..0.5 -> 1 (6 points), t=0.6..1 -> 2/3 (5)
    assert voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3], use_07_metric=True) == pytest.approx(
        (6 + 5 * 2 / 3) / 11, abs=1e-15)
    assert voc_ap([], [], use_07_metric=True) == 0.0


def test_voc_ap_exact_tenths_vs_arange():
    # recall exactly 3/10 counts at t = 0.3 with exact tenths but not with np.arange's
    # 0.30000000000000004 (py-faster-rcnn)
    rec, prec = [0.1, 0.2, 3 / 10], [1.0, 1.0, 1.0]
    assert voc_ap(rec, prec, True) == pytest.approx(4 / 11, abs=1e-15)
    assert voc_ap(rec, prec, True, tenths="arange") == pytest.approx(3 / 11, abs=1e-15)


@given(st.lists(st.tuples(st.integers(0, 20), st.floats(0, 1)), max_size=30), st.booleans())
def test_voc_ap_matches_plain_loop(points, use_07):
    rec = np.sort(np.array([p[0] / 20 for p in points]))
    prec = np.array([p[1] for p in points])
    got = voc_ap(rec, prec, use_07)
    assert got == pytest.approx(devkit_ap(rec, prec, use_07), abs=1e-12)
    assert 0.0 <= got <= 1.0 + 1e-12


# --------------------------------------------------------------------------------------
# voc_eval: golden cases
# --------------------------------------------------------------------------------------
def test_golden_duplicate_and_difficult():
    targets = [{"boxes": [[0, 0, 9, 9], [20, 0, 29, 9], [40, 0, 49, 9]], "labels": [0, 0, 0],
                "difficult": [False, False, True]}]
    preds = [{"boxes": [[0, 0, 9, 9],      # TP on gt 0
                        [0, 0, 9, 9],      # duplicate of gt 0 -> FP
                        [40, 0, 49, 9],    # on the difficult gt -> neither
                        [20, 0, 29, 9],    # TP on gt 1
                        [70, 70, 79, 79]],  # nothing -> FP
              "scores": [0.9, 0.8, 0.7, 0.6, 0.5], "labels": [0] * 5}]
    r = voc_eval(preds, targets)
    assert r.num_gt[0] == 2
    np.testing.assert_array_equal(r.recall[0], [0.5, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(r.precision[0], [1, 0.5, 0.5, 2 / 3, 0.5], rtol=0, atol=1e-15)
    # envelope: 1 on (0, .5], 2/3 on (.5, 1]
    assert r.ap[0] == pytest.approx(0.5 + 1 / 3, abs=1e-15)
    assert r.map == r.ap[0]


def test_golden_pixel_convention_and_threshold_equality():
    # gt 10x10 pixels (0..9); det shifted right by 10/3 pixels? use integers: det 0..9 x 5..14:
    # iw = 5, ih = 10 -> inter 50, union 150 -> IoU = 1/3 exactly representable? 50/150
    gt = [{"boxes": [[0, 0, 9, 9]], "labels": [0]}]
    det = [{"boxes": [[5, 0, 14, 9]], "scores": [1.0], "labels": [0]}]
    thr = 50 / 150
    assert voc_eval(det, gt, iou_threshold=thr).ap[0] == 1.0             # >= : a match
    assert voc_eval(det, gt, iou_threshold=thr, iou_comparison=">").ap[0] == 0.0
    # continuous convention: iw = 4, inter 36 (4 * 9), union 81 + 81 - 36 = 126
    r = voc_eval(det, gt, iou_threshold=36 / 126, pixel_offset=0.0)
    assert r.ap[0] == 1.0
    assert voc_eval(det, gt, iou_threshold=np.nextafter(36 / 126, 1), pixel_offset=0.0).ap[0] == 0


def test_argmax_does_not_fall_back_to_second_gt():
    # two gts; both detections overlap gt A best; the second is a duplicate FP even though it
    # overlaps gt B above the threshold (COCO would give it B)
    targets = [{"boxes": [[0, 0, 9, 9], [2, 0, 11, 9]], "labels": [0, 0]}]
    preds = [{"boxes": [[0, 0, 9, 9], [1, 0, 10, 9]], "scores": [0.9, 0.8], "labels": [0, 0]}]
    r = voc_eval(preds, targets)
    np.testing.assert_array_equal(r.recall[0], [0.5, 0.5])
    np.testing.assert_array_equal(r.precision[0], [1.0, 0.5])


def test_classes_are_separate_and_absent_class_is_nan():
    targets = [{"boxes": [[0, 0, 9, 9]], "labels": [1]}]
    preds = [{"boxes": [[0, 0, 9, 9], [0, 0, 9, 9]], "scores": [0.9, 0.95], "labels": [1, 2]}]
    r = voc_eval(preds, targets, num_classes=3)
    assert r.classes == [0, 1, 2]
    assert r.ap[1] == 1.0
    assert math.isnan(r.ap[0]) and math.isnan(r.ap[2])
    assert r.map == 1.0


def test_class_with_gts_but_no_detections_is_zero():
    targets = [{"boxes": [[0, 0, 9, 9]], "labels": [0]}, {"boxes": [[0, 0, 9, 9]], "labels": [1]}]
    preds = [{"boxes": [[0, 0, 9, 9]], "scores": [0.5], "labels": [0]},
             {"boxes": np.zeros((0, 4)), "scores": [], "labels": []}]
    r = voc_eval(preds, targets)
    assert r.ap == {0: 1.0, 1: 0.0}
    assert r.map == 0.5


def test_tie_order_is_stable_across_images():
    # equal scores: image 0's FP comes before image 1's TP (given order), so precision starts 0
    targets = [{"boxes": np.zeros((0, 4)), "labels": []}, {"boxes": [[0, 0, 9, 9]], "labels": [0]}]
    preds = [{"boxes": [[0, 0, 9, 9]], "scores": [0.5], "labels": [0]},
             {"boxes": [[0, 0, 9, 9]], "scores": [0.5], "labels": [0]}]
    r = voc_eval(preds, targets)
    np.testing.assert_array_equal(r.precision[0], [0.0, 0.5])
    assert r.ap[0] == 0.5
    r2 = voc_eval(preds[::-1], targets[::-1])
    np.testing.assert_array_equal(r2.precision[0], [1.0, 0.5])
    assert r2.ap[0] == 1.0


# --------------------------------------------------------------------------------------
# voc_eval against the plain loop
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("grid", [False, True], ids=["continuous", "grid-ties"])
@pytest.mark.parametrize("use_07", [False, True], ids=["all-point", "11-point"])
@pytest.mark.parametrize("strict", [False, True], ids=[">=", ">"])
def test_matches_devkit_plain_loop(grid, use_07, strict):
    rng = np.random.default_rng(7 + 2 * grid + use_07)
    for trial in range(12):
        preds, targets = random_dataset(rng, n_images=int(rng.integers(1, 6)), n_classes=3,
                                        grid=grid)
        thr = [0.5, 0.3, 0.7, 1 / 3][trial % 4]
        r = voc_eval(preds, targets, iou_threshold=thr, use_07_metric=use_07, num_classes=3,
                     iou_comparison=">" if strict else ">=")
        for c in range(3):
            ap, rec, prec = devkit_eval_class(preds, targets, c, thr, use_07, strict)
            if math.isnan(ap):
                assert math.isnan(r.ap[c])
                continue
            np.testing.assert_array_equal(r.recall[c], rec)
            np.testing.assert_array_equal(r.precision[c], prec)
            assert r.ap[c] == pytest.approx(ap, abs=1e-12)


def test_evaluator_accumulates_like_voc_eval(rng):
    preds, targets = random_dataset(rng, 6, 2)
    ev = VOCEvaluator(use_07_metric=True)
    ev.update(preds[:3], targets[:3])
    ev.update(preds[3:], targets[3:])
    a = ev.compute()
    b = voc_eval(preds, targets, use_07_metric=True)
    assert a.ap.keys() == b.ap.keys()
    np.testing.assert_array_equal(list(a.ap.values()), list(b.ap.values()))
    ev.reset()
    assert ev.compute().classes == []


# --------------------------------------------------------------------------------------
# Hypothesis invariants
# --------------------------------------------------------------------------------------
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=25)
@given(seeds, st.booleans())
def test_ap_in_unit_interval_and_perfect_is_one(seed, use_07):
    rng = np.random.default_rng(seed)
    preds, targets = random_dataset(rng, int(rng.integers(1, 5)), 2)
    r = voc_eval(preds, targets, use_07_metric=use_07)
    for v in r.ap.values():
        assert math.isnan(v) or -1e-12 <= v <= 1 + 1e-12
    # detections = the gts themselves (difficult dropped): AP 1 for every class with gts
    perfect = [{"boxes": t["boxes"], "scores": np.ones(len(t["labels"])), "labels": t["labels"]}
               for t in targets]
    r = voc_eval(perfect, targets, use_07_metric=use_07)
    for c, v in r.ap.items():
        assert math.isnan(v) or v == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=25)
@given(seeds)
def test_ap_invariant_to_permuting_distinct_scores(seed):
    rng = np.random.default_rng(seed)
    preds, targets = random_dataset(rng, int(rng.integers(1, 5)), 2)
    r = voc_eval(preds, targets)
    permuted = []
    for p in preds:
        k = rng.permutation(len(p["scores"]))
        permuted.append({key: np.asarray(v)[k] for key, v in p.items()})
    r2 = voc_eval(permuted, targets)
    # continuous scores are distinct with probability 1
    for c in r.ap:
        assert r.ap[c] == r2.ap[c] or (math.isnan(r.ap[c]) and math.isnan(r2.ap[c]))


@settings(max_examples=25)
@given(seeds, st.booleans(), st.booleans())
def test_lowest_scored_false_positive_never_raises_ap(seed, use_07, near_gt):
    """A detection scored below all others that is a false positive (it overlaps no gt, or
    duplicates a gt that a higher-scored detection took) never raises AP. (A lowest-scored
    *true* positive can: it adds recall.)"""
    rng = np.random.default_rng(seed)
    preds, targets = random_dataset(rng, int(rng.integers(1, 5)), 1)
    r = voc_eval(preds, targets, use_07_metric=use_07, num_classes=1)
    i = int(rng.integers(0, len(preds)))
    box = np.array([1000.0, 1000.0, 1010.0, 1010.0])
    if near_gt:
        # a copy of the best-scored detection: its gt (if any) is taken first -> duplicate FP,
        # or it is itself a FP / on a difficult gt (neither)
        p = preds[i]
        if len(p["scores"]):
            box = np.asarray(p["boxes"], dtype=float)[int(np.argmax(p["scores"]))]
    extra = [dict(p) for p in preds]
    extra[i] = {"boxes": np.vstack([np.asarray(preds[i]["boxes"]).reshape(-1, 4), box]),
                "scores": np.r_[preds[i]["scores"], -1.0],
                "labels": np.r_[preds[i]["labels"], 0].astype(int)}
    r2 = voc_eval(extra, targets, use_07_metric=use_07, num_classes=1)
    if not math.isnan(r.ap[0]):
        assert r2.ap[0] <= r.ap[0] + 1e-12


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
def test_bad_input_messages():
    ok_t = [{"boxes": [[0, 0, 9, 9]], "labels": [0]}]
    with pytest.raises(ValueError, match="one entry per image"):
        voc_eval([], ok_t)
    with pytest.raises(ValueError, match=r"preds\[0\]\['scores'\] must have shape \(1,\)"):
        voc_eval([{"boxes": [[0, 0, 9, 9]], "scores": [1, 2], "labels": [0]}], ok_t)
    with pytest.raises(ValueError, match="NaN"):
        voc_eval([{"boxes": [[0, 0, 9, 9]], "scores": [np.nan], "labels": [0]}], ok_t)
    with pytest.raises(ValueError, match=r"targets\[0\]\['boxes'\] must have shape \(N, 4\)"):
        voc_eval([{"boxes": [[0, 0, 9, 9]], "scores": [1], "labels": [0]}],
                 [{"boxes": [0, 0, 9], "labels": [0]}])
    with pytest.raises(ValueError, match="x2 < x1"):
        voc_eval([{"boxes": [[5, 0, 1, 9]], "scores": [1], "labels": [0]}], ok_t)
    with pytest.raises(ValueError, match="no 'labels' field"):
        voc_eval([{"boxes": [[0, 0, 9, 9]], "scores": [1]}], ok_t)
    with pytest.raises(ValueError, match="outside"):
        voc_eval([{"boxes": [[0, 0, 9, 9]], "scores": [1], "labels": [3]}], ok_t, num_classes=2)
    with pytest.raises(ValueError, match="same shape"):
        voc_ap([0.1, 0.2], [1.0])


def test_docstring_examples():
    assert doctest.testmod(voc_module, raise_on_error=False).failed == 0


# --------------------------------------------------------------------------------------
# Detection confusion matrix (tinyvision's definition, REFERENCE.md section 7)
# --------------------------------------------------------------------------------------
import tinyvision.metrics.detection_confusion as dcm_module  # noqa: E402
from tinyvision.metrics import detection_confusion_matrix  # noqa: E402


def loop_detection_confusion(preds, targets, k, thr, score_thr):
    cm = np.zeros((k + 1, k + 1), dtype=np.int64)
    for p, t in zip(preds, targets):
        dets = [(s, list(b), l) for b, s, l in zip(p["boxes"], p["scores"], p["labels"])
                if s >= score_thr]
        dets = sorted(dets, key=lambda d: -d[0])
        gts = [(list(b), l) for b, l in zip(t["boxes"], t["labels"])]
        taken = [False] * len(gts)
        for _, db, dl in dets:
            best, jbest = -1.0, -1
            for j, (gb, _) in enumerate(gts):
                if taken[j]:
                    continue
                iw = max(0.0, min(db[2], gb[2]) - max(db[0], gb[0]))
                ih = max(0.0, min(db[3], gb[3]) - max(db[1], gb[1]))
                u = ((db[2] - db[0]) * (db[3] - db[1]) + (gb[2] - gb[0]) * (gb[3] - gb[1])
                     - iw * ih)
                iou = iw * ih / u if u > 0 else 0.0
                if iou > best:
                    best, jbest = iou, j
            if jbest >= 0 and best >= thr:
                taken[jbest] = True
                cm[gts[jbest][1], dl] += 1
            else:
                cm[k, dl] += 1
        for j, (_, gl) in enumerate(gts):
            if not taken[j]:
                cm[gl, k] += 1
    return cm


def test_detection_confusion_golden_and_doc():
    # a dog detected as a cat, a missed cat, a phantom dog; a perfect cat
    targets = [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]],
                "labels": [1, 0, 0]}]
    preds = [{"boxes": [[0, 0, 10, 9], [40, 40, 50, 50], [70, 70, 80, 80]],
              "scores": [0.9, 0.8, 0.7], "labels": [0, 0, 1]}]
    cm = detection_confusion_matrix(preds, targets, num_classes=2)
    np.testing.assert_array_equal(cm, [[1, 0, 1], [1, 0, 0], [0, 1, 0]])
    # score threshold drops the phantom; IoU threshold above 0.9 loses the dog match
    cm = detection_confusion_matrix(preds, targets, 2, iou_threshold=0.95, score_threshold=0.75)
    np.testing.assert_array_equal(cm, [[1, 0, 1], [0, 0, 1], [1, 0, 0]])
    assert doctest.testmod(dcm_module).failed == 0


@settings(max_examples=25)
@given(seeds)
def test_detection_confusion_matches_loop_and_sums(seed):
    rng = np.random.default_rng(seed)
    preds, targets = random_dataset(rng, int(rng.integers(1, 4)), 3, grid=bool(seed % 2))
    thr, score_thr = float(rng.choice([0.3, 0.5, 0.7])), float(rng.choice([0.0, 0.5]))
    cm = detection_confusion_matrix(preds, targets, 3, thr, score_thr)
    np.testing.assert_array_equal(cm, loop_detection_confusion(preds, targets, 3, thr, score_thr))
    gl = np.concatenate([t["labels"] for t in targets]).astype(int)
    np.testing.assert_array_equal(cm[:3].sum(axis=1), np.bincount(gl, minlength=3))
    kept = np.concatenate([np.asarray(p["labels"])[np.asarray(p["scores"]) >= score_thr]
                           for p in preds]).astype(int)
    np.testing.assert_array_equal(cm[:, :3].sum(axis=0), np.bincount(kept, minlength=3))
    assert cm[3, 3] == 0
