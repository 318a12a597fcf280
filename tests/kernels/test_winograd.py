"""Winograd F(2x2, 3x3) (kernels/cpu/winograd.py): the transform matrices compute a
correlation exactly; the kernels (forward and F(3x3, 2x2) weight gradient) equal the
plain-loop reference (float64, float32) on ragged tiles, paddings 0-3, batches 1-3, any channel
counts, every chunking; conv2d's forward and gradients that dispatch to them equal PyTorch's;
F(2x2, 3x3)'s float32 error stays within the float32 tolerance at realistic channel counts."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.kernels.conv_geometry import ConvGeometry
from tinyvision.kernels.cpu import conv as CPU
from tinyvision.kernels.cpu import winograd as WG
from tinyvision.testing import tolerance


def geometry(image_size, padding, map_size, stride=(1, 1), dilation=(1, 1)):
    """A 3x3 convolution's ConvGeometry (stride 1, dilation 1, one group unless told)."""
    return ConvGeometry(stride=stride, padding=padding, dilation=dilation, groups=1, kernel_size=(3, 3),
                        image_size=tuple(image_size), map_size=tuple(map_size))


def reference(x, w, padding, osz):
    return CPU.conv2d_forward_reference(x, w, geometry(x.shape[2:], padding, osz))


def assert_close(got, want, dtype, what=""):
    tol = tolerance(dtype)
    # float32: sums of up to a few hundred products of N(0,1) numbers (as in test_conv_kernels).
    atol = tol["atol"] * (1 if dtype == np.float64 else 10)
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=atol, err_msg=what)


def test_matrices_compute_the_1d_correlation():
    """A^T [(G g) * (B^T d)] = [sum_u g[u] d[i + u] for i < m], for random g, d (float64), m = 2."""
    BT, G, AT = WG.MATRICES
    m = 2
    rng = np.random.default_rng(m)
    for _ in range(5):
        g, d = rng.standard_normal(3), rng.standard_normal(m + 2)
        want = np.array([g @ d[i:i + 3] for i in range(m)])
        np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), want, rtol=1e-13, atol=1e-13)


def test_f23_golden():
    """F(2x2, 3x3) on one 4x4 tile, by hand: an all-ones filter sums each 3x3 window."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    y = WG.winograd_conv3x3(x, np.ones((1, 1, 3, 3)), geometry((4, 4), (0, 0), (2, 2)))
    np.testing.assert_allclose(y[0, 0], [[45.0, 54.0], [81.0, 90.0]], rtol=0, atol=1e-12)


def test_filter_transform_is_g_w_gt():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2, 3, 3))
    _, G, _ = WG.MATRICES
    U = WG.filter_transform(w).reshape(4, 4, 3, 2)
    for f in range(3):
        for c in range(2):
            np.testing.assert_allclose(U[:, :, f, c], G @ w[f, c] @ G.T, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_filter_transform_split_among_threads_equals_one_thread(dtype, monkeypatch):
    """Many filters: the output channels are split among the threads; every (f, c) is still
    G w G^T, the same as one thread's product, including the ragged last range."""
    from tinyvision.kernels.cpu import _threads as TH

    monkeypatch.setattr(WG, "_SPLIT_FILTER_PAIRS", 8)
    rng = np.random.default_rng(1)
    w = rng.standard_normal((7, 5, 3, 3)).astype(dtype)
    calls = []
    real = TH.run_parallel
    monkeypatch.setattr(TH, "run_parallel", lambda fn, tasks: calls.append(tasks) or real(fn, tasks))
    U2 = WG.filter_transform(w, 3).copy()
    assert calls == [TH.row_ranges(7, 3)]
    U1 = WG.filter_transform(w).copy()
    _, G, _ = WG.MATRICES
    want = np.einsum("pu,qv,fcuv->pqfc", G, G, w.astype(np.float64)).reshape(16, 7, 5)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(U2, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(U2, U1, rtol=tol, atol=tol)


@pytest.mark.parametrize("flipped", [False, True], ids=["plain", "flipped"])
def test_filter_transform_across_blocks_is_g_w_gt(flipped):
    """More filters along the inner axis than one gather block (64), with a ragged last block:
    every (f, c) is still G w G^T (of the flipped kernel when flipped), to float64 rounding."""
    rng = np.random.default_rng(3)
    F, C = (3, 130) if not flipped else (131, 2)  # the inner axis is c, or (flipped) f
    w = rng.standard_normal((F, C, 3, 3))
    _, G, _ = WG.MATRICES
    U = WG.filter_transform(w, flipped=flipped)
    g = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3) if flipped else w
    want = np.einsum("pu,qv,fcuv->pqfc", G, G, g).reshape(16, *g.shape[:2])
    np.testing.assert_allclose(U, want, rtol=1e-13, atol=1e-13)


@st.composite
def geometries(draw):
    """(N, C, H, W, F, (PH, PW), (OH, OW)): any sizes, including ragged last tiles and outputs
    cropped at the bottom/right (a conv's output size need not use all of the padding)."""
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    PH, PW = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    H = draw(st.integers(max(1, 3 - 2 * PH), 13))
    W = draw(st.integers(max(1, 3 - 2 * PW), 13))
    OH, OW = H + 2 * PH - 2, W + 2 * PW - 2
    OH, OW = draw(st.integers(max(1, OH - 1), OH)), draw(st.integers(max(1, OW - 1), OW))
    return N, C, H, W, F, (PH, PW), (OH, OW)


@settings(max_examples=40)
@given(geom=geometries(), dtype=st.sampled_from([np.float32, np.float64]), workspace=st.sampled_from([None, 1, 4096]))
def test_winograd_equals_reference(geom, dtype, workspace):
    N, C, H, W, Fo, pad, osz = geom
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((Fo, C, 3, 3))
    want = reference(x, w, pad, osz)
    got = WG.winograd_conv3x3(x.astype(dtype), w.astype(dtype), geometry((H, W), pad, osz), workspace)
    assert got.dtype == dtype and got.shape == want.shape
    assert_close(got, want, dtype)


@settings(max_examples=30)
@given(geom=geometries(), dtype=st.sampled_from([np.float32, np.float64]), workspace=st.sampled_from([None, 1, 4096]))
def test_winograd_grad_weight_equals_reference(geom, dtype, workspace):
    """F(3x3, 2x2) weight gradient == the plain-loop gw, ragged gy tiles and cropped outputs included."""
    N, C, H, W, Fo, pad, osz = geom
    rng = np.random.default_rng(0)
    x, gy = rng.standard_normal((N, C, H, W)), rng.standard_normal((N, Fo) + osz)
    g = geometry((H, W), pad, osz)
    want = CPU.conv2d_grad_weight_reference(x, gy, g)
    got = WG.winograd_conv3x3_grad_weight(x.astype(dtype), gy.astype(dtype), g, workspace)
    assert got.dtype == dtype and got.shape == want.shape
    assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("split", [False, True])
def test_winograd_grad_weight_threads_shares_and_split_output_transform(dtype, split, monkeypatch):
    """Two threads, each summing its own images' tiles: the shares are added and transformed to
    gw either in one piece or (many filter pairs) split among the threads by input channels,
    ragged last range included; both equal the plain-loop gw and each other bit for bit."""
    from tinyvision.kernels.cpu import _threads as TH

    monkeypatch.setattr(TH, "SERIAL_MAX_MACS", 0)  # two threads even for this small conv
    monkeypatch.setattr(TH, "num_threads", lambda: 2)
    monkeypatch.setattr(WG, "_SPLIT_FILTER_PAIRS", 1 if split else 1 << 30)
    rng = np.random.default_rng(3)
    N, C, F, H, W = 3, 7, 5, 9, 8
    x, gy = rng.standard_normal((N, C, H, W)), rng.standard_normal((N, F, H, W))
    g = geometry((H, W), (1, 1), (H, W))
    calls = []
    real = TH.run_parallel
    monkeypatch.setattr(TH, "run_parallel", lambda fn, tasks: calls.append(tasks) or real(fn, tasks))
    got = WG.winograd_conv3x3_grad_weight(x.astype(dtype), gy.astype(dtype), g, 1)
    assert (TH.row_ranges(C, 2) in calls) == split
    assert got.dtype == dtype and got.shape == (F, C, 3, 3)
    assert_close(got, CPU.conv2d_grad_weight_reference(x, gy, g), dtype)
    monkeypatch.setattr(WG, "_SPLIT_FILTER_PAIRS", 1 << 30 if split else 1)
    np.testing.assert_array_equal(WG.winograd_conv3x3_grad_weight(x.astype(dtype), gy.astype(dtype), g, 1), got)


def test_dispatch_uses_winograd_where_chosen(monkeypatch):
    calls = []
    real, real_gw = WG.winograd_conv3x3, WG.winograd_conv3x3_grad_weight
    monkeypatch.setattr(WG, "winograd_conv3x3", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(WG, "winograd_conv3x3_grad_weight", lambda *a, **k: calls.append(2) or real_gw(*a, **k))
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 4, 12, 12)), rng.standard_normal((4, 4, 3, 3))
    gy = rng.standard_normal((1, 4, 12, 12))
    g = geometry((12, 12), (1, 1), (12, 12))
    CPU.conv2d_forward(x, w, g)
    CPU.conv2d_grad_input(gy, w, g)  # stride 1: gx is a 3x3 conv of gy
    CPU.conv2d_grad_weight(x, gy, g)
    assert calls == [1, 1, 2]
    CPU.conv2d_forward(x, w, geometry((12, 12), (1, 1), (6, 6), stride=(2, 2)))        # stride 2
    CPU.conv2d_forward(x, w, geometry((12, 12), (2, 2), (12, 12), dilation=(2, 2)))    # dilation 2
    CPU.conv2d_forward(x[:, :3], w[:, :3], g)                                          # 3 input channels
    CPU.conv2d_grad_input(gy[:, :3], w[:3], g)                                         # gx with 3 gy channels
    CPU.conv2d_forward(x[:, :, :8, :8], w, geometry((8, 8), (1, 1), (8, 8)))           # small output
    CPU.conv2d_grad_weight(x[:, :3], gy, g)
    assert calls == [1, 1, 2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "xs, fo, padding",
    [((1, 4, 13, 15), 5, 1), ((2, 6, 14, 15), 3, 0), ((3, 5, 12, 17), 4, 2), ((2, 8, 15, 12), 8, "same")],
    ids=["n1-pad1", "n2-pad0", "n3-pad2", "n2-same"],
)
def test_conv2d_with_winograd_matches_torch(xs, fo, padding, dtype):
    """F.conv2d's forward, input gradient and weight gradient (all Winograd here) vs PyTorch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((fo, xs[1], 3, 3)).astype(dtype)
    b = rng.standard_normal(fo).astype(dtype)
    X, Wt, B = (tv.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(X, Wt, B, padding=padding)
    assert CPU._use_winograd(xs[1], y.grad_fn.geometry)  # the geometry F.conv2d built
    gy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(gy)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=padding)
    ty.backward(torch.tensor(gy))
    tol = tolerance(dtype)
    scale = 1 if dtype == np.float64 else 10
    for name, a, t in [("y", y, ty), ("gx", X.grad, tx.grad), ("gw", Wt.grad, tw.grad), ("gb", B.grad, tb.grad)]:
        assert a.dtype == dtype
        np.testing.assert_allclose(a.numpy(), t.detach().numpy(), rtol=tol["rtol"], atol=tol["atol"] * scale,
                                   err_msg=name)


def test_f23_float32_error_within_tolerance_at_64_channels():
    """F(2x2, 3x3) in float32 vs a float64 reference: within rtol 1e-4 + atol 1e-5 x the output's
    RMS everywhere (the direct product's error is about the same)."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 64, 14, 14)), rng.standard_normal((64, 64, 3, 3))
    g = geometry((14, 14), (1, 1), (14, 14))
    want = CPU.conv2d_forward(x, w, g)
    rms = np.sqrt(np.mean(want ** 2))
    got = WG.winograd_conv3x3(x.astype(np.float32), w.astype(np.float32), g)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * rms)


@pytest.mark.parametrize("split", [False, True], ids=["one-thread", "split"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flipped_filter_transform_is_the_transform_of_the_flipped_transposed_kernel(dtype, split, monkeypatch):
    """filter_transform(w, flipped=True) == filter_transform(wt) for wt[c, f] = w[f, c, ::-1, ::-1],
    made without wt (w's taps read in reverse order); also split among threads by c."""
    if split:
        monkeypatch.setattr(WG, "_SPLIT_FILTER_PAIRS", 4)
    rng = np.random.default_rng(2)
    w = rng.standard_normal((6, 5, 3, 3)).astype(dtype)
    wt = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    want = WG.filter_transform(wt).copy()
    got = WG.filter_transform(w, 3 if split else 1, flipped=True)
    assert got.shape == (16, 5, 6)
    np.testing.assert_array_equal(got, want)  # the same arithmetic on the same taps


def test_flipped_winograd_equals_the_input_gradient():
    """winograd_conv3x3(gy, w, full, flipped=True) is conv2d's input gradient (stride 1)."""
    import torch

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 9, 10))
    w = rng.standard_normal((5, 4, 3, 3))
    gy = rng.standard_normal((3, 5, 9, 10))
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.conv2d(xt, torch.tensor(w), padding=1).backward(torch.tensor(gy))
    y = WG.winograd_conv3x3(gy, w, geometry((9, 10), (1, 1), (9, 10)), flipped=True)
    np.testing.assert_allclose(y, xt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_filter_transform_returns_a_fresh_array_or_fills_out():
    """Two calls give two arrays (neither overwrites the other); out= is filled and returned;
    an out of the wrong shape, dtype or layout is refused, naming what was expected."""
    rng = np.random.default_rng(4)
    w1, w2 = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((3, 2, 3, 3))
    U1 = WG.filter_transform(w1)
    keep = U1.copy()
    U2 = WG.filter_transform(w2)
    np.testing.assert_array_equal(U1, keep)
    assert not np.shares_memory(U1, U2)
    out = np.empty((16, 3, 2))
    assert WG.filter_transform(w1, out=out) is out
    np.testing.assert_array_equal(out, keep)
    for bad in (np.empty((16, 2, 3)), np.empty((16, 3, 2), np.float32), np.empty((16, 2, 3)).transpose(0, 2, 1)):
        with pytest.raises(ValueError, match=r"out must be a C-contiguous float64 array of shape \(16, 3, 2\)"):
            WG.filter_transform(w1, out=bad)
