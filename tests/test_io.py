"""tv.save / tv.load: .npz and .safetensors without pickle, atomic, and one clear error per bad file."""
import io as stdio
import os
import pickle
import signal
import stat
import subprocess
import sys
import textwrap
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyvision as tv
import tinyvision.io as tvio
from tinyvision import nn
from tinyvision.io import WeightsFileError

FORMATS = ["npz", "safetensors"]


def _state():
    """Every dtype a state dict holds, 0-d and empty arrays, and keys np.savez would misread."""
    rng = np.random.default_rng(0)
    return OrderedDict([
        ("z.weight", rng.standard_normal((3, 2)).astype(np.float32)),
        ("file", rng.standard_normal(4)),                       # np.savez's first argument
        ("allow_pickle", np.arange(3, dtype=np.int32)),          # np.load's option
        ("a/b", np.float16([1.5, -2.0])),
        ("", np.uint8([7])),
        ("x.npy", np.array([True, False])),
        ("ключ", np.zeros((0, 3), dtype=np.float32)),
        ("bn.num_batches_tracked", np.array(5, dtype=np.int64)),
    ])


def _assert_same(got, want):
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        np.testing.assert_array_equal(got[k], want[k])
        assert got[k].flags.writeable


# ---- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_roundtrip_keeps_keys_order_dtypes_and_values(tmp_path, fmt):
    state = _state()
    path = tv.save(state, tmp_path / f"w.{fmt}")
    assert path == str(tmp_path / f"w.{fmt}")
    _assert_same(tv.load(path), state)


def test_npz_is_numpys_own_format(tmp_path):
    state = _state()
    path = tv.save(state, tmp_path / "w.npz")
    with np.load(path, allow_pickle=False) as f:  # readable without pickle, keys as saved
        assert sorted(f.files) == sorted(state)
        for k in state:
            np.testing.assert_array_equal(f[k], state[k])
    # and a file np.savez wrote loads too
    np.savez(tmp_path / "theirs.npz", a=np.arange(3), b=np.ones((2, 2), dtype=np.float32))
    _assert_same(tv.load(tmp_path / "theirs.npz"),
                 OrderedDict(a=np.arange(3), b=np.ones((2, 2), dtype=np.float32)))


def test_safetensors_file_is_read_by_safetensors_and_torch(tmp_path, rng):
    torch = pytest.importorskip("torch")
    from safetensors.numpy import load_file
    from safetensors.torch import load_file as torch_load_file

    ours = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    path = tv.save(ours, tmp_path / "w.safetensors")
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    theirs.load_state_dict(torch_load_file(path))
    x = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(tv.tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-6, atol=1e-6)
    _assert_same(OrderedDict((k, load_file(path)[k]) for k in ours.state_dict()), ours.state_dict())
    # a file safetensors wrote (no tinyvision metadata) loads in file order
    from safetensors.torch import save_file

    save_file(theirs.state_dict(), tmp_path / "theirs.safetensors")
    got = tv.load(tmp_path / "theirs.safetensors")
    assert sorted(got) == sorted(ours.state_dict())
    ours.load_state_dict(got)


@pytest.mark.parametrize("fmt", FORMATS)
def test_module_roundtrip_restores_outputs(tmp_path, rng, fmt):
    a = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    b = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    b.load_state_dict(tv.load(tv.save(a, tmp_path / f"w.{fmt}")))
    x = tv.tensor(rng.standard_normal((4, 3)))
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


@pytest.mark.parametrize("fmt", FORMATS)
def test_byte_order_and_memory_order_are_normalised(tmp_path, fmt):
    big = np.arange(6, dtype=">f8").reshape(2, 3)
    fortran = np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3))
    got = tv.load(tv.save({"big": big, "f": fortran, "t": tv.tensor(np.ones(2))}, tmp_path / f"w.{fmt}"))
    assert got["big"].dtype == np.float64 and got["big"].dtype.isnative
    np.testing.assert_array_equal(got["big"], big)
    np.testing.assert_array_equal(got["f"], fortran)
    assert got["t"].dtype == np.float64  # a Tensor is saved as its array


def test_fortran_npz_from_numpy_loads(tmp_path):
    f = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    np.save(tmp_path / "m.npy", f)
    with zipfile.ZipFile(tmp_path / "w.npz", "w") as zf:
        zf.write(tmp_path / "m.npy", "m.npy")
    np.testing.assert_array_equal(tv.load(tmp_path / "w.npz")["m"], f)


def test_same_weights_same_bytes(tmp_path):
    state = _state()
    a, b = tv.save(state, tmp_path / "a.npz"), tv.save(state, tmp_path / "b.npz")
    assert open(a, "rb").read() == open(b, "rb").read()


def test_suffix_is_added_and_returned(tmp_path):
    path = tv.save({"x": np.ones(2)}, tmp_path / "weights")
    assert path.endswith("weights.npz") and os.path.exists(path)
    with pytest.raises(FileNotFoundError, match="weights.npz' exists"):
        tv.load(tmp_path / "weights")


def test_what_cannot_be_saved(tmp_path):
    with pytest.raises(TypeError, match="no pickle"):
        tv.save({"x": np.array([{"a": 1}], dtype=object)}, tmp_path / "w.npz")
    with pytest.raises(TypeError, match="dtype <U1"):
        tv.save({"x": np.array(["a"])}, tmp_path / "w.safetensors")
    with pytest.raises(TypeError, match="keys must be strings"):
        tv.save({1: np.ones(1)}, tmp_path / "w.npz")
    with pytest.raises(TypeError, match="UTF-8"):
        tv.save({"\ud800": np.ones(1)}, tmp_path / "w.npz")
    with pytest.raises(TypeError, match="mapping of names to arrays"):
        tv.save([np.ones(1)], tmp_path / "w.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tv.save({"x": np.ones(1)}, tmp_path / "nowhere" / "w.npz")
    assert os.listdir(tmp_path) == []


# ---- atomicity and durability ------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch, fmt):
    path = tmp_path / f"w.{fmt}"
    tv.save({"x": np.arange(3)}, path)

    def boom(f, arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(tvio, "_write_npz" if fmt == "npz" else "_write_safetensors", boom)
    with pytest.raises(OSError, match="disk full"):
        tv.save({"x": np.arange(5)}, path)
    np.testing.assert_array_equal(tv.load(path)["x"], np.arange(3))
    assert os.listdir(tmp_path) == [f"w.{fmt}"]  # no debris


def test_file_then_rename_then_directory_are_fsynced(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(a, b):
        events.append("replace")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    tv.save({"x": np.ones(3)}, tmp_path / "w.npz")
    assert events == ["fsync-file", "replace", "fsync-dir"]


_KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import tinyvision.io as tvio

    def write_then_die(f, arrays):
        f.write(b"partial")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    tvio._write_npz = write_then_die
    tvio.save({"x": np.ones(3)}, sys.argv[1])
""")


def test_a_killed_save_leaves_the_old_file_and_its_debris_is_cleaned_by_the_next_save(tmp_path):
    path = tmp_path / "w.npz"
    tv.save({"x": np.zeros(2)}, path)
    proc = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(path)])
    assert proc.returncode == -signal.SIGKILL
    debris = [p for p in os.listdir(tmp_path) if p != "w.npz"]
    assert len(debris) == 1 and debris[0].startswith(".w.npz.tmp-")  # recognisable, documented name
    np.testing.assert_array_equal(tv.load(path)["x"], np.zeros(2))  # the old file is intact
    # temporaries that must survive: a live process's (pid 1 always runs), another host's,
    # and another target's
    keep = [f".w.npz.tmp-{tvio._host()}-1-abcdefgh", ".w.npz.tmp-otherhost-99999999-abcdefgh",
            ".v.npz.tmp-" + debris[0].split(".tmp-")[1]]
    for name in keep:
        (tmp_path / name).write_bytes(b"")
    tv.save({"x": np.ones(2)}, path)
    assert sorted(os.listdir(tmp_path)) == sorted(keep + ["w.npz"])
    np.testing.assert_array_equal(tv.load(path)["x"], np.ones(2))


# ---- modes and symlinks ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_follow_the_umask(tmp_path, fmt, umask):
    old = os.umask(umask)
    try:
        path = tv.save({"x": np.ones(1)}, tmp_path / f"w.{fmt}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_an_overwritten_file_keeps_its_mode(tmp_path):
    path = tmp_path / "w.npz"
    tv.save({"x": np.ones(1)}, path)
    os.chmod(path, 0o644)
    old = os.umask(0o077)
    try:
        tv.save({"x": np.zeros(1)}, path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    os.chmod(path, 0o600)
    tv.save({"x": np.zeros(1)}, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("fmt", FORMATS)
def test_saving_through_a_symlink_writes_its_target(tmp_path, fmt):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / f"w.{fmt}"
    tv.save({"x": np.zeros(2)}, target)
    link = tmp_path / f"link.{fmt}"
    link.symlink_to(os.path.relpath(target, tmp_path))
    returned = tv.save({"x": np.ones(2)}, link)
    assert returned == str(link)
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(target, tmp_path)
    np.testing.assert_array_equal(tv.load(target)["x"], np.ones(2))
    assert sorted(os.listdir(real_dir)) == [f"w.{fmt}"] and sorted(os.listdir(tmp_path)) == [f"link.{fmt}", "real"]
    # a dangling link: the file it names is created
    dangling = tmp_path / f"d.{fmt}"
    dangling.symlink_to(real_dir / f"new.{fmt}")
    tv.save({"x": np.ones(1)}, dangling)
    assert dangling.is_symlink() and (real_dir / f"new.{fmt}").is_file()


# ---- bad files: one WeightsFileError naming the path -------------------------------------------
def _valid_bytes(fmt, tmp_path):
    return open(tv.save(_state(), tmp_path / f"valid.{fmt}"), "rb").read()


def _zip_with(members):
    buf = stdio.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy_bytes(a):
    buf = stdio.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _bad_files(tmp_path):
    npz, safet = _valid_bytes("npz", tmp_path), _valid_bytes("safetensors", tmp_path)
    flipped = bytearray(npz)
    flipped[len(npz) // 3] ^= 0xFF  # inside a member's data: the CRC catches it
    shape_lie = _npy_bytes(np.arange(4.0)).replace(b"(4,)", b"(9,)")
    cases = {
        "empty": (b"", "empty"),
        "text": (b"weights = [1, 2, 3]\n", "not a .npz or .safetensors"),
        "json": (b'{"w": [1, 2]}', "not a .npz or .safetensors"),
        "bare-npy": (_npy_bytes(np.arange(3)), "bare .npy"),
        "pickle": (pickle.dumps({"w": np.ones(2)}), "pickle"),
        "non-npy-member": (_zip_with({"readme.txt": b"hello"}), "'readme.txt' is not .npy array data"),
        "torch-like-zip": (_zip_with({"archive/data.pkl": b"\x80\x02}q\x00."}), "torch.save"),
        "npy-member-without-magic": (_zip_with({"w.npy": b"garbage bytes"}), "no NumPy magic"),
        "shape-lie": (_zip_with({"w.npy": shape_lie}), r"declares shape \(9,\)"),
        "object-member": (_zip_with({"w.npy": _npy_bytes(np.array([None], dtype=object))}), "pickle"),
        "string-member": (_zip_with({"w.npy": _npy_bytes(np.array(["abc"]))}), "dtype <U3"),
        "flipped-byte": (bytes(flipped), "corrupted"),
        "safetensors-bad-json": (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all", "safetensors header"),
        "safetensors-bf16": (b"\x40\x00\x00\x00\x00\x00\x00\x00"
                             + b'{"w":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}'.ljust(64) + b"\0\0",
                             "bfloat16"),
    }
    for cut in (4, 30, len(npz) // 2, len(npz) - 30, len(npz) - 1):
        cases[f"npz-truncated-{cut}"] = (npz[:cut], "truncated")
    for cut in (9, 100, len(safet) - 1):
        cases[f"safetensors-truncated-{cut}"] = (safet[:cut], "truncated")
    cases["safetensors-truncated-7"] = (safet[:7], "not a .npz or .safetensors")
    return cases


def test_every_bad_file_raises_one_clear_error_naming_the_path(tmp_path):
    for name, (data, message) in _bad_files(tmp_path).items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(data)
        with pytest.raises(WeightsFileError, match=message) as e:
            tv.load(path)
        assert str(path) in str(e.value), name
        assert isinstance(e.value, ValueError)


def test_opening_problems_stay_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        tv.load(tmp_path / "missing.npz")
    with pytest.raises(IsADirectoryError):
        tv.load(tmp_path)


def test_object_arrays_from_np_savez_are_refused(tmp_path):
    np.savez(tmp_path / "evil.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        tv.load(tmp_path / "evil.npz")


def _load_bytes(tmp_path, data, name):
    path = tmp_path / name
    path.write_bytes(data)
    try:
        got = tv.load(path)
    except WeightsFileError as e:
        assert str(path) in str(e)
        return
    # the only other outcome: a dict of numeric arrays (random bytes can spell an empty zip)
    assert isinstance(got, OrderedDict)
    assert all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in got.values())


@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_the_documented_error(tmp_path_factory, data):
    _load_bytes(tmp_path_factory.mktemp("fuzz"), data, "w.npz")


@given(data=st.binary(max_size=64))
def test_random_bytes_after_a_file_magic_raise_only_the_documented_error(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz")
    for magic in (b"PK\x03\x04", b"\x93NUMPY\x01\x00", b"\x20\x00\x00\x00\x00\x00\x00\x00{"):
        _load_bytes(folder, magic + data, "w.safetensors")


@pytest.mark.parametrize("fmt", FORMATS)
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.none() | st.integers(0, 10**6))
def test_damaged_valid_files_raise_only_the_documented_error(tmp_path_factory, fmt, edits, cut):
    folder = tmp_path_factory.mktemp("fuzz")
    data = bytearray(open(tv.save(_state(), folder / f"w.{fmt}"), "rb").read())
    for where, value in edits:
        data[where % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    _load_bytes(folder, bytes(data), f"damaged.{fmt}")


def test_module_docstring_examples_run():
    import doctest

    result = doctest.testmod(tvio, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_a_torch_save_file_is_refused_with_a_hint(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(WeightsFileError, match=r"torch\.save file\? load it with torch.*from_torch") as e:
        tv.load(path)
    assert str(path) in str(e.value)
