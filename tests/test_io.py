"""Weights as .npz without pickle, written atomically."""
import os

import numpy as np
import pytest

import tinyvision as tv
from tinyvision import nn


def test_roundtrip_restores_outputs(tmp_path, rng):
    a = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    b = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    path = tv.save(a, tmp_path / "w.npz")
    b.load_state_dict(tv.load(path))
    x = tv.tensor(rng.standard_normal((4, 3)))
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    with np.load(path, allow_pickle=False) as f:  # readable without pickle
        assert sorted(f.files) == sorted(a.state_dict())


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    tv.save({"x": np.arange(3)}, path)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        tv.save({"x": np.arange(5)}, path)
    np.testing.assert_array_equal(tv.load(path)["x"], np.arange(3))
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")] == []  # no debris


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(TypeError, match="no pickle"):
        tv.save({"x": np.array([{"a": 1}], dtype=object)}, tmp_path / "w.npz")
    np.savez(tmp_path / "evil.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        tv.load(tmp_path / "evil.npz")


def test_suffix_is_added_and_returned(tmp_path):
    path = tv.save({"x": np.ones(2)}, tmp_path / "weights")
    assert path.endswith("weights.npz") and os.path.exists(path)
