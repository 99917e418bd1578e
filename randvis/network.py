"""A sequential network: one forward trace, any number of backward rules."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ._io import atomic_savez
from .layers import LAYER_TYPES, Conv2d, Dense, DepthwiseConv2d, Layer, Residual, StreamedDense
from .rules import SALIENCY, as_rules

__all__ = ["Sequential", "Trace", "check_input"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass
class Trace:
    """What a forward pass keeps for the backward passes: one cache per layer."""

    caches: list
    batch: int


def check_input(x, input_shape, dtype):
    """Validate and cast a batch of images; raise ValueError/TypeError naming the problem."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise TypeError(f"x must be an array of numbers, got {type(x).__name__}") from exc
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"x must hold real numbers (integer or float), got dtype {x.dtype}")
    want = tuple(input_shape)
    if x.ndim != len(want) + 1:
        hint = " (add a batch axis: x[None])" if x.ndim == len(want) else ""
        raise ValueError(f"x must have shape (n, {', '.join(map(str, want))}), got {x.shape}{hint}")
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch (n = 0)")
    if len(want) == 3 and x.shape[1] != want[0]:
        raise ValueError(f"x has {x.shape[1]} channels, the network takes {want[0]}")
    if x.shape[1:] != want:
        raise ValueError(f"x has per-sample shape {x.shape[1:]}, the network takes {want}")
    x = np.ascontiguousarray(x, dtype=dtype)
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or Inf")
    return x


class Sequential:
    """A chain of layers with named parameters.

    Parameters
    ----------
    layers : list of Layer
        Layers without a name get ``<type><index>`` names; names must be unique.
    input_shape : tuple of int
        Per-sample input shape, e.g. ``(3, 224, 224)``.
    dtype : float32 or float64

    Examples
    --------
    >>> import numpy as np
    >>> from randvis.layers import Conv2d, ReLU, Flatten, Dense
    >>> rng = np.random.default_rng(0)
    >>> net = Sequential([Conv2d(rng.normal(size=(4, 3, 3, 3))), ReLU(), Flatten(),
    ...                   Dense(rng.normal(size=(5, 4 * 8 * 8)))], (3, 8, 8), np.float64)
    >>> logits, trace = net.forward(rng.normal(size=(2, 3, 8, 8)))
    >>> net.backward(trace, np.eye(5)[[0, 1]], "gbp").shape
    (2, 3, 8, 8)
    """

    def __init__(self, layers, input_shape, dtype=np.float32, info=None):
        #: how the network was built (builder name and arguments), JSON-able
        self.info = dict(info or {})
        self.dtype = np.dtype(dtype)
        if self.dtype not in _DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.layers = []
        seen = set()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} is not a Layer: {layer!r}")
            if layer.name is None:
                layer.name = f"{type(layer).__name__.lower()}{i}"
            if layer.name in seen:
                raise ValueError(f"duplicate layer name {layer.name!r}")
            seen.add(layer.name)
            if layer.params() and any(v.dtype != self.dtype for v in layer.params().values()):
                layer = layer.astype(self.dtype)
            _set_streamed_dtype(layer, self.dtype)
            self.layers.append(layer)
        self.shapes = [self.input_shape]
        for layer in self.layers:
            self.shapes.append(tuple(layer.output_shape(self.shapes[-1])))
        if len(self.shapes[-1]) != 1:
            raise ValueError(f"the network must end in a vector of logits, got shape {self.shapes[-1]}")

    # ---- structure ----------------------------------------------------
    @property
    def n_classes(self):
        return self.shapes[-1][0]

    def layer(self, name):
        """The layer called ``name``; ``"block.inner"`` reaches a layer inside a
        :class:`~randvis.layers.Residual` block."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        head, dot, rest = name.partition(".")
        if dot:
            for layer in self.layers:
                if layer.name == head and isinstance(layer, Residual):
                    try:
                        return _inner_layer(layer, rest)
                    except KeyError:
                        break
        raise KeyError(f"no layer named {name!r}")

    def parameters(self):
        """All parameters as ``{"layer.param": array}`` (the live arrays: writes
        through them change the network). Parameters inside a
        :class:`~randvis.layers.Residual` block are ``"block.layer.param"``."""
        return {f"{l.name}.{k}": v for l in self.layers for k, v in l.params().items()}

    def _param_owner(self, name):
        """(layer, local parameter name) owning the parameter ``name``."""
        for layer in self.layers:
            for owner, pname, full in _walk_params(layer, layer.name):
                if full == name:
                    return owner, pname
        raise KeyError(f"no parameter named {name!r}")

    def __getitem__(self, name):
        params = self.parameters()
        if name not in params:
            raise KeyError(f"no parameter named {name!r}")
        return params[name]

    def __setitem__(self, name, value):
        layer, pname = self._param_owner(name)
        old = getattr(layer, pname)
        value = np.asarray(value)
        if value.shape != old.shape:
            raise ValueError(f"parameter {name!r} must have shape {old.shape}, got {value.shape}")
        if not np.issubdtype(value.dtype, np.number) or not np.isfinite(value).all():
            raise ValueError(f"parameter {name!r} must be finite real numbers")
        setattr(layer, pname, np.ascontiguousarray(value, dtype=self.dtype))

    def astype(self, dtype):
        """A copy of the network in another float dtype."""
        return Sequential([l.astype(dtype) for l in self.layers], self.input_shape, dtype, self.info)

    def summary(self):
        """A one-line-per-layer table of names, types and output shapes."""
        lines = [f"input {self.input_shape}"]
        wn = max([12] + [len(l.name) for l in self.layers])
        wt = max([13] + [len(type(l).__name__) for l in self.layers])
        for layer, shape in zip(self.layers, self.shapes[1:]):
            n = sum(v.size for v in layer.params().values())
            if isinstance(layer, StreamedDense):
                n += layer.in_features * layer.out_features
            lines.append(f"{layer.name:<{wn}} {type(layer).__name__:<{wt}} {str(shape):<18} {n:>12,d}")
        return "\n".join(lines)

    def __repr__(self):
        return f"Sequential({len(self.layers)} layers, input {self.input_shape}, {self.dtype})"

    # ---- passes -------------------------------------------------------
    def forward(self, x):
        """Forward pass; returns ``(logits (n, k), trace)``."""
        x = check_input(x, self.input_shape, self.dtype)
        caches = []
        for layer in self.layers:
            x, cache = layer.forward(x)
            caches.append(cache)
        return x, Trace(caches, x.shape[0])

    def predict(self, x):
        """Logits only."""
        return self.forward(x)[0]

    def _check_seed(self, trace, seed):
        seed = np.asarray(seed, dtype=self.dtype)
        if seed.shape != (trace.batch, self.n_classes):
            raise ValueError(f"seed must have shape ({trace.batch}, {self.n_classes}), got {seed.shape}")
        return seed

    def backward(self, trace, seed, rule):
        """Backward pass of one rule from ``seed`` (n, k) to the input: (n, c, h, w)."""
        return self.backward_stacked(trace, seed, (rule,))[0]

    def backward_stacked(self, trace, seed, rules):
        """All ``rules`` in one backward pass (signals stacked along the batch):
        returns an array of shape (len(rules), n, c, h, w)."""
        rules = as_rules(rules)
        g = self._check_seed(trace, seed)
        if len(rules) > 1:
            g = np.concatenate([g] * len(rules), axis=0)
        for layer, cache in zip(reversed(self.layers), reversed(trace.caches)):
            g = layer.backward(g, cache, rules)
        return g.reshape((len(rules), trace.batch) + self.input_shape)

    def gradients(self, trace, seed):
        """Plain backpropagation of ``sum(seed * logits)``: returns
        ``(dx, {"layer.param": grad})``."""
        g = self._check_seed(trace, seed)
        grads = {}
        for layer, cache in zip(reversed(self.layers), reversed(trace.caches)):
            for k, v in layer.param_grads(g, cache).items():
                grads[f"{layer.name}.{k}"] = v
            g = layer.backward(g, cache, SALIENCY)
        return g, grads

    # ---- persistence --------------------------------------------------
    def architecture(self):
        """JSON-able description of the layers (no parameter values)."""
        return {"input_shape": list(self.input_shape), "dtype": self.dtype.name, "info": self.info,
                "layers": [{"type": type(l).__name__, "name": l.name, **l.config()}
                           for l in self.layers]}

    def save(self, path):
        """Write the architecture and all parameters to an ``.npz`` file (atomically).

        Parameters are stored under their names (``conv1.weight``, ...); the
        architecture as JSON under ``__architecture__``. Load with
        :meth:`Sequential.load` or with plain ``numpy.load``.
        """
        arrays = dict(self.parameters())
        arrays["__architecture__"] = np.array(json.dumps(self.architecture()))
        return atomic_savez(path, arrays)

    @classmethod
    def load(cls, path):
        """Read a network written by :meth:`save` (no pickles are loaded)."""
        with np.load(path, allow_pickle=False) as f:
            if "__architecture__" not in f.files:
                raise ValueError(f"{path}: not a randvis network file (no __architecture__ entry)")
            arch = json.loads(str(f["__architecture__"]))
            data = {k: f[k] for k in f.files if k != "__architecture__"}
        dtype = np.dtype(arch["dtype"])
        layers = []
        for spec in arch["layers"]:
            spec = dict(spec)
            kind, name = spec.pop("type"), spec.pop("name")
            if kind not in LAYER_TYPES:
                raise ValueError(f"{path}: unknown layer type {kind!r}")
            p = {k.split(".", 1)[1]: data.pop(k) for k in list(data) if k.split(".", 1)[0] == name}
            layers.append(_build_layer(LAYER_TYPES[kind], name, spec, p, dtype))
        if data:
            raise ValueError(f"{path}: parameters without a layer: {sorted(data)}")
        return cls(layers, arch["input_shape"], dtype, arch.get("info"))


def _set_streamed_dtype(layer, dtype):
    if isinstance(layer, StreamedDense):
        layer.dtype = dtype
    elif isinstance(layer, Residual):
        for inner in layer.body:
            _set_streamed_dtype(inner, dtype)


def _inner_layer(block, path):
    """The layer at dotted ``path`` inside a Residual block."""
    head, dot, rest = path.partition(".")
    layer = block.layer(head)
    if not dot:
        return layer
    if not isinstance(layer, Residual):
        raise KeyError(path)
    return _inner_layer(layer, rest)


def _walk_params(layer, prefix):
    """Yield (owning layer, local name, full name) for every parameter of ``layer``."""
    if isinstance(layer, Residual):
        for inner in layer.body:
            yield from _walk_params(inner, f"{prefix}.{inner.name}")
        return
    for k in layer.params():
        yield layer, k, f"{prefix}.{k}"


def _build_layer(kind, name, spec, p, dtype):
    if kind is Residual:
        body = []
        for inner in spec.pop("body", []):
            inner = dict(inner)
            ikind, iname = inner.pop("type"), inner.pop("name")
            if ikind not in LAYER_TYPES:
                raise ValueError(f"unknown layer type {ikind!r} in {name!r}")
            ip = {k.split(".", 1)[1]: p.pop(k) for k in list(p) if k.split(".", 1)[0] == iname}
            body.append(_build_layer(LAYER_TYPES[ikind], iname, inner, ip, dtype))
        if p:
            raise ValueError(f"layer {name!r}: parameters without a layer: {sorted(p)}")
        return Residual(body, name=name)
    for k in ("stride", "size", "padding"):
        if isinstance(spec.get(k), list):
            spec[k] = tuple(tuple(v) if isinstance(v, list) else v for v in spec[k])
    if kind in (Conv2d, DepthwiseConv2d, Dense):
        if "weight" not in p:
            raise ValueError(f"layer {name!r}: missing parameter {name}.weight")
        return kind(p.pop("weight"), p.pop("bias", None), name=name, **spec)
    if kind is StreamedDense:
        return kind(bias=p.pop("bias", None), dtype=dtype, name=name, **spec)
    return kind(name=name, **spec)
