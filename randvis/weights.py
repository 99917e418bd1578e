"""Trained VGG-16 weights: read them, check them, convert them to randvis' layout.

:func:`read_vgg16` turns a weights file into randvis-named arrays and the
network's dimensions (:class:`VGG16Weights`); :func:`randvis.models.vgg16`
builds the network from them (:func:`load_vgg16` does both). Four sources are
understood, detected from the file's content:

``"randvis"`` (``.npz``)
    What :meth:`Sequential.save <randvis.network.Sequential.save>` writes
    (``__architecture__`` JSON plus ``conv1_1.weight`` ...), or a plain
    ``.npz`` with just those 32 parameter names. Convolutions
    ``(out, in, kh, kw)``, dense weights ``(out, in)``, fc6's columns in
    ``(c, h, w)`` order (PyTorch's conventions).
``"paper"`` (``.npz``)
    The ``vgg16_weights.npz`` layout used by the paper's code: ``conv1_1_W``,
    ``conv1_1_b``, ..., ``fc8_b``; kernels ``(kh, kw, in, out)``, dense
    ``(in, out)``, and fc6's rows in the ``(h, w, c)`` order of TensorFlow's
    NHWC flatten, permuted here to ``(c, h, w)``.
``"torch"`` (``.pth``, zip or legacy serialisation)
    A VGG-16 ``state_dict`` such as torchvision's ``vgg16-397923af.pth``
    (``features.0.weight`` ... ``classifier.6.bias``), read without torch by
    :func:`randvis.torchfile.load_state_dict`. Modules are matched to
    ``conv1_1`` ... ``fc8`` in file order (4-d weights are convolutions, 2-d
    are dense layers); PyTorch flattens NCHW like randvis, so no permutation.
``"keras"`` (``.h5``, needs h5py)
    Keras' VGG-16 weights, as a weights-only file (layer groups at the top
    level) or a saved model (under ``model_weights``): ``block1_conv1`` ...
    ``block5_conv3``, ``fc1``, ``fc2``, ``predictions`` with ``kernel:0`` and
    ``bias:0``; same axes as the paper layout (Keras flattens NHWC).

The network's shape is read off the weights: block widths from the
convolutions, ``fc_width`` and ``n_classes`` from the dense layers, and the
input size from fc6's input features (``side = 32 * sqrt(in / width5)``, or
the saved ``input_shape`` of a randvis file). Every key, shape and dtype is
checked; errors name the offending key and the expected shape. No pickle is
ever loaded: ``.npz`` files are read by :mod:`randvis.safeio` (no object
arrays) and PyTorch files through a restricted unpickler.

Every shape and dtype is checked, and the memory the conversion needs is
compared with :func:`randvis.limits.check_memory`, before any tensor's data
is read or inflated. A Keras file is refused before any data is read if it
holds anything that would make HDF5 read outside the file or invent data:
external links, soft links and user-defined links (only hard links inside
the file are followed), datasets with external raw storage, virtual
datasets, unknown compression filters, and datasets with no stored data.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import zipfile
from dataclasses import dataclass, field

import numpy as np

from . import _checks
from ._io import atomic_savez, file_sha256
from .limits import ResourceLimitError, check_memory
from .models import VGG16_BLOCKS, VGG16_LAYERS, VGG16_PARAMS, vgg16
from .network import _read_architecture
from .safeio import NpzError, NpzReader
from .torchfile import CheckpointError, load_state_dict

__all__ = ["read_vgg16", "load_vgg16", "save_vgg16_paper_npz", "convert", "VGG16Weights",
           "ConversionReport", "WeightsError", "FORMATS", "VGG16_PARAMS"]

#: the source formats :func:`read_vgg16` and :func:`convert` read (:func:`convert` also reads
#: "onnx" models, through :mod:`randvis.onnxfile`)
FORMATS = ("randvis", "paper", "torch", "keras")

_CONVS, _FCS = VGG16_LAYERS[:-3], VGG16_LAYERS[-3:]

_KERAS_LAYERS = {**{f"block{name[4]}_conv{name[6]}": name for name in _CONVS},
                 "fc1": "fc6", "fc2": "fc7", "predictions": "fc8"}

# axis orders: "torch" = randvis/PyTorch, "tf" = paper / Keras (HWIO kernels, (in, out) dense,
# fc6 rows in NHWC flatten order)
_DESC = {("torch", "conv"): "(out, in, kh, kw)", ("tf", "conv"): "(kh, kw, in, out)",
         ("torch", "dense"): "(out, in)", ("tf", "dense"): "(in, out)",
         ("torch", "bias"): "(out,)", ("tf", "bias"): "(out,)"}


class WeightsError(ValueError):
    """A weights file that cannot be used as VGG-16 (the message names the file,
    the key and what was expected)."""


def _paper_key(name):
    layer, p = name.split(".")
    return f"{layer}_{'W' if p == 'weight' else 'b'}"


def _kind(name):
    layer, p = name.split(".")
    return "bias" if p == "bias" else ("conv" if layer.startswith("conv") else "dense")


def _src_shape(order, kind, shape):
    """A randvis-layout shape in the source's axis order."""
    if order == "tf" and kind == "conv":
        return (shape[2], shape[3], shape[1], shape[0])
    if order == "tf" and kind == "dense":
        return (shape[1], shape[0])
    return tuple(shape)


# ---------------------------------------------------------------------------
# readers: each returns {randvis param name: _Entry} + axis order; data are read later
# ---------------------------------------------------------------------------

@dataclass
class _Entry:
    """One source tensor: its key, shape and dtype (known before its data are
    read) and a function reading it."""

    key: str
    shape: tuple
    dtype: np.dtype
    read: object
    check: object = None  # called once every shape is known to be right, before any read

    @classmethod
    def of(cls, key, array):
        return cls(key, tuple(array.shape), array.dtype, lambda: array)


@dataclass
class _Source:
    fmt: str
    order: str
    entries: dict
    notes: list = field(default_factory=list)
    input_shape: tuple = None
    pool_type: str = "max"
    provenance: dict = None


def _refuse_partial(path, what, unmapped, missing):
    parts = []
    if unmapped:
        parts.append(f"unmapped source tensors: {', '.join(unmapped)}")
    if missing:
        parts.append(f"VGG-16 parameters without a source: {', '.join(missing)}")
    if parts:
        raise WeightsError(f"{path}: {what} does not match VGG-16 exactly; " + "; ".join(parts))


def _read_npz(path, npz, layout=None):
    """The entries of an open :class:`~randvis.safeio.NpzReader` (headers only)."""
    headers = dict(npz.headers)
    arch = headers.pop("__architecture__", None)
    detected = _npz_layout(path, list(headers))
    if layout is not None and layout != detected:
        raise WeightsError(f"{path}: asked for the {layout!r} layout, the keys are {detected!r}'s")
    layout = detected
    key_of = (lambda n: n) if layout == "randvis" else _paper_key
    want = {key_of(n): n for n in VGG16_PARAMS}
    missing = [k for k in want if k not in headers]
    extra = [k for k in headers if k not in want]
    if missing or extra:
        parts = ([f"missing keys: {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected keys: {', '.join(extra)}"] if extra else [])
        raise WeightsError(f"{path}: {layout} layout: " + "; ".join(parts))
    src = _Source(layout, "torch" if layout == "randvis" else "tf",
                  {n: _Entry(k, headers[k].shape, headers[k].dtype, functools.partial(npz.read, k))
                   for k, n in want.items()})
    if arch is not None:
        try:
            spec = _read_architecture(npz, f"{path}: __architecture__")
            shape = tuple(int(s) for s in spec["input_shape"])
            info = spec.get("info") or {}
        except ResourceLimitError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if str(exc).startswith(path):
                raise WeightsError(str(exc)) from None
            raise WeightsError(f"{path}: unreadable __architecture__ entry ({exc})") from None
        if len(shape) != 3:
            raise WeightsError(f"{path}: __architecture__ input_shape {shape} is not (c, h, w)")
        src.input_shape = shape
        src.pool_type = info.get("pool_type", "max")
        if src.pool_type not in ("max", "avg"):
            raise WeightsError(f"{path}: unknown pool_type {src.pool_type!r} in __architecture__")
        if isinstance(info.get("weights"), dict):
            src.provenance = info["weights"]
        src.notes.append(f"input_shape {shape} and pool_type {src.pool_type!r} from __architecture__")
    return src


def _npz_layout(path, keys):
    n_randvis = sum(k in VGG16_PARAMS for k in keys)
    n_paper = sum(k in {_paper_key(n) for n in VGG16_PARAMS} for k in keys)
    if n_randvis == n_paper == 0:
        shown = ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else "")
        raise WeightsError(f"{path}: no VGG-16 weights found (expected keys like 'conv1_1.weight' "
                           f"(randvis) or 'conv1_1_W' (paper)); the file has: {shown or 'no keys'}")
    return "randvis" if n_randvis >= n_paper else "paper"


def _read_torch(path):
    try:
        sd = load_state_dict(path)
    except CheckpointError as exc:
        raise WeightsError(str(exc)) from None
    groups = {}
    for key in sd:
        prefix, _, pname = key.rpartition(".")
        groups.setdefault(prefix, {})[pname] = key
    convs, denses, unmapped = [], [], []
    for prefix, params in groups.items():
        w = params.get("weight")
        ndim = sd[w].ndim if w is not None else None
        if ndim == 4 and len(convs) < len(_CONVS):
            convs.append(params)
        elif ndim == 2 and len(denses) < len(_FCS):
            denses.append(params)
        else:
            unmapped += params.values()
            continue
        unmapped += [k for p, k in params.items() if p not in ("weight", "bias")]
    entries = {}
    for layer, params in list(zip(_CONVS, convs)) + list(zip(_FCS, denses)):
        for p in ("weight", "bias"):
            if p in params:
                entries[f"{layer}.{p}"] = _Entry.of(params[p], sd[params[p]])
    missing = [n for n in VGG16_PARAMS if n not in entries]
    _refuse_partial(path, "the state_dict", unmapped, missing)
    src = _Source("torch", "torch", entries, notes=[f"PyTorch {sd.format} serialisation"] + sd.notes)
    src.notes.append("modules matched to conv1_1 ... fc8 in file order (4-d weights: "
                     "convolutions, 2-d: dense)")
    return src


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading Keras .h5 weights needs h5py: pip install h5py "
                          "(or pip install 'randvis[keras]')") from None
    return h5py


def _decode(v):
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


#: HDF5 filters a Keras file may use (deflate, shuffle, fletcher32, szip, n-bit,
#: scale-offset, LZF); any other would make HDF5 look for a filter plugin
_H5_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit",
               6: "scaleoffset", 32000: "lzf"}
#: most links an HDF5 weights file may have; largest attribute read from it
_H5_MAX_LINKS = 100_000
_H5_MAX_ATTR_BYTES = 16 << 20


def _check_hdf5_file(path, f, h5py):
    """Refuse, before any data are read, every link that is not a hard link inside
    the file and every dataset whose data would come from elsewhere."""
    todo, seen, n = [("", f)], set(), 0
    while todo:
        where, group = todo.pop()
        for name in group:
            full = f"{where}/{name}"
            n += 1
            if n > _H5_MAX_LINKS:
                raise WeightsError(f"{path}: more than {_H5_MAX_LINKS:,} objects; refused")
            try:
                link = group.get(name, getlink=True)
            except TypeError:                       # h5py: "Unknown link type"
                link = None
            if not isinstance(link, h5py.HardLink):
                if isinstance(link, h5py.ExternalLink):
                    kind = f"an external link to {link.filename!r}:{link.path}"
                elif isinstance(link, h5py.SoftLink):
                    kind = f"a soft link to {link.path!r}"
                else:
                    kind = "a user-defined link"
                raise WeightsError(f"{path}: {full} is {kind}; refused (weights are read only "
                                   "from objects stored in the file itself, through hard links)")
            obj = group[name]
            info = h5py.h5o.get_info(obj.id)
            if (info.fileno, info.addr) in seen:
                continue
            seen.add((info.fileno, info.addr))
            if isinstance(obj, h5py.Group):
                todo.append((full, obj))
            elif isinstance(obj, h5py.Dataset):
                _check_hdf5_dataset(path, full, obj, h5py)


def _check_hdf5_dataset(path, full, ds, h5py):
    if ds.is_virtual:
        files = sorted({v.file_name for v in ds.virtual_sources()})
        raise WeightsError(f"{path}: {full} is a virtual dataset (its data would come from "
                           f"{', '.join(map(repr, files))}); refused")
    if ds.external:
        files = [e[0].decode(errors="replace") if isinstance(e[0], bytes) else str(e[0])
                 for e in ds.external]
        raise WeightsError(f"{path}: {full} has external raw storage (its data would be read "
                           f"from {', '.join(map(repr, files))}); refused")
    dcpl = ds.id.get_create_plist()
    for i in range(dcpl.get_nfilters()):
        code = dcpl.get_filter(i)[0]
        if code not in _H5_FILTERS:
            raise WeightsError(f"{path}: {full} uses HDF5 filter {code}, not one of the standard "
                               f"filters ({', '.join(_H5_FILTERS.values())}); refused")


def _check_hdf5_stored(path, key, ds, h5py):
    """Refuse a dataset whose data are not stored (reading it would give fill values)."""
    nbytes = math.prod(ds.shape or ()) * ds.dtype.itemsize
    layout = ds.id.get_create_plist().get_layout()
    if nbytes == 0 or layout == h5py.h5d.COMPACT:
        return
    if layout == h5py.h5d.CHUNKED:
        want = math.prod(-(-n // c) for n, c in zip(ds.shape, ds.chunks))
        have = ds.id.get_num_chunks()
    else:
        want, have = nbytes, ds.id.get_storage_size()
    if have < want:
        raise WeightsError(f"{path}: {key!r} (shape {ds.shape}) has no stored data for part of it "
                           "(unallocated: it would read as fill values); refused")


def _h5_attr(path, obj, name):
    """Attribute ``name`` of ``obj`` (None if absent), its size checked before reading."""
    if name not in obj.attrs:
        return None
    aid = obj.attrs.get_id(name)
    size = math.prod(aid.shape or ()) * aid.dtype.itemsize
    if size > _H5_MAX_ATTR_BYTES:
        raise WeightsError(f"{path}: attribute {name!r} of {obj.name} holds {size:,} bytes, more "
                           f"than {_H5_MAX_ATTR_BYTES:,}; refused")
    return obj.attrs[name]


def _read_keras(path, f, h5py):
    """The entries of an open, checked HDF5 file (shapes only; data read later)."""
    if "model_weights" in f:
        root, where = f["model_weights"], "the 'model_weights' group (a saved model)"
        config = _h5_attr(path, f, "model_config")
        if config is not None and '"channels_first"' in _decode(config):
            raise WeightsError(f"{path}: a channels_first Keras model; only channels_last "
                               "(NHWC, Keras' default) is supported")
    else:
        root, where = f, "top-level layer groups (a weights-only file)"
    if "layers" in root and not any(k in root for k in _KERAS_LAYERS):
        raise WeightsError(f"{path}: a Keras 3 '.weights.h5' file; save the weights "
                           "in the legacy .h5 format (model.save_weights('w.h5'))")
    names = _h5_attr(path, root, "layer_names")
    names = [_decode(n) for n in names] if names is not None else list(root.keys())
    entries, unmapped = {}, []
    for lname in names:
        if lname not in root or not isinstance(root[lname], h5py.Group):
            continue
        group = root[lname]
        wnames = _h5_attr(path, group, "weight_names")
        if wnames is not None:
            dsets = [_decode(w) for w in wnames]
        else:
            dsets = []
            group.visititems(lambda n, o: dsets.append(n) if isinstance(o, h5py.Dataset) else None)
        for dname in dsets:
            key = f"{lname}/{dname}"
            if dname not in group or not isinstance(group[dname], h5py.Dataset):
                raise WeightsError(f"{path}: layer {lname!r} lists weight {dname!r}, "
                                   "which is not in the file")
            leaf = dname.rsplit("/", 1)[-1].split(":")[0]
            # the layer's own group, or a nested model's group holding "<layer>/kernel:0"
            layer = _KERAS_LAYERS.get(lname) or _KERAS_LAYERS.get(dname.split("/")[0])
            pname = {"kernel": "weight", "bias": "bias"}.get(leaf)
            if layer is None or pname is None or f"{layer}.{pname}" in entries:
                unmapped.append(key)
                continue
            ds = group[dname]
            if ds.dtype.kind not in "fiub":
                raise WeightsError(f"{path}: {key!r} has non-numeric dtype {ds.dtype}")

            entries[f"{layer}.{pname}"] = _Entry(
                key, tuple(ds.shape), ds.dtype, lambda ds=ds: np.asarray(ds[()]),
                functools.partial(_check_hdf5_stored, path, key, ds, h5py))
    missing = [f"{n} (Keras {next(k for k, v in _KERAS_LAYERS.items() if v == n.split('.')[0])}"
               f"/{'kernel' if n.endswith('weight') else 'bias'})"
               for n in VGG16_PARAMS if n not in entries]
    _refuse_partial(path, "the Keras file", unmapped, missing)
    return _Source("keras", "tf", entries, notes=[f"Keras weights from {where}"])


def _sniff(path):
    """The source format of a file, from its content."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except IsADirectoryError:
        raise WeightsError(f"{path}: a directory, not a weights file") from None
    if not head:
        raise WeightsError(f"{path}: empty file")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as exc:
            raise WeightsError(f"{path}: truncated or corrupt zip archive ({exc})") from None
        if any(re.fullmatch(r"[^/]+/data\.pkl", n) for n in names):
            return "torch"
        if names and all(n.endswith(".npy") for n in names):
            return _npz_layout(path, [n[:-4] for n in names if n != "__architecture__.npy"])
        raise WeightsError(f"{path}: a zip archive that is neither an .npz file nor a PyTorch "
                           "checkpoint")
    if head[:1] == b"\x80":
        return "torch"
    from .onnxfile import sniff
    if sniff(path):
        return "onnx"
    raise WeightsError(f"{path}: unrecognised weights file (expected a randvis or paper .npz, "
                       "a PyTorch .pth, a Keras .h5 or an ONNX model)")


@contextlib.contextmanager
def _open_source(path, format=None):
    """The source's entries, with the file kept open while they are read."""
    _checks.one_of(format, "format", FORMATS, allow_none=True)
    fmt = _sniff(path) if format is None else format
    if fmt in ("randvis", "paper"):
        try:
            with NpzReader(path) as npz:
                yield _read_npz(path, npz, fmt if format is not None else None)
        except NpzError as exc:
            raise WeightsError(str(exc)) from None
    elif fmt == "torch":
        yield _read_torch(path)
    elif fmt == "onnx":
        raise WeightsError(f"{path}: an ONNX model, not VGG-16 weights: convert it with randvis "
                           "convert (randvis.weights.convert) and load the result with "
                           "Sequential.load")
    else:
        h5py = _import_h5py()
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise WeightsError(f"{path}: not a readable HDF5 file ({exc})") from None
        with f:
            _check_hdf5_file(path, f, h5py)
            yield _read_keras(path, f, h5py)


# ---------------------------------------------------------------------------
# checking shapes and reading the tensors
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportRow:
    """One tensor of a conversion: source key and shape -> randvis name and shape."""

    source: str
    source_shape: tuple
    target: str
    shape: tuple
    transform: str


def _assemble(path, src, dtype, n_classes=None):
    """Check every tensor of ``src`` from its shape and dtype, then read them; return
    randvis-layout params, dims and report rows."""
    order = src.order

    def fail(name, msg):
        raise WeightsError(f"{path}: {src.entries[name].key!r} {msg}")

    for name in VGG16_PARAMS:
        e = src.entries[name]
        kind = _kind(name)
        if e.dtype.kind != "f":
            fail(name, f"has dtype {e.dtype}, expected floating-point weights")
        nd = {"conv": 4, "dense": 2, "bias": 1}[kind]
        if len(e.shape) != nd:
            fail(name, f"has shape {e.shape}, expected a {nd}-d array {_DESC[order, kind]}")

    def io(name):  # (in, out) of a weight
        s = src.entries[name].shape
        if _kind(name) == "conv":
            return (s[1], s[0]) if order == "torch" else (s[2], s[3])
        return (s[1], s[0]) if order == "torch" else (s[0], s[1])

    c = io("conv1_1.weight")[0]
    widths = [io(f"conv{b}_1.weight")[1] for b in range(1, 6)]
    fc_in, fc_width = io("fc6.weight")
    k = io("fc8.weight")[1]
    w5 = widths[-1]
    if src.input_shape is not None:
        if src.input_shape[0] != c or src.input_shape[1] % 32 or src.input_shape[2] % 32:
            raise WeightsError(f"{path}: input_shape {src.input_shape} does not fit VGG-16 with "
                               f"{c} input channels (h and w must be multiples of 32)")
        hw5 = (src.input_shape[1] // 32, src.input_shape[2] // 32)
    else:
        side = math.isqrt(fc_in // w5) if fc_in >= w5 else 0
        if side < 1 or side * side * w5 != fc_in:
            fail("fc6.weight", f"has {fc_in} input features: not {w5} (conv5_3's width) x s x s "
                 "for a whole s, so the input size cannot be inferred")
        hw5 = (side, side)
    if n_classes is not None and k != n_classes:
        fail("fc8.weight", f"has shape {src.entries['fc8.weight'].shape}, expected "
             f"{_src_shape(order, 'dense', (n_classes, fc_width))} {_DESC[order, 'dense']} "
             f"for n_classes={n_classes}")
    expected, cin, i = {}, c, 0
    for b, block in enumerate(VGG16_BLOCKS):
        for _ in block:
            expected[f"{_CONVS[i]}.weight"] = (widths[b], cin, 3, 3)
            expected[f"{_CONVS[i]}.bias"] = (widths[b],)
            cin, i = widths[b], i + 1
    for layer, (o, n_in) in zip(_FCS, [(fc_width, w5 * hw5[0] * hw5[1]), (fc_width, fc_width),
                                      (k, fc_width)]):
        expected[f"{layer}.weight"], expected[f"{layer}.bias"] = (o, n_in), (o,)
    for name in VGG16_PARAMS:
        kind, shape = _kind(name), src.entries[name].shape
        want = _src_shape(order, kind, expected[name])
        if shape != want:
            fail(name, f"has shape {shape}, expected {want} {_DESC[order, kind]}")
    for name in VGG16_PARAMS:
        if src.entries[name].check is not None:
            src.entries[name].check()
    # every shape is now VGG-16's; the arrays as read and as converted must fit in memory
    n_bytes = sum(math.prod(src.entries[n].shape) * (src.entries[n].dtype.itemsize + dtype.itemsize)
                  for n in VGG16_PARAMS)
    check_memory(n_bytes, f"{path}: VGG-16 with widths {widths}, fc_width {fc_width} and "
                 f"{k} classes (read and converted)")
    params, rows = {}, []
    for name in VGG16_PARAMS:
        key, kind = src.entries[name].key, _kind(name)
        a = src.entries[name].read()
        if a.shape != src.entries[name].shape:
            fail(name, f"read with shape {a.shape}, its header says {src.entries[name].shape}")
        if not np.isfinite(a).all():
            fail(name, "contains NaN or Inf")
        how = "as is"
        if order == "tf" and kind == "conv":
            a, how = a.transpose(3, 2, 0, 1), "transposed (kh, kw, in, out) -> (out, in, kh, kw)"
        elif order == "tf" and name == "fc6.weight":
            a = a.reshape(hw5[0], hw5[1], w5, fc_width).transpose(3, 2, 0, 1).reshape(fc_width, -1)
            how = "transposed (in, out) -> (out, in), inputs (h, w, c) -> (c, h, w)"
        elif order == "tf" and kind == "dense":
            a, how = a.T, "transposed (in, out) -> (out, in)"
        if a.dtype != dtype:
            how += f", {a.dtype} -> {np.dtype(dtype)}"
        params[name] = np.ascontiguousarray(a, dtype=dtype)
        rows.append(ReportRow(key, tuple(src.entries[name].shape), name, expected[name], how))
    dims = {"input_shape": (c, 32 * hw5[0], 32 * hw5[1]), "widths": widths, "fc_width": fc_width,
            "n_classes": k}
    return params, dims, rows


@dataclass(frozen=True)
class VGG16Weights:
    """VGG-16's parameters as read from a file, with the network's dimensions.

    What :func:`read_vgg16` returns and :func:`randvis.models.vgg16` builds
    the network from (``vgg16(weights=...)``).

    Attributes
    ----------
    params : dict of str to ndarray
        The 32 tensors of :data:`VGG16_PARAMS`, in network order and in
        randvis' layout: convolutions ``(out, in, kh, kw)``, dense weights
        ``(out, in)``, fc6's columns in ``(c, h, w)`` order; C-contiguous, in
        the requested dtype.
    input_shape : (c, h, w)
    widths : list of 5 int
        The blocks' convolution widths.
    fc_width, n_classes : int
    pool_type : "max" or "avg"
    info : dict
        Provenance: ``layout``, ``path``, ``sha256`` (plus ``converted_from``
        for files written by :func:`convert`).
    rows : list of ReportRow
        Source tensor -> randvis parameter, with the transform applied.
    notes : list of str
        How the source was read (serialisation, unwrapping, where the input
        size came from).
    """

    params: dict = field(repr=False)
    input_shape: tuple
    widths: list
    fc_width: int
    n_classes: int
    pool_type: str
    info: dict
    rows: list = field(repr=False)
    notes: list = field(repr=False)


def _read(path, format, dtype, n_classes, info):
    """Read and check ``path``: VGG16Weights with ``info(source)`` as provenance."""
    dtype = _checks.float_dtype(dtype)
    if n_classes is not None:
        _checks.positive_int(n_classes, "n_classes")
    with _open_source(path, format) as src:
        params, dims, rows = _assemble(path, src, dtype, n_classes)
    notes = list(src.notes)
    if src.input_shape is None:
        notes.append(f"input_shape {dims['input_shape']} inferred from fc6's "
                     f"{rows[VGG16_PARAMS.index('fc6.weight')].shape[1]} input features")
    return VGG16Weights(params, tuple(dims["input_shape"]), list(dims["widths"]), dims["fc_width"],
                        dims["n_classes"], src.pool_type, info(src), rows, notes)


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------

def read_vgg16(path, dtype=np.float32, sha256=None, n_classes=None, format=None):
    """Read trained VGG-16 weights: randvis-named arrays and the network's dimensions.

    The layout is detected from the file: randvis' own ``.npz`` (what
    :meth:`Sequential.save` writes, or just the parameter names), the paper's
    ``vgg16_weights.npz``, a PyTorch state_dict or Keras ``.h5``. Widths,
    ``fc_width``, ``n_classes`` and the input size come from the weights'
    shapes. Every key, shape and dtype is checked before any tensor is read.

    Parameters
    ----------
    path : str or os.PathLike
    dtype : float32 or float64
        The arrays' dtype.
    sha256 : str, optional
        Expected SHA-256 of the file (hex); a mismatch raises before anything is read.
    n_classes : int, optional
        Expected number of classes: a file with another fc8 size raises.
    format : {"randvis", "paper", "torch", "keras"}, optional
        Skip the detection.

    Returns
    -------
    VGG16Weights
        ``params``, ``input_shape``, ``widths``, ``fc_width``, ``n_classes``,
        ``pool_type``; ``info`` is ``{"layout", "path", "sha256"}`` (plus
        ``"converted_from"`` for files written by :func:`convert`).

    Raises
    ------
    WeightsError
        Missing or unexpected keys, a wrong shape or dtype (naming the key and
        the expected shape), an object array, NaN/Inf, a sha256 mismatch.

    Examples
    --------
    >>> import os, tempfile, randvis
    >>> net = randvis.vgg16(n_classes=10, input_shape=(3, 64, 64), widths=(4, 4, 8, 8, 8),
    ...                     fc_width=16, rng=0)
    >>> path = save_vgg16_paper_npz(net, os.path.join(tempfile.mkdtemp(), "vgg16_weights.npz"))
    >>> w = read_vgg16(path)
    >>> w.info["layout"], w.input_shape, w.widths, w.fc_width, w.n_classes
    ('paper', (3, 64, 64), [4, 4, 8, 8, 8], 16, 10)
    >>> w.params["fc6.weight"].shape        # (out, in), in randvis' (c, h, w) input order
    (16, 32)
    """
    path = os.fspath(path)
    digest = file_sha256(path)
    if sha256 is not None:
        want = str(sha256).strip().lower()
        want = want[len("sha256:"):] if want.startswith("sha256:") else want
        if want != digest:
            raise WeightsError(f"{path}: sha256 mismatch: expected {want}, the file has {digest}")

    def info(src):
        out = {"layout": src.fmt, "path": os.path.abspath(path), "sha256": digest}
        if src.provenance:
            out["converted_from"] = src.provenance
        return out

    return _read(path, format, dtype, n_classes, info)


def load_vgg16(path, dtype=np.float32, sha256=None, n_classes=None, format=None):
    """Load trained VGG-16 weights into a randvis network.

    :func:`read_vgg16`, then :func:`randvis.models.vgg16` with the weights read.

    Parameters
    ----------
    path, dtype, sha256, n_classes, format
        As for :func:`read_vgg16`: the file, the parameters' dtype, the
        file's expected SHA-256, the expected number of classes, the layout.

    Returns
    -------
    Sequential
        ``net.info["weights"]`` is ``{"layout", "path", "sha256"}`` (plus
        ``"converted_from"`` for files written by :func:`convert`).

    Raises
    ------
    WeightsError
        As :func:`read_vgg16`.

    Examples
    --------
    >>> import os, tempfile, numpy as np, randvis
    >>> net = randvis.vgg16(n_classes=10, input_shape=(3, 64, 64), widths=(4, 4, 8, 8, 8),
    ...                     fc_width=16, rng=0)
    >>> loaded = load_vgg16(save_vgg16_paper_npz(net, os.path.join(tempfile.mkdtemp(), "w.npz")))
    >>> loaded.info["weights"]["layout"], loaded.input_shape, loaded.n_classes
    ('paper', (3, 64, 64), 10)
    >>> x = np.random.default_rng(0).random((1, 3, 64, 64))
    >>> bool(np.array_equal(loaded.predict(x), net.predict(x)))
    True
    """
    w = read_vgg16(path, dtype=dtype, sha256=sha256, n_classes=n_classes, format=format)
    return vgg16(n_classes=None, dtype=dtype, weights=w)


def save_vgg16_paper_npz(net, path):
    """Write a VGG-16 in the paper's ``vgg16_weights.npz`` layout.

    Keys ``conv1_1_W``, ``conv1_1_b``, ..., ``fc8_b``; kernels
    ``(kh, kw, in, out)``, dense weights ``(in, out)``, fc6's rows in the
    ``(h, w, c)`` order of an NHWC flatten. :func:`load_vgg16` reads it back
    to the identical network. The write is atomic.

    Parameters
    ----------
    net : Sequential
        A VGG-16 as :func:`randvis.vgg16` or :func:`load_vgg16` build it.
    path : str or os.PathLike
        ``.npz`` is appended if missing.

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> import os, tempfile, numpy as np, randvis
    >>> net = randvis.vgg16(n_classes=10, input_shape=(3, 32, 32), widths=(4, 4, 8, 8, 8),
    ...                     fc_width=16, rng=0)
    >>> path = save_vgg16_paper_npz(net, os.path.join(tempfile.mkdtemp(), "w.npz"))
    >>> with np.load(path) as f:
    ...     f["conv1_1_W"].shape, f["fc6_W"].shape
    ((3, 3, 3, 4), (8, 16))
    """
    params = net.parameters()
    missing = [n for n in VGG16_PARAMS if n not in params]
    extra = [n for n in params if n not in VGG16_PARAMS]
    if missing or extra:
        raise ValueError(f"not a VGG-16 network: missing parameters {missing}, others {extra}")
    names = [layer.name for layer in net.layers]
    if "flatten" not in names:
        raise ValueError("not a VGG-16 network: no 'flatten' layer")
    c5, h5, w5 = net.shapes[names.index("flatten")]
    out = {}
    for name in VGG16_PARAMS:
        a = params[name]
        kind = _kind(name)
        if kind == "conv":
            a = a.transpose(2, 3, 1, 0)
        elif name == "fc6.weight":
            a = a.reshape(-1, c5, h5, w5).transpose(2, 3, 1, 0).reshape(h5 * w5 * c5, -1)
        elif kind == "dense":
            a = a.T
        out[_paper_key(name)] = np.ascontiguousarray(a)
    return atomic_savez(path, out)


@dataclass
class _Report:
    """The fields every conversion report has: the files, the source format, the
    tensor rows (:class:`ReportRow`), notes and the network's input shape."""

    src: str
    dst: str
    format: str
    rows: list
    notes: list
    input_shape: tuple

    def _head(self):
        return [f"{self.src} ({self.format}) -> {self.dst}"] + [f"  note: {n}" for n in self.notes]


@dataclass
class ConversionReport(_Report):
    """What :func:`convert` did, tensor by tensor.

    Attributes
    ----------
    src, dst : str
        The file read and the ``.npz`` written.
    format : str
        The source format (one of :data:`FORMATS`).
    rows : list of ReportRow
        One per VGG-16 parameter, in network order: ``source`` key and
        ``source_shape`` -> randvis ``target`` name and ``shape``, and the
        ``transform`` applied.
    notes : list of str
        How the source was read (serialisation, unwrapping, inferred input size).
    input_shape, widths, fc_width, n_classes
        The network's shape, as read off the weights.
    sha256 : str
        SHA-256 of the written file (for ``load_vgg16(dst, sha256=...)``).
    """

    widths: list
    fc_width: int
    n_classes: int
    sha256: str = ""

    @property
    def mapping(self):
        """``{source key: randvis name}``."""
        return {r.source: r.target for r in self.rows}

    def __str__(self):
        lines = self._head()
        width = max(len(r.source) for r in self.rows)
        layer = None
        for r in self.rows:
            this = r.target.split(".")[0]
            if this != layer:
                lines.append(f"{this}:")
                layer = this
            lines.append(f"  {r.source:<{width}} {str(r.source_shape):<18} -> {r.target:<15} "
                         f"{str(r.shape):<18} {r.transform}")
        n = sum(int(np.prod(r.shape)) for r in self.rows)
        lines.append(f"{len(self.rows)} tensors, {n:,d} parameters; input_shape "
                     f"{self.input_shape}, widths {self.widths}, fc_width {self.fc_width}, "
                     f"n_classes {self.n_classes}")
        return "\n".join(lines)


def _check_destination(src, dst):
    """Refuse an output path that is a directory or the source file itself."""
    out = dst if dst.endswith(".npz") else dst + ".npz"
    for path in dict.fromkeys([dst, out]):
        if os.path.isdir(path):
            raise ValueError(f"output {path!r} is a directory; give the .npz file to write, "
                             f"e.g. {os.path.join(path, 'vgg16.npz')!r}")
    same = os.path.realpath(src) == os.path.realpath(out)
    if not same and os.path.exists(out) and os.path.exists(src):
        same = os.path.samefile(src, out)
    if same:
        raise ValueError(f"output {out!r} is the source file {src!r}; convert never overwrites its "
                         "input: choose another output path")


def convert(src, dst, format=None, *, dtype=np.float32):
    """Convert VGG-16 weights to randvis' ``.npz`` layout (written atomically).

    Parameters
    ----------
    src : str or os.PathLike
        A PyTorch state_dict (torchvision's ``vgg16-397923af.pth`` keys, zip or
        legacy serialisation), the paper's ``vgg16_weights.npz``, Keras'
        VGG-16 ``.h5`` (weights-only or saved model), or a randvis ``.npz``;
        or an ONNX model of any VGG-style chain, mapped by
        :func:`randvis.onnxfile.convert` (needs the ``onnx`` package).
    dst : str or os.PathLike
        The ``.npz`` to write (``.npz`` appended if missing); load it with
        :func:`load_vgg16` or :meth:`Sequential.load` (an ONNX model's: with
        :meth:`Sequential.load`).
    format : {"torch", "paper", "keras", "randvis", "onnx"}, optional
        Skip the detection from the file's content.
    dtype : float32 or float64

    Returns
    -------
    ConversionReport
        (:class:`randvis.onnxfile.OnnxConversionReport` for an ONNX model)
        Tensor by tensor: source key(s) -> randvis name and shape; ``str()``
        gives a table.

    Raises
    ------
    WeightsError
        The source does not match VGG-16 exactly: unmapped source tensors or
        VGG-16 parameters without a source (all listed), or a wrong shape.
    ValueError
        ``dst`` is the source file itself (also through a symbolic or hard
        link), or a directory; nothing is read or written.

    Examples
    --------
    >>> import os, tempfile, numpy as np, randvis
    >>> net = randvis.vgg16(n_classes=10, input_shape=(3, 32, 32), widths=(4, 4, 8, 8, 8),
    ...                     fc_width=16, rng=0)
    >>> folder = tempfile.mkdtemp()
    >>> src = save_vgg16_paper_npz(net, os.path.join(folder, "vgg16_weights.npz"))
    >>> report = convert(src, os.path.join(folder, "vgg16.npz"))
    >>> report.format, report.mapping["conv1_1_W"], report.rows[0].source_shape, report.rows[0].shape
    ('paper', 'conv1_1.weight', (3, 3, 3, 4), (4, 3, 3, 3))
    >>> report.rows[0].transform
    'transposed (kh, kw, in, out) -> (out, in, kh, kw)'
    >>> bool(np.array_equal(load_vgg16(report.dst)["fc6.weight"], net["fc6.weight"]))
    True
    """
    src_path = os.fspath(src)
    _check_destination(src_path, os.fspath(dst))
    _checks.one_of(format, "format", FORMATS + ("onnx",), allow_none=True)
    if (format or _sniff(src_path)) == "onnx":
        from .onnxfile import convert as convert_onnx
        return convert_onnx(src_path, dst, dtype=dtype)
    w = _read(src_path, format, dtype, None, lambda source: {
        "layout": source.fmt, "path": os.path.abspath(src_path), "sha256": file_sha256(src_path)})
    out = vgg16(n_classes=None, dtype=dtype, weights=w).save(dst)
    return ConversionReport(src_path, out, w.info["layout"], w.rows, w.notes, w.input_shape,
                            w.widths, w.fc_width, w.n_classes, file_sha256(out))
