"""The autograd core: Tensor, Function, the backward pass, no_grad, dtype rules.

Semantics under test are PyTorch's (listed at the top of tinyvision/autograd.py); where
tinyvision is stricter (it refuses in-place changes to tensors inside a graph instead of
recording them) the test says so.
"""
from __future__ import annotations

import gc
import sys
import weakref

import numpy as np
import pytest
import torch

import tinyvision as tv
import tinyvision.functional as F
from tinyvision import backend
from tinyvision.autograd import Function, GradientError, Tensor


def leaf(values, dtype=np.float64):
    return tv.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# ---- the backward pass: order and accumulation ----------------------------------------------
class Logged(Function):
    """y = 2 x, recording when its backward runs (to observe the order)."""

    log: list = []

    def __init__(self, name):
        self.name = name

    def forward(self, x):
        return 2 * x

    def backward(self, gy):
        Logged.log.append(self.name)
        return 2 * gy


def test_backward_runs_each_node_after_all_its_consumers():
    # x -> a -> b -> d, and a -> c -> d (a diamond): a's backward must wait for b's AND c's.
    Logged.log = []
    x = leaf([1.0])
    a = Logged("a")(x)
    b = Logged("b")(a)
    c = Logged("c")(Logged("c0")(a))
    d = Logged("d")(b + c)
    d.sum().backward()
    order = Logged.log
    assert sorted(order) == ["a", "b", "c", "c0", "d"]  # every node exactly once
    assert order.index("a") > order.index("b") and order.index("a") > order.index("c0")
    assert order.index("c0") > order.index("c") and order.index("d") == 0
    # d = 2 (2 (2x) + 2 (2 (2x))) = 8x + 16x
    np.testing.assert_array_equal(x.grad.numpy(), [24.0])


def test_a_tensor_used_twice_gets_the_sum_of_both_paths():
    x = leaf([3.0, -1.0])
    (x * x).sum().backward()  # d/dx x^2 = 2x: the two uses of x each contribute x
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, -2.0])


def test_diamond_graph_matches_torch():
    a = np.array([0.5, -1.0, 2.0])
    x = leaf(a)
    e = x.exp()
    y = (e * 2 + e * 3 + e.sigmoid() * e).sum()
    y.backward()
    xt = torch.tensor(a, requires_grad=True)
    et = xt.exp()
    (et * 2 + et * 3 + et.sigmoid() * et).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-14)


def test_leaf_grad_accumulates_across_backward_calls_until_reset():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()  # a second graph: 3 + 2x is added to the first gradient
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 7.0])
    g = x.grad
    x.grad.zero_()  # allowed: a gradient is a plain tensor, not part of a graph
    assert x.grad is g and np.all(g.numpy() == 0)
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    x.grad = None  # the other way to reset (what Module.zero_grad does)
    (x * 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_intermediate_tensors_get_no_grad_unless_retained():
    x = leaf([1.0, 2.0])
    h = x * 3
    k = h * h
    k.retain_grad()
    k.sum().backward()
    assert h.grad is None and not h.is_leaf
    np.testing.assert_array_equal(k.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(x.grad.numpy(), 2 * 9 * np.array([1.0, 2.0]))


def test_retain_grad_on_a_middle_node():
    x = leaf([1.0, 2.0])
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), [6.0, 12.0])


def test_second_backward_raises_unless_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()  # allowed: the first call kept the graph
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    with pytest.raises(GradientError, match="retain_graph=True"):
        y.backward()


def test_backward_of_a_leaf_and_of_a_second_output():
    x = leaf([1.0, 5.0, 3.0])
    x.backward(np.array([1.0, 2.0, 3.0]))  # a leaf's gradient is the upstream gradient
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0, 3.0])
    x.grad = None
    values, indices = F.max(x.reshape(1, 3), 1)
    values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])
    assert not indices.requires_grad and indices.grad_fn is None


# ---- bad use of backward -----------------------------------------------------------------------
def test_backward_on_non_scalar_without_grad_names_the_shape():
    y = leaf([[1.0, 2.0]]) * 2
    with pytest.raises(GradientError, match=r"\(1, 2\)"):
        y.backward()


def test_backward_with_wrong_grad_shape_names_both_shapes():
    y = leaf([1.0, 2.0, 3.0]) * 2
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(3,\)"):
        y.backward(np.ones((3, 1)))


def test_backward_without_requires_grad_says_why():
    with pytest.raises(GradientError, match="does not require grad"):
        (tv.tensor(np.ones(2)) * 2).sum().backward()


def test_function_returning_a_wrong_gradient_is_reported():
    class TooMany(Function):
        def forward(self, x):
            return x * 1

        def backward(self, gy):
            return gy, gy

    class WrongShape(Function):
        def forward(self, x):
            return x * 1

        def backward(self, gy):
            return gy[:1]

    x = leaf([1.0, 2.0])
    with pytest.raises(GradientError, match="TooMany.*2 gradients for 1 inputs"):
        TooMany()(x).sum().backward()
    with pytest.raises(GradientError, match=r"WrongShape.*\(1,\).*\(2,\)"):
        WrongShape()(x).sum().backward()


# ---- in-place changes ---------------------------------------------------------------------------
def test_inplace_change_of_a_saved_tensor_names_shape_and_versions():
    x = leaf([1.0, 2.0, 3.0])
    y = x.exp()  # Exp saves its output y
    z = y.sum()
    with tv.no_grad():
        y.mul_(2)
    with pytest.raises(GradientError, match=r"Exp.*shape \(3,\).*version 0 then, 1 now"):
        z.backward()


def test_inplace_change_of_a_saved_input_is_caught():
    w = leaf([1.0, 2.0])
    a = tv.tensor(np.array([3.0, 4.0]))
    y = (w * a).sum()  # Mul saves a
    a[0] = 10.0
    with pytest.raises(GradientError, match=r"Mul.*\(2,\)"):
        y.backward()


def test_inplace_change_through_detach_or_a_view_is_caught():
    # detach() and views share the storage, hence the version counter (as in PyTorch)
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    x.detach().zero_()
    with pytest.raises(GradientError, match="modified in place"):
        y.backward()
    w = leaf([1.0, 2.0, 3.0])
    a = tv.tensor(np.array([3.0, 4.0, 5.0]))
    y = (w * a).sum()
    a[1:].add_(1.0)  # a view of a's storage
    with pytest.raises(GradientError, match="modified in place"):
        y.backward()


def test_inplace_change_that_nothing_saved_is_fine():
    x = leaf([1.0, 2.0])
    a = tv.tensor(np.array([3.0, 4.0]))
    y = (x + a).sum()  # Add needs no values for its backward
    a.add_(1.0)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_inplace_on_a_leaf_that_requires_grad_needs_no_grad():
    x = leaf([1.0, 2.0])
    for change in (lambda: x.add_(1.0), lambda: x.mul_(2.0), lambda: x.zero_(), lambda: x.__setitem__(0, 5.0),
                   lambda: x.copy_(np.zeros(2)), lambda: x.sub_(1.0), lambda: x.div_(2.0), lambda: x.fill_(0.0)):
        with pytest.raises(GradientError, match=r"leaf tensor of shape \(2,\).*no_grad"):
            change()
    with tv.no_grad():  # what optimizers do
        x.sub_(np.array([0.5, 0.5]), alpha=2.0)
    np.testing.assert_array_equal(x.numpy(), [0.0, 1.0])


def test_inplace_inside_a_graph_is_refused_not_silently_wrong():
    # PyTorch records in-place ops in the graph; tinyvision does not, so it refuses them
    # rather than differentiate the value before the change.
    x = leaf([1.0, 2.0])
    y = x * 2
    with pytest.raises(GradientError, match=r"\(2,\).*Mul.*out-of-place"):
        y.mul_(3.0)
    t = tv.tensor(np.zeros(2))
    with pytest.raises(GradientError, match="requires grad"):
        t[0] = x[1]  # the write would drop x's gradient


def test_inplace_on_a_reduced_scalar_changes_it():
    s = tv.tensor(np.ones(3)).sum()  # NumPy reduces to a scalar; the Tensor keeps a 0-d array
    s.add_(1.0)
    assert s.item() == 4.0 and isinstance(s.data, np.ndarray)


def test_iteration_yields_differentiable_rows():
    x = leaf(np.arange(6.0).reshape(3, 2))
    rows = list(x)
    assert len(rows) == 3 and rows[1].numpy().tolist() == [2.0, 3.0]
    sum(r.sum() * k for k, r in enumerate(rows)).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0], [1, 1], [2, 2]])
    with pytest.raises(TypeError, match="0-d"):
        list(tv.tensor(1.0))


def test_copy_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        tv.tensor(np.zeros(2)).copy_(np.zeros(3))


# ---- no_grad, detach -------------------------------------------------------------------------------
def test_no_grad_records_nothing_and_restores_the_mode():
    x = leaf([1.0])
    with tv.no_grad():
        y = x * 2
        assert not tv.is_grad_enabled()
        with tv.enable_grad():
            z = x * 2
    assert tv.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None
    with pytest.raises(KeyError):
        with tv.no_grad():
            raise KeyError("boom")
    assert tv.is_grad_enabled()  # restored even after an exception

    @tv.no_grad()
    def infer(t):
        return t * 3

    assert not infer(x).requires_grad


def test_set_grad_enabled():
    x = leaf([1.0])
    with tv.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    with tv.set_grad_enabled(True):
        assert (x * 2).requires_grad
    assert tv.is_grad_enabled()
    try:
        tv.set_grad_enabled(False)  # a plain call switches the mode, as in PyTorch
        assert not tv.is_grad_enabled() and not (x * 2).requires_grad
    finally:
        tv.set_grad_enabled(True)
    assert tv.is_grad_enabled()


def test_grad_mode_is_per_thread():
    import threading

    x = leaf([1.0])
    seen = {}

    def worker():
        seen["enabled"] = tv.is_grad_enabled()
        seen["records"] = (x * 2).requires_grad

    with tv.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert seen == {"enabled": True, "records": True}


def test_detach_shares_data_and_stops_the_gradient():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert d.data is x.data and not d.requires_grad and d.is_leaf
    y = (x * d).sum()  # d is a constant: gradient d, not 2x
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0])


def test_requires_grad_switches():
    x = tv.tensor(np.ones(2))
    assert x.requires_grad_() is x and x.requires_grad
    y = x * 2
    with pytest.raises(GradientError, match="detach"):
        y.requires_grad_(False)


# ---- dtypes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, dtype",
    [
        ([1.0, 2.0], np.float32),  # Python floats: float32, PyTorch's default
        (2.5, np.float32),
        (np.array([1.0]), np.float64),  # float64 arrays are kept
        (np.float64(1.0), np.float64),
        (np.array([1.0], np.float32), np.float32),
        (np.array([1.0], np.float16), np.float32),
        ([1, 2], np.int64),  # integers: int64
        (3, np.int64),
        (np.array([1], np.int32), np.int64),
        (np.array([1], np.uint8), np.int64),
        ([True, False], np.bool_),
    ],
)
def test_dtype_rules(data, dtype):
    assert tv.tensor(data).dtype == dtype


def test_tensor_copies_like_torch_tensor_and_Tensor_wraps():
    a = np.zeros(3)
    t = tv.tensor(a)
    a[0] = 5.0
    assert t.numpy().tolist() == [0.0, 0.0, 0.0]
    w = Tensor(a)  # the constructor wraps without a copy (torch.as_tensor)
    assert w.data is a
    u = tv.tensor(t)
    assert u.data is not t.data and u.numpy().tolist() == t.numpy().tolist()


def test_explicit_dtype_and_casts():
    x = tv.tensor([1, 2], dtype=np.float64)
    assert x.dtype == np.float64
    assert x.float().dtype == np.float32 and x.double().dtype == np.float64 and x.long().dtype == np.int64
    # a cast is differentiable: the gradient comes back in the input's dtype
    w = leaf([1.0, 2.0], np.float32)
    (w.double() * 3).sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match=r"floating-point.*\(2,\).*int64"):
        tv.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="int64"):
        tv.tensor([1, 2]).requires_grad_()
    with pytest.raises(TypeError, match="bool"):
        tv.tensor([True]).requires_grad_()


def test_float32_stays_float32_and_its_gradient_too():
    x = leaf([1.0, 2.0], np.float32)
    y = x * 2.0 + 1 - x / 3 + x**2  # Python scalars do not promote (NEP 50, as PyTorch)
    assert y.dtype == np.float32
    y.backward(np.ones(2, dtype=np.float64))  # a float64 upstream gradient is cast
    assert x.grad.dtype == np.float32
    x.grad = None
    z = F.matmul(x, np.ones(2))  # float32 @ float64 computes in float64 ...
    z.backward()
    assert x.grad.dtype == np.float32  # ... but the gradient has x's dtype


def test_comparisons_give_bool_tensors_outside_the_graph():
    x = leaf([1.0, 2.0])
    m = x > 1.5
    assert m.dtype == np.bool_ and not m.requires_grad
    assert (x == x).all() and not (x != x).any()
    assert (x <= 1.0).numpy().tolist() == [True, False] and (x >= 2.0).numpy().tolist() == [False, True]
    assert (x < 2.0).numpy().tolist() == [True, False]


# ---- conversions ------------------------------------------------------------------------------------
def test_array_protocol_numpy_item():
    x = leaf([[1.5, 2.0]])
    a = np.asarray(x)
    assert isinstance(a, np.ndarray) and a.dtype == np.float64 and a.tolist() == [[1.5, 2.0]]
    assert np.asarray(x, dtype=np.float32).dtype == np.float32
    assert x.numpy().tolist() == [[1.5, 2.0]] and x.tolist() == [[1.5, 2.0]]
    assert x.shape == (1, 2) and x.ndim == 2 and x.dim() == 2 and x.numel() == 2 and len(x) == 1
    assert x.size() == (1, 2) and x.size(1) == 2
    s = x.sum()
    assert s.item() == 3.5 and float(s) == 3.5 and int(s) == 3 and bool(s)
    with pytest.raises(ValueError, match=r"one element.*\(1, 2\)"):
        x.item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(x)
    with pytest.raises(TypeError, match="0-d"):
        len(s)
    assert "requires_grad=True" in repr(x) and "grad_fn=Sum" in repr(s)
    assert x.device == "cpu" and x.to("cpu") is x and x.cpu() is x


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**", "@"])
def test_operators_with_numpy_arrays_on_either_side(op):
    a = np.array([[0.5, 1.5], [2.0, 1.0]])
    b = np.array([[1.0, 2.0], [0.5, 3.0]])
    fn = {
        "+": lambda p, q: p + q, "-": lambda p, q: p - q, "*": lambda p, q: p * q,
        "/": lambda p, q: p / q, "**": lambda p, q: p**q, "@": lambda p, q: p @ q,
    }[op]
    for tensor_left in (True, False):
        x = leaf(a if tensor_left else b)
        out = fn(x, b) if tensor_left else fn(a, x)
        assert isinstance(out, Tensor), f"ndarray {op} Tensor gave {type(out)}"
        out.sum().backward()
        xt = torch.tensor(a if tensor_left else b, requires_grad=True)
        ref = fn(xt, torch.tensor(b)) if tensor_left else fn(torch.tensor(a), xt)
        ref.sum().backward()
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-14)
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-14)


def test_python_scalars_on_either_side():
    x = leaf([1.0, 2.0])
    y = (2 - x) * 3 + 1 / x + 2**x - x**2
    xt = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    yt = (2 - xt) * 3 + 1 / xt + 2**xt - xt**2
    y.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-14)


# ---- devices ------------------------------------------------------------------------------------------
class _FakeGpuArray(np.ndarray):
    """A NumPy array that the backend takes for a CuPy one (its type lives in a 'cupy' module)."""


_FakeGpuArray.__module__ = "cupy._core.core"


def test_mixed_devices_raise_device_error(monkeypatch):
    monkeypatch.setattr(backend, "_import_cupy", lambda: np)  # the 'cupy' module is NumPy here
    gpu = np.ones((2, 3)).view(_FakeGpuArray)
    assert backend.get_array_module(gpu) is np and backend.device_of(gpu) == "cuda"
    with pytest.raises(tv.DeviceError, match=r"\(4,\).*cpu.*\(2, 3\).*cuda"):
        backend.get_array_module(np.ones(4), gpu)
    x = leaf(np.ones(4))
    y = Tensor.__new__(Tensor)  # a Tensor on the fake device
    y.__dict__.update(tv.tensor(np.zeros(1)).__dict__)
    y.data = gpu
    for op in (lambda: x + y, lambda: y * x, lambda: F.cat([x.reshape(2, 2), y], 1)):
        with pytest.raises(tv.DeviceError, match="different devices"):
            op()
    with pytest.raises(tv.DeviceError):
        tv.tensor(np.ones(2)).add_(gpu)


# ---- deep graphs ------------------------------------------------------------------------------------------
def test_deep_graph_has_no_recursion_limit():
    assert sys.getrecursionlimit() < 10_000 * 2
    x = leaf([1.0])
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**10_000], rtol=1e-10)
    del y
    gc.collect()  # freeing the 20 000-node chain must not recurse either


def test_deep_graph_kept_alive_then_freed():
    x = leaf([1.0])
    y = x
    for _ in range(10_000):
        y = F.tanh(y)
    del y  # dropped before any backward
    gc.collect()


@pytest.mark.parametrize("op", [F.relu, F.sigmoid, F.tanh, lambda t: F.softmax(t, dim=1), lambda t: t.exp()],
                         ids=["relu", "sigmoid", "tanh", "softmax", "exp"])
def test_a_graph_dropped_before_backward_is_freed_without_the_cyclic_collector(op):
    # An op that saves its own output for backward must not hold that output Tensor (a cycle
    # output -> grad_fn -> output): dropping the graph frees its arrays at once, as in PyTorch,
    # not at the next collection (a forward-only loop would otherwise pile up its outputs).
    x = leaf(np.ones((2, 3)))
    gc.disable()
    try:
        y = op(x)
        ref, fn = weakref.ref(y), weakref.ref(y.grad_fn)
        del y
        assert ref() is None and fn() is None
    finally:
        gc.enable()


# ---- a leaf's first gradient: adopted when private, copied otherwise ---------------------------
class _Fresh(Function):
    """y = 3 x; its backward returns a fresh array (or a reshaped view of one), remembered weakly."""

    def __init__(self, view=False, keep=False):
        self.view, self.keep = view, keep

    def forward(self, x):
        return 3 * x

    def backward(self, gy):
        g = (3 * gy).ravel().reshape(gy.shape) if self.view else 3 * gy
        self.made = weakref.ref(g)
        if self.keep:
            self.kept = g  # the Function holds it: the leaf must get its own copy
        return g


@pytest.mark.parametrize("view", [False, True])
def test_a_fresh_private_gradient_is_adopted_not_copied(view):
    x = leaf([1.0, 2.0, 3.0])
    fn = _Fresh(view=view)
    fn(x).backward(np.ones(3))
    assert x.grad.data is fn.made()  # no copy: nothing else can reach that array
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0, 3.0])


def test_a_gradient_held_elsewhere_is_copied():
    x = leaf([1.0, 2.0])
    fn = _Fresh(keep=True)
    fn(x).backward(np.ones(2))
    assert x.grad.data is not fn.kept and not np.shares_memory(x.grad.data, fn.kept)
    fn.kept[:] = 99.0
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_one_gradient_for_two_leaves_and_the_users_array_are_never_shared():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    g = np.array([5.0, 6.0])
    (a + b).backward(g)  # Add's backward hands the same array to both inputs
    assert not np.shares_memory(a.grad.data, b.grad.data)
    assert not np.shares_memory(a.grad.data, g) and not np.shares_memory(b.grad.data, g)
    c = leaf([1.0, 2.0])
    c.backward(g)  # a leaf as the root: its gradient is the user's array, copied
    g[:] = 0.0
    np.testing.assert_array_equal(c.grad.numpy(), [5.0, 6.0])
    np.testing.assert_array_equal(a.grad.numpy(), [5.0, 6.0])
    a.grad.data[...] = 0.0  # zero_grad(set_to_none=False) writes in place: b must not see it
    np.testing.assert_array_equal(b.grad.numpy(), [5.0, 6.0])


def test_adopted_gradients_match_pytorch_on_a_model_and_accumulate():
    """A small conv net's parameter gradients (adopted from the kernels' fresh arrays) equal
    PyTorch's, and a second backward accumulates onto them without touching anything else."""
    from tinyvision import nn

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    ours = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3), nn.Flatten(), nn.Linear(32, 3))
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3),
                              torch.nn.Flatten(), torch.nn.Linear(32, 3))
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    for _ in range(2):
        ours(tv.tensor(x)).sum().backward()
        ref(torch.from_numpy(x)).sum().backward()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)
    grads = [p.grad.data for p in ours.parameters()]
    assert all(not np.shares_memory(a, b) for i, a in enumerate(grads) for b in grads[i + 1:])
