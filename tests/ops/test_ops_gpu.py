"""The box ops on CuPy arrays give the NumPy results (skipped without CuPy and a CUDA device)."""
import numpy as np
import pytest

from tinyvision.backend import cupy_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device"),
]


def test_box_ops_on_cupy_match_numpy():
    import cupy as cp

    from tinyvision.ops import (
        BoxCoder, Matcher, batched_nms, box_convert, box_iou, clip_boxes_to_image,
        generalized_box_iou, nms, remove_small_boxes, retinanet_anchor_generator,
    )

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (300, 2))
    b = np.concatenate([xy, xy + rng.uniform(1, 40, (300, 2))], axis=1).astype(np.float32)
    s = rng.random(300).astype(np.float32)
    idx = rng.integers(0, 3, 300)
    gb, gs, gi = cp.asarray(b), cp.asarray(s), cp.asarray(idx)
    np.testing.assert_array_equal(cp.asnumpy(box_iou(gb, gb[:50])), box_iou(b, b[:50]))
    np.testing.assert_allclose(cp.asnumpy(generalized_box_iou(gb, gb[:50])), generalized_box_iou(b, b[:50]), rtol=1e-6)
    np.testing.assert_array_equal(cp.asnumpy(box_convert(gb, "xyxy", "cxcywh")), box_convert(b, "xyxy", "cxcywh"))
    np.testing.assert_array_equal(cp.asnumpy(clip_boxes_to_image(gb, (100, 120))), clip_boxes_to_image(b, (100, 120)))
    np.testing.assert_array_equal(cp.asnumpy(remove_small_boxes(gb, 10)), remove_small_boxes(b, 10))
    keep = nms(gb, gs, 0.5)
    assert isinstance(keep, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(keep), nms(b, s, 0.5))
    np.testing.assert_array_equal(cp.asnumpy(batched_nms(gb, gs, gi, 0.5)), batched_nms(b, s, idx, 0.5))
    coder = BoxCoder()
    np.testing.assert_allclose(cp.asnumpy(coder.encode_single(gb[:10], gb[10:20])),
                               coder.encode_single(b[:10], b[10:20]), rtol=1e-5, atol=1e-6)
    q = box_iou(b[:5], b)
    np.testing.assert_array_equal(cp.asnumpy(Matcher(0.5, 0.4, True)(cp.asarray(q))), Matcher(0.5, 0.4, True)(q))
    gen = retinanet_anchor_generator()
    grid = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    np.testing.assert_array_equal(cp.asnumpy(gen.anchors_for_image((64, 64), grid, xp=cp)),
                                  gen.anchors_for_image((64, 64), grid))
