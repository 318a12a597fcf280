"""Review cases for conv2d / conv_transpose2d: edge configurations around the Winograd dispatch
(3x3, stride 1, >= 4 channels, output >= 12x12), the workspace chunking, threading and unusual
inputs, each checked against PyTorch (forward and every gradient)."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.kernels.conv_geometry import ConvGeometry
from tinyvision.kernels.cpu import conv as cpu_conv

torch = pytest.importorskip("torch")

# Largest error allowed, relative to the reference's largest magnitude: float64 1e-10; float32
# round-off of sums of up to a few thousand terms (PyTorch's own float32 error reaches 1e-5 here).
REL = {np.float64: 1e-10, np.float32: 2e-5}


def _close(a, b, dtype, what):
    b = np.asarray(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    assert a.dtype == dtype, f"{what}: dtype {a.dtype} != {dtype}"
    scale = max(1.0, float(np.abs(b).max(initial=0.0)))
    err = float(np.abs(a.astype(np.float64) - b).max(initial=0.0))
    assert err <= REL[dtype] * scale, f"{what}: max error {err:.3g} (scale {scale:.3g})"


def _compare(op, x, w, b=None, grads=(True, True, True), **kw):
    """Run tinyvision's op and PyTorch's on the same arrays; compare y, gx, gw, gb."""
    dtype = x.dtype.type
    rng = np.random.default_rng(1)
    gx_need, gw_need, gb_need = grads
    tx = tv.tensor(x, requires_grad=gx_need)
    tw = tv.tensor(w, requires_grad=gw_need)
    tb = None if b is None else tv.tensor(b, requires_grad=gb_need)
    y = getattr(F, op)(tx, tw, tb, **kw)
    px = torch.tensor(np.array(x), requires_grad=gx_need)
    pw = torch.tensor(np.array(w), requires_grad=gw_need)
    pb = None if b is None else torch.tensor(np.array(b), requires_grad=gb_need)
    py = getattr(torch.nn.functional, op)(px, pw, pb, **kw)
    _close(y.numpy(), py.detach().numpy(), dtype, "y")
    if not (gx_need or gw_need or (b is not None and gb_need)) or y.size == 0:
        return
    gy = rng.standard_normal(py.shape).astype(dtype)
    (y * tv.tensor(gy)).sum().backward()
    (py * torch.tensor(gy)).sum().backward()
    for name, t, p, need in (("gx", tx, px, gx_need), ("gw", tw, pw, gw_need), ("gb", tb, pb, gb_need)):
        if t is None:
            continue
        if need:
            _close(t.grad.numpy(), p.grad.numpy(), dtype, name)
        else:
            assert t.grad is None, f"{name} was computed but not requested"


def _data(rng, xshape, wshape, dtype, bias=True, out_channels=None):
    x = rng.standard_normal(xshape).astype(dtype)
    w = rng.standard_normal(wshape).astype(dtype)
    b = rng.standard_normal(out_channels or wshape[0]).astype(dtype) if bias else None
    return x, w, b


# ---- around the Winograd dispatch ----------------------------------------------------
WINOGRAD_CASES = [
    # (x shape, F, padding)
    ((1, 4, 14, 14), 5, 1),        # channels exactly 4 -> Winograd
    ((1, 3, 14, 14), 5, 1),        # 3 channels -> im2col
    ((2, 4, 13, 17), 1, 1),        # F = 1, odd sizes: ragged tiles
    ((1, 4, 12, 12), 3, 0),        # output 10x10 -> im2col
    ((1, 4, 14, 14), 3, 0),        # output exactly 12x12
    ((5, 6, 15, 13), 4, 3),        # batch > threads, padding 3 (> kernel reach)
    ((3, 5, 16, 19), 4, (0, 2)),   # asymmetric padding
    ((2, 4, 17, 15), 6, (3, 1)),
    ((1, 6, 5, 700), 4, 1),        # very wide: 5 rows of output -> im2col
    ((1, 6, 14, 700), 4, 1),       # very wide Winograd
    ((1, 5, 700, 13), 3, 1),       # very tall Winograd
    ((1, 4, 13, 13), 2, 2),        # padding 2: grad-input goes through a padding-0 conv
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("xshape,Fo,pad", WINOGRAD_CASES, ids=[str(c[0]) + f"-F{c[1]}-p{c[2]}" for c in WINOGRAD_CASES])
def test_conv2d_3x3_dispatch_edges(xshape, Fo, pad, dtype):
    rng = np.random.default_rng(0)
    x, w, b = _data(rng, xshape, (Fo, xshape[1], 3, 3), dtype)
    _compare("conv2d", x, w, b, padding=pad)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_conv2d_same_padding_winograd(dtype):
    rng = np.random.default_rng(0)
    x, w, b = _data(rng, (3, 4, 15, 12), (7, 4, 3, 3), dtype)
    _compare("conv2d", x, w, b, padding="same")
    x, w, b = _data(rng, (2, 5, 13, 14), (3, 5, 2, 4), dtype)  # even kernel: odd pixel bottom/right
    _compare("conv2d", x, w, b, padding="same")
    _compare("conv2d", x, w, b, padding="same", dilation=(2, 3))
    _compare("conv2d", x, w, b, padding="valid")


TRANSPOSED_CASES = [0, 1, 2, 3, (0, 2), (3, 1)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("pad", TRANSPOSED_CASES, ids=str)
def test_conv_transpose2d_3x3_stride1(pad, dtype):
    """Stride-1 3x3 transposed convs run forward through the Winograd conv (flipped kernel,
    padding 2 - P) while P <= 2, and through col2im for P = 3."""
    rng = np.random.default_rng(0)
    x, w, b = _data(rng, (3, 5, 13, 15), (5, 4, 3, 3), dtype, out_channels=4)
    _compare("conv_transpose2d", x, w, b, padding=pad)


@settings(max_examples=25, deadline=None)
@given(op=st.sampled_from(["conv2d", "conv_transpose2d"]), N=st.integers(1, 4), C=st.integers(3, 6),
       Fo=st.integers(1, 5), H=st.integers(9, 19), W=st.integers(9, 19),
       pad=st.tuples(st.integers(0, 3), st.integers(0, 3)), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_winograd_neighbourhood_matches_torch(op, N, C, Fo, H, W, pad, bias, seed):
    """3x3 stride-1 convolutions on both sides of the dispatch thresholds (C = 3 | >= 4,
    outputs around 12), with ragged tiles and asymmetric padding, float64, all gradients."""
    rng = np.random.default_rng(seed)
    if op == "conv2d":
        x, w, b = _data(rng, (N, C, H, W), (Fo, C, 3, 3), np.float64, bias)
    else:
        x, w, b = _data(rng, (N, C, H, W), (C, Fo, 3, 3), np.float64, bias, out_channels=Fo)
    _compare(op, x, w, b, padding=pad)


def test_conv2d_512_image_float32():
    """1x8x512x512: the workspace cuts the image into bands; float32 forward and gradients
    within round-off of a float64 PyTorch computation."""
    rng = np.random.default_rng(0)
    x, w, b = _data(rng, (1, 8, 512, 512), (8, 8, 3, 3), np.float32)
    tx, tw, tb = (tv.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(tx, tw, tb, padding=1)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    (y * tv.tensor(gy)).sum().backward()
    px, pw, pb = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, w, b))
    py = torch.nn.functional.conv2d(px, pw, pb, padding=1)
    (py * torch.tensor(gy.astype(np.float64))).sum().backward()
    for name, a, r in (("y", y, py), ("gx", tx.grad, px.grad), ("gw", tw.grad, pw.grad), ("gb", tb.grad, pb.grad)):
        r = r.detach().numpy()
        err = np.abs(a.numpy() - r).max() / np.abs(r).max()
        assert a.dtype == np.float32 and err < 2e-6, f"{name}: relative error {err:.2e}"


def test_bias_gradient_float32_is_accurately_summed():
    """gb sums N*OH*OW float32 values: accumulated in float64, then rounded once."""
    rng = np.random.default_rng(0)
    x, w, b = _data(rng, (5, 3, 26, 24), (2, 3, 3, 3), np.float32)
    tb = tv.tensor(b, requires_grad=True)
    y = F.conv2d(x, w, tb, padding=2)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    (y * tv.tensor(gy)).sum().backward()
    exact = gy.astype(np.float64).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(tb.grad.numpy(), exact, rtol=2e-7)


def test_bias_gradient_of_a_strided_gradient_and_of_float64():
    """gy reaching the conv as a non-contiguous view (through a transpose after the conv) takes
    the NumPy sum, a contiguous one the per-channel kernel: both are the float64 sum."""
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        x, w, b = _data(rng, (3, 4, 11, 9), (5, 4, 3, 3), dtype)
        for transpose in (False, True):
            tb = tv.tensor(b, requires_grad=True)
            y = F.conv2d(x, w, tb, padding=1)
            gy = rng.standard_normal(y.shape).astype(dtype)
            if transpose:
                (y.permute(0, 1, 3, 2) * tv.tensor(np.ascontiguousarray(gy.transpose(0, 1, 3, 2)))).sum().backward()
            else:
                (y * tv.tensor(gy)).sum().backward()
            exact = gy.astype(np.float64).sum(axis=(0, 2, 3))
            assert tb.grad.numpy().dtype == dtype
            np.testing.assert_allclose(tb.grad.numpy(), exact, rtol=2e-7 if dtype == np.float32 else 1e-13)


def test_conv2d_banded_large_image():
    """A single large image: the Winograd and im2col drivers cut it into bands."""
    rng = np.random.default_rng(0)
    x, w, b = _data(rng, (1, 8, 160, 168), (4, 8, 3, 3), np.float64)
    _compare("conv2d", x, w, b, padding=1)


@pytest.mark.parametrize("kernel", ["winograd", "im2col"])
def test_small_workspace_bands_agree(kernel):
    """Force tiny workspaces so every chunking path runs (bands of one row, several images)."""
    rng = np.random.default_rng(0)
    C = 4 if kernel == "winograd" else 3
    x = rng.standard_normal((3, C, 19, 23))
    w = rng.standard_normal((5, C, 3, 3))
    g = ConvGeometry(stride=(1, 1), padding=(1, 2), dilation=(1, 1), groups=1, kernel_size=(3, 3),
                     image_size=(19, 23), map_size=(19, 21))
    y_ref = cpu_conv.conv2d_forward_reference(x, w, g)
    gy = rng.standard_normal(y_ref.shape)
    gx_ref = cpu_conv.conv2d_grad_input_reference(gy, w, g)
    gw_ref = cpu_conv.conv2d_grad_weight_reference(x, gy, g)
    for budget in (1, 2000, 50_000, None):
        y = cpu_conv.conv2d_forward(x, w, g, workspace_bytes=budget)
        gx = cpu_conv.conv2d_grad_input(gy, w, g, workspace_bytes=budget)
        gw = cpu_conv.conv2d_grad_weight(x, gy, g, workspace_bytes=budget)
        np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(gx, gx_ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(gw, gw_ref, rtol=1e-10, atol=1e-10)


def _same_with_nonfinite(a, r, what):
    assert np.array_equal(np.isnan(a), np.isnan(r)), f"{what}: NaNs differ"
    assert np.array_equal(np.isposinf(a), np.isposinf(r)) and np.array_equal(np.isneginf(a), np.isneginf(r)), \
        f"{what}: infs differ"
    ok = np.isfinite(r)
    np.testing.assert_allclose(a[ok], r[ok], rtol=1e-10, atol=1e-10 * max(1.0, np.abs(r[ok]).max()), err_msg=what)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("where", ["x", "gy", "x-nan"])
def test_nonfinite_values_propagate_as_in_pytorch(where):
    """An inf through the Winograd-sized conv gives +-inf (not the NaN of inf - inf in the
    transforms) exactly where PyTorch does; NaN lands on the same outputs.

    (An inf in w is left out: where a window covers the padding, PyTorch's forward gives
    0 * inf = NaN but its input gradient skips the padding and gives inf; tinyvision's
    im2col gives NaN in both.)"""
    rng = np.random.default_rng(0)
    x, w, b = _data(rng, (2, 4, 14, 15), (3, 4, 3, 3), np.float64)
    if where == "x":
        x[0, 1, 5, 6], x[1, 3, 0, 0] = np.inf, -np.inf
    elif where == "x-nan":
        x[0, 1, 5, 6] = np.nan
    tx, tw = tv.tensor(x, requires_grad=True), tv.tensor(w, requires_grad=True)
    px, pw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y, py = F.conv2d(tx, tw, padding=1), torch.nn.functional.conv2d(px, pw, padding=1)
    _same_with_nonfinite(y.numpy(), py.detach().numpy(), "y")
    gy = rng.standard_normal(py.shape)
    if where == "gy":
        gy[1, 2, 7, 3] = np.inf
    (y * tv.tensor(gy)).sum().backward()
    (py * torch.tensor(gy)).sum().backward()
    _same_with_nonfinite(tx.grad.numpy(), px.grad.numpy(), "gx")
    _same_with_nonfinite(tw.grad.numpy(), pw.grad.numpy(), "gw")


# ---- input layouts and gradient requests -----------------------------------------------
@pytest.mark.parametrize("view", ["permute", "slice"])
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_non_contiguous_inputs(op, view):
    """Views (a permuted or strided/reversed slice of a Tensor) reach the kernels as
    non-contiguous arrays; forward and gradients (through the view) match PyTorch."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((2, 6, 20, 18))
    tb_ = tv.tensor(base, requires_grad=True)
    pb_ = torch.tensor(base, requires_grad=True)
    if view == "permute":
        tx, px = F.permute(tb_, (0, 1, 3, 2)), pb_.permute(0, 1, 3, 2)
    else:
        tx, px = tb_[:, ::2, 1:, ::-1], pb_[:, ::2, 1:].flip(3)
    C = tx.shape[1]
    w = rng.standard_normal((4, C, 3, 3) if op == "conv2d" else (C, 4, 3, 3))
    w_view = w.transpose(0, 1, 3, 2)                      # non-contiguous weight as well
    tw, pw = tv.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    tw_v, pw_v = F.permute(tw, (0, 1, 3, 2)), pw.permute(0, 1, 3, 2)
    assert not tx.data.flags["C_CONTIGUOUS"] and not tw_v.data.flags["C_CONTIGUOUS"]
    y = getattr(F, op)(tx, tw_v, None, padding=1)
    py = getattr(torch.nn.functional, op)(px, pw_v, None, padding=1)
    _close(y.numpy(), py.detach().numpy(), np.float64, "y")
    gy = rng.standard_normal(py.shape)
    (y * tv.tensor(gy)).sum().backward()
    (py * torch.tensor(gy)).sum().backward()
    _close(tb_.grad.numpy(), pb_.grad.numpy(), np.float64, "gx")
    _close(tw.grad.numpy(), pw.grad.numpy(), np.float64, "gw")
    # Raw Fortran-ordered / strided arrays straight into the kernels.
    x_f = np.asfortranarray(np.ascontiguousarray(px.detach().numpy()))
    g = ConvGeometry(stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, kernel_size=(3, 3),
                     image_size=x_f.shape[2:], map_size=x_f.shape[2:])
    if op == "conv2d":
        ref = cpu_conv.conv2d_forward_reference(np.ascontiguousarray(x_f), np.ascontiguousarray(w_view), g)
        np.testing.assert_allclose(cpu_conv.conv2d_forward(x_f, w_view, g), ref, rtol=1e-10, atol=1e-10)


GRAD_REQUESTS = [(False, True, True), (True, False, True), (True, True, False), (False, False, True),
                 (True, False, False)]


@pytest.mark.parametrize("grads", GRAD_REQUESTS, ids=lambda g: "".join("xwb"[k] for k in range(3) if g[k]))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_partial_gradient_requests(op, grads, bias):
    rng = np.random.default_rng(0)
    if op == "conv2d":
        x, w, b = _data(rng, (2, 4, 14, 13), (3, 4, 3, 3), np.float64, bias)
        _compare(op, x, w, b, grads, padding=1)
    else:
        x, w, b = _data(rng, (2, 4, 14, 13), (4, 3, 3, 3), np.float64, bias, out_channels=3)
        _compare(op, x, w, b, grads, padding=1)


def test_no_grad_builds_no_graph():
    rng = np.random.default_rng(0)
    x, w, b = _data(rng, (1, 4, 14, 14), (3, 4, 3, 3), np.float32)
    tx, tw = tv.tensor(x, requires_grad=True), tv.tensor(w, requires_grad=True)
    with tv.no_grad():
        y = F.conv2d(tx, tw, tv.tensor(b), padding=1)
        yt = F.conv_transpose2d(tx, tv.tensor(w.transpose(1, 0, 2, 3).copy()), padding=1)
    assert not y.requires_grad and not yt.requires_grad
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=1)
    _close(y.numpy(), ref.numpy(), np.float32, "y")


def test_plain_arrays_accepted():
    rng = np.random.default_rng(0)
    x, w, b = _data(rng, (2, 4, 13, 13), (3, 4, 3, 3), np.float64)
    y = F.conv2d(x, w, b, padding=1)
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=1)
    _close(y.numpy(), ref.numpy(), np.float64, "y")


# ---- bad or degenerate input -------------------------------------------------------------
def test_integer_input_is_a_type_error():
    x = np.ones((1, 4, 14, 14), dtype=np.int64)
    w = np.ones((2, 4, 3, 3), dtype=np.int64)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.conv2d(x, w)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.conv_transpose2d(x, w.transpose(1, 0, 2, 3))
    with pytest.raises((TypeError, ValueError), match="dtype"):
        F.conv2d(np.ones((1, 4, 14, 14)), w)


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("H", [14, 5], ids=["winograd-size", "small"])
def test_empty_batch_matches_pytorch(op, H):
    """N = 0: PyTorch returns an empty (0, F, OH, OW) output and zero weight/bias gradients."""
    rng = np.random.default_rng(0)
    x = np.zeros((0, 4, H, H))
    w = rng.standard_normal((4, 4, 3, 3))
    b = rng.standard_normal(4)
    tx, tw, tb = (tv.tensor(a, requires_grad=True) for a in (x, w, b))
    y = getattr(F, op)(tx, tw, tb, padding=1)
    py = getattr(torch.nn.functional, op)(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=1)
    assert y.shape == tuple(py.shape)
    y.sum().backward()
    assert tx.grad.shape == x.shape
    np.testing.assert_array_equal(tw.grad.numpy(), np.zeros_like(w))
    np.testing.assert_array_equal(tb.grad.numpy(), np.zeros_like(b))


def test_empty_transposed_output_raises():
    """An output size of 0: PyTorch raises in float64 (and returns an empty float32 tensor);
    tinyvision raises a ValueError naming the sizes for both dtypes."""
    x = np.zeros((5, 2, 2, 20), np.float32)
    w = np.zeros((2, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"output size \(0, 22\) is empty"):
        F.conv_transpose2d(x, w, padding=(2, 0))


def test_zero_channels_raise_clearly():
    """C = 0 or an empty weight: a ValueError naming the shapes (PyTorch rejects an empty weight
    and returns a malformed (N, 0, OH, OW) output for C = 0; neither is worth copying)."""
    with pytest.raises(ValueError, match=r"input shape \(1, 0, 6, 6\)"):
        F.conv2d(np.zeros((1, 0, 6, 6)), np.zeros((2, 0, 3, 3)), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"weight shape \(0, 3, 3, 3\)"):
        F.conv2d(np.zeros((1, 3, 6, 6)), np.zeros((0, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"weight shape \(3, 0, 3, 3\)"):
        F.conv_transpose2d(np.zeros((1, 3, 6, 6)), np.zeros((3, 0, 3, 3)))
    with pytest.raises(ValueError, match="weight"):
        F.conv2d(np.zeros((1, 3, 6, 6)), np.zeros((2, 3, 0, 3)))
    # An empty image (H or W = 0; PyTorch raises too), even where padding would give an output.
    with pytest.raises(ValueError, match=r"height and width must be >= 1, got input shape \(1, 4, 0, 6\)"):
        F.conv2d(np.zeros((1, 4, 0, 6)), np.zeros((2, 4, 1, 1)), padding=1)
    with pytest.raises(ValueError, match="height and width"):
        F.conv_transpose2d(np.zeros((1, 4, 6, 0)), np.zeros((4, 2, 3, 3)))


# ---- threads -----------------------------------------------------------------------------
def test_concurrent_calls_from_two_threads():
    """Two user threads running convolutions at once (sharing the worker pool) get the
    right answers and do not deadlock."""
    rng = np.random.default_rng(0)
    cases = []
    for xshape, wshape, pad in (((3, 4, 20, 18), (5, 4, 3, 3), 1),     # Winograd
                                ((3, 3, 17, 15), (4, 3, 5, 3), 2),     # im2col
                                ((1, 6, 25, 23), (4, 6, 3, 3), 0),     # Winograd, banded
                                ((1, 3, 30, 28), (4, 3, 3, 3), 1)):    # one image: BLAS threads
        x, w, _ = _data(rng, xshape, wshape, np.float64, bias=False)
        ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=pad).numpy()
        cases.append((x, w, pad, ref))
    errors = []

    def worker(k):
        try:
            for it in range(6):
                x, w, pad, ref = cases[(k + it) % len(cases)]
                tx, tw = tv.tensor(x, requires_grad=True), tv.tensor(w, requires_grad=True)
                y = F.conv2d(tx, tw, padding=pad)
                np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-10)
                y.sum().backward()
                g = ConvGeometry(stride=(1, 1), padding=(pad, pad), dilation=(1, 1), groups=1,
                                 kernel_size=w.shape[2:], image_size=x.shape[2:], map_size=ref.shape[2:])
                gx_ref = cpu_conv.conv2d_grad_input_reference(np.ones_like(ref), w, g)
                np.testing.assert_allclose(tx.grad.numpy(), gx_ref, rtol=1e-10, atol=1e-10)
        except Exception as e:  # noqa: BLE001 - reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "deadlock: a conv thread did not finish"
    assert not errors, errors[0]


def test_pools_of_different_sizes_used_concurrently():
    """Caller threads asking for pools of different sizes at once: a pool another thread has
    just fetched must stay usable (it used to be shut down and replaced, so submit raised)."""
    from tinyvision.kernels.cpu import _threads

    errors = []

    def caller(n_tasks):
        try:
            for _ in range(40):
                assert _threads.run_parallel(lambda k: k + 1, list(range(n_tasks))) == list(range(1, n_tasks + 1))
        except Exception as e:  # noqa: BLE001 - reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=caller, args=(n,)) for n in (2, 3, 4, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[0]


def test_single_numba_thread_runs_serially():
    """numba.set_num_threads(1) (per caller thread): the kernels run in the caller, same numbers."""
    import numba

    rng = np.random.default_rng(0)
    x, w, b = _data(rng, (3, 4, 14, 15), (5, 4, 3, 3), np.float64)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        _compare("conv2d", x, w, b, padding=1)
        _compare("conv2d", x[:, :3], w[:, :3], b, padding=(2, 0), stride=2)
    finally:
        numba.set_num_threads(before)


_FORK_SCRIPT = """
import os, sys, numpy as np, tinyvision as tv, tinyvision.functional as F
rng = np.random.default_rng(0)
cases = [((4, 4, 20, 20), (3, 4, 3, 3), 1, 1),   # Winograd on the worker pool
         ((1, 3, 40, 40), (4, 3, 3, 3), 2, 1)]   # one image: Numba's parallel col2im
def run():
    out = []
    for xs, ws, stride, pad in cases:
        x = tv.tensor(rng.standard_normal(xs), requires_grad=True)
        y = F.conv2d(x, rng.standard_normal(ws), stride=stride, padding=pad)
        y.sum().backward()
        out += [y.numpy(), x.grad.numpy()]
    return out
rng = np.random.default_rng(0); parent = run()
pid = os.fork()
if pid == 0:
    rng = np.random.default_rng(0); child = run()
    os._exit(0 if all(np.array_equal(a, b) for a, b in zip(parent, child)) else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_conv_in_forked_child():
    """A process forked after convolving (a data-loader worker, a multiprocessing pool) can
    convolve: the parent's worker pool is not inherited (it hung), and Numba's OpenMP layer,
    which kills a child that launches a parallel kernel, is not used there."""
    done = subprocess.run([sys.executable, "-c", _FORK_SCRIPT], timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


# ---- layers ------------------------------------------------------------------------------
def test_layers_float32_winograd_match_torch():
    rng = np.random.default_rng(0)
    from tinyvision import nn

    conv = nn.Conv2d(4, 6, 3, padding=(1, 2))
    tconv = nn.ConvTranspose2d(4, 6, 3, padding=1)
    x = rng.standard_normal((2, 4, 15, 13)).astype(np.float32)
    for layer, tlayer in ((conv, torch.nn.Conv2d(4, 6, 3, padding=(1, 2))),
                          (tconv, torch.nn.ConvTranspose2d(4, 6, 3, padding=1))):
        with torch.no_grad():
            tlayer.weight.copy_(torch.tensor(layer.weight.numpy()))
            tlayer.bias.copy_(torch.tensor(layer.bias.numpy()))
        tx = tv.tensor(x, requires_grad=True)
        px = torch.tensor(x, requires_grad=True)
        y, py = layer(tx), tlayer(px)
        _close(y.numpy(), py.detach().numpy(), np.float32, "y")
        y.sum().backward()
        py.sum().backward()
        _close(tx.grad.numpy(), px.grad.numpy(), np.float32, "gx")
        _close(layer.weight.grad.numpy(), tlayer.weight.grad.numpy(), np.float32, "gw")
        _close(layer.bias.grad.numpy(), tlayer.bias.grad.numpy(), np.float32, "gb")
