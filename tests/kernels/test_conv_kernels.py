"""Convolution kernels: plain-loop reference == fast im2col/GEMM kernel (whole batch, batch
chunks, row bands) == the array-op (CuPy-style) kernels run on NumPy == PyTorch; im2col and
col2im are adjoint; the dispatch point's safety net rejects arrays that do not fit the
ConvGeometry; compiled kernels come from the on-disk cache in a second process."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvision.backend import cupy_available
from tinyvision.kernels import conv_dispatch as D
from tinyvision.kernels.conv_geometry import ConvGeometry
from tinyvision.kernels.cpu import conv as CPU
from tinyvision.kernels.gpu import conv as XP
from tinyvision.testing import tolerance


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def geometries(draw):
    """A valid conv geometry: (N, C, H, W, F, G, kernel, stride, padding, dilation)."""
    ks = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    st_ = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dl = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pd = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    G = draw(st.integers(1, 3))
    C, F = G * draw(st.integers(1, 3)), G * draw(st.integers(1, 3))
    H = draw(st.integers(max(1, dl[0] * (ks[0] - 1) + 1 - 2 * pd[0]), 11))
    W = draw(st.integers(max(1, dl[1] * (ks[1] - 1) + 1 - 2 * pd[1]), 11))
    N = draw(st.integers(1, 3))
    return N, C, H, W, F, G, ks, st_, pd, dl


def make(geom, dtype, seed=0):
    N, C, H, W, F, G, ks, st_, pd, dl = geom
    rng = np.random.default_rng(seed)
    OH, OW = out_size(H, ks[0], st_[0], pd[0], dl[0]), out_size(W, ks[1], st_[1], pd[1], dl[1])
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C // G) + ks).astype(dtype)
    gy = rng.standard_normal((N, F, OH, OW)).astype(dtype)
    geometry = ConvGeometry(stride=st_, padding=pd, dilation=dl, groups=G, kernel_size=ks,
                            image_size=(H, W), map_size=(OH, OW))
    return x, w, gy, geometry


def reference_all(x, w, gy, geometry):
    return (
        CPU.conv2d_forward_reference(x, w, geometry),
        CPU.conv2d_grad_input_reference(gy, w, geometry),
        CPU.conv2d_grad_weight_reference(x, gy, geometry),
    )


def assert_close(got, want, dtype, what):
    tol = tolerance(dtype)
    # float32: sums of up to a few hundred products of N(0,1) numbers; scale atol with them.
    atol = tol["atol"] * (1 if dtype == np.float64 else 10)
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=atol, err_msg=what)


@given(geom=geometries(), dtype=st.sampled_from([np.float32, np.float64]),
       chunking=st.sampled_from(["whole", "images", "rows"]))
def test_fast_equals_reference(geom, dtype, chunking):
    x, w, gy, g = make(geom, dtype)
    K = x.shape[1] // g.groups * w.shape[2] * w.shape[3]
    ws = {"whole": None, "images": K * g.map_size[0] * g.map_size[1] * x.itemsize, "rows": 1}[chunking]
    ref = reference_all(x, w, gy, g)
    fast = (
        CPU.conv2d_forward(x, w, g, ws),
        CPU.conv2d_grad_input(gy, w, g, ws),
        CPU.conv2d_grad_weight(x, gy, g, ws),
    )
    for name, a, b in zip(("y", "gx", "gw"), fast, ref):
        assert a.dtype == dtype and a.shape == b.shape
        assert_close(a, b, dtype, name)


@settings(max_examples=30)
@given(geom=geometries(), dtype=st.sampled_from([np.float32, np.float64]), few=st.booleans())
def test_few_pixel_gradient_paths_equal_reference(geom, dtype, few):
    """Both ways of each gradient whatever the pixel count: the weight gradient summed as (F, K)
    or as (K, F) and transposed; the stride-1 input gradient by GEMM + col2im or by the
    convolution with the flipped weight."""
    x, w, gy, g = make(geom, dtype)
    saved = CPU._FEW_PIXELS, CPU._FLIP_MIN_PIXELS_PER_FILTER
    try:
        CPU._FEW_PIXELS, CPU._FLIP_MIN_PIXELS_PER_FILTER = (10**9, 10**9) if few else (0, 0)
        got = CPU.conv2d_grad_input(gy, w, g), CPU.conv2d_grad_weight(x, gy, g)
    finally:
        CPU._FEW_PIXELS, CPU._FLIP_MIN_PIXELS_PER_FILTER = saved
    for name, a, b in zip(("gx", "gw"), got, reference_all(x, w, gy, g)[1:]):
        assert a.dtype == dtype and a.shape == b.shape
        assert_close(a, b, dtype, name)


@settings(max_examples=15)
@given(geom=geometries())
def test_array_op_kernels_equal_reference(geom):
    """kernels/gpu/conv.py uses only array operations: run here on NumPy, with a tiny workspace."""
    x, w, gy, g = make(geom, np.float64)
    ref = reference_all(x, w, gy, g)
    got = (
        XP.conv2d_forward(x, w, g, 1),
        XP.conv2d_grad_input(gy, w, g, 1),
        XP.conv2d_grad_weight(x, gy, g, 1),
    )
    for name, a, b in zip(("y", "gx", "gw"), got, ref):
        assert_close(a, b, np.float64, name)


@settings(max_examples=15)
@given(geom=geometries())
def test_im2col_col2im_adjoint(geom):
    """<im2col(x), c> = <x, col2im(c)> for all x, c: col2im is im2col's transpose."""
    x, w, gy, g = make(geom, np.float64)
    cols = CPU.im2col(x, g)
    c = np.random.default_rng(1).standard_normal(cols.shape)
    back = CPU.col2im(c, g)
    assert back.shape == x.shape
    assert np.isclose(np.vdot(cols, c), np.vdot(x, back), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(XP.im2col(x, g), cols)
    # The two col2im implementations (Numba loops, NumPy taps) agree.
    other = np.zeros_like(back)
    (OH, OW) = g.map_size
    CPU._col2im_numpy(c, 0, x.shape[1], 0, x.shape[0], 0, OH, *g.kernel_size, *g.stride, *g.padding, *g.dilation,
                      OW, other)
    np.testing.assert_allclose(other, back, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(XP.col2im(c, g), back, rtol=1e-13, atol=1e-13)


def test_im2col_golden():
    """A 1x3x3 image, 2x2 kernel, stride 1, no padding: the four windows, by hand."""
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    g = ConvGeometry(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, kernel_size=(2, 2),
                     image_size=(3, 3), map_size=(2, 2))
    cols = CPU.im2col(x, g)
    want = np.array([[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]], dtype=float)
    np.testing.assert_array_equal(cols, want)


def test_reference_matches_torch():
    torch = pytest.importorskip("torch")
    geom = (2, 4, 9, 8, 6, 2, (3, 2), (2, 1), (1, 2), (2, 1))
    x, w, gy, g = make(geom, np.float64)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, None, g.stride, g.padding, g.dilation, g.groups)
    ty.backward(torch.tensor(gy))
    for a, b in zip(reference_all(x, w, gy, g), (ty, tx.grad, tw.grad)):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_dispatch_picks_reference_and_fast():
    x, w, gy, g = make((2, 2, 5, 5, 2, 1, (3, 3), (1, 1), (1, 1), (1, 1)), np.float64)
    a = D.conv2d_forward(x, w, g, impl="reference")
    b = D.conv2d_forward(x, w, g, impl="fast")
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="impl"):
        D.conv2d_forward(x, w, g, impl="cudnn")


# The safety net of the dispatch point: x (2, 2, 5, 5), w (2, 2, 3, 3), gy (2, 2, 3, 3) and
# G0 = their geometry (3x3, stride 1, no padding); each case breaks one thing.
G0 = ConvGeometry(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, kernel_size=(3, 3),
                  image_size=(5, 5), map_size=(3, 3))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x, w, gy: D.conv2d_forward(x[0], w, G0), "4-D"),
        (lambda x, w, gy: D.conv2d_forward(x, w.astype(np.float32), G0), "dtype"),
        (lambda x, w, gy: D.conv2d_forward(x, w, G0._replace(groups=3)), "G=3"),
        (lambda x, w, gy: D.conv2d_forward(x, w, G0._replace(stride=(0, 1))), "stride"),
        (lambda x, w, gy: D.conv2d_forward(x, w, G0._replace(map_size=(0, 3))), "map sizes >= 1"),
        (lambda x, w, gy: D.conv2d_forward(x, w, G0._replace(image_size=(6, 5))), "image_size"),
        (lambda x, w, gy: D.conv2d_forward(x, w[:, :, :2], G0), "KH, KW"),
        (lambda x, w, gy: D.conv2d_grad_input(gy[:, :1], w, G0), "gy's channels"),
        (lambda x, w, gy: D.conv2d_grad_input(gy[:, :, :2], w, G0), "map_size"),
        (lambda x, w, gy: D.conv2d_grad_weight(x, gy[:1], G0), "batch size"),
        (lambda x, w, gy: D.conv2d_grad_weight(x.astype(np.float32), gy, G0), "dtype"),
    ],
    ids=["3-D x", "mixed dtypes", "groups", "stride 0", "empty map", "x vs image_size", "weight vs kernel_size",
         "gy vs weight channels", "gy vs map_size", "batch sizes", "grad_weight dtypes"],
)
def test_dispatch_rejects_misfit_shapes(call, match):
    x, w, gy, g = make((2, 2, 5, 5, 2, 1, (3, 3), (1, 1), (0, 0), (1, 1)), np.float64)
    assert g == G0
    with pytest.raises(ValueError, match=match):
        call(x, w, gy)


def test_dispatch_error_names_function_shapes_and_geometry():
    """A kernel-layer caller with a wrong shape learns which function, which arrays and which
    geometry: a ValueError, before any Numba kernel could index outside an array."""
    x, w, gy, g = make((2, 2, 5, 5, 2, 1, (3, 3), (1, 1), (0, 0), (1, 1)), np.float64)
    with pytest.raises(ValueError) as err:
        D.conv2d_forward(x[:, :, :4], w, g)
    msg = str(err.value)
    for part in ("conv2d_forward", "x (2, 2, 4, 5)", "weight (2, 2, 3, 3)", "image_size (5, 5)", "ConvGeometry("):
        assert part in msg, msg
    with pytest.raises(TypeError, match="ConvGeometry"):
        D.conv2d_forward(x, w, tuple(g))  # a plain tuple is not a geometry


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")
def test_cupy_kernels_match_cpu():
    import cupy as cp

    x, w, gy, g = make((2, 4, 9, 8, 6, 2, (3, 2), (2, 1), (1, 2), (2, 1)), np.float64)
    ref = reference_all(x, w, gy, g)
    got = (
        D.conv2d_forward(cp.asarray(x), cp.asarray(w), g),
        D.conv2d_grad_input(cp.asarray(gy), cp.asarray(w), g),
        D.conv2d_grad_weight(cp.asarray(x), cp.asarray(gy), g),
    )
    for a, b in zip(got, ref):
        assert isinstance(a, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(a), b, rtol=1e-10, atol=1e-10)


def test_second_process_loads_kernels_from_cache():
    """cache=True: after one process compiled the kernels, a fresh one finds every one on disk."""
    script = textwrap.dedent(
        """
        import numpy as np
        import numba
        from tinyvision.kernels.conv_geometry import ConvGeometry
        from tinyvision.kernels.cpu import _threads, conv as K
        # stride 2: the Numba col2im
        g = ConvGeometry((2, 2), (0, 0), (1, 1), 1, kernel_size=(3, 3), image_size=(7, 7), map_size=(3, 3))
        _threads.SERIAL_MAX_MACS = 0  # these tiny convs would otherwise all run serially
        w = np.ones((2, 2, 3, 3), np.float32)
        for n in (1, 2):  # one image: parallel kernels; two: data-parallel workers
            x = np.ones((n, 2, 7, 7), np.float32); gy = np.ones((n, 2, 3, 3), np.float32)
            K.conv2d_forward(x, w, g); K.conv2d_grad_input(gy, w, g)
            K.conv2d_grad_weight(x, gy, g)
        K.conv2d_forward_reference(x, w, g)
        K.conv2d_grad_input_reference(gy, w, g); K.conv2d_grad_weight_reference(x, gy, g)
        from tinyvision.kernels.cpu import winograd as WG
        g3 = ConvGeometry((1, 1), (1, 1), (1, 1), 1, kernel_size=(3, 3), image_size=(5, 5), map_size=(5, 5))
        WG.winograd_conv3x3(np.ones((2, 2, 5, 5), np.float32), w, g3)
        fns = [f for mod in (K, WG) for f in vars(mod).values() if isinstance(f, numba.core.registry.CPUDispatcher)]
        used = [f for f in fns if f.stats.cache_hits or f.stats.cache_misses]
        print(sum(sum(f.stats.cache_misses.values()) for f in used), len(used), len(fns))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_BOUNDSCHECK"}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-3000:]
    misses, used, total = (int(v) for v in runs[1].stdout.split())
    assert misses == 0 and used >= 7 and total >= 9


def test_concurrent_callers_get_correct_results_and_blas_threads_restored():
    """The data-parallel path called from several Python threads at once: same numbers as the
    reference, and OpenBLAS's thread count is restored after the last caller leaves."""
    import threading

    from tinyvision.kernels.cpu import _threads

    # Four images: data-parallel workers; one image, stride 2: the parallel (prange) col2im.
    cases = [make((4, 4, 9, 9, 6, 2, (3, 3), (1, 1), (1, 1), (1, 1)), np.float64),
             make((1, 4, 40, 40, 6, 1, (3, 3), (2, 2), (1, 1), (1, 1)), np.float64)]
    wants = [reference_all(*case) for case in cases]
    before = _threads._blas_functions()[0]() if _threads.blas_threads_controllable() else None
    failures = []

    def worker(k):
        x, w, gy, g = cases[k]
        for _ in range(20):
            got = (CPU.conv2d_forward(x, w, g), CPU.conv2d_grad_input(gy, w, g), CPU.conv2d_grad_weight(x, gy, g))
            if not all(np.allclose(a, b, rtol=1e-12, atol=1e-12) for a, b in zip(got, wants[k])):
                failures.append(k)

    threads = [threading.Thread(target=worker, args=(k % 2,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    if before is not None:
        assert _threads._blas_functions()[0]() == before


@pytest.mark.parametrize(
    "geom",
    [
        (3, 4, 8, 8, 6, 1, (2, 2), (2, 2), (0, 0), (1, 1)),   # UNet's 2x2 stride-2 up-convolution
        (2, 6, 9, 7, 4, 2, (3, 3), (3, 3), (0, 0), (1, 1)),   # tiling, grouped, ragged edge
        (2, 2, 8, 8, 2, 1, (2, 2), (2, 2), (1, 0), (1, 1)),   # tiling with padding
        (1, 3, 17, 16, 5, 1, (2, 2), (2, 2), (0, 0), (1, 1)),  # one image: parallel path
    ],
    ids=["2x2s2", "3x3s3-grouped", "2x2s2-padded", "single-image"],
)
@pytest.mark.parametrize("workspace", [None, 1])
def test_tiling_kernels_equal_reference(geom, workspace):
    """Kernels that tile the image without overlap take a copy-only col2im; check it directly."""
    x, w, gy, g = make(geom, np.float64)
    ref = reference_all(x, w, gy, g)
    got = (
        CPU.conv2d_forward(x, w, g, workspace),
        CPU.conv2d_grad_input(gy, w, g, workspace),
        CPU.conv2d_grad_weight(x, gy, g, workspace),
    )
    for name, a, b in zip(("y", "gx", "gw"), got, ref):
        assert_close(a, b, np.float64, name)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs and sched_getaffinity")
def test_pool_thread_is_on_each_jobs_cpu_whether_it_moves_or_stays():
    """A pool thread skips the affinity call when its job's CPU is the one it is on; it still moves
    when the next job names another CPU, and gets its CPUs back for a job that names none."""
    from tinyvision.kernels.cpu import _threads

    a, b = sorted(os.sched_getaffinity(0))[:2]
    pool = _threads._get_pool(1)
    seen = []
    for cpu in (a, a, b, b, a, None):
        job = _threads._Job(lambda _: seen.append(os.sched_getaffinity(0)), None, cpu)
        pool.wait(0, pool.submit(0, job))
        assert job.error is None
    allowed = os.sched_getaffinity(0)
    assert seen == [{a}, {a}, {b}, {b}, {a}, allowed]


@pytest.mark.parametrize("pin", [True, False])
def test_run_parallel_pins_threads_only_while_they_run(pin, monkeypatch):
    """Results in task order with and without pinning; the caller runs task 0 itself, the pool
    threads the others. Pinned: the caller is held to the CPU it was on for the call (and given
    its CPUs back after it, also after an error), the pool threads to the following CPUs in turn,
    so no worker shares the caller's CPU while there are others. Unpinned: no affinity changes."""
    import threading

    from tinyvision.kernels.cpu import _threads

    monkeypatch.setattr(_threads, "PIN_THREADS", pin)
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    seen = []

    def task(k):
        seen.append((k, threading.get_ident(), os.sched_getaffinity(0) if before is not None else None))
        return k * k

    assert _threads.run_parallel(task, [0, 1, 2]) == [0, 1, 4]
    x, w, gy, g = make((4, 4, 9, 9, 6, 1, (3, 3), (1, 1), (1, 1), (1, 1)), np.float64)
    np.testing.assert_allclose(CPU.conv2d_forward(x, w, g), CPU.conv2d_forward_reference(x, w, g),
                               rtol=1e-12, atol=1e-12)
    if before is None:
        return
    assert os.sched_getaffinity(0) == before
    assert sorted(k for k, _, _ in seen) == [0, 1, 2]
    affinity = {k: a for k, _, a in seen}
    for k, ident, _ in seen:
        assert (ident == threading.get_ident()) == (k == 0)  # task 0 on the caller's thread
    allowed = sorted(before)
    if pin and len(allowed) >= 2:
        assert all(len(affinity[k]) == 1 for k in range(3))
        start = allowed.index(next(iter(affinity[0])))
        assert [affinity[k] for k in range(3)] == [{allowed[(start + k) % len(allowed)]} for k in range(3)]
    else:
        assert all(affinity[k] == before for k in range(3))

    def failing(k):
        if k == 0:
            raise RuntimeError("task 0 failed")
        return k

    with pytest.raises(RuntimeError, match="task 0 failed"):
        _threads.run_parallel(failing, [0, 1])
    assert os.sched_getaffinity(0) == before
