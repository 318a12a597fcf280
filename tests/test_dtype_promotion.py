"""dtype promotion follows PyTorch's rules (tinyvision.autograd.result_type), checked live
against torch on every pair of dtypes and operand kinds (dimensioned, 0-d, Python number)."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.functional as F
from tinyvision.autograd import result_type

DTYPES = [np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64]
TORCH = {np.bool_: torch.bool, np.uint8: torch.uint8, np.int8: torch.int8, np.int16: torch.int16,
         np.int32: torch.int32, np.int64: torch.int64, np.float16: torch.float16,
         np.float32: torch.float32, np.float64: torch.float64}


def _operand(kind, dtype):
    """(numpy operand, torch operand) of one kind: 'dim' (shape (2,)), 'zero' (0-d), 'py'."""
    if kind == "py":
        v = {np.bool_: True, np.float32: 2.5}.get(dtype, 3)
        v = 2.5 if np.dtype(dtype).kind == "f" else v
        return v, v
    shape = (2,) if kind == "dim" else ()
    a = np.ones(shape, dtype=dtype)
    return a, torch.from_numpy(a.copy())


@given(st.sampled_from(DTYPES), st.sampled_from(DTYPES), st.sampled_from(["dim", "zero", "py"]),
       st.sampled_from(["dim", "zero"]))
def test_result_type_matches_torch(da, db, kind_a, kind_b):
    a, ta = _operand(kind_a, da)
    b, tb = _operand(kind_b, db)
    expected = torch.result_type(tb, ta) if kind_a == "py" else torch.result_type(ta, tb)
    ours = result_type(a, b)
    assert str(ours) == str(expected).replace("torch.", "").replace("bool", "bool"), (kind_a, da, kind_b, db)


@pytest.mark.parametrize("op, top", [(F.add, torch.add), (F.sub, torch.sub), (F.mul, torch.mul),
                                     (F.div, torch.div), (F.maximum, torch.maximum)])
# tensors hold bool, int64, float32 or float64 (the creation rule); every pair of those
@pytest.mark.parametrize("da, db", [(np.float32, np.int64), (np.int64, np.int64), (np.int64, np.float64),
                                    (np.float32, np.float64), (np.bool_, np.int64), (np.bool_, np.float32)])
def test_binary_ops_give_torch_dtype(op, top, da, db):
    if op is F.sub and da == np.bool_:
        pytest.skip("torch refuses bool subtraction")
    a = np.arange(1, 4).astype(da)
    b = np.arange(2, 5).astype(db)
    ours = op(tv.Tensor(a), tv.Tensor(b))
    theirs = top(torch.from_numpy(a), torch.from_numpy(b))
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.numpy().astype(np.float64), theirs.numpy().astype(np.float64), rtol=1e-3)


def test_zero_dim_float64_does_not_widen_float32_and_gradients_keep_dtypes():
    x = tv.tensor(np.ones(3, np.float32), requires_grad=True)
    s = tv.tensor(np.array(2.0), requires_grad=True)          # float64, 0-d
    y = x * s
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32 and s.grad.dtype == np.float64
    assert s.grad.item() == 3.0


def test_losses_promote_targets_like_torch():
    x = np.array([0.5, 1.5, 3.0], np.float32)
    t = np.array([1, 1, 2], np.int64)
    for ours, theirs in ((F.l1_loss, torch.nn.functional.l1_loss), (F.mse_loss, torch.nn.functional.mse_loss)):
        o = ours(tv.tensor(x), tv.tensor(t))
        r = theirs(torch.from_numpy(x), torch.from_numpy(t))
        assert o.dtype == np.float32 and r.dtype == torch.float32
        np.testing.assert_allclose(o.item(), r.item(), rtol=1e-6)


def test_tensor_creation_keeps_byte_swapped_float64_and_refuses_big_uint64():
    t = tv.tensor(np.array([1.5, -2.0], dtype=">f8"))
    assert t.dtype == np.float64 and t.data.dtype.isnative
    np.testing.assert_array_equal(t.numpy(), [1.5, -2.0])
    assert tv.tensor(np.array([3], dtype=">i4")).dtype == np.int64
    assert tv.tensor(np.array([2**63 - 1], dtype=np.uint64)).numpy()[0] == 2**63 - 1
    with pytest.raises(OverflowError, match="uint64 value 9223372036854775813 does not fit in int64"):
        tv.tensor(np.array([2**63 + 5], dtype=np.uint64))


def test_integer_true_division_is_float32_as_torch():
    a = np.array([1, 2, 3])
    assert (tv.tensor(a) / tv.tensor(a)).dtype == np.float32
    assert (torch.tensor([1, 2]) / torch.tensor([1, 2])).dtype == torch.float32
