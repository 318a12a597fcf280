"""Pictures of predictions: boxes and masks over an image, and loss curves.

Each function returns a matplotlib ``Figure`` built without pyplot (no global state, no GUI
backend), or draws into the ``ax`` given and returns its figure. Images may be (C, H, W) as the
models take them (C = 1 or 3, float in [0, 1]) or (H, W, C) / (H, W) as image files hold them
(uint8 or float); colours: one per class from matplotlib's "tab10" cycle.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .metrics import _figure_and_axes, _host

__all__ = ["draw_boxes", "draw_masks", "plot_losses", "to_hwc", "class_color", "image_grid"]


def image_grid(n: int, cell=(3.0, 3.2), max_cols: int = 4):
    """A Figure with ``n`` panels in rows of at most ``max_cols``, each ``cell`` inches (w, h),
    every axis switched off: ``(fig, axes)`` with ``axes`` a flat list of the first ``n`` panels."""
    from .metrics import _require_matplotlib

    Figure = _require_matplotlib()
    n = max(1, int(n))
    cols = min(n, max_cols)
    rows = -(-n // cols)                               # ceil(n / cols)
    fig = Figure(figsize=(cell[0] * cols, cell[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    return fig, list(axes[:n])


def to_hwc(image) -> np.ndarray:
    """``image`` as an (H, W, 3) float array in [0, 1] for ``imshow``.

    Rank 3 with a first axis of 1 or 3 is read as (C, H, W), the models' layout; other rank-3
    arrays as (H, W, C) (an alpha channel is dropped); uint8 is divided by 255, floats clipped
    to [0, 1].
    """
    a = _host(image)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = np.moveaxis(a, 0, -1)                     # (C, H, W) -> (H, W, C)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must be (C, H, W), (H, W, C) or (H, W) with C in (1, 3), got shape "
                         f"{tuple(_host(image).shape)}")
    a = a[:, :, :3]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    a = a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)
    return np.clip(a, 0.0, 1.0)


def class_color(label):
    """The colour of class ``label`` (RGB floats): tab10's ``label mod 10``-th colour."""
    from matplotlib import colormaps

    return colormaps["tab10"](int(label) % 10)[:3]


def _ink(background):
    """Black or white text, whichever reads on ``background`` (by its luminance)."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(background)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else "white"


def _name(label, class_names):
    if class_names is not None and 0 <= int(label) < len(class_names):
        return str(class_names[int(label)])
    return str(int(label))


def draw_boxes(image, boxes, labels=None, scores=None, class_names=None, ax=None, color=None,
               linestyle="-", title=None, score_format="{:.2f}"):
    """Boxes over an image, one rectangle each with "class score" written at its top-left corner.

    Args:
        image: (C, H, W) or (H, W, C) / (H, W) array; see :func:`to_hwc`. ``None`` draws on the
            current contents of ``ax`` (e.g. a second set of boxes over the first).
        boxes: (M, 4) in (x1, y1, x2, y2) pixels; M = 0 draws the image alone. A box with
            x2 < x1 or y2 < y1 (an untrained model's) is drawn between its corners; a
            non-finite one is skipped.
        labels: (M,) class indices (colour and name per class), or None.
        scores: (M,) confidences written after the name, or None.
        class_names: names indexed by label (labels are shown as numbers without it).
        ax: draw into this axes instead of a new figure.
        color: one colour for every box (e.g. "white" for the truth); default: by class.
        linestyle: e.g. "--" to tell the truth from the predictions.
        title: the axes title.

    Returns:
        the ``Figure``.
    """
    fig, (ax,) = _figure_and_axes(ax, figsize=(4, 4))
    from matplotlib.patches import Rectangle

    b = _host(boxes).astype(np.float64).reshape(-1, 4) if boxes is not None else np.zeros((0, 4))
    m = len(b)
    lab = None if labels is None else _host(labels).reshape(-1)
    sc = None if scores is None else _host(scores).astype(np.float64).reshape(-1)
    for name, arr in (("labels", lab), ("scores", sc)):
        if arr is not None and len(arr) != m:
            raise ValueError(f"draw_boxes: {name} has {len(arr)} entries for {m} boxes")
    # an untrained model may predict x2 < x1: draw it between its corners rather than fail
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
    if image is not None:
        ax.imshow(to_hwc(image), interpolation="nearest")
    for i in range(m):
        if not np.all(np.isfinite(b[i])):
            continue                                   # nothing to draw for a NaN box
        x1, y1, x2, y2 = b[i]
        c = color if color is not None else (class_color(lab[i]) if lab is not None else "yellow")
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=c, linewidth=1.5,
                               linestyle=linestyle))
        text = []
        if lab is not None:
            text.append(_name(lab[i], class_names))
        if sc is not None:
            text.append(score_format.format(sc[i]))
        if text:
            ax.text(x1, y1, " ".join(text), fontsize=7, color=_ink(c), va="bottom", ha="left",
                    bbox=dict(facecolor=c, alpha=0.75, edgecolor="none", pad=1))
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title, fontsize=9)
    return fig


def draw_masks(image, mask, alpha=0.5, class_names=None, ax=None, title=None, legend=True):
    """A mask laid over an image.

    Args:
        image: (C, H, W) or (H, W, C) / (H, W); see :func:`to_hwc`.
        mask: (H, W) integer class map (0 = background, left transparent; value v drawn in
            :func:`class_color` ``(v - 1)``, the colour draw_boxes uses for label v - 1), or
            (M, H, W) boolean instance masks (instance i in colour i).
        alpha: opacity of the colours over the image.
        class_names: names indexed by mask value (``class_names[0]`` is the background's), for the
            legend; with (M, H, W) masks, one name per instance.
        ax: draw into this axes instead of a new figure.

    Returns:
        the ``Figure``.
    """
    img = to_hwc(image)
    m = _host(mask)
    h, w = img.shape[:2]
    if m.ndim == 2:
        values = [int(v) for v in np.unique(m) if v != 0]
        layers = [(m == v, v - 1, v) for v in values]
    elif m.ndim == 3:
        layers = [(m[i].astype(bool), i, i) for i in range(m.shape[0])]
    else:
        raise ValueError(f"draw_masks: mask must be (H, W) class indices or (M, H, W) instance masks, "
                         f"got shape {tuple(m.shape)}")
    if m.shape[-2:] != (h, w):
        raise ValueError(f"draw_masks: mask is {tuple(m.shape[-2:])} but the image is {(h, w)}")
    if m.ndim == 2 and np.any(m < 0):
        raise ValueError("draw_masks: class indices must be >= 0 (0 = background)")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"draw_masks: alpha must be in [0, 1], got {alpha}")
    fig, (ax,) = _figure_and_axes(ax, figsize=(4, 4))
    out = img.copy()
    handles = []
    from matplotlib.patches import Patch

    for region, colour_index, name_index in layers:
        c = np.asarray(class_color(colour_index))
        out[region] = (1 - alpha) * out[region] + alpha * c
        handles.append(Patch(color=c, label=_name(name_index, class_names)))
    ax.imshow(out, interpolation="nearest")
    if legend and handles and class_names is not None:
        ax.legend(handles=handles, loc="lower right", fontsize=6, framealpha=0.7)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title, fontsize=9)
    return fig


def _steps(log):
    """The per-step rows of a loss log: a list of dicts, a History, or a log.jsonl path/run folder."""
    if hasattr(log, "steps"):
        return list(log.steps)
    if isinstance(log, (str, os.PathLike)):
        path = os.fspath(log)
        if os.path.isdir(path):
            path = os.path.join(path, "log.jsonl")
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    rows = list(log)
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or "loss" not in r:
            raise ValueError(f"plot_losses: log[{i}] must be a dict with a 'loss' entry, got {r!r}")
    return rows


def plot_losses(log, ax=None, title="Training loss", smooth=None, parts=True):
    """Loss against optimizer step: each row's ``loss`` and (``parts``) each named loss part.

    Args:
        log: the per-step rows ``fit`` writes — a list of dicts with "step" and "loss" (and the
            task's loss parts), a :class:`~tinyvision.engine.History`, or a ``log.jsonl`` path
            (or the run folder holding it).
        ax: draw into this axes instead of a new figure.
        smooth: window of the moving average drawn over the raw (faint) curve; default
            about 1/20 of the run (1 = none).
        parts: also draw the named parts (every numeric key but step/epoch/lr/grad_norm).

    Returns:
        the ``Figure``. Epoch boundaries are dotted vertical lines; the y axis is logarithmic
        when every value is positive.
    """
    rows = _steps(log)
    fig, (ax,) = _figure_and_axes(ax, figsize=(6, 4))
    if not rows:
        ax.text(0.5, 0.5, "no steps logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        return fig
    step = np.array([r.get("step", i + 1) for i, r in enumerate(rows)], dtype=np.float64)
    skip = {"step", "epoch", "lr", "grad_norm"}
    names = ["loss"] + ([k for k in rows[0] if k not in skip and k != "loss"
                         and isinstance(rows[0][k], (int, float))] if parts else [])
    k = smooth if smooth is not None else max(1, len(rows) // 20)
    all_positive = True
    from matplotlib import colormaps

    for i, name in enumerate(names):
        y = np.array([r.get(name, np.nan) for r in rows], dtype=np.float64)
        all_positive &= bool(np.all(y[np.isfinite(y)] > 0))
        c = "black" if name == "loss" else colormaps["tab10"](i % 10)
        width = 1.8 if name == "loss" else 1.2
        if k > 1 and len(y) >= k:
            ax.plot(step, y, color=c, alpha=0.25, linewidth=0.8)
            ys = np.convolve(y, np.ones(k) / k, mode="valid")
            ax.plot(step[k - 1:], ys, color=c, linewidth=width, label=name)
        else:
            ax.plot(step, y, color=c, linewidth=width, label=name)
    epochs = [r.get("epoch") for r in rows]
    for i in range(1, len(rows)):
        if epochs[i] != epochs[i - 1]:
            ax.axvline(step[i] - 0.5, color="grey", linestyle=":", linewidth=0.8)
    if all_positive:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig
