"""Saliency equals a central finite-difference gradient (float64).

The networks are piecewise linear (ReLU, max/avg pooling, affine layers), so
inside one linear piece a central difference is exact up to rounding: with step
h and logits of size O(1) the error is about eps * |f| / h ~ 1e-12 relative.
The test first checks that every perturbed input stays in the same piece (the
same ReLU masks and max-pool switches as the unperturbed input, i.e. the
pre-activations are kept away from 0 and from ties), then demands a relative
error below 1e-6.
"""
import numpy as np
import pytest

import randvis
from randvis.layers import MaxPool2d, ReLU

from conftest import input_differences

H = 1e-5

NETS = {
    "cnn3": lambda rng: randvis.three_layer_cnn(6, kernel_size=3, input_shape=(3, 10, 10), n_classes=4,
                                                dtype=np.float64, rng=rng),
    "cnn3_maxpool": lambda rng: randvis.three_layer_cnn(6, kernel_size=5, stride=2, pool=(2, 2),
                                                        input_shape=(3, 11, 11), n_classes=4,
                                                        dtype=np.float64, rng=rng),
    "cnn_avgpool": lambda rng: randvis.random_cnn(2, width=4, pool_every=1, pool_type="avg",
                                                  input_shape=(3, 8, 8), n_classes=3,
                                                  dtype=np.float64, rng=rng),
    "fcn": lambda rng: randvis.fcn(20, n_classes=4, input_shape=(3, 5, 5), dtype=np.float64, rng=rng),
    "vgg_style_max": lambda rng: randvis.vgg16(n_classes=5, input_shape=(3, 32, 32), widths=(3, 3, 4, 4, 4),
                                               fc_width=8, dtype=np.float64, rng=rng),
    "vgg_style_avg": lambda rng: randvis.vgg16(n_classes=5, input_shape=(3, 32, 32), widths=(3, 3, 4, 4, 4),
                                               fc_width=8, pool_type="avg", dtype=np.float64, rng=rng),
}


def _pieces(net, trace):
    out = []
    for layer, cache in zip(net.layers, trace.caches):
        if isinstance(layer, ReLU):
            out.append(cache)
        elif isinstance(layer, MaxPool2d):
            out.append(cache[0])
    return out


@pytest.mark.parametrize("name", sorted(NETS))
def test_saliency_is_the_gradient(name):
    rng = np.random.default_rng(11)
    net = NETS[name](rng)
    x = rng.normal(size=(1,) + net.input_shape)
    seed = rng.normal(size=net.predict(x).shape)
    sal = randvis.visualize(net, x, target=seed[0], methods=("saliency",))["saliency"][0]
    n = x[0].size
    idx = np.arange(n) if n <= 400 else rng.choice(n, 400, replace=False)
    fd = input_differences(net, x, seed, idx, H, pieces=lambda tr: _pieces(net, tr))
    got = sal.ravel()[idx]
    rel = np.linalg.norm(got - fd) / np.linalg.norm(fd)
    assert rel < 1e-6, rel
