"""PyTorch checkpoints written without torch, for the reader's tests.

A hand-written pickle writer for torch-format streams (no torch, no Pickler):
:func:`write_zip` and :func:`write_legacy` write both serialisations of any
object built from dicts, lists, tuples, scalars, tensors (:class:`T`: a
storage key, an element offset, a size and a stride, so views, shared
storages and strides can be written) and raw globals (:class:`G`, for
malicious streams). :func:`save_state_dict` writes ``{name: array}`` as
``torch.save`` writes CPU tensors. Where torch is importable, ``torch`` is it
and tests marked ``needs_torch`` compare with it.
"""
import pickle
import struct
import zipfile

import numpy as np
import pytest

try:
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

#: skips a test where torch (used only to write and read reference checkpoints) is missing
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not importable (it is only "
                                 "used to write reference checkpoints)")

#: the magic number a legacy checkpoint starts with
MAGIC = 0x1950A86A20F9469CFC6C

#: storage type -> element dtype of its raw bytes
STORAGE_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
                  "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
                  "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
                  "BFloat16Storage": "<u2", "ComplexFloatStorage": "<c8",
                  "ComplexDoubleStorage": "<c16"}
_STORAGE_OF = {np.dtype(dt): name for name, dt in STORAGE_DTYPES.items() if name != "BFloat16Storage"}


class T:
    """A tensor to write: storage key, element offset, size, stride (and, in a
    legacy file, an optional storage view ``(view key, offset, size)``)."""

    def __init__(self, key, offset, size, stride, view=None):
        self.key, self.offset, self.size, self.stride, self.view = key, offset, size, stride, view


class G:
    """A raw global reference, called with ``args`` if given (for malicious streams)."""

    def __init__(self, module, name, args=None):
        self.module, self.name, self.args = module, name, args


def p_int(n):
    if 0 <= n < 256:
        return b"K" + bytes([n])
    return b"J" + struct.pack("<i", n)


def p_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def p_global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def p_tuple(items):
    return b"(" + b"".join(items) + b"t"


def pickle_body(obj, storages, legacy):
    """Opcodes building ``obj`` (no protocol header, no STOP); tensors refer to
    ``storages`` = ``{key: (storage type, raw bytes)}``."""
    if isinstance(obj, dict):
        return b"}(" + b"".join(pickle_body(k, storages, legacy) + pickle_body(v, storages, legacy)
                                for k, v in obj.items()) + b"u"
    if isinstance(obj, list):
        return b"](" + b"".join(pickle_body(v, storages, legacy) for v in obj) + b"e"
    if isinstance(obj, tuple):
        return p_tuple([pickle_body(v, storages, legacy) for v in obj])
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        return p_int(obj)
    if isinstance(obj, float):
        return b"G" + struct.pack(">d", obj)
    if isinstance(obj, str):
        return p_str(obj)
    if obj is None:
        return b"N"
    if isinstance(obj, G):
        out = p_global(obj.module, obj.name)
        if obj.args is not None:
            out += p_tuple([pickle_body(a, storages, legacy) for a in obj.args]) + b"R"
        return out
    if isinstance(obj, T):
        stype, data = storages[obj.key]
        numel = len(data) // np.dtype(STORAGE_DTYPES[stype]).itemsize
        fields = [p_str("storage"), p_global("torch", stype), p_str(obj.key), p_str("cpu"), p_int(numel)]
        if legacy:
            fields.append(b"N" if obj.view is None else pickle_body(obj.view, storages, legacy))
        pid = p_tuple(fields) + b"Q"
        args = p_tuple([pid, p_int(obj.offset), p_tuple([p_int(n) for n in obj.size]),
                        p_tuple([p_int(s) for s in obj.stride]), b"\x89",
                        p_global("collections", "OrderedDict") + b")R"])
        return p_global("torch._utils", "_rebuild_tensor_v2") + args + b"R"
    raise TypeError(obj)


def write_zip(path, obj, storages=None, name="archive"):
    """``obj`` in the zip serialisation (``torch.save``'s default since 1.6)."""
    storages = storages or {}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}/data.pkl", b"\x80\x02" + pickle_body(obj, storages, False) + b".")
        zf.writestr(f"{name}/byteorder", b"little")
        for key, (_, data) in storages.items():
            zf.writestr(f"{name}/data/{key}", data)
        zf.writestr(f"{name}/version", b"3\n")
    return path


def write_legacy(path, obj, storages=None):
    """``obj`` in the legacy serialisation (pickles back to back, then the storages)."""
    storages = storages or {}
    with open(path, "wb") as fh:
        fh.write(pickle.dumps(MAGIC, protocol=2))
        fh.write(pickle.dumps(1001, protocol=2))
        fh.write(pickle.dumps({"protocol_version": 1001, "little_endian": True,
                               "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
        fh.write(b"\x80\x02" + pickle_body(obj, storages, True) + b".")
        fh.write(pickle.dumps(list(storages), protocol=2))
        for stype, data in storages.values():
            fh.write(struct.pack("<q", len(data) // np.dtype(STORAGE_DTYPES[stype]).itemsize))
            fh.write(data)
    return path


def save_state_dict(state_dict, path):
    """``{name: array}`` as ``torch.save(state_dict, path)`` writes CPU tensors: one
    C-contiguous little-endian storage per array, zip serialisation."""
    storages, obj = {}, {}
    for i, (key, value) in enumerate(state_dict.items()):
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r}")
        arr = np.asarray(value)
        arr = np.array(arr, dtype=arr.dtype.newbyteorder("<"), order="C")
        if arr.dtype not in _STORAGE_OF:
            raise TypeError(f"{key!r}: dtype {arr.dtype} has no PyTorch storage type")
        storages[str(i)] = (_STORAGE_OF[arr.dtype], arr.tobytes())
        strides = tuple(int(np.prod(arr.shape[d + 1:])) for d in range(arr.ndim))
        obj[key] = T(str(i), 0, arr.shape, strides)
    return write_zip(path, obj, storages)
