"""Layers as pure forward/backward pairs.

Each layer has ``forward(x) -> (y, cache)`` and ``backward(g, cache, rule) -> gx``
side by side; nothing is stored on the layer during a pass, so one forward
trace serves any number of backward passes. ``rule`` is a :class:`~randvis.rules.Rule`
or a tuple of rules; a tuple means ``g`` stacks one block per rule along the
batch axis (how one backward pass computes all three maps with GEMMs three
times wider). Only ReLU-like layers look at the rule: every other layer applies
its ordinary adjoint (max-pooling routes to the forward argmax for all rules).

Images are ``(n, c, h, w)``; convolution weights ``(f, c, kh, kw)``; dense
weights ``(out, in)`` with ``y = x @ W.T + b`` (PyTorch's conventions, so
weights move between frameworks without transposes).
"""
from __future__ import annotations

import concurrent.futures as cf

import numpy as np
from tqdm.auto import tqdm

from . import _checks
from . import kernels as K
from . import limits
from .rules import SALIENCY, as_rules

__all__ = ["Layer", "Conv2d", "DepthwiseConv2d", "Dense", "StreamedDense", "ReLU", "ReLU6",
           "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Flatten", "Residual", "LAYER_TYPES"]

#: streamed passes over more weights than this show a progress bar (on a terminal)
PROGRESS_WEIGHTS = 1 << 30


class Layer:
    """Base class: parameters by name, shape inference, config for saving."""

    param_names: tuple = ()

    def __init__(self, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"a layer name must be a str or None, got {_checks.short_repr(name)}")
        self.name = name

    def params(self):
        """Parameters of this layer by local name (the arrays themselves)."""
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

    def astype(self, dtype):
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        for k, v in self.params().items():
            setattr(new, k, v.astype(dtype))
        return new

    def __repr__(self):
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({cfg}, name={self.name!r})"


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


class ReLU(Layer):
    """y = max(x, 0); backward T = h(R) * 1(x > 0) per the rule."""

    def forward(self, x):
        y, mask = K.bias_relu(x, None)
        return y, mask

    def backward(self, g, mask, rule):
        return _rule_blocks(g, mask, rule, _masked_backward)


class ReLU6(Layer):
    """y = min(max(x, 0), 6); forward mask 1(0 < x < 6), then the rule as for ReLU."""

    def forward(self, x):
        y, mask = K.clip_mask(_rows(x), 0.0, 6.0)
        return y.reshape(x.shape), mask.reshape(x.shape)

    def backward(self, g, mask, rule):
        return _rule_blocks(g, mask, rule, _masked_backward)


class Conv2d(Layer):
    """2-D cross-correlation y = w * x + b.

    Parameters
    ----------
    weight : ndarray, shape (f, c, kh, kw)
    bias : ndarray, shape (f,), or None
    stride : int or (sh, sw)
    padding : "same" (TensorFlow convention), "valid", int, (ph, pw) or
        ((top, bottom), (left, right))
    """

    param_names = ("weight", "bias")

    def __init__(self, weight, bias=None, stride=1, padding="same", name=None):
        super().__init__(name)
        weight = _weight_array(weight, "conv weight", name)
        if weight.ndim != 4 or 0 in weight.shape:
            raise ValueError(f"conv weight must have shape (f, c, kh, kw) with every size >= 1, "
                             f"got {weight.shape}")
        self.weight = weight
        self.bias = _bias_array(bias, weight.shape[0], weight.dtype, "conv bias", name)
        self.stride = K.as_pair(stride, "stride")
        K.resolve_padding(padding, (1, 1), (1, 1), (1, 1))  # validates the spec
        self.padding = padding

    @property
    def kernel_size(self):
        return self.weight.shape[2:]

    def pads(self, in_hw):
        return K.resolve_padding(self.padding, in_hw, self.kernel_size, self.stride)

    def output_shape(self, in_shape):
        c, h, w = _expect_image(in_shape, self)
        if c != self.weight.shape[1]:
            raise ValueError(f"{self.name}: expects {self.weight.shape[1]} input channels, got {c}")
        ho, wo = K.output_hw((h, w), self.kernel_size, self.stride, self.pads((h, w)))
        return (self.weight.shape[0], ho, wo)

    def config(self):
        return {"stride": list(self.stride), "padding": _jsonable(self.padding)}

    def _winograd_filters(self, c, out_hw):
        """The Winograd transform of the filters when this layer's shape takes that
        route (kernels.conv.winograd_suits), else None.

        The transform is kept with a copy of the weights it came from and reused
        while the weights are equal to that copy, so writing to ``weight`` in place
        or replacing it is always seen.
        """
        w = self.weight
        if not K.winograd_suits(c, w.shape[0], w.shape[2:], self.stride, out_hw):
            return None
        kept = self.__dict__.get("_winograd")
        if kept is None or kept[0].dtype != w.dtype or not np.array_equal(kept[0], w):
            kept = (w.copy(), K.winograd_filter_transform(w))
            self._winograd = kept
        return kept[1]

    def __getstate__(self):  # the Winograd cache is not part of a layer's state
        state = self.__dict__.copy()
        state.pop("_winograd", None)
        return state

    def forward(self, x):
        pads = self.pads(x.shape[2:])
        out_hw = K.output_hw(x.shape[2:], self.kernel_size, self.stride, pads)
        y = K.conv2d_forward(x, self.weight, self.bias, self.stride, pads,
                             wino=self._winograd_filters(x.shape[1], out_hw))
        return y, x

    def backward(self, g, x, rule=None):
        return K.conv2d_backward_input(g, self.weight, x.shape[2:], self.stride, self.pads(x.shape[2:]),
                                       wino=self._winograd_filters(x.shape[1], g.shape[2:]))

    def param_grads(self, g, x):
        out = {"weight": K.conv2d_backward_weight(g, x, self.kernel_size, self.stride,
                                                  self.pads(x.shape[2:]))}
        if self.bias is not None:
            out["bias"] = K.conv2d_backward_bias(g)
        return out


class DepthwiseConv2d(Layer):
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

    param_names = ("weight", "bias")

    def __init__(self, weight, bias=None, stride=1, padding="same", name=None):
        super().__init__(name)
        weight = _weight_array(weight, "depthwise weight", name)
        if weight.ndim != 4 or weight.shape[1] != 1 or 0 in weight.shape:
            raise ValueError(f"depthwise weight must have shape (c, 1, kh, kw) with every size >= 1, "
                             f"got {weight.shape}")
        self.weight = weight
        self.bias = _bias_array(bias, weight.shape[0], weight.dtype, "depthwise bias", name)
        self.stride = K.as_pair(stride, "stride")
        K.resolve_padding(padding, (1, 1), (1, 1), (1, 1))  # validates the spec
        self.padding = padding

    @property
    def channels(self):
        return self.weight.shape[0]

    @property
    def kernel_size(self):
        return self.weight.shape[2:]

    def pads(self, in_hw):
        return K.resolve_padding(self.padding, in_hw, self.kernel_size, self.stride)

    def output_shape(self, in_shape):
        c, h, w = _expect_image(in_shape, self)
        if c != self.channels:
            raise ValueError(f"{self.name}: expects {self.channels} input channels, got {c}")
        ho, wo = K.output_hw((h, w), self.kernel_size, self.stride, self.pads((h, w)))
        return (c, ho, wo)

    def config(self):
        return {"stride": list(self.stride), "padding": _jsonable(self.padding)}

    def forward(self, x):
        y = K.depthwise_forward(x, self.weight, self.bias, self.stride, self.pads(x.shape[2:]))
        return y, x

    def backward(self, g, x, rule=None):
        return K.depthwise_backward_input(g, self.weight, x.shape[2:], self.stride,
                                          self.pads(x.shape[2:]))

    def param_grads(self, g, x):
        out = {"weight": K.depthwise_backward_weight(g, x, self.kernel_size, self.stride,
                                                     self.pads(x.shape[2:]))}
        if self.bias is not None:
            out["bias"] = K.depthwise_backward_bias(g)
        return out


class Dense(Layer):
    """y = x @ W.T + b with W of shape (out, in)."""

    param_names = ("weight", "bias")

    def __init__(self, weight, bias=None, name=None):
        super().__init__(name)
        weight = _weight_array(weight, "dense weight", name)
        if weight.ndim != 2 or 0 in weight.shape:
            raise ValueError(f"dense weight must have shape (out, in) with out, in >= 1, got {weight.shape}")
        self.weight = weight
        self.bias = _bias_array(bias, weight.shape[0], weight.dtype, "dense bias", name)

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

    def __init__(self, in_features, out_features, std, seed, bias=None, dtype=np.float32,
                 block_rows=None, name=None):
        super().__init__(name)
        self.in_features = _checks.positive_int(in_features, "in_features")
        self.out_features = _checks.positive_int(out_features, "out_features")
        self.std = _checks.positive_real(std, "std")
        self.seed = _checks.nonnegative_int(seed, "seed")
        self.dtype = _checks.float_dtype(dtype)
        self.bias = None
        if bias is not None:
            self.bias = _bias_array(bias, self.out_features, self.dtype, "streamed dense bias", name)
        if block_rows is None:
            block_rows = max(1, (32 << 20) // (8 * self.in_features))
        self.block_rows = _checks.positive_int(block_rows, "block_rows")
        limits.check_streamed_weights(self.in_features * self.out_features,
                                      f"{name or 'StreamedDense'} ({self.out_features} x {self.in_features})")

    def astype(self, dtype):
        new = super().astype(dtype)
        new.dtype = np.dtype(dtype)
        return new

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
        return Dense(w, self.bias, name=self.name)

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
                "padding": _jsonable(self.padding)}


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


class Residual(Layer):
    """A residual block ``y = x + body(x)``, ``body`` a chain of layers.

    Backward: ``g + body.backward(g)`` with the same rule(s) in the body (the
    ordinary adjoint of the addition: the identity branch passes the signal
    unchanged, whatever the rule). The body's parameters are named
    ``<inner layer>.<param>`` here, so ``<residual>.<inner layer>.<param>`` in a
    :class:`~randvis.network.Sequential`.

    Parameters
    ----------
    body : list of Layer
        Layers without a name get ``<type><index>`` names; names must be
        unique and must not contain ``"."``. The body must keep the shape.

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
        seen = set()
        for i, layer in enumerate(body):
            if not isinstance(layer, Layer):
                raise TypeError(f"body layer {i} is not a Layer: {layer!r}")
            if layer.name is None:
                layer.name = f"{type(layer).__name__.lower()}{i}"
            if "." in layer.name:
                raise ValueError(f"layer names inside a residual block must not contain '.': {layer.name!r}")
            if layer.name in seen:
                raise ValueError(f"duplicate layer name {layer.name!r} in a residual block")
            seen.add(layer.name)
        self.body = body

    def layer(self, name):
        for layer in self.body:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r} in {self.name!r}")

    def params(self):
        return {f"{l.name}.{k}": v for l in self.body for k, v in l.params().items()}

    def astype(self, dtype):
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        new.body = [l.astype(dtype) for l in self.body]
        return new

    def output_shape(self, in_shape):
        shape = tuple(in_shape)
        for layer in self.body:
            shape = tuple(layer.output_shape(shape))
        if shape != tuple(in_shape):
            raise ValueError(f"{self.name}: the body maps {tuple(in_shape)} to {shape}; "
                             "a residual block must keep the shape")
        return shape

    def config(self):
        return {"body": [{"type": type(l).__name__, "name": l.name, **l.config()} for l in self.body]}

    def forward(self, x):
        caches = []
        h = x
        for layer in self.body:
            h, cache = layer.forward(h)
            caches.append(cache)
        return x + h, caches

    def _body_backward(self, g, caches, rule):
        for layer, cache in zip(reversed(self.body), reversed(caches)):
            g = layer.backward(g, cache, rule)
        return g

    def backward(self, g, caches, rule):
        return g + self._body_backward(g, caches, rule)

    def param_grads(self, g, caches):
        out = {}
        for layer, cache in zip(reversed(self.body), reversed(caches)):
            for k, v in layer.param_grads(g, cache).items():
                out[f"{layer.name}.{k}"] = v
            g = layer.backward(g, cache, SALIENCY)
        return out


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


def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(t) for t in v]
    return v


LAYER_TYPES = {cls.__name__: cls for cls in
               (Conv2d, DepthwiseConv2d, Dense, StreamedDense, ReLU, ReLU6, MaxPool2d, AvgPool2d,
                GlobalAvgPool2d, Flatten, Residual)}
