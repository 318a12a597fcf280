"""COCO mask codecs (tinyvision.data.mask) against pycocotools.mask, live."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycocotools import mask as pcm

from tinyvision.data.mask import (MaskFormatError, counts_to_string, mask_to_counts, mask_to_polygons,
                                  polygons_to_mask, rle_decode, rle_encode, segmentation_to_mask,
                                  string_to_counts)


@st.composite
def binary_masks(draw, max_side=24):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    density = draw(st.sampled_from([0.0, 0.05, 0.5, 0.95, 1.0]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return (np.random.default_rng(seed).random((h, w)) < density).astype(np.uint8)


pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def reference_polygons_mask(polygons, h, w):
    return pcm.decode(pcm.merge(pcm.frPyObjects(polygons, h, w)))


@given(binary_masks())
def test_encode_equals_pycocotools(mask):
    ref = pcm.encode(np.asfortranarray(mask))
    mine = rle_encode(mask)
    assert mine["size"] == list(ref["size"])
    assert mine["counts"] == ref["counts"].decode("ascii")
    assert np.array_equal(rle_decode(ref), mask)           # bytes counts accepted
    assert np.array_equal(rle_decode(mine), pcm.decode(ref))
    assert sum(mask_to_counts(mask)[1::2]) == int(pcm.area(ref))


def test_long_runs_and_large_differences():
    # counts well past 2**5 groups, negative deltas (i > 2), a mask starting with a 1
    mask = np.zeros((300, 400), dtype=np.uint8)
    mask[:, 10:200] = 1
    mask[0, 0] = 1
    mask[150:, 300:] = 1
    ref = pcm.encode(np.asfortranarray(mask))["counts"].decode()
    assert rle_encode(mask)["counts"] == ref
    assert string_to_counts(ref) == mask_to_counts(mask)
    assert counts_to_string([0, 5, 3]) == pcm.encode(np.asfortranarray(
        np.array([[1], [1], [1], [1], [1], [0], [0], [0]], dtype=np.uint8)))["counts"].decode()


@given(st.lists(st.integers(0, 3000), min_size=1, max_size=30))
def test_string_codec_round_trip(counts):
    assert string_to_counts(counts_to_string(counts)) == counts


@given(binary_masks())
def test_uncompressed_rle_equals_pycocotools(mask):
    h, w = mask.shape
    rle = {"size": [h, w], "counts": mask_to_counts(mask)}
    ref = pcm.decode(pcm.frPyObjects(rle, h, w))
    assert np.array_equal(segmentation_to_mask(rle, h, w), ref)
    assert np.array_equal(ref, mask)


@given(st.integers(1, 30), st.integers(1, 30), st.integers(3, 9), st.integers(0, 2 ** 32 - 1),
       st.sampled_from(["float", "int", "half"]))
def test_polygon_rasterisation_equals_pycocotools(h, w, k, seed, kind):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-4, max(h, w) + 4, 2 * k)             # also outside the image
    if kind == "int":
        xy = np.round(xy)
    elif kind == "half":
        xy = np.round(xy) + 0.5
    polygons = [xy.tolist()]
    assert np.array_equal(polygons_to_mask(polygons, h, w), reference_polygons_mask(polygons, h, w))


def test_several_polygons_are_a_union():
    polygons = [[1, 1, 8, 1, 8, 5, 1, 5], [3.2, 2.7, 12.9, 9.1, 2.5, 11.0]]
    assert np.array_equal(polygons_to_mask(polygons, 14, 15), reference_polygons_mask(polygons, 14, 15))


def test_two_point_polygons_are_rejected_as_by_pycocotools():
    with pytest.raises(TypeError):
        reference_polygons_mask([[1, 2, 5, 3]], 10, 12)      # pycocotools' box branch, fed a list
    with pytest.raises(MaskFormatError, match="even number >= 6"):
        polygons_to_mask([[1, 2, 5, 3]], 10, 12)


@given(binary_masks(max_side=20))
def test_mask_to_polygons_rasterises_back_exactly(mask):
    polygons = mask_to_polygons(mask)
    if not mask.any():
        assert polygons == []
        return
    if polygons is None:                                   # a hole: check there is one
        from scipy import ndimage

        background = ndimage.label(np.pad(mask == 0, 1, constant_values=True))[0]   # 4-connected regions
        assert background.max() >= 2
        return
    assert all(len(p) >= 8 and len(p) % 2 == 0 for p in polygons)
    assert np.array_equal(reference_polygons_mask(polygons, *mask.shape), mask)
    assert np.array_equal(polygons_to_mask(polygons, *mask.shape), mask)


def test_mask_to_polygons_outline_and_hole():
    mask = np.zeros((6, 7), dtype=np.uint8)
    mask[1:4, 2:6] = 1
    assert mask_to_polygons(mask) == [[2.0, 1.0, 6.0, 1.0, 6.0, 4.0, 2.0, 4.0]]
    ring = np.ones((5, 5), dtype=np.uint8)
    ring[2, 2] = 0
    assert mask_to_polygons(ring) is None
    diagonal = np.eye(3, dtype=np.uint8)                      # three pixels touching at corners
    polygons = mask_to_polygons(diagonal)
    assert len(polygons) == 3
    assert np.array_equal(reference_polygons_mask(polygons, 3, 3), diagonal)


@pytest.mark.parametrize("segmentation, match", [
    ([[0, 0, 1, 1, 2]], "even number >= 6"),
    ([], "non-empty list"),
    ({"size": [2, 2], "counts": [1, 1]}, "sum to 2"),
    ({"size": [2, 2], "counts": "a~"}, "outside"),
    ({"size": [2, 2]}, "'size' and 'counts'"),
    ({"size": [3, 2], "counts": [6]}, "differs from the image size"),
    (7, "list of polygons or an RLE dict"),
])
def test_bad_segmentations_raise_clearly(segmentation, match):
    with pytest.raises(MaskFormatError, match=match):
        segmentation_to_mask(segmentation, 2, 2)
