"""tinyvision._args.int_pair: the one int-or-pair check behind conv, pooling and the conv layers."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyvision as tv
import tinyvision.functional as F
from tinyvision._args import int_pair


@given(st.integers(-5, 50), st.integers(-5, 50))
def test_ints_and_pairs_of_any_integer_type(a, b):
    assert int_pair("k", a) == (a, a)
    for pair in ((a, b), [a, b], (np.int64(a), np.int32(b))):
        got = int_pair("k", pair)
        assert got == (a, b) and all(type(v) is int for v in got)
    assert int_pair("k", (a,), allow_single=True) == (a, a)


@pytest.mark.parametrize("bad", [1.5, True, "3", None, (1, 2, 3), (1, 2.0), (4,), (), np.float32(2)])
def test_anything_else_is_a_type_error_naming_the_argument(bad):
    with pytest.raises(TypeError, match=r"conv2d: stride must be an integer or a pair of integers, got"):
        int_pair("stride", bad, where="conv2d")


def test_minimum_is_a_value_error():
    assert int_pair("padding", 0, minimum=0) == (0, 0)
    with pytest.raises(ValueError, match=r"max_pool2d: stride must be >= 1, got \(2, 0\)"):
        int_pair("stride", (2, 0), minimum=1, where="max_pool2d")


def test_the_public_callers_use_it():
    x = np.zeros((1, 2, 6, 6), np.float32)
    with pytest.raises(TypeError, match="conv2d: stride must be an integer or a pair of integers, got 1.5"):
        F.conv2d(x, np.zeros((2, 2, 3, 3), np.float32), stride=1.5)
    with pytest.raises(TypeError, match="Conv2d: kernel_size must be an integer or a pair of integers, got .1, 2, 3."):
        tv.nn.Conv2d(2, 2, kernel_size=(1, 2, 3))
    with pytest.raises(ValueError, match="ConvTranspose2d: stride must be >= 1, got 0"):
        tv.nn.ConvTranspose2d(2, 2, 2, stride=0)
    assert F.max_pool2d(tv.tensor(x), (2,)).shape == (1, 2, 3, 3)  # a 1-tuple, as PyTorch's pooling


def test_docstring_example():
    import doctest

    import tinyvision._args as args

    assert doctest.testmod(args).failed == 0
