"""The speed paths of issue 13 against their references: the whole-batch conv GEMMs (small maps),
the batch-norm and ReLU kernels (plain-loop reference == fast serial == fast parallel), and the
functional ops through them == their NumPy formulas == PyTorch, gradcheck in float64."""
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.functional import activation as act_mod
from tinyvision.functional import normalization as norm_mod
from tinyvision.kernels.cpu import activation as A
from tinyvision.kernels.cpu import batch_norm as B
from tinyvision.kernels.cpu import _threads as TH
from tinyvision.kernels.conv_geometry import ConvGeometry
from tinyvision.kernels.cpu import conv as CPU
from tinyvision.testing import gradcheck, tolerance


def assert_close(got, want, dtype, what):
    tol = tolerance(dtype)
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"], err_msg=what)


# --------------------------------------------------------------------------------------
# Whole-batch GEMMs for small maps
# --------------------------------------------------------------------------------------
BATCHED = [  # (N, C, H, W, F, kernel, stride, padding, dilation)
    (4, 6, 8, 8, 10, (3, 3), (1, 1), (1, 1), (1, 1)),
    (3, 5, 9, 7, 4, (3, 3), (2, 2), (1, 1), (1, 1)),
    (2, 4, 6, 6, 3, (2, 3), (1, 2), (0, 1), (2, 1)),
    (5, 3, 7, 7, 8, (7, 7), (2, 2), (3, 3), (1, 1)),
    (2, 7, 4, 4, 9, (2, 2), (2, 2), (0, 0), (1, 1)),  # a non-overlapping tiling: the NumPy col2im
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", BATCHED, ids=lambda g: "x".join(map(str, g[:5])) + f"-k{g[5]}-s{g[6]}")
def test_batched_small_map_path_matches_reference_and_per_image_path(geom, dtype, monkeypatch):
    N, C, H, W, F_, ks, s, p, d = geom
    OH = (H + 2 * p[0] - d[0] * (ks[0] - 1) - 1) // s[0] + 1
    OW = (W + 2 * p[1] - d[1] * (ks[1] - 1) - 1) // s[1] + 1
    monkeypatch.setattr(TH, "SERIAL_MAX_MACS", 0)  # these small convs would otherwise run serially
    assert CPU._use_batched(N, OH, OW, C * ks[0] * ks[1], 1, 4, None, F_)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F_, C) + ks).astype(dtype)
    gy = rng.standard_normal((N, F_, OH, OW)).astype(dtype)
    g = ConvGeometry(stride=s, padding=p, dilation=d, groups=1, kernel_size=ks, image_size=(H, W), map_size=(OH, OW))
    fast = (CPU.conv2d_forward(x, w, g), CPU.conv2d_grad_input(gy, w, g), CPU.conv2d_grad_weight(x, gy, g))
    ref = (CPU.conv2d_forward_reference(x, w, g), CPU.conv2d_grad_input_reference(gy, w, g),
           CPU.conv2d_grad_weight_reference(x, gy, g))
    monkeypatch.setattr(CPU, "_BATCHED_MAX_COLUMNS", 0)  # the per-image (data-parallel) path
    per_image = (CPU.conv2d_forward(x, w, g), CPU.conv2d_grad_input(gy, w, g), CPU.conv2d_grad_weight(x, gy, g))
    monkeypatch.setattr(TH, "SERIAL_MAX_MACS", 10**15)  # the serial path (the caller's thread)
    serial = (CPU.conv2d_forward(x, w, g), CPU.conv2d_grad_input(gy, w, g), CPU.conv2d_grad_weight(x, gy, g))
    for name, a, b, c, e in zip(("y", "gx", "gw"), fast, ref, per_image, serial):
        assert a.shape == b.shape and a.dtype == dtype
        assert_close(a, b, dtype, f"{name}: batched vs reference")
        assert_close(a, c, dtype, f"{name}: batched vs per-image")
        assert_close(e, b, dtype, f"{name}: serial vs reference")


def test_serial_threshold_counts_multiply_adds(monkeypatch):
    """Small convolutions run in the caller's thread, large ones on the pool; the line is
    SERIAL_MAX_MACS multiply-adds (F * C * KH * KW * N * OH * OW)."""
    if not TH.blas_threads_controllable():
        pytest.skip("NumPy's BLAS thread count cannot be set here: everything runs one way")
    monkeypatch.setattr(TH, "SERIAL_MAX_MACS", 64 * 576 * 16 * 16 + 1)
    assert TH.serial(64 * 576 * 16 * 16) and not TH.serial(64 * 576 * 16 * 16 + 1)
    plans = CPU._plans(16, 4, 4, 576, 4, None, macs=64 * 576 * 16 * 16)
    assert len(plans) == 1 and plans[0][0] is False  # one serial plan, serial kernels
    assert sum(Nc for _, Nc, _, _ in plans[0][1]) == 16
    assert not CPU._use_batched(16, 4, 4, 576, 1, 4, None, 64)


def test_row_ranges_cover_rows_once_on_aligned_boundaries():
    for rows, T, align in ((10, 2, 1), (9 * 7, 3, 9), (5, 8, 1), (18, 4, 9)):
        ranges = TH.row_ranges(rows, T, align)
        assert ranges[0][0] == 0 and ranges[-1][1] == rows and len(ranges) <= T
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(r0 % align == 0 and r1 > r0 for r0, r1 in ranges)


@given(n_start=st.integers(0, 5), n_count=st.integers(1, 9), rows=st.integers(1, 40), max_rows=st.integers(0, 100),
       threads=st.integers(1, 4))
def test_row_chunks_cover_every_row_once_in_order_within_the_bound(n_start, n_count, rows, max_rows, threads):
    """The one chunker (_threads.row_chunks): every (image, row) exactly once, in order; a chunk
    holds at most max_rows rows in all (at least one row); whole images whenever one fits and
    there are at least `threads` images (at most a thread's share in one); else bands, enough for
    every thread where the rows allow."""
    chunks = TH.row_chunks(n_start, n_count, rows, max_rows, threads)
    covered = [(n, r) for n0, Nc, r0, Rc in chunks for n in range(n0, n0 + Nc) for r in range(r0, r0 + Rc)]
    assert covered == [(n, r) for n in range(n_start, n_start + n_count) for r in range(rows)]
    assert all(Nc >= 1 and Rc >= 1 and Nc * Rc <= max(1, max_rows) for _, Nc, _, Rc in chunks)
    if rows <= max_rows and n_count >= threads:  # whole images, no more than a thread's share in one
        assert all(r0 == 0 and Rc == rows and Nc <= -(-n_count // threads) for _, Nc, r0, Rc in chunks)
    else:  # bands of one image: as many as the threads, where there are rows enough
        assert all(Nc == 1 for _, Nc, _, _ in chunks) and len(chunks) >= min(threads, n_count * rows)


def test_row_chunks_band_heights_differ_by_at_most_one():
    chunks = TH.row_chunks(0, 1, 10, 4)
    assert [Rc for _, _, _, Rc in chunks] == [3, 3, 4]
    assert TH.row_chunks(2, 5, 3, 7) == [(2, 2, 0, 3), (4, 2, 0, 3), (6, 1, 0, 3)]


# --------------------------------------------------------------------------------------
# Batch norm kernels
# --------------------------------------------------------------------------------------
BN_SHAPES = [(6, 3, 1), (4, 5, 7), (3, 8, 36), (2, 4, 1000)]


def bn_inputs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal(shape) + 2).astype(dtype)
    w = rng.standard_normal(shape[1]).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    return x, w, b, gy


@pytest.fixture(params=["serial", "parallel"])
def bn_parallelism(request, monkeypatch):
    """Run the fast kernels in one thread (the default below 8M values) or in chunks shared by
    the threads (small chunks, so that every test shape is cut into several)."""
    if request.param == "parallel":
        for mod, chunk in ((B, 1), (A, 1000)):
            monkeypatch.setattr(mod, "PARALLEL_MIN_SIZE", 1)
            monkeypatch.setattr(mod, "_CHUNK_SIZE", chunk)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_fast_kernels_match_reference(shape, dtype, bn_parallelism):
    x, w, b, gy = bn_inputs(shape, dtype)
    fast = B.batch_norm_train_forward(x, w, b, 1e-5)
    ref = B.batch_norm_train_forward_reference(x, w, b, 1e-5)
    for name, a, c in zip(("y", "mean", "var_sum", "mu", "r"), fast, ref):
        assert a.dtype == c.dtype
        assert_close(a, c, dtype, name)
    mu, r = ref[3], ref[4]
    for training in (True, False):
        for name, a, c in zip(("gx", "gw", "gb"), B.batch_norm_backward(gy, x, w, mu, r, training),
                              B.batch_norm_backward_reference(gy, x, w, mu, r, training)):
            assert a.dtype == dtype
            assert_close(a, c, dtype, f"{name} training={training}")
    assert_close(B.batch_norm_eval_forward(x, w, b, mu, r), B.batch_norm_eval_forward_reference(x, w, b, mu, r),
                 dtype, "eval y")
    # The formulas, in float64 NumPy.
    xd = x.astype(np.float64)
    m = xd.mean(axis=(0, 2))
    v = xd.var(axis=(0, 2))
    assert_close(ref[1], m, dtype, "mean")
    assert_close(ref[2] / (shape[0] * shape[2]), v, dtype, "var")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_channel_sum_matches_reference_and_numpy(shape, dtype, bn_parallelism):
    """The per-channel float64 sum (a conv's bias gradient), serial and split among the threads,
    against the plain loops and NumPy's float64 sum."""
    x = bn_inputs(shape, dtype)[0]
    got = B.channel_sum(x)
    assert got.dtype == np.float64 and got.shape == (shape[1],)
    np.testing.assert_allclose(got, B.channel_sum_reference(x), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(got, x.sum(axis=(0, 2), dtype=np.float64), rtol=1e-13, atol=1e-12)


def _bn_both_paths(x, w, b, gy, training, monkeypatch):
    """(y, gx, gw, gb, running_mean, running_var) through the fast kernels and the NumPy formulas."""
    out = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(norm_mod, "_kernel_arrays", lambda *a: False)
        rm, rv = np.linspace(-1, 1, x.shape[1]).astype(x.dtype), np.linspace(0.5, 2, x.shape[1]).astype(x.dtype)
        X, W, Bt = (tv.tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.batch_norm(X, rm, rv, W, Bt, training=training, momentum=0.3)
        y.backward(gy)
        out.append((y.numpy(), X.grad.numpy(), W.grad.numpy(), Bt.grad.numpy(), rm, rv))
    monkeypatch.undo()
    return out


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(5, 3), (4, 6, 5, 3)], ids=str)
def test_batch_norm_fast_path_matches_numpy_path_and_torch(shape, training, monkeypatch):
    x, w, b, gy = bn_inputs(shape, np.float32, seed=3)
    fast, numpy_path = _bn_both_paths(x, w, b, gy, training, monkeypatch)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    trm, trv = (torch.tensor(a) for a in (np.linspace(-1, 1, shape[1]), np.linspace(0.5, 2, shape[1])))
    trm, trv = trm.float(), trv.float()
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.3)
    ty.backward(torch.tensor(gy))
    want = (ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy(), trm.numpy(), trv.numpy())
    for name, a, c, t in zip(("y", "gx", "gw", "gb", "running_mean", "running_var"), fast, numpy_path, want):
        assert_close(a, c, np.float32, f"{name}: fast vs NumPy path")
        assert_close(a, t, np.float32, f"{name}: fast vs torch")


def test_batch_norm_without_affine_and_noncontiguous_input():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 6, 5)).transpose(0, 1, 3, 2)  # float64, not contiguous
    X = tv.tensor(x, requires_grad=True)
    F.batch_norm(X, None, None, training=True).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.batch_norm(tx, None, None, training=True).sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), atol=1e-10)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_gradcheck_both_paths(training, monkeypatch):
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((3, 2, 4)), rng.standard_normal(2), rng.standard_normal(2)
    rm, rv = rng.standard_normal(2), rng.random(2) + 0.5
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(norm_mod, "_kernel_arrays", lambda *a: False)
        gradcheck(lambda x, w, b: F.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training), x, w, b)


# --------------------------------------------------------------------------------------
# ReLU kernels
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_kernels_match_reference_nan_and_zero(dtype, bn_parallelism):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(50_000).astype(dtype)
    x[:4] = [np.nan, 0.0, -0.0, -np.inf]
    gy = rng.standard_normal(x.size).astype(dtype)
    y = A.relu_forward(x)
    np.testing.assert_array_equal(y, A.relu_forward_reference(x))
    np.testing.assert_array_equal(A.relu_backward(gy, y), A.relu_backward_reference(gy, y))
    ty = torch.relu(torch.tensor(x))
    np.testing.assert_array_equal(y, ty.numpy())
    tx = torch.tensor(x, requires_grad=True)
    torch.relu(tx).backward(torch.tensor(gy))
    np.testing.assert_array_equal(A.relu_backward(gy, y), tx.grad.numpy())  # NaN passes gy, 0 gets 0


def test_relu_functional_noncontiguous_uses_numpy_path_and_matches_torch(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5)).transpose(2, 0, 1)
    x[0, 0, 0] = np.nan
    results = []
    for kernels in (True, False):
        if not kernels:
            monkeypatch.setattr(act_mod, "_kernel_arrays", lambda *a: False)
        for arr in (x, np.ascontiguousarray(x)):
            X = tv.tensor(arr, requires_grad=True)
            y = F.relu(X)
            y.backward(np.ones_like(arr))
            results.append((y.numpy(), X.grad.numpy()))
    tx = torch.tensor(x, requires_grad=True)
    torch.relu(tx).backward(torch.ones_like(tx))
    for y, gx in results:
        np.testing.assert_array_equal(y, torch.relu(torch.tensor(x)).numpy())
        np.testing.assert_array_equal(gx, tx.grad.numpy())


def test_run_chunks_runs_every_chunk_once_and_reraises():
    from tinyvision.kernels.cpu import _threads

    seen = []
    _threads.run_chunks(seen.append, 50)
    assert sorted(seen) == list(range(50))

    def fail(k):
        if k == 7:
            raise RuntimeError("chunk 7")

    with pytest.raises(RuntimeError, match="chunk 7"):
        _threads.run_chunks(fail, 20)


@pytest.mark.parametrize("spin", [True, False], ids=["polling", "sleeping"])
def test_pool_runs_tasks_in_order_and_reraises_with_and_without_polling(spin, monkeypatch):
    """The workers and the caller poll for a while before they sleep on a condition; with no
    polling at all (every wait a sleep) the results, their order and the errors are the same."""
    pool = TH._get_pool(3)
    if not spin:
        monkeypatch.setattr(pool, "rounds", 0)
    for _ in range(30):
        assert TH.run_parallel(lambda k: k * k, list(range(4))) == [0, 1, 4, 9]
        seen = []
        TH.run_chunks(seen.append, 17)
        assert sorted(seen) == list(range(17))

    def fail(k):
        if k == 2:
            raise ValueError("task 2")
        return k

    with pytest.raises(ValueError, match="task 2"):
        TH.run_parallel(fail, [0, 1, 2, 3])
    assert TH.run_parallel(lambda k: -k, [1, 2, 3]) == [-1, -2, -3]  # the pool still works


def test_run_chunks_wakes_sleeping_helpers_and_shares_the_chunks(monkeypatch):
    """Helpers found asleep are woken and given the claiming job: every chunk runs exactly once,
    in the caller or a helper, and the call returns only when all are done."""
    import threading
    import time

    monkeypatch.setattr(TH, "num_threads", lambda: 2)
    pool = TH._get_pool(1)
    monkeypatch.setattr(pool, "rounds", 0)  # no polling: a worker sleeps as soon as it is idle
    TH.run_parallel(lambda k: k, [0, 1])
    deadline = time.monotonic() + 10
    while not pool.asleep[0] and time.monotonic() < deadline:
        time.sleep(0.001)
    assert pool.asleep[0]
    before = int(pool.submitted[0])
    seen = []

    def chunk(k):
        time.sleep(0.002)  # long enough for the woken helper to claim some
        seen.append((k, threading.get_ident()))

    TH.run_chunks(chunk, 40)
    assert sorted(k for k, _ in seen) == list(range(40))
    assert int(pool.submitted[0]) == before + 1  # the helper's job


def test_pool_drops_a_job_once_it_has_run():
    """A worker waiting for its next job holds nothing of the last one: the task's closure (and
    the arrays it captured) is freed when the call returns. (A kept reference made every conv
    weight gradient look shared, so autograd copied each one into .grad.)"""
    import gc
    import weakref

    class Payload:
        pass

    payload = Payload()
    ref = weakref.ref(payload)

    def task(k, payload=payload):
        return k

    assert TH.run_parallel(task, [0, 1]) == [0, 1]
    del task, payload
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("T", [1, 2, 3])
def test_run_queue_hands_out_every_chunk_once(T):
    """Shared queue: each chunk reaches exactly one thread; static: thread t gets t, t+T, ..."""
    chunks = list(range(23))
    shares = TH.run_queue(lambda mine: list(mine), chunks, T)
    assert len(shares) == T and sorted(c for share in shares for c in share) == chunks
    static = TH.run_queue(lambda mine: list(mine), chunks, T, static=True)
    assert static == ([chunks] if T == 1 else [chunks[t::T] for t in range(T)])


def test_weight_gradients_are_bitwise_repeatable():
    """Same input, same thread count -> the same gw bit for bit (Winograd's and im2col's sums
    over images and tiles must not depend on thread timing; a seeded training run repeats)."""
    rng = np.random.default_rng(9)
    for C, F_, H, s in ((8, 16, 24, 1), (6, 5, 9, 2), (4, 8, 4, 1)):  # Winograd, im2col, whole-batch
        x = rng.standard_normal((6, C, H, H)).astype(np.float32)
        OH = (H + 2 - 3) // s + 1
        gy = rng.standard_normal((6, F_, OH, OH)).astype(np.float32)
        g = ConvGeometry(stride=(s, s), padding=(1, 1), dilation=(1, 1), groups=1, kernel_size=(3, 3),
                         image_size=(H, H), map_size=(OH, OH))
        first = CPU.conv2d_grad_weight(x, gy, g)
        for _ in range(4):
            np.testing.assert_array_equal(CPU.conv2d_grad_weight(x, gy, g), first)


WINOGRAD = [  # (N, C, H, W, F, padding): 3x3 stride 1, outputs >= 12x12 so Winograd runs
    (3, 5, 14, 13, 6, (1, 1)),
    (2, 8, 16, 16, 4, (0, 0)),
    (4, 4, 12, 15, 7, (1, 1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", WINOGRAD, ids=lambda g: "x".join(map(str, g[:5])) + f"-p{g[5][0]}")
def test_serial_and_threaded_paths_both_match_the_reference(geom, dtype, monkeypatch):
    """Small convolutions now run serially, so the threaded Winograd and im2col paths are no
    longer reached by small test shapes on their own: run both, each against the plain loops."""
    N, C, H, W, F_, p = geom
    OH, OW = H + 2 * p[0] - 2, W + 2 * p[1] - 2
    g = ConvGeometry(stride=(1, 1), padding=p, dilation=(1, 1), groups=1, kernel_size=(3, 3),
                     image_size=(H, W), map_size=(OH, OW))
    assert CPU._use_winograd(C, g)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F_, C, 3, 3)).astype(dtype)
    gy = rng.standard_normal((N, F_, OH, OW)).astype(dtype)
    # The plain loops in float64 give the exact sums; the same loops over |x|, |w|, |gy| give the
    # sum of the terms' magnitudes, which bounds any order's round-off (a gw entry that is a
    # small difference of ~400 products of size ~1 cannot be held to 1e-4 of itself in float32).
    def loops(x, w, gy):
        x, w, gy = (a.astype(np.float64) for a in (x, w, gy))
        return (CPU.conv2d_forward_reference(x, w, g), CPU.conv2d_grad_input_reference(gy, w, g),
                CPU.conv2d_grad_weight_reference(x, gy, g))

    exact, magnitude = loops(x, w, gy), loops(np.abs(x), np.abs(w), np.abs(gy))
    tol = tolerance(dtype)
    for serial_max in (10**15, 0):  # everything serial; everything on the pool
        monkeypatch.setattr(TH, "SERIAL_MAX_MACS", serial_max)
        got = (CPU.conv2d_forward(x, w, g), CPU.conv2d_grad_input(gy, w, g), CPU.conv2d_grad_weight(x, gy, g))
        for name, a, b, mag in zip(("y", "gx", "gw"), got, exact, magnitude):
            assert a.shape == b.shape and a.dtype == dtype
            err = np.abs(a - b)
            bound = tol["rtol"] * mag + tol["atol"]
            assert (err <= bound).all(), (name, serial_max, float((err / bound).max()))


# --------------------------------------------------------------------------------------
# 1x1 convolutions: the weight gradient as one GEMM over the batch on small maps
# --------------------------------------------------------------------------------------
@given(N=st.integers(1, 4), Cg=st.integers(1, 12), Fg=st.integers(1, 12), G=st.integers(1, 3),
       H=st.integers(1, 5), W=st.integers(1, 5), dtype=st.sampled_from([np.float32, np.float64]),
       threaded=st.booleans())
def test_pointwise_passes_match_reference_on_every_layout_and_split(N, Cg, Fg, G, H, W, dtype, threaded):
    """A 1x1 conv's forward pass, input gradient and weight gradient == the plain loops in every
    group: serially, or on the pool's threads (split by images, or by output rows when there
    are fewer images than threads); the weight gradient as one GEMM over (channels, N*H*W)
    matrices when the maps are small (H*W*(Fg+Cg) < Fg*Cg), else summed per image."""
    rng = np.random.default_rng(N * 1000 + Cg * 100 + Fg * 10 + G)
    x = rng.standard_normal((N, G * Cg, H, W)).astype(dtype)
    w = rng.standard_normal((G * Fg, Cg, 1, 1)).astype(dtype)
    gy = rng.standard_normal((N, G * Fg, H, W)).astype(dtype)
    g = ConvGeometry(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=G, kernel_size=(1, 1),
                     image_size=(H, W), map_size=(H, W))
    assert g.is_pointwise
    saved = TH.SERIAL_MAX_MACS
    TH.SERIAL_MAX_MACS = 0 if threaded else 10**15
    try:
        got = (CPU.conv2d_forward(x, w, g), CPU.conv2d_grad_input(gy, w, g), CPU.conv2d_grad_weight(x, gy, g))
        again = CPU.conv2d_grad_weight(x, gy, g)
    finally:
        TH.SERIAL_MAX_MACS = saved
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, gy))
    want = (CPU.conv2d_forward_reference(x64, w64, g), CPU.conv2d_grad_input_reference(gy64, w64, g),
            CPU.conv2d_grad_weight_reference(x64, gy64, g))
    for name, a, b in zip(("y", "gx", "gw"), got, want):
        assert a.shape == b.shape and a.dtype == dtype
        assert_close(a, b, dtype, f"{name}, threaded={threaded}, "
                                  f"{'one GEMM' if H * W * (Fg + Cg) < Fg * Cg else 'per image'}")
    np.testing.assert_array_equal(again, got[2])  # the same split, the same sum order


def test_pointwise_weight_gradient_small_map_layout_is_taken_and_matches_torch():
    """A ResNet-50-like 4x4 stage (2048 -> 64 channels here, kept small): the one-GEMM layout
    (its condition holds) gives PyTorch's weight gradient."""
    rng = np.random.default_rng(3)
    N, C, F_, H = 3, 96, 40, 4
    assert H * H * (F_ + C) < F_ * C
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((F_, C, 1, 1)).astype(np.float32)
    gy = rng.standard_normal((N, F_, H, H)).astype(np.float32)
    g = ConvGeometry(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, kernel_size=(1, 1),
                     image_size=(H, H), map_size=(H, H))
    tw = torch.from_numpy(w).requires_grad_(True)
    torch.nn.functional.conv2d(torch.from_numpy(x), tw).backward(torch.from_numpy(gy))
    assert_close(CPU.conv2d_grad_weight(x, gy, g), tw.grad.numpy(), np.float32, "gw vs torch")


def test_small_matmul_runs_with_single_threaded_blas_and_matches_torch(monkeypatch):
    """A product below SERIAL_MAX_MACS (a Linear layer on a small batch) runs with single-threaded
    BLAS in forward and backward; a larger one leaves BLAS as it is; values == PyTorch's."""
    entered = []
    real = TH.single_threaded_blas

    def spy():
        entered.append(True)
        return real()

    monkeypatch.setattr(TH, "single_threaded_blas", spy)
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((8, 64)), rng.standard_normal((3, 64, 10))  # broadcast batch dims
    for serial_max, expect in ((10**15, 2), (0, 0)):
        monkeypatch.setattr(TH, "SERIAL_MAX_MACS", serial_max)
        entered.clear()
        A, B = tv.tensor(a, requires_grad=True), tv.tensor(b, requires_grad=True)
        (A @ B).backward(np.ones((3, 8, 10)))
        assert len(entered) == (expect if TH.blas_threads_controllable() else 0)
        ta, tb = torch.from_numpy(a).requires_grad_(True), torch.from_numpy(b).requires_grad_(True)
        (ta @ tb).backward(torch.ones(3, 8, 10, dtype=torch.float64))
        np.testing.assert_allclose(A.grad, ta.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(B.grad, tb.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, H, W", [(8, 8, 8), (6, 9, 11), (4, 8, 8), (2, 4, 4), (8, 4, 5), (16, 3, 3), (2, 8, 8)])
def test_small_map_winograd_forward_and_input_gradient_match_reference(N, H, W, dtype, monkeypatch):
    """4x4 to 11x11 outputs: Winograd for the forward pass and (through the flipped kernel) the
    input gradient when the batch has >= 32 output tiles (few filters here), im2col below that
    and on maps under 4x4; the weight gradient stays on im2col. Every pass == the plain loops,
    whichever path runs."""
    C, F_ = 5, 6
    g = ConvGeometry(stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, kernel_size=(3, 3),
                     image_size=(H, W), map_size=(H, W))
    tiles = N * ((H + 1) // 2) * ((W + 1) // 2)
    winograd = tiles >= 32 and min(H, W) >= 4
    assert CPU._use_winograd_forward(N, C, F_, g) == winograd and not CPU._use_winograd(C, g)
    calls = []
    real = CPU.winograd.winograd_conv3x3
    monkeypatch.setattr(CPU.winograd, "winograd_conv3x3", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(TH, "SERIAL_MAX_MACS", 0)  # the batched and threaded paths, not the serial one
    rng = np.random.default_rng(N + H + W)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F_, C, 3, 3)).astype(dtype)
    gy = rng.standard_normal((N, F_, H, W)).astype(dtype)
    got = (CPU.conv2d_forward(x, w, g), CPU.conv2d_grad_input(gy, w, g), CPU.conv2d_grad_weight(x, gy, g))
    assert len(calls) == (2 if winograd else 0)  # forward and input gradient
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, gy))
    want = (CPU.conv2d_forward_reference(x64, w64, g), CPU.conv2d_grad_input_reference(gy64, w64, g),
            CPU.conv2d_grad_weight_reference(x64, gy64, g))
    for name, a, b in zip(("y", "gx", "gw"), got, want):
        assert a.shape == b.shape and a.dtype == dtype
        assert_close(a, b, dtype, name)


def test_small_map_winograd_needs_more_tiles_for_more_filters():
    """The filter transform is made on every call: with F * C filter pairs the batch needs at
    least F * C / 4096 tiles (and 32) before Winograd runs on a 4x4 to 11x11 map."""
    g = ConvGeometry(stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, kernel_size=(3, 3),
                     image_size=(4, 4), map_size=(4, 4))
    assert not CPU._use_winograd_forward(8, 512, 512, g)  # 32 tiles < 64
    assert CPU._use_winograd_forward(16, 512, 512, g)  # 64 tiles
    assert CPU._use_winograd_forward(8, 256, 256, g)  # 32 tiles >= 16
    assert not CPU._use_winograd_forward(4, 256, 256, g)  # 16 tiles < 32
    assert not CPU._use_winograd_forward(64, 3, 64, g)  # 3 input channels: im2col


_FAULTS_SCRIPT = """
import resource, sys, numpy as np
import tinyvision.kernels.cpu._threads as TH
def step():  # a training step's pattern: many large arrays alive at once, then all freed
    arrays = [np.ones(2_000_000, np.float32) for _ in range(12)]
    del arrays
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(TH.malloc_tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_memory_is_kept_for_reuse_unless_turned_off():
    """With the kernels imported, repeating a step's allocations reuses the freed memory (almost
    no page faults); with TINYVISION_KEEP_FREED_MEMORY=0 malloc is left as it is."""
    import os
    import subprocess

    def run(env_value):
        env = dict(os.environ, TINYVISION_KEEP_FREED_MEMORY=env_value)
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        tuned, faults = out.stdout.split()
        return tuned == "True", int(faults)

    tuned, faults = run("1")
    if not tuned:
        pytest.skip("not glibc: malloc's thresholds cannot be set")
    assert faults < 1000, faults  # 5 steps x 12 arrays x 8 MB: ~100000 pages if each were new
    untouched, faults_default = run("0")
    assert not untouched
    assert faults_default > 10 * max(faults, 100), (faults, faults_default)


@given(N=st.integers(1, 3), Cg=st.integers(1, 5), Fg=st.integers(1, 5), G=st.integers(1, 2),
       H=st.integers(1, 9), W=st.integers(1, 9), SH=st.integers(1, 3), SW=st.integers(1, 3),
       DH=st.integers(1, 2), dtype=st.sampled_from([np.float32, np.float64]))
def test_strided_1x1_conv_runs_as_the_subsampled_pointwise_conv(N, Cg, Fg, G, H, W, SH, SW, DH, dtype):
    """A 1x1 unpadded conv with stride > 1 == the plain loops in every pass (the input gradient
    zero off the pixels read), through the pointwise conv of the subsampled image."""
    from tinyvision.kernels.conv_geometry import conv_output_size

    if (SH, SW) == (1, 1):
        SW = 2
    OH, OW = conv_output_size((H, W), (1, 1), (SH, SW), (0, 0), (DH, 1))
    g = ConvGeometry(stride=(SH, SW), padding=(0, 0), dilation=(DH, 1), groups=G, kernel_size=(1, 1),
                     image_size=(H, W), map_size=(OH, OW))
    sub, _ = CPU._subsampled_pointwise(g)
    assert sub.is_pointwise and tuple(sub.image_size) == (OH, OW)
    rng = np.random.default_rng(N * 100 + H * 10 + W)
    x = rng.standard_normal((N, G * Cg, H, W)).astype(dtype)
    w = rng.standard_normal((G * Fg, Cg, 1, 1)).astype(dtype)
    gy = rng.standard_normal((N, G * Fg, OH, OW)).astype(dtype)
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, gy))
    for name, got, want in (("y", CPU.conv2d_forward(x, w, g), CPU.conv2d_forward_reference(x64, w64, g)),
                            ("gx", CPU.conv2d_grad_input(gy, w, g), CPU.conv2d_grad_input_reference(gy64, w64, g)),
                            ("gw", CPU.conv2d_grad_weight(x, gy, g), CPU.conv2d_grad_weight_reference(x64, gy64, g))):
        assert got.shape == want.shape and got.dtype == dtype, name
        assert_close(got, want, dtype, name)


def test_downsample_shortcut_matches_torch():
    """A ResNet's 1x1 stride-2 shortcut (through the subsampled pointwise path), forward and both
    gradients against PyTorch."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 8, 11, 12)).astype(np.float32)
    w = rng.standard_normal((16, 8, 1, 1)).astype(np.float32)
    tx, tw = tv.tensor(x, requires_grad=True), tv.tensor(w, requires_grad=True)
    px, pw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y, py = F.conv2d(tx, tw, stride=2), torch.nn.functional.conv2d(px, pw, stride=2)
    gy = rng.standard_normal(py.shape).astype(np.float32)
    (y * tv.tensor(gy)).sum().backward()
    (py * torch.tensor(gy)).sum().backward()
    for name, a, b in (("y", y.numpy(), py.detach().numpy()), ("gx", tx.grad.numpy(), px.grad.numpy()),
                       ("gw", tw.grad.numpy(), pw.grad.numpy())):
        assert_close(a, b, np.float32, name)
