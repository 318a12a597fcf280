"""Architecture diagrams drawn from real model instances: the shapes on every arrow come from
running the model once on a zero image with forward hooks (``Module.register_forward_hook``),
so the picture is what the code computes, for whatever configuration the model was built with.

* :func:`plot_multihead` — backbone -> features -> class head (K scores) / localization head (4);
* :func:`plot_retinanet` — backbone C3..C5 -> FPN P3..P7 -> class and box subnets (their depth and
  width read off the heads), K·A and 4·A outputs per level;
* :func:`plot_unet` — the U: encoder stages down, decoder stages up, skip connections across.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

__all__ = ["trace_shapes", "plot_multihead", "plot_retinanet", "plot_unet"]


def _shape_of(out):
    if hasattr(out, "shape"):
        return tuple(out.shape)
    if isinstance(out, dict):
        return OrderedDict((k, _shape_of(v)) for k, v in out.items())
    if isinstance(out, (list, tuple)):
        return [_shape_of(v) for v in out]
    return None


def trace_shapes(model, inputs, names):
    """Run ``model(*inputs)`` under no_grad with forward hooks on the submodules ``names``
    (dotted, as ``named_modules``); returns ``{name: output shape}`` (nested for dict/list
    outputs). The last call of a submodule wins."""
    from ..autograd import no_grad

    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"trace_shapes: {type(model).__name__} has no submodule {missing[0]!r}")
    shapes, handles = {}, []
    for n in names:
        def hook(module, args, output, n=n):
            shapes[n] = _shape_of(output)
        handles.append(modules[n].register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return shapes


def _fmt(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _box(ax, x, y, w, h, title, sub="", color="#dae8fc"):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02",
                                facecolor=color, edgecolor="#333333", lw=0.8))
    ax.text(x, y + (0.12 * h if sub else 0), title, ha="center", va="center", fontsize=8.5, weight="bold")
    if sub:
        ax.text(x, y - 0.22 * h, sub, ha="center", va="center", fontsize=7.5, color="#333333")


def _arrow(ax, a, b, label=None, color="#555555"):
    ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="->", color=color, lw=1.1))
    if label:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.08, label, ha="center", va="bottom", fontsize=7,
                color="#1c4587")


def _canvas(size, xlim, ylim):
    from .metrics import _figure_and_axes

    fig, (ax,) = _figure_and_axes(None, figsize=size)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.axis("off")
    return fig, ax


def plot_multihead(model, image_shape=None):
    """A :class:`~tinyvision.models.MultiHead`: image -> backbone -> features, shared by the class
    head and the localization head. ``image_shape`` (N, C, H, W) defaults to the model's."""
    import tinyvision as tv

    if image_shape is None:
        hw = model.image_size or (64, 64)
        image_shape = (1, model.in_channels or 3, *hw)
    x = tv.tensor(np.zeros(image_shape, np.float32))
    s = trace_shapes(model, (x,), ["backbone", "class_head", "loc_head"])
    fig, ax = _canvas((8.5, 3.6), (0, 10), (0, 4))
    _box(ax, 1.0, 2.0, 1.6, 0.9, "image", _fmt(image_shape), "#fff2cc")
    _box(ax, 3.6, 2.0, 2.0, 1.0, "backbone", type(model.backbone).__name__)
    _box(ax, 6.6, 3.0, 1.9, 0.9, "class head", f"{type(model.class_head).__name__}")
    _box(ax, 6.6, 1.0, 1.9, 0.9, "localization head", f"{type(model.loc_head).__name__}")
    _box(ax, 9.0, 3.0, 1.6, 0.9, "class scores", _fmt(s["class_head"]), "#d9ead3")
    _box(ax, 9.0, 1.0, 1.6, 0.9, "box", f"{_fmt(s['loc_head'])} {model.box_format}", "#d9ead3")
    _arrow(ax, (1.8, 2.0), (2.6, 2.0))
    _arrow(ax, (4.6, 2.2), (5.65, 3.0))
    ax.text(4.75, 2.75, f"features\n{_fmt(s['backbone'])}", ha="right", va="bottom", fontsize=7, color="#1c4587")
    _arrow(ax, (4.6, 1.8), (5.65, 1.0))
    _arrow(ax, (7.55, 3.0), (8.2, 3.0))
    _arrow(ax, (7.55, 1.0), (8.2, 1.0))
    ax.text(5.0, 0.15, "loss = CE(class scores, y) + α · MSE(box, b)", ha="center", fontsize=8.5, style="italic")
    ax.set_title("Multi-head localization model: one backbone, two heads")
    return fig


def plot_retinanet(model, image_hw=(128, 128)):
    """A RetinaNet: backbone (C3..C5) -> FPN (P3..P7) -> class subnet and box subnet, applied to
    every level with shared weights; shapes from one eval-mode pass on a zero image."""
    import tinyvision as tv

    names = ["backbone.body", "backbone.fpn"] if "backbone.fpn" in dict(model.named_modules()) else ["backbone"]
    s = trace_shapes(model, ([tv.tensor(np.zeros((3, *image_hw), np.float32))],), names)
    body = s.get("backbone.body", OrderedDict())
    pyramid = s[names[-1]]
    cls = model.head.classification_head
    n_convs = sum(1 for m in cls.conv.modules() if type(m).__name__ == "Conv2d")
    width = next(m for m in cls.conv.modules() if type(m).__name__ == "Conv2d").out_channels
    A = model.anchor_generator.num_anchors_per_location()[0]
    K = cls.num_classes
    levels = list(pyramid.items())
    n = len(levels)
    fig, ax = _canvas((11, 1.2 + 1.0 * n), (0, 12), (-0.6, n + 0.4))
    for i, (name, shape) in enumerate(levels):
        y = n - 1 - i
        label = f"P{i + 3}" if n == 5 else f"level {name}"
        _box(ax, 4.6, y, 1.9, 0.75, f"FPN {label}", _fmt(shape), "#d9ead3")
        _box(ax, 7.6, y + 0.18, 2.2, 0.34, f"class subnet → K·A = {K}·{A}", "", "#fce5cd")
        _box(ax, 7.6, y - 0.2, 2.2, 0.34, f"box subnet → 4·A = {4 * A}", "", "#ead1dc")
        _arrow(ax, (5.55, y), (6.5, y))
        hw = shape[2] * shape[3]
        ax.text(10.0, y, f"{hw}·{A} = {hw * A} anchors", ha="left", va="center", fontsize=7.5)
    nb = len(body)
    for i in range(n - 1):
        y = n - 1 - i
        if i + 1 < nb:      # top-down path: the coarser level, upsampled 2x, is added in
            _arrow(ax, (4.2, y - 0.62), (4.2, y - 0.38), color="#38761d")
            ax.text(4.05, y - 0.5, "up ×2, +", ha="right", va="center", fontsize=6.5, color="#38761d")
        else:               # extra levels: a stride-2 conv of the level above (LastLevelP6P7)
            _arrow(ax, (5.0, y - 0.38), (5.0, y - 0.62), color="#38761d")
            ax.text(5.15, y - 0.5, "3x3 conv, stride 2", ha="left", va="center", fontsize=6.5, color="#38761d")
    for j, (name, shape) in enumerate(body.items()):
        y = n - 1 - j
        _box(ax, 1.6, y, 1.9, 0.75, f"backbone C{j + 3}", _fmt(shape))
        _arrow(ax, (2.55, y), (3.65, y))
    ax.text(7.6, n - 0.1, f"each subnet: {n_convs} × (3x3 conv {width} + ReLU), weights shared across levels",
            ha="center", fontsize=8, style="italic")
    ax.set_title(f"RetinaNet on a {image_hw[0]}×{image_hw[1]} image: backbone → FPN → two subnets per level")
    return fig


def _unet_levels(model, x):
    """[(name, shape)] of the encoder going down and the decoder going up, and the head's."""
    mods = dict(model.named_modules())
    if "encoder" in mods and "decoder" in mods:                      # smp's Unet
        k = len(model.decoder.blocks)
        s = trace_shapes(model, (x,), ["encoder", "segmentation_head"] + [f"decoder.blocks.{i}" for i in range(k)])
        enc = [(f"encoder f{i}", sh) for i, sh in enumerate(s["encoder"])][1:]
        dec = [(f"decoder {i}", s[f"decoder.blocks.{i}"]) for i in range(k)]
        return enc, dec, s["segmentation_head"]
    k = len(model.down)                                              # the 2015 paper's UNet
    s = trace_shapes(model, (x,), [f"down.{i}" for i in range(k)] + [f"up.{i}" for i in range(len(model.up))]
                     + ["head"])
    enc = [(f"2 × conv {i}", s[f"down.{i}"]) for i in range(k)]
    dec = [(f"up-conv {i}", s[f"up.{i}"]) for i in range(len(model.up))]
    return enc, dec, s["head"]


def plot_unet(model, image_shape=(1, 3, 64, 64)):
    """The U of a UNet (smp's ``Unet`` or the paper's ``UNet2015``): encoder stages going down
    (resolution halves), decoder stages coming up, each decoder stage joined by a skip from the
    encoder stage of the same size; shapes from one eval-mode pass."""
    import tinyvision as tv

    enc, dec, head = _unet_levels(model, tv.tensor(np.zeros(image_shape, np.float32)))
    depth = max(len(enc), len(dec) + 1)
    top = max(depth, len(dec)) + 0.6
    fig, ax = _canvas((10.5, 1.2 + 0.85 * top), (0, 13.5), (-0.6, top))
    _box(ax, 0.9, depth - 0.3, 1.4, 0.6, "image", _fmt(image_shape), "#fff2cc")
    pos_enc = {}
    for i, (name, shape) in enumerate(enc):
        x, y = 2.0 + 0.7 * i, depth - 1 - i
        _box(ax, x + 1.0, y, 2.0, 0.62, name, _fmt(shape))
        pos_enc[i] = (x + 1.0, y, shape)
        if i:
            px, py, _ = pos_enc[i - 1]
            _arrow(ax, (px, py - 0.31), (x + 1.0, y + 0.31))
        else:
            _arrow(ax, (1.6, depth - 0.3), (x, y + 0.1))
    last_x, last_y, _ = pos_enc[len(enc) - 1]
    prev = (last_x, last_y)
    for j, (name, shape) in enumerate(dec):
        y = last_y + 1 + j
        x = 11.0 - 0.7 * (j + 1) - 1.0
        _box(ax, x, y, 2.0, 0.62, name, _fmt(shape), "#d9ead3")
        _arrow(ax, (prev[0] + 0.4, prev[1] + 0.31), (x, y - 0.31))
        skip = [e for e in pos_enc.values() if tuple(e[2][2:]) == tuple(shape[2:]) and e[1] == y]
        if skip:                                                      # the encoder map of this size
            ex, ey, _ = skip[0]
            _arrow(ax, (ex + 1.0, ey), (x - 1.0, y), "skip: concat", color="#999999")
        prev = (x, y)
    _box(ax, prev[0] + 2.6, prev[1], 1.6, 0.6, "head", _fmt(head), "#fce5cd")
    _arrow(ax, (prev[0] + 1.0, prev[1]), (prev[0] + 1.8, prev[1]))
    ax.set_title(f"{type(model).__name__}: encoder down, decoder up, skips across (input {_fmt(image_shape)})")
    return fig
