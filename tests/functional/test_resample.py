"""F.interpolate (nearest, nearest-exact, bilinear) against PyTorch, gradcheck, golden values, bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.testing import gradcheck, tolerance

torch = pytest.importorskip("torch")
TF = torch.nn.functional

MODES = [("nearest", None), ("nearest-exact", None), ("bilinear", False), ("bilinear", True)]


@st.composite
def resample_configs(draw):
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    mode, align_corners = draw(st.sampled_from(MODES))
    kw = dict(mode=mode, align_corners=align_corners)
    if draw(st.booleans()):
        kw["size"] = (draw(st.integers(1, 20)), draw(st.integers(1, 20))) if draw(st.booleans()) \
            else draw(st.integers(1, 20))
    else:
        factor = st.floats(0.3, 3.5, allow_nan=False).map(lambda f: round(f, 3))
        sf = (draw(factor), draw(factor)) if draw(st.booleans()) else draw(st.sampled_from([0.5, 1.5, 2.0, 3.0]) | factor)
        kw["scale_factor"] = sf
        kw["recompute_scale_factor"] = draw(st.sampled_from([None, False, True]))
        sfs = sf if isinstance(sf, tuple) else (sf, sf)
        if int(H * sfs[0]) < 1 or int(W * sfs[1]) < 1:
            kw["scale_factor"] = tuple(max(s, 1.0) for s in sfs)
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W), kw


def both(kw, x, rng):
    xt, tx = tv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = F.interpolate(xt, **kw), TF.interpolate(tx, **kw)
    g = rng.standard_normal(y.shape).astype(x.dtype)
    y.backward(g)
    ty.backward(torch.tensor(g))
    return y.numpy(), ty.detach().numpy(), xt.grad.numpy(), tx.grad.numpy()


@given(resample_configs(), st.integers(0, 2**31 - 1))
@settings(max_examples=60)
def test_interpolate_matches_torch_float64(config, seed):
    shape, kw = config
    rng = np.random.default_rng(seed)
    y, ty, gx, tgx = both(kw, rng.standard_normal(shape), rng)
    assert y.shape == ty.shape
    np.testing.assert_allclose(y, ty, **tolerance(np.float64))
    np.testing.assert_allclose(gx, tgx, **tolerance(np.float64))


@given(resample_configs(), st.integers(0, 2**31 - 1))
def test_interpolate_matches_torch_float32(config, seed):
    shape, kw = config
    rng = np.random.default_rng(seed)
    y, ty, gx, tgx = both(kw, rng.standard_normal(shape).astype(np.float32), rng)
    assert y.dtype == np.float32 and gx.dtype == np.float32
    np.testing.assert_allclose(y, ty, **tolerance(np.float32))
    np.testing.assert_allclose(gx, tgx, **tolerance(np.float32))


def test_nearest_indices_exhaustive_against_torch():
    # The source index floor(dst * scale) depends on the scale's float32 rounding; sweep sizes.
    for H in range(1, 24):
        x = torch.arange(H, dtype=torch.float64).reshape(1, 1, H, 1)
        for mode in ("nearest", "nearest-exact"):
            for OH in range(1, 40):
                ours = F.interpolate(tv.tensor(x.numpy()), size=(OH, 1), mode=mode).numpy()
                np.testing.assert_array_equal(ours, TF.interpolate(x, size=(OH, 1), mode=mode).numpy())
            for sf in (0.3, 0.5, 0.7, 1.1, 1.3, 1.7, 2.1, 2.5, 1 / 3, 2 / 3, 3.3):
                if int(H * sf) < 1:
                    continue
                ours = F.interpolate(tv.tensor(x.numpy()), scale_factor=(sf, 1), mode=mode).numpy()
                np.testing.assert_array_equal(ours, TF.interpolate(x, scale_factor=(sf, 1), mode=mode).numpy())


@given(resample_configs(), st.integers(0, 2**31 - 1))
@settings(max_examples=10)
def test_interpolate_gradcheck(config, seed):
    shape, kw = config
    gradcheck(lambda t: F.interpolate(t, **kw), np.random.default_rng(seed).standard_normal(shape))


def test_golden_values():
    x = tv.tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    # align_corners=False, 2x: src = (dst + 0.5)/2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25
    y = F.interpolate(x, scale_factor=2, mode="bilinear").numpy()[0, 0]
    np.testing.assert_allclose(y[0], [1.0, 1.25, 1.75, 2.0])
    np.testing.assert_allclose(y[:, 0], [1.0, 1.5, 2.5, 3.0])
    # align_corners=True, 3 outputs: src = 0, 0.5, 1
    y = F.interpolate(x, size=3, mode="bilinear", align_corners=True).numpy()[0, 0]
    np.testing.assert_allclose(y, [[1.0, 1.5, 2.0], [2.0, 2.5, 3.0], [3.0, 3.5, 4.0]])
    y = F.interpolate(x, size=(2, 3), mode="nearest").numpy()[0, 0]  # src cols floor(o * 2/3) = 0, 0, 1
    np.testing.assert_array_equal(y, [[1.0, 1.0, 2.0], [3.0, 3.0, 4.0]])
    y = F.interpolate(x, size=(2, 3), mode="nearest-exact").numpy()[0, 0]  # floor((o + .5) * 2/3) = 0, 1, 1
    np.testing.assert_array_equal(y, [[1.0, 2.0, 2.0], [3.0, 4.0, 4.0]])


def test_upsampling_gradient_collects_all_copies():
    xt = tv.tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    F.interpolate(xt, scale_factor=3).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), np.full((1, 1, 2, 2), 9.0))


def test_bad_input_errors():
    x = tv.tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="exactly one"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="exactly one"):
        F.interpolate(x, size=2, scale_factor=2)
    with pytest.raises(ValueError, match="mode"):
        F.interpolate(x, size=2, mode="bicubic")
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(x, size=2, mode="nearest", align_corners=True)
    with pytest.raises(ValueError, match=r"4-D.*\(4, 4\)"):
        F.interpolate(tv.tensor(np.zeros((4, 4))), size=2)
    with pytest.raises(ValueError, match="output size"):
        F.interpolate(x, scale_factor=0.1)
    with pytest.raises(ValueError, match="scale_factor"):
        F.interpolate(x, scale_factor=-2.0)
    with pytest.raises(ValueError, match="size"):
        F.interpolate(x, size=(2, 2, 2))
