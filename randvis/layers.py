"""Layers as pure forward/backward pairs.

Each layer has ``forward(x) -> (y, cache)`` and ``backward(g, cache, rule) -> gx``
side by side; nothing is stored on the layer during a pass, so one forward
trace serves any number of backward passes. ``rule`` is a :class:`~randvis.rules.Rule`
or a tuple of rules; a tuple means ``g`` stacks one block per rule along the
batch axis (how one backward pass computes all three maps with GEMMs three
times wider). Only ReLU-like layers look at the rule: every other layer applies
its ordinary adjoint (max-pooling routes to the forward argmax for all rules).

A layer owns its parameters as read-only arrays (it copies what it is given
unless that is already a read-only array owning its memory). A parameter
changes only by assigning a whole new value, ``layer.weight = w`` or
``net["conv1.weight"] = w``, and what a layer derives from its weights (the
Winograd transform of a 3x3 convolution's filters) is computed then: at
construction, :meth:`Layer.astype` and every assignment.

Images are ``(n, c, h, w)``; convolution weights ``(f, c, kh, kw)``; dense
weights ``(out, in)`` with ``y = x @ W.T + b`` (PyTorch's conventions, so
weights move between frameworks without transposes).
"""
from __future__ import annotations

import concurrent.futures as cf
import numbers

import numpy as np
from tqdm.auto import tqdm

from . import _checks
from . import kernels as K
from . import limits
from ._io import jsonable
from .rules import SALIENCY, as_rules

__all__ = ["Layer", "Param", "Chain", "Conv2d", "DepthwiseConv2d", "Dense", "StreamedDense",
           "ClippedReLU", "ReLU", "ReLU6", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Flatten",
           "Residual", "LAYER_TYPES"]

#: streamed passes over more weights than this show a progress bar (on a terminal)
PROGRESS_WEIGHTS = 1 << 30

#: an output size every route of kernels.winograd_suits accepts: a layer keeps its
#: Winograd filter transform when some input size would use it
_ANY_SIZE = (1 << 30, 1 << 30)


class Param:
    """A parameter attribute of a :class:`Layer`.

    Reading gives the layer's read-only array (or None); assigning a value
    checks it (the parameter's shape, finite real numbers), stores a read-only
    copy in the parameter's dtype and lets the layer derive what depends on it.

    Examples
    --------
    >>> import numpy as np
    >>> from randvis.layers import Dense
    >>> layer = Dense(np.zeros((2, 3)))
    >>> layer.weight.flags.writeable
    False
    >>> layer.weight = np.ones((2, 3))
    >>> layer.forward(np.ones((1, 3)))[0].tolist()
    [[3.0, 3.0]]
    """

    def __set_name__(self, owner, name):
        self.name = name
        self.slot = "_" + name

    def __get__(self, layer, owner=None):
        if layer is None:
            return self
        return layer.__dict__.get(self.slot)

    def __set__(self, layer, value):
        layer.set_param(self.name, value)


class Layer:
    """Base class: parameters by name, shape inference, config for saving."""

    param_names: tuple = ()
    #: attributes derived from the parameters (recomputed, never pickled)
    derived: tuple = ()

    def __init__(self, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"a layer name must be a str or None, got {_checks.short_repr(name)}")
        self.name = name

    def params(self):
        """Parameters of this layer by local name (its read-only arrays)."""
        return {k: getattr(self, k) for k in self.param_names if getattr(self, k) is not None}

    def param_shapes(self):
        return {k: v.shape for k, v in self.params().items()}

    def output_shape(self, in_shape):
        """Per-sample output shape for a per-sample input shape (raises ValueError)."""
        return tuple(in_shape)

    def config(self):
        return {}

    def param_grads(self, g, cache):
        """Gradients of the loss w.r.t. this layer's parameters given dL/dy = g."""
        return {}

    def set_param(self, local, value, full=None):
        """Replace the parameter ``local`` by ``value`` (same shape, finite real
        numbers, cast to the parameter's dtype); ``full`` names it in errors."""
        label = repr(full or (f"{self.name}.{local}" if self.name else local))
        old = getattr(self, local)
        if old is None:
            raise ValueError(f"parameter {label}: this {type(self).__name__} was built without it")
        value = np.asarray(value)
        if value.shape != old.shape:
            raise ValueError(f"parameter {label} must have shape {old.shape}, got {value.shape}")
        if value.dtype.kind not in "iuf" or not _checks.all_finite(value):
            raise ValueError(f"parameter {label} must be finite real numbers, got "
                             f"{'non-finite values' if value.dtype.kind in 'iuf' else value.dtype}")
        self._hold(local, np.array(value, dtype=old.dtype, order="C"), fresh=True)
        self._derive()

    def _hold(self, local, a, fresh=False):
        """Keep ``a`` as the parameter ``local``, read-only (``fresh``: nobody else
        has it, so no copy is needed)."""
        self.__dict__["_" + local] = None if a is None else (_freeze(a) if fresh else _owned(a))

    def _derive(self):
        """Compute what the layer derives from its parameters (nothing here)."""

    def copy(self):
        """The same layer as a new object, sharing the read-only parameter arrays."""
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        return new

    def astype(self, dtype):
        """A copy with its parameters in float ``dtype`` (shared where they already are)."""
        new = self.copy()
        new._cast(np.dtype(dtype))
        return new

    def _cast(self, dtype):
        changed = False
        for k, v in self.params().items():
            if v.dtype != dtype:
                self._hold(k, v.astype(dtype), fresh=True)
                changed = True
        if changed:
            self._derive()

    def __getstate__(self):
        state = self.__dict__.copy()
        for k in self.derived:
            state.pop(k, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        for k in self.param_names:
            self._hold(k, self.__dict__.get("_" + k))
        self._derive()

    def __repr__(self):
        parts = [f"{k}={v!r}" for k, v in self.config().items()] + [f"name={self.name!r}"]
        return f"{type(self).__name__}({', '.join(parts)})"


def _freeze(a):
    a.flags.writeable = False
    return a


def _owned(a):
    """``a`` itself if it is read-only down to the array owning its memory (nobody
    can write to it in place), else a read-only copy in the same memory order."""
    b = a
    while isinstance(b, np.ndarray) and not b.flags.writeable:
        if b.base is None:
            return a
        b = b.base
    return _freeze(np.array(a, order="K"))


class Chain:
    """Layers applied in order, each with a unique name: what :class:`Residual`
    and :class:`~randvis.network.Sequential` share.

    The chain holds copies of the layers it is given (the caller's objects are
    never renamed or changed); the copies share the read-only parameter arrays.
    Parameters are named ``<layer>.<param>``, a chain inside a chain adds its
    own prefix (``block2.dw.weight``), and :meth:`layer` finds a layer by such
    a dotted path.
    """

    layers: list

    @staticmethod
    def _adopt(layers, what="layer", where="", dtype=None):
        """Copies of ``layers`` (cast to ``dtype`` if given), unnamed ones named
        ``<type><index>``; names must be unique and must not contain ``"."``."""
        out, seen = [], set()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"{what} {i} is not a Layer: {layer!r}")
            layer = layer.copy() if dtype is None else layer.astype(dtype)
            if layer.name is None:
                layer.name = f"{type(layer).__name__.lower()}{i}"
            if "." in layer.name:
                raise ValueError(f"layer names must not contain '.': {layer.name!r}")
            if layer.name in seen:
                raise ValueError(f"duplicate layer name {layer.name!r}{where}")
            seen.add(layer.name)
            out.append(layer)
        return out

    def layer(self, name):
        """The layer called ``name``; ``"block.inner"`` reaches a layer inside a
        chain (a :class:`Residual` block)."""
        head, dot, rest = name.partition(".") if isinstance(name, str) else (None, "", "")
        for layer in self.layers:
            if layer.name == head:
                if not dot:
                    return layer
                if isinstance(layer, Chain):
                    try:
                        return layer.layer(rest)
                    except KeyError:
                        pass
                break
        raise KeyError(f"no layer named {name!r}")

    def params(self):
        """All parameters as ``{"layer.param": array}`` (read-only arrays)."""
        return {f"{l.name}.{k}": v for l in self.layers for k, v in l.params().items()}

    def _param_owner(self, name):
        """(layer, local name) of the parameter ``name``, or None."""
        head, dot, rest = name.partition(".") if isinstance(name, str) else (None, "", "")
        for layer in self.layers:
            if layer.name == head and dot:
                if isinstance(layer, Chain):
                    return layer._param_owner(rest)
                return (layer, rest) if rest in layer.params() else None
        return None

    def __getitem__(self, name):
        """The parameter ``name`` (a read-only array)."""
        owner = self._param_owner(name)
        if owner is None:
            raise KeyError(f"no parameter named {name!r}")
        return getattr(*owner)

    def __setitem__(self, name, value):
        """Replace the parameter ``name`` (see :meth:`Layer.set_param`)."""
        owner = self._param_owner(name)
        if owner is None:
            raise KeyError(f"no parameter named {name!r}")
        owner[0].set_param(owner[1], value, full=name)

    def _shapes(self, in_shape):
        """Per-sample shapes: the input's, then every layer's output."""
        shapes = [tuple(in_shape)]
        for layer in self.layers:
            shapes.append(tuple(layer.output_shape(shapes[-1])))
        return shapes

    def _specs(self):
        return [{"type": type(l).__name__, "name": l.name, **l.config()} for l in self.layers]

    def _forward(self, x):
        caches = []
        for layer in self.layers:
            x, cache = layer.forward(x)
            caches.append(cache)
        return x, caches

    def _backward(self, g, caches, rule):
        for layer, cache in zip(reversed(self.layers), reversed(caches)):
            g = layer.backward(g, cache, rule)
        return g

    def _gradients(self, g, caches):
        """(dL/dx, {"layer.param": grad}) for dL/dy = g: plain backpropagation."""
        grads = {}
        for layer, cache in zip(reversed(self.layers), reversed(caches)):
            for k, v in layer.param_grads(g, cache).items():
                grads[f"{layer.name}.{k}"] = v
            g = layer.backward(g, cache, SALIENCY)
        return g, grads


def _rule_blocks(g, mask, rule, backward):
    """Apply ``backward(block, mask, rule)`` to each rule's block of a stacked g."""
    rules = as_rules(rule)
    if len(rules) == 1:
        return backward(g, mask, rules[0])
    m = g.shape[0] // len(rules)
    out = np.empty_like(g)
    for i, r in enumerate(rules):
        out[i * m:(i + 1) * m] = backward(g[i * m:(i + 1) * m], mask, r)
    return out


def _rows(a):
    """View (n, c, ...) as (n*c, rest): the elementwise kernels parallelise over rows,
    and a single image would otherwise be one row. Row ``b`` of a stacked signal
    still meets mask row ``b % rows(mask)`` (the blocks are stacked along the batch)."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0] * a.shape[1], -1) if a.ndim >= 3 else a


def _masked_backward(g, mask, r):
    return K.relu_backward(_rows(g), _rows(mask), r.forward_mask, r.backward_relu).reshape(g.shape)


class ClippedReLU(Layer):
    """y = min(max(x, lo), hi) with the forward mask 1(lo < x < hi); backward
    T = h(R) * mask per the rule. :class:`ReLU` is (0, inf), :class:`ReLU6` is (0, 6).

    Parameters
    ----------
    lo : float
        Finite lower clip.
    hi : float or None
        Upper clip above ``lo``; ``inf`` or None for none.

    Examples
    --------
    >>> import numpy as np
    >>> y, mask = ClippedReLU(0, 2).forward(np.array([[-1.0, 1.0, 3.0]]))
    >>> y.tolist(), mask.tolist()
    ([[0.0, 1.0, 2.0]], [[False, True, False]])
    """

    def __init__(self, lo=0.0, hi=np.inf, name=None):
        super().__init__(name)
        hi = np.inf if hi is None else hi
        for v, what in ((lo, "lo"), (hi, "hi")):
            if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)):
                raise TypeError(f"ClippedReLU {what} must be a real number, got {_checks.short_repr(v)}")
        self.lo, self.hi = float(lo), float(hi)
        if not (np.isfinite(self.lo) and self.lo < self.hi):
            raise ValueError(f"ClippedReLU needs a finite lo below hi (hi may be inf), got lo={lo!r}, "
                             f"hi={hi!r}")

    def config(self):
        return {"lo": self.lo, "hi": None if self.hi == np.inf else self.hi}

    def forward(self, x):
        y, mask = K.clip_mask(_rows(x), self.lo, self.hi)
        return y.reshape(x.shape), mask.reshape(x.shape)

    def backward(self, g, mask, rule):
        return _rule_blocks(g, mask, rule, _masked_backward)


class ReLU(ClippedReLU):
    """y = max(x, 0) with the mask 1(x > 0): ``ClippedReLU(0, inf)``."""

    def __init__(self, name=None):
        super().__init__(0.0, np.inf, name)

    def config(self):
        return {}


class ReLU6(ClippedReLU):
    """y = min(max(x, 0), 6) with the mask 1(0 < x < 6): ``ClippedReLU(0, 6)``."""

    def __init__(self, name=None):
        super().__init__(0.0, 6.0, name)

    def config(self):
        return {}


class _Conv(Layer):
    """What Conv2d and DepthwiseConv2d share: a weight (out, in per group, kh,
    kw) with an optional bias, stride and padding, and the kernels for the
    parameter gradients."""

    param_names = ("weight", "bias")
    weight = Param()
    bias = Param()
    #: the layer's word for its weight in errors, and the weight's layout
    what, layout = "conv", "(f, c, kh, kw)"

    def __init__(self, weight, bias=None, stride=1, padding="same", name=None):
        super().__init__(name)
        weight = _weight_array(weight, f"{self.what} weight", name)
        if weight.ndim != 4 or 0 in weight.shape or not self._fits(weight.shape):
            raise ValueError(f"{self.what} weight must have shape {self.layout} with every size >= 1, "
                             f"got {weight.shape}")
        self._hold("weight", weight)
        self._hold("bias", _bias_array(bias, weight.shape[0], weight.dtype, f"{self.what} bias", name))
        self.stride = K.as_pair(stride, "stride")
        K.resolve_padding(padding, (1, 1), (1, 1), (1, 1))  # validates the spec
        self.padding = padding
        self._derive()

    @staticmethod
    def _fits(shape):
        return True

    @property
    def kernel_size(self):
        return self.weight.shape[2:]

    @property
    def in_channels(self):
        return self.weight.shape[1]

    def pads(self, in_hw):
        return K.resolve_padding(self.padding, in_hw, self.kernel_size, self.stride)

    def output_shape(self, in_shape):
        c, h, w = _expect_image(in_shape, self)
        if c != self.in_channels:
            raise ValueError(f"{self.name}: expects {self.in_channels} input channels, got {c}")
        ho, wo = K.output_hw((h, w), self.kernel_size, self.stride, self.pads((h, w)))
        return (self.weight.shape[0], ho, wo)

    def config(self):
        return {"stride": list(self.stride), "padding": jsonable(self.padding)}

    def param_grads(self, g, x):
        out = {"weight": self._weight_grad(g, x, self.kernel_size, self.stride, self.pads(x.shape[2:]))}
        if self.bias is not None:
            out["bias"] = self._bias_grad(g)
        return out


class Conv2d(_Conv):
    """2-D cross-correlation y = w * x + b.

    3x3 stride-1 layers wide enough for the Winograd route
    (:func:`kernels.winograd_suits`) keep their filters' Winograd transform,
    computed whenever the weights are set.

    Parameters
    ----------
    weight : ndarray, shape (f, c, kh, kw)
    bias : ndarray, shape (f,), or None
    stride : int or (sh, sw)
    padding : "same" (TensorFlow convention), "valid", int, (ph, pw) or
        ((top, bottom), (left, right))
    """

    derived = ("_wino",)
    _weight_grad = staticmethod(K.conv2d_backward_weight)
    _bias_grad = staticmethod(K.conv2d_backward_bias)

    @staticmethod
    def keeps_winograd(weight_shape, stride):
        """Whether a layer with weights of this shape keeps their Winograd
        transform (16 f c numbers): when some input size takes that route."""
        f, c, kh, kw = weight_shape
        return K.winograd_suits(c, f, (kh, kw), K.as_pair(stride, "stride"), _ANY_SIZE)

    def _derive(self):
        w = self.weight
        keep = self.keeps_winograd(w.shape, self.stride)
        self._wino = _freeze(K.winograd_filter_transform(w)) if keep else None

    def _winograd_filters(self, c, out_hw):
        """The kept Winograd transform when this input takes that route, else None."""
        w = self.weight
        if self._wino is None or not K.winograd_suits(c, w.shape[0], w.shape[2:], self.stride, out_hw):
            return None
        return self._wino

    def forward(self, x):
        pads = self.pads(x.shape[2:])
        out_hw = K.output_hw(x.shape[2:], self.kernel_size, self.stride, pads)
        y = K.conv2d_forward(x, self.weight, self.bias, self.stride, pads,
                             wino=self._winograd_filters(x.shape[1], out_hw))
        return y, x

    def backward(self, g, x, rule=None):
        return K.conv2d_backward_input(g, self.weight, x.shape[2:], self.stride, self.pads(x.shape[2:]),
                                       wino=self._winograd_filters(x.shape[1], g.shape[2:]))


class DepthwiseConv2d(_Conv):
    """Depthwise 2-D cross-correlation: channel ``c`` is filtered by its own
    kernel, ``y[:, c] = w[c, 0] * x[:, c] + b[c]`` (no channel mixing).

    The backward is the ordinary adjoint for every rule (a linear layer).

    Parameters
    ----------
    weight : ndarray, shape (c, 1, kh, kw)
        PyTorch's layout for ``Conv2d(c, c, k, groups=c)``.
    bias : ndarray, shape (c,), or None
    stride : int or (sh, sw)
    padding : "same" (TensorFlow convention), "valid", int, (ph, pw) or
        ((top, bottom), (left, right))

    Examples
    --------
    >>> import numpy as np
    >>> from randvis.layers import DepthwiseConv2d
    >>> layer = DepthwiseConv2d(np.ones((2, 1, 3, 3)), np.array([0.0, 1.0]), stride=2)
    >>> layer.output_shape((2, 7, 7))
    (2, 4, 4)
    >>> y, cache = layer.forward(np.ones((1, 2, 7, 7)))
    >>> y[0, :, 1, 1].tolist()                    # a full 3x3 window of ones (+ bias)
    [9.0, 10.0]
    >>> layer.backward(np.ones_like(y), cache, "gbp").shape
    (1, 2, 7, 7)
    """

    what, layout = "depthwise", "(c, 1, kh, kw)"
    _weight_grad = staticmethod(K.depthwise_backward_weight)
    _bias_grad = staticmethod(K.depthwise_backward_bias)

    @staticmethod
    def _fits(shape):
        return shape[1] == 1

    @property
    def channels(self):
        return self.weight.shape[0]

    in_channels = channels

    def forward(self, x):
        y = K.depthwise_forward(x, self.weight, self.bias, self.stride, self.pads(x.shape[2:]))
        return y, x

    def backward(self, g, x, rule=None):
        return K.depthwise_backward_input(g, self.weight, x.shape[2:], self.stride,
                                          self.pads(x.shape[2:]))


class Dense(Layer):
    """y = x @ W.T + b with W of shape (out, in)."""

    param_names = ("weight", "bias")
    weight = Param()
    bias = Param()

    def __init__(self, weight, bias=None, name=None):
        super().__init__(name)
        weight = _weight_array(weight, "dense weight", name)
        if weight.ndim != 2 or 0 in weight.shape:
            raise ValueError(f"dense weight must have shape (out, in) with out, in >= 1, got {weight.shape}")
        self._hold("weight", weight)
        self._hold("bias", _bias_array(bias, weight.shape[0], weight.dtype, "dense bias", name))

    @property
    def in_features(self):
        return self.weight.shape[1]

    @property
    def out_features(self):
        return self.weight.shape[0]

    def output_shape(self, in_shape):
        if len(in_shape) != 1 or in_shape[0] != self.in_features:
            raise ValueError(f"{self.name}: expects {self.in_features} input features, "
                             f"got per-sample shape {tuple(in_shape)}")
        return (self.out_features,)

    def forward(self, x):
        y = K.matmul(x, self.weight.T)  # independent of thread counts (kernels.gemm)
        if self.bias is not None:
            y += self.bias
        return y, x

    def backward(self, g, x, rule=None):
        return K.matmul(g, self.weight)

    def param_grads(self, g, x):
        out = {"weight": K.matmul(g.T, x)}
        if self.bias is not None:
            out["bias"] = g.sum(axis=0)
        return out


class StreamedDense(Layer):
    """A random dense layer generated in row blocks from its seed, never stored.

    Row ``i`` of the weight matrix is ``std * z`` with ``z`` drawn (float64,
    then cast) from ``Generator(SFC64(SeedSequence([seed, i])))``: every row is
    addressable on its own, so the numbers do not depend on the block size, the
    thread count or on which rows a backward pass needs. Forward streams all
    rows; backward streams only the rows whose incoming signal is non-zero
    (a one-hot class seed through a streamed head touches one row). Memory is
    ``block_rows * in_features`` per worker thread.

    Generating the numbers is the cost; the worker threads (numba's thread
    count) generate the next blocks while the calling thread multiplies the
    current one. While it streams, BLAS is limited to one thread (process-wide,
    restored afterwards, :func:`kernels.one_blas_thread`): its threads, woken
    for each block's small product, would take the generators' cores (measured
    1.5x faster on 2 cores), and a single-threaded product's sums do not depend
    on the thread count.

    Parameters
    ----------
    in_features, out_features : int
    std : float
        Standard deviation of the Gaussian weights.
    seed : int
    bias : ndarray, shape (out,), or None
    dtype : float32 or float64
    block_rows : int, optional
        Rows generated at once (default: about 32 MB per block).

    Examples
    --------
    >>> import numpy as np
    >>> layer = StreamedDense(6, 4, std=0.5, seed=3, dtype=np.float64)
    >>> dense = layer.materialize()
    >>> x = np.ones((1, 6))
    >>> np.allclose(layer.forward(x)[0], dense.forward(x)[0])
    True
    """

    param_names = ("bias",)
    bias = Param()

    def __init__(self, in_features, out_features, std, seed, bias=None, dtype=np.float32,
                 block_rows=None, name=None):
        super().__init__(name)
        self.in_features = _checks.positive_int(in_features, "in_features")
        self.out_features = _checks.positive_int(out_features, "out_features")
        self.std = _checks.positive_real(std, "std")
        self.seed = _checks.nonnegative_int(seed, "seed")
        self.dtype = _checks.float_dtype(dtype)
        self._hold("bias", _bias_array(bias, self.out_features, self.dtype, "streamed dense bias", name))
        if block_rows is None:
            block_rows = max(1, (32 << 20) // (8 * self.in_features))
        self.block_rows = _checks.positive_int(block_rows, "block_rows")
        limits.check_streamed_weights(self.in_features * self.out_features,
                                      f"{name or 'StreamedDense'} ({self.out_features} x {self.in_features})")

    def _cast(self, dtype):
        super()._cast(dtype)
        self.dtype = dtype

    def output_shape(self, in_shape):
        if len(in_shape) != 1 or in_shape[0] != self.in_features:
            raise ValueError(f"{self.name}: expects {self.in_features} input features, "
                             f"got per-sample shape {tuple(in_shape)}")
        return (self.out_features,)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "std": self.std, "seed": self.seed}

    def rows(self, start, stop):
        """Weight rows ``start:stop`` as an array of shape (stop - start, in)."""
        out = np.empty((stop - start, self.in_features), dtype=np.float64)
        for k, i in enumerate(range(start, stop)):
            gen = np.random.Generator(np.random.SFC64(np.random.SeedSequence([self.seed, i])))
            gen.standard_normal(out=out[k])
        out *= self.std
        return out.astype(self.dtype, copy=False)

    def materialize(self):
        """The equivalent :class:`Dense` layer with the full weight matrix."""
        limits.check_memory(self.out_features * self.in_features * self.dtype.itemsize,
                            f"{self.name or 'StreamedDense'}: the {self.out_features} x {self.in_features} "
                            "weight matrix")
        w = np.empty((self.out_features, self.in_features), dtype=self.dtype)
        for s, e, rows in self._blocks():
            w[s:e] = rows
        return Dense(_freeze(w), self.bias, name=self.name)

    def _blocks(self, row_ids=None):
        """Yield (start, stop, rows) in order, generated by a thread pool."""
        starts = list(range(0, self.out_features, self.block_rows))
        if row_ids is not None:
            needed = set((np.asarray(row_ids) // self.block_rows).tolist())
            starts = [s for s in starts if s // self.block_rows in needed]
        spans = [(s, min(s + self.block_rows, self.out_features)) for s in starts]
        n_weights = sum(e - s for s, e in spans) * self.in_features
        limits.check_streamed_weights(n_weights, f"{self.name or 'StreamedDense'} ({self.out_features} x "
                                                 f"{self.in_features}), one pass")
        bar = tqdm(total=len(spans), desc=f"{self.name}: streaming weights", unit="block",
                   leave=False, disable=True if n_weights < PROGRESS_WEIGHTS else None)
        workers = max(1, K.get_num_threads())
        with bar, K.one_blas_thread(), cf.ThreadPoolExecutor(workers) as pool:
            pending = [pool.submit(self.rows, s, e) for s, e in spans[:workers + 1]]
            nxt = len(pending)
            for k, (s, e) in enumerate(spans):
                w = pending[k].result()
                pending[k] = None
                if nxt < len(spans):
                    pending.append(pool.submit(self.rows, *spans[nxt]))
                    nxt += 1
                bar.update()
                yield s, e, w

    def forward(self, x):
        y = np.empty((x.shape[0], self.out_features), dtype=x.dtype)
        for s, e, w in self._blocks():
            y[:, s:e] = K.matmul(x, w.T)
        if self.bias is not None:
            y += self.bias
        return y, x

    def backward(self, g, x=None, rule=None):
        gx = np.zeros((g.shape[0], self.in_features), dtype=g.dtype)
        live = np.flatnonzero(np.any(g != 0, axis=0))
        if live.size:
            for s, e, w in self._blocks(live):
                gx += K.matmul(g[:, s:e], w)
        return gx

    def param_grads(self, g, x):
        return {} if self.bias is None else {"bias": g.sum(axis=0)}


class _Pool(Layer):
    def __init__(self, size, stride=None, padding="valid", name=None):
        super().__init__(name)
        self.size = K.as_pair(size, "pool size")
        self.stride = self.size if stride is None else K.as_pair(stride, "pool stride")
        K.resolve_padding(padding, (1, 1), (1, 1), (1, 1))
        self.padding = padding

    def pads(self, in_hw):
        pads = K.resolve_padding(self.padding, in_hw, self.size, self.stride)
        if max(pads[:2]) >= self.size[0] or max(pads[2:]) >= self.size[1]:
            raise ValueError(f"{self.name}: padding {pads} would leave windows with no pixels")
        return pads

    def output_shape(self, in_shape):
        c, h, w = _expect_image(in_shape, self)
        return (c,) + K.output_hw((h, w), self.size, self.stride, self.pads((h, w)))

    def config(self):
        return {"size": list(self.size), "stride": list(self.stride),
                "padding": jsonable(self.padding)}


class MaxPool2d(_Pool):
    """Max over windows; backward routes every rule's signal to the forward argmax
    (switches; ties go to the first maximum in row-major window order)."""

    def forward(self, x):
        y, switches = K.maxpool2d_forward(x, self.size, self.stride, self.pads(x.shape[2:]))
        return y, (switches, x.shape[2:])

    def backward(self, g, cache, rule=None):
        switches, hw = cache
        return K.maxpool2d_backward(g, switches, hw, (self.size, self.stride, self.pads(hw)))


class AvgPool2d(_Pool):
    """Mean over each window's in-image pixels; backward spreads evenly."""

    def forward(self, x):
        return K.avgpool2d_forward(x, self.size, self.stride, self.pads(x.shape[2:])), x.shape[2:]

    def backward(self, g, hw, rule=None):
        return K.avgpool2d_backward(g, hw, self.size, self.stride, self.pads(hw))


class GlobalAvgPool2d(Layer):
    """(n, c, h, w) -> (n, c): the mean of every channel plane; backward spreads
    ``g[n, c] / (h*w)`` evenly over the plane (the adjoint, for every rule).

    Examples
    --------
    >>> import numpy as np
    >>> from randvis.layers import GlobalAvgPool2d
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> y, hw = GlobalAvgPool2d().forward(x)
    >>> y.tolist()
    [[1.5, 5.5]]
    >>> GlobalAvgPool2d().backward(np.array([[4.0, 8.0]]), hw)[0, :, 0, 0].tolist()
    [1.0, 2.0]
    """

    def output_shape(self, in_shape):
        c, _, _ = _expect_image(in_shape, self)
        return (c,)

    def forward(self, x):
        n, c, h, w = x.shape
        return x.reshape(n, c, h * w).mean(axis=2), (h, w)

    def backward(self, g, hw, rule=None):
        h, w = hw
        spread = g / g.dtype.type(h * w)
        return np.ascontiguousarray(np.broadcast_to(spread[:, :, None, None], g.shape + (h, w)))


class Residual(Chain, Layer):
    """A residual block ``y = x + body(x)``, ``body`` a chain of layers.

    Backward: ``g + body.backward(g)`` with the same rule(s) in the body (the
    ordinary adjoint of the addition: the identity branch passes the signal
    unchanged, whatever the rule). The body's parameters are named
    ``<inner layer>.<param>`` here, so ``<residual>.<inner layer>.<param>`` in a
    :class:`~randvis.network.Sequential`.

    Parameters
    ----------
    body : list of Layer
        Copied (see :class:`Chain`); layers without a name get
        ``<type><index>`` names; names must be unique and must not contain
        ``"."``. The body must keep the shape.

    Examples
    --------
    >>> import numpy as np
    >>> from randvis.layers import Conv2d, ReLU6, Residual
    >>> block = Residual([Conv2d(np.eye(2).reshape(2, 2, 1, 1), name="pw"), ReLU6()])
    >>> sorted(block.params())
    ['pw.weight']
    >>> y, cache = block.forward(np.full((1, 2, 3, 3), 7.0))
    >>> float(y[0, 0, 0, 0])                     # 7 + relu6(7)
    13.0
    >>> float(block.backward(np.ones_like(y), cache, "saliency")[0, 0, 0, 0])  # 1 + 0
    1.0
    """

    def __init__(self, body, name=None):
        super().__init__(name)
        body = list(body)
        if not body:
            raise ValueError("a residual block needs at least one layer in its body")
        self.layers = self._adopt(body, "body layer", " in a residual block")

    @property
    def body(self):
        """The layers of the body, in order."""
        return self.layers

    def copy(self):
        new = super().copy()
        new.layers = [l.copy() for l in self.layers]
        return new

    def _cast(self, dtype):
        for layer in self.layers:
            layer._cast(dtype)

    def output_shape(self, in_shape):
        shape = self._shapes(in_shape)[-1]
        if shape != tuple(in_shape):
            raise ValueError(f"{self.name}: the body maps {tuple(in_shape)} to {shape}; "
                             "a residual block must keep the shape")
        return shape

    def config(self):
        return {"body": self._specs()}

    def forward(self, x):
        h, caches = self._forward(x)
        return x + h, caches

    def backward(self, g, caches, rule):
        return g + self._backward(g, caches, rule)

    def param_grads(self, g, caches):
        return self._gradients(g, caches)[1]


class Flatten(Layer):
    """(n, c, h, w) -> (n, c*h*w) in C order (channel-major, PyTorch's order)."""

    def output_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, x):
        return x.reshape(x.shape[0], -1), x.shape[1:]

    def backward(self, g, shape, rule=None):
        return g.reshape((g.shape[0],) + tuple(shape))


def _weight_array(a, what, name):
    """A weight as a real, finite array; integer weights become float64 (exact), so a
    float bias is never cut to the weight's integer type."""
    label = f"{name}: {what}" if name else what
    a = _checks.finite_array(a, label)
    return a.astype(np.float64) if a.dtype.kind in "iu" else a


def _bias_array(b, n_out, dtype, what, name):
    """A bias as a real, finite array of shape (n_out,) in ``dtype``."""
    if b is None:
        return None
    label = f"{name}: {what}" if name else what
    b = _checks.finite_array(b, label)
    if b.shape != (n_out,):
        raise ValueError(f"{label} must have shape ({n_out},), got {b.shape}")
    return b.astype(dtype, copy=False)


def _expect_image(in_shape, layer):
    if len(in_shape) != 3:
        raise ValueError(f"{layer.name}: expects per-sample shape (c, h, w), got {tuple(in_shape)}")
    return in_shape


LAYER_TYPES = {cls.__name__: cls for cls in
               (Conv2d, DepthwiseConv2d, Dense, StreamedDense, ClippedReLU, ReLU, ReLU6, MaxPool2d,
                AvgPool2d, GlobalAvgPool2d, Flatten, Residual)}
