"""The kernel contract of ``tinyvision/kernels/dispatch.py`` (issue 13 §1):

* every fast kernel listed in ``KERNELS`` has a ``<name>_reference`` with the same signature
  (and the GPU kernel, where there is one, the same signature too);
* reference and fast agree on seeded random inputs (a Hypothesis seed, a few examples each),
  and the GPU kernels, run on NumPy arrays, agree with them;
* the dispatch itself: NumPy -> CPU, impl="reference", a bogus impl, mixed devices, CuPy arrays
  without a GPU kernel (simulated), and ``use_impl`` switching whole ops to the references.
"""
import importlib
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
from tinyvision.backend import DeviceError
from tinyvision.functional import pooling as P
from tinyvision.functional import resample as R
from tinyvision.kernels import dispatch
from tinyvision.kernels.dispatch import IMPLS, KERNELS, kernel, use_impl

PAIRS = [(op, name) for op, names in KERNELS.items() for name in names]
IDS = [f"{op}.{name}" for op, name in PAIRS]


def cpu_module(op):
    return importlib.import_module(f"tinyvision.kernels.cpu.{op}")


def gpu_function(op, name):
    try:
        return getattr(importlib.import_module(f"tinyvision.kernels.gpu.{op}"), name, None)
    except ModuleNotFoundError:
        return None


def signature(fn):
    return inspect.signature(getattr(fn, "py_func", fn))  # a Numba dispatcher: its Python function


# --------------------------------------------------------------------------------------
# Seeded random inputs, one builder per kernel: rng -> the fast kernel's arguments
# --------------------------------------------------------------------------------------
def _dtype(rng):
    return (np.float32, np.float64)[rng.integers(2)]


def _images(rng, shape, dtype, ties_and_nan=False):
    x = rng.standard_normal(shape)
    if ties_and_nan:
        if rng.random() < 0.5:
            x = np.round(x)  # ties: the first maximum wins
        if rng.random() < 0.3:
            x.flat[rng.integers(0, x.size, 2)] = np.nan
    return x.astype(dtype)


def _max_geometry(rng):
    while True:
        k = rng.integers(1, 4, 2)
        s = rng.integers(1, 3, 2)
        p = np.array([rng.integers(0, k[0] // 2 + 1), rng.integers(0, k[1] // 2 + 1)])
        d = rng.integers(1, 3, 2)
        H, W = rng.integers(1, 8, 2)
        ceil_mode = bool(rng.integers(2))
        OH = P._pool_output_size(H, k[0], s[0], p[0], d[0], ceil_mode)
        OW = P._pool_output_size(W, k[1], s[1], p[1], d[1], ceil_mode)
        if OH >= 1 and OW >= 1:
            tables = P._max_windows(H, OH, k[0], s[0], p[0], d[0]) + P._max_windows(W, OW, k[1], s[1], p[1], d[1])
            return (int(H), int(W)), tables, (int(d[0]), int(d[1]))


def _avg_geometry(rng):
    H, W = (int(v) for v in rng.integers(1, 8, 2))
    k = rng.integers(1, 4, 2)
    s = rng.integers(1, 3, 2)
    p = [int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1))]
    OH = max(P._pool_output_size(H, k[0], s[0], p[0], 1, True), 1)
    OW = max(P._pool_output_size(W, k[1], s[1], p[1], 1, True), 1)
    hs, hc, hp = P._avg_windows(H, OH, k[0], s[0], p[0])
    ws, wc, wp = P._avg_windows(W, OW, k[1], s[1], p[1])
    divisor = np.outer(hp, wp).astype(np.float64) if rng.integers(2) else np.outer(hc, wc).astype(np.float64)
    divisor[np.outer(hc, wc) == 0] = 1.0
    return (H, W), (hs, hc, ws, wc), divisor


def max_pool_forward_args(rng):
    (H, W), tables, d = _max_geometry(rng)
    x = _images(rng, (int(rng.integers(1, 3)), int(rng.integers(1, 3)), H, W), _dtype(rng), ties_and_nan=True)
    return (x, *tables, *d)


def max_pool_backward_args(rng):
    x, *rest = max_pool_forward_args(rng)
    _, indices = cpu_module("pool").max_pool2d_forward(x, *rest)
    indices.flat[0] = x.shape[2] * x.shape[3]  # an empty window's index points outside: skipped
    return (_images(rng, indices.shape, x.dtype), indices, *x.shape[2:])


def avg_pool_forward_args(rng):
    (H, W), tables, divisor = _avg_geometry(rng)
    return (_images(rng, (2, int(rng.integers(1, 3)), H, W), _dtype(rng)), *tables, divisor)


def avg_pool_backward_args(rng):
    (H, W), tables, divisor = _avg_geometry(rng)
    return (_images(rng, (2, 2) + divisor.shape, _dtype(rng)), *tables, divisor, H, W)


def _taps(rng, dtype):
    H, W, OH, OW = (int(v) for v in rng.integers(1, 9, 4))
    mode = ("nearest", "nearest-exact", "bilinear")[rng.integers(3)]
    if mode == "bilinear":
        align = bool(rng.integers(2))
        h_taps, w_taps = R._linear_taps(H, OH, None, align, dtype), R._linear_taps(W, OW, None, align, dtype)
    else:
        h_taps = R._nearest_taps(H, OH, None, mode == "nearest-exact")
        w_taps = R._nearest_taps(W, OW, None, mode == "nearest-exact")
    fn = R.Resample2dFunction(h_taps, w_taps, (H, W))
    return (H, W, OH, OW), fn.h_table + fn.w_table


def resample_forward_args(rng):
    dtype = _dtype(rng)
    (H, W, _, _), taps = _taps(rng, dtype)
    return (_images(rng, (2, 2, H, W), dtype), *taps)


def resample_backward_args(rng):
    dtype = _dtype(rng)
    (H, W, OH, OW), taps = _taps(rng, dtype)
    return (_images(rng, (2, 2, OH, OW), dtype), *taps, H, W)


def _boxes(rng, n, dtype, span=20.0):
    corner = rng.uniform(0, span, (n, 2))
    size = rng.uniform(0, span / 2, (n, 2))
    size[rng.random(n) < 0.1] = 0  # zero-area boxes: IoU 0 with everything (0/0 -> 0)
    b = np.concatenate([corner, corner + size], axis=1)
    if n > 2:
        b[1] = b[0]  # a duplicate: IoU exactly 1
    return np.round(b, 1).astype(dtype)


def box_iou_args(rng):
    dtype = _dtype(rng)
    return (_boxes(rng, int(rng.integers(0, 12)), dtype), _boxes(rng, int(rng.integers(0, 12)), dtype))


def _sorted_columns(rng, n, dtype):
    b = _boxes(rng, n, dtype)
    return tuple(np.ascontiguousarray(b[:, k]) for k in range(4))


def _threshold(rng):
    return float((-0.1, 0.0, 0.3, 0.5, 0.7, 1.0)[rng.integers(6)])


def nms_args(rng):
    # up to 150 boxes: both sides of GRID_MIN_N (the fast path switches to the grid kernel)
    return (*_sorted_columns(rng, int(rng.integers(0, 150)), _dtype(rng)), _threshold(rng))


def batched_nms_args(rng):
    n = int(rng.integers(0, 200))
    sizes = rng.multinomial(n, np.ones(4) / 4)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return (*_sorted_columns(rng, n, _dtype(rng)), starts, _threshold(rng))


AREA_RANGES = np.array([[0.0, 1e10], [0.0, 40.0], [40.0, 1e10]])
IOU_THRESHOLDS = np.array([0.1, 0.5, 0.75])


def coco_match_args(rng):
    n_groups = int(rng.integers(1, 6))
    nd, ng = rng.integers(0, 6, n_groups), rng.integers(0, 5, n_groups)
    dt_end, gt_end = np.cumsum(nd).astype(np.int64), np.cumsum(ng).astype(np.int64)
    dt_start, gt_start = dt_end - nd, gt_end - ng
    dt_box = np.round(rng.uniform(1, 12, (int(nd.sum()), 4)), 0)
    gt_box = np.round(rng.uniform(1, 12, (int(ng.sum()), 4)), 0)
    gt_crowd = rng.random(len(gt_box)) < 0.2
    gt_counts = rng.random(len(gt_box)) < 0.9  # some "gt id 0" (bug-for-bug mode)
    gt_area = gt_box[:, 2] * gt_box[:, 3]
    return (dt_start, dt_end, gt_start, gt_end, dt_box, dt_box[:, 2] * dt_box[:, 3], gt_box, gt_area,
            gt_crowd, gt_counts, AREA_RANGES, IOU_THRESHOLDS)


def coco_accumulate_args(rng):
    n_dt, n_cat = int(rng.integers(0, 30)), 3
    state = rng.integers(0, 3, (len(AREA_RANGES), len(IOU_THRESHOLDS), n_dt)).astype(np.int8)
    category = np.sort(rng.integers(0, n_cat, n_dt))
    cat_start = np.searchsorted(category, np.arange(n_cat), side="left").astype(np.int64)
    cat_end = np.searchsorted(category, np.arange(n_cat), side="right").astype(np.int64)
    dt_score = np.round(rng.random(n_dt), 1)
    for k in range(n_cat):  # descending score inside each category (ties possible)
        dt_score[cat_start[k]:cat_end[k]] = np.sort(dt_score[cat_start[k]:cat_end[k]])[::-1]
    n_pos = rng.integers(0, 4, (n_cat, len(AREA_RANGES))).astype(np.int64)
    return (cat_start, cat_end, rng.integers(0, 5, n_dt).astype(np.int64), dt_score, state, n_pos,
            np.linspace(0, 1, 11), np.array([1, 3, 10], dtype=np.int64), bool(rng.integers(2)))


def _channels(rng, dtype):
    """x (N, C, L) and per-channel w, b, mu, r of x's dtype."""
    N, C, L = (int(v) for v in rng.integers(1, 5, 3))
    x = rng.standard_normal((N, C, L)).astype(dtype)
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    mu, r = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2.0, C).astype(dtype)
    return x, w, b, mu, r


def bn_train_forward_args(rng):
    x, w, b, _, _ = _channels(rng, _dtype(rng))
    return x, w, b, 1e-5


def bn_eval_forward_args(rng):
    return _channels(rng, _dtype(rng))


def bn_backward_args(rng):
    x, w, b, mu, r = _channels(rng, _dtype(rng))
    return rng.standard_normal(x.shape).astype(x.dtype), x, w, mu, r, bool(rng.integers(2))


def _signed_with_zeros_and_nan(rng, n, dtype):
    v = rng.standard_normal(n).astype(dtype)
    v[rng.random(n) < 0.2] = 0.0
    v[rng.random(n) < 0.1] = np.nan
    return v


def relu_forward_args(rng):
    return (_signed_with_zeros_and_nan(rng, int(rng.integers(1, 200)), _dtype(rng)),)


def relu_backward_args(rng):
    (y,) = relu_forward_args(rng)
    y = np.where(y <= 0, 0, y).astype(y.dtype)  # a ReLU output: zeros, positives, NaN
    return _signed_with_zeros_and_nan(rng, y.size, y.dtype), y


def channel_sum_args(rng):
    (x,) = relu_forward_args(rng)  # values with zeros and NaNs
    n = int(rng.integers(1, 4))
    C = int(rng.integers(1, 6))
    L = int(rng.integers(1, 40))
    x = np.resize(x, n * C * L).reshape(n, C, L)
    return (np.ascontiguousarray(x),)


ARGS = {
    ("pool", "max_pool2d_forward"): max_pool_forward_args,
    ("pool", "max_pool2d_backward"): max_pool_backward_args,
    ("pool", "avg_pool2d_forward"): avg_pool_forward_args,
    ("pool", "avg_pool2d_backward"): avg_pool_backward_args,
    ("resample", "resample2d_forward"): resample_forward_args,
    ("resample", "resample2d_backward"): resample_backward_args,
    ("boxes", "box_iou"): box_iou_args,
    ("nms", "nms_sorted"): nms_args,
    ("nms", "batched_nms_grouped"): batched_nms_args,
    ("coco", "coco_match"): coco_match_args,
    ("coco", "coco_accumulate"): coco_accumulate_args,
    ("batch_norm", "batch_norm_train_forward"): bn_train_forward_args,
    ("batch_norm", "batch_norm_eval_forward"): bn_eval_forward_args,
    ("batch_norm", "batch_norm_backward"): bn_backward_args,
    ("batch_norm", "channel_sum"): channel_sum_args,
    ("activation", "relu_forward"): relu_forward_args,
    ("activation", "relu_backward"): relu_backward_args,
}

# Sums that run in a different order: close, not equal. Every other pair agrees bit for bit.
CLOSE = {("resample", "resample2d_backward"),         # the reference scatters row by output pixel
         ("batch_norm", "batch_norm_train_forward"),   # the fast sums split into partial sums
         ("batch_norm", "batch_norm_backward"),
         ("batch_norm", "channel_sum")}
GPU_CLOSE = CLOSE | {("pool", "max_pool2d_backward"),  # bincount: float64 sums, then cast
                     ("pool", "avg_pool2d_backward")}


def assert_agree(got, want, close, what):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want), what
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, f"{what}: {g.shape} {g.dtype} vs {w.shape} {w.dtype}"
        if close and g.dtype.kind == "f":
            tol = 1e-5 if g.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=what)
        else:
            np.testing.assert_array_equal(g, w, err_msg=what)


# --------------------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------------------
def test_every_listed_kernel_has_inputs_here():
    assert set(ARGS) == set(PAIRS)


@pytest.mark.parametrize("op, name", PAIRS, ids=IDS)
def test_reference_has_the_fast_kernels_signature(op, name):
    mod = cpu_module(op)
    fast, ref = getattr(mod, name), getattr(mod, f"{name}_reference")
    assert signature(ref) == signature(fast)
    gpu = gpu_function(op, name)
    if gpu is not None:
        assert signature(gpu) == signature(fast)


@pytest.mark.parametrize("op, name", PAIRS, ids=IDS)
def test_reference_comes_first_in_its_file(op, name):
    """The file reads top-down: the plain loops a learner reads, then the fast kernel."""
    source = inspect.getsource(cpu_module(op))
    assert source.index(f"def {name}_reference(") < source.index(f"def {name}(")


@pytest.mark.parametrize("op, name", PAIRS, ids=IDS)
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=8)
def test_reference_and_fast_agree(op, name, seed):
    args = ARGS[op, name](np.random.default_rng(seed))
    fast = kernel(op, name, *args, impl="fast")(*args)
    ref = kernel(op, name, *args, impl="reference")(*args)
    assert_agree(fast, ref, (op, name) in CLOSE, f"{op}.{name} fast vs reference")
    gpu = gpu_function(op, name)  # the CuPy kernel is array code: it runs on NumPy arrays too
    if gpu is not None:
        assert_agree(gpu(*args), ref, (op, name) in GPU_CLOSE, f"{op}.{name} gpu vs reference")


# --------------------------------------------------------------------------------------
# The dispatch
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("op, name", PAIRS, ids=IDS)
def test_numpy_arrays_get_the_cpu_kernels(op, name):
    x = np.zeros(3)
    mod = cpu_module(op)
    assert kernel(op, name, x) is getattr(mod, name)
    assert kernel(op, name, x, impl="fast") is getattr(mod, name)
    assert kernel(op, name, x, impl="reference") is getattr(mod, f"{name}_reference")
    assert kernel(op, name, x) is kernel(op, name, x)  # resolved once, then cached


def test_unknown_impl_op_or_name_raise():
    x = np.zeros(3)
    with pytest.raises(ValueError, match=r"impl must be one of \('fast', 'reference'\), got 'bogus'"):
        kernel("pool", "max_pool2d_forward", x, impl="bogus")
    with pytest.raises(ValueError, match="unknown kernel op 'blur'"):
        kernel("blur", "blur2d", x)
    with pytest.raises(ValueError, match="pool has"):
        kernel("pool", "max_pool3d_forward", x)
    with pytest.raises(ValueError, match="impl must be one of"):
        with use_impl("bogus"):
            pass
    assert IMPLS == ("fast", "reference")


class FakeCupyArray:
    """Stands in for a CuPy array (backend.py recognises CuPy by the type's module)."""

    def __init__(self, a):
        self.a = np.asarray(a)
        self.shape = self.a.shape


FakeCupyArray.__module__ = "cupy._core.core"


def test_mixed_devices_raise_naming_both():
    with pytest.raises(DeviceError, match=r"NumPy array of shape \(3,\).*CuPy array of shape \(2,\)"):
        kernel("boxes", "box_iou", np.zeros(3), FakeCupyArray(np.zeros(2)))


def test_cupy_arrays_get_the_gpu_kernel_or_the_cpu_one_on_host_copies(monkeypatch):
    """Without a GPU: fake CuPy arrays, and a fake to_device that unwraps / wraps them."""
    monkeypatch.setattr(dispatch, "_resolved", {})
    g = FakeCupyArray(np.zeros(3))
    gpu_pool = importlib.import_module("tinyvision.kernels.gpu.pool")
    assert kernel("pool", "max_pool2d_forward", g) is gpu_pool.max_pool2d_forward   # a GPU kernel
    nms_fast = kernel("nms", "nms_sorted", g)                                        # none: host copy
    assert nms_fast.__wrapped__ is cpu_module("nms").nms_sorted
    pool_ref = kernel("pool", "max_pool2d_forward", g, impl="reference")             # reference: host
    assert pool_ref.__wrapped__ is cpu_module("pool").max_pool2d_forward_reference
    assert signature(pool_ref) == signature(cpu_module("pool").max_pool2d_forward)

    def fake_to_device(a, device):
        return a.a if device == "cpu" else FakeCupyArray(a)

    monkeypatch.setattr(dispatch, "to_device", fake_to_device)
    x = np.arange(8.0).reshape(1, 2, 2, 2)
    tables = (np.array([0]), np.array([2]), np.array([0]), np.array([2]))
    y, indices = pool_ref(FakeCupyArray(x), *tables, 1, 1)           # device in, device out
    assert isinstance(y, FakeCupyArray) and isinstance(indices, FakeCupyArray)
    np.testing.assert_array_equal(y.a.ravel(), [3.0, 7.0])
    np.testing.assert_array_equal(indices.a.ravel(), [3, 3])


def test_use_impl_switches_the_default_and_restores_it():
    x = np.zeros(3)
    assert dispatch.default_impl() == "fast"
    with use_impl("reference"):
        assert dispatch.default_impl() == "reference"
        assert kernel("boxes", "box_iou", x) is cpu_module("boxes").box_iou_reference
        assert kernel("boxes", "box_iou", x, impl="fast") is cpu_module("boxes").box_iou  # explicit wins
    assert dispatch.default_impl() == "fast"
    with pytest.raises(RuntimeError):
        with use_impl("reference"):
            raise RuntimeError
    assert dispatch.default_impl() == "fast"


# --------------------------------------------------------------------------------------
# Whole ops on the references: the callers really go through the dispatch
# --------------------------------------------------------------------------------------
def _run_ops(rng_seed=0):
    from tinyvision.metrics import COCOEvaluator
    from tinyvision.metrics._coco_synth import synthetic_coco

    rng = np.random.default_rng(rng_seed)
    out = {}
    x = tv.tensor(rng.standard_normal((2, 3, 9, 7)), requires_grad=True)
    y = P.max_pool2d(x, 3, 2, 1, ceil_mode=True) + P.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    z = R.interpolate(y, size=(7, 6), mode="bilinear") + P.adaptive_avg_pool2d(x, (7, 6))
    z.backward(rng.standard_normal(z.shape))
    out["pool+resample"], out["grad"] = z.numpy(), x.grad.numpy()
    boxes = _boxes(rng, 120, np.float32, span=50.0)
    scores = rng.random(120).astype(np.float32)
    out["iou"] = tv.ops.box_iou(boxes, boxes[:30])
    out["nms"] = tv.ops.nms(boxes, scores, 0.3)
    out["batched_nms"] = tv.ops.batched_nms(boxes, scores, rng.integers(0, 3, 120), 0.3)
    gt, dets = synthetic_coco(n_images=4, n_categories=2, seed=3)
    result = COCOEvaluator(gt).evaluate(dets)
    out["coco"] = (result.precision, result.recall, result.scores)
    return out


def test_whole_ops_agree_under_use_impl_reference():
    fast = _run_ops()
    with use_impl("reference"):
        ref = _run_ops()
    for key in fast:
        close = key in ("pool+resample", "grad")
        assert_agree(fast[key], ref[key], close, key)


# --------------------------------------------------------------------------------------
# On a GPU: every kernel on CuPy arrays (GPU kernel, or host copies) equals the CPU result
# --------------------------------------------------------------------------------------
def _host(out):
    from tinyvision.backend import to_device

    return tuple(_host(o) for o in out) if isinstance(out, tuple) else to_device(out, "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not tv.cupy_available(), reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize("op, name", PAIRS, ids=IDS)
@pytest.mark.parametrize("impl", IMPLS)
def test_cupy_arrays_agree_with_the_cpu(op, name, impl):  # pragma: no cover - needs a GPU
    from tinyvision.backend import to_device

    for seed in range(3):
        args = ARGS[op, name](np.random.default_rng(seed))
        dev = tuple(to_device(a, "cuda") if isinstance(a, np.ndarray) else a for a in args)
        want = kernel(op, name, *args, impl="reference")(*args)
        got = _host(kernel(op, name, *dev, impl=impl)(*dev))
        close = (op, name) in (GPU_CLOSE if impl == "fast" else CLOSE)
        assert_agree(got, want, close, f"{op}.{name} on CuPy, impl={impl}")
