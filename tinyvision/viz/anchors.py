"""Draw the anchors of one feature-map location over an image.

Learners ask to *see* anchors: which boxes a single cell of P3 (or P7) proposes, how the three
aspect ratios and three scales look against an object. matplotlib is optional and imported only
when a picture is drawn.
"""
from __future__ import annotations

import numpy as np

__all__ = ["draw_anchors", "location_anchors"]


def _image_hw(image):
    """(H, W) and a displayable array (or None) from an image, a (H, W) tuple, or a Tensor."""
    if isinstance(image, tuple) and len(image) == 2 and all(isinstance(v, (int, np.integer)) for v in image):
        return (int(image[0]), int(image[1])), None
    arr = np.asarray(getattr(image, "data", image) if type(image).__name__ == "Tensor" else image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3):
        arr = np.transpose(arr, (1, 2, 0))          # CHW -> HWC
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W), (H, W, C) or (C, H, W), got shape {arr.shape}")
    return arr.shape[:2], arr


def _default_feature_sizes(image_hw, n_levels, first_stride=8):
    """Feature-map sizes of a pyramid with strides 8, 16, 32, ... (P3, P4, ...): ceil(H / s)."""
    h, w = image_hw
    return [(-(-h // (first_stride << l)), -(-w // (first_stride << l))) for l in range(n_levels)]


def location_anchors(generator, image_hw, feature_map_sizes, level, location):
    """The A anchors (A, 4) of cell ``location`` = (y, x) on pyramid ``level``."""
    grid = [tuple(int(v) for v in g) for g in feature_map_sizes]
    if not 0 <= level < len(grid):
        raise ValueError(f"level must be in [0, {len(grid) - 1}], got {level}")
    gh, gw = grid[level]
    y, x = location
    if not (0 <= y < gh and 0 <= x < gw):
        raise ValueError(f"location {(y, x)} is outside level {level}'s feature map of size {(gh, gw)}")
    strides = generator.strides_for(image_hw, grid)
    level_anchors = generator.grid_anchors(grid, strides)[level]
    a = generator.num_anchors_per_location()[level]
    start = (y * gw + x) * a                       # rows are ordered y, x, anchor
    return level_anchors[start : start + a]


def draw_anchors(image, generator=None, level=0, location=None, feature_map_sizes=None,
                 ax=None, path=None):
    """Draw the anchors of one location of one pyramid level over an image.

    Args:
        image: an image (H, W), (H, W, 3) or (3, H, W) (array or Tensor), or a size (H, W) for a
            blank canvas.
        generator (AnchorGenerator): default RetinaNet's (P3-P7, 9 anchors per location).
        level (int): pyramid level index (0 = P3 for RetinaNet).
        location (tuple[int, int]): the cell (y, x) on that level; default the centre cell.
        feature_map_sizes (list of (H_l, W_l)): default strides 8, 16, 32, ... (ceil division).
        ax: a matplotlib Axes to draw into; default a new Figure (no pyplot, no window).
        path: if given, the figure is saved there (PNG, SVG... by extension).
    Returns:
        the matplotlib Figure. Colours mark the aspect ratio; line styles the size.

    Requires matplotlib (``pip install 'tinyvision[plot]'``).
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("draw_anchors needs matplotlib: pip install 'tinyvision[plot]'") from exc
    from ..ops.anchors import retinanet_anchor_generator

    if generator is None:
        generator = retinanet_anchor_generator()
    (h, w), pixels = _image_hw(image)
    n_levels = len(generator.cell_anchors)
    if feature_map_sizes is None:
        feature_map_sizes = _default_feature_sizes((h, w), n_levels)
    gh, gw = (int(v) for v in feature_map_sizes[level])
    if location is None:
        location = (gh // 2, gw // 2)
    anchors = location_anchors(generator, (h, w), feature_map_sizes, level, location)

    if ax is None:
        fig = Figure(figsize=(6, 6 * h / max(w, 1)))
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    if pixels is not None:
        ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, extent=(0, w, h, 0))
    n_sizes = len(generator.sizes[level])
    colours = ["tab:red", "tab:green", "tab:blue", "tab:orange", "tab:purple", "tab:cyan"]
    styles = ["-", "--", ":", "-."]
    for a, (x1, y1, x2, y2) in enumerate(anchors.tolist()):
        r, s = divmod(a, n_sizes)                   # ratio-major, size-minor
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.5,
                               edgecolor=colours[r % len(colours)], linestyle=styles[s % len(styles)],
                               label=f"ratio {generator.aspect_ratios[level][r]:g}, size {generator.sizes[level][s]:g}"))
    strides = generator.strides_for((h, w), [tuple(int(v) for v in g) for g in feature_map_sizes])
    sy, sx = strides[level]
    cy, cx = location[0] * sy, location[1] * sx
    ax.plot([cx], [cy], "k+", markersize=10)
    lo_x = min(0.0, float(anchors[:, 0].min()))
    hi_x = max(float(w), float(anchors[:, 2].max()))
    lo_y = min(0.0, float(anchors[:, 1].min()))
    hi_y = max(float(h), float(anchors[:, 3].max()))
    ax.set_xlim(lo_x, hi_x)
    ax.set_ylim(hi_y, lo_y)                         # image convention: y grows downwards
    ax.set_aspect("equal")
    ax.set_title(f"level {level}, cell (y={location[0]}, x={location[1]}), stride {sy}x{sx}: "
                 f"{len(anchors)} anchors", fontsize=9)
    ax.legend(fontsize=6, loc="upper right")
    if path is not None:
        fig.savefig(path)
    return fig
