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

import numpy as np

from ..efficientnet import INPUT_RANGE, PIXEL_LEVEL, pixels_to_input
from ..images import preprocess, resize_image

#: precision of the trained networks' maps, attacks and comparisons
DTYPE = np.float64


def efficientnet(ctx, weights="pretrained", dtype=DTYPE):
    from ..efficientnet import efficientnet_lite0

    size = ctx.images[0][1].shape[1]
    return efficientnet_lite0(weights, dtype=dtype, input_shape=(3, size, size),
                              rng=ctx.seed_of("efficientnet-random"))


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
    """[(label, net, to_input)] for the class-sensitivity experiment, in ``dtype``."""
    from ..models import vgg16

    size = ctx.images[0][1].shape[1]
    out = [("random VGG-16", vgg16(input_shape=(3, size, size), rng=ctx.seed_of("vgg16-random"), dtype=dtype),
            lambda img: vgg_input(img, dtype=dtype)),
           ("trained EfficientNet-Lite0", efficientnet(ctx, dtype=dtype),
            lambda img: efficientnet_input(img, dtype=dtype))]
    if ctx.vgg_weights:
        net = vgg16(weights=ctx.vgg_weights, dtype=dtype)
        side = net.input_shape[1]
        out.append(("trained VGG-16", net, lambda img: vgg_input(img, side, dtype=dtype)))
    return out
