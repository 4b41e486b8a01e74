"""Safe checkpoint readers, a rename-table loader with a key report, and atomic writers.

Reading (:func:`read_state_dict`) never executes pickled code and never imports torch:

* torch zip files (``.ckpt/.pt/.pth/.bin`` written by ``torch.save``): ``<root>/data.pkl`` is read
  by a restricted unpickler whose ``find_class`` only knows the tensor-rebuild functions, the
  storage types, ``collections.OrderedDict`` and a few inert builtins/numpy reconstructors; the
  storages come from ``<root>/data/<key>``. Any other global (``os.system``, ``builtins.eval``,
  a Lightning class ...) raises :class:`UnsafeCheckpointError` naming the file and the global
  before anything runs.
* the legacy (pre-1.6, non-zip) torch format: magic / protocol / sys-info pickles, the object
  pickle, the storage-key list, then the raw storages.
* ``.safetensors``: the JSON header is parsed here and each tensor read from its byte range
  (this also covers BF16, which ``safetensors.numpy`` cannot return).
* MindSpore ``.ckpt`` (protobuf, written by ``ms.save_checkpoint``) through ``ms.load_checkpoint``.
* a folder: a sharded ``*.index.json`` (HF ``weight_map``) or one ``diffusion_pytorch_model.*`` /
  ``model.*`` / ``pytorch_model.*`` file; an ``*.index.json`` path directly.

The format is detected from the file's first bytes, not from its extension.

Matching (:func:`match_state_dict`) renames source keys by an explicit table of
``(regex, replacement or None, why)`` rows and compares names and shapes with a model's parameters
(a Cell, possibly built without allocating weights, or a ``{name: shape}`` dict); a
:class:`LoadReport` names every missing, unexpected and mis-shaped key. Loading
(:func:`load_state_dict_into`) copies only when every key matched, unless a partial load is
allowed on purpose. Writing is atomic: a temp file in the target folder, fsync, ``os.replace``.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import struct
import sys
import tempfile
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "CheckpointError", "UnsafeCheckpointError", "CheckpointMismatchError", "LoadReport",
    "Rename", "LazyTensor", "read_state_dict", "match_state_dict", "load_state_dict_into", "apply_rename",
    "configs_that_fit", "fitting_config_hint", "save_checkpoint_atomic",
    "save_safetensors_atomic",
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (missing, truncated, corrupt or of an unknown format)."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that asks for a global outside the allow-list; nothing of it was executed."""


# --------------------------------------------------------------------------- torch pickles
_BF16 = "bfloat16"  # marker: numpy has no bfloat16; stored as uint16, widened to float32

#: torch storage class name -> (numpy dtype, element size in bytes)
_STORAGE_DTYPES: dict[str, tuple[Any, int]] = {
    "DoubleStorage": (np.float64, 8), "FloatStorage": (np.float32, 4), "HalfStorage": (np.float16, 2),
    "BFloat16Storage": (_BF16, 2), "LongStorage": (np.int64, 8), "IntStorage": (np.int32, 4),
    "ShortStorage": (np.int16, 2), "CharStorage": (np.int8, 1), "ByteStorage": (np.uint8, 1),
    "BoolStorage": (np.bool_, 1),
}
_TORCH_DTYPE_NAMES = {
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
    "double", "float", "half", "long", "int", "short",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass(frozen=True)
class _StorageType:
    name: str  # e.g. "FloatStorage"

    @property
    def dtype(self):
        return _STORAGE_DTYPES[self.name][0]

    @property
    def itemsize(self) -> int:
        return _STORAGE_DTYPES[self.name][1]


@dataclass
class _StorageRef:
    """A storage named by the pickle; its bytes are fetched after unpickling."""

    stype: _StorageType
    key: str
    numel: int


@dataclass
class _LazyTensor:
    """A tensor view (storage, offset, size, stride) to be materialised after unpickling."""

    storage: _StorageRef
    offset: int
    size: tuple
    stride: tuple


class _Marker:
    """An inert stand-in for a harmless torch global (``torch.Tensor``, ``Parameter``, a dtype)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return f"<{self.name}>"


class _StubBase:
    """Base of the inert classes made for globals listed in ``stub_globals`` (never imported):
    instances accept any constructor arguments and state and do nothing with them."""

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args = args
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<stub {type(self).__qualname__}>"


def _stub_class(dotted: str) -> type:
    return type(dotted, (_StubBase,), {})


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    """``torch._utils._rebuild_tensor(_v2)``: requires_grad / hooks / metadata are ignored."""
    if not isinstance(storage, _StorageRef):
        raise CheckpointError(f"tensor rebuilt from a non-storage object {type(storage).__name__}")
    return _LazyTensor(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data, *_ignored):
    """``torch._utils._rebuild_parameter(_with_state)``: a Parameter is just its data here."""
    return data


def _rebuild_from_type_v2(func, _new_type, args, _state=None):
    """``torch._tensor._rebuild_from_type_v2``: Tensor subclasses are read as plain tensors."""
    return func(*args)


def _codecs_encode(obj, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (latin1 text -> bytes)."""
    if not isinstance(obj, str):
        raise CheckpointError("_codecs.encode called on a non-string")
    return obj.encode(encoding, errors)


def _safe_globals() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): _Marker("torch.Tensor"),
        ("torch.nn.parameter", "Parameter"): _Marker("torch.nn.Parameter"),
        ("torch", "Size"): tuple,
        ("torch", "device"): str,
        ("torch.torch_version", "TorchVersion"): str,
        ("_codecs", "encode"): _codecs_encode,
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "tuple"): tuple,
        ("builtins", "list"): list, ("builtins", "dict"): dict, ("builtins", "slice"): slice,
        ("builtins", "complex"): complex, ("builtins", "bytearray"): bytearray,
    }
    for name in _STORAGE_DTYPES:
        table[("torch", name)] = _StorageType(name)
    for name in _TORCH_DTYPE_NAMES:
        table[("torch", name)] = _Marker(f"torch.{name}")
    # numpy arrays / scalars / dtypes pickled inside Lightning states (inert reconstructors)
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = multiarray._reconstruct
        table[(mod, "scalar")] = multiarray.scalar
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    return table


_SAFE_GLOBALS = _safe_globals()
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # protocol-2 names of modules


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals and hands storages to ``persistent_load``."""

    def __init__(self, file, path: Path, persistent_load=None, stub_globals: Iterable[str] = ()):
        super().__init__(file)
        self._path = path
        self._pl = persistent_load
        self._stubs = set(stub_globals)

    def find_class(self, module, name):
        module = _PY2_MODULES.get(module, module)
        hit = _SAFE_GLOBALS.get((module, name))
        if hit is not None:
            return hit
        dotted = f"{module}.{name}"
        if dotted in self._stubs:
            return _stub_class(dotted)
        raise UnsafeCheckpointError(
            f"{self._path}: the pickle asks for the global '{dotted}', which is not on the allow-list "
            "of tensor/container types; refusing to load it (nothing was executed). If it is a "
            "harmless non-tensor entry, pass stub_globals=['" + dotted + "'] to read it as an inert stub."
        )

    def persistent_load(self, pid):
        if self._pl is None:
            raise CheckpointError(f"{self._path}: unexpected persistent id {pid!r}")
        return self._pl(pid)


def _storage_pid(path: Path, pid) -> _StorageRef:
    """Parse a ``('storage', type, key, location, numel[, view])`` persistent id."""
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise UnsafeCheckpointError(f"{path}: unsupported persistent id {str(pid)[:80]!r} (only storages)")
    stype = pid[1]
    if not isinstance(stype, _StorageType):
        raise CheckpointError(f"{path}: storage of unsupported type {stype!r}")
    if len(pid) > 5 and pid[5] is not None:
        raise CheckpointError(f"{path}: legacy storage views are not supported")
    return _StorageRef(stype, str(pid[2]), int(pid[4]))


def _native(raw: np.ndarray, dt: np.dtype, big_endian: bool = False) -> np.ndarray:
    """View bytes as ``dt`` in native byte order (swapping when the file's order differs)."""
    file_big = big_endian and dt.itemsize > 1
    if file_big == (sys.byteorder == "big") or dt.itemsize == 1:
        return raw.view(dt)
    return raw.view(dt.newbyteorder(">" if file_big else "<")).astype(dt)


def _as_numpy(raw: np.ndarray, stype: _StorageType, big_endian: bool, upcast: bool) -> np.ndarray:
    """Bytes (uint8) of one storage -> a 1-D array of its elements (bf16 widened to float32)."""
    if stype.dtype is _BF16:
        u16 = _native(raw, np.dtype(np.uint16), big_endian).astype(np.uint32)
        return (u16 << 16).view(np.float32)
    arr = _native(raw, np.dtype(stype.dtype), big_endian)
    if upcast and arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    return arr


def _contiguous_strides(size: tuple) -> tuple:
    strides, acc = [], 1
    for n in reversed(size):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def _materialise(obj, storages: Callable[[_StorageRef], np.ndarray], path: Path):
    """Replace every :class:`_LazyTensor` in a nested dict/list/tuple by a numpy array."""
    if isinstance(obj, _LazyTensor):
        flat = storages(obj.storage)
        size, stride, off = obj.size, obj.stride, obj.offset
        if any(s < 0 for s in stride) or off < 0:
            raise CheckpointError(f"{path}: negative stride/offset in a tensor")
        if 0 in size:
            return np.zeros(size, flat.dtype)
        last = off + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise CheckpointError(f"{path}: tensor of size {size} reads past the end of its storage "
                                  f"({flat.size} elements): file truncated or corrupt")
        numel = int(np.prod(size, dtype=np.int64))
        if off == 0 and numel == flat.size and stride == _contiguous_strides(size):
            return flat.reshape(size)  # the tensor is its whole storage: no copy
        view = np.lib.stride_tricks.as_strided(flat[off:], size, [s * flat.itemsize for s in stride])
        return np.array(view, order="C")  # a contiguous, writable copy owned by this tensor
    if isinstance(obj, dict):
        out = obj.__class__() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v, storages, path)
        return out
    if isinstance(obj, list):
        return [_materialise(v, storages, path) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v, storages, path) for v in obj)
    return obj


def _read_torch_zip(path: Path, upcast: bool, stub_globals) -> Any:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path}: not a readable torch zip checkpoint (truncated or corrupt?): {e}") from e
    with zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise CheckpointError(f"{path}: zip file without <root>/data.pkl; not a torch checkpoint")
        root = pkl[0].rsplit("/", 1)[0]
        big = False
        if f"{root}/byteorder" in names:
            big = zf.read(f"{root}/byteorder").strip() == b"big"
        cache: dict[str, np.ndarray] = {}

        def storage(ref: _StorageRef) -> np.ndarray:
            if ref.key not in cache:
                rec = f"{root}/data/{ref.key}"
                try:
                    info = zf.getinfo(rec)
                    raw = np.empty(info.file_size, np.uint8)
                    with zf.open(info) as f:
                        n = f.readinto(memoryview(raw))
                    if n != info.file_size:
                        raise CheckpointError(f"{path}: storage {rec} is short ({n} of {info.file_size} bytes)")
                except KeyError as e:
                    raise CheckpointError(f"{path}: storage record {rec} is missing") from e
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    raise CheckpointError(f"{path}: cannot read {rec} (truncated or corrupt?): {e}") from e
                if raw.size < ref.numel * ref.stype.itemsize:
                    raise CheckpointError(f"{path}: storage {rec} holds {raw.size} bytes, "
                                          f"{ref.numel * ref.stype.itemsize} expected")
                usable = raw[: raw.size - raw.size % ref.stype.itemsize]
                cache[ref.key] = _as_numpy(usable, ref.stype, big, upcast)
            return cache[ref.key]

        try:
            data = zf.read(pkl[0])
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise CheckpointError(f"{path}: cannot read {pkl[0]}: {e}") from e
        up = _RestrictedUnpickler(io.BytesIO(data), path, lambda pid: _storage_pid(path, pid), stub_globals)
        obj = _unpickle(up, path)
        return _materialise(obj, storage, path)


def _unpickle(up: pickle.Unpickler, path: Path):
    try:
        return up.load()
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CheckpointError(f"{path}: corrupt pickle ({type(e).__name__}: {e})") from e


def _read_torch_legacy(path: Path, upcast: bool, stub_globals) -> Any:
    with open(path, "rb") as f:
        plain = lambda: _unpickle(_RestrictedUnpickler(f, path, None, stub_globals), path)  # noqa: E731
        if plain() != _LEGACY_MAGIC:
            raise CheckpointError(f"{path}: a pickle file that is not a torch checkpoint (no torch magic number)")
        plain()  # protocol version
        sys_info = plain()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise CheckpointError(f"{path}: big-endian legacy checkpoints are not supported")
        refs: dict[str, _StorageRef] = {}

        def pl(pid):
            ref = _storage_pid(path, pid)
            return refs.setdefault(ref.key, ref)

        obj = _unpickle(_RestrictedUnpickler(f, path, pl, stub_globals), path)
        keys = plain()
        arrays: dict[str, np.ndarray] = {}
        for key in keys:
            ref = refs.get(str(key))
            head = f.read(8)
            if len(head) != 8 or ref is None:
                raise CheckpointError(f"{path}: storage {key} is missing (truncated file?)")
            (numel,) = struct.unpack("<q", head)
            raw = np.frombuffer(f.read(numel * ref.stype.itemsize), np.uint8).copy()
            if raw.size != numel * ref.stype.itemsize:
                raise CheckpointError(f"{path}: storage {key} is truncated")
            arrays[ref.key] = _as_numpy(raw, ref.stype, False, upcast)
    return _materialise(obj, lambda ref: arrays[ref.key], path)


# --------------------------------------------------------------------------- safetensors
_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": _BF16, "I64": np.int64,
    "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16,
    "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_,
}


class LazyTensor:
    """One tensor of a ``.safetensors`` file, read only when it is converted (``np.asarray``).

    ``shape`` / ``ndim`` come from the header, so :func:`match_state_dict` matches names and shapes without
    reading any data, and :func:`load_state_dict_into` reads one tensor at a time (peak memory: the model plus
    one tensor, instead of the model plus the whole file). Made by ``read_state_dict(..., lazy=True)``.
    """

    __slots__ = ("path", "offset", "nbytes", "stored_shape", "shape", "code", "upcast")

    def __init__(self, path: Path, offset: int, nbytes: int, shape: tuple, code: str, upcast: bool,
                 view_shape: tuple | None = None):
        self.path, self.offset, self.nbytes, self.code, self.upcast = path, offset, nbytes, code, upcast
        self.stored_shape = tuple(shape)
        self.shape = tuple(view_shape) if view_shape is not None else self.stored_shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def reshape(self, shape) -> LazyTensor:
        """The same bytes seen with another shape of the same size (still unread)."""
        shape = tuple(shape)
        if int(np.prod(shape, dtype=np.int64)) != int(np.prod(self.stored_shape, dtype=np.int64)):
            raise ValueError(f"cannot reshape {list(self.stored_shape)} to {list(shape)}")
        return LazyTensor(self.path, self.offset, self.nbytes, self.stored_shape, self.code, self.upcast, shape)

    def read(self) -> np.ndarray:
        """The array (bf16 widened to float32; fp16 too when ``upcast``)."""
        raw = np.empty(self.nbytes, np.uint8)
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                n = f.readinto(memoryview(raw))
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot read a tensor ({e})") from e
        if n != self.nbytes:
            raise CheckpointError(f"{self.path}: truncated while reading a tensor ({n} of {self.nbytes} bytes)")
        return _st_array(raw, _ST_DTYPES[self.code], self.upcast).reshape(self.shape)

    def __array__(self, dtype=None, copy=None):
        arr = self.read()
        return arr if dtype is None else arr.astype(dtype)

    def __repr__(self) -> str:
        return f"LazyTensor({self.path.name}, {self.code}, {list(self.shape)})"


def _st_array(raw: np.ndarray, dt, upcast: bool) -> np.ndarray:
    """Bytes of one safetensors tensor -> a 1-D array (bf16 widened to float32; fp16 too when ``upcast``)."""
    if dt is _BF16:
        return (_native(raw, np.dtype(np.uint16)).astype(np.uint32) << 16).view(np.float32)
    arr = _native(raw, np.dtype(dt))
    if upcast and arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    return arr


def _read_safetensors(path: Path, upcast: bool, lazy: bool = False) -> dict[str, np.ndarray]:
    """Parse the header (8-byte little-endian length + JSON) and read every tensor's bytes (``lazy``: make a
    :class:`LazyTensor` of each instead)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise CheckpointError(f"{path}: truncated safetensors file (no header)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise CheckpointError(f"{path}: safetensors header of {n} bytes exceeds the file ({size} bytes)")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise CheckpointError(f"{path}: corrupt safetensors header: {e}") from e
        base = 8 + n
        out: dict[str, np.ndarray] = {}
        for key, info in header.items():
            if key == "__metadata__":
                continue
            dt = _ST_DTYPES.get(info.get("dtype"))
            if dt is None:
                raise CheckpointError(f"{path}: tensor '{key}' has unsupported dtype {info.get('dtype')}")
            begin, end = info["data_offsets"]
            shape = tuple(info["shape"])
            itemsize = 2 if dt is _BF16 else np.dtype(dt).itemsize
            if end - begin != int(np.prod(shape, dtype=np.int64)) * itemsize or base + end > size:
                raise CheckpointError(f"{path}: tensor '{key}' byte range [{begin}, {end}) does not fit "
                                      f"its shape {list(shape)} / the file (truncated?)")
            if lazy:
                out[key] = LazyTensor(path, base + begin, end - begin, shape, info["dtype"], upcast)
                continue
            f.seek(base + begin)
            raw = np.empty(end - begin, np.uint8)
            f.readinto(memoryview(raw))
            out[key] = _st_array(raw, dt, upcast).reshape(shape)
    return out


# --------------------------------------------------------------------------- MindSpore / folders
def _read_mindspore(path: Path) -> dict[str, np.ndarray]:
    import mindspore as ms

    try:
        params = ms.load_checkpoint(str(path))
    except Exception as e:  # noqa: BLE001 - MindSpore raises ValueError/RuntimeError on bad files
        raise CheckpointError(f"{path}: not a readable checkpoint (unknown format, truncated or corrupt): "
                              f"{type(e).__name__}: {e}") from e
    out = {}
    for k, p in params.items():
        if p.dtype == ms.bfloat16:
            p = p.astype(ms.float32)
        out[k] = p.asnumpy()
    return out


_SINGLE_FILES = (
    "diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.bin",
    "pytorch_model.bin",
)


def _read_index(path: Path, upcast: bool, stub_globals, lazy: bool = False) -> dict[str, Any]:
    try:
        index = json.loads(path.read_text())
        weight_map = index["weight_map"]
    except (ValueError, KeyError, OSError) as e:
        raise CheckpointError(f"{path}: not a sharded-checkpoint index with a 'weight_map' ({e})") from e
    out: dict[str, Any] = {}
    by_file: dict[str, list[str]] = {}
    for key, fname in weight_map.items():
        by_file.setdefault(fname, []).append(key)
    for fname, keys in by_file.items():
        shard = _read_any(path.parent / fname, upcast, stub_globals, lazy)
        lost = [k for k in keys if k not in shard]
        if lost:
            raise CheckpointError(f"{path}: shard {fname} lacks {len(lost)} keys of the index, e.g. '{lost[0]}'")
        out.update(shard)
    return out


def _read_folder(path: Path, upcast: bool, stub_globals, lazy: bool = False) -> dict[str, Any]:
    indexes = sorted(path.glob("*.index.json"))
    if len(indexes) == 1:
        return _read_index(indexes[0], upcast, stub_globals, lazy)
    if len(indexes) > 1:
        raise CheckpointError(f"{path}: several index files {[p.name for p in indexes]}; pass one of them")
    for name in _SINGLE_FILES:
        if (path / name).is_file():
            return _read_any(path / name, upcast, stub_globals, lazy)
    raise CheckpointError(f"{path}: folder without *.index.json or any of {list(_SINGLE_FILES)}; "
                          f"it holds {sorted(p.name for p in path.iterdir())[:10]}")


def _read_any(path: Path, upcast: bool, stub_globals, lazy: bool = False) -> Any:
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or folder")
    if path.is_dir():
        return _read_folder(path, upcast, stub_globals, lazy)
    if path.name.endswith(".index.json"):
        return _read_index(path, upcast, stub_globals, lazy)
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise CheckpointError(f"{path}: empty file")
    if head[:4] == b"PK\x03\x04":
        return _read_torch_zip(path, upcast, stub_globals)
    # safetensors before the pickle test: its first 8 bytes are the header length, which can start with
    # 0x80 0x02..0x05 (a 640..1407-byte header) and look like a pickle's PROTO opcode; a torch legacy
    # file has a byte of its magic number at offset 8, never "{"
    if len(head) >= 9 and head[8:9] == b"{":
        return _read_safetensors(path, upcast, lazy)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return _read_torch_legacy(path, upcast, stub_globals)
    return _read_mindspore(path)


_WRAPPERS = ("state_dict", "module", "model")


def _unwrap(obj: Any, path: Path, wrappers: Iterable[str] = _WRAPPERS) -> dict:
    """Descend Lightning/DeepSpeed-style wrappers: ``state_dict``, ``module``, ``model`` (or ``wrappers``)."""
    for _ in range(4):
        if not isinstance(obj, dict):
            break
        if any(isinstance(v, (np.ndarray, LazyTensor)) for v in obj.values()):
            return obj
        inner = next((obj[k] for k in wrappers if isinstance(obj.get(k), dict)), None)
        if inner is None:
            return obj
        obj = inner
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: the checkpoint holds a {type(obj).__name__}, not a dict of tensors")
    return obj


def read_state_dict(
    path: str | os.PathLike,
    *,
    upcast: bool = True,
    key_prefix: str | None = None,
    stub_globals: Iterable[str] = (),
    lazy: bool = False,
    wrappers: Iterable[str] = _WRAPPERS,
) -> dict[str, np.ndarray]:
    """Read a checkpoint into ``{name: numpy array}`` without running pickled code.

    Args:
        path: a torch ``.ckpt/.pt/.pth/.bin`` (zip or legacy), ``.safetensors``, MindSpore
            ``.ckpt``, an HF ``*.index.json``, or a folder (sharded index or one
            ``diffusion_pytorch_model.*`` / ``model.*`` file). The format is detected from content.
        upcast: (default True) float16 is returned as float32. bfloat16 is always returned as
            float32 (exact; numpy has no bfloat16).
        key_prefix: (default None) keep only keys starting with it, with the prefix removed
            (e.g. ``"model.diffusion_model."``).
        stub_globals: dotted names of extra pickle globals (e.g. a Lightning hyper-parameter
            class) read as inert stubs instead of refused; they are never imported or called.
        lazy: (default False) tensors of ``.safetensors`` files (single or sharded) are returned as
            :class:`LazyTensor` (shape from the header, data read on ``np.asarray``), so a large model loads
            one tensor at a time; other formats are read as usual.
        wrappers: (default ``("state_dict", "module", "model")``) keys of a top-level dict without tensors
            whose dict value holds the weights, tried in order (e.g. add ``"controlnet"``).

    Wrappers are unwrapped (``state_dict`` of Lightning, ``module`` / ``model``); non-tensor
    entries (``epoch``, ``hyper_parameters`` ...) are dropped.

    Raises:
        CheckpointError: missing, empty, truncated or corrupt file; unknown format.
        UnsafeCheckpointError: a pickle global outside the allow-list (payload not executed).
    """
    p = Path(path)
    sd = _unwrap(_read_any(p, upcast, stub_globals, lazy), p, tuple(wrappers))
    out = {k: v for k, v in sd.items() if isinstance(k, str) and isinstance(v, (np.ndarray, LazyTensor))}
    if key_prefix is not None:
        out = {k[len(key_prefix):]: v for k, v in out.items() if k.startswith(key_prefix)}
    return out


# --------------------------------------------------------------------------- matching and loading
#: A rename table: rows ``(regex, replacement, why)`` applied in order to every source key; a
#: ``None`` replacement drops the keys the regex finds (on purpose: ``why`` says why). Two-element
#: rows ``(regex, replacement)`` are accepted too. A callable ``key -> new key | None`` also works.
Rename = Callable[[str], "str | None"] | Sequence[tuple] | None

_DROPPED_BY_CALLABLE = "dropped by the rename function"


def _rename(key: str, rename: Rename) -> tuple[str | None, str | None]:
    """``(new key or None, why it was dropped)`` for one source key."""
    if rename is None:
        return key, None
    if callable(rename):
        new = rename(key)
        return new, (_DROPPED_BY_CALLABLE if new is None else None)
    for row in rename:
        pattern, repl = row[0], row[1]
        if repl is None:
            if re.search(pattern, key):
                return None, (row[2] if len(row) > 2 else f"matches {pattern!r}")
        else:
            key = re.sub(pattern, repl, key)
    return key, None


def apply_rename(key: str, rename: Rename) -> str | None:
    """One source key through a rename table (see :data:`Rename`); None = dropped on purpose."""
    return _rename(key, rename)[0]


@dataclass
class LoadReport:
    """What :func:`match_state_dict` found (and :func:`load_state_dict_into` copied), keys by name.

    Attributes:
        missing: parameter names of the model without a source tensor.
        unexpected: (renamed) source keys the model has no parameter for.
        mismatched: ``(key, our_shape, their_shape)`` for same-named tensors of different shape.
        renamed: ``{source key: our name}`` for every key the rename table changed.
        dropped: ``{why: [source keys]}`` for the keys dropped on purpose (``None`` rows, ``ignore``).
        loaded: number of parameters copied (0 when only matched, or when the load was refused).
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, list[str]] = field(default_factory=dict)
    loaded: int = 0

    @property
    def ignored(self) -> int:
        """Number of source keys dropped on purpose."""
        return sum(len(v) for v in self.dropped.values())

    @property
    def ok(self) -> bool:
        """True when every key matched by name and shape."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, first: int = 5) -> str:
        """One paragraph naming the first ``first`` keys of each kind, with counts."""
        lines = [f"loaded {self.loaded}, ignored {self.ignored}, missing {len(self.missing)}, "
                 f"unexpected {len(self.unexpected)}, mismatched {len(self.mismatched)}"]
        if self.mismatched:
            lines.append("mismatched (key: ours vs checkpoint): " + "; ".join(
                f"{k}: {list(a)} vs {list(b)}" for k, a, b in self.mismatched[:first]))
        for what, keys in (("missing from checkpoint", self.missing), ("unexpected in checkpoint", self.unexpected)):
            if keys:
                lines.append(f"{what}: " + ", ".join(keys[:first]) + (" ..." if len(keys) > first else ""))
        return "\n".join(lines)

    def message(self, source: str = "state dict") -> str:
        """One line naming the first key of each kind of fault and the counts, ending in ``(source)``."""
        parts = []
        if self.mismatched:
            k, ours, theirs = self.mismatched[0]
            parts.append(f"{len(self.mismatched)} mis-shaped, e.g. '{k}': file {list(theirs)} vs model {list(ours)}")
        if self.missing:
            parts.append(f"{len(self.missing)} missing from the file, e.g. '{self.missing[0]}'")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected (no such parameter), e.g. '{self.unexpected[0]}'")
        return f"checkpoint does not fit the model: {'; '.join(parts) or 'every key matches'} ({source})"

    def check(self, source: str = "state dict", allow_partial: bool = False) -> LoadReport:
        """Raise :class:`CheckpointMismatchError` with :meth:`message` unless every key matched (or
        ``allow_partial``); returns self."""
        if not (self.ok or allow_partial):
            raise CheckpointMismatchError(self.message(source), self)
        return self


class CheckpointMismatchError(CheckpointError):
    """State-dict keys or shapes that do not match the network; ``.report`` is the :class:`LoadReport`."""

    def __init__(self, message: str, report: LoadReport | None = None):
        super().__init__(message)
        self.report = report


def _fits(theirs: tuple, ours: tuple, strict_shapes: bool) -> bool:
    """Shapes that load as they are or by a reshape: equal; a 0-d parameter stored as ``[1]`` (MindSpore
    checkpoints do that); with ``strict_shapes=False`` any difference in size-1 axes only."""
    if theirs == ours or (theirs == (1,) and ours == ()):
        return True
    return not strict_shapes and [d for d in theirs if d != 1] == [d for d in ours if d != 1]


def _optional(optional) -> Callable[[str], bool]:
    if optional is None:
        return lambda name: False
    if callable(optional):
        return optional
    rx = re.compile(optional)
    return lambda name: rx.search(name) is not None


def match_state_dict(
    model,
    state_dict: dict[str, Any],
    *,
    rename: Rename = None,
    ignore: Iterable[str] = (),
    optional: str | Callable[[str], bool] | None = None,
    strict_shapes: bool = True,
) -> tuple[dict[str, Any], LoadReport]:
    """Match a state dict against a model's parameter names and shapes; nothing is copied.

    Reads shapes only, so ``model`` may be built without allocating its weights (under
    ``mindspore.nn.utils.no_init_parameters``) or be a plain ``{name: shape}`` dict, and the values
    may be anything with a ``.shape`` (arrays, tensors) or shape tuples themselves.

    Args:
        model: a ``mindspore.nn.Cell`` (names of ``parameters_and_names()``) or ``{name: shape}``.
        state_dict: ``{source key: array}``, e.g. from :func:`read_state_dict`.
        rename: (default None: keys as they are) a rename table (see :data:`Rename`).
        ignore: (default none) regexes (``re.search``) of ORIGINAL source keys to drop, as if each
            were a first ``(regex, None, "ignore")`` row of the table.
        optional: (default None: every parameter is required) regex or predicate of parameter
            names the state dict need not provide (e.g. the motion modules when loading an image model).
        strict_shapes: (default True) see :func:`load_state_dict_into`.

    Returns:
        ``(matched, report)``: ``matched`` maps our parameter names (model order) to the source
        values of matching shape (reshaped where a size-1 difference was allowed); ``report`` names
        every missing, unexpected and mis-shaped key, the renamed and the dropped ones.

    Raises:
        CheckpointMismatchError: the rename table maps two source keys to one name.
    """
    shapes = model if isinstance(model, dict) else {n: p.shape for n, p in model.parameters_and_names()}
    rows = [(p, None, f"ignored (matches {p!r})") for p in ignore]
    report = LoadReport()
    src: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in state_dict.items():
        new, why = _rename(key, rows) if rows else (key, None)
        if new is not None:
            new, why = _rename(key, rename)
        if new is None:
            report.dropped.setdefault(why, []).append(key)
            continue
        if new in src:
            raise CheckpointMismatchError(f"rename maps both '{origin[new]}' and '{key}' to '{new}'")
        if new != key:
            report.renamed[key] = new
        src[new], origin[new] = value, key
    is_optional = _optional(optional)
    matched: dict[str, Any] = {}
    for name, shape in shapes.items():
        ours = tuple(shape)
        if name not in src:
            if not is_optional(name):
                report.missing.append(name)
            continue
        value = src[name]
        theirs = tuple(value) if isinstance(value, tuple) else tuple(value.shape)
        if not _fits(theirs, ours, strict_shapes):
            report.mismatched.append((name, ours, theirs))
            continue
        matched[name] = value if theirs == ours else (ours if isinstance(value, tuple) else value.reshape(ours))
    report.unexpected = [k for k in src if k not in shapes]
    return matched, report


def load_state_dict_into(
    net,
    state_dict: dict[str, Any],
    *,
    rename: Rename = None,
    allow_partial: bool = False,
    strict_shapes: bool = True,
    ignore: Iterable[str] = (),
    optional: str | Callable[[str], bool] | None = None,
    source: str = "state dict",
) -> LoadReport:
    """Copy a (renamed) state dict into a MindSpore Cell's parameters, every key accounted for.

    Matching is :func:`match_state_dict`; nothing is copied unless every key matches (or ``allow_partial``).

    Args:
        net: any ``mindspore.nn.Cell``; names are those of ``net.parameters_and_names()``.
        state_dict: ``{key: array}`` (numpy arrays or MindSpore tensors), e.g. from :func:`read_state_dict`.
        rename: (default None) a rename table (see :data:`Rename`).
        allow_partial: (default False) load what matches and report the rest instead of raising
            on missing, unexpected or mis-shaped keys (mis-shaped ones are then not loaded).
        strict_shapes: (default True) any shape difference but a 0-d parameter stored as ``[1]`` is a
            mismatch. When False, tensors whose shapes differ only by size-1 axes (e.g. Conv1d
            ``(o,i,1)`` vs ``(o,i,1,1)``) are reshaped and loaded.
        ignore: (default none) regexes of ORIGINAL source keys to drop (e.g. schedule buffers).
        optional: (default None) regex or predicate of parameters the state dict need not provide.
        source: (default "state dict") the file name the error message ends with.

    Returns:
        :class:`LoadReport`. Values are cast to each parameter's dtype.

    Raises:
        CheckpointMismatchError: one line (:meth:`LoadReport.message`), unless ``allow_partial``;
            nothing is copied in that case.
    """
    import mindspore as ms

    matched, report = match_state_dict(net, state_dict, rename=rename, ignore=ignore, optional=optional,
                                       strict_shapes=strict_shapes)
    report.check(source, allow_partial)
    params = dict(net.parameters_and_names())
    for name, value in matched.items():
        param = params[name]
        arr = value.asnumpy() if isinstance(value, ms.Tensor) else np.asarray(value)
        param.set_data(ms.Tensor(arr, dtype=param.dtype))
        report.loaded += 1
    return report


def configs_that_fit(checkpoint, configs, build: Callable[[Any], Any], *, rename: Rename = None,
                     check: Callable[[Any, dict], bool] | None = None) -> list:
    """The configs among ``configs`` whose model ``checkpoint`` loads into exactly (every key accounted for,
    every shape equal, and ``check(model, matched)`` where given, e.g. schedule buffers): what a CLI names when
    a checkpoint does not fit the config it was given. ``build(config)`` makes the model; it runs without
    allocating weights and the file is read lazily where it can be (safetensors), so this is cheap enough for
    an error message. A config that fails to build (``ValueError``) does not fit."""
    from mindspore.nn.utils import no_init_parameters

    sd = read_state_dict(checkpoint, lazy=True)
    fits = []
    for cfg in configs:
        try:
            with no_init_parameters():
                model = build(cfg)
        except ValueError:
            continue
        matched, report = match_state_dict(model, sd, rename=rename)
        if report.ok and (check is None or check(model, matched)):
            fits.append(cfg)
    return fits


def fitting_config_hint(fits: Sequence, given, flag: str) -> str:
    """``"; it fits a.yaml: pass <flag> <path>"`` for the fitting configs other than ``given`` (or that none
    does), appended to a mismatch message."""
    others = [Path(p) for p in fits if Path(p).resolve() != Path(given).resolve()]
    if not others:
        return "; none of the shipped configs fits it either"
    return f"; it fits {', '.join(p.name for p in others)}: pass {flag} {others[0]}"


# --------------------------------------------------------------------------- atomic writers
def _atomic_write(path: Path, suffix: str, write: Callable[[str], None]) -> None:
    """Run ``write(tmp)`` on a temp file beside ``path``, fsync it, then ``os.replace`` it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.chmod(tmp, 0o600)
            os.remove(tmp)
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass  # directories cannot be fsynced on some filesystems


def save_checkpoint_atomic(net_or_dict, path: str | os.PathLike) -> Path:
    """Write a MindSpore checkpoint (``ms.save_checkpoint``) atomically.

    Args:
        net_or_dict: a Cell, or ``{name: numpy array | mindspore Tensor/Parameter}``.
        path: target file; ``.ckpt`` is appended if missing (as MindSpore does).

    The data goes to a temp file in the same folder, is fsynced, then replaces ``path``: a
    crash leaves either the old file or the new one, never a half-written one.
    """
    import mindspore as ms

    target = Path(path)
    if target.suffix != ".ckpt":
        target = target.with_name(target.name + ".ckpt")
    if isinstance(net_or_dict, dict):
        obj = [{"name": k, "data": v if isinstance(v, ms.Tensor) else ms.Tensor(np.asarray(v))}
               for k, v in net_or_dict.items()]
    else:
        obj = net_or_dict
    _atomic_write(target, ".ckpt", lambda tmp: ms.save_checkpoint(obj, tmp))
    return target


def save_safetensors_atomic(tensors: dict[str, Any], path: str | os.PathLike,
                            metadata: dict[str, str] | None = None) -> Path:
    """Write ``{name: numpy array | mindspore Tensor}`` as ``.safetensors`` atomically.

    Args:
        tensors: the arrays (made contiguous; MindSpore tensors converted with ``asnumpy``).
        path: target file.
        metadata: (default None) string-to-string ``__metadata__`` of the file.
    """
    from safetensors.numpy import save_file

    arrays = {}
    for k, v in tensors.items():
        arr = v.asnumpy() if hasattr(v, "asnumpy") else np.asarray(v)
        arrays[k] = np.ascontiguousarray(arr)
    target = Path(path)
    _atomic_write(target, ".safetensors", lambda tmp: save_file(arrays, tmp, metadata=metadata))
    return target
