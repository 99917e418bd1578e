"""The graph walk of :mod:`randvis.onnxfile`: an ONNX graph -> randvis layers.

:func:`map_model` walks the nodes of a parsed ``onnx.ModelProto`` in order and
returns the randvis layers they amount to (the table of operations is in
:mod:`randvis.onnxfile`, which checks the file before anything here runs).
Values are tracked symbolically: the network's computed value (its shape in
randvis' ``(c, h, w)`` order, the axis order the ONNX tensor holds it in, the
flatten order of a vector, a pending per-feature affine map) or a constant
(initializers and the shape arithmetic evaluated on them).

Examples
--------
>>> import numpy as np
>>> from onnx import TensorProto, helper, numpy_helper
>>> w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
>>> s = numpy_helper.from_array(np.full((1, 2, 1, 1), 3.0, np.float32), "s")
>>> graph = helper.make_graph(
...     [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
...      helper.make_node("Mul", ["c", "s"], ["m"], name="scale"),
...      helper.make_node("GlobalAveragePool", ["m"], ["p"]),
...      helper.make_node("Flatten", ["p"], ["y"])], "g",
...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w, s])
>>> mapped = map_model(helper.make_model(graph), "g.onnx", np.float64)
>>> [layer.name for layer in mapped.layers], mapped.input_shape, mapped.input_layout
(['conv1_1', 'pool1', 'flatten'], (3, 5, 5), 'NCHW')
>>> float(mapped.layers[0].weight[0, 0, 0, 0])     # the Mul folded into the convolution
3.0
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import kernels as K
from .layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from .weights import ReportRow, WeightsError

__all__ = ["map_model", "MappedGraph", "OnnxError", "SUPPORTED_OPS"]


class OnnxError(WeightsError):
    """An ONNX file randvis cannot read or map (the one-line message names the
    file, and the node, tensor or field at fault)."""


#: the operations :func:`load_onnx` maps (see the module docstring)
SUPPORTED_OPS = ("Conv", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Transpose",
                 "Flatten", "Reshape", "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Softmax",
                 "Identity", "Dropout", "Shape", "Gather", "Cast", "Slice", "Concat", "Unsqueeze",
                 "Squeeze", "Constant")


#: a batch size no real shape has: the shape arithmetic tells it from feature sizes
_BATCH = 1_000_003

@dataclass
class _Act:
    """A computed value of the chain: per-sample ``shape`` in randvis order
    ((c, h, w) or (f,)), ``perm`` (image: the logical axis n=0, c=1, h=2, w=3 held by
    each axis of the ONNX tensor), ``order`` (flat: randvis index of each ONNX
    feature, None for the same order), the layer it comes straight out of
    (``fresh``) and a pending affine map ``(a, b, nodes)`` in randvis order."""

    shape: tuple
    perm: tuple = (0, 1, 2, 3)
    order: object = None
    fresh: object = None
    affine: object = None
    final: bool = False

    @property
    def image(self):
        return len(self.shape) == 3

    def onnx_shape(self):
        """Per-sample shape as the ONNX tensor holds it (without the batch axis)."""
        if not self.image:
            return self.shape
        full = (_BATCH,) + self.shape
        return tuple(full[p] for p in self.perm[1:])


@dataclass
class _Layer:
    kind: str
    params: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)   # [source, source shape, param, transform]
    nodes: list = field(default_factory=list)


class _Mapper:
    """Walks the nodes in order, building ``self.layers``."""

    def __init__(self, path, model):
        self.path, self.model, g = path, model, model.graph
        self.inits = {t.name: t for t in g.initializer}
        self.opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")],
                         default=1)
        self.values, self.layers, self.notes = {}, [], []
        self.consumers = {}
        for node in g.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def fail(self, node, msg):
        raise OnnxError(f"{self.path}: node {node.name or '(unnamed)'!r} ({node.op_type}): {msg}")

    # ---- values ------------------------------------------------------
    def get(self, node, i):
        if i >= len(node.input) or not node.input[i]:
            return None
        name = node.input[i]
        if name in self.values:
            return self.values[name]
        if name in self.inits:
            from onnx import numpy_helper

            self.values[name] = numpy_helper.to_array(self.inits[name])
            return self.values[name]
        self.fail(node, f"reads {name!r}, which no initializer, graph input or earlier node "
                        "provides (a missing initializer?)")

    def const(self, node, i, what):
        v = self.get(node, i)
        if v is None or isinstance(v, _Act):
            self.fail(node, f"its {what} (input {i}) must be a constant")
        return v

    def act(self, node, i=0):
        v = self.get(node, i)
        if not isinstance(v, _Act):
            self.fail(node, f"input {i} must be the network's computed value, not a constant")
        if v.final:
            self.fail(node, "follows the Softmax: Softmax must be the network's last operation")
        return v

    def put(self, node, value, i=0):
        name = node.output[i]
        if isinstance(value, _Act):
            users = [n for n in self.consumers.get(name, []) if n.op_type != "Shape"]
            if len(users) > 1:
                self.fail(node, f"its output {name!r} feeds {len(users)} nodes "
                                f"({', '.join(repr(n.name) for n in users)}); only a chain of layers "
                                "can be mapped (no branches or residual connections)")
        self.values[name] = value

    def attrs(self, node):
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    # ---- the walk ----------------------------------------------------
    def run(self):
        g = self.model.graph
        inputs = [i for i in g.input if i.name not in self.inits]
        if len(inputs) != 1:
            raise OnnxError(f"{self.path}: the graph has {len(inputs)} inputs "
                            f"({', '.join(i.name for i in inputs)}); one image or vector is mapped")
        self.input = inputs[0]
        dims = self._dims(self.input, "input")
        lead = self._leading_transpose(g)
        if len(dims) == 4:
            self.input_perm = lead
            shape = tuple(dims[p] for p in lead[1:])
            letters = "".join("NCHW"[lead.index(j)] for j in range(4))
            shown = ", ".join(["n" if dims[0] == _BATCH else str(dims[0])] + [str(d) for d in dims[1:]])
            self.notes.append(f"input {self.input.name!r} is {letters} ({shown}); the network "
                              f"takes it as NCHW (n, {', '.join(map(str, shape))})")
        elif len(dims) == 2:
            self.input_perm, shape = (0, 1), (dims[1],)
        else:
            raise OnnxError(f"{self.path}: input {self.input.name!r} has {len(dims)} axes; an "
                            "image (4 axes) or a vector (2 axes) is mapped")
        if any(d < 1 for d in shape):
            raise OnnxError(f"{self.path}: input {self.input.name!r} needs fixed sizes, "
                            f"got {tuple(dims)}")
        self.input_shape = shape
        # the input as the ONNX tensor holds it: its axes are the network's, permuted
        inv = tuple(self.input_perm.index(j) for j in range(len(dims)))
        self.values[self.input.name] = _Act(shape, perm=inv if len(dims) == 4 else (0, 1, 2, 3))
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                self.fail(node, f"operator {node.domain}.{node.op_type} cannot be mapped to a "
                                "randvis layer")
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                self.fail(node, f"operator {node.op_type!r} cannot be mapped to a randvis layer "
                                f"(supported: {', '.join(SUPPORTED_OPS)})")
            handler(node, self.attrs(node))
        return self._finish(g)

    def _dims(self, info, what):
        t = info.type.tensor_type
        if not info.type.HasField("tensor_type") or t.elem_type not in (1, 10, 11):
            raise OnnxError(f"{self.path}: {what} {info.name!r} is not a float tensor")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        return [_BATCH if (i == 0 and d < 1) else d for i, d in enumerate(dims)]

    def _leading_transpose(self, g):
        """The composite axis order of the Transposes applied to the input before
        anything else (identity when there are none)."""
        perm, name = (0, 1, 2, 3), self.input.name
        while True:
            users = self.consumers.get(name, [])
            if len(users) != 1 or users[0].op_type not in ("Transpose", "Identity"):
                return perm
            node = users[0]
            p = self.attrs(node).get("perm", [3, 2, 1, 0]) if node.op_type == "Transpose" else \
                [0, 1, 2, 3]
            if sorted(p) != [0, 1, 2, 3]:
                return perm
            perm, name = tuple(perm[i] for i in p), node.output[0]

    def _finish(self, g):
        if len(g.output) != 1:
            raise OnnxError(f"{self.path}: the graph has {len(g.output)} outputs; one is mapped")
        out = self.values.get(g.output[0].name)
        if not isinstance(out, _Act):
            raise OnnxError(f"{self.path}: the graph's output {g.output[0].name!r} is not computed "
                            "from its input")
        if out.image or out.order is not None:
            raise OnnxError(f"{self.path}: the graph's output {g.output[0].name!r} is not a "
                            "vector of logits in the order of a flatten")
        if out.affine is not None:
            raise OnnxError(f"{self.path}: the per-feature affine map of node(s) "
                            f"{_nodes(out.affine)} at the end has no layer to fold into")
        want = self._dims(g.output[0], "output")
        if len(want) != 2 or want[1] not in (-1, out.shape[0]):
            raise OnnxError(f"{self.path}: the graph declares output shape {tuple(want)}, the "
                            f"mapped layers give (n, {out.shape[0]})")
        return out

    # ---- layers ------------------------------------------------------
    def new_layer(self, node, kind):
        layer = _Layer(kind, nodes=[node.name])
        self.layers.append(layer)
        return layer

    def _no_affine(self, node, a):
        if a.affine is not None:
            self.fail(node, f"the per-feature affine map of node(s) {_nodes(a.affine)} comes "
                            "after a nonlinearity or pooling and can only be folded into a following "
                            "dense layer; this node comes first")

    def op_Conv(self, node, at):
        a = self.act(node)
        self._no_affine(node, a)
        if not a.image or a.perm != (0, 1, 2, 3):
            self.fail(node, "its input is not an NCHW image")
        w = self.const(node, 1, "weight")
        b = self.get(node, 2)
        if isinstance(b, _Act):
            self.fail(node, "its bias must be a constant")
        c, h, wd = a.shape
        if w.ndim != 4 or w.shape[1] != c or w.shape[0] < 1:
            self.fail(node, f"weight {node.input[1]!r} has shape {w.shape}, expected (out, {c}, kh, "
                            "kw) for its input's {c} channels")
        if b is not None and b.shape != (w.shape[0],):
            self.fail(node, f"bias {node.input[2]!r} has shape {b.shape}, expected ({w.shape[0]},)")
        if at.get("group", 1) != 1:
            self.fail(node, f"group={at['group']}: only ordinary convolutions (group 1) are mapped")
        if any(d != 1 for d in at.get("dilations", [1, 1])):
            self.fail(node, f"dilations {at['dilations']}: only dilation 1 is mapped")
        if list(at.get("kernel_shape", w.shape[2:])) != list(w.shape[2:]):
            self.fail(node, f"kernel_shape {at['kernel_shape']} but weight {node.input[1]!r} has "
                            f"shape {w.shape}")
        stride = tuple(at.get("strides", [1, 1]))
        pads = self._pads(node, at, (h, wd), w.shape[2:], stride)
        layer = self.new_layer(node, "conv")
        layer.params = {"weight": w.astype(np.float64),
                        "bias": None if b is None else b.astype(np.float64)}
        layer.config = {"stride": stride, "padding": pads}
        layer.rows = [[node.input[1], w.shape, "weight", "as is (out, in, kh, kw)"]]
        if b is not None:
            layer.rows.append([node.input[2], b.shape, "bias", "as is"])
        self._output(node, layer, a, w.shape[2:], stride, pads)

    def _pads(self, node, at, hw, k, stride):
        mode = at.get("auto_pad", b"NOTSET")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode == "VALID":
            return ((0, 0), (0, 0))
        if mode in ("SAME_UPPER", "SAME_LOWER"):
            p = K.resolve_padding("same", hw, k, stride)
            p = p if mode == "SAME_UPPER" else (p[1], p[0], p[3], p[2])
            return ((p[0], p[1]), (p[2], p[3]))
        if mode != "NOTSET":
            self.fail(node, f"auto_pad {mode!r} is not an ONNX padding mode")
        p = list(at.get("pads", [0, 0, 0, 0]))
        if len(p) != 4 or min(p) < 0:
            self.fail(node, f"pads {p}: expected 4 non-negative numbers")
        return ((p[0], p[2]), (p[1], p[3]))

    def _output(self, node, layer, a, k, stride, pads):
        """The value a new convolution or pooling outputs."""
        (t, b), (l, r) = pads
        if layer.kind != "conv" and (max(t, b) >= k[0] or max(l, r) >= k[1]):
            self.fail(node, f"pads {pads} would leave windows with no pixels")
        try:
            hw = K.output_hw(a.shape[1:], k, K.as_pair(stride, "strides"), (t, b, l, r))
        except (ValueError, TypeError) as exc:
            self.fail(node, str(exc))
        c = layer.params["weight"].shape[0] if layer.kind == "conv" else a.shape[0]
        self.put(node, _Act((c,) + hw, fresh=layer if layer.kind == "conv" else None))

    def _pool(self, node, at, kind):
        a = self.act(node)
        self._no_affine(node, a)
        if not a.image or a.perm != (0, 1, 2, 3):
            self.fail(node, "its input is not an NCHW image")
        if at.get("ceil_mode", 0):
            self.fail(node, "ceil_mode=1 is not mapped (randvis pools floor the output size)")
        if any(d != 1 for d in at.get("dilations", [1, 1])):
            self.fail(node, f"dilations {at['dilations']}: only dilation 1 is mapped")
        if len(node.output) > 1 and node.output[1] and self.consumers.get(node.output[1]):
            self.fail(node, "its Indices output is used; only the pooled values are mapped")
        if kind == "global":
            size, stride, pads = a.shape[1:], a.shape[1:], ((0, 0), (0, 0))
        else:
            size = tuple(at.get("kernel_shape", []))
            if len(size) != 2:
                self.fail(node, f"kernel_shape {list(size)}: a 2-d window is needed")
            stride = tuple(at.get("strides", [1, 1]))
            pads = self._pads(node, at, a.shape[1:], size, stride)
            if kind == "avg" and at.get("count_include_pad", 0) and any(sum(pads, ())):
                self.fail(node, "count_include_pad=1 with padding is not mapped (randvis averages "
                                "the in-image pixels only)")
        layer = self.new_layer(node, "max" if kind == "max" else "avg")
        layer.config = {"size": size, "stride": stride, "padding": pads}
        self._output(node, layer, a, size, stride, pads)

    def op_MaxPool(self, node, at):
        self._pool(node, at, "max")

    def op_AveragePool(self, node, at):
        self._pool(node, at, "avg")

    def op_GlobalAveragePool(self, node, at):
        self._pool(node, at, "global")

    def op_Relu(self, node, at):
        a = self.act(node)
        self._no_affine(node, a)
        self.new_layer(node, "relu")
        self.put(node, _Act(a.shape, a.perm, a.order))

    def op_Identity(self, node, at):
        v = self.get(node, 0)
        self.put(node, v)

    def op_Dropout(self, node, at):
        if len(node.output) > 1 and node.output[1] and self.consumers.get(node.output[1]):
            self.fail(node, "its mask output is used; Dropout is mapped as the identity (inference)")
        self.op_Identity(node, at)

    def op_Softmax(self, node, at):
        a = self.act(node)
        if a.image or at.get("axis", -1) not in (-1, 1):
            self.fail(node, "Softmax over anything but the feature axis of a vector")
        if a.affine is not None:
            self.fail(node, f"the per-feature affine map of node(s) {_nodes(a.affine)} has "
                            "no dense layer after it to fold into")
        self.notes.append(f"Softmax node {node.name!r} dropped: the network returns logits")
        self.put(node, _Act(a.shape, a.perm, a.order, a.fresh, a.affine, final=True))

    def op_Transpose(self, node, at):
        v = self.get(node, 0)
        p = list(at.get("perm", list(range(np.ndim(v) if not isinstance(v, _Act) else 4))[::-1]))
        if not isinstance(v, _Act):
            return self.put(node, np.transpose(v, p))
        if not v.image:
            if p != [0, 1]:
                self.fail(node, f"perm {p} on a (batch, features) value")
            return self.put(node, v)
        if sorted(p) != [0, 1, 2, 3] or p[0] != 0:
            self.fail(node, f"perm {p} moves the batch axis or is not a permutation of 4 axes")
        self.put(node, _Act(v.shape, tuple(v.perm[i] for i in p), v.order, v.fresh, v.affine))

    def _flatten(self, node, a):
        if not a.image:
            return self.put(node, a)
        c, h, w = a.shape
        axes = [p - 1 for p in a.perm[1:]]
        order = np.arange(c * h * w).reshape(c, h, w).transpose(axes).ravel()
        identity = axes == [0, 1, 2]
        affine = None
        if a.affine is not None:   # per channel -> per feature (randvis order)
            affine = (np.repeat(a.affine[0], h * w), np.repeat(a.affine[1], h * w), a.affine[2])
        layer = self.new_layer(node, "flatten")
        if not identity:
            self.notes.append(f"flatten {''.join('chw'[i] for i in axes)} order of node "
                              f"{node.name!r}: the next dense layer's columns are permuted to (c, h, w)")
        self.put(node, _Act((c * h * w,), order=None if identity else order, affine=affine))
        return layer

    def op_Flatten(self, node, at):
        a = self.act(node)
        if at.get("axis", 1) != 1:
            self.fail(node, f"axis={at['axis']}: only axis 1 (keep the batch axis) is mapped")
        self._flatten(node, a)

    def op_Reshape(self, node, at):
        v = self.get(node, 0)
        target = [int(t) for t in np.ravel(self.const(node, 1, "shape"))]
        if not isinstance(v, _Act):
            return self.put(node, np.reshape(v, target))
        batch = self._batch()
        src = (batch,) + v.onnx_shape()
        dims = [src[i] if (t == 0 and not at.get("allowzero", 0)) else t
                for i, t in enumerate(target)]
        total = math.prod(src)
        if dims.count(-1) == 1:
            known = math.prod(d for d in dims if d != -1)
            dims[dims.index(-1)] = total // known if known and total % known == 0 else -2
        if len(dims) == len(src) and tuple(dims) == src:
            return self.put(node, v)
        if len(dims) != 2 or dims[0] != batch or dims[1] * dims[0] != total:
            self.fail(node, f"reshape of a {tuple(src)} value to {target}: only a flatten to "
                            "(batch, features) is mapped")
        self._flatten(node, v)

    def _batch(self):
        return self._dims(self.input, "input")[0]

    def _dense(self, node, a, w, transform, source, bias=None, bias_source=None):
        """A dense layer ``y = x W^T + bias`` for ONNX weight ``w`` given as (out, in)."""
        if a.image:
            self.fail(node, "its input is an image; a Flatten or Reshape must come first")
        f = a.shape[0]
        if w.ndim != 2 or w.shape[1] != f:
            self.fail(node, f"weight {source!r} has shape {transform[1]}, expected "
                            f"{transform[2].format(f=f)} for its {f} input features")
        w = w.astype(np.float64)
        rows = [[source, transform[1], "weight", transform[0]]]
        if a.order is not None:
            cols = np.empty_like(w)
            cols[:, a.order] = w
            w = cols
            rows[0][3] += ", columns permuted to the (c, h, w) flatten order"
        b = np.zeros(w.shape[0]) if bias is None else np.array(bias, dtype=np.float64)
        if bias is not None:
            rows.append([bias_source, np.shape(bias), "bias", "as is"])
        if a.affine is not None:
            scale, shift, parts = a.affine
            b = b + K.matmul(w, shift[:, None])[:, 0]
            w = w * scale[None, :]
            rows[0][3] += f", folded the affine map of {_nodes(a.affine)}"
            rows += [[const, shape, "weight" if kind == "scale" else "bias",
                      f"{kind} of {name!r}, folded: W diag(a), W b + c"]
                     for name, const, shape, kind in parts]
        layer = self.new_layer(node, "dense")
        layer.params = {"weight": w, "bias": b}
        layer.rows = rows
        self.put(node, _Act((w.shape[0],), fresh=layer))

    def op_MatMul(self, node, at):
        a = self.act(node)
        w = self.const(node, 1, "weight")
        self._dense(node, a, w.T, ("transposed (in, out) -> (out, in)", w.shape, "({f}, out)"),
                    node.input[1])

    def op_Gemm(self, node, at):
        a = self.act(node)
        w = self.const(node, 1, "weight")
        if at.get("transA", 0):
            self.fail(node, "transA=1 is not mapped")
        alpha, beta = float(at.get("alpha", 1.0)), float(at.get("beta", 1.0))
        how = ("as is (out, in)", w.shape, "(out, {f})") if at.get("transB", 0) else \
              ("transposed (in, out) -> (out, in)", w.shape, "({f}, out)")
        wt = w if at.get("transB", 0) else w.T
        c = self.get(node, 2)
        if isinstance(c, _Act):
            self.fail(node, "its C input must be a constant")
        bias = None
        if c is not None:
            if c.size not in (1, wt.shape[0]) or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
                self.fail(node, f"C {node.input[2]!r} has shape {c.shape}, expected "
                                f"({wt.shape[0]},) or (1, {wt.shape[0]})")
            bias = beta * np.broadcast_to(np.ravel(c).astype(np.float64), (wt.shape[0],))
        self._dense(node, a, alpha * wt.astype(np.float64) if alpha != 1.0 else wt, how,
                    node.input[1], bias, node.input[2] if c is not None else None)

    # ---- per-feature affine maps ----------------------------------------
    def _arith(self, node, op):
        x, y = self.get(node, 0), self.get(node, 1)
        if not isinstance(x, _Act) and not isinstance(y, _Act):
            return self.put(node, {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply,
                                   "Div": np.divide}[op](x, y))
        if isinstance(x, _Act) and isinstance(y, _Act):
            self.fail(node, "two computed inputs (a residual or gated connection) are not mapped")
        if not isinstance(x, _Act) and op in ("Sub", "Div"):
            self.fail(node, f"{op} of a constant by the network's value is not affine per feature")
        a, cst = (x, y) if isinstance(x, _Act) else (y, x)
        a = self.act(node, 0 if a is x else 1)
        v = self._per_feature(node, a, np.asarray(cst, dtype=np.float64))
        if op == "Div" and not np.all(v != 0):
            self.fail(node, "divides by zero")
        scale, shift = {"Add": (None, v), "Sub": (None, -v), "Mul": (v, None),
                        "Div": (1.0 / v if op == "Div" else None, None)}[op]
        self.put(node, self._affine(node, a, scale, shift))

    def op_Add(self, node, at):
        self._arith(node, "Add")

    def op_Sub(self, node, at):
        self._arith(node, "Sub")

    def op_Mul(self, node, at):
        self._arith(node, "Mul")

    def op_Div(self, node, at):
        self._arith(node, "Div")

    def _per_feature(self, node, a, c):
        """A constant that broadcasts over ``a`` as one value per channel (image) or
        per feature (vector), in randvis order."""
        phys = (_BATCH,) + a.onnx_shape()
        if c.ndim > len(phys):
            self.fail(node, f"constant of shape {c.shape} on a value of {len(phys)} axes")
        full = (1,) * (len(phys) - c.ndim) + c.shape
        axis = a.perm.index(1) if a.image else 1
        if any(s != 1 and (k != axis or s != phys[k]) for k, s in enumerate(full)):
            what = "channel" if a.image else "feature"
            self.fail(node, f"constant of shape {c.shape} is not one value per {what} of a value of "
                            f"shape (n, {', '.join(map(str, phys[1:]))})")
        n = a.shape[0]
        v = np.broadcast_to(c.reshape(full[axis]) if full[axis] > 1 else c.reshape(1), (n,))
        if a.order is not None:
            r = np.empty(n)
            r[a.order] = v
            v = r
        return np.array(v, dtype=np.float64)

    def _affine(self, node, a, scale, shift):
        layer = a.fresh
        if layer is not None and a.affine is None:      # fold into the layer before
            p = layer.params
            if p["bias"] is None:
                p["bias"] = np.zeros(p["weight"].shape[0])
            if scale is not None:
                p["weight"] = p["weight"] * scale.reshape((-1,) + (1,) * (p["weight"].ndim - 1))
                p["bias"] = p["bias"] * scale
                layer.rows.append([self._const_name(node), self._shape_of(node), "weight",
                                   f"rows and bias scaled by {node.name!r} (folded)"])
            else:
                p["bias"] = p["bias"] + shift
                layer.rows.append([self._const_name(node), self._shape_of(node), "bias",
                                   f"added by {node.name!r} (folded)"])
            layer.nodes.append(node.name)
            return _Act(a.shape, a.perm, a.order, layer)
        n = a.shape[0]
        s, t, parts = a.affine if a.affine is not None else (np.ones(n), np.zeros(n), [])
        if scale is not None:
            s, t = s * scale, t * scale
        else:
            t = t + shift
        part = (node.name, self._const_name(node), self._shape_of(node),
                "scale" if scale is not None else "shift")
        return _Act(a.shape, a.perm, a.order, None, (s, t, parts + [part]))

    def _const_name(self, node):
        return next(n for n in node.input if not isinstance(self.values.get(n), _Act))

    def _shape_of(self, node):
        return tuple(np.shape(self.values[self._const_name(node)]))

    # ---- shape arithmetic on constants ------------------------------
    def op_Constant(self, node, at):
        from onnx import numpy_helper

        if "value" in at:
            return self.put(node, numpy_helper.to_array(at["value"]))
        for key in ("value_int", "value_ints", "value_float", "value_floats"):
            if key in at:
                return self.put(node, np.array(at[key]))
        self.fail(node, f"only a numeric value is mapped, got {sorted(at)}")

    def op_Shape(self, node, at):
        v = self.get(node, 0)
        shape = ((self._batch(),) + v.onnx_shape()) if isinstance(v, _Act) else np.shape(v)
        out = np.array(shape, dtype=np.int64)
        start, end = at.get("start", 0), at.get("end", None)
        self.put(node, out[start:end])

    def op_Gather(self, node, at):
        self.put(node, np.take(self.const(node, 0, "data"), self.const(node, 1, "indices"),
                               axis=at.get("axis", 0)))

    def op_Cast(self, node, at):
        from onnx import helper

        self.put(node, self.const(node, 0, "input").astype(helper.tensor_dtype_to_np_dtype(at["to"])))

    def op_Concat(self, node, at):
        parts = [self.const(node, i, "input") for i in range(len(node.input))]
        self.put(node, np.concatenate(parts, axis=at.get("axis", 0)))

    def op_Slice(self, node, at):
        x = self.const(node, 0, "data")
        if self.opset < 10:
            starts, ends = at["starts"], at["ends"]
            axes, steps = at.get("axes", range(len(starts))), [1] * len(starts)
        else:
            starts, ends = self.const(node, 1, "starts"), self.const(node, 2, "ends")
            axes = self.get(node, 3) if len(node.input) > 3 and node.input[3] else \
                range(len(starts))
            steps = self.get(node, 4) if len(node.input) > 4 and node.input[4] else [1] * len(starts)
        index = [slice(None)] * x.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps):
            index[int(ax)] = slice(int(s), int(e), int(st))
        self.put(node, x[tuple(index)])

    def _axes(self, node, at):
        if "axes" in at:
            return [int(v) for v in at["axes"]]
        return [int(v) for v in np.ravel(self.const(node, 1, "axes"))]

    def op_Unsqueeze(self, node, at):
        x = self.const(node, 0, "data")
        for ax in sorted(self._axes(node, at)):
            x = np.expand_dims(x, ax)
        self.put(node, x)

    def op_Squeeze(self, node, at):
        x = self.const(node, 0, "data")
        axes = self._axes(node, at) if ("axes" in at or len(node.input) > 1) else None
        self.put(node, np.squeeze(x, axis=None if axes is None else tuple(axes)))


def _nodes(affine):
    """The nodes of a pending affine map, for messages."""
    return ", ".join(repr(part[0]) for part in affine[2])


def _build(layer, name, dtype):
    """The randvis layer of a mapped :class:`_Layer`."""
    cfg, p = layer.config, layer.params
    if layer.kind == "conv":
        bias = None if p["bias"] is None else p["bias"].astype(dtype)
        return Conv2d(p["weight"].astype(dtype), bias, stride=cfg["stride"],
                      padding=cfg["padding"], name=name)
    if layer.kind == "dense":
        return Dense(p["weight"].astype(dtype), p["bias"].astype(dtype), name=name)
    if layer.kind in ("max", "avg"):
        kind = MaxPool2d if layer.kind == "max" else AvgPool2d
        return kind(cfg["size"], cfg["stride"], cfg["padding"], name=name)
    return {"relu": ReLU, "flatten": Flatten}[layer.kind](name=name)


def _names(layers):
    """VGG-style names: ``conv{b}_{i}`` and ``relu{b}_{i}`` in block b (blocks end
    at a pooling), ``pool{b}``, ``flatten``, then ``fc{pools + k}`` and ``relu{..}``
    (VGG-16's fc6, relu6, ...)."""
    names, block, index, pools, dense, last = [], 1, 0, 0, 0, None
    for layer in layers:
        if layer.kind == "conv":
            index += 1
            last = f"{block}_{index}"
            name = f"conv{last}"
        elif layer.kind in ("max", "avg"):
            name = f"pool{block}"
            pools, block, index, last = pools + 1, block + 1, 0, None
        elif layer.kind == "dense":
            dense += 1
            last = str(pools + dense)
            name = f"fc{last}"
        elif layer.kind == "relu":
            name = f"relu{last}" if last is not None else f"relu{block}"
        else:
            name = layer.kind
        base, k = name, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


@dataclass(frozen=True)
class MappedGraph:
    """What :func:`map_model` returns.

    Attributes
    ----------
    layers : list of Layer
        Named randvis layers, in order.
    input_shape : tuple
        The network's per-sample input shape, ``(c, h, w)`` or ``(f,)``.
    input_layout : str
        The ONNX input's axes, e.g. ``"NHWC"``: the graph's input is the
        network's input transposed to that order.
    rows : list of ReportRow
        ONNX constant -> randvis parameter, with the transform applied.
    notes : list of str
    opset : int
    """

    layers: list
    input_shape: tuple
    input_layout: str
    rows: list
    notes: list
    opset: int


def map_model(model, where, dtype):
    """The randvis layers of a parsed ONNX model's graph.

    Parameters
    ----------
    model : onnx.ModelProto
        Checked beforehand: no external data, declared sizes stored
        (:func:`randvis.onnxfile.load_onnx` does it).
    where : str
        Names the model in errors (its path).
    dtype : float32 or float64
        The layers' dtype (folding and permuting are done in float64).

    Returns
    -------
    MappedGraph

    Raises
    ------
    OnnxError
        An operation that cannot be mapped, a missing initializer, a weight
        that does not fit the graph, a branch: one line naming the node.

    Examples
    --------
    See the module docstring.
    """
    mapper = _Mapper(where, model)
    mapper.run()
    names = _names(mapper.layers)
    layers = [_build(layer, name, dtype) for layer, name in zip(mapper.layers, names)]
    rows = [ReportRow(src, tuple(shape), f"{name}.{param}", tuple(np.shape(layer.params[param])), how)
            for layer, name in zip(mapper.layers, names) for src, shape, param, how in layer.rows]
    perm = mapper.input_perm
    layout = "".join("NCHW"[perm.index(j)] for j in range(4)) if len(perm) == 4 else "NC"
    return MappedGraph(layers, mapper.input_shape, layout, rows, mapper.notes, mapper.opset)
