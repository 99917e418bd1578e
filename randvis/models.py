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
    The paper's code: truncated normal (|z| <= 2 std) with std 0.1, conv biases
    0 and dense biases 1.0.

Dense layers with more than ``STREAM_THRESHOLD`` weights become
:class:`~randvis.layers.StreamedDense` (generated from a seed in blocks, never
stored) unless ``stream`` says otherwise.
"""
from __future__ import annotations

import numbers

import numpy as np

from .layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU, StreamedDense
from .network import Sequential

__all__ = ["three_layer_cnn", "fcn", "random_cnn", "vgg16", "STREAM_THRESHOLD", "VGG16_BLOCKS"]

#: dense layers with more weights than this are streamed by default (1 GiB in float32)
STREAM_THRESHOLD = 1 << 28

INITS = ("gaussian", "he", "paper")

#: VGG-16 configuration D: convolution widths per block
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _posint(v, name):
    if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _check_init(init):
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")


def _std(init, std, fan_in):
    if init == "paper":
        return 0.1
    if std is None or init == "he":
        return float(np.sqrt(2.0 / fan_in))
    if not std > 0:
        raise ValueError(f"standard deviation must be > 0, got {std!r}")
    return float(std)


def _draw(rng, shape, std, init):
    z = rng.standard_normal(shape)
    if init == "paper":  # truncated normal: redraw beyond 2 std, as tf.truncated_normal
        bad = np.abs(z) > 2
        while bad.any():
            z[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(z) > 2
    return z * std


def _conv(rng, c_out, c_in, k, init, std=None, bias=False, **kw):
    s = _std(init, std, c_in * k * k)
    w = _draw(rng, (c_out, c_in, k, k), s, init)
    b = np.zeros(c_out) if (bias or init == "paper") else None
    return Conv2d(w, b, **kw)


def _dense(rng, n_out, n_in, init, std=None, bias=False, stream=None, dtype=np.float32, name=None):
    s = _std(init, std, n_in)
    b = None
    if init == "paper":
        b = np.ones(n_out)
    elif bias:
        b = np.zeros(n_out)
    big = n_out * n_in > STREAM_THRESHOLD
    if init == "paper":
        if stream:
            raise ValueError("streamed layers are Gaussian; use init='gaussian' or 'he'")
        return Dense(_draw(rng, (n_out, n_in), s, init), b, name=name)
    # Gaussian dense layers are always defined by a seed and drawn row by row, so
    # the streamed and the materialised layer of one model seed hold the same numbers.
    layer = StreamedDense(n_in, n_out, s, int(rng.integers(2 ** 63)), b, dtype=dtype, name=name)
    if stream or (stream is None and big):
        return layer
    return layer.materialize()


def _pool(pool, pool_type, name):
    if pool is None:
        return None
    if isinstance(pool, numbers.Integral):
        size, stride = pool, pool
    else:
        size, stride = pool
    cls = {"max": MaxPool2d, "avg": AvgPool2d}.get(pool_type)
    if cls is None:
        raise ValueError(f"pool_type must be 'max' or 'avg', got {pool_type!r}")
    return cls(size, stride, padding="valid", name=name)


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

    Examples
    --------
    >>> net = three_layer_cnn(16, input_shape=(3, 32, 32), rng=0)
    >>> [layer.name for layer in net.layers]
    ['conv1', 'relu1', 'flatten', 'fc']
    """
    n = _posint(n_filters, "n_filters")
    k = _posint(kernel_size, "kernel_size")
    _check_init(init)
    rng = _rng(rng)
    c = input_shape[0]
    w_std = _std(init, w_std, c * k * k)
    layers = [_conv(rng, n, c, k, init, w_std, stride=stride, padding=padding, name="conv1"),
              ReLU(name="relu1")]
    p = _pool(pool, pool_type, "pool1")
    if p is not None:
        layers.append(p)
    layers.append(Flatten(name="flatten"))
    feat = _feature_size(layers, input_shape, dtype)
    v_std = _std(init, v_std, feat)
    layers.append(_dense(rng, _posint(n_classes, "n_classes"), feat, init, v_std, stream=stream,
                         dtype=dtype, name="fc"))
    info = {"builder": "three_layer_cnn", "n_filters": n, "kernel_size": k, "stride": stride,
            "padding": padding, "pool": pool, "pool_type": pool_type, "init": init,
            "w_std": w_std, "v_std": v_std}
    return Sequential(layers, input_shape, dtype, _jsonable(info))


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
    init : "gaussian", "he" or "paper"
    dtype : float32 or float64
    rng : Generator, int or None
    stream : bool or None
        Stream the dense layers from their seeds (None: those above
        STREAM_THRESHOLD weights).

    Returns
    -------
    Sequential

    Examples
    --------
    >>> net = fcn(64, input_shape=(3, 16, 16), rng=0)
    >>> net.n_classes
    10
    """
    n = _posint(n_hidden, "n_hidden")
    _check_init(init)
    rng = _rng(rng)
    d = int(np.prod(input_shape))
    w_std, v_std = _std(init, w_std, d), _std(init, v_std, n)
    layers = [Flatten(name="flatten"),
              _dense(rng, n, d, init, w_std, stream=stream, dtype=dtype, name="fc1"),
              ReLU(name="relu1"),
              _dense(rng, _posint(n_classes, "n_classes"), n, init, v_std, stream=stream,
                     dtype=dtype, name="fc2")]
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

    Examples
    --------
    >>> net = random_cnn(4, width=8, pool_every=2, input_shape=(3, 16, 16), rng=0)
    >>> net.shapes[-2]
    (128,)
    """
    depth = _posint(depth, "depth")
    width = _posint(width, "width")
    k = _posint(kernel_size, "kernel_size")
    if pool_every is not None:
        _posint(pool_every, "pool_every")
    _check_init(init)
    rng = _rng(rng)
    layers, c = [], input_shape[0]
    for i in range(1, depth + 1):
        layers += [_conv(rng, width, c, k, init, std, name=f"conv{i}"), ReLU(name=f"relu{i}")]
        c = width
        if pool_every and i % pool_every == 0:
            layers.append(_pool(2, pool_type, f"pool{i // pool_every}"))
    layers.append(Flatten(name="flatten"))
    feat = _feature_size(layers, input_shape, dtype)
    layers.append(_dense(rng, _posint(n_classes, "n_classes"), feat, init, std, stream=stream,
                         dtype=dtype, name="fc"))
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
    weights : path, optional
        Trained weights (randvis npz, the paper's ``vgg16_weights.npz``, a
        PyTorch VGG-16 state_dict or Keras .h5; see :func:`randvis.weights.load_vgg16`).
        The architecture then comes from the file.
    sha256 : str, optional
        Expected digest of the weight file.
    dtype : float32 or float64
    rng : Generator, int or None
        Draws the random weights (ignored with ``weights``).

    Returns
    -------
    Sequential

    Examples
    --------
    >>> net = vgg16(n_classes=10, input_shape=(3, 32, 32), widths=(4, 4, 8, 8, 8), fc_width=16, rng=0)
    >>> net.layers[-1].name, net.n_classes
    ('fc8', 10)
    """
    if weights is not None:
        from .weights import load_vgg16

        net = load_vgg16(weights, dtype=dtype, sha256=sha256)
        if n_classes not in (None, 1000, net.n_classes):
            raise ValueError(f"n_classes={n_classes} but {weights} has {net.n_classes} classes")
        return net
    _check_init(init)
    rng = _rng(rng)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (c, h, w), got {input_shape}")
    if input_shape[1] % 32 or input_shape[2] % 32:
        raise ValueError(f"VGG-16 needs h and w divisible by 32, got {input_shape[1:]}")
    widths = [b[0] for b in VGG16_BLOCKS] if widths is None else list(widths)
    if len(widths) != 5:
        raise ValueError(f"widths must give 5 block widths, got {widths}")
    layers, c = [], input_shape[0]
    for bi, (block, wdt) in enumerate(zip(VGG16_BLOCKS, widths), start=1):
        for li in range(1, len(block) + 1):
            layers += [_conv(rng, wdt, c, 3, init, bias=True, name=f"conv{bi}_{li}"),
                       ReLU(name=f"relu{bi}_{li}")]
            c = wdt
        layers.append(_pool(2, pool_type, f"pool{bi}"))
    layers.append(Flatten(name="flatten"))
    feat = c * (input_shape[1] // 32) * (input_shape[2] // 32)
    fcw = _posint(fc_width, "fc_width")
    layers += [_dense(rng, fcw, feat, init, bias=True, stream=False, name="fc6"), ReLU(name="relu6"),
               _dense(rng, fcw, fcw, init, bias=True, stream=False, name="fc7"), ReLU(name="relu7"),
               _dense(rng, _posint(n_classes, "n_classes"), fcw, init, bias=True, stream=False,
                      name="fc8")]
    info = {"builder": "vgg16", "init": init, "widths": widths, "fc_width": fcw, "pool_type": pool_type}
    return Sequential(layers, input_shape, dtype, info)


def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(t) for t in v]
    if isinstance(v, dict):
        return {k: _jsonable(t) for k, t in v.items()}
    return v


def _feature_size(layers, input_shape, dtype):
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (c, h, w), got {input_shape}")
    for layer in layers:
        shape = layer.output_shape(shape)
    return int(np.prod(shape))
