"""A sequential network: one forward trace, any number of backward rules."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import numpy as np

from ._io import atomic_savez
from .layers import LAYER_TYPES, Chain, Conv2d, Dense, DepthwiseConv2d, Residual, StreamedDense
from .limits import check_memory
from .rules import as_rules
from .safeio import NpzReader

__all__ = ["Sequential", "Trace", "check_input", "NonFiniteError", "MAX_LAYERS", "MAX_JSON_DEPTH",
           "MAX_ARCHITECTURE_CHARS"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: most layers (those inside residual blocks included) a saved network may have
MAX_LAYERS = 100_000
#: deepest nesting of a saved network's architecture JSON
MAX_JSON_DEPTH = 64
#: longest architecture JSON (characters)
MAX_ARCHITECTURE_CHARS = 1 << 22


class NonFiniteError(ValueError):
    """A forward pass produced NaN or Inf logits; the message names the layer where
    non-finite values first appear and why (non-finite parameters, or activations
    that overflowed the dtype)."""


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


class Sequential(Chain):
    """A chain of layers with named parameters.

    Parameters
    ----------
    layers : list of Layer
        Copied, in ``dtype`` (the caller's layer objects are left as they
        are); layers without a name get ``<type><index>`` names; names must be
        unique and must not contain ``"."`` (see :class:`~randvis.layers.Chain`).
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
    >>> net["dense3.weight"] = np.zeros((5, 256))     # parameters are replaced whole
    >>> float(net.predict(np.ones((1, 3, 8, 8))).max())
    0.0
    """

    def __init__(self, layers, input_shape, dtype=np.float32, info=None):
        #: how the network was built (builder name and arguments), JSON-able
        self.info = dict(info or {})
        self.dtype = np.dtype(dtype)
        if self.dtype not in _DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.layers = self._adopt(layers, dtype=self.dtype)
        self.shapes = self._shapes(self.input_shape)
        if len(self.shapes[-1]) != 1:
            raise ValueError(f"the network must end in a vector of logits, got shape {self.shapes[-1]}")

    # ---- structure ----------------------------------------------------
    @property
    def n_classes(self):
        return self.shapes[-1][0]

    def parameters(self):
        """All parameters as ``{"layer.param": array}``: the layers' read-only
        arrays (assign a new value with ``net[name] = value``). Parameters inside
        a :class:`~randvis.layers.Residual` block are ``"block.layer.param"``."""
        return self.params()

    def astype(self, dtype):
        """A copy of the network in another float dtype."""
        return Sequential(self.layers, self.input_shape, dtype, self.info)

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
        """Forward pass; returns ``(logits (n, k), trace)``.

        Raises :class:`NonFiniteError` if the logits hold NaN or Inf, naming the
        layer where non-finite values first appear: its parameters are
        non-finite (only possible by making a read-only parameter array
        writeable and writing to it), or the activations overflowed the dtype
        there (use float64 or a smaller input).
        """
        x0 = check_input(x, self.input_shape, self.dtype)
        x, caches = self._forward(x0)
        if not np.isfinite(x).all():
            del caches
            raise self._non_finite(x0)
        return x, Trace(caches, x.shape[0])

    def _non_finite(self, x):
        """The error for a forward pass from ``x`` whose logits are not finite: the
        pass is repeated layer by layer to find where the values first go bad."""
        for layer in self.layers:
            with np.errstate(over="ignore", invalid="ignore"):   # warned once already
                y = layer.forward(x)[0]
            if np.isfinite(y).all():
                x = y
                continue
            bad = [f"{layer.name}.{k}" for k, v in layer.params().items() if not np.isfinite(v).all()]
            where = f"layer {layer.name!r} ({type(layer).__name__})"
            if bad:
                return NonFiniteError(f"the forward pass gives non-finite logits: they first appear "
                                      f"at {where}, whose parameters {', '.join(map(repr, bad))} "
                                      "contain NaN or Inf")
            peak = float(np.abs(x).max())
            return NonFiniteError(
                f"the forward pass gives non-finite logits: the activations overflowed {self.dtype} "
                f"at {where} (its input reaches |x| = {peak:.3g}, its parameters are finite); use "
                "float64 (net.astype(np.float64)) or scale the input down")
        return NonFiniteError("the forward pass gives non-finite logits, but a repeated pass did "
                              "not (the parameters changed during the pass?)")

    def predict(self, x):
        """Logits only."""
        return self.forward(x)[0]

    def _check_seed(self, trace, seed):
        seed = np.asarray(seed)
        if seed.dtype.kind not in "iuf":
            hint = " (its imaginary part would be lost)" if seed.dtype.kind == "c" else ""
            raise TypeError(f"seed must hold real numbers (integer or float), got dtype "
                            f"{seed.dtype}{hint}")
        if seed.shape != (trace.batch, self.n_classes):
            raise ValueError(f"seed must have shape ({trace.batch}, {self.n_classes}), got {seed.shape}")
        if seed.dtype.kind == "f" and not np.isfinite(seed).all():
            raise ValueError("seed contains NaN or Inf")
        with np.errstate(over="ignore"):
            cast = np.asarray(seed, dtype=self.dtype)
        if not np.isfinite(cast).all():
            raise ValueError(f"seed has values beyond {self.dtype}'s range (largest |seed| = "
                             f"{float(np.abs(seed).max()):.3g})")
        return cast

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
        g = self._backward(g, trace.caches, rules)
        return g.reshape((len(rules), trace.batch) + self.input_shape)

    def gradients(self, trace, seed):
        """Plain backpropagation of ``sum(seed * logits)``: returns
        ``(dx, {"layer.param": grad})``."""
        return self._gradients(self._check_seed(trace, seed), trace.caches)

    # ---- persistence --------------------------------------------------
    def architecture(self):
        """JSON-able description of the layers (no parameter values)."""
        return {"input_shape": list(self.input_shape), "dtype": self.dtype.name, "info": self.info,
                "layers": self._specs()}

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
        """Read a network written by :meth:`save` (no pickles are loaded).

        Nothing is built before the file is checked: the architecture JSON is
        at most :data:`MAX_ARCHITECTURE_CHARS` characters, nested at most
        :data:`MAX_JSON_DEPTH` deep, with at most :data:`MAX_LAYERS` layers;
        every parameter belongs to a layer of it; the parameters' sizes, read
        from their ``.npy`` headers, fit the memory limit
        (:mod:`randvis.limits`); and every parameter is finite and real.
        Errors are ``ValueError`` naming the file (and the parameter or layer).
        """
        path = os.fspath(path)
        where = f"{path}: __architecture__"
        with NpzReader(path) as npz:
            if "__architecture__" not in npz.headers:
                raise ValueError(f"{path}: not a randvis network file (no __architecture__ entry)")
            arch = _read_architecture(npz, where)
            dtype, input_shape, owners = _check_architecture(arch, where)
            names = [n for n in npz.headers if n != "__architecture__"]
            orphans = sorted(n for n in names if n.split(".", 1)[0] not in owners)
            if orphans:
                raise ValueError(f"{path}: parameters without a layer: {orphans}")
            for n in names:
                if npz.headers[n].dtype.kind not in "iuf":
                    raise ValueError(f"{path}: parameter {n!r} has dtype {npz.headers[n].dtype}; "
                                     "parameters must be real numbers")
            if names:
                big = max(names, key=lambda n: npz.headers[n].nbytes)
                check_memory(sum(npz.headers[n].nbytes for n in names),
                             f"{path}: {len(names)} parameters (the largest: {big!r}, shape "
                             f"{npz.headers[big].shape})")
            data = {}
            for n in names:
                data[n] = npz.read(n)
                if not np.isfinite(data[n]).all():
                    raise ValueError(f"{path}: parameter {n!r} contains NaN or Inf")
                data[n].flags.writeable = False   # the layers keep these arrays, no copies
        try:
            layers = _build_layers(arch["layers"], data, dtype)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        try:
            return cls(layers, input_shape, dtype, arch.get("info"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None


#: a JSON string (an unterminated one runs to the end: matching never backtracks)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _read_architecture(npz, where):
    """The parsed ``__architecture__`` member of an open
    :class:`~randvis.safeio.NpzReader`, its length checked from the header."""
    head = npz.headers["__architecture__"]
    if head.dtype.kind != "U" or head.shape != ():
        raise ValueError(f"{where} is {head.dtype} {head.shape}, not a JSON string")
    if head.dtype.itemsize // 4 > MAX_ARCHITECTURE_CHARS:
        raise ValueError(f"{where} has {head.dtype.itemsize // 4:,} characters, more than the "
                         f"limit of {MAX_ARCHITECTURE_CHARS:,}")
    return _parse_architecture(str(npz.read("__architecture__")), where)


def _parse_architecture(text, where):
    """``json.loads`` of an architecture, its length and nesting checked first."""
    if len(text) > MAX_ARCHITECTURE_CHARS:
        raise ValueError(f"{where} has {len(text):,} characters, more than the limit of "
                         f"{MAX_ARCHITECTURE_CHARS:,}")
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode("ascii")
    steps = np.frombuffer(brackets, np.uint8)
    depth = int(np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1)).max(
        initial=0))
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{where}: JSON nested {depth} deep, more than the limit of {MAX_JSON_DEPTH}")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc})") from None


def _check_architecture(arch, where):
    """(dtype, input_shape, top-level layer names) of a parsed architecture, after
    checking its structure and counting its layers."""
    if not isinstance(arch, dict) or not isinstance(arch.get("layers"), list):
        raise ValueError(f"{where}: not a network architecture (no list of layers)")
    if arch.get("dtype") not in ("float32", "float64"):
        raise ValueError(f"{where}: dtype must be 'float32' or 'float64', got {arch.get('dtype')!r}")
    shape = arch.get("input_shape")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 8
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 2**31
                       for v in shape)):
        raise ValueError(f"{where}: input_shape must be 1 to 8 positive integers, got {shape!r}")
    if not isinstance(arch.get("info", {}), (dict, type(None))):
        raise ValueError(f"{where}: info must be an object")
    todo, count = [arch["layers"]], 0
    while todo:
        for spec in todo.pop():
            count += 1
            if count > MAX_LAYERS:
                break
            if (not isinstance(spec, dict) or not isinstance(spec.get("name"), str)
                    or spec.get("type") not in LAYER_TYPES):
                raise ValueError(f"{where}: bad layer entry {str(spec)[:200]} (needs a known "
                                 f"'type' of {sorted(LAYER_TYPES)} and a 'name')")
            if spec["type"] == "Residual":
                if not isinstance(spec.get("body"), list):
                    raise ValueError(f"{where}: Residual layer {spec['name']!r} has no body list")
                todo.append(spec["body"])
        if count > MAX_LAYERS:
            raise ValueError(f"{where}: {_count_layers(arch['layers'])} layers, more than the limit "
                             f"of {MAX_LAYERS}")
    return np.dtype(arch["dtype"]), tuple(shape), {spec["name"] for spec in arch["layers"]}


def _count_layers(specs):
    todo, n = [specs], 0
    while todo:
        for spec in todo.pop():
            n += 1
            if isinstance(spec, dict) and isinstance(spec.get("body"), list):
                todo.append(spec["body"])
    return n


def _build_layers(specs, params, dtype):
    """The layers of a parsed architecture's ``specs``; each takes its parameters
    ``<name>.<param>`` out of ``params``. Errors are ValueErrors naming the layer."""
    layers = []
    for spec in specs:
        spec = dict(spec)
        kind, name = spec.pop("type"), spec.pop("name")
        p = {k.split(".", 1)[1]: params.pop(k) for k in list(params) if k.split(".", 1)[0] == name}
        try:
            layers.append(_build_layer(LAYER_TYPES[kind], name, spec, p, dtype))
        except (TypeError, KeyError, IndexError) as exc:
            raise ValueError(f"layer {name!r} ({kind}) cannot be built: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"layer {name!r} ({kind}): {exc}") from None
    return layers


def _build_layer(kind, name, spec, p, dtype):
    if kind is Residual:
        body = _build_layers(spec.pop("body", []), p, dtype)
        if p:
            raise ValueError(f"parameters without a layer: {sorted(p)}")
        return Residual(body, name=name)
    for k in ("stride", "size", "padding"):
        if isinstance(spec.get(k), list):
            spec[k] = tuple(tuple(v) if isinstance(v, list) else v for v in spec[k])
    if kind in (Conv2d, DepthwiseConv2d, Dense):
        if "weight" not in p:
            raise ValueError(f"missing parameter {name}.weight")
        return kind(p.pop("weight"), p.pop("bias", None), name=name, **spec)
    if kind is StreamedDense:
        return kind(bias=p.pop("bias", None), dtype=dtype, name=name, **spec)
    return kind(name=name, **spec)
