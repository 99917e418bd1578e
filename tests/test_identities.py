"""Exact identities of the three rules."""
import numpy as np
import pytest

import randvis
from randvis.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU
from randvis.network import Sequential


@pytest.mark.parametrize("build", [
    lambda: randvis.three_layer_cnn(8, kernel_size=5, input_shape=(3, 16, 16), rng=0),
    lambda: randvis.random_cnn(3, width=6, input_shape=(3, 12, 12), rng=1),
    lambda: randvis.fcn(30, input_shape=(3, 6, 6), rng=2),
    lambda: randvis.vgg16(n_classes=7, input_shape=(3, 32, 32), widths=(3, 3, 3, 3, 3), fc_width=8,
                          pool_type="avg", rng=3),
])
def test_deconvnet_without_max_pooling_ignores_the_input(build):
    """DeconvNet never looks at forward masks, and average pooling is linear: the
    map is a fixed linear function of the seed, the same for every input."""
    net = build()
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(1,) + net.input_shape)
    x2 = rng.random(size=(1,) + net.input_shape) * 5
    m1 = randvis.visualize(net, x1, target=3)
    m2 = randvis.visualize(net, x2, target=3)
    np.testing.assert_array_equal(m1["deconvnet"], m2["deconvnet"])
    assert not np.array_equal(m1["gbp"], m2["gbp"])  # the other rules do depend on x
    assert not np.array_equal(m1["saliency"], m2["saliency"])


def test_deconvnet_with_max_pooling_depends_on_the_input():
    net = randvis.three_layer_cnn(8, kernel_size=5, pool=(2, 2), input_shape=(3, 16, 16), rng=0)
    rng = np.random.default_rng(0)
    m1 = randvis.visualize(net, rng.normal(size=(1, 3, 16, 16)), target=3)
    m2 = randvis.visualize(net, rng.normal(size=(1, 3, 16, 16)), target=3)
    assert not np.array_equal(m1["deconvnet"], m2["deconvnet"])


def test_three_maps_coincide_when_every_relu_is_open_and_every_signal_positive():
    """Positive weights, biases and inputs open every ReLU; a positive seed
    keeps every backward signal positive: then R * 1 = relu(R) = relu(R) * 1."""
    rng = np.random.default_rng(4)
    net = Sequential([
        Conv2d(rng.random((4, 3, 3, 3)), rng.random(4), padding="same"), ReLU(),
        MaxPool2d(2), Conv2d(rng.random((5, 4, 3, 3)), rng.random(5), stride=2), ReLU(),
        Flatten(), Dense(rng.random((6, 5 * 4 * 4)) * 0.1, rng.random(6)), ReLU(),
        Dense(rng.random((3, 6))),
    ], (3, 16, 16), np.float64)
    x = rng.random((2, 3, 16, 16)) + 0.1
    logits, trace = net.forward(x)
    assert all(c.all() for l, c in zip(net.layers, trace.caches) if isinstance(l, ReLU))
    maps = randvis.visualize(net, x, target=np.array([0.5, 1.0, 2.0]))
    np.testing.assert_array_equal(maps["saliency"], maps["deconvnet"])
    np.testing.assert_array_equal(maps["saliency"], maps["gbp"])
    assert np.abs(maps["gbp"]).max() > 0


def test_rules_differ_exactly_where_the_formula_says():
    """At one ReLU: saliency passes R where y > 0; DeconvNet relu(R) everywhere;
    GBP relu(R) where y > 0 (checked entry by entry on a one-layer net)."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=(5, 4))
    net = Sequential([Dense(np.eye(4)), ReLU(), Dense(w)], (4,), np.float64)
    x = np.array([[1.0, -2.0, 3.0, -0.5]])
    seed = rng.normal(size=5)
    maps = randvis.visualize(net, x, target=seed)
    r = w.T @ seed
    on = x[0] > 0
    np.testing.assert_allclose(maps["saliency"][0], r * on, atol=1e-15)
    np.testing.assert_allclose(maps["deconvnet"][0], np.maximum(r, 0), atol=1e-15)
    np.testing.assert_allclose(maps["gbp"][0], np.maximum(r, 0) * on, atol=1e-15)
