"""Monte Carlo over random networks against the closed forms of randvis.theory.

Tolerances come from the Monte Carlo standard errors, stated at each assert.
"""
import numpy as np
import pytest

import randvis
from randvis import theory as T
from randvis.images import preprocess, sample_image

METHODS = ("saliency", "deconvnet", "gbp")
GEOMETRIES = [
    dict(kernel_size=3, stride=1, padding="same"),
    dict(kernel_size=3, stride=2, padding="same"),
    dict(kernel_size=4, stride=2, padding="valid"),
]


def _image():
    x = np.random.default_rng(0).normal(size=(2, 7, 8))
    x[:, :3, :3] = 0  # a zero region: patches there never open a ReLU
    return x


def _simulate(x, n, seeds, builder="cnn", **kw):
    sims = {m: [] for m in METHODS}
    spec = None
    for s in seeds:
        if builder == "cnn":
            net = randvis.three_layer_cnn(n, input_shape=x.shape, n_classes=1, dtype=np.float64, rng=s, **kw)
        else:
            net = randvis.fcn(n, input_shape=x.shape, n_classes=1, dtype=np.float64, rng=s)
        spec = spec or T.RandomNetSpec.from_network(net)
        maps = randvis.visualize(net, x[None], target=0)
        for m in METHODS:
            sims[m].append(maps[m][0])
    return spec, {m: np.array(v) for m, v in sims.items()}


@pytest.fixture(scope="module", params=range(len(GEOMETRIES)), ids=["k3s1same", "k3s2same", "k4s2valid"])
def simulation(request):
    x = _image()
    kw = GEOMETRIES[request.param]
    spec, sims = _simulate(x, 4, range(1500), **kw)
    return x, spec, sims


@pytest.mark.parametrize("method", METHODS)
def test_mean_map_matches_expectation(simulation, method):
    """Each pixel's sample mean over S = 1500 networks is within 5 standard
    errors sqrt(Var / S) of E[s] (Var from the closed form; P(|z| > 5) = 6e-7
    per pixel, 112 pixels). Pixels with zero predicted variance must be exactly 0."""
    x, spec, sims = simulation
    s = sims[method]
    e, v = T.expected_map(spec, x, method), T.pixel_variance(spec, x, method)
    live = v > 0
    z = (s.mean(0) - e)[live] / np.sqrt(v[live] / len(s))
    assert np.abs(z).max() < 5, np.abs(z).max()
    assert np.all(s[:, ~live] == 0)
    if method == "gbp":  # and the expectation is not trivially zero
        assert np.abs(e[live]).max() > 10 * np.sqrt(v[live] / len(s)).max()


@pytest.mark.parametrize("method", METHODS)
def test_pixel_variance_matches_closed_form(simulation, method):
    """The sample variance of S draws has relative standard error
    sqrt((kappa - 1) / S), kappa the pixel's kurtosis (estimated from the same
    draws); every pixel must be within 5 such standard errors."""
    x, spec, sims = simulation
    s = sims[method]
    v = T.pixel_variance(spec, x, method)
    live = v > 0
    var = s.var(0, ddof=1)[live]
    dev = s[:, live] - s[:, live].mean(0)
    kappa = (dev ** 4).mean(0) / (dev ** 2).mean(0) ** 2
    se = np.sqrt((kappa - 1) / len(s))
    ratio = var / v[live]
    assert np.all(np.abs(ratio - 1) < 5 * se), np.abs((ratio - 1) / se).max()
    # pooled over pixels the agreement is much tighter
    assert abs(var.sum() / v[live].sum() - 1) < 5 * np.sqrt(np.mean(se ** 2))


def test_deconvnet_pixels_of_a_channel_correlate_with_one_over_pi(simulation):
    """Interior pixels of one channel at stride 1: correlation 1/pi from the
    shared mean of relu(V); other channels: 0. Sample covariances are compared
    with pixel_covariance within 5 standard errors sqrt(Va Vb (1 + rho^2) / S)."""
    x, spec, sims = simulation
    pix = np.array([[0, 3, 3], [0, 3, 5], [0, 5, 4], [1, 3, 3], [1, 5, 6]])
    cov = T.pixel_covariance(spec, x, "deconvnet", pix)
    s = sims["deconvnet"][:, pix[:, 0], pix[:, 1], pix[:, 2]]
    sample = np.cov(s.T)
    d = np.sqrt(np.diag(cov))
    rho = cov / np.outer(d, d)
    se = np.sqrt(np.outer(d ** 2, d ** 2) * (1 + rho ** 2) / len(s))
    assert np.all(np.abs(sample - cov) < 5 * se)
    if spec.stride == 1:
        assert rho[0, 1] == pytest.approx(1 / np.pi)
        assert rho[0, 3] == 0


def test_saliency_covariance_is_white():
    x = _image()
    spec = T.RandomNetSpec("cnn", 3, 0.5, 2.0, kernel_size=3)
    pix = np.array([[0, 4, 4], [0, 4, 5], [1, 4, 4]])
    cov = T.pixel_covariance(spec, x, "saliency", pix)
    assert np.count_nonzero(cov - np.diag(np.diag(cov))) == 0
    # interior pixel, 9 non-zero covering patches: N s_v^2 s_w^2 / 2 * 9
    assert cov[0, 0] == pytest.approx(3 * 0.25 * 4 / 2 * 9)


def test_fcn_closed_forms():
    """One patch = the whole image: E[s_GBP] = N s_v s_w/(2 pi) x/|x|, relative
    error sqrt((pi^2 d - 1) / N); checked by simulation (S = 400, 5 SE)."""
    x = np.random.default_rng(1).normal(size=(1, 3, 4))
    spec, sims = _simulate(x, 6, range(400), builder="fcn")
    e = T.expected_map(spec, x, "gbp")
    np.testing.assert_allclose(e, spec.n * spec.v_std * spec.w_std / (2 * np.pi) * x / np.linalg.norm(x))
    assert T.relative_error_constant(spec, x) == pytest.approx(np.sqrt(np.pi ** 2 * x.size - 1))
    v = T.pixel_variance(spec, x, "gbp")
    z = (sims["gbp"].mean(0) - e) / np.sqrt(v / 400)
    assert np.abs(z).max() < 5


def _natural(size):
    return preprocess(sample_image("grace_hopper", size=size))[0].astype(np.float64)


def test_gbp_relative_error_slope_and_theory():
    """Slope of log(GBP relative error) against log(N) over N = 16..1024 lies in
    [-0.6, -0.4] (theory: exactly -1/2), and each measured error is within 15%
    of predicted_relative_error (the spread of ||s - Es|| over 2 seeds of a
    3x48x48 map, measured at about 3% relative)."""
    x = _natural(48)
    ns = np.array([16, 64, 256, 1024])
    errs = []
    for n in ns:
        e = []
        for seed in range(2):
            net = randvis.three_layer_cnn(int(n), kernel_size=7, input_shape=x.shape, n_classes=1,
                                          dtype=np.float64, rng=seed)
            spec = T.RandomNetSpec.from_network(net)
            g = randvis.visualize(net, x[None], target=0, methods=("gbp",))["gbp"][0]
            m = T.expected_map(spec, x, "gbp")
            e.append(np.linalg.norm(g - m) / np.linalg.norm(m))
        errs.append(np.mean(e))
        assert np.mean(e) == pytest.approx(T.predicted_relative_error(spec, x), rel=0.15)
    slope = np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert -0.6 <= slope <= -0.4, slope


def test_cnn_is_closer_to_its_target_than_fcn_at_equal_n():
    """At N = 256 on a 3x32x32 photo the CNN's GBP correlates with the
    patch-normalised input far better than the FCN's GBP with its own target
    x/|x| (theory: ~0.98 vs ~0.09); both measured values are within 0.1 of
    predicted_correlation, and fcn_units_to_match says how many FCN units
    would close the gap."""
    x = _natural(32)
    n = 256
    cnn = randvis.three_layer_cnn(n, kernel_size=7, input_shape=x.shape, n_classes=1, dtype=np.float64, rng=0)
    fc = randvis.fcn(n, input_shape=x.shape, n_classes=1, dtype=np.float64, rng=0)
    out = {}
    for name, net in (("cnn", cnn), ("fcn", fc)):
        spec = T.RandomNetSpec.from_network(net)
        g = randvis.visualize(net, x[None], target=0, methods=("gbp",))["gbp"][0]
        target = T.patch_normalized_input(x, spec)
        out[name] = (np.corrcoef(g.ravel(), target.ravel())[0, 1], T.predicted_correlation(spec, x))
    assert out["cnn"][0] > out["fcn"][0] + 0.5
    for measured, predicted in out.values():
        assert abs(measured - predicted) < 0.1
    need = T.fcn_units_to_match(T.RandomNetSpec.from_network(cnn), x)
    assert need > 50 * n  # an FCN needs orders of magnitude more units


def test_bad_arguments():
    with pytest.raises(ValueError, match="N must be"):
        T.RandomNetSpec("cnn", 0)
    with pytest.raises(ValueError, match="kind"):
        T.RandomNetSpec("rnn", 3)
    with pytest.raises(ValueError, match="shape"):
        T.expected_map(T.RandomNetSpec("cnn", 3), np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="pooling"):
        T.RandomNetSpec.from_network(randvis.three_layer_cnn(2, pool=2, input_shape=(3, 8, 8)))
    with pytest.raises(ValueError, match="no closed form"):
        T.RandomNetSpec.from_network(randvis.vgg16(input_shape=(3, 32, 32), widths=(2,) * 5, fc_width=2))
    with pytest.raises(ValueError, match="all zeros"):
        T.relative_error_constant(T.RandomNetSpec("cnn", 3), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="N must be"):
        T.predicted_relative_error(T.RandomNetSpec("cnn", 3), np.ones((1, 4, 4)), n=0)
