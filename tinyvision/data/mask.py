r"""COCO instance masks: run-length encoding and polygons, exactly as pycocotools defines them.

A COCO ``segmentation`` is one of

* **polygons** ``[[x0, y0, x1, y1, ...], ...]`` — the mask is the union of the polygons'
  rasterisations (:func:`polygon_to_counts`, pycocotools' ``rleFrPoly``);
* **uncompressed RLE** ``{"size": [h, w], "counts": [c0, c1, ...]}``;
* **compressed RLE** ``{"size": [h, w], "counts": "<string>"}`` (:func:`string_to_counts`).

RLE. The mask is read in column-major order (down the first column, then the next: index
``x * h + y``), and ``counts`` alternates run lengths of 0s and 1s, starting with 0s (so a mask
whose first pixel is set starts with a count of 0).

Compressed counts (pycocotools' ``rleToString``): from the fourth count on, each count is
replaced by its difference with the count two places earlier (``i > 2``, not ``i >= 2``: a
pycocotools detail kept here); each number is written in 5-bit groups, low group first, as the
characters ``chr(48 + group)`` with bit 0x20 meaning "more groups follow" and the sign taken
from bit 0x10 of the last group. Counts are 32-bit unsigned in pycocotools; decoding wraps
them the same way.

Polygon rasterisation (``rleFrPoly``), the rule that decides which pixels a polygon covers:
the vertices are scaled by 5 and rounded (``int(5 v + 0.5)``, truncating toward zero); each
edge is walked one step at a time along its longer axis (Bresenham-like, rounding the other
coordinate); every unit step in x whose lower end ``u`` satisfies ``(u + 0.5) / 5 - 0.5 = x``
for an integer column ``x`` in [0, w) records a boundary crossing at row
``ceil((v + 0.5) / 5 - 0.5)`` (clamped to [0, h]); sorted, the crossings toggle the mask along
the column-major order. In effect column ``x`` is sampled at the polygon coordinate ``x``
(pycocotools puts pixel centres at integer coordinates for polygons) and row ``y`` is covered
between crossings ``y_top <= y < y_bottom``.

Consequence used by :func:`mask_to_polygons`: the outline of a set of pixels traced along pixel
edges (corners at integer coordinates) rasterises back to exactly that set, as long as the set
has no holes (a COCO polygon list is a union, so it cannot express a hole).

Deliberate differences (errors here, where pycocotools reads out of bounds or silently
truncates): polygons with an odd number or fewer than 6 coordinates, RLE counts that do not
sum to ``h * w``, an RLE size that differs from the image's. (pycocotools 2.0.11 dispatches a
polygon list whose first polygon has exactly 4 numbers to its box reader, which raises a
TypeError on a list: such a file is unreadable there too.)

>>> import numpy as np
>>> m = np.array([[0, 1, 1],
...               [0, 1, 0]], dtype=np.uint8)
>>> mask_to_counts(m)            # column-major: 0 0 | 1 1 1 | 0
[2, 3, 1]
>>> rle_encode(m)
{'size': [2, 3], 'counts': '231'}
>>> mask_to_polygons(m)          # the outline along pixel edges, clockwise on screen
[[1.0, 0.0, 3.0, 0.0, 3.0, 1.0, 2.0, 1.0, 2.0, 2.0, 1.0, 2.0]]
>>> bool((segmentation_to_mask(mask_to_polygons(m), 2, 3) == m).all())
True
"""
from __future__ import annotations


import numpy as np

__all__ = ["rle_encode", "rle_decode", "mask_to_counts", "counts_to_mask", "counts_to_string",
           "string_to_counts", "polygon_to_counts", "polygons_to_mask", "segmentation_to_mask",
           "mask_to_polygons", "MaskFormatError"]

_UINT32 = 0xFFFFFFFF


class MaskFormatError(ValueError):
    """A malformed COCO segmentation (the message names what is wrong)."""


# --------------------------------------------------------------------------------------
# Uncompressed RLE <-> mask
# --------------------------------------------------------------------------------------
def mask_to_counts(mask):
    """(h, w) mask -> run lengths in column-major order, starting with the 0s (pycocotools' rleEncode)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise MaskFormatError(f"mask_to_counts: mask must be (h, w), got shape {mask.shape}")
    flat = (mask.T.reshape(-1) != 0).astype(np.int8)          # column-major
    # positions where the value changes, with a virtual 0 before the first pixel
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat])) != 0)
    edges = np.concatenate([[0], change, [flat.size]])
    return np.diff(edges).astype(np.int64).tolist()


def counts_to_mask(counts, height, width):
    """Run lengths (0s first, column-major) -> (height, width) uint8 mask."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if np.any(counts < 0):
        raise MaskFormatError(f"RLE counts must be non-negative, got {counts[counts < 0][:3].tolist()}")
    if int(counts.sum()) != height * width:
        raise MaskFormatError(f"RLE counts sum to {int(counts.sum())}, not size h*w = {height}*{width} = "
                              f"{height * width}")
    values = (np.arange(len(counts)) % 2).astype(np.uint8)      # 0, 1, 0, 1, ...
    flat = np.repeat(values, counts)
    return np.ascontiguousarray(flat.reshape(width, height).T)


# --------------------------------------------------------------------------------------
# Compressed counts (pycocotools' rleToString / rleFrString)
# --------------------------------------------------------------------------------------
def counts_to_string(counts):
    """Run lengths -> pycocotools' compressed string."""
    counts = [int(c) & _UINT32 for c in counts]
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            group = x & 0x1F
            x >>= 5                                         # arithmetic shift, as on a C long
            more = (x != -1) if (group & 0x10) else (x != 0)
            if more:
                group |= 0x20
            out.append(chr(group + 48))
    return "".join(out)


def string_to_counts(s):
    """pycocotools' compressed string (str or bytes) -> list of run lengths (uint32 arithmetic)."""
    if isinstance(s, (bytes, bytearray)):
        s = s.decode("ascii")
    counts = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise MaskFormatError(f"compressed RLE string ends inside a number at character {p}: {s[:40]!r}")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise MaskFormatError(f"compressed RLE string has the character {s[p]!r} (outside '0'..'o') "
                                      f"at position {p}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)                           # sign-extend the last group
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x & _UINT32)                           # (uint) x
    return counts


def rle_encode(mask):
    """(h, w) mask -> ``{"size": [h, w], "counts": str}``, pycocotools' ``mask.encode`` (as str)."""
    mask = np.asarray(mask)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts_to_string(mask_to_counts(mask))}


def rle_decode(rle):
    """An RLE dict (compressed or uncompressed counts) -> (h, w) uint8 mask."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise MaskFormatError(f"an RLE must be a dict with 'size' and 'counts', got {str(rle)[:80]}")
    size = rle["size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and v >= 0 for v in size)):
        raise MaskFormatError(f"RLE 'size' must be [height, width] integers, got {size!r}")
    h, w = int(size[0]), int(size[1])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes, bytearray)):
        counts = string_to_counts(counts)
    elif not isinstance(counts, (list, tuple, np.ndarray)):
        raise MaskFormatError(f"RLE 'counts' must be a string or a list of integers, got {type(counts).__name__}")
    return counts_to_mask(counts, h, w)


# --------------------------------------------------------------------------------------
# Polygons (pycocotools' rleFrPoly)
# --------------------------------------------------------------------------------------
def _c_int(v):
    """C's (int) cast of a double: truncation toward zero."""
    return np.trunc(v).astype(np.int64)


def polygon_to_counts(xy, height, width):
    """Rasterise one polygon ``[x0, y0, x1, y1, ...]`` -> uncompressed RLE counts (rleFrPoly)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1)
    k = len(xy) // 2
    scale = 5.0
    x = _c_int(scale * xy[0:2 * k:2] + 0.5)
    y = _c_int(scale * xy[1:2 * k:2] + 0.5)
    x, y = np.append(x, x[0]), np.append(y, y[0])                # close the outline
    us, vs = [], []
    for j in range(k):                                           # walk edge j point by point
        xs, xe, ys, ye = int(x[j]), int(x[j + 1]), int(y[j]), int(y[j + 1])
        dx, dy = abs(xe - xs), abs(ys - ye)
        flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
        if flip:                                                 # step from the lower end ...
            xs, xe, ys, ye = xe, xs, ye, ys
        if dx >= dy:
            s = (ye - ys) / dx if dx else 0.0
            t = np.arange(dx + 1)
            t = dx - t if flip else t                            # ... but list points in edge order
            us.append(t + xs)
            vs.append(_c_int(ys + s * t + 0.5))
        else:
            s = (xe - xs) / dy
            t = np.arange(dy + 1)
            t = dy - t if flip else t
            vs.append(t + ys)
            us.append(_c_int(xs + s * t + 0.5))
    u, v = np.concatenate(us), np.concatenate(vs)
    # boundary crossings: each unit step in x at a pixel-centre column
    step = np.flatnonzero(u[1:] != u[:-1]) + 1
    lower_u = np.where(u[step] < u[step - 1], u[step], u[step] - 1).astype(np.float64)
    xd = (lower_u + 0.5) / scale - 0.5
    ok = (np.floor(xd) == xd) & (xd >= 0) & (xd <= width - 1)
    yd = (np.minimum(v[step], v[step - 1]).astype(np.float64) + 0.5) / scale - 0.5
    yd = np.ceil(np.clip(yd, 0, height))
    positions = (xd[ok].astype(np.int64) * height + yd[ok].astype(np.int64))
    # toggles at the sorted positions -> run lengths; a zero run merges its neighbours
    a = np.sort(np.append(positions, height * width))
    a = np.diff(np.concatenate([[0], a])).tolist()
    counts = [a[0]]
    j = 1
    while j < len(a):
        if a[j] > 0:
            counts.append(a[j])
            j += 1
        else:
            j += 1
            if j < len(a):
                counts[-1] += a[j]
                j += 1
    return counts


def polygons_to_mask(polygons, height, width):
    """The union of COCO polygons -> (height, width) uint8 mask (pycocotools' frPyObjects + merge)."""
    if not isinstance(polygons, (list, tuple)) or len(polygons) == 0:
        raise MaskFormatError(f"polygons must be a non-empty list of [x0, y0, x1, y1, ...] lists, got {polygons!r:.80}")
    mask = np.zeros((height, width), dtype=np.uint8)
    for i, p in enumerate(polygons):
        if not isinstance(p, (list, tuple, np.ndarray)):
            raise MaskFormatError(f"polygon {i} must be a list of numbers, got {type(p).__name__}")
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        if len(p) < 6 or len(p) % 2:
            raise MaskFormatError(f"polygon {i} must have an even number >= 6 of coordinates (3 or more "
                                  f"points), got {len(p)}")
        if not np.all(np.isfinite(p)):
            raise MaskFormatError(f"polygon {i} has non-finite coordinates")
        mask |= counts_to_mask(polygon_to_counts(p, height, width), height, width)
    return mask


def segmentation_to_mask(segmentation, height, width):
    """Any COCO ``segmentation`` (polygons, uncompressed or compressed RLE) -> (height, width)
    uint8 mask, as pycocotools' ``COCO.annToMask``."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict):
        mask = rle_decode(segmentation)
        if mask.shape != (height, width):
            raise MaskFormatError(f"RLE size {list(mask.shape)} differs from the image size [{height}, {width}]")
        return mask
    raise MaskFormatError(f"a segmentation must be a list of polygons or an RLE dict, got {type(segmentation).__name__}")


# --------------------------------------------------------------------------------------
# Mask -> polygons (exact outlines along pixel edges)
# --------------------------------------------------------------------------------------
# Directed boundary edges keep the inside on their right (clockwise on screen, y down):
# top side +x, right side +y, bottom side -x, left side -y. Directions as (dx, dy):
_DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))


def mask_to_polygons(mask):
    """Outlines of a mask along pixel edges: a list of flat ``[x0, y0, x1, y1, ...]`` polygons
    (one per 4-connected component, corners at integer pixel-edge coordinates, collinear points
    removed), or None when the mask has a hole (a COCO polygon list cannot express one).

    pycocotools rasterises these polygons back to exactly ``mask`` (see the module docstring).
    """
    m = np.pad(np.asarray(mask, dtype=bool), 1)                  # a border of 0s
    inside = m[1:-1, 1:-1]
    # boundary sides of every inside pixel (r, c) -> directed edge start vertex (x, y) and direction
    starts = {}
    rs, cs = np.nonzero(inside & ~m[:-2, 1:-1])                  # top neighbour outside
    for r, c in zip(rs.tolist(), cs.tolist()):
        starts.setdefault((c, r), []).append(0)
    rs, cs = np.nonzero(inside & ~m[1:-1, 2:])                   # right neighbour outside
    for r, c in zip(rs.tolist(), cs.tolist()):
        starts.setdefault((c + 1, r), []).append(1)
    rs, cs = np.nonzero(inside & ~m[2:, 1:-1])                   # bottom neighbour outside
    for r, c in zip(rs.tolist(), cs.tolist()):
        starts.setdefault((c + 1, r + 1), []).append(2)
    rs, cs = np.nonzero(inside & ~m[1:-1, :-2])                  # left neighbour outside
    for r, c in zip(rs.tolist(), cs.tolist()):
        starts.setdefault((c, r + 1), []).append(3)
    def take(vertex, d):
        outs = starts[vertex]
        outs.remove(d)
        if not outs:
            del starts[vertex]

    polygons = []
    while starts:
        start = min(starts)                                      # a deterministic first vertex
        first = starts[start][0]
        take(start, first)
        loop, direction = [start], first
        vertex = (start[0] + _DIRS[first][0], start[1] + _DIRS[first][1])
        while True:
            outs = set(starts.get(vertex, ()))
            if vertex == start:
                outs.add(first)                                  # the loop may close here
            # prefer the right turn, then straight on, then left: the outline hugs the pixel it
            # follows, so pixels touching only at a corner end up in different loops
            d = next((direction + turn) % 4 for turn in (1, 0, 3) if (direction + turn) % 4 in outs)
            if vertex == start and d == first:
                break
            take(vertex, d)
            if d != direction:
                loop.append(vertex)                              # a corner
            direction = d
            vertex = (vertex[0] + _DIRS[d][0], vertex[1] + _DIRS[d][1])
        pts = np.array(loop, dtype=np.int64)
        x, y = pts[:, 0], pts[:, 1]
        signed_area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
        if signed_area < 0:                                      # counter-clockwise: a hole
            return None
        polygons.append(_drop_collinear(pts).reshape(-1).astype(float).tolist())
    return polygons


def _drop_collinear(pts):
    """Remove vertices lying on the straight line through their neighbours."""
    prev, nxt = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
    cross = (pts[:, 0] - prev[:, 0]) * (nxt[:, 1] - pts[:, 1]) - (pts[:, 1] - prev[:, 1]) * (nxt[:, 0] - pts[:, 0])
    return pts[cross != 0]
