"""FGSM: the step is the sign of the true loss gradient."""
import numpy as np
import pytest

import randvis
from randvis.attacks import cross_entropy_seed, fgsm, fgsm_flip


def _ce(net, x, y):
    z = net.predict(x).astype(np.float64)
    z = z - z.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))


@pytest.fixture
def net():
    return randvis.random_cnn(2, width=6, pool_every=1, input_shape=(3, 12, 12), n_classes=5,
                              dtype=np.float64, rng=3)


def test_gradient_seed_is_the_cross_entropy_derivative(net):
    """Central differences of CE in the logits equal softmax - onehot."""
    z = np.random.default_rng(0).normal(size=(2, 5))
    y = np.array([1, 4])
    g = cross_entropy_seed(z, y)
    for i in range(2):
        for j in range(5):
            e = np.zeros_like(z)
            e[i, j] = 1e-6
            f = lambda zz: np.log(np.exp(zz[i]).sum()) - zz[i, y[i]]
            assert g[i, j] == pytest.approx((f(z + e) - f(z - e)) / 2e-6, abs=1e-8)


def test_untargeted_step_raises_the_loss_and_targeted_lowers_it(net):
    x = np.random.default_rng(1).normal(size=(3, 3, 12, 12))
    y = net.predict(x).argmax(1)
    eps = 1e-3  # small enough for the first-order increase to dominate
    up = fgsm(net, x, eps)
    assert _ce(net, up.x_adv, y) > _ce(net, x, y)
    step = np.abs(up.x_adv - x)
    assert step.max() <= eps * (1 + 1e-9) and np.mean(step > eps / 2) > 0.99  # +-eps everywhere
    t = (y + 1) % 5
    down = fgsm(net, x, eps, target=t)
    assert _ce(net, down.x_adv, t) < _ce(net, x, t)


def test_flip_search_and_clipping(net):
    x = np.random.default_rng(2).random((1, 3, 12, 12))
    res = fgsm_flip(net, x, [1e-4, 1e-2, 1.0, 100.0])
    assert res.flipped.all() and res.eps in (1e-2, 1.0, 100.0)
    clipped = fgsm(net, x, 0.5, lo=0.0, hi=1.0)
    assert clipped.x_adv.min() >= 0 and clipped.x_adv.max() <= 1
    with pytest.raises(ValueError, match="eps"):
        fgsm(net, x, -1)
    with pytest.raises(ValueError, match="out of range"):
        fgsm(net, x, 0.1, target=7)
