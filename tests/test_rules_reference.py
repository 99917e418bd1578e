"""The three rules against an independent dense-matrix reference (float64)."""
import numpy as np
import pytest

import randvis
from randvis.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU, ReLU6
from randvis.network import Sequential
from randvis.rules import DECONVNET, GBP, SALIENCY

from dense_reference import dense_maps

RULES = (SALIENCY, DECONVNET, GBP)


def _mixed_net(rng):
    """Strides, asymmetric 'same' padding, explicit pads, both poolings, biases, ReLU6."""
    return Sequential([
        Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4) * 0.1, stride=2, padding="same"),
        ReLU(),
        MaxPool2d(3, 2, padding="same"),
        Conv2d(rng.normal(size=(3, 4, 2, 2)), None, stride=1, padding=((0, 1), (1, 0))),
        ReLU6(),
        AvgPool2d(2, 1, padding="valid"),
        Conv2d(rng.normal(size=(5, 3, 1, 1)), rng.normal(size=5), padding="valid"),
        ReLU(),
        Flatten(),
        Dense(rng.normal(size=(6, 10)), rng.normal(size=6)),
        ReLU(),
        Dense(rng.normal(size=(4, 6))),
    ], (2, 9, 7), np.float64)


NETS = {
    "cnn3": lambda rng: randvis.three_layer_cnn(5, kernel_size=3, input_shape=(3, 8, 8), n_classes=4,
                                                dtype=np.float64, rng=rng),
    "cnn3_stride2_valid_maxpool": lambda rng: randvis.three_layer_cnn(
        4, kernel_size=3, stride=2, padding="valid", pool=(2, 1), input_shape=(2, 9, 9),
        n_classes=3, dtype=np.float64, rng=rng),
    "cnn3_avgpool": lambda rng: randvis.three_layer_cnn(
        4, kernel_size=5, pool=(3, 2), pool_type="avg", input_shape=(3, 8, 8), n_classes=3,
        dtype=np.float64, rng=rng),
    "fcn": lambda rng: randvis.fcn(12, n_classes=5, input_shape=(2, 4, 4), dtype=np.float64, rng=rng),
    "deep_maxpool": lambda rng: randvis.random_cnn(3, width=3, kernel_size=3, pool_every=1,
                                                   input_shape=(2, 8, 8), n_classes=4,
                                                   dtype=np.float64, rng=rng),
    "vgg_tiny": lambda rng: randvis.vgg16(n_classes=5, input_shape=(3, 32, 32), widths=(2, 2, 3, 3, 3),
                                          fc_width=6, dtype=np.float64, rng=rng),
    "mixed": _mixed_net,
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_three_rules_match_dense_matrix_reference(name):
    rng = np.random.default_rng(7)
    net = NETS[name](rng)
    x = rng.normal(size=(3,) + net.input_shape)
    maps, info = randvis.visualize(net, x, target="random", rng=1, return_info=True)
    for i in range(x.shape[0]):
        logits, ref = dense_maps(net, x[i], info["seed"][i], RULES)
        np.testing.assert_allclose(info["logits"][i], logits, rtol=0, atol=1e-10 * max(1, np.abs(logits).max()))
        for rule in RULES:
            scale = max(1.0, np.abs(ref[rule.name]).max())
            err = np.abs(maps[rule.name][i] - ref[rule.name]).max() / scale
            assert err < 1e-10, (name, rule.name, err)
        # the three rules really differ on these nets (the test would notice a mix-up)
        assert not np.allclose(ref["saliency"], ref["gbp"])
