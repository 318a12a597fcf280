"""PyTorch's keyword names work for every functional op that has a PyTorch counterpart: each
tinyvision parameter list starts with torch's (same names, same order), read from torch itself."""
import inspect
import re

import pytest
import torch
import torch.nn.functional as TF

import tinyvision.functional as F

# torch parameters tinyvision does not take (legacy or CUDA/memory options), per op or everywhere
_IGNORED = {"out", "inplace", "_stacklevel", "dtype", "memory_format", "size_average", "reduce", "weight_l1"}
_EXTRA_IGNORED = {"huber_loss": {"weight"}, "l1_loss": {"weight"}, "mse_loss": {"weight"},
                  "div": {"rounding_mode"}, "add": {"alpha"}, "sub": {"alpha"}}
# torch functions whose signature torch does not expose for inspection: their documented one
_DOCUMENTED = {
    "max_pool2d": ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"],
    "adaptive_max_pool2d": ["input", "output_size", "return_indices"],
    "argmax": ["input", "dim", "keepdim"], "max": ["input", "dim", "keepdim"], "min": ["input", "dim", "keepdim"],
    "sum": ["input", "dim", "keepdim"], "mean": ["input", "dim", "keepdim"],
    "squeeze": ["input", "dim"], "abs": ["input"], "std": ["input", "dim"], "var": ["input", "dim"],
}


def _torch_params(name):
    if name in _DOCUMENTED:
        return _DOCUMENTED[name]
    fn = getattr(TF, name, None) or getattr(torch, name)
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        line = next(ln for ln in (fn.__doc__ or "").splitlines() if "(" in ln)
        params = [p.split("=")[0].split(":")[0].strip().lstrip("*")
                  for p in re.search(r"\((.*)\)", line).group(1).split(",")]
    drop = _IGNORED | _EXTRA_IGNORED.get(name, set())
    return [p for p in params if p and p not in drop and p != "/"]


def _ops_with_torch_twin():
    for name in sorted(dir(F)):
        fn = getattr(F, name)
        if name.startswith("_") or not callable(fn) or inspect.isclass(fn) or name in ("broadcast_shapes",):
            continue
        if getattr(TF, name, None) is None and getattr(torch, name, None) is None:
            continue
        yield name


@pytest.mark.parametrize("name", list(_ops_with_torch_twin()))
def test_parameter_names_are_torchs(name):
    ours = list(inspect.signature(getattr(F, name)).parameters)
    theirs = _torch_params(name)
    assert ours[:len(theirs)] == theirs[:len(ours)] and set(theirs) <= set(ours), (
        f"F.{name}{tuple(ours)} vs torch {tuple(theirs)}")


def test_conv2d_by_keywords():
    import numpy as np
    import tinyvision as tv

    x = tv.tensor(np.ones((1, 1, 3, 3), np.float32))
    w = tv.tensor(np.ones((2, 1, 3, 3), np.float32))
    b = tv.tensor(np.array([1.0, -1.0], np.float32))
    y = F.conv2d(input=x, weight=w, bias=b, stride=1, padding=0)
    np.testing.assert_array_equal(y.numpy().reshape(-1), [10.0, 8.0])
