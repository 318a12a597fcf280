"""The backend: which array library holds an array, moving between devices, clear errors."""
from __future__ import annotations

import types

import numpy as np
import pytest

import tinyvision as tv
from tinyvision import backend
from tinyvision.backend import DeviceError, get_array_module, to_device

needs_no_cupy = pytest.mark.skipif(backend._import_cupy() is not None, reason="CuPy is installed here")
gpu = pytest.mark.skipif(not backend.cupy_available(), reason="needs CuPy and a CUDA device")


def test_get_array_module_is_numpy_for_cpu_things():
    assert get_array_module(np.zeros(3)) is np
    assert get_array_module(np.zeros(3), 2.0, None, 7) is np
    assert get_array_module() is np  # nothing array-like: NumPy
    assert get_array_module(tv.tensor(np.zeros(2))) is np  # Tensors are looked through
    assert get_array_module(np.float32(1.0)) is np


def test_to_device_cpu_keeps_numpy_arrays_without_copy():
    a = np.arange(3.0)
    assert to_device(a, "cpu") is a
    assert to_device(a, "CPU") is a
    out = to_device([1.0, 2.0], "cpu")
    assert isinstance(out, np.ndarray) and out.tolist() == [1.0, 2.0]
    assert backend.device_of(a) == "cpu" and backend.device_of(1.0) == "cpu"


def test_unknown_device_is_named():
    with pytest.raises(DeviceError, match="'tpu'"):
        to_device(np.zeros(2), "tpu")


@needs_no_cupy
def test_cuda_without_cupy_says_cupy_is_missing():
    assert not backend.cupy_available()
    for device in ("cuda", "cuda:0", "gpu"):
        with pytest.raises(DeviceError, match="CuPy is not installed"):
            to_device(np.zeros(2), device)
    with pytest.raises(DeviceError, match="CuPy is not installed"):
        tv.tensor(np.zeros(2)).to("cuda")
    with pytest.raises(DeviceError, match="CuPy is not installed"):
        tv.tensor(np.zeros(2)).cuda()


def test_cuda_with_cupy_but_no_device_says_so(monkeypatch):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice")

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device)))
    monkeypatch.setattr(backend, "_import_cupy", lambda: fake)
    assert not backend.cupy_available()
    with pytest.raises(DeviceError, match="no CUDA device"):
        to_device(np.zeros(2), "cuda")


def test_as_array_and_scatter_add():
    assert backend.as_array([1, 2], dtype=np.float32).dtype == np.float32
    target = np.zeros(4)
    backend.scatter_add(target, np.array([0, 0, 3]), np.array([1.0, 2.0, 5.0]))
    assert target.tolist() == [3.0, 0.0, 0.0, 5.0]  # repeated indices add up
    backend.scatter_add(target, slice(1, 3), np.array([1.0, 1.0]))
    assert target.tolist() == [3.0, 1.0, 1.0, 5.0]
    t2 = np.zeros((2, 3))
    backend.scatter_add(t2, (np.array([1, 1]), slice(None)), np.ones((2, 3)))
    assert t2.tolist() == [[0, 0, 0], [2, 2, 2]]


@gpu
@pytest.mark.gpu
def test_round_trip_and_mixing_on_a_real_gpu():
    import cupy

    x = tv.tensor(np.arange(3.0), requires_grad=True)
    y = x.to("cuda")
    assert isinstance(y.data, cupy.ndarray) and y.device == "cuda"
    assert get_array_module(y.data) is cupy
    (y * y).sum().backward()  # the gradient moves back to the CPU
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 2.0, 4.0])
    with pytest.raises(DeviceError, match="different devices"):
        y + x
    assert to_device(y.data, "cpu").tolist() == [0.0, 1.0, 2.0]
