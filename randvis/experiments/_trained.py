"""The trained models the experiments use, and their preprocessing."""
from __future__ import annotations

import numpy as np

from ..images import preprocess, resize_image


def efficientnet(ctx, weights="pretrained"):
    from ..efficientnet import efficientnet_lite0

    size = ctx.images[0][1].shape[1]
    return efficientnet_lite0(weights, input_shape=(3, size, size), rng=ctx.seed_of("efficientnet-random"))


def efficientnet_input(img):
    """(3, h, w) in [0, 1] -> network input, TF Lite scaling (x*255 - 127)/128, no crop
    (the corpus is already square and sized)."""
    return ((np.asarray(img, dtype=np.float32) * 255.0 - 127.0) / 128.0)[None]


#: valid network-input range of efficientnet_input for pixels in [0, 1]
EFFICIENTNET_RANGE = (-127.0 / 128.0, 128.0 / 128.0)
#: one pixel level (1/255) in network-input units
EFFICIENTNET_PIXEL = 1.0 / 128.0


def models(ctx):
    """[(label, net, to_input)] for the class-sensitivity experiment."""
    from ..models import vgg16

    size = ctx.images[0][1].shape[1]
    out = [("random VGG-16", vgg16(input_shape=(3, size, size), rng=ctx.seed_of("vgg16-random")), preprocess),
           ("trained EfficientNet-Lite0", efficientnet(ctx), efficientnet_input)]
    if ctx.vgg_weights:
        net = vgg16(weights=ctx.vgg_weights)
        side = net.input_shape[1]
        out.append(("trained VGG-16", net, lambda img: preprocess(resize_image(img, side))))
    return out
