"""Forward hooks, named_modules and load_state_dict, each checked against torch.nn.Module."""
import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision import nn


def _pair():
    ours = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 3), nn.ReLU()))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                 torch.nn.Sequential(torch.nn.Linear(8, 3), torch.nn.ReLU()))
    return ours, theirs


def _names(model, **kw):
    return [n for n, _ in model.named_modules(**kw)]


# ---- named_modules --------------------------------------------------------------------------
def test_named_modules_order_and_prefix_match_pytorch():
    ours, theirs = _pair()
    assert _names(ours) == _names(theirs) == ["", "0", "1", "2", "2.0", "2.1"]
    assert _names(ours, prefix="net") == _names(theirs, prefix="net")


def test_shared_modules_and_remove_duplicate_match_pytorch():
    shared, tshared = nn.Linear(2, 2), torch.nn.Linear(2, 2)
    ours = nn.Sequential(shared, nn.ReLU(), shared, nn.Sequential(shared))
    theirs = torch.nn.Sequential(tshared, torch.nn.ReLU(), tshared, torch.nn.Sequential(tshared))
    assert _names(ours) == _names(theirs) == ["", "0", "1", "3"]
    assert _names(ours, remove_duplicate=False) == _names(theirs, remove_duplicate=False)
    # memo: modules already seen (and what is below them) are skipped
    assert _names(ours, memo={ours[3]}) == _names(theirs, memo={theirs[3]})
    # state_dict lists a shared module under every name, as PyTorch's does
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters(remove_duplicate=False)] == \
        [n for n, _ in theirs.named_parameters(remove_duplicate=False)]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


# ---- hooks ----------------------------------------------------------------------------------
def test_forward_hooks_see_what_pytorchs_see(rng):
    ours, theirs = _pair()
    ours.load_state_dict(theirs.state_dict())
    x = rng.standard_normal((5, 4)).astype(np.float32)
    seen_ours, seen_theirs = [], []
    for name, m in ours.named_modules():
        m.register_forward_hook(lambda m, a, out, name=name: seen_ours.append((name, len(a), out.numpy())))
    for name, m in theirs.named_modules():
        m.register_forward_hook(lambda m, a, out, name=name: seen_theirs.append((name, len(a), out.detach().numpy())))
    ours(tv.tensor(x))
    theirs(torch.tensor(x))
    assert [s[:2] for s in seen_ours] == [s[:2] for s in seen_theirs]
    assert [s[0] for s in seen_ours] == ["0", "1", "2.0", "2.1", "2", ""]  # execution order
    for (_, _, a), (_, _, b) in zip(seen_ours, seen_theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_hook_return_value_replaces_output_and_remove_works(rng):
    lin = nn.Linear(3, 2)
    x = tv.tensor(rng.standard_normal((4, 3)))
    plain = lin(x).numpy()
    h = lin.register_forward_hook(lambda m, args, out: out * 2)
    np.testing.assert_allclose(lin(x).numpy(), 2 * plain, rtol=1e-6)
    h2 = lin.register_forward_hook(lambda m, args, out: None)  # None keeps the output
    np.testing.assert_allclose(lin(x).numpy(), 2 * plain, rtol=1e-6)
    h.remove()
    h.remove()  # a second remove is harmless
    h2.remove()
    np.testing.assert_array_equal(lin(x).numpy(), plain)
    # gradients flow through a replaced output
    x = tv.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    with lin.register_forward_hook(lambda m, args, out: out * 3):
        lin(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * lin.weight.numpy().sum(0)[None].repeat(4, 0), rtol=1e-5)
    assert not lin._forward_hooks  # the with-block removed it


def test_hook_order_prepend_and_kwargs():
    calls = []
    lin = nn.Linear(2, 2)
    lin.register_forward_hook(lambda m, a, o: calls.append("a"))
    lin.register_forward_hook(lambda m, a, o: calls.append("b"), prepend=True)
    lin.register_forward_pre_hook(lambda m, a: calls.append("pre"))
    lin(tv.tensor(np.ones((1, 2))))
    assert calls == ["pre", "b", "a"]

    class Scale(nn.Module):
        def forward(self, x, factor=1.0):
            return x * factor

    s = Scale()
    got = []
    s.register_forward_hook(lambda m, a, kw, o: got.append(kw), with_kwargs=True)
    s.register_forward_pre_hook(lambda m, a, kw: (a, {"factor": 10.0}), with_kwargs=True)
    out = s(tv.tensor(np.ones(2)), factor=2.0)
    np.testing.assert_array_equal(out.numpy(), [10.0, 10.0])
    assert got == [{"factor": 10.0}]
    with pytest.raises(TypeError, match="callable"):
        s.register_forward_hook(3)


def test_forward_pre_hook_replaces_inputs_as_pytorch():
    lin, tlin = nn.Linear(2, 2), torch.nn.Linear(2, 2)
    lin.load_state_dict(tlin.state_dict())
    lin.register_forward_pre_hook(lambda m, args: args[0] * 0)  # a single value: wrapped in a tuple
    tlin.register_forward_pre_hook(lambda m, args: args[0] * 0)
    x = np.ones((1, 2), dtype=np.float32)
    np.testing.assert_allclose(lin(tv.tensor(x)).numpy(), tlin(torch.tensor(x)).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(lin(tv.tensor(x)).numpy(), lin.bias.numpy()[None], rtol=1e-6)


# ---- load_state_dict ------------------------------------------------------------------------
def test_load_state_dict_returns_pytorchs_named_tuple():
    ours, theirs = _pair()
    sd = {k: v.numpy() for k, v in theirs.state_dict().items()}
    r = ours.load_state_dict(sd)
    assert r.missing_keys == [] and r.unexpected_keys == []
    assert repr(r) == repr(theirs.load_state_dict(theirs.state_dict())) == "<All keys matched successfully>"
    del sd["2.0.bias"]
    sd["extra"] = np.zeros(1)
    r = ours.load_state_dict(sd, strict=False)
    t = theirs.load_state_dict({k: torch.tensor(v) for k, v in sd.items()}, strict=False)
    assert (r.missing_keys, r.unexpected_keys) == (t.missing_keys, t.unexpected_keys) == (["2.0.bias"], ["extra"])


def test_strict_errors_name_keys_in_pytorchs_words():
    ours, theirs = _pair()
    sd = ours.state_dict()
    del sd["0.bias"]
    sd["x"] = np.zeros(1)
    sd["2.0.weight"] = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(RuntimeError) as theirs_err:
        theirs.load_state_dict({k: torch.tensor(v) for k, v in sd.items()})
    with pytest.raises(nn.StateDictError) as ours_err:
        ours.load_state_dict(sd)
    assert isinstance(ours_err.value, ValueError) and isinstance(ours_err.value, RuntimeError)
    msg, ref = str(ours_err.value), str(theirs_err.value)
    for line in ['Missing key(s) in state_dict: "0.bias".', 'Unexpected key(s) in state_dict: "x".',
                 "size mismatch for 2.0.weight: copying a param with shape (3, 3) from checkpoint, "
                 "the shape in current model is (3, 8)."]:
        assert line in msg
    assert msg.index("Missing") < msg.index("Unexpected") < msg.index("size mismatch")
    assert ref.index("Missing") < ref.index("Unexpected") < ref.index("size mismatch")
    # a shape mismatch raises even when not strict (PyTorch too), and nothing was loaded
    before = ours.state_dict()
    with pytest.raises(nn.StateDictError, match="size mismatch for 2.0.weight"):
        ours.load_state_dict(sd, strict=False)
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("garbage,what", [
    (np.full((8, 4), None, dtype=object), "dtype object"),
    (np.full((8, 4), "a"), "dtype <U1"),
    (np.ones((8, 4), dtype=np.complex64), "dtype complex64"),
    (None, "is None"),
])
def test_garbage_values_are_refused_not_loaded_as_nan(garbage, what):
    lin = nn.Sequential(nn.Linear(4, 8))
    before = lin[0].weight.numpy().copy()
    sd = lin.state_dict()
    sd["0.weight"] = garbage
    with pytest.raises(nn.StateDictError, match=rf"'0\.weight'.*{what}" if what != "is None" else r"'0\.weight' is None"):
        lin.load_state_dict(sd)
    np.testing.assert_array_equal(lin[0].weight.numpy(), before)
    assert np.isfinite(lin[0].weight.numpy()).all()


def test_accepts_numpy_tensors_torch_and_casts_like_copy_(rng):
    lin = nn.Linear(3, 2)
    w = rng.standard_normal((2, 3))  # float64 into a float32 parameter: cast, as torch's copy_
    lin.load_state_dict({"weight": tv.tensor(w), "bias": torch.ones(2, dtype=torch.bfloat16)})
    assert lin.weight.dtype == np.float32 and lin.bias.dtype == np.float32
    np.testing.assert_allclose(lin.weight.numpy(), w.astype(np.float32))
    np.testing.assert_array_equal(lin.bias.numpy(), [1.0, 1.0])
    with pytest.raises(TypeError, match="dict-like"):
        lin.load_state_dict([("weight", w)])


def test_prepare_state_dict_hook_edits_a_copy():
    class DropsCounter(nn.Linear):
        def _prepare_state_dict(self, state_dict, prefix):
            state_dict.pop(prefix + "num_batches_tracked", None)

    model = nn.Sequential(DropsCounter(2, 2))
    sd = model.state_dict()
    sd["0.num_batches_tracked"] = np.array(3)
    model.load_state_dict(sd)  # strict, and the extra key was dropped by the hook
    assert "0.num_batches_tracked" in sd  # the caller's dict is untouched


def test_module_docstring_examples_run():
    import doctest

    import tinyvision.nn.module as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
