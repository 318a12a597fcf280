"""Transforms move boxes and masks with the image.

The property: rectangles drawn on the image (object k filled with 1 in channel k) and
transformed together with their boxes and masks stay the tight boxes of the transformed
drawings, within the rounding each transform implies (exact for flips and crops, one output
pixel for resampling); the masks move as the drawings do.
"""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hypothesis import assume, given
from hypothesis import strategies as st

from tinyvision.data import transforms as T
from tinyvision.data.shapes import masks_to_boxes


@st.composite
def drawn_scene(draw, max_objects=3):
    """(image (3, H, W), target) with 1..3 rectangles, rectangle k drawn in channel k."""
    H = draw(st.integers(6, 40))
    W = draw(st.integers(6, 40))
    M = draw(st.integers(1, max_objects))
    image = np.zeros((3, H, W), dtype=np.float32)
    masks = np.zeros((M, H, W), dtype=np.uint8)
    boxes = []
    for k in range(M):
        x1 = draw(st.integers(0, W - 1))
        x2 = draw(st.integers(x1 + 1, W))
        y1 = draw(st.integers(0, H - 1))
        y2 = draw(st.integers(y1 + 1, H))
        image[k, y1:y2, x1:x2] = 1.0
        masks[k, y1:y2, x1:x2] = 1
        boxes.append((x1, y1, x2, y2))
    semantic = np.zeros((H, W), dtype=np.int64)
    for k in range(M):
        semantic[masks[k] == 1] = k + 1
    target = {"boxes": np.array(boxes, dtype=np.float32), "labels": np.arange(M, dtype=np.int64),
              "masks": masks, "mask": semantic, "area": masks.sum(axis=(1, 2)).astype(np.float32),
              "iscrowd": np.zeros(M, dtype=np.int64), "image_id": 7}
    return image, target


def drawn_boxes(image, labels, threshold=0.5):
    """Tight boxes of the drawings of the given objects (channel = label)."""
    return masks_to_boxes(image[np.asarray(labels)] > threshold)


def check_consistent(target):
    M = len(target["boxes"])
    for key in ("labels", "masks", "area", "iscrowd"):
        assert len(target[key]) == M, key
    assert np.array_equal(target["area"], target["masks"].sum(axis=(1, 2)).astype(np.float32))
    assert target["image_id"] == 7


@given(drawn_scene(), st.integers(0, 2 ** 32 - 1))
def test_flip_moves_boxes_and_masks_exactly(scene, seed):
    image, target = scene
    out, t = T.RandomHorizontalFlip(p=1.0)(image, target, rng=np.random.default_rng(seed))
    assert np.array_equal(drawn_boxes(out, t["labels"]), t["boxes"])
    assert np.array_equal(t["masks"], (out[: len(t["labels"])] > 0.5).astype(np.uint8))
    assert np.array_equal(t["mask"], target["mask"][:, ::-1])
    check_consistent(t)
    # the input is untouched; p = 0 is the identity
    same, t0 = T.RandomHorizontalFlip(p=0.0)(image, target, rng=np.random.default_rng(seed))
    assert np.array_equal(same, image) and np.array_equal(t0["boxes"], target["boxes"])


@given(drawn_scene(), st.data())
def test_crop_clips_and_drops_exactly(scene, data):
    image, target = scene
    _, H, W = image.shape
    h, w = data.draw(st.integers(1, H)), data.draw(st.integers(1, W))
    out, t = T.RandomCrop((h, w))(image, target, rng=np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1))))
    assert out.shape == (3, h, w) and t["mask"].shape == (h, w)
    # kept objects: the box of the cut drawing; dropped objects: their drawing left the crop
    assert np.array_equal(drawn_boxes(out, t["labels"]), t["boxes"])
    dropped = sorted(set(range(len(target["labels"]))) - set(t["labels"].tolist()))
    assert all(out[k].max() == 0 for k in dropped)
    assert np.array_equal(t["masks"], (out[t["labels"]] > 0.5).astype(np.uint8))
    check_consistent(t)


@given(drawn_scene(), st.integers(4, 64), st.integers(4, 64))
def test_resize_moves_boxes_within_one_pixel(scene, OH, OW):
    image, target = scene
    _, H, W = image.shape
    sx, sy = OW / W, OH / H
    b = target["boxes"]
    # thin rectangles shrunk below 2 px blur away under bilinear: keep to visible ones
    assume(np.all((b[:, 2] - b[:, 0]) * sx >= 2) and np.all((b[:, 3] - b[:, 1]) * sy >= 2))
    out, t = T.Resize((OH, OW))(image, target)
    assert out.shape == (3, OH, OW) and t["masks"].shape[1:] == (OH, OW) and t["mask"].shape == (OH, OW)
    np.testing.assert_allclose(t["boxes"], b * np.array([sx, sy, sx, sy], dtype=np.float32), rtol=1e-6)
    # nearest-exact masks: edges within half an output pixel of the scaled box
    assert np.abs(masks_to_boxes(t["masks"]) - t["boxes"]).max() <= 0.5 + 1e-4
    # bilinear drawing, thresholded at 1/2: within one output pixel
    assert np.abs(drawn_boxes(out, t["labels"]) - t["boxes"]).max() <= 1.0 + 1e-4
    check_consistent(t)


@given(drawn_scene(), st.integers(0, 2 ** 32 - 1), st.integers(8, 48))
def test_random_resized_crop_moves_boxes(scene, seed, size):
    image, target = scene
    tr = T.RandomResizedCrop(size, scale=(0.2, 1.0))
    top, left, h, w = tr.window(image.shape[1], image.shape[2], np.random.default_rng(seed))
    assert 0 <= top and 0 <= left and top + h <= image.shape[1] and left + w <= image.shape[2]
    out, t = tr(image, target, rng=np.random.default_rng(seed))
    assert out.shape == (3, size, size)
    check_consistent(t)
    b = t["boxes"]
    assert np.all(b[:, 2] - b[:, 0] >= 1) and np.all(b[:, 3] - b[:, 1] >= 1)
    assert np.all(b >= 0) and np.all(b <= size)
    assert np.abs(masks_to_boxes(t["masks"]) - b).max(initial=0) <= 0.5 + 1e-3
    big = ((b[:, 2] - b[:, 0]) >= 3) & ((b[:, 3] - b[:, 1]) >= 3)
    assert np.abs(drawn_boxes(out, t["labels"][big]) - b[big]).max(initial=0) <= 1.0 + 1e-3
    # the same generator gives the same result
    again, t2 = tr(image, target, rng=np.random.default_rng(seed))
    assert np.array_equal(again, out) and np.array_equal(t2["boxes"], b)


@given(drawn_scene(max_objects=1), st.integers(0, 2 ** 32 - 1))
def test_color_jitter_keeps_the_drawing(scene, seed):
    image, target = scene
    image = np.repeat(image[:1], 3, axis=0)         # a white rectangle on black
    out, t = T.ColorJitter(0.5, 0.5, 0.5)(image, target, rng=np.random.default_rng(seed))
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    grey = out.mean(axis=0)
    middle = (grey.max() + grey.min()) / 2
    if grey.max() > grey.min():
        assert np.array_equal(masks_to_boxes((grey > middle)[None]), t["boxes"])
    assert np.array_equal(t["masks"], target["masks"]) and np.array_equal(t["boxes"], target["boxes"])


def test_resize_image_equals_torch_interpolate(rng):
    image = rng.random((3, 13, 17), dtype=np.float32)
    for size in [(5, 9), (26, 40), (13, 30)]:
        out, _ = T.Resize(size)(image)
        ref = torch.nn.functional.interpolate(torch.from_numpy(image)[None], size=size, mode="bilinear",
                                              align_corners=False)[0].numpy()
        np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6)
        mask = (rng.random((13, 17)) < 0.5).astype(np.int64)
        _, t = T.resize(image, {"mask": mask}, size)
        ref = torch.nn.functional.interpolate(torch.from_numpy(mask)[None, None].double(), size=size,
                                              mode="nearest-exact")[0, 0].numpy()
        assert np.array_equal(t["mask"], ref.astype(np.int64))


@pytest.mark.parametrize("factor", [0.0, 0.4, 1.0, 1.7])
def test_colour_functions_equal_torchvision(rng, factor):
    image = rng.random((3, 9, 11), dtype=np.float32)
    timage = torch.from_numpy(image)
    for mine, ref in [(T.adjust_brightness, TF.adjust_brightness), (T.adjust_contrast, TF.adjust_contrast),
                      (T.adjust_saturation, TF.adjust_saturation)]:
        np.testing.assert_allclose(mine(image, np.float32(factor)), ref(timage, factor).numpy(), rtol=0, atol=2e-6)
    np.testing.assert_allclose(T.rgb_to_grayscale(image), TF.rgb_to_grayscale(timage).numpy(), atol=1e-6)


def test_normalize_and_to_float(rng):
    pixels = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    image, _ = T.ToFloat()(pixels)
    assert image.shape == (3, 5, 6) and image.dtype == np.float32
    assert np.array_equal(image, pixels.transpose(2, 0, 1) / np.float32(255))
    out, _ = T.Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.5])(image)
    ref = TF.normalize(torch.from_numpy(image), [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_compose_is_reproducible_and_uses_the_global_generator_by_default():
    import tinyvision as tv

    image = np.zeros((3, 20, 20), dtype=np.float32)
    image[0, 3:9, 2:15] = 1
    target = {"boxes": np.array([[2, 3, 15, 9]], dtype=np.float32), "labels": np.array([0])}
    tr = T.Compose([T.RandomHorizontalFlip(), T.RandomCrop(16), T.ColorJitter(0.2, 0.2, 0.2)])
    a = tr(image, target, rng=np.random.default_rng(1))
    b = tr(image, target, rng=np.random.default_rng(1))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1]["boxes"], b[1]["boxes"])
    tv.manual_seed(5)
    c = tr(image, target)
    tv.manual_seed(5)
    d = tr(image, target)
    assert np.array_equal(c[0], d[0])


def test_crop_drops_boxes_below_min_size_and_empty_masks():
    image = np.zeros((3, 10, 10), dtype=np.float32)
    masks = np.zeros((2, 10, 10), dtype=np.uint8)
    masks[0, 0:2, 0:2] = 1                   # the corner object: survives a crop at (1, 1) as 1x1
    masks[1, 5, 5] = 1                       # a diagonal object whose box is wider than its mask
    masks[1, 9, 9] = 1
    target = {"boxes": np.array([[0, 0, 2, 2], [5, 5, 10, 10]], dtype=np.float32), "labels": np.array([3, 4]),
              "masks": masks}
    _, t = T.crop(image, target, top=1, left=1, height=4, width=4)
    assert t["labels"].tolist() == [3]                 # object 4's box clips to 0 width
    _, t = T.crop(image, target, top=1, left=1, height=4, width=4, min_size=2)
    assert t["labels"].tolist() == []
    _, t = T.crop(image, target, top=6, left=6, height=3, width=3)   # box [0, 0, 3, 3] but no mask pixel
    assert t["labels"].tolist() == [] and t["masks"].shape == (0, 3, 3)


@pytest.mark.parametrize("call, match", [
    (lambda: T.Resize(0), "size must be a positive int"),
    (lambda: T.Resize((3, 4, 5)), "size"),
    (lambda: T.RandomHorizontalFlip(1.5), "p must be in"),
    (lambda: T.RandomResizedCrop(8, scale=(0.5, 2)), "scale"),
    (lambda: T.ColorJitter(brightness=-1), "brightness"),
    (lambda: T.Normalize([0.5], [0.0]), "std must be positive"),
    (lambda: T.Normalize([0.5, 0.5], [1.0]), "differ in length"),
    (lambda: T.Normalize([0.5], [1.0])(np.zeros((3, 2, 2), np.float32)), "1 channel statistics"),
    (lambda: T.RandomCrop(5)(np.zeros((3, 4, 4), np.float32)), "larger than the image"),
    (lambda: T.hflip(np.zeros((4, 4), np.float32)), r"\(C, H, W\)"),
    (lambda: T.hflip(np.zeros((3, 4, 4), np.uint8)), "ToFloat"),
    (lambda: T.hflip(np.zeros((3, 4, 4), np.float32), {"boxes": np.zeros((2, 3))}), r"\(M, 4\)"),
    (lambda: T.hflip(np.zeros((3, 4, 4), np.float32), {"boxes": np.zeros((2, 4)), "labels": np.zeros(3)}),
     "labels"),
    (lambda: T.hflip(np.zeros((3, 4, 4), np.float32), {"masks": np.zeros((1, 4, 5))}), r"\(M, 4, 4\)"),
    (lambda: T.crop(np.zeros((3, 4, 4), np.float32), None, 2, 2, 3, 3), "not inside the image"),
    (lambda: T.Compose([1]), "callable"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@given(drawn_scene(), st.data())
def test_box_geometry_equals_torchvision_v2(scene, data):
    from torchvision import tv_tensors

    image, target = scene
    _, H, W = image.shape
    boxes = tv_tensors.BoundingBoxes(torch.from_numpy(target["boxes"]), format="XYXY", canvas_size=(H, W))
    masks = tv_tensors.Mask(torch.from_numpy(target["masks"]))
    # flip
    _, t = T.hflip(image, target)
    assert np.array_equal(t["boxes"], TF.horizontal_flip(boxes).numpy())
    assert np.array_equal(t["masks"], TF.horizontal_flip(masks).numpy())
    # resize (masks: nearest-exact, passed explicitly; torchvision's default for masks is legacy nearest)
    OH, OW = data.draw(st.integers(3, 50)), data.draw(st.integers(3, 50))
    _, t = T.resize(image, target, (OH, OW))
    np.testing.assert_allclose(t["boxes"], TF.resize(boxes, [OH, OW]).numpy(), rtol=1e-6, atol=1e-5)
    ref = TF.resize(masks, [OH, OW], interpolation=TF.InterpolationMode.NEAREST_EXACT).numpy()
    assert np.array_equal(t["masks"], ref)
    # crop: torchvision shifts and clamps; dropping is SanitizeBoundingBoxes' job (min_size=1)
    h, w = data.draw(st.integers(1, H)), data.draw(st.integers(1, W))
    top, left = data.draw(st.integers(0, H - h)), data.draw(st.integers(0, W - w))
    _, t = T.crop(image, target, top, left, h, w, min_size=0.0)
    cropped = TF.crop(boxes, top, left, h, w)
    clamped = TF.clamp_bounding_boxes(cropped).numpy()
    kept = target["masks"][:, top:top + h, left:left + w].any(axis=(1, 2))
    assert np.array_equal(t["boxes"], clamped[kept])
