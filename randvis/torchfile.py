"""Read PyTorch ``state_dict`` checkpoints without PyTorch.

:func:`load_state_dict` reads both serialisations that ``torch.save`` writes:

``zip`` (the default since PyTorch 1.6)
    A zip archive ``<name>/data.pkl`` (the pickled object), ``<name>/data/<key>``
    (one raw storage per key) and ``<name>/byteorder``.
``legacy`` (``_use_new_zipfile_serialization=False`` and files from before 1.6)
    Pickles back to back: a magic number, the protocol version, system
    information, the object, the list of storage keys; then every storage's
    raw data, each preceded by its element count.

The pickle is read by a restricted :class:`pickle.Unpickler` whose
``find_class`` resolves only the handful of globals a ``state_dict`` needs
(``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and its
relatives, the ``torch.*Storage`` types and ``torch`` dtypes), each to a
stand-in defined here: torch is never imported, and a pickle that names
anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, a
model class, ...) raises :class:`UnsafeCheckpointError` before anything it
names could run. Before that, :func:`randvis.safeio.scan_pickle` walks the
pickle's opcodes and refuses one that nests too deep or holds too many items,
objects or bytes. Only the tensors of the selected state_dict are read from
disk; every tensor comes back as an independent, C-contiguous NumPy array
(bfloat16 as float32).
"""
from __future__ import annotations

import collections
import io
import math
import os
import pickle
import re
import struct
import zipfile

import numpy as np

from .limits import check_memory, format_bytes
from .safeio import PickleScanError, scan_pickle

__all__ = ["load_state_dict", "StateDict", "CheckpointError", "UnsafeCheckpointError",
           "WRAPPER_KEYS"]

#: top-level keys under which training checkpoints keep the model's state_dict
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network")

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001

#: largest ``data.pkl`` record of a zip checkpoint (the pickle's own bounds:
#: :func:`randvis.safeio.scan_pickle`)
MAX_PICKLE_BYTES = 64 << 20


class CheckpointError(ValueError):
    """The file is not a readable PyTorch state_dict (the message names the
    file and the problem)."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint's pickle refers to a global that a state_dict never needs
    (e.g. ``os.system``); it was refused, never executed."""


class StateDict(dict):
    """A ``dict`` of ``{name: ndarray}`` with what was found on the way.

    Attributes
    ----------
    path : str
        The file read.
    format : str
        ``"zip"`` or ``"legacy"``.
    notes : list of str
        What was done beyond reading: unwrapping ``{'state_dict': ...}``,
        stripping ``module.`` prefixes, skipping non-tensor entries.
    """

    path = ""
    format = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.notes = []


# ---------------------------------------------------------------------------
# stand-ins for the globals a state_dict pickle names
# ---------------------------------------------------------------------------

class _Frozen:
    """Base for the stand-ins: no ``__dict__``, attributes fixed at creation, so a
    pickle's BUILD opcode cannot modify them."""

    __slots__ = ()

    def __setattr__(self, name, value):
        raise CheckpointError(f"refused to set attribute {name!r} on {self!r}")

    def __reduce__(self):  # pragma: no cover - never pickled
        raise TypeError(f"{type(self).__name__} is not picklable")


class _DType(_Frozen):
    """A tensor element type: ``raw`` is how it is stored, ``out`` what we return."""

    __slots__ = ("name", "raw", "out")

    def __init__(self, name, raw, out=None):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "raw", np.dtype(raw))
        object.__setattr__(self, "out", np.dtype(out or raw))

    @property
    def itemsize(self):
        return self.raw.itemsize

    def __repr__(self):
        return f"torch.{self.name}"


_DT = {name: _DType(name, raw, out) for name, raw, out in [
    ("float32", "f4", None), ("float64", "f8", None), ("float16", "f2", None),
    ("bfloat16", "u2", "f4"), ("int64", "i8", None), ("int32", "i4", None),
    ("int16", "i2", None), ("int8", "i1", None), ("uint8", "u1", None), ("bool", "?", None),
    ("uint16", "u2", None), ("uint32", "u4", None), ("uint64", "u8", None),
    ("complex64", "c8", None), ("complex128", "c16", None)]}

#: torch dtype names (as pickled: ``torch float32`` etc.) -> element type
_DTYPE_NAMES = dict(_DT)
_DTYPE_NAMES.update({"float": _DT["float32"], "double": _DT["float64"], "half": _DT["float16"],
                     "long": _DT["int64"], "int": _DT["int32"], "short": _DT["int16"],
                     "cfloat": _DT["complex64"], "cdouble": _DT["complex128"]})

#: legacy typed storage classes -> element type
_STORAGE_NAMES = {
    "FloatStorage": _DT["float32"], "DoubleStorage": _DT["float64"], "HalfStorage": _DT["float16"],
    "BFloat16Storage": _DT["bfloat16"], "LongStorage": _DT["int64"], "IntStorage": _DT["int32"],
    "ShortStorage": _DT["int16"], "CharStorage": _DT["int8"], "ByteStorage": _DT["uint8"],
    "BoolStorage": _DT["bool"], "ComplexFloatStorage": _DT["complex64"],
    "ComplexDoubleStorage": _DT["complex128"],
}


class _StorageType(_Frozen):
    """Stand-in for ``torch.FloatStorage`` etc. (``dtype`` None: UntypedStorage, bytes)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)

    def __call__(self, *args, **kwargs):
        raise CheckpointError(f"refused to construct torch.{self.name} directly")

    def __repr__(self):
        return f"torch.{self.name}"


class _Storage(_Frozen):
    """One storage of the file: raw bytes read on demand, once."""

    __slots__ = ("key", "dtype", "numel", "reader", "cache")

    def __init__(self, key, dtype, numel, reader):
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "dtype", dtype)  # None: untyped (bytes)
        object.__setattr__(self, "numel", numel)
        object.__setattr__(self, "reader", reader)
        object.__setattr__(self, "cache", [])

    @property
    def nbytes(self):
        return self.numel * (self.dtype.itemsize if self.dtype is not None else 1)

    def data(self):
        """The storage's bytes as a uint8 array."""
        if not self.cache:
            self.cache.append(self.reader(self))
        return self.cache[0]


class _StorageView(_Frozen):
    """A legacy storage view: ``numel`` elements of ``root`` from ``offset``."""

    __slots__ = ("root", "offset", "numel", "dtype")

    def __init__(self, root, offset, numel):
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "numel", numel)
        object.__setattr__(self, "dtype", root.dtype)

    def data(self):
        size = self.dtype.itemsize if self.dtype is not None else 1
        return self.root.data()[self.offset * size:(self.offset + self.numel) * size]


class _Tensor(_Frozen):
    """A tensor as pickled: storage, offset, size, stride (materialised later)."""

    __slots__ = ("storage", "offset", "size", "stride", "dtype")

    def __init__(self, storage, offset, size, stride, dtype=None):
        if not isinstance(storage, (_Storage, _StorageView)):
            raise CheckpointError(f"tensor rebuilt from a {type(storage).__name__}, not a storage")
        dtype = storage.dtype if dtype is None else dtype
        if not isinstance(dtype, _DType):
            raise CheckpointError("tensor without an element type (untyped storage, no dtype)")
        size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
        if len(size) != len(stride):
            raise CheckpointError(f"tensor size {size} and stride {stride} differ in length")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise CheckpointError(f"bad storage offset {offset!r}")
        for k, v in (("storage", storage), ("offset", offset), ("size", size),
                     ("stride", stride), ("dtype", dtype)):
            object.__setattr__(self, k, v)

    @property
    def numel(self):
        return math.prod(self.size)

    def stored_elements(self):
        """How many elements of this tensor's type its storage holds."""
        st = self.storage
        nbytes = st.numel * (st.dtype.itemsize if st.dtype is not None else 1)
        return nbytes // self.dtype.itemsize

    def check(self):
        """Refuse a view that reads outside its storage or holds more elements than
        the storage (a zero or overlapping stride), before anything is read."""
        n = self.numel
        if n == 0:
            return
        avail = self.stored_elements()
        last = self.offset + sum((k - 1) * s for k, s in zip(self.size, self.stride))
        if last >= avail:
            raise CheckpointError(
                f"tensor of size {self.size}, stride {self.stride} at offset {self.offset} "
                f"reads past the end of its storage ({avail} elements)")
        if n > avail:
            raise CheckpointError(
                f"tensor of size {self.size} with stride {self.stride} has {n} elements but its "
                f"storage holds only {avail} element{'' if avail == 1 else 's'}: zero or "
                "overlapping strides would expand the stored data; refused")

    def numpy(self, byteorder="little"):
        """An independent C-contiguous array (bfloat16 -> float32, native byte order)."""
        raw = self.dtype.raw.newbyteorder("<" if byteorder == "little" else ">")
        if math.prod(self.size) == 0:
            return np.zeros(self.size, self.dtype.out)
        buf = self.storage.data()
        n_items = buf.nbytes // raw.itemsize
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if min(self.stride, default=0) < 0 or last >= n_items:
            raise CheckpointError(
                f"tensor of size {self.size}, stride {self.stride} at offset {self.offset} "
                f"reads past the end of its storage ({n_items} elements)")
        flat = np.frombuffer(buf, dtype=raw, count=n_items)
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size,
            strides=tuple(s * raw.itemsize for s in self.stride), writeable=False)
        arr = view.copy(order="C")
        if self.dtype.name == "bfloat16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        elif not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return arr


def _int_tuple(v, what):
    if not isinstance(v, (tuple, list)) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v):
        raise CheckpointError(f"bad tensor {what} {v!r}")
    return tuple(v)


def _check_hooks(hooks):
    if hooks not in (None,) and not (isinstance(hooks, dict) and not hooks):
        raise CheckpointError("tensor with pickled backward hooks")


def _check_metadata(metadata):
    if metadata:
        raise CheckpointError(f"unsupported tensor metadata {metadata!r} (conjugate/negative bits)")


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    _check_hooks(backward_hooks)
    _check_metadata(metadata)
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    _check_hooks(backward_hooks)
    _check_metadata(metadata)
    if not isinstance(dtype, _DType):
        raise CheckpointError(f"bad tensor dtype {dtype!r}")
    if storage.dtype is not None:
        raise CheckpointError("_rebuild_tensor_v3 on a typed storage")
    return _Tensor(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, _Tensor):
        raise CheckpointError("parameter rebuilt from something that is not a tensor")
    _check_hooks(backward_hooks)
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    if state:
        raise CheckpointError("parameter with extra pickled state")
    return _rebuild_parameter(data, requires_grad, backward_hooks)


class _Function(_Frozen):
    """An immutable wrapper of one of the rebuild functions above."""

    __slots__ = ("name", "fn")

    def __init__(self, name, fn):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "fn", fn)

    def __call__(self, *args):
        try:
            return self.fn(*args)
        except TypeError as exc:
            raise CheckpointError(f"bad arguments to {self.name}: {exc}") from None

    def __repr__(self):
        return self.name


_REBUILDERS = {name: _Function(f"torch._utils.{name}", fn) for name, fn in [
    ("_rebuild_tensor", _rebuild_tensor), ("_rebuild_tensor_v2", _rebuild_tensor_v2),
    ("_rebuild_tensor_v3", _rebuild_tensor_v3), ("_rebuild_parameter", _rebuild_parameter),
    ("_rebuild_parameter_with_state", _rebuild_parameter_with_state)]}

#: torch globals we know but cannot turn into dense arrays
_UNSUPPORTED = {
    "_rebuild_qtensor": "quantized tensors", "_rebuild_sparse_tensor": "sparse tensors",
    "_rebuild_sparse_csr_tensor": "sparse tensors", "_rebuild_nested_tensor": "nested tensors",
    "_rebuild_device_tensor_from_numpy": "device tensors from numpy",
    "_rebuild_meta_tensor_no_storage": "meta tensors", "_rebuild_wrapper_subclass": "tensor subclasses",
    "_rebuild_xla_tensor": "XLA tensors", "_rebuild_mtia_tensor": "MTIA tensors",
}

_STORAGE_TYPES = {name: _StorageType(name, dt) for name, dt in _STORAGE_NAMES.items()}
_STORAGE_TYPES["UntypedStorage"] = _StorageType("UntypedStorage", None)


def _allowed_global(module, name):
    """What a restricted unpickler may resolve (module, name) to, or None."""
    if (module, name) == ("collections", "OrderedDict"):
        return collections.OrderedDict
    if module == "torch._utils" and name in _REBUILDERS:
        return _REBUILDERS[name]
    if module in ("torch", "torch.cuda", "torch.storage") and name in _STORAGE_TYPES:
        return _STORAGE_TYPES[name]
    if module == "torch" and name in _DTYPE_NAMES:
        return _DTYPE_NAMES[name]
    return None


class _Unpickler(pickle.Unpickler):
    """Resolves only :func:`_allowed_global` names; storages via ``persistent_load``."""

    def __init__(self, file, path, persistent_load=None):
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._pload = persistent_load

    def find_class(self, module, name):
        obj = _allowed_global(module, name)
        if obj is not None:
            return obj
        if module in ("torch._utils", "torch") and name in _UNSUPPORTED:
            raise CheckpointError(f"{self._path}: {_UNSUPPORTED[name]} are not supported "
                                  f"({module}.{name})")
        raise UnsafeCheckpointError(
            f"{self._path}: refused to load global {module}.{name}: a state_dict checkpoint "
            "needs only tensors, storages and OrderedDict (nothing from the file was executed)")

    def persistent_load(self, pid):
        if self._pload is None:
            raise CheckpointError(f"{self._path}: unexpected persistent id {pid!r}")
        return self._pload(pid)


# ---------------------------------------------------------------------------
# the two serialisations
# ---------------------------------------------------------------------------

def _restricted_load(fh, path, persistent_load=None):
    """Scan the pickle at ``fh``'s position, then unpickle it with the restricted
    unpickler; ``fh`` is left after the pickle."""
    start = fh.tell()
    try:
        scan_pickle(fh, path)
    except PickleScanError as exc:
        raise CheckpointError(str(exc)) from None
    fh.seek(start)
    try:
        return _Unpickler(fh, path, persistent_load).load()
    except CheckpointError as exc:
        if str(exc).startswith(path):
            raise
        raise CheckpointError(f"{path}: {exc}") from None
    except (EOFError, pickle.UnpicklingError, struct.error) as exc:
        raise CheckpointError(f"{path}: truncated or corrupt pickle ({exc or type(exc).__name__})") from None
    except (AttributeError, TypeError, ValueError, IndexError, KeyError, RecursionError,
            MemoryError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint pickle ({type(exc).__name__}: {exc})") from None


def _storage_pid(pid, path, legacy):
    if not isinstance(pid, tuple) or not pid:
        raise CheckpointError(f"{path}: bad persistent id {pid!r}")
    kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
    if kind == "module":
        raise CheckpointError(f"{path}: the file holds a pickled nn.Module (a whole model), "
                              "not a state_dict")
    if kind != "storage" or len(pid) != (6 if legacy else 5):
        raise CheckpointError(f"{path}: bad persistent id {pid!r}")
    stype, key, _location, numel = pid[1:5]
    if not isinstance(stype, _StorageType):
        raise CheckpointError(f"{path}: storage of unknown type {stype!r}")
    if isinstance(key, bytes):
        key = key.decode("ascii")
    if not isinstance(key, (str, int)) or not isinstance(numel, int) or numel < 0:
        raise CheckpointError(f"{path}: bad storage record {pid!r}")
    return stype, str(key), numel, (pid[5] if len(pid) == 6 else None)


def _load_zip(path, zf):
    names = zf.namelist()
    pkls = [n for n in names if re.fullmatch(r"[^/]+/data\.pkl", n)]
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        raise CheckpointError(f"{path}: a TorchScript archive (torch.jit.save), not a state_dict")
    if len(pkls) != 1:
        raise CheckpointError(f"{path}: a zip archive but not a PyTorch checkpoint "
                              f"(expected one <name>/data.pkl, found {len(pkls)})")
    prefix = pkls[0][:-len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        raw = _read_record(zf, prefix + "byteorder", path, limit=16)
        byteorder = bytes(raw).decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"{path}: unknown byte order {byteorder!r}")
    storages = {}

    def record(storage):
        return f"{prefix}data/{storage.key}"

    def read(storage):
        return _read_record(zf, record(storage), path, size=storage.nbytes)

    def persistent_load(pid):
        stype, key, numel, _ = _storage_pid(pid, path, legacy=False)
        if key not in storages:
            st = _Storage(key, stype.dtype, numel, read)
            try:
                info = zf.getinfo(record(st))
            except KeyError:
                raise CheckpointError(f"{path}: storage record {record(st)!r} is missing") from None
            if info.file_size < st.nbytes:
                raise CheckpointError(f"{path}: storage record {record(st)!r} holds "
                                      f"{info.file_size} bytes, expected {st.nbytes}")
            storages[key] = st
        st = storages[key]
        if st.dtype is not stype.dtype:
            raise CheckpointError(f"{path}: storage {key!r} used with two element types")
        return st

    info = zf.getinfo(pkls[0])
    if info.file_size > MAX_PICKLE_BYTES:
        raise CheckpointError(f"{path}: {pkls[0]!r} declares {format_bytes(info.file_size)}, more "
                              f"than the limit of {format_bytes(MAX_PICKLE_BYTES)} for a "
                              "checkpoint's pickle")
    data = _read_record(zf, pkls[0], path, size=info.file_size)
    obj = _restricted_load(io.BytesIO(data), path, persistent_load)
    return obj, byteorder


def _read_record(zf, name, path, size=None, limit=None):
    """``size`` bytes of zip record ``name`` (or all of it, at most ``limit``), as a
    uint8 array; the record is inflated no further than that."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise CheckpointError(f"{path}: record {name!r} is missing") from None
    if size is None:
        size = min(info.file_size, limit)
    out = np.empty(size, np.uint8)
    view, done = memoryview(out), 0
    try:
        with zf.open(info) as fh:
            while done < size:
                chunk = fh.read(min(size - done, 1 << 24))
                if not chunk:
                    break
                view[done:done + len(chunk)] = chunk
                done += len(chunk)
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot read record {name!r} ({exc})") from None
    if done < size:
        raise CheckpointError(f"{path}: record {name!r} ends after {done} of its {size} bytes")
    return out


def _load_legacy(path, fh):
    magic = _restricted_load(fh, path)
    if magic != _MAGIC_NUMBER:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (bad magic number)")
    version = _restricted_load(fh, path)
    if version != _PROTOCOL_VERSION:
        raise CheckpointError(f"{path}: unsupported legacy protocol version {version!r}")
    sys_info = _restricted_load(fh, path)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    storages, offsets = {}, {}

    def read(storage):
        off = offsets.get(storage.key)
        if off is None:
            raise CheckpointError(f"{path}: no data for storage {storage.key!r}")
        fh.seek(off)
        out = np.empty(storage.nbytes, np.uint8)
        if fh.readinto(memoryview(out)) != storage.nbytes:
            raise CheckpointError(f"{path}: truncated file (storage {storage.key!r})")
        return out

    def persistent_load(pid):
        stype, key, numel, view = _storage_pid(pid, path, legacy=True)
        if key not in storages:
            storages[key] = _Storage(key, stype.dtype, numel, read)
        root = storages[key]
        if root.dtype is not stype.dtype:
            raise CheckpointError(f"{path}: storage {key!r} used with two element types")
        if view is None:
            return root
        if (not isinstance(view, tuple) or len(view) != 3
                or not all(isinstance(v, int) and v >= 0 for v in view[1:])):
            raise CheckpointError(f"{path}: bad storage view {view!r}")
        _, offset, size = view
        if offset + size > numel:
            raise CheckpointError(f"{path}: storage view {view!r} exceeds its storage")
        return _StorageView(root, offset, size)

    obj = _restricted_load(fh, path, persistent_load)
    keys = _restricted_load(fh, path)
    if not isinstance(keys, list):
        raise CheckpointError(f"{path}: corrupt checkpoint (no storage key list)")
    size = os.fstat(fh.fileno()).st_size
    pos = fh.tell()
    for key in keys:
        key = str(key)
        if key not in storages:
            raise CheckpointError(f"{path}: data for storage {key!r} that no tensor uses")
        head = fh.read(8)
        if len(head) != 8:
            raise CheckpointError(f"{path}: truncated file (storage {key!r} missing)")
        (numel,) = struct.unpack("<q", head)
        st = storages[key]
        if numel != st.numel:
            raise CheckpointError(f"{path}: storage {key!r} has {numel} elements, expected {st.numel}")
        offsets[key] = pos + 8
        pos += 8 + st.nbytes
        if pos > size:
            raise CheckpointError(f"{path}: truncated file (storage {key!r} needs {st.nbytes} "
                                  f"bytes, {size - offsets[key]} left)")
        fh.seek(pos)
    missing = sorted(set(storages) - set(offsets))
    if missing:
        raise CheckpointError(f"{path}: no data for storages {missing}")
    return obj, ("little" if little else "big")


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------

def _is_tensor_dict(obj):
    return isinstance(obj, dict) and obj and all(isinstance(v, _Tensor) for v in obj.values())


def _select(obj, path, notes):
    """The dict of tensors in ``obj``: unwrap ``{'state_dict': {...}}`` and friends."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a state_dict: the checkpoint holds a "
                              f"{type(obj).__name__}, not a dict of tensors")
    where = ""
    for _ in range(3):
        if _is_tensor_dict(obj):
            break
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            break
        others = sorted(str(k) for k in obj if k != key)
        notes.append(f"unwrapped top-level key {where + repr(key)}"
                     + (f" (ignored: {', '.join(others)})" if others else ""))
        where += f"{key!r} > "
        obj = obj[key]
    tensors = {k: v for k, v in obj.items() if isinstance(v, _Tensor)}
    if not tensors:
        keys = ", ".join(repr(k) for k in list(obj)[:10])
        raise CheckpointError(f"{path}: no tensors found (top-level keys: {keys}); expected a "
                              f"state_dict or a dict with one of the keys {list(WRAPPER_KEYS)}")
    skipped = [str(k) for k in obj if k not in tensors]
    if skipped:
        notes.append(f"skipped {len(skipped)} non-tensor entries: {', '.join(skipped[:10])}"
                     + (" ..." if len(skipped) > 10 else ""))
    bad = [k for k in tensors if not isinstance(k, str)]
    if bad:
        raise CheckpointError(f"{path}: tensor names must be strings, got {bad[:5]!r}")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
        notes.append("stripped the 'module.' prefix (DataParallel) from every key")
    return tensors


def _materialize(tensors, byteorder, path):
    stored, arrays = {}, 0
    for k, t in tensors.items():
        try:
            t.check()
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: tensor {k!r}: {exc}") from None
        root = t.storage.root if isinstance(t.storage, _StorageView) else t.storage
        stored[id(root)] = root.nbytes
        arrays += t.numel * (t.dtype.out.itemsize + (4 if t.dtype.name == "bfloat16" else 0))
    check_memory(sum(stored.values()) + arrays, f"{path}: the state_dict's {len(tensors)} tensors")
    out = {}
    for k, t in tensors.items():
        try:
            out[k] = t.numpy(byteorder)
        except CheckpointError as exc:
            if str(exc).startswith(path):
                raise
            raise CheckpointError(f"{path}: tensor {k!r}: {exc}") from None
        except (ValueError, MemoryError) as exc:
            raise CheckpointError(f"{path}: tensor {k!r} of size {t.size} cannot be built "
                                  f"({type(exc).__name__}: {exc})") from None
    return out


def load_state_dict(path):
    """Read a PyTorch ``state_dict`` checkpoint into NumPy arrays, without torch.

    Both ``torch.save`` serialisations are read (zip, and the legacy one of
    ``_use_new_zipfile_serialization=False``). The pickle inside is loaded by a
    restricted unpickler: any global other than the few a state_dict needs is
    refused with :class:`UnsafeCheckpointError` and never executed.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.pth`` / ``.pt`` file written by ``torch.save(model.state_dict(), path)``
        or a training checkpoint ``{'state_dict': ..., 'epoch': ...}`` (also
        ``'model'``, ``'model_state_dict'``: unwrapped, see ``notes``).

    Returns
    -------
    StateDict
        ``{name: ndarray}`` in the file's order: C-contiguous, independent
        copies; float32/float64/float16/int64/int32/uint8/bool kept, bfloat16
        as float32, 0-d tensors as 0-d arrays. A ``module.`` prefix on every key
        (DataParallel) is removed. ``.format`` is ``"zip"`` or ``"legacy"``;
        ``.notes`` lists what was unwrapped, stripped or skipped.

    Raises
    ------
    UnsafeCheckpointError
        The pickle names a global a state_dict never needs (``os.system``, ...).
    CheckpointError
        Not a checkpoint, truncated or corrupt, a whole pickled model, a
        TorchScript archive, or tensors of an unsupported kind (sparse,
        quantized). The message names the file.

    Examples
    --------
    >>> import os, pickle, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "evil.pth")
    >>> with open(path, "wb") as fh:                    # a pickle that would run os.system
    ...     _ = fh.write(pickle.dumps(os.system, protocol=2))
    >>> try:
    ...     load_state_dict(path)
    ... except UnsafeCheckpointError as exc:
    ...     print(str(exc).split(": ", 1)[1])
    refused to load global ...system: a state_dict checkpoint needs only tensors, storages and OrderedDict (nothing from the file was executed)
    """
    path = os.fspath(path)
    notes = []
    with open(path, "rb") as fh:
        head = fh.read(512)
        if not head:
            raise CheckpointError(f"{path}: empty file")
        fh.seek(0)
        if head.startswith(b"PK"):
            try:
                zf = zipfile.ZipFile(fh)
            except zipfile.BadZipFile as exc:
                raise CheckpointError(f"{path}: truncated or corrupt zip archive ({exc})") from None
            with zf:
                obj, byteorder = _load_zip(path, zf)
                arrays = _materialize(_select(obj, path, notes), byteorder, path)
            fmt = "zip"
        elif len(head) > 262 and head[257:262] == b"ustar":
            raise CheckpointError(f"{path}: a tar-format checkpoint (PyTorch < 0.4); "
                                  "re-save it with a recent torch.save")
        elif head[:1] == b"\x80":
            obj, byteorder = _load_legacy(path, fh)
            arrays = _materialize(_select(obj, path, notes), byteorder, path)
            fmt = "legacy"
        elif head.startswith(b"\x89HDF"):
            raise CheckpointError(f"{path}: an HDF5 file (Keras?), not a PyTorch checkpoint")
        else:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip archive "
                                  "nor a legacy pickle)")
    out = StateDict(arrays)
    out.path, out.format, out.notes = path, fmt, notes
    return out
