"""Pooling kernels: plain-loop reference == fast Numba kernel == gather kernel (kernels/gpu/pool.py,
run here on NumPy arrays) == PyTorch; and the same on CuPy when a GPU is present."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
from tinyvision.functional import pooling as P
from tinyvision.kernels.cpu import pool as cpu_pool
from tinyvision.kernels.gpu import pool as gather_pool

torch = pytest.importorskip("torch")
TF = torch.nn.functional


@st.composite
def configs(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    H = draw(st.integers(max(1, d[0] * (k[0] - 1) + 1 - 2 * p[0]), 10))
    W = draw(st.integers(max(1, d[1] * (k[1] - 1) + 1 - 2 * p[1]), 10))
    ceil_mode = draw(st.booleans())
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W)
    return shape, k, s, p, d, ceil_mode, dtype


def tables(shape, k, s, p, d, ceil_mode):
    H, W = shape[2:]
    OH = P._pool_output_size(H, k[0], s[0], p[0], d[0], ceil_mode)
    OW = P._pool_output_size(W, k[1], s[1], p[1], d[1], ceil_mode)
    return (OH, OW), P._max_windows(H, OH, k[0], s[0], p[0], d[0]) + P._max_windows(W, OW, k[1], s[1], p[1], d[1])


def sample(shape, dtype, rng):
    x = rng.standard_normal(shape)
    if rng.random() < 0.3:
        x = np.round(x)  # ties
    if rng.random() < 0.2:
        x.flat[rng.integers(0, x.size, 2)] = np.nan
    return x.astype(dtype)


@given(configs(), st.integers(0, 2**31 - 1))
def test_max_pool_kernels_agree(config, seed):
    shape, k, s, p, d, ceil_mode, dtype = config
    rng = np.random.default_rng(seed)
    x = sample(shape, dtype, rng)
    out, tab = tables(shape, k, s, p, d, ceil_mode)
    y_ref, i_ref = cpu_pool.max_pool2d_definition(x, k, s, p, d, out)
    y_fast, i_fast = cpu_pool.max_pool2d_forward(x, *tab, *d)
    y_gat, i_gat = gather_pool.max_pool2d_forward(x, *tab, *d)
    ty, ti = TF.max_pool2d(torch.tensor(x), k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
    for y, i in ((y_ref, i_ref), (y_fast, i_fast), (y_gat, i_gat)):
        assert y.dtype == dtype and i.dtype == np.int64
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(i, ti.numpy())
    gy = rng.standard_normal(y_ref.shape).astype(dtype)
    g_ref = cpu_pool.max_pool2d_backward_reference(gy, i_ref, *shape[2:])
    g_fast = cpu_pool.max_pool2d_backward(gy, i_fast, *shape[2:])
    g_gat = gather_pool.max_pool2d_backward(gy, i_gat, *shape[2:])
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    assert g_fast.dtype == dtype and g_gat.dtype == dtype
    np.testing.assert_allclose(g_fast, g_ref, **tol)
    np.testing.assert_allclose(g_gat, g_ref, **tol)


@given(configs(), st.booleans(), st.integers(0, 2**31 - 1))
def test_avg_pool_kernels_agree(config, count_include_pad, seed):
    shape, k, s, p, _, ceil_mode, dtype = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    xt = tv.tensor(x)
    # The functional wrapper builds the tables; reach them through a recorded Function.
    xt.requires_grad_(True)
    y = P.avg_pool2d(xt, k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    fn = y.grad_fn
    tab, divisor = fn.tables, fn.divisor
    out = y.shape[2:]
    y_ref = cpu_pool.avg_pool2d_definition(x, k, s, p, out, count_include_pad)
    y_fast = cpu_pool.avg_pool2d_forward(x, *tab, divisor)
    y_gat = gather_pool.avg_pool2d_forward(x, *tab, divisor)
    ty = TF.avg_pool2d(torch.tensor(x), k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for yy in (y_ref, y_fast, y_gat):
        assert yy.dtype == dtype
        np.testing.assert_allclose(yy, ty.numpy(), **tol)
    gy = rng.standard_normal(out).astype(dtype) * np.ones(shape[:2] + tuple(out), dtype=dtype)
    g_ref = cpu_pool.avg_pool2d_backward_definition(gy, shape, k, s, p, count_include_pad)
    g_fast = cpu_pool.avg_pool2d_backward(gy, *tab, divisor, *shape[2:])
    g_gat = gather_pool.avg_pool2d_backward(gy, *tab, divisor, *shape[2:])
    np.testing.assert_allclose(g_fast, g_ref, **tol)
    np.testing.assert_allclose(g_gat, g_ref, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_plane_chunks_equal_the_serial_pass(dtype, monkeypatch):
    """The fast kernels split the N*C planes among the threads (_threads.run_plane_ranges): with every
    call forced onto the threads, one plane to a chunk, each result is the serial one bit for bit."""
    rng = np.random.default_rng(3)
    shape, k, s, p, d = (3, 5, 9, 8), (3, 3), (2, 1), (1, 1), (1, 2)
    x = sample(shape, dtype, rng)
    out, tab = tables(shape, k, s, p, d, False)
    gy = rng.standard_normal(shape[:2] + out).astype(dtype)
    avg_tab = P._max_windows(9, out[0], 3, 2, 1, 1) + P._max_windows(8, out[1], 3, 1, 1, 1)
    divisor = rng.uniform(1, 9, out)

    def run():
        y, i = cpu_pool.max_pool2d_forward(x, *tab, *d)
        ya = cpu_pool.avg_pool2d_forward(x, *avg_tab, divisor)
        return (y, i, cpu_pool.max_pool2d_backward(gy, i, 9, 8), ya,
                cpu_pool.avg_pool2d_backward(gy, *avg_tab, divisor, 9, 8))

    serial = run()
    from tinyvision.kernels.cpu import _threads
    monkeypatch.setattr(_threads, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(_threads, "PLANE_CHUNK_WORK", 1)
    for a, b in zip(run(), serial):
        np.testing.assert_array_equal(a, b)
    ref = cpu_pool.max_pool2d_forward_reference(x, *tab, *d)
    np.testing.assert_array_equal(serial[0], ref[0])
    np.testing.assert_array_equal(serial[2], cpu_pool.max_pool2d_backward_reference(gy, serial[1], 9, 8))


@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 10), st.integers(1, 10), st.integers(0, 2**31 - 1))
@settings(max_examples=20)
def test_adaptive_kernels_agree_with_reference(H, W, OH, OW, seed):
    rng = np.random.default_rng(seed)
    x = sample((2, 2, H, W), np.float64, rng)
    tab = P._adaptive_windows(H, OH) + P._adaptive_windows(W, OW)
    y_ref, i_ref = cpu_pool.adaptive_max_pool2d_definition(x, (OH, OW))
    for kernels in (cpu_pool, gather_pool):
        y, i = kernels.max_pool2d_forward(x, *tab)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(i, i_ref)
    divisor = np.outer(tab[1], tab[3]).astype(np.float64)
    a_ref = cpu_pool.adaptive_avg_pool2d_definition(x, (OH, OW))
    for kernels in (cpu_pool, gather_pool):
        np.testing.assert_allclose(kernels.avg_pool2d_forward(x, *tab, divisor), a_ref, rtol=1e-12, atol=1e-12)


def test_fast_kernels_on_non_contiguous_input():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 6)).transpose(0, 1, 3, 2)  # a view
    y = P.max_pool2d(x, 2)
    np.testing.assert_array_equal(y.numpy(), TF.max_pool2d(torch.tensor(np.ascontiguousarray(x)), 2).numpy())


cupy = None
if tv.cupy_available():  # pragma: no cover - needs a GPU
    import cupy


@pytest.mark.gpu
@pytest.mark.skipif(cupy is None, reason="needs CuPy and a CUDA device")
def test_gpu_pooling_matches_cpu():  # pragma: no cover - needs a GPU
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 7))
    for fn, kw in ((P.max_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
                   (P.avg_pool2d, dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
                   (P.adaptive_max_pool2d, dict(output_size=(4, 3))),
                   (P.adaptive_avg_pool2d, dict(output_size=(4, 3)))):
        xc = tv.tensor(x, requires_grad=True)
        xg = tv.Tensor(cupy.asarray(x), requires_grad=True)
        yc, yg = fn(xc, **kw), fn(xg, **kw)
        g = rng.standard_normal(yc.shape)
        yc.backward(g)
        yg.backward(cupy.asarray(g))
        np.testing.assert_allclose(yg.numpy(), yc.numpy(), rtol=1e-12)
        np.testing.assert_allclose(xg.grad.numpy(), xc.grad.numpy(), rtol=1e-12, atol=1e-12)


@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 12), st.integers(1, 12),
       st.sampled_from(["nearest", "nearest-exact", "bilinear"]), st.integers(0, 2**31 - 1))
@settings(max_examples=20)
def test_resample_backward_kernel_agrees_with_reference_and_dense_transpose(H, W, OH, OW, mode, seed):
    from tinyvision.functional import resample as R
    from tinyvision.kernels.cpu import resample as K

    rng = np.random.default_rng(seed)
    if mode == "bilinear":
        h_taps, w_taps = R._linear_taps(H, OH, None, False, np.float64), R._linear_taps(W, OW, None, False, np.float64)
    else:
        h_taps = R._nearest_taps(H, OH, None, mode == "nearest-exact")
        w_taps = R._nearest_taps(W, OW, None, mode == "nearest-exact")
    h_index, h_weight = (np.stack(a) for a in zip(*h_taps))
    w_index, w_weight = (np.stack(a) for a in zip(*w_taps))
    gy = rng.standard_normal((2, 3, OH, OW))
    fast = K.resample2d_backward(gy, h_index, h_weight, w_index, w_weight, H, W)
    ref = K.resample2d_backward_reference(gy, h_index, h_weight, w_index, w_weight, H, W)
    Ah = R.Resample2dFunction._matrix(np, h_taps, OH, H, np.float64)
    Aw = R.Resample2dFunction._matrix(np, w_taps, OW, W, np.float64)
    np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast, Ah.T @ gy @ Aw, rtol=1e-12, atol=1e-12)


def test_resample_threaded_plane_ranges_equal_the_serial_pass(monkeypatch):
    """Resampling splits the N*C planes among the threads too (_threads.run_plane_ranges): forced
    onto the threads, one plane to a chunk, forward and backward equal the serial pass bit for bit."""
    from tinyvision.functional import resample as R
    from tinyvision.kernels.cpu import _threads
    from tinyvision.kernels.cpu import resample as K

    rng = np.random.default_rng(5)
    H, W, OH, OW = 5, 6, 9, 13
    taps = R._linear_taps(H, OH, None, False, np.float64), R._linear_taps(W, OW, None, True, np.float64)
    h_index, h_weight = (np.stack(a) for a in zip(*taps[0]))
    w_index, w_weight = (np.stack(a) for a in zip(*taps[1]))
    x = rng.standard_normal((3, 4, H, W)).astype(np.float32)
    gy = rng.standard_normal((3, 4, OH, OW)).astype(np.float32)

    def run():
        return (K.resample2d_forward(x, h_index, h_weight, w_index, w_weight),
                K.resample2d_backward(gy, h_index, h_weight, w_index, w_weight, H, W))

    serial = run()
    monkeypatch.setattr(_threads, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(_threads, "PLANE_CHUNK_WORK", 1)
    for a, b in zip(run(), serial):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(serial[0], K.resample2d_forward_reference(x, h_index, h_weight, w_index, w_weight),
                               rtol=1e-5, atol=1e-6)
