"""The synthetic shapes generator: determinism, geometry (box == mask extent), the three views."""
import numpy as np
import pytest

from tinyvision.data import (SHAPE_CLASSES, SHAPES_VERSION, DataLoader, ShapesDetection, ShapesLocalization,
                             ShapesSegmentation, detection_collate, make_shapes, masks_to_boxes)
from tinyvision.data import transforms as T
from tinyvision.data.shapes import draw_scene, shape_mask


def test_classes_and_version():
    assert SHAPE_CLASSES[:3] == ("circle", "square", "triangle") and len(SHAPE_CLASSES) >= 5
    assert len(set(SHAPE_CLASSES)) == len(SHAPE_CLASSES)
    assert isinstance(SHAPES_VERSION, int)
    ds = ShapesDetection(1)
    assert [c["id"] for c in ds.categories] == list(range(1, len(SHAPE_CLASSES) + 1))
    assert [c["name"] for c in ds.categories] == list(SHAPE_CLASSES)


@pytest.mark.parametrize("cls", [ShapesLocalization, ShapesDetection, ShapesSegmentation])
def test_item_depends_on_seed_and_index_only(cls):
    small, large = cls(3, seed=4), cls(50, seed=4)
    for i in range(3):
        a, ta = small[i]
        b, tb = large[i]
        assert np.array_equal(a, b)
        assert all(np.array_equal(ta[k], tb[k]) for k in ta)
    uncached = cls(3, seed=4, cache=False)
    assert np.array_equal(uncached[2][0], small[2][0])
    assert not np.array_equal(cls(3, seed=5)[0][0], small[0][0])
    assert not np.array_equal(small[0][0], small[1][0])


def test_pinned_values_of_this_version():
    # the contract of SHAPES_VERSION 1: changing the generator must bump the version (and these)
    ds = ShapesDetection(3, seed=0)
    assert [ds[i][1]["labels"].tolist() for i in range(3)] == [[2, 2, 1, 3, 3], [1, 2, 2, 4, 2], [3, 1]]
    assert ds[0][1]["boxes"][:2].tolist() == [[13.0, 43.0, 39.0, 74.0], [11.0, 72.0, 53.0, 109.0]]
    assert abs(float(ds[0][0].mean()) - 0.389073) < 1e-4
    loc = ShapesLocalization(2, seed=0)
    assert [loc[i][1]["labels"].tolist() for i in range(2)] == [[4], [4]]
    assert loc[0][1]["boxes"].tolist() == [[22.0, 33.0, 48.0, 58.0]]
    assert abs(float(loc[0][0].mean()) - 0.463157) < 1e-4


def test_localization_items():
    ds = ShapesLocalization(40, image_size=64, seed=1)
    labels = []
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.shape == (3, 64, 64) and image.dtype == np.float32
        assert 0 <= image.min() and image.max() <= 1
        assert set(target) == {"boxes", "labels"}
        assert target["boxes"].shape == (1, 4) and target["boxes"].dtype == np.float32
        assert target["labels"].shape == (1,) and target["labels"].dtype == np.int64
        x1, y1, x2, y2 = target["boxes"][0]
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
        assert 14 <= max(x2 - x1, y2 - y1) <= 49     # object_size 16-48 px, measured on pixel centres
        labels.append(int(target["labels"][0]))
    assert set(labels) == set(range(len(SHAPE_CLASSES)))
    # the image is exact uint8 levels: PNG export is lossless
    scene = ds.scene(0)
    assert np.array_equal(ds[0][0], scene.image.transpose(2, 0, 1).astype(np.float32) / np.float32(255))


def test_box_is_the_extent_of_the_visible_mask_and_masks_are_disjoint():
    ds = ShapesDetection(60, image_size=96, max_objects=6, seed=2, masks=True)
    counts, touching = [], 0
    for i in range(len(ds)):
        image, t = ds[i]
        M = len(t["labels"])
        counts.append(M)
        assert t["boxes"].shape == (M, 4) and t["masks"].shape == (M, 96, 96)
        assert np.array_equal(masks_to_boxes(t["masks"]), t["boxes"])
        assert np.array_equal(t["area"], t["masks"].sum(axis=(1, 2)).astype(np.float32))
        assert (t["area"] > 0).all() and t["image_id"] == i + 1 and (t["iscrowd"] == 0).all()
        assert t["masks"].sum(axis=0).max(initial=0) <= 1              # visible masks never overlap
        touching += int(((t["boxes"] == 0) | (t["boxes"] == 96)).any())
        # every object is painted with one colour, over the whole of its visible mask (before noise)
        scene = ds.scene(i)
        for k in range(M):
            assert np.array_equal(scene.instances == k, t["masks"][k].astype(bool))
    counts = np.array(counts)
    assert counts.max() <= 6 and (counts >= 3).any()
    assert touching > 0


def test_detection_has_empty_images_and_overlaps():
    ds = ShapesDetection(200, image_size=64, seed=0, empty_fraction=0.1)
    n_objects = np.array([len(ds.scene(i).labels) for i in range(len(ds))])
    assert 5 <= (n_objects == 0).sum() <= 40
    overlapping = 0
    for i in np.flatnonzero(n_objects >= 2)[:60]:
        b = ds.scene(int(i)).boxes
        x1 = np.maximum(b[:, None, 0], b[None, :, 0])
        x2 = np.minimum(b[:, None, 2], b[None, :, 2])
        y1 = np.maximum(b[:, None, 1], b[None, :, 1])
        y2 = np.minimum(b[:, None, 3], b[None, :, 3])
        inter = (x2 > x1) & (y2 > y1)
        overlapping += int(inter.sum() > len(b))             # more than the diagonal
    assert overlapping > 0


@pytest.mark.parametrize("min_visible", [0.5, 0.8])
def test_min_visible_is_respected(min_visible):
    occluded = 0
    for seed in range(25):
        scene = draw_scene(np.random.default_rng(seed), 48, 5, (12, 30), min_visible=min_visible,
                           border_overlap=0.3, noise=0.0)
        assert np.all(scene.areas >= min_visible * scene.full_areas)
        occluded += int(np.any(scene.areas < scene.full_areas))
    assert occluded > 0                                      # the rule is exercised, not vacuous


def test_shape_mask_full_area_counts_the_clipped_part():
    inside, full = shape_mask("square", 10.0, 10.0, 8.0, 32, 32)
    assert inside.sum() == full == 64
    clipped, full = shape_mask("square", 0.0, 10.0, 8.0, 32, 32)
    assert full == 64 and clipped.sum() == 32
    assert np.array_equal(masks_to_boxes(clipped[None])[0], [0, 6, 4, 14])
    for kind in SHAPE_CLASSES:
        m, full = shape_mask(kind, 16.0, 16.0, 20.0, 32, 32)
        assert m.sum() == full and 0.25 * 400 < full <= 400
        x1, y1, x2, y2 = masks_to_boxes(m[None])[0]
        assert 18 <= x2 - x1 <= 20 and 15 <= y2 - y1 <= 20
    with pytest.raises(ValueError, match="kind must be one of"):
        shape_mask("blob", 1, 1, 3, 8, 8)


def test_shapes_differ_from_each_other_at_small_size():
    masks = [shape_mask(kind, 8.0, 8.0, 14.0, 16, 16)[0] for kind in SHAPE_CLASSES]
    for a in range(len(masks)):
        for b in range(a + 1, len(masks)):
            assert (masks[a] != masks[b]).sum() >= 20, (SHAPE_CLASSES[a], SHAPE_CLASSES[b])


@pytest.mark.parametrize("mode", ["multiclass", "binary"])
def test_segmentation_masks_respect_occlusion(mode):
    ds = ShapesSegmentation(20, image_size=64, seed=3, mode=mode, masks=True)
    assert ds.num_classes == (len(SHAPE_CLASSES) + 1 if mode == "multiclass" else 1)
    for i in range(len(ds)):
        _, t = ds[i]
        assert t["mask"].shape == (64, 64) and t["mask"].dtype == np.int64
        expected = np.zeros((64, 64), dtype=np.int64)
        for m, label in zip(t["masks"], t["labels"]):       # back to front
            expected[m == 1] = 1 if mode == "binary" else label + 1
        assert np.array_equal(t["mask"], expected)
        assert len(t["labels"]) >= 1
        assert t["mask"].max() <= (1 if mode == "binary" else len(SHAPE_CLASSES))


def test_transforms_are_seeded_per_item_and_epoch():
    tr = T.Compose([T.RandomHorizontalFlip(), T.RandomResizedCrop(48, scale=(0.5, 1.0))])
    ds = ShapesDetection(6, image_size=64, transforms=tr, masks=True)
    a = ds[2]
    assert np.array_equal(ds[2][0], a[0])                   # same epoch: same augmentation
    ds.set_epoch(1)
    b = ds[2]
    assert a[0].shape == b[0].shape == (3, 48, 48) and not np.array_equal(a[0], b[0])
    assert np.abs(masks_to_boxes(b[1]["masks"]) - b[1]["boxes"]).max(initial=0) <= 0.5 + 1e-3
    loader = DataLoader(ds, batch_size=3, shuffle=True, collate_fn=detection_collate)
    first = [np.asarray(x[0]).copy() for x in loader]
    loader.set_epoch(0)
    again = [np.asarray(x[0]) for x in loader]
    assert all(np.array_equal(p, q) for p, q in zip(first, again))


def test_make_shapes_and_bad_arguments():
    assert isinstance(make_shapes("segment", 2, image_size=32), ShapesSegmentation)
    assert make_shapes("detect", 2).image_size == 128
    with pytest.raises(ValueError, match="task must be one of"):
        make_shapes("classify", 2)
    with pytest.raises(ValueError, match="n must be an integer"):
        ShapesDetection(-1)
    with pytest.raises(ValueError, match="image_size"):
        ShapesLocalization(2, image_size=4)
    with pytest.raises(ValueError, match="object_size"):
        ShapesLocalization(2, image_size=32, object_size=(10, 40))
    with pytest.raises(ValueError, match="max_objects"):
        ShapesDetection(2, max_objects=0)
    with pytest.raises(ValueError, match="mode must be"):
        ShapesSegmentation(2, mode="multilabel")
    with pytest.raises(IndexError, match="out of range for 2 items"):
        ShapesDetection(2)[2]
    with pytest.raises(TypeError, match="integer"):
        ShapesDetection(2)[0.5]
    with pytest.raises(TypeError, match="transforms must be callable"):
        ShapesDetection(2, transforms=3)
