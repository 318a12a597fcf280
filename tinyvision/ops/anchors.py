"""Anchor boxes over a feature pyramid (torchvision.models.detection.anchor_utils.AnchorGenerator).

How the anchors tile the image
------------------------------
For each pyramid level l with sizes S_l (e.g. 32, 40, 50) and aspect ratios R_l (h / w, e.g.
0.5, 1, 2), the *cell anchors* are A = |R_l| * |S_l| boxes centred on the origin:

    h_r = sqrt(r),  w_r = 1 / h_r                     (so w * h = s^2 and h / w = r)
    base = round([-w_r s, -h_r s, w_r s, h_r s] / 2)  (round half to even; computed in float32)

ordered ratio-major, size-minor: index a = ratio_index * |S_l| + size_index. For an image of
(padded) size (H_img, W_img) and a level's feature map of size (H, W), the stride per axis is
the integer division ``H_img // H`` (``W_img // W``), and the anchor of cell (y, x) is

    anchor[y, x, a] = base[a] + (x * stride_w, y * stride_h, x * stride_w, y * stride_h)

centred on the cell's top-left pixel, not on (x + 0.5) * stride as in Detectron. A level's
anchors are flattened y-major, then x, then a: row ``(y * W + x) * A + a`` — the order in which
a head's output (N, A*K, H, W) is flattened to (N, H*W*A, K). Levels are concatenated in order.

RetinaNet (Lin et al. 2017, https://arxiv.org/abs/1708.02002): levels P3-P7, sizes
``int(32 * 2^(k/3))``-style triples from 32 to 512 (three scales per octave), ratios 0.5, 1, 2:
nine anchors per location; :func:`retinanet_anchor_generator` builds it.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Tensor
from ..backend import get_array_module

__all__ = ["AnchorGenerator", "retinanet_anchor_generator"]


def _as_nested(values, name):
    try:
        nested = tuple(tuple(v) for v in values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of sequences of numbers") from None
    for level in nested:
        for v in level:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must hold numbers, got {v!r} in {level!r}")
    return nested


class AnchorGenerator:
    """Anchors for a set of feature maps (torchvision's AnchorGenerator).

    Args:
        sizes (tuple[tuple[float]]): anchor sizes (sqrt of the area, in pixels) per level.
            A flat tuple means one size per level, as in torchvision.
        aspect_ratios (tuple[tuple[float]]): ratios h / w per level; a flat tuple is used for
            every level.

    Attributes:
        cell_anchors (list of float32 arrays (A_l, 4)): the origin-centred base anchors.

    >>> gen = AnchorGenerator(sizes=((32,),), aspect_ratios=((0.5, 1.0, 2.0),))
    >>> gen.cell_anchors[0]
    array([[-23., -11.,  23.,  11.],
           [-16., -16.,  16.,  16.],
           [-11., -23.,  11.,  23.]], dtype=float32)
    >>> gen.anchors_for_image((64, 64), [(2, 2)]).shape
    (12, 4)
    """

    def __init__(self, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)):
        sizes = tuple(sizes)
        aspect_ratios = tuple(aspect_ratios)
        if len(sizes) == 0:
            raise ValueError("sizes must name at least one pyramid level")
        if not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)
        if len(aspect_ratios) == 0:
            raise ValueError("aspect_ratios must not be empty")
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (aspect_ratios,) * len(sizes)
        sizes = _as_nested(sizes, "sizes")
        aspect_ratios = _as_nested(aspect_ratios, "aspect_ratios")
        if len(sizes) != len(aspect_ratios):
            raise ValueError(
                f"sizes has {len(sizes)} levels but aspect_ratios has {len(aspect_ratios)}; "
                "give one tuple of each per feature map"
            )
        for lvl, (ss, rr) in enumerate(zip(sizes, aspect_ratios)):
            if not ss or not rr:
                raise ValueError(f"level {lvl}: sizes and aspect_ratios must be non-empty")
            if any(not (float(s) > 0 and math.isfinite(float(s))) for s in ss):
                raise ValueError(f"level {lvl}: sizes must be positive and finite, got {ss}")
            if any(not (float(r) > 0 and math.isfinite(float(r))) for r in rr):
                raise ValueError(f"level {lvl}: aspect_ratios must be positive and finite, got {rr}")
        self.sizes = sizes
        self.aspect_ratios = aspect_ratios
        self.cell_anchors = [self.generate_anchors(s, r) for s, r in zip(sizes, aspect_ratios)]

    @staticmethod
    def generate_anchors(scales, aspect_ratios, dtype=np.float32):
        """Origin-centred anchors (A, 4) for one level, ratio-major / size-minor, rounded.

        Computed in ``dtype`` (float32 by default) step for step as torchvision, so that the
        rounding of halves ties exactly as there: ``h = sqrt(r)``, ``w = 1 / h``,
        ``ws = w * s``, ``hs = h * s``, ``round([-ws, -hs, ws, hs] / 2)``.
        """
        scales = np.asarray(scales, dtype=dtype)
        ratios = np.asarray(aspect_ratios, dtype=dtype)
        h_ratios = np.sqrt(ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)   # (R * S,) ratio-major
        hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
        base = np.stack([-ws, -hs, ws, hs], axis=1) / 2
        return np.round(base)  # NumPy rounds halves to even, as torch.round

    def num_anchors_per_location(self):
        """Anchors per feature-map cell for each level: |sizes_l| * |ratios_l|."""
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def _cell_anchors(self, dtype, xp):
        # torchvision rounds the base anchors once, in float32 (at construction), and casts
        # them to the feature maps' dtype afterwards; regenerating them in float64 or float16
        # could round a half-integer the other way.
        return [xp.asarray(c.astype(dtype, copy=False)) for c in self.cell_anchors]

    def grid_anchors(self, grid_sizes, strides, dtype=np.float32, xp=np):
        """Anchors of each level: list of arrays (H_l * W_l * A_l, 4).

        grid_sizes: [(H_l, W_l)] feature-map sizes; strides: [(stride_h, stride_w)] in pixels.
        The arrays are consecutive views of one (sum_l H_l W_l A_l, 4) buffer, which is what
        :meth:`anchors_for_image` returns.
        """
        return self._grid_anchors(grid_sizes, strides, dtype, xp)[1]

    def _grid_anchors(self, grid_sizes, strides, dtype, xp):
        if not (len(grid_sizes) == len(strides) == len(self.cell_anchors)):
            raise ValueError(
                f"got {len(grid_sizes)} feature maps and {len(strides)} strides for an anchor "
                f"generator with {len(self.cell_anchors)} levels; they must match one to one"
            )
        cells = self._cell_anchors(dtype, xp)
        counts = [int(gh) * int(gw) * len(base) for (gh, gw), base in zip(grid_sizes, cells)]
        out = xp.empty((sum(counts), 4), dtype=cells[0].dtype)
        levels = []
        start = 0
        for (gh, gw), (sh, sw), base, count in zip(grid_sizes, strides, cells, counts):
            gh, gw, a = int(gh), int(gw), len(base)
            # anchor[y, x, a, c] = base[a, c] + (x * stride_w if c is x1 or x2, else y * stride_h).
            # Written as a sum of two small tables, so that one broadcast add fills the level:
            #   P[x, (a, c)] = x * stride_w on the x coordinates, 0 on the y ones     (W, A*4)
            #   Q[y, (a, c)] = base[a, c] + (y * stride_h on the y coordinates)       (H, A*4)
            # Every value gets exactly one rounding (the other term adds an exact 0), as torch's
            # float(int64 shift) + base. Shifts are integers, exact in float32 below 2**24.
            is_x = xp.asarray([1, 0, 1, 0], dtype=base.dtype)
            shift_x = (xp.arange(gw, dtype=np.int64) * int(sw)).astype(base.dtype)      # (W,)
            shift_y = (xp.arange(gh, dtype=np.int64) * int(sh)).astype(base.dtype)      # (H,)
            p = xp.broadcast_to(shift_x[:, None, None] * is_x, (gw, a, 4)).reshape(gw, a * 4)
            q = (base[None, :, :] + shift_y[:, None, None] * (1 - is_x)).reshape(gh, a * 4)
            level = out[start : start + count]
            # (1, W, A*4) + (H, 1, A*4) -> (H, W, A*4), i.e. rows ordered y, then x, then anchor
            xp.add(p[None, :, :], q[:, None, :], out=level.reshape(gh, gw, a * 4))
            levels.append(level)
            start += count
        return out, levels

    @staticmethod
    def strides_for(image_size, grid_sizes):
        """Stride per level and axis: ``image_size // feature_size`` (integer division)."""
        ih, iw = (int(v) for v in image_size)
        strides = []
        for gh, gw in grid_sizes:
            if int(gh) <= 0 or int(gw) <= 0:
                raise ValueError(f"feature map sizes must be positive, got {(gh, gw)}")
            strides.append((ih // int(gh), iw // int(gw)))
        return strides

    def anchors_for_image(self, image_size, feature_map_sizes, dtype=np.float32, xp=np):
        """All anchors of one (padded) image, levels concatenated: array (sum_l H_l W_l A_l, 4).

        image_size: (H_img, W_img); feature_map_sizes: [(H_l, W_l)] for each level.
        """
        grid_sizes = [tuple(int(v) for v in g) for g in feature_map_sizes]
        for g in grid_sizes:
            if len(g) != 2:
                raise ValueError(f"each feature map size must be (H, W), got {g}")
        strides = self.strides_for(image_size, grid_sizes)
        return self._grid_anchors(grid_sizes, strides, dtype, xp)[0]

    def __call__(self, images, feature_maps):
        """torchvision's forward: one anchor array per image of the batch.

        Args:
            images: the padded batch, an array or Tensor (N, C, H, W) — or an object with
                ``.tensors`` (that batch) and ``.image_sizes`` (torchvision's ImageList).
            feature_maps: list of arrays or Tensors (N, C_l, H_l, W_l), one per level.
        Returns:
            list of N arrays (sum_l H_l W_l A_l, 4) in the feature maps' float dtype (the
            float32 base anchors cast to it, then shifted, as torchvision; a Tensor
            per image when the feature maps are Tensors). Every image of a padded batch gets the
            same anchors (they depend only on the padded size).
        """
        batch = getattr(images, "tensors", images)
        data = batch.data if isinstance(batch, Tensor) else batch
        if len(data.shape) < 3:
            raise ValueError(f"images must be a batch (N, C, H, W), got shape {tuple(data.shape)}")
        n_images = len(images.image_sizes) if hasattr(images, "image_sizes") else data.shape[0]
        fms = [f.data if isinstance(f, Tensor) else f for f in feature_maps]
        as_tensor = any(isinstance(f, Tensor) for f in feature_maps)
        if not fms:
            raise ValueError("feature_maps is empty")
        dtype = fms[0].dtype if np.dtype(fms[0].dtype).kind == "f" else np.dtype(np.float32)
        xp = get_array_module(*fms)
        anchors = self.anchors_for_image(data.shape[-2:], [f.shape[-2:] for f in fms], dtype=dtype, xp=xp)
        out = [anchors.copy() for _ in range(n_images)]
        return [Tensor(a) for a in out] if as_tensor else out

    forward = __call__

    def __repr__(self):
        return f"AnchorGenerator(sizes={self.sizes}, aspect_ratios={self.aspect_ratios})"


def retinanet_anchor_generator(
    base_sizes=(32, 64, 128, 256, 512),
    scales=(1.0, 2 ** (1.0 / 3), 2 ** (2.0 / 3)),
    aspect_ratios=(0.5, 1.0, 2.0),
):
    """RetinaNet's anchors (torchvision's ``_default_anchorgen``): for base size x on P3..P7,
    sizes ``(int(x * s) for s in scales)`` = (32, 40, 50), (64, 80, 101), (128, 161, 203),
    (256, 322, 406), (512, 645, 812); ratios 0.5, 1, 2 — 9 anchors per location.

    >>> retinanet_anchor_generator().num_anchors_per_location()
    [9, 9, 9, 9, 9]
    """
    sizes = tuple(tuple(int(x * s) for s in scales) for x in base_sizes)
    return AnchorGenerator(sizes, (tuple(aspect_ratios),) * len(sizes))
