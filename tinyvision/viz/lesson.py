"""The lesson's figures, computed by the code they illustrate (never drawn by hand).

Each ``plot_*`` builds a matplotlib Figure (no pyplot) from tinyvision's own functions — the IoU
from ``ops.box_iou``, the focal-loss curves from ``losses.sigmoid_focal_loss``, the anchors from
``ops.AnchorGenerator``, AP from ``COCOEvalResult.pr_curve``, AR from ``metrics.recall_iou_curve``,
Dice from ``losses.dice_loss`` — so every number printed on a figure is the code's.
:func:`lesson_figures` writes them all to a folder (``tinyvision figures --out DIR``).
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_iou", "plot_focal_loss", "plot_sliding_windows", "plot_ap_area", "plot_ar_area",
           "plot_dice_vs_ce", "plot_anchor_matches", "lesson_figures"]


def _axes(ax, figsize=(5.0, 4.0)):
    from .metrics import _figure_and_axes

    fig, axes = _figure_and_axes(ax, figsize=figsize)
    return fig, axes[0]


def plot_iou(box_a=(10, 10, 60, 50), box_b=(35, 25, 85, 75), ax=None):
    """Two boxes (x1, y1, x2, y2), their intersection shaded dark and their union light, with
    IoU = |A ∩ B| / |A ∪ B| printed (``ops.box_iou``)."""
    from matplotlib.patches import Rectangle

    from ..ops import box_iou

    a, b = np.asarray(box_a, np.float64), np.asarray(box_b, np.float64)
    iou = float(box_iou(a[None], b[None])[0, 0])
    fig, ax = _axes(ax)
    for box, color, name in ((a, "#4a86e8", "A"), (b, "#e69138", "B")):
        ax.add_patch(Rectangle(box[:2], *(box[2:] - box[:2]), facecolor=color, alpha=0.25, edgecolor=color, lw=2))
        corner = (box[0] + 2, box[1] + 2) if name == "A" else (box[2] - 2, box[3] - 2)
        ax.text(*corner, name, color=color, fontsize=12, weight="bold",
                va="top" if name == "A" else "bottom", ha="left" if name == "A" else "right")
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    if (rb > lt).all():
        ax.add_patch(Rectangle(lt, *(rb - lt), facecolor="#444444", alpha=0.6, hatch="//", edgecolor="black"))
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)
    lo, hi = np.minimum(a[:2], b[:2]) - 8, np.maximum(a[2:], b[2:]) + 8
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(hi[1], lo[1])                      # image coordinates: y grows downwards
    ax.set_aspect("equal")
    ax.set_title(f"IoU = |A∩B| / |A∪B| = {inter:g} / {union:g} = {iou:.3f}")
    return fig


def plot_focal_loss(gammas=(0.0, 0.5, 1.0, 2.0, 5.0), ax=None):
    """FL(p_t) = −(1 − p_t)^γ log p_t for several γ (the RetinaNet paper's Figure 1), evaluated
    by ``sigmoid_focal_loss`` itself with α disabled (α = −1) on logits whose sigmoid is p_t."""
    from ..losses import sigmoid_focal_loss

    p = np.linspace(0.005, 0.995, 397)
    logits = np.log(p) - np.log1p(-p)               # sigmoid(logit) = p_t for target 1
    fig, ax = _axes(ax, figsize=(6.0, 4.2))
    for g in gammas:
        fl = np.asarray(sigmoid_focal_loss(logits, np.ones_like(p), alpha=-1, gamma=float(g)))
        ax.plot(p, fl, label=f"γ = {g:g}")
    ax.axvspan(0.6, 1.0, color="#d9ead3", alpha=0.5, lw=0)
    ax.text(0.8, 4.3, "well-classified\nexamples", ha="center", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 5)
    ax.set_xlabel("probability of the true class  p_t")
    ax.set_ylabel("loss")
    ax.set_title("Focal loss −(1 − p_t)^γ log p_t  (γ = 0: cross-entropy)")
    ax.legend()
    return fig


def plot_sliding_windows(image_hw=(90, 180), grid_hw=(5, 9), sizes=(24, 40), aspect_ratios=(0.5, 2.0),
                         cell=(2, 4), ax=None):
    """The sliding-window idea: a feature map of ``grid_hw`` cells over an image, and at every
    cell the same A = len(sizes)·len(aspect_ratios) windows — the lesson's "4 windows × 45 cells
    = 180 anchors". Anchors from ``ops.AnchorGenerator`` (torchvision's placement: centred on
    each cell's top-left corner at stride image // grid); one cell's windows drawn bold."""
    from matplotlib.patches import Rectangle

    from ..ops import AnchorGenerator

    gen = AnchorGenerator(sizes=(tuple(sizes),), aspect_ratios=(tuple(aspect_ratios),))
    anchors = gen.anchors_for_image(tuple(image_hw), [tuple(grid_hw)])
    anchors = np.asarray(anchors[0] if isinstance(anchors, (list, tuple)) else anchors)
    a = gen.num_anchors_per_location()[0]
    gh, gw = grid_hw
    sy, sx = image_hw[0] // gh, image_hw[1] // gw
    fig, ax = _axes(ax, figsize=(8.0, 4.6))
    ax.add_patch(Rectangle((0, 0), image_hw[1], image_hw[0], facecolor="#f3f3f3", edgecolor="black"))
    for y in range(gh):
        for x in range(gw):
            ax.plot(x * sx, y * sy, "k.", ms=3)
    for box in anchors:
        ax.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, edgecolor="#9fc5e8", lw=0.5))
    k = (cell[0] * gw + cell[1]) * a                # rows ordered y, x, anchor
    for box in anchors[k:k + a]:
        ax.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, edgecolor="#cc0000", lw=2))
    ax.set_xlim(-30, image_hw[1] + 30)
    ax.set_ylim(image_hw[0] + 30, -30)
    ax.set_aspect("equal")
    ax.set_title(f"{a} windows × {gh * gw} cells ({gh}×{gw}) = {len(anchors)} anchors "
                 f"(stride {sy}×{sx}; one cell's windows in red)")
    return fig


def plot_ap_area(curve, ax=None, title=None):
    """One category's precision-recall points (``COCOEvalResult.pr_curve``), the interpolated
    envelope (precision made non-increasing from the right), and the area under the 101-point
    sampled envelope, which is AP."""
    fig, ax = _axes(ax, figsize=(5.5, 4.2))
    r = np.asarray(curve.rec_thrs)
    if curve.ap < 0:
        ax.text(0.5, 0.5, "no ground truth: AP = −1", ha="center")
        return fig
    ax.fill_between(r, curve.samples, step="post", color="#cfe2f3", label=f"area = AP = {curve.ap:.3f}")
    ax.plot(curve.recall, curve.precision, "o", ms=3, color="#999999", label="precision at each detection")
    ax.step(np.concatenate([[0.0], curve.recall]), np.concatenate([curve.envelope[:1], curve.envelope]),
            where="pre", color="#1155cc", label="interpolated (envelope)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title or "AP: the area under the interpolated precision-recall curve")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def plot_ar_area(preds, targets, ax=None, max_detections=None):
    """Recall as a function of the IoU threshold (``metrics.recall_iou_curve``) and the area over
    [0.5, 1] whose double is AR = 2 ∫_{0.5}^{1} recall(o) do (Hosang et al.), printed beside
    COCO's AR (the mean of recall at 0.50, 0.55, ..., 0.95)."""
    from ..metrics.recall import average_recall, recall_iou_curve

    t = np.linspace(0.5, 1.0, 101)
    curve = recall_iou_curve(preds, targets, iou_thresholds=t, max_detections=max_detections)
    rec = np.asarray(curve[1] if isinstance(curve, tuple) else curve)
    ar = float(average_recall(preds, targets, max_detections=max_detections))
    coco_ar = float(np.mean(np.interp(np.linspace(0.5, 0.95, 10), t, rec)))
    fig, ax = _axes(ax, figsize=(5.5, 4.2))
    ax.fill_between(t, rec, color="#d9ead3", label=f"AR = 2 × area = {ar:.3f}")
    ax.plot(t, rec, color="#38761d")
    ax.plot(np.linspace(0.5, 0.95, 10), np.interp(np.linspace(0.5, 0.95, 10), t, rec), "o", color="#274e13",
            ms=4, label=f"COCO's 10 thresholds: mean = {coco_ar:.3f}")
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("recall")
    ax.set_title("Average recall: the area under recall vs IoU")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def plot_dice_vs_ce(size=64, object_side=6, background_p=0.002, ax=None):
    """Why Dice for imbalanced masks: a ``size``² mask whose object covers object_side² pixels
    (under 1 %), background predicted at ``background_p``, and the object's probability swept
    from 0 to 1. Mean binary cross-entropy hardly moves (the object is a handful of pixels in
    the mean); the Dice loss 1 − 2Σpy/Σ(p + y) (``losses.dice_loss``) goes from ~1 to ~0."""
    from .. import functional as F
    from .. import tensor
    from ..losses import dice_loss

    y = np.zeros((size, size))
    o = (size - object_side) // 2
    y[o:o + object_side, o:o + object_side] = 1.0
    ts = np.linspace(0.01, 0.99, 99)
    ce, dice = [], []
    for t in ts:
        p = np.where(y == 1, t, background_p)
        ce.append(float(F.binary_cross_entropy(tensor(p), tensor(y)).item()))
        dice.append(float(dice_loss(tensor(p), y).item()))
    fig, ax = _axes(ax, figsize=(5.8, 4.2))
    ax.plot(ts, ce, label="binary cross-entropy (mean over pixels)")
    ax.plot(ts, dice, label="Dice loss 1 − 2Σpy / Σ(p + y)")
    ax.set_xlabel("predicted probability on the object's pixels")
    ax.set_ylabel("loss")
    ax.set_title(f"Imbalanced mask: object = {100 * y.mean():.1f} % of the pixels")
    ax.legend(fontsize=8)
    return fig


def plot_anchor_matches(image, gt_boxes, anchors, summary, ax=None, max_drawn=400):
    """One image's matching: the ground-truth boxes (thick) and the foreground anchors of
    ``summary`` (a :class:`~tinyvision.ops.matcher.MatchSummary` from ``Matcher.explain``),
    coloured by the gt they match; anchors restored as low-quality matches dashed. The title
    carries the foreground / ignored / background counts."""
    from matplotlib.patches import Rectangle

    fig, ax = _axes(ax, figsize=(5.2, 5.2))
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = img.transpose(1, 2, 0)
    ax.imshow(np.clip(img.squeeze(), 0, 1), cmap="gray" if img.ndim == 2 or img.shape[-1] == 1 else None)
    colors = ["#e06666", "#6aa84f", "#3d85c6", "#f1c232", "#8e7cc3", "#e69138"]
    anchors = np.asarray(anchors, dtype=np.float64)
    restored = set(np.asarray(summary.restored).tolist())
    fg = np.flatnonzero(np.asarray(summary.matches) >= 0)[:max_drawn]
    for a in fg:
        g = int(summary.matches[a])
        x1, y1, x2, y2 = anchors[a]
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=0.8, edgecolor=colors[g % len(colors)],
                               linestyle="--" if a in restored else "-", alpha=0.8))
    for g, (x1, y1, x2, y2) in enumerate(np.asarray(gt_boxes, dtype=np.float64)):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=2.5, edgecolor=colors[g % len(colors)]))
    ax.set_xlim(0, img.shape[1])
    ax.set_ylim(img.shape[0], 0)
    ax.set_title(f"{summary.n_foreground} foreground ({len(restored)} low-quality), {summary.n_ignored} ignored, "
                 f"{summary.n_background} background", fontsize=9)
    ax.axis("off")
    return fig


def _demo_detection():
    """A small fixed detection problem for the AP/AR figures: two images, ten boxes, jittered
    detections with a few false positives (seeded)."""
    rng = np.random.default_rng(3)
    images, annotations, results, preds, targets = [], [], [], [], []
    ann_id = 1
    for img in (1, 2):
        images.append({"id": img})
        gts = rng.uniform(0, 120, (5, 2))
        gts = np.concatenate([gts, gts + rng.uniform(20, 60, (5, 2))], axis=1)
        dts, scores = [], []
        for g in gts:
            annotations.append({"id": ann_id, "image_id": img, "category_id": 1, "iscrowd": 0,
                                "bbox": [g[0], g[1], g[2] - g[0], g[3] - g[1]],
                                "area": float((g[2] - g[0]) * (g[3] - g[1]))})
            ann_id += 1
            dts.append(g + rng.normal(0, 4, 4))
            scores.append(rng.uniform(0.3, 1.0))
        for _ in range(3):                            # false positives
            xy = rng.uniform(0, 150, 2)
            dts.append(np.concatenate([xy, xy + 25]))
            scores.append(rng.uniform(0.2, 0.9))
        for d, s in zip(dts, scores):
            results.append({"image_id": img, "category_id": 1, "bbox": [d[0], d[1], d[2] - d[0], d[3] - d[1]],
                            "score": float(s)})
        preds.append({"boxes": np.array(dts), "scores": np.array(scores), "labels": np.zeros(len(dts), int)})
        targets.append({"boxes": gts, "labels": np.zeros(len(gts), int)})
    gt = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "shape"}]}
    return gt, results, preds, targets


def _anchor_match_figure():
    """RetinaNet's matching on one synthetic detection image: anchors of P3-P7 (the default
    RetinaNet generator scaled to the 128-px image), Matcher(0.5, 0.4, low-quality on)."""
    from ..data.shapes import ShapesDetection
    from ..ops import AnchorGenerator, Matcher, box_iou

    image, target = ShapesDetection(1, image_size=128, seed=5, min_objects=3)[0]
    sizes = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in (8, 16, 32, 64, 128))
    gen = AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    grids = [(128 // s, 128 // s) for s in (8, 16, 32, 64, 128)]
    anchors = np.asarray(gen.anchors_for_image((128, 128), grids))
    summary = Matcher(0.5, 0.4, allow_low_quality_matches=True).explain(box_iou(target["boxes"], anchors))
    return plot_anchor_matches(image, target["boxes"], anchors, summary)


def _architecture_figures():
    """The three models of the lesson, drawn from instances (shapes from a forward pass)."""
    from ..models import multihead_small
    from ..models.detection import retinanet_resnet50_fpn
    from ..models.segmentation import Unet
    from .architecture import plot_multihead, plot_retinanet, plot_unet

    return {
        "architecture_multihead": plot_multihead(multihead_small(5)),
        "architecture_retinanet": plot_retinanet(retinanet_resnet50_fpn(num_classes=5, min_size=128, max_size=128),
                                                 (128, 128)),
        "architecture_unet": plot_unet(Unet("resnet34", classes=6), (1, 3, 64, 64)),
    }


def lesson_figures(out_dir) -> dict:
    """Write every lesson figure as a PNG into ``out_dir``; returns ``{name: path}``."""
    from ..metrics import COCOEvaluator

    os.makedirs(out_dir, exist_ok=True)
    gt, results, preds, targets = _demo_detection()
    res = COCOEvaluator(gt).evaluate(results)
    figures = {
        "iou": plot_iou(),
        "focal_loss": plot_focal_loss(),
        "sliding_windows": plot_sliding_windows(),
        "ap_area": plot_ap_area(res.pr_curve(1, iou_threshold=0.5),
                               title="AP@0.5 of a small detection set (COCO's 101-point rule)"),
        "ar_area": plot_ar_area(preds, targets),
        "dice_vs_ce": plot_dice_vs_ce(),
    }
    figures["anchor_matches"] = _anchor_match_figure()
    figures.update(_architecture_figures())
    paths = {}
    for name, fig in figures.items():
        path = os.path.join(out_dir, f"{name}.png")
        fig.savefig(path, dpi=110)
        paths[name] = path
    return paths
