"""AnchorGenerator: torchvision's placement, RetinaNet's golden half-extents, a torch re-typing."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tinyvision as tv
from tinyvision.ops import AnchorGenerator, retinanet_anchor_generator


def tv_anchors(sizes, ratios, image_size, grid_sizes, dtype=torch.float32):
    """torchvision's AnchorGenerator.generate_anchors + grid_anchors, re-typed in PyTorch.

    As there, the base anchors are generated (and rounded) in float32 and then cast to
    ``dtype`` (``set_cell_anchors``)."""
    out = []
    for scales, ars, (gh, gw) in zip(sizes, ratios, grid_sizes):
        scales = torch.as_tensor(scales, dtype=torch.float32)
        ars = torch.as_tensor(ars, dtype=torch.float32)
        h_ratios = torch.sqrt(ars)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)
        base = (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round().to(dtype)
        sh = torch.tensor(image_size[0] // gh, dtype=torch.int64)
        sw = torch.tensor(image_size[1] // gw, dtype=torch.int64)
        shifts_x = torch.arange(0, gw, dtype=torch.int32) * sw
        shifts_y = torch.arange(0, gh, dtype=torch.int32) * sh
        shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
        shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
        shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
        out.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))
    return torch.cat(out)


RETINA_SIZES = ((32, 40, 50), (64, 80, 101), (128, 161, 203), (256, 322, 406), (512, 645, 812))


def test_retinanet_sizes_and_golden_p3_half_extents():
    gen = retinanet_anchor_generator()
    assert gen.sizes == RETINA_SIZES
    assert gen.aspect_ratios == ((0.5, 1.0, 2.0),) * 5
    assert gen.num_anchors_per_location() == [9] * 5
    p3 = gen.cell_anchors[0]
    assert p3.dtype == np.float32 and p3.shape == (9, 4)
    half_extents = [(int(x2), int(y2)) for _, _, x2, y2 in p3]
    assert half_extents == [(23, 11), (28, 14), (35, 18), (16, 16), (20, 20), (25, 25), (11, 23), (14, 28), (18, 35)]
    np.testing.assert_array_equal(p3[:, :2], -p3[:, 2:])  # origin-centred


def test_round_half_to_even():
    # size 5, ratio 1: [-2.5, -2.5, 2.5, 2.5] rounds to [-2, -2, 2, 2] (half to even), 7 -> 3.5 -> 4
    gen = AnchorGenerator(sizes=((5, 7),), aspect_ratios=((1.0,),))
    np.testing.assert_array_equal(gen.cell_anchors[0], [[-2, -2, 2, 2], [-4, -4, 4, 4]])


def test_golden_placement_small():
    gen = AnchorGenerator(sizes=((4,),), aspect_ratios=((1.0,),))
    a = gen.anchors_for_image((8, 12), [(2, 3)])   # strides 4 (y) and 4 (x)
    want = [[-2, -2, 2, 2], [2, -2, 6, 2], [6, -2, 10, 2], [-2, 2, 2, 6], [2, 2, 6, 6], [6, 2, 10, 6]]
    np.testing.assert_array_equal(a, want)        # y-major, then x; top-left cell corner centred


def test_retinanet_1024_matches_torchvision_formula():
    gen = retinanet_anchor_generator()
    grid = [(128, 128), (64, 64), (32, 32), (16, 16), (8, 8)]
    ours = gen.anchors_for_image((1024, 1024), grid)
    ref = tv_anchors(RETINA_SIZES, ((0.5, 1.0, 2.0),) * 5, (1024, 1024), grid).numpy()
    assert ours.shape == (9 * sum(h * w for h, w in grid), 4) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, ref)


@given(
    st.integers(1, 300), st.integers(1, 300), st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=3),
    st.lists(st.floats(0.2, 5.0), min_size=1, max_size=3), st.lists(st.integers(4, 300), min_size=1, max_size=3),
    st.sampled_from([np.float32, np.float64]),
)
def test_anchors_match_torchvision_formula(ih, iw, grid, ratios, sizes, dtype):
    levels = len(grid)
    gen = AnchorGenerator(sizes=(tuple(sizes),) * levels, aspect_ratios=(tuple(ratios),) * levels)
    ours = gen.anchors_for_image((ih, iw), grid, dtype=dtype)
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    ref = tv_anchors((tuple(sizes),) * levels, (tuple(ratios),) * levels, (ih, iw), grid, tdt).numpy()
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours, ref)


def test_call_with_batch_and_feature_maps():
    gen = retinanet_anchor_generator()
    images = np.zeros((2, 3, 64, 96), np.float32)
    fms = [np.zeros((2, 8, 64 // s, 96 // s), np.float32) for s in (8, 16, 32, 64, 128)]
    fms[-1] = np.zeros((2, 8, 1, 1), np.float32)   # 64 // 128 = 0 would be empty: use 1x1
    out = gen(images, fms)
    assert len(out) == 2 and out[0] is not out[1]
    assert out[0].shape == (9 * (8 * 12 + 4 * 6 + 2 * 3 + 1 * 1 + 1 * 1), 4)
    np.testing.assert_array_equal(out[0][-9:], gen.cell_anchors[-1])  # 1x1 map: one cell at 0
    t_out = gen(tv.tensor(images), [tv.tensor(f) for f in fms])
    assert isinstance(t_out[0], tv.Tensor)
    f64 = gen(images, [f.astype(np.float64) for f in fms])
    assert f64[0].dtype == np.float64
    np.testing.assert_array_equal(f64[0], out[0])


def test_forms_of_sizes_and_errors():
    a = AnchorGenerator(sizes=(32, 64), aspect_ratios=(0.5, 1.0))   # flat forms, as torchvision
    assert a.sizes == ((32,), (64,)) and a.aspect_ratios == ((0.5, 1.0), (0.5, 1.0))
    assert a.num_anchors_per_location() == [2, 2]
    with pytest.raises(ValueError, match="levels"):
        AnchorGenerator(sizes=((32,), (64,)), aspect_ratios=((1.0,),) * 3)
    with pytest.raises(ValueError, match="positive"):
        AnchorGenerator(sizes=((0,),), aspect_ratios=((1.0,),))
    with pytest.raises(ValueError, match="positive"):
        AnchorGenerator(sizes=((8,),), aspect_ratios=((-1.0,),))
    with pytest.raises(ValueError, match="feature maps"):
        a.anchors_for_image((64, 64), [(8, 8)])
    with pytest.raises(ValueError, match="positive"):
        a.anchors_for_image((64, 64), [(8, 8), (0, 4)])


def test_anchor_geometry():
    gen = retinanet_anchor_generator()
    for base, sizes, ratios in zip(gen.cell_anchors, gen.sizes, gen.aspect_ratios):
        w = base[:, 2] - base[:, 0]
        h = base[:, 3] - base[:, 1]
        for idx, (r, s) in enumerate((r, s) for r in ratios for s in sizes):  # ratio-major
            assert abs(h[idx] / w[idx] - r) < 0.1 * r
            assert abs(math.sqrt(w[idx] * h[idx]) - s) <= 2
