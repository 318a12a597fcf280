"""Saving and loading weights — ``.npz`` or ``.safetensors``, never pickle — written atomically.

``save(obj, path)`` takes a Module (its ``state_dict()``) or a mapping of names to arrays (or
Tensors); ``load(path)`` gives back an ordered dict of NumPy arrays that
``Module.load_state_dict`` takes. The format follows the suffix of ``path``:

    *.safetensors   the safetensors format (``safetensors.numpy``), readable by PyTorch,
                    JAX, Rust ... without running any code from the file
    *.npz           a zip of ``.npy`` members (``np.load(path, allow_pickle=False)`` reads it)
    anything else   ``.npz`` is appended, and the returned path says so

Only numeric and bool arrays are written (no object arrays: they would need pickle). Keys are
any strings — ``"file"`` and ``"allow_pickle"`` included, which ``np.savez(f, **arrays)`` would
take for its own arguments: the zip members are written here, one ``np.lib.format`` array each.

What a save promises (also in docs/errors.md):

* **Atomic.** The bytes go to a temporary file in the target's directory, which is flushed and
  fsynced, then moved over the target with ``os.replace``; the directory is fsynced after the
  rename, so the new name survives a power cut. A crash at any point leaves either the old file
  or the new one, never a mix.
* **No debris.** The temporary file is named ``.<name>.tmp-<host>-<pid>-<random>``. A save that
  fails removes it. A save that is *killed* (SIGKILL, power cut) cannot, so every save first
  removes the temporaries of the same target left by processes of this host that no longer
  run: a killed save's debris lasts until the next save of that file. (Temporaries of a live
  process, or of another host sharing the folder, are left alone: deleting those could break
  a save in progress.)
* **Mode.** A new file gets the mode ``open()`` would give it (0o666 minus the umask); an
  overwritten file keeps its mode.
* **Symlinks.** Saving to a symlink writes the file it points to; the link stays a link.

``load`` raises :class:`WeightsFileError` (a ValueError) naming the path for anything that is
not a weights file — empty, truncated, corrupted, text, a bare ``.npy``, a pickle or
``torch.save`` file, a zip member that is not ``.npy`` data, an object array — and OSError
(FileNotFoundError, PermissionError ...) when the file cannot be opened. Arrays come back
writable, in native byte order.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import struct
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np

__all__ = ["save", "load", "WeightsFileError"]

_NPZ, _SAFETENSORS = ".npz", ".safetensors"
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: same weights -> same bytes
_ORDER_KEY = "tinyvision.keys"  # safetensors metadata: the caller's key order (a JSON list)


class WeightsFileError(ValueError):
    """``load`` was given a file that is not a weights file tinyvision can read without pickle."""

    def __init__(self, path, problem):
        self.path, self.problem = os.fspath(path), problem
        super().__init__(f"load: {self.path}: {problem}")


# ======================================================================================
# save
# ======================================================================================
def save(obj, path) -> str:
    """Write a Module's state_dict (or a mapping of names to arrays) to ``path``, atomically.

    The format is chosen by suffix (``.safetensors`` or ``.npz``; anything else gets ``.npz``
    appended). Returns the path written (with its suffix), as a string.

    >>> import numpy as np, tinyvision as tv, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> path = tv.save({"file": np.arange(3), "allow_pickle": np.ones(2)}, os.path.join(folder, "w"))
    >>> os.path.basename(path), sorted(tv.load(path))
    ('w.npz', ['allow_pickle', 'file'])
    """
    arrays = _arrays_to_save(obj)
    path = os.fspath(path)
    if not path.lower().endswith((_NPZ, _SAFETENSORS)):
        path += _NPZ
    write = _write_safetensors if path.lower().endswith(_SAFETENSORS) else _write_npz

    # Write the file a symlink points to (os.replace on the link itself would replace the link).
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: the directory {directory!r} does not exist (saving {path!r})")
    _remove_stale_temporaries(directory, name)
    mode = _mode_for(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(name) + f"{_host()}-{os.getpid()}-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # mkstemp makes 0600; give the mode the target should have
            write(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)
    return path


def _arrays_to_save(obj) -> "OrderedDict[str, np.ndarray]":
    from .autograd import Tensor

    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not hasattr(state, "items"):
        raise TypeError(f"save: expected a Module or a mapping of names to arrays, got {type(obj).__name__}")
    arrays = OrderedDict()
    for k, v in state.items():
        if not isinstance(k, str):
            raise TypeError(f"save: keys must be strings, got {k!r} ({type(k).__name__})")
        try:
            k.encode("utf-8")
        except UnicodeEncodeError:
            raise TypeError(f"save: key {k!r} cannot be written as UTF-8") from None
        a = v.numpy() if isinstance(v, Tensor) else np.asarray(v)
        if a.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"save: {k!r} has dtype {a.dtype}; only numeric and bool arrays are saved (no pickle)")
        # native byte order and C order: what both formats store, and what load gives back
        arrays[k] = np.asarray(a, dtype=a.dtype.newbyteorder("="), order="C")  # (keeps 0-d arrays 0-d)
    return arrays


def _write_npz(f, arrays):
    """A zip of ``<key>.npy`` members, stored uncompressed: the layout ``np.savez`` writes, but
    keys are taken from the dict as they are (``np.savez(f, **arrays)`` reads ``file`` and
    ``allow_pickle`` as its own arguments)."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, a in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, a, allow_pickle=False)


def _write_safetensors(f, arrays):
    from safetensors.numpy import save as safetensors_save

    # safetensors orders tensors its own way; the caller's order rides along in the metadata.
    f.write(safetensors_save(dict(arrays), metadata={_ORDER_KEY: json.dumps(list(arrays))}))


def _temp_prefix(name: str) -> str:
    return f".{name[:120]}.tmp-"  # names stay under the 255-byte limit of most filesystems


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:60] or "host"


def _remove_stale_temporaries(directory: str, name: str):
    """Remove ``.<name>.tmp-<host>-<pid>-*`` files left by killed saves of this host."""
    if os.name != "posix":
        return
    prefix, host = _temp_prefix(name), _host()
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        parts = entry[len(prefix):].split("-")
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid() or _process_alive(pid):
            continue
        try:
            os.unlink(os.path.join(directory, entry))
        except OSError:
            pass  # another save removed it first, or we may not: leave it


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return True  # cannot tell: keep the file
    return True


def _current_umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it (and put it straight back)
    os.umask(mask)
    return mask


def _mode_for(target: str) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)  # an overwritten file keeps its mode
    except FileNotFoundError:
        return 0o666 & ~_current_umask()  # what open(target, "w") would give


def _fsync_directory(directory: str):
    """Make the rename durable: fsync the directory entry (POSIX; a no-op where unsupported)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the data itself is already synced
    finally:
        os.close(fd)


# ======================================================================================
# load
# ======================================================================================
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or an empty archive


def load(path) -> "OrderedDict[str, np.ndarray]":
    """Read a ``.npz`` or ``.safetensors`` weights file (no pickle) into an ordered dict of arrays.

    The format is recognised from the file's first bytes, whatever its suffix. Raises
    :class:`WeightsFileError` naming the path for anything else (see the module docstring).
    """
    path = os.fspath(path)
    if not os.path.exists(path) and not os.path.islink(path) and os.path.exists(path + _NPZ):
        raise FileNotFoundError(f"load: no file {path!r} (but {path + _NPZ!r} exists: save adds the suffix)")
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(0)
        size = os.fstat(f.fileno()).st_size
        try:
            if size == 0:
                raise WeightsFileError(path, "the file is empty")
            if head.startswith(_ZIP_MAGICS):
                return _read_npz(path, f)
            if head.startswith(_NPY_MAGIC):
                raise WeightsFileError(path, "a bare .npy array, not a weights file (a dict of arrays); "
                                             "read it with np.load, or save a dict with tv.save")
            if head[:1] == b"\x80":
                raise WeightsFileError(path, "a pickle file; tinyvision never unpickles (a torch.save file? "
                                             "load it with torch, then tinyvision.interop.from_torch)")
            if len(head) == 8 and _looks_like_safetensors(f):
                n = struct.unpack("<Q", head)[0]
                if n > size - 8:
                    raise WeightsFileError(path, f"a truncated safetensors file (its header alone is {n} bytes, "
                                                 f"the file {size})")
                return _read_safetensors(path, f, size)
            raise WeightsFileError(path, f"not a .npz or .safetensors weights file (it starts with {head!r})")
        except WeightsFileError:
            raise
        except Exception as e:  # noqa: BLE001 - whatever a damaged file trips, the user gets one error
            raise WeightsFileError(path, f"corrupted or truncated ({type(e).__name__}: {e})") from e


# ---- .npz -------------------------------------------------------------------------------------
def _read_npz(path, f) -> "OrderedDict[str, np.ndarray]":
    try:
        zf = zipfile.ZipFile(f)
    except zipfile.BadZipFile as e:
        raise WeightsFileError(path, f"a damaged or truncated zip/.npz archive ({e})") from e
    out = OrderedDict()
    with zf:
        for info in zf.infolist():
            name = info.filename
            if not name.endswith(".npy") or info.is_dir():
                hint = ""
                if name.endswith(".pkl") or "data.pkl" in name:
                    hint = " (a torch.save file? load it with torch, then tinyvision.interop.from_torch)"
                raise WeightsFileError(path, f"zip member {name!r} is not .npy array data{hint}")
            key = name[: -len(".npy")]
            if key in out:
                raise WeightsFileError(path, f"zip member {name!r} appears twice")
            with zf.open(info) as member:
                out[key] = _read_npy_member(path, name, member, info.file_size)
    return out


def _read_npy_member(path, name, member, nbytes_total) -> np.ndarray:
    """One ``.npy`` member: header checked against the member's size before anything is read."""
    if member.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
        raise WeightsFileError(path, f"zip member {name!r} is not .npy array data (no NumPy magic)")
    version = tuple(member.read(2))
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise WeightsFileError(path, f"zip member {name!r}: unsupported .npy format version {version}")
    if dtype.hasobject:
        raise WeightsFileError(path, f"{name[:-4]!r} holds object arrays, which would need pickle; refusing")
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WeightsFileError(path, f"{name[:-4]!r} has dtype {dtype}; only numeric and bool arrays are weights")
    if any(int(n) < 0 for n in shape):
        raise WeightsFileError(path, f"{name[:-4]!r} declares a negative shape {tuple(shape)}: corrupted")
    count = 1
    for n in shape:
        count *= int(n)
    nbytes = count * dtype.itemsize
    present = nbytes_total - member.tell()  # the member's bytes after the header
    if nbytes != present:
        raise WeightsFileError(
            path, f"{name[:-4]!r} declares shape {tuple(shape)} {dtype} ({nbytes} bytes) but holds "
                  f"{present} bytes of data: truncated or corrupted"
        )
    data = member.read(nbytes)
    if len(data) != nbytes or member.read(1) != b"":  # reading to the end also checks the CRC
        raise WeightsFileError(path, f"{name[:-4]!r}: the zip member is shorter than its header says: corrupted")
    a = np.frombuffer(bytearray(data), dtype=dtype)  # a bytearray: the array is writable
    a = a.reshape(shape[::-1]).T if fortran else a.reshape(shape)
    return _native(a)


def _native(a: np.ndarray) -> np.ndarray:
    """A writable C-order copy in native byte order; bools made 0/1 (a damaged byte could be 7)."""
    if a.dtype.kind == "b":
        return a.view(np.uint8) != 0
    return np.array(a, dtype=a.dtype.newbyteorder("="), order="C", copy=True)


# ---- .safetensors -----------------------------------------------------------------------------
# The safetensors layout: an 8-byte little-endian header length N, N bytes of JSON
# {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data.
_SAFETENSORS_DTYPES = {
    "F64": 8, "F32": 4, "F16": 2, "I64": 8, "U64": 8, "I32": 4, "U32": 4, "I16": 2, "U16": 2,
    "I8": 1, "U8": 1, "BOOL": 1,
}


def _looks_like_safetensors(f) -> bool:
    """An 8-byte header length of at least 2, then the JSON header's opening brace."""
    n = struct.unpack("<Q", f.read(8))[0]
    first = f.read(1)
    f.seek(0)
    return n >= 2 and first == b"{"


def _read_safetensors(path, f, size) -> "OrderedDict[str, np.ndarray]":
    data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsFileError(path, f"a damaged safetensors header ({e})") from e
    if not isinstance(header, dict):
        raise WeightsFileError(path, "a damaged safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    body = size - 8 - n
    spans = []
    for key, entry in header.items():
        if not (isinstance(entry, dict) and {"dtype", "shape", "data_offsets"} <= entry.keys()):
            raise WeightsFileError(path, f"safetensors entry {key!r} is not a tensor description")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _SAFETENSORS_DTYPES:
            raise WeightsFileError(path, f"{key!r} has safetensors dtype {dtype!r}, which NumPy cannot hold "
                                         "(bfloat16/float8: read it with safetensors.torch and convert with "
                                         "tinyvision.interop.from_torch)")
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)
                and isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) for o in offsets) and 0 <= offsets[0] <= offsets[1] <= body):
            raise WeightsFileError(path, f"safetensors entry {key!r} has a bad shape or offsets "
                                         f"({shape!r}, {offsets!r}; {body} bytes of data): truncated or corrupted")
        count = 1
        for s in shape:
            count *= s
        if count * _SAFETENSORS_DTYPES[dtype] != offsets[1] - offsets[0]:
            raise WeightsFileError(path, f"{key!r} declares shape {tuple(shape)} {dtype} but spans "
                                         f"{offsets[1] - offsets[0]} bytes")
        spans.append((offsets[0], key))
    from safetensors.numpy import load as safetensors_load

    try:
        arrays = safetensors_load(data)
    except BaseException as e:  # safetensors' Rust core reports some damage as a PanicException
        if not isinstance(e, Exception) and type(e).__name__ != "PanicException":
            raise
        raise WeightsFileError(path, f"corrupted or truncated safetensors data ({type(e).__name__}: {e})") from None
    order = [k for _, k in sorted(spans)]  # file order, unless the saver recorded its own
    try:
        saved_order = json.loads(metadata.get(_ORDER_KEY, "null")) if isinstance(metadata, dict) else None
    except (TypeError, json.JSONDecodeError):
        saved_order = None
    if isinstance(saved_order, list) and sorted(map(str, saved_order)) == sorted(arrays):
        order = saved_order
    return OrderedDict((k, _native(arrays[k])) for k in order)
