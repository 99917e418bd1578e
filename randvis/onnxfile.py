"""ONNX models -> randvis networks, read with the ``onnx`` package (imported only here).

:func:`load_onnx` maps the graph of a VGG-style ONNX export (tf2onnx or
torch.onnx) to a :class:`~randvis.network.Sequential`; :func:`convert`
writes that network in randvis' own ``.npz`` format (what
:meth:`Sequential.save <randvis.network.Sequential.save>` writes), so that
loading it needs neither ``onnx`` nor ``onnxruntime``.

The graph must be a chain (every computed value feeds one operation; shape
plumbing aside). What is mapped, and how:

===============================  ================================================
ONNX operations                  randvis
===============================  ================================================
``Conv`` (group 1, dilation 1)   :class:`~randvis.layers.Conv2d`, pads as given
``Relu``                         :class:`~randvis.layers.ReLU`
``MaxPool``, ``AveragePool``     :class:`~randvis.layers.MaxPool2d`, ``AvgPool2d``
``GlobalAveragePool``            ``AvgPool2d`` over the whole plane
``Transpose``                    an axis order carried along: Transposes before
                                 the first layer give the input layout (tf2onnx:
                                 NHWC); after the convolutions they set the
                                 order of the flattened features
``Flatten``, ``Reshape``         :class:`~randvis.layers.Flatten`; the next dense
                                 layer's columns are permuted from the graph's
                                 flatten order to randvis' ``(c, h, w)`` order
``MatMul``, ``Gemm``             :class:`~randvis.layers.Dense`
``Add``, ``Sub``, ``Mul``,       a per-feature affine map ``a * h + b`` with
``Div`` by a constant            constant ``a``, ``b`` (a bias, an exported
                                 batch norm): folded exactly into the linear
                                 layer before it when nothing lies between,
                                 else into the next dense layer:
                                 ``W (a * h + b) + c = (W diag(a)) h + (W b + c)``
``Softmax`` (last operation)     dropped: the network returns logits
``Identity``, ``Dropout``        nothing
``Shape``, ``Gather``,           evaluated on constants (the shape arithmetic
``Cast``, ``Slice``,             tf2onnx writes before a ``Reshape``)
``Concat``, ``Unsqueeze``,
``Squeeze``, ``Constant``
===============================  ================================================

Any other operation is refused with a one-line :class:`OnnxError` naming the
operation and the node. Before any tensor's data are read, tensors stored
outside the model file (``data_location`` EXTERNAL, ``external_data``
entries: a crafted file could name any local path) are refused, every
initializer's declared size is compared with the bytes it stores, and the
memory needed is checked against :mod:`randvis.limits`. A truncated file is
reported from the protobuf framing before it is parsed.

Examples
--------
A two-layer model in the torch.onnx style, built with ``onnx.helper``:

>>> import os, tempfile, numpy as np
>>> from onnx import TensorProto, helper, numpy_helper
>>> rng = np.random.default_rng(0)
>>> w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
>>> v = numpy_helper.from_array(rng.normal(size=(2, 4 * 4 * 4)).astype(np.float32), "v")
>>> graph = helper.make_graph(
...     [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
...      helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
...      helper.make_node("Gemm", ["f", "v"], ["y"], transB=1, name="fc")], "tiny",
...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 4, 4])],
...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])], [w, v])
>>> path = os.path.join(tempfile.mkdtemp(), "tiny.onnx")
>>> with open(path, "wb") as fh:
...     _ = fh.write(helper.make_model(graph).SerializeToString())
>>> net = load_onnx(path)
>>> [layer.name for layer in net.layers], net.input_shape, net.n_classes
(['conv1_1', 'relu1_1', 'flatten', 'fc1'], (3, 4, 4), 2)
>>> report = convert(path, os.path.join(os.path.dirname(path), "tiny.npz"))
>>> report.mapping["w"], report.n_classes
('conv1_1.weight', 2)
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from . import _checks
from ._io import file_sha256
from .limits import check_memory
from .network import Sequential
from .onnxgraph import SUPPORTED_OPS, OnnxError, map_model
from .weights import _check_destination, _Report

__all__ = ["OnnxError", "sniff", "load_onnx", "convert", "OnnxConversionReport", "SUPPORTED_OPS"]


# ---------------------------------------------------------------------------
# the file: protobuf framing, parsing, tensors stored elsewhere
# ---------------------------------------------------------------------------

#: ModelProto's top-level fields -> protobuf wire type (0 varint, 2 length-delimited)
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_FIELD_NAMES = {1: "ir_version", 7: "graph", 8: "opset_import"}
#: most top-level fields scanned (opset imports, metadata, functions)
_MAX_FIELDS = 100_000


def _varint(fh):
    value, shift = 0, 0
    while True:
        b = fh.read(1)
        if not b:
            return None
        value |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            return None


def _scan(path):
    """Top-level fields of a ModelProto as ``[(number, offset, length)]`` and the
    first field that runs past the end of the file (or None); None when the bytes
    are not a ModelProto's framing."""
    size = os.path.getsize(path)
    fields, cut = [], None
    with open(path, "rb") as fh:
        while fh.tell() < size and len(fields) < _MAX_FIELDS:
            key = _varint(fh)
            if key is None or _MODEL_FIELDS.get(key >> 3) != (key & 7):
                return None, None
            start = fh.tell()
            n = _varint(fh)
            if n is None:
                return (fields, (key >> 3, start, 0)) if fields else (None, None)
            if key & 7 == 2:
                offset = fh.tell()
                if offset + n > size:
                    return fields, (key >> 3, offset, n)
                fh.seek(n, os.SEEK_CUR)
                fields.append((key >> 3, offset, n))
            else:
                fields.append((key >> 3, start, 0))
    return fields, cut


def sniff(path):
    """Whether ``path`` holds an ONNX model (a ModelProto with ``ir_version``
    and a ``graph``, or a truncated one), judged from the protobuf framing of its
    top-level fields without the ``onnx`` package and without reading the tensors.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.bin")
    >>> with open(path, "wb") as fh:
    ...     _ = fh.write(bytes([0x08, 0x07, 0x3A, 0x00]))   # ir_version 7, an empty graph
    >>> sniff(path)
    True
    >>> with open(path, "wb") as fh:
    ...     _ = fh.write(b"PK\\x03\\x04 not a model")
    >>> sniff(path)
    False
    """
    try:
        fields, cut = _scan(os.fspath(path))
    except OSError:
        return False
    if fields is None:
        return False
    numbers = {f[0] for f in fields}
    return 1 in numbers and (7 in numbers or cut is not None)


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("reading ONNX models needs the onnx package: pip install onnx "
                          "(or pip install 'randvis[vgg]')") from None
    return onnx


def _parse(path):
    """The file's ModelProto, its framing and size checked before it is parsed."""
    size = os.path.getsize(path)
    if size == 0:
        raise OnnxError(f"{path}: empty file")
    fields, cut = _scan(path)
    if fields is None:
        raise OnnxError(f"{path}: not an ONNX model (its bytes are not a ModelProto's framing)")
    if cut is not None:
        name = _FIELD_NAMES.get(cut[0], f"field {cut[0]}")
        raise OnnxError(f"{path}: truncated ONNX file: {name} needs {cut[2]:,} bytes from offset "
                        f"{cut[1]:,}, the file ends at {size:,}")
    if 7 not in {f[0] for f in fields}:
        raise OnnxError(f"{path}: an ONNX model without a graph")
    check_memory(2 * size, f"{path}: parsing the {size:,}-byte ONNX model")
    onnx = _import_onnx()
    try:
        return onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise OnnxError(f"{path}: not a readable ONNX model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no details'})") from None


def _tensors(graph, where="graph"):
    """Every TensorProto of a graph (initializers, Constant values, node
    attributes, subgraphs') as ``(description, tensor)``."""
    for t in graph.initializer:
        yield f"initializer {t.name!r}", t
    for t in graph.sparse_initializer:
        yield f"sparse initializer {t.values.name!r}", t.values
        yield f"sparse initializer {t.values.name!r} (indices)", t.indices
    for node in graph.node:
        for a in node.attribute:
            what = f"attribute {a.name!r} of node {node.name!r} ({node.op_type})"
            if a.HasField("t"):
                yield what, a.t
            for t in a.tensors:
                yield what, t
            if a.HasField("sparse_tensor"):
                yield what, a.sparse_tensor.values
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _tensors(g, f"{what}'s subgraph")


def _refuse_external(path, model):
    """Refuse, before any tensor data are read, a tensor whose data would come from
    another file."""
    onnx = _import_onnx()
    for what, t in _tensors(model.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
            where = {e.key: e.value for e in t.external_data}.get("location", "an unnamed file")
            raise OnnxError(f"{path}: {what} stores its data outside the model file (in "
                            f"{where!r}); refused: tensors are read only from the file itself")


_ITEMSIZE = {1: 4, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8}
_TYPED_FIELD = {1: "float_data", 11: "double_data", 7: "int64_data", 13: "uint64_data",
                12: "uint64_data", 2: "int32_data", 3: "int32_data", 5: "int32_data",
                6: "int32_data", 9: "int32_data", 10: "int32_data"}


def _declared_size(path, what, t):
    """Bytes a tensor declares (its dims x its type's size), checked against what it stores."""
    dims = tuple(t.dims)
    if any(d < 0 for d in dims):
        raise OnnxError(f"{path}: {what} has negative dimensions {dims}")
    if t.data_type not in _ITEMSIZE:
        raise OnnxError(f"{path}: {what} has ONNX data type {t.data_type}, not a number type "
                        "randvis reads")
    n = math.prod(dims)
    if t.raw_data:
        stored = len(t.raw_data) // _ITEMSIZE[t.data_type]
        unit = len(t.raw_data) % _ITEMSIZE[t.data_type]
    else:
        stored, unit = len(getattr(t, _TYPED_FIELD[t.data_type])), 0
    if stored != n or unit:
        raise OnnxError(f"{path}: {what} declares shape {dims} ({n:,} values) but stores "
                        f"{stored:,}; refused")
    return n * _ITEMSIZE[t.data_type]


@dataclass(frozen=True)
class _Mapped:
    net: Sequential
    rows: list
    notes: list


def _read(path, dtype):
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OnnxError(f"{path}: a directory, not an ONNX file")
    model = _parse(path)
    _refuse_external(path, model)
    nbytes = 0
    for what, t in _tensors(model.graph):
        nbytes += _declared_size(path, what, t)
    # read once, converted to float64 while mapping, kept in dtype
    check_memory(nbytes * (1 + 8 // 4 + np.dtype(dtype).itemsize // 4),
                 f"{path}: {nbytes:,} bytes of tensors (read, mapped and converted)")
    mapped = map_model(model, path, dtype)
    producer = f"{model.producer_name} {model.producer_version}".strip()
    info = {"builder": "onnx", "weights": {"layout": "onnx", "path": os.path.abspath(path),
                                           "sha256": file_sha256(path), "producer": producer,
                                           "input_layout": mapped.input_layout, "logits": True}}
    try:
        net = Sequential(mapped.layers, mapped.input_shape, dtype, info)
    except ValueError as exc:
        raise OnnxError(f"{path}: the mapped layers do not fit together ({exc})") from None
    return _Mapped(net, mapped.rows, [f"ONNX model from {producer or 'an unnamed producer'}, opset "
                                      f"{mapped.opset}"] + mapped.notes)


def load_onnx(path, dtype=np.float32, sha256=None):
    """Map an ONNX model to a randvis network (needs the ``onnx`` package).

    Parameters
    ----------
    path : str or os.PathLike
    dtype : float32 or float64
        The parameters' dtype (folding and permuting are done in float64).
    sha256 : str, optional
        Expected SHA-256 of the file (hex); a mismatch raises before it is parsed.

    Returns
    -------
    Sequential
        Returns logits (a final Softmax is dropped). Layers are named like
        VGG-16's (``conv1_1`` ... ``pool5``, ``flatten``, ``fc6`` ...).
        ``net.info["weights"]`` holds ``layout`` ("onnx"), ``path``,
        ``sha256``, ``producer`` and ``input_layout`` (e.g. "NHWC": the ONNX
        input ``t`` is ``x.transpose(0, 2, 3, 1)`` of the network's input ``x``).

    Raises
    ------
    OnnxError
        A truncated or unreadable file, tensors stored outside it, an
        initializer whose data do not match its declared shape, an operation
        that cannot be mapped, a missing initializer, a weight whose shape does
        not fit the graph: one line naming the node or tensor.
    ImportError
        The ``onnx`` package is not installed.

    Examples
    --------
    See the module docstring.
    """
    dtype = _checks.float_dtype(dtype)
    path = os.fspath(path)
    if sha256 is not None:
        want = str(sha256).strip().lower().removeprefix("sha256:")
        have = file_sha256(path)
        if want != have:
            raise OnnxError(f"{path}: sha256 mismatch: expected {want}, the file has {have}")
    return _read(path, dtype).net


@dataclass
class OnnxConversionReport(_Report):
    """What :func:`convert` did: the ONNX tensors and the randvis parameters made of them.

    Attributes
    ----------
    src, dst : str
    format : str
        ``"onnx"``.
    rows : list of ReportRow
        Source tensor -> randvis parameter, with the transform (transposes,
        permuted columns, folded affine maps).
    notes : list of str
    input_shape : tuple
    n_classes : int
    layers : list of str
        The network's layer names.
    sha256 : str
        SHA-256 of the written file.
    """

    n_classes: int
    layers: list
    sha256: str = ""

    @property
    def mapping(self):
        """``{source tensor: randvis parameter}`` (the first parameter made of it)."""
        out = {}
        for r in self.rows:
            out.setdefault(r.source, r.target)
        return out

    def __str__(self):
        lines = self._head()
        width = max([len(r.source) for r in self.rows] + [1])
        for r in self.rows:
            lines.append(f"  {r.source:<{width}} {str(r.source_shape):<16} -> {r.target:<13} "
                         f"{str(r.shape):<16} {r.transform}")
        lines.append(f"{len(self.layers)} layers ({', '.join(self.layers)}); input_shape "
                     f"{self.input_shape}, n_classes {self.n_classes}")
        return "\n".join(lines)


def convert(src, dst, dtype=np.float32):
    """Convert an ONNX model to randvis' network ``.npz`` (written atomically).

    Load the result with :meth:`Sequential.load <randvis.network.Sequential.load>`
    (no ``onnx`` needed). ``randvis convert MODEL.onnx OUT.npz`` calls this.

    Parameters
    ----------
    src : str or os.PathLike
        The ``.onnx`` file.
    dst : str or os.PathLike
        The ``.npz`` to write (``.npz`` appended if missing).
    dtype : float32 or float64

    Returns
    -------
    OnnxConversionReport

    Raises
    ------
    OnnxError
        As :func:`load_onnx`.
    ValueError
        ``dst`` is the source itself or a directory (nothing is read or written).

    Examples
    --------
    See the module docstring.
    """
    dtype = _checks.float_dtype(dtype)
    src_path = os.fspath(src)
    _check_destination(src_path, os.fspath(dst))
    mapped = _read(src_path, dtype)
    out = mapped.net.save(dst)
    net = mapped.net
    return OnnxConversionReport(src_path, out, "onnx", mapped.rows, mapped.notes, net.input_shape,
                                net.n_classes, [layer.name for layer in net.layers],
                                file_sha256(out))
