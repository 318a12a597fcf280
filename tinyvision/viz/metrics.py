"""Metric plots (matplotlib, imported lazily). Each function returns the ``Figure``."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["plot_precision_recall", "plot_coco_precision_recall", "plot_recall_iou",
           "plot_confusion_matrix"]


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "tinyvision.viz needs matplotlib, an optional dependency: "
            "pip install 'tinyvision[plot]' (or pip install matplotlib)") from err
    return Figure


def _figure_and_axes(ax, nrows=1, ncols=1, figsize=None):
    """A new Figure with a grid of axes, or the figure of the ``ax`` given (one panel)."""
    Figure = _require_matplotlib()
    if ax is not None:
        if nrows * ncols != 1:
            raise ValueError(f"ax= draws one panel, but {nrows * ncols} were asked for")
        return ax.figure, [ax]
    fig = Figure(figsize=figsize or (5.0 * ncols, 4.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    return fig, axes


def _host(x):
    if type(x).__name__ == "Tensor" and hasattr(x, "numpy"):
        return x.numpy()
    if type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x)


def _curves(curves, kind):
    """Normalise ``curves`` to a list of (name, x, y) for plotting."""
    if hasattr(curves, "precision") and hasattr(curves, "recall") and isinstance(
            getattr(curves, "precision"), dict):
        # a VOCResult: one curve per class with gts
        ap = getattr(curves, "ap", {})
        out = []
        for c in curves.classes:
            if curves.num_gt.get(c, 0) == 0:
                continue
            name = f"class {c}" + (f" (AP {ap[c]:.3f})" if c in ap else "")
            out.append((name, curves.recall[c], curves.precision[c]))
        return out
    if isinstance(curves, tuple):
        curves = {"": curves}
    if not isinstance(curves, dict):
        raise TypeError(f"curves must be a dict name -> tuple, a tuple, or a VOCResult, got "
                        f"{type(curves).__name__}")
    out = []
    for name, value in curves.items():
        if not isinstance(value, (tuple, list)) or len(value) < 2:
            raise ValueError(f"curves[{name!r}] must be a tuple of arrays, got {type(value)}")
        a, b = _host(value[0]).astype(float).ravel(), _host(value[1]).astype(float).ravel()
        if a.shape != b.shape:
            raise ValueError(f"curves[{name!r}]: the two arrays must have the same shape, got "
                             f"{a.shape} and {b.shape}")
        # precision-recall tuples are (precision, recall[, thresholds]): x is recall
        out.append((str(name), b, a) if kind == "pr" else (str(name), a, b))
    return out


def plot_precision_recall(curves, ax=None, title="Precision-recall"):
    """Precision-recall curves, one line per entry.

    Args:
        curves: ``{name: (precision, recall[, thresholds])}`` — e.g. the output of
            :func:`tinyvision.metrics.precision_recall_curve` — or one such tuple, or a
            :class:`~tinyvision.metrics.VOCResult` (one curve per class with gts, AP in the label).
        ax: a matplotlib Axes to draw into (default: a new figure).

    Returns:
        matplotlib.figure.Figure
    """
    fig, (ax,) = _figure_and_axes(ax)
    for name, recall, precision in _curves(curves, "pr"):
        ax.plot(recall, precision, drawstyle="steps-post", label=name or None)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.05), title=title)
    if any(line.get_label() and not line.get_label().startswith("_") for line in ax.lines):
        ax.legend(loc="lower left", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def plot_coco_precision_recall(precision, iou_thresholds=None, rec_thresholds=None,
                               classes=None, area_index=0, maxdet_index=-1, iou_indices=None,
                               class_names=None, ax=None):
    """COCO precision-recall curves, one line per IoU threshold, from pycocotools' array.

    Args:
        precision (array[T, R, K, A, M]): ``COCOEvaluator(...).evaluate(...).precision`` (or the
            result object itself: its ``.precision`` and ``.params`` are used). -1 marks
            "no ground truth" and is left out.
        iou_thresholds (array[T]), rec_thresholds (array[R]): default the result's params, else
            ``linspace(.5, .95, 10)`` and ``linspace(0, 1, 101)``.
        classes (None, int or list[int]): None: one panel, the mean over the categories that
            have gts (as the AP stat averages); indices k: one panel per category k.
        area_index, maxdet_index: which area range (0 = all) and maxDets entry (-1 = last).
        iou_indices (list[int], optional): which thresholds to draw (default all T).
        class_names (list[str], optional): panel titles by category index.

    Returns:
        matplotlib.figure.Figure. The legend gives each curve's AP (mean over the R points).
    """
    params = getattr(precision, "params", None)
    if hasattr(precision, "precision"):
        precision = precision.precision
    p = _host(precision).astype(float)
    if p.ndim != 5:
        raise ValueError(f"precision must have shape (T, R, K, A, M), got {p.shape}")
    T, R, K, A, M = p.shape
    if iou_thresholds is None:
        iou_thresholds = getattr(params, "iouThrs", None)
        if iou_thresholds is None or len(iou_thresholds) != T:
            iou_thresholds = np.linspace(0.5, 0.95, 10) if T == 10 else np.arange(T)
    if rec_thresholds is None:
        rec_thresholds = getattr(params, "recThrs", None)
        if rec_thresholds is None or len(rec_thresholds) != R:
            rec_thresholds = np.linspace(0.0, 1.0, R)
    iou_thresholds, rec_thresholds = _host(iou_thresholds), _host(rec_thresholds)
    if len(iou_thresholds) != T or len(rec_thresholds) != R:
        raise ValueError(f"iou_thresholds ({len(iou_thresholds)}) and rec_thresholds "
                         f"({len(rec_thresholds)}) must match precision's T = {T} and R = {R}")
    if not (-A <= area_index < A and -M <= maxdet_index < M):
        raise ValueError(f"area_index {area_index} / maxdet_index {maxdet_index} out of range "
                         f"for A = {A}, M = {M}")
    sel = p[:, :, :, area_index, maxdet_index]                      # (T, R, K)
    iou_indices = range(T) if iou_indices is None else list(iou_indices)
    if classes is None:
        panels = [(None, "all categories")]
    else:
        ks = [classes] if np.isscalar(classes) else list(classes)
        for k in ks:
            if not -K <= k < K:
                raise ValueError(f"class index {k} out of range for K = {K} categories")
        cat_ids = getattr(params, "catIds", None)
        panels = [(k, class_names[k] if class_names is not None else
                   f"category {cat_ids[k] if cat_ids is not None and len(cat_ids) == K else k}")
                  for k in ks]
    n = len(panels)
    ncols = min(n, 3)
    fig, axes = _figure_and_axes(ax, math.ceil(n / ncols), ncols)
    for axis, (k, title) in zip(axes, panels):
        for t in iou_indices:
            if k is None:
                valid = sel[t] > -1                                     # (R, K)
                keep = valid.all(axis=0)                                # categories with gts
                if not keep.any():
                    continue
                curve = sel[t][:, keep].mean(axis=1)
            else:
                curve = sel[t, :, k]
                if np.all(curve == -1):
                    continue
            axis.plot(rec_thresholds, curve,
                      label=f"IoU={iou_thresholds[t]:.2f} (AP {curve.mean():.3f})")
        axis.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.05), title=title)
        if axis.lines:
            axis.legend(loc="lower left", fontsize="x-small")
        else:
            axis.text(0.5, 0.5, "no ground truth", ha="center", va="center",
                      transform=axis.transAxes)
        axis.grid(alpha=0.3)
    for axis in axes[n:]:
        axis.set_visible(False)
    return fig


def plot_recall_iou(curves, ax=None, title="Recall vs IoU"):
    """Recall-vs-IoU curves (Hosang et al. 2016, Fig. 5), one line per entry; the area under
    each curve over [0.5, 1], doubled, is the textbook AR (shown in the legend).

    Args:
        curves: ``{name: (iou_thresholds, recall)}`` — e.g. from
            :func:`tinyvision.metrics.recall_iou_curve` — or one such tuple.

    Returns:
        matplotlib.figure.Figure
    """
    fig, (ax,) = _figure_and_axes(ax)
    for name, o, r in _curves(curves, "iou"):
        upper = o >= 0.5
        label = name
        if upper.sum() >= 2 and not np.isnan(r[upper]).any():
            x, y = o[upper], r[upper]
            ar = 2 * float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
            label = f"{name} (AR ~ {ar:.3f})".strip()
        ax.plot(o, r, label=label or None)
    ax.axvspan(0.5, 1.0, color="0.9", zorder=0)
    ax.set(xlabel="IoU threshold", ylabel="recall", xlim=(0, 1), ylim=(0, 1.05), title=title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def plot_confusion_matrix(confusion_matrix, class_names=None, normalize=None, ax=None,
                          cmap="Blues", values=True, title="Confusion matrix"):
    """Heat map of a confusion matrix (rows: true class, columns: predicted class).

    Args:
        confusion_matrix (array[K, K]): counts, e.g. from
            :func:`tinyvision.metrics.confusion_matrix` or
            :func:`tinyvision.metrics.segmentation_confusion_matrix`.
        class_names (list[str], optional): tick labels.
        normalize (None, "true", "pred", "all"): show rates by row, column or overall.
        values (bool): write each cell's value (skipped above 30 classes).

    Returns:
        matplotlib.figure.Figure
    """
    cm = _host(confusion_matrix).astype(float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion_matrix must be square (K, K), got shape {cm.shape}")
    k = cm.shape[0]
    if class_names is not None and len(class_names) != k:
        raise ValueError(f"class_names has {len(class_names)} names for {k} classes")
    if normalize is not None:
        den = {"true": cm.sum(axis=1, keepdims=True), "pred": cm.sum(axis=0, keepdims=True),
               "all": np.full((1, 1), cm.sum())}.get(normalize)
        if den is None:
            raise ValueError(f'normalize must be None, "true", "pred" or "all", got {normalize!r}')
        cm = np.divide(cm, den, out=np.zeros_like(cm), where=den != 0)
    fig, (ax,) = _figure_and_axes(ax, figsize=(1.5 + 0.5 * max(k, 6), 1.0 + 0.5 * max(k, 6)))
    image = ax.imshow(cm, cmap=cmap, interpolation="nearest")
    fig.colorbar(image, ax=ax)
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    ax.set_xticks(range(k), names, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center")
    ax.set_yticks(range(k), names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if values and k <= 30:
        vmax = cm.max() if cm.size else 0.0
        for i in range(k):
            for j in range(k):
                text = f"{cm[i, j]:.2f}" if normalize else f"{cm[i, j]:g}"
                ax.text(j, i, text, ha="center", va="center", fontsize="small",
                        color="white" if vmax and cm[i, j] > 0.5 * vmax else "black")
    return fig
