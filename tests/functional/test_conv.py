"""F.conv2d and F.conv_transpose2d against PyTorch (forward and every gradient, float64, many
Hypothesis configurations), float32 round-off, gradcheck, bad input, and the docs' examples."""
import doctest
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.functional import conv as conv_module
from tinyvision.kernels.conv_geometry import ConvGeometry, conv_output_size
from tinyvision.testing import gradcheck, tolerance

torch = pytest.importorskip("torch")
TF = torch.nn.functional
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pair_or_int(draw, lo, hi):
    """An int, or a pair drawn independently (asymmetric): both spellings must work."""
    a, b = draw(st.integers(lo, hi)), draw(st.integers(lo, hi))
    return a if draw(st.booleans()) and a == b else (a, b)


def as_pair(v):
    return v if isinstance(v, tuple) else (v, v)


@st.composite
def conv2d_cases(draw, max_hw=11, max_mult=3):
    ks = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = pair_or_int(draw, 1, 3)
    dilation = pair_or_int(draw, 1, 3)
    padding = draw(st.sampled_from(["int", "valid", "same"] if as_pair(stride) == (1, 1) else ["int", "valid"]))
    if padding == "int":
        padding = pair_or_int(draw, 0, 3)
    G = draw(st.integers(1, 3))
    C, Fo = G * draw(st.integers(1, max_mult)), G * draw(st.integers(1, max_mult))
    tot = (0, 0) if padding in ("valid", "same") else tuple(2 * p for p in as_pair(padding))
    if padding == "same":
        tot = tuple(d * (k - 1) for d, k in zip(as_pair(dilation), ks))
    ext = tuple(d * (k - 1) + 1 for d, k in zip(as_pair(dilation), ks))
    H = draw(st.integers(max(1, ext[0] - tot[0]), max(max_hw, ext[0] - tot[0])))
    W = draw(st.integers(max(1, ext[1] - tot[1]), max(max_hw, ext[1] - tot[1])))
    N = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    return (N, C, H, W), (Fo, C // G) + ks, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=G)


@st.composite
def conv_transpose2d_cases(draw, max_hw=8, max_mult=3):
    ks = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = pair_or_int(draw, 1, 3)
    dilation = pair_or_int(draw, 1, 3)
    padding = pair_or_int(draw, 0, 3)
    # PyTorch's rule: output_padding < stride or < dilation, per dimension.
    op = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(as_pair(stride), as_pair(dilation)))
    G = draw(st.integers(1, 3))
    C, Fo = G * draw(st.integers(1, max_mult)), G * draw(st.integers(1, max_mult))
    # Output size must be >= 1: (H-1)S - 2P + D(K-1) + OP + 1 >= 1.
    dims = []
    for s, p, d, k, o in zip(as_pair(stride), as_pair(padding), as_pair(dilation), ks, op):
        lo = 1
        while (lo - 1) * s - 2 * p + d * (k - 1) + o + 1 < 1:
            lo += 1
        dims.append(draw(st.integers(lo, lo + max_hw - 1)))
    N = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    kw = dict(stride=stride, padding=padding, output_padding=op, groups=G, dilation=dilation)
    return (N, C) + tuple(dims), (C, Fo // G) + ks, bias, kw


def run_both(ours, theirs, x, w, b, kw, gy_seed=1):
    """Forward and all gradients of ours and PyTorch's on the same data and upstream gradient."""
    X, W = tv.tensor(x, requires_grad=True), tv.tensor(w, requires_grad=True)
    B = None if b is None else tv.tensor(b, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    ty = theirs(tx, tw, tb, **kw)
    gy = np.random.default_rng(gy_seed).standard_normal(tuple(ty.shape)).astype(x.dtype)
    ty.backward(torch.tensor(gy))
    y = ours(X, W, B, **kw)
    y.backward(gy)
    pairs = [("y", y, ty), ("gx", X.grad, tx.grad), ("gw", W.grad, tw.grad)]
    if b is not None:
        pairs.append(("gb", B.grad, tb.grad))
    return pairs


def check_pairs(pairs, dtype, scale=1.0):
    tol = tolerance(dtype)
    for name, a, t in pairs:
        t = t.detach().numpy()
        assert a.shape == t.shape, f"{name}: shape {a.shape} vs torch {t.shape}"
        assert a.dtype == dtype, f"{name}: dtype {a.dtype}"
        np.testing.assert_allclose(a.numpy(), t, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=name)


def data(xs, ws, bias, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(ws[0] if len(ws) else 0).astype(dtype) if bias else None
    return rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype), b


@given(case=conv2d_cases())
def test_conv2d_matches_torch_float64(case):
    xs, ws, bias, kw = case
    x, w, _ = data(xs, ws, False)
    b = np.random.default_rng(2).standard_normal(ws[0]) if bias else None
    check_pairs(run_both(F.conv2d, TF.conv2d, x, w, b, kw), np.float64)


@given(case=conv_transpose2d_cases())
def test_conv_transpose2d_matches_torch_float64(case):
    xs, ws, bias, kw = case
    x, w, _ = data(xs, ws, False)
    b = np.random.default_rng(2).standard_normal(ws[1] * kw["groups"]) if bias else None
    check_pairs(run_both(F.conv_transpose2d, TF.conv_transpose2d, x, w, b, kw), np.float64)


@pytest.mark.parametrize(
    "xs, ws, kw",
    [
        ((2, 16, 12, 12), (8, 16, 3, 3), dict(padding=1)),
        ((2, 8, 13, 11), (12, 4, 3, 5), dict(stride=2, padding=(1, 2), groups=2)),
        ((1, 6, 9, 9), (6, 1, 3, 3), dict(padding="same", dilation=2, groups=6)),
        ((2, 32, 6, 6), (16, 32, 1, 1), dict()),
    ],
    ids=["3x3", "strided-grouped-asym", "depthwise-same-dilated", "1x1"],
)
def test_conv2d_matches_torch_float32(xs, ws, kw):
    x, w, b = data(xs, ws, True, np.float32)
    check_pairs(run_both(F.conv2d, TF.conv2d, x, w, b, kw), np.float32, scale=10)


@pytest.mark.parametrize(
    "xs, ws, kw",
    [
        ((2, 16, 8, 8), (16, 8, 2, 2), dict(stride=2)),
        ((2, 6, 7, 5), (6, 2, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=3)),
        ((1, 4, 5, 6), (4, 3, 4, 3), dict(stride=(1, 3), padding=(2, 0), output_padding=(1, 2), dilation=(2, 1))),
    ],
    ids=["2x2s2", "3x3s2-op1-grouped", "op-below-dilation"],
)
def test_conv_transpose2d_matches_torch_float32(xs, ws, kw):
    x, w, b = data(xs, ws, False, np.float32)
    b = np.random.default_rng(3).standard_normal(ws[1] * kw.get("groups", 1)).astype(np.float32)
    check_pairs(run_both(F.conv_transpose2d, TF.conv_transpose2d, x, w, b, kw), np.float32, scale=10)


@settings(max_examples=8)
@given(case=conv2d_cases(max_hw=5, max_mult=1))
def test_conv2d_gradcheck(case):
    xs, ws, bias, kw = case
    x, w, b = data((1,) + xs[1:], ws, bias)
    gradcheck(lambda X, W, *B: F.conv2d(X, W, B[0] if B else None, **kw), x, w, *([b] if bias else []))


@settings(max_examples=8)
@given(case=conv_transpose2d_cases(max_hw=3, max_mult=1))
def test_conv_transpose2d_gradcheck(case):
    xs, ws, bias, kw = case
    x, w, _ = data((1,) + xs[1:], ws, False)
    b = np.random.default_rng(2).standard_normal(ws[1] * kw["groups"])
    gradcheck(lambda X, W, B: F.conv_transpose2d(X, W, B, **kw), x, w, b)


def test_conv_transpose2d_is_the_adjoint_of_conv2d():
    """<conv2d(x, w), y> = <x, conv_transpose2d(y, w)>: the defining property, by hand."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 9, 7)), rng.standard_normal((6, 2, 3, 2))
    kw = dict(stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2)
    y = F.conv2d(x, w, **kw).numpy()
    r = rng.standard_normal(y.shape)
    op = (9 - ((y.shape[2] - 1) * 2 - 2 + 2 + 1), 0)  # output_padding that recovers H = 9
    back = F.conv_transpose2d(r, w, stride=(2, 1), padding=(1, 1), output_padding=op, groups=2, dilation=(1, 2))
    assert back.shape == x.shape
    assert np.isclose(np.vdot(y, r), np.vdot(x, back.numpy()), rtol=1e-12)


def test_only_requested_gradients_are_computed():
    x, w, b = data((2, 3, 6, 6), (4, 3, 3, 3), True)
    W = tv.tensor(w, requires_grad=True)
    y = F.conv2d(x, W, b, padding=1)  # x and b are plain arrays: no gradient for them
    y.sum().backward()
    ref = F.conv2d(tv.tensor(x), tv.tensor(w, requires_grad=True), b, padding=1)
    assert W.grad is not None and W.grad.shape == w.shape
    with tv.no_grad():
        z = F.conv2d(x, W, b, padding=1)
    assert not z.requires_grad
    np.testing.assert_allclose(z.numpy(), ref.numpy())


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_same_padding_even_kernel_puts_extra_at_bottom_right():
    x, w, _ = data((1, 1, 5, 6), (1, 1, 4, 2), False)
    y = F.conv2d(x, w, padding="same").numpy()
    assert y.shape == (1, 1, 5, 6)
    np.testing.assert_allclose(y, TF.conv2d(torch.tensor(x), torch.tensor(w), padding="same").numpy(), rtol=1e-12)


BAD_CONV2D = [
    ("non-4D input", lambda x, w: F.conv2d(x[0], w), ValueError, "4-D"),
    ("5-D weight", lambda x, w: F.conv2d(x, w[None]), ValueError, "weight must be 4-D"),
    ("kernel larger than padded input", lambda x, w: F.conv2d(x[:, :, :2], w), ValueError, "larger than the padded input"),
    ("dilated kernel too large", lambda x, w: F.conv2d(x, w, dilation=4), ValueError, "larger than the padded input"),
    ("channels not divisible by groups", lambda x, w: F.conv2d(x, w, groups=3), ValueError, "divisible by groups"),
    ("weight channels mismatch", lambda x, w: F.conv2d(x, w[:, :2]), ValueError, "expects 2 input channels"),
    ("out channels not divisible", lambda x, w: F.conv2d(x[:, :2], w[:3, :1], groups=2), ValueError, "out channels"),
    ("dtype mismatch", lambda x, w: F.conv2d(x, w.astype(np.float32)), ValueError, "same dtype"),
    ("bias dtype mismatch", lambda x, w: F.conv2d(x, w, np.zeros(4, np.float32)), ValueError, "same dtype"),
    ("bias shape", lambda x, w: F.conv2d(x, w, np.zeros(3)), ValueError, r"bias must have shape \(4,\)"),
    ("integer input", lambda x, w: F.conv2d(x.astype(np.int64), w), TypeError, "float32 or float64"),
    ("zero stride", lambda x, w: F.conv2d(x, w, stride=0), ValueError, "stride"),
    ("negative padding", lambda x, w: F.conv2d(x, w, padding=-1), ValueError, "padding"),
    ("same with stride", lambda x, w: F.conv2d(x, w, stride=2, padding="same"), ValueError, "strided"),
    ("unknown padding string", lambda x, w: F.conv2d(x, w, padding="full"), ValueError, "'valid' or 'same'"),
    ("stride triple", lambda x, w: F.conv2d(x, w, stride=(1, 1, 1)), TypeError, "stride"),
    ("zero groups", lambda x, w: F.conv2d(x, w, groups=0), ValueError, "groups"),
]


@pytest.mark.parametrize("name, call, exc, match", BAD_CONV2D, ids=[c[0] for c in BAD_CONV2D])
def test_conv2d_bad_input(name, call, exc, match):
    x, w, _ = data((2, 4, 5, 5), (4, 4, 3, 3), False)
    with pytest.raises(exc, match=match):
        call(x, w)


BAD_CONV_T = [
    ("non-4D input", lambda x, w: F.conv_transpose2d(x[0], w), ValueError, "4-D"),
    ("weight in-channels mismatch", lambda x, w: F.conv_transpose2d(x, w[:3]), ValueError, "expects 3 input channels"),
    ("channels not divisible by groups", lambda x, w: F.conv_transpose2d(x, w, groups=3), ValueError, "divisible by groups"),
    ("output_padding >= stride and dilation", lambda x, w: F.conv_transpose2d(x, w, stride=2, output_padding=2),
     ValueError, "output_padding"),
    ("output_padding with stride 1", lambda x, w: F.conv_transpose2d(x, w, output_padding=1), ValueError, "output_padding"),
    ("empty output", lambda x, w: F.conv_transpose2d(x[:, :, :1, :1], w, padding=2), ValueError, "empty"),
    ("dtype mismatch", lambda x, w: F.conv_transpose2d(x, w.astype(np.float32)), ValueError, "same dtype"),
    ("bias shape", lambda x, w: F.conv_transpose2d(x, w, np.zeros(4)), ValueError, r"bias must have shape \(2,\)"),
]


@pytest.mark.parametrize("name, call, exc, match", BAD_CONV_T, ids=[c[0] for c in BAD_CONV_T])
def test_conv_transpose2d_bad_input(name, call, exc, match):
    x, w, _ = data((2, 4, 5, 5), (4, 2, 3, 3), False)
    with pytest.raises(exc, match=match):
        call(x, w)


def test_pytorch_rejects_what_we_reject():
    """Spot-check that the bad inputs above are bad for PyTorch too (not stricter than it)."""
    x, w = torch.zeros(2, 4, 5, 5), torch.zeros(4, 2, 3, 3)
    for call in (lambda: TF.conv_transpose2d(x, w, stride=2, output_padding=2),
                 lambda: TF.conv2d(x[:, :, :2], torch.zeros(4, 4, 3, 3)),
                 lambda: TF.conv2d(x, torch.zeros(4, 4, 3, 3), groups=4),
                 lambda: TF.conv2d(x, torch.zeros(4, 4, 3, 3), stride=2, padding="same")):
        with pytest.raises((RuntimeError, ValueError)):
            call()


# --------------------------------------------------------------------------------------
# The ConvGeometry that F.conv2d / F.conv_transpose2d build (checked once) and every kernel takes
# --------------------------------------------------------------------------------------
GEOMETRY_BY_HAND = [
    # (x shape, w shape, conv2d kwargs, the geometry by hand: stride, padding, dilation, G, kernel, image, map)
    ((1, 3, 7, 7), (4, 3, 3, 3), dict(stride=2, padding=1),
     ((2, 2), (1, 1), (1, 1), 1, (3, 3), (7, 7), (4, 4))),          # (7 + 2 - 2 - 1)//2 + 1 = 4
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2),
     ((2, 1), (1, 2), (2, 1), 2, (3, 2), (9, 8), (4, 11))),         # (9+2-4-1)//2+1 = 4, (8+4-1-1)//1+1 = 11
    ((1, 1, 5, 6), (1, 1, 4, 2), dict(padding="same"),
     ((1, 1), (1, 0), (1, 1), 1, (4, 2), (5, 6), (5, 6))),          # total 3 and 1: top/left 1 and 0
    ((1, 2, 5, 5), (3, 2, 5, 1), dict(padding="valid", dilation=(1, 3)),
     ((1, 1), (0, 0), (1, 3), 1, (5, 1), (5, 5), (1, 5))),
]


@pytest.mark.parametrize("xs, ws, kw, want", GEOMETRY_BY_HAND, ids=["s2p1", "grouped-asym", "same-even", "valid"])
def test_conv2d_geometry_by_hand(xs, ws, kw, want):
    """The geometry conv2d stores on its Function (and hands to every kernel), field by field."""
    x, w, _ = data(xs, ws, False)
    y = F.conv2d(tv.tensor(x, requires_grad=True), w, **kw)
    assert y.grad_fn.geometry == ConvGeometry(*want)
    assert y.shape[2:] == want[-1]


def test_conv_transpose2d_geometry_is_the_underlying_conv2ds():
    """conv_transpose2d (x (1, 4, 3, 3) -> y (1, 2, 8, 7)) stores the geometry of the conv2d whose
    input gradient it is: its output on the image side, its input on the map side."""
    x, w, _ = data((1, 4, 3, 3), (4, 2, 3, 2), False)
    y = F.conv_transpose2d(tv.tensor(x, requires_grad=True), w, stride=(3, 2), padding=(1, 0), output_padding=(1, 0))
    # OH = (H-1)*SH - 2*PH + DH*(KH-1) + OPH + 1 = 2*3 - 2 + 2 + 1 + 1 = 8;  OW = 2*2 - 0 + 1 + 0 + 1 = 6
    assert y.shape == (1, 2, 8, 6)
    assert y.grad_fn.geometry == ConvGeometry(stride=(3, 2), padding=(1, 0), dilation=(1, 1), groups=1,
                                              kernel_size=(3, 2), image_size=(8, 6), map_size=(3, 3))


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@settings(max_examples=60)
@given(case=conv2d_cases(max_hw=13))
def test_conv2d_geometry_map_size_is_torchs_output_size(case):
    """For random valid arguments (int, pair, 'valid', 'same' padding; groups; dilation), the
    geometry's map_size is the output size PyTorch computes, its image and kernel sizes the
    arrays', and, for integer padding, map_size is conv_output_size of the rest."""
    xs, ws, _, kw = case
    x, w = np.zeros(xs), np.zeros(ws)
    g = conv_module._conv2d_geometry(x, w, None, **kw)
    assert g.map_size == tuple(TF.conv2d(torch.zeros(xs), torch.zeros(ws), **kw).shape[2:])
    assert g.image_size == xs[2:] and g.kernel_size == ws[2:] and g.groups == kw["groups"]
    if not isinstance(kw["padding"], str):
        assert g.map_size == conv_output_size(g.image_size, g.kernel_size, g.stride, g.padding, g.dilation)


@settings(max_examples=60)
@given(case=conv_transpose2d_cases())
def test_conv_transpose2d_geometry_image_size_is_torchs_output_size(case):
    xs, ws, _, kw = case
    x, w = np.zeros(xs), np.zeros(ws)
    g = conv_module._conv_transpose2d_geometry(x, w, None, kw["stride"], kw["padding"], kw["output_padding"],
                                               kw["groups"], kw["dilation"])
    assert g.image_size == tuple(TF.conv_transpose2d(torch.zeros(xs), torch.zeros(ws), **kw).shape[2:])
    assert g.map_size == xs[2:] and g.kernel_size == ws[2:]


def test_docstring_examples():
    assert doctest.testmod(conv_module, raise_on_error=False).failed == 0


def test_docs_conv_md_examples():
    path = os.path.join(ROOT, "docs", "conv.md")
    if not os.path.exists(path):
        pytest.skip("docs/conv.md not present")
    result = doctest.testfile(path, module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
