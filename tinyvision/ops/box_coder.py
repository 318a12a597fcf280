"""Box coding: boxes as offsets from their anchors (torchvision's det_utils.BoxCoder).

The R-CNN parameterisation (Girshick et al. 2014, appendix C). For an anchor (proposal) with
width w_a, height h_a and centre (x_a, y_a) — centre = x1 + 0.5 w — and a ground-truth box g:

    encode:  dx = wx (x_g - x_a) / w_a     dy = wy (y_g - y_a) / h_a
             dw = ww log(w_g / w_a)         dh = wh log(h_g / h_a)
    decode:  x = dx / wx * w_a + x_a        w = exp(min(dw / ww, clip)) * w_a     (y, h likewise)
             box = (x - 0.5 w, y - 0.5 h, x + 0.5 w, y + 0.5 h)

with weights (wx, wy, ww, wh) = (1, 1, 1, 1) for RetinaNet and clip = log(1000 / 16)
= 4.135166556742356: decode clamps dw and dh **from above only** (so exp cannot overflow); there
is no clamp in encode and none from below. Operations in torchvision's order and dtype.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Tensor
from ..backend import get_array_module
from ._utils import check_real, unwrap, wrap

__all__ = ["BoxCoder", "BoxDecode", "encode_boxes"]

BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _check_weights(weights):
    w = tuple(float(v) for v in weights)
    if len(w) != 4:
        raise ValueError(f"weights must be four numbers (wx, wy, ww, wh), got {weights!r}")
    if any(v == 0 or not math.isfinite(v) for v in w):
        raise ValueError(f"weights must be finite and non-zero, got {weights!r}")
    return w


def encode_boxes(reference_boxes, proposals, weights):
    """Regression targets (N, 4) of ``reference_boxes`` (ground truth) w.r.t. ``proposals``
    (anchors), both (N, 4) in (x1, y1, x2, y2); ``weights`` (wx, wy, ww, wh). Raw arrays."""
    wx, wy, ww, wh = weights
    px1, py1, px2, py2 = (proposals[:, k : k + 1] for k in range(4))          # (N, 1) each
    gx1, gy1, gx2, gy2 = (reference_boxes[:, k : k + 1] for k in range(4))
    ex_widths = px2 - px1
    ex_heights = py2 - py1
    ex_ctr_x = px1 + 0.5 * ex_widths
    ex_ctr_y = py1 + 0.5 * ex_heights
    gt_widths = gx2 - gx1
    gt_heights = gy2 - gy1
    gt_ctr_x = gx1 + 0.5 * gt_widths
    gt_ctr_y = gy1 + 0.5 * gt_heights
    xp = get_array_module(reference_boxes, proposals)
    targets_dx = wx * (gt_ctr_x - ex_ctr_x) / ex_widths
    targets_dy = wy * (gt_ctr_y - ex_ctr_y) / ex_heights
    targets_dw = ww * xp.log(gt_widths / ex_widths)
    targets_dh = wh * xp.log(gt_heights / ex_heights)
    return xp.concatenate((targets_dx, targets_dy, targets_dw, targets_dh), axis=1)


class BoxDecode(Function):
    r"""Decode regression codes against boxes: differentiable in both.

    Shapes: rel_codes (N, 4K) (K boxes per anchor, codes (dx, dy, dw, dh) per box), boxes (N, 4)
    (x1, y1, x2, y2); output (N, 4K) (x1, y1, x2, y2 per box). Per anchor n and box k, with
    w = x2b - x1b, c = x1b + 0.5 w (the anchor's width and centre; y likewise),

        dx = code_x / wx,   dw' = min(code_w / ww, clip),   e = exp(dw'),   pw = e w
        px = dx w + c
        x1 = px - 0.5 pw,   x2 = px + 0.5 pw

    Backward (g1 = dL/dx1, g2 = dL/dx2 of one output box; y and h alike):

        d/dcode_x:  g(code_x) = (g1 + g2) w / wx
        d/dcode_w:  g(code_w) = (g2 - g1) 0.5 pw / ww  where code_w / ww < clip, else 0
                    (PyTorch >= 2.14's clamp passes no gradient at the bound itself)
        anchor, writing px, pw through (x1b, w):  dx1/dx1b = dx2/dx1b = 1 (through c),
                    dx1/dw = dx + 0.5 - 0.5 e,   dx2/dw = dx + 0.5 + 0.5 e,
        so  gw = sum_k [g1 (dx + 0.5 - 0.5 e) + g2 (dx + 0.5 + 0.5 e)],
            g(x1b) = sum_k (g1 + g2) - gw,   g(x2b) = gw          (since w = x2b - x1b)
    """

    def __init__(self, weights, clip):
        self.weights = weights
        self.clip = clip

    def forward(self, rel_codes, boxes):
        xp = get_array_module(rel_codes, boxes)
        boxes = boxes.astype(rel_codes.dtype, copy=False)
        wx, wy, ww, wh = self.weights
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        dx = rel_codes[:, 0::4] / wx                        # (N, K)
        dy = rel_codes[:, 1::4] / wy
        dw = rel_codes[:, 2::4] / ww
        dh = rel_codes[:, 3::4] / wh
        dw_c = xp.minimum(dw, dw.dtype.type(self.clip))     # clamp(max=clip), no lower clamp
        dh_c = xp.minimum(dh, dh.dtype.type(self.clip))
        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = xp.exp(dw_c) * widths[:, None]
        pred_h = xp.exp(dh_c) * heights[:, None]
        half_w = 0.5 * pred_w
        half_h = 0.5 * pred_h
        out = xp.stack(
            (pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), axis=2
        ).reshape(rel_codes.shape)                          # (N, K, 4) -> (N, 4K)
        self.save_for_backward(dx, dy, dw, dh, dw_c, dh_c, widths, heights)
        self.boxes_dtype = boxes.dtype
        return out

    def backward(self, gy):
        dx, dy, dw, dh, dw_c, dh_c, widths, heights = self.saved
        xp = get_array_module(gy)
        wx, wy, ww, wh = self.weights
        n, k = dx.shape
        g = gy.reshape(n, k, 4)
        g1x, g1y, g2x, g2y = g[:, :, 0], g[:, :, 1], g[:, :, 2], g[:, :, 3]
        ex = xp.exp(dw_c)
        ey = xp.exp(dh_c)
        w = widths[:, None]
        h = heights[:, None]
        g_codes = xp.empty((n, k, 4), dtype=gy.dtype)
        g_codes[:, :, 0] = (g1x + g2x) * w / wx
        g_codes[:, :, 1] = (g1y + g2y) * h / wy
        g_codes[:, :, 2] = xp.where(dw < self.clip, (g2x - g1x) * 0.5 * ex * w / ww, 0 * dw)
        g_codes[:, :, 3] = xp.where(dh < self.clip, (g2y - g1y) * 0.5 * ey * h / wh, 0 * dh)
        gw = (g1x * (dx + 0.5 - 0.5 * ex) + g2x * (dx + 0.5 + 0.5 * ex)).sum(axis=1)   # (N,)
        gh = (g1y * (dy + 0.5 - 0.5 * ey) + g2y * (dy + 0.5 + 0.5 * ey)).sum(axis=1)
        g_boxes = xp.stack(
            ((g1x + g2x).sum(axis=1) - gw, (g1y + g2y).sum(axis=1) - gh, gw, gh), axis=1
        ).astype(self.boxes_dtype)
        return g_codes.reshape(n, 4 * k), g_boxes


class BoxCoder:
    """Encode boxes as anchor-relative regression targets, and decode them back.

    Args:
        weights (tuple of 4 floats): (wx, wy, ww, wh); RetinaNet uses (1, 1, 1, 1).
        bbox_xform_clip (float): upper clamp on dw, dh before exp in decode (log(1000/16)).

    Arrays in -> arrays out, Tensors in -> Tensors out. ``decode_single`` on a Tensor is
    differentiable (see :class:`BoxDecode`), so box losses on decoded boxes (GIoU) train.

    >>> import numpy as np
    >>> coder = BoxCoder()
    >>> anchors = np.array([[0., 0., 10., 10.]])
    >>> codes = coder.encode_single(np.array([[1., 2., 11., 22.]]), anchors)
    >>> np.round(codes, 4)
    array([[0.1   , 0.7   , 0.    , 0.6931]])
    >>> coder.decode_single(codes, anchors)
    array([[ 1.,  2., 11., 22.]])
    """

    def __init__(self, weights=(1.0, 1.0, 1.0, 1.0), bbox_xform_clip: float = BBOX_XFORM_CLIP):
        self.weights = _check_weights(weights)
        self.bbox_xform_clip = float(bbox_xform_clip)

    def encode_single(self, reference_boxes, proposals):
        """Targets (N, 4) for ground-truth ``reference_boxes`` (N, 4) against ``proposals``
        (N, 4) (the anchors). Float dtypes as torchvision: each box set's own sizes and centres
        in its dtype (integers: float32), the result in the promoted dtype. No clamp; a
        zero-width box gives -inf / inf / NaN as in torchvision."""
        ref, t1 = unwrap(reference_boxes, "reference_boxes")
        prop, t2 = unwrap(proposals, "proposals")
        for arr, name in ((ref, "reference_boxes"), (prop, "proposals")):
            check_real(arr, name)
            if arr.ndim != 2 or arr.shape[1] != 4:
                raise ValueError(f"{name} must have shape (N, 4), got {tuple(arr.shape)}")
        if ref.shape[0] != prop.shape[0]:
            raise ValueError(
                f"reference_boxes {tuple(ref.shape)} and proposals {tuple(prop.shape)} must pair up one to one"
            )
        # Each input keeps its own float dtype (integers -> float32), so that, as in torchvision,
        # the anchors' widths and centres are computed in the anchors' dtype and only the
        # combination is promoted; the weights are taken in reference_boxes' dtype.
        ref = ref if ref.dtype.kind == "f" else ref.astype(np.float32)
        prop = prop if prop.dtype.kind == "f" else prop.astype(np.float32)
        weights = tuple(ref.dtype.type(w) for w in self.weights)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = encode_boxes(ref, prop, weights)
        return wrap(out, t1 or t2)

    def encode(self, reference_boxes, proposals):
        """Per-image lists: ``encode_single`` on the concatenation, split back per image."""
        if len(reference_boxes) != len(proposals):
            raise ValueError("reference_boxes and proposals must be lists of the same length")
        counts = [len(b) for b in reference_boxes]
        any_tensor = any(isinstance(b, Tensor) for b in list(reference_boxes) + list(proposals))
        refs = [unwrap(b, "reference_boxes")[0] for b in reference_boxes]
        props = [unwrap(b, "proposals")[0] for b in proposals]
        xp = get_array_module(*refs, *props)
        targets = self.encode_single(xp.concatenate(refs, axis=0), xp.concatenate(props, axis=0))
        splits = np.cumsum(counts)[:-1].tolist()
        parts = xp.split(targets, splits, axis=0)
        return [wrap(p, any_tensor) for p in parts]

    def decode_single(self, rel_codes, boxes):
        """Boxes (N, 4K) from codes (N, 4K) and anchors (N, 4), in rel_codes' dtype.

        dw, dh are clamped above at ``bbox_xform_clip`` (no lower clamp). A Tensor ``rel_codes``
        gives a differentiable Tensor result.
        """
        codes = rel_codes if isinstance(rel_codes, Tensor) else unwrap(rel_codes, "rel_codes")[0]
        anchors = boxes if isinstance(boxes, Tensor) else unwrap(boxes, "boxes")[0]
        cshape, bshape = tuple(codes.shape), tuple(anchors.shape)
        if len(cshape) != 2 or cshape[1] % 4 != 0:
            raise ValueError(f"rel_codes must have shape (N, 4K), got {cshape}")
        if len(bshape) != 2 or bshape[1] != 4:
            raise ValueError(f"boxes must have shape (N, 4), got {bshape}")
        if cshape[0] != bshape[0]:
            raise ValueError(f"rel_codes {cshape} and boxes {bshape} must have the same N")
        as_tensor = isinstance(rel_codes, Tensor) or isinstance(boxes, Tensor)
        cdata = codes.data if isinstance(codes, Tensor) else codes
        check_real(cdata, "rel_codes")
        if cdata.dtype.kind != "f":
            codes = cdata.astype(np.float32)
        fn = BoxDecode(self.weights, self.bbox_xform_clip)
        if as_tensor:
            return fn(codes, anchors)
        # Arrays: no graph is needed, run the arithmetic directly.
        bdata = anchors.astype(codes.dtype, copy=False)
        return fn.forward(codes, bdata)

    def decode(self, rel_codes, boxes):
        """torchvision's ``decode``: boxes is a list of per-image (N_i, 4) anchors; rel_codes
        (sum N_i, 4K) (or anything reshapeable to it). Returns (sum N_i, K, 4)."""
        if not isinstance(boxes, (list, tuple)):
            raise TypeError("boxes must be a list of per-image (N_i, 4) arrays")
        datas = [b.data if isinstance(b, Tensor) else unwrap(b, "boxes")[0] for b in boxes]
        xp = get_array_module(*datas)
        concat = xp.concatenate(datas, axis=0) if len(datas) != 1 else datas[0]
        if any(isinstance(b, Tensor) for b in boxes):
            concat = Tensor(concat)
        total = int(concat.shape[0])
        codes = rel_codes
        if total > 0:
            codes = codes.reshape(total, -1) if not isinstance(codes, Tensor) else _reshape(codes, (total, -1))
        pred = self.decode_single(codes, concat)
        if total > 0:
            pred = pred.reshape(total, -1, 4) if not isinstance(pred, Tensor) else _reshape(pred, (total, -1, 4))
        return pred


def _reshape(t, shape):
    """Reshape a Tensor through the functional core (differentiable)."""
    from .. import functional as F

    return F.reshape(t, shape)
