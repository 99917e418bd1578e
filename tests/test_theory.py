"""Monte Carlo over random networks against the closed forms of randvis.theory.

Tolerances come from the Monte Carlo standard errors, stated at each assert.
"""
import numpy as np
import pytest

import randvis
from conftest import natural_photo
from randvis import theory as T
from randvis.stats import pearson

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


def test_pixel_covariance_hand_values_and_pixel_forms():
    """A 1x6x6 image of ones, 3x3 "same" kernel, N = 2, s_w = 0.5, s_v = 2, so
    N s_v^2 s_w^2 = 2. A pixel at (r, c) is covered at filter offsets o with
    r + 1 - o in [0, 5] (rows) and likewise for columns: (0, 0) at 2 x 2 = 4
    offsets, (0, 1) at 2 x 3 = 6, (2, 3) at 3 x 3 = 9; pairs share 4, 4 and 6
    offsets. Saliency: Var = 2/2 * coverage, no covariance. DeconvNet: the same
    variances and Cov = 2 / (2 pi) * shared offsets."""
    spec = T.RandomNetSpec("cnn", 2, w_std=0.5, v_std=2.0, kernel_size=3)
    x = np.ones((1, 6, 6))
    triples = [[0, 0, 0], [0, 0, 1], [0, 2, 3]]
    sal = T.pixel_covariance(spec, x, "saliency", triples)
    np.testing.assert_allclose(sal, np.diag([4.0, 6.0, 9.0]), rtol=1e-12)
    dec = T.pixel_covariance(spec, x, "deconvnet", triples)
    want = np.array([[4.0, 4 / np.pi, 4 / np.pi], [4 / np.pi, 6.0, 6 / np.pi], [4 / np.pi, 6 / np.pi, 9.0]])
    np.testing.assert_allclose(dec, want, rtol=1e-12)
    # (row, column) pairs mean channel 0 of a one-channel image, whatever their number
    np.testing.assert_array_equal(T.pixel_covariance(spec, x, "deconvnet", [[0, 0], [0, 1], [2, 3]]), dec)
    six = T.pixel_covariance(spec, x, "deconvnet", np.array([[0, 1], [2, 3], [4, 5]]))
    assert six.shape == (3, 3)
    np.testing.assert_array_equal(six, T.pixel_covariance(spec, x, "deconvnet", [[0, 0, 1], [0, 2, 3], [0, 4, 5]]))
    # with two channels a pair does not say which channel: refused; triples in
    # different channels do not covary
    x2 = np.ones((2, 6, 6))
    with pytest.raises(ValueError, match=r"\(row, column\) pairs.*2 channels"):
        T.pixel_covariance(spec, x2, "deconvnet", [[0, 0], [2, 3]])
    two = T.pixel_covariance(spec, x2, "deconvnet", [[0, 2, 3], [1, 2, 3]])
    assert two[0, 1] == 0 and two[0, 0] == pytest.approx(9.0)


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


def test_gbp_relative_error_slope_and_theory():
    """Slope of log(GBP relative error) against log(N) over N = 16..1024 lies in
    [-0.6, -0.4] (theory: exactly -1/2), and each measured error is within 15%
    of predicted_relative_error (the spread of ||s - Es|| over 2 seeds of a
    3x48x48 map, measured at about 3% relative)."""
    x = natural_photo(48)
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


@pytest.mark.parametrize("method", METHODS)
def test_variance_of_the_map_sum_matches_simulation(simulation, method):
    """map_sum_variance against the sample variance of sum_a s_a over the S = 1500
    networks of each geometry: relative standard error sqrt((kappa - 1) / S), kappa
    the sum's kurtosis from the same draws; within 3 such standard errors."""
    x, spec, sims = simulation
    tot = sims[method].sum(axis=(1, 2, 3))
    dev = tot - tot.mean()
    kappa = (dev ** 4).mean() / (dev ** 2).mean() ** 2
    se = np.sqrt((kappa - 1) / len(tot))
    v = T.map_sum_variance(spec, x, method)
    assert abs(tot.var(ddof=1) / v - 1) < 3 * se, (tot.var(ddof=1) / v - 1, se)


def test_variance_of_the_map_sum_hand_values():
    """Hand-computable cases. An FCN (one patch, all entries in the image):
    saliency N s_v^2 s_w^2 d / 2, DeconvNet the same, GBP N s_v^2 s_w^2 (d / 4 -
    (sum x)^2 / (4 pi^2 |x|^2)). A 1x3x3 image of ones under a 3x3 "valid" CNN is
    the same single patch. A 1x1x2 image with a 1x1 kernel: two patches (scalars)
    u_j = sign(x_j), sigma_j = 1; for x = (1, -1) the patches are opposite
    (theta = pi, M = 0), so GBP's sum is relu(V_1) w 1(w > 0) + relu(V_2) w 1(w < 0):
    variance 2 * 1/4 - 0 = 1/2 (the means cancel); for x = (1, 2) they are parallel
    (M = 1/2): 2/4 + 2 * (1/2) / (2 pi) - (2 / (2 pi))^2."""
    x = np.array([[[1.0, 2.0, -0.5]], [[0.0, 3.0, 1.0]]])
    d, tot, nrm2 = x.size, x.sum(), (x ** 2).sum()
    spec = T.RandomNetSpec("fcn", 5, w_std=0.5, v_std=3.0)
    scale = 5 * 0.25 * 9
    assert T.map_sum_variance(spec, x, "saliency") == pytest.approx(scale * d / 2, rel=1e-12)
    assert T.map_sum_variance(spec, x, "deconvnet") == pytest.approx(scale * d / 2, rel=1e-12)
    assert T.map_sum_variance(spec, x, "gbp") == pytest.approx(
        scale * (d / 4 - tot ** 2 / (4 * np.pi ** 2 * nrm2)), rel=1e-12)
    ones = np.ones((1, 3, 3))
    cnn = T.RandomNetSpec("cnn", 1, kernel_size=3, padding="valid")
    assert T.map_sum_variance(cnn, ones) == pytest.approx(9 / 4 - 81 / (4 * np.pi ** 2 * 9), rel=1e-12)
    k1 = T.RandomNetSpec("cnn", 1, kernel_size=1)
    assert T.map_sum_variance(k1, np.array([[[1.0, -1.0]]])) == pytest.approx(0.5, rel=1e-12)
    assert T.map_sum_variance(k1, np.array([[[1.0, 2.0]]])) == pytest.approx(
        0.5 + 1 / (2 * np.pi) - (1 / np.pi) ** 2, rel=1e-12)
    # DeconvNet ignores x: two 1x1 patches share relu(V)'s mean, 2/2 + 2 / (2 pi)
    assert T.map_sum_variance(k1, np.array([[[1.0, 0.0]]]), "deconvnet") == pytest.approx(1 + 1 / np.pi)
    assert T.map_sum_variance(k1, np.array([[[1.0, 0.0]]]), "saliency") == pytest.approx(0.5)


def _simulated_ratio(x, n, geometry, S, stream):
    """Over S random CNNs (seeds [stream, 0..S-1]): the ratio of the sample means of
    A = <g_c, r_c> and B = |g_c|^2 over |r_c| (g, r: GBP map and patch-normalised
    input, _c: overall mean removed), its delta-method standard error (from the
    sample covariance of (A, B)), the single networks' correlations, the spec and x."""
    a, b, corr = [], [], []
    for seed in range(S):
        net = randvis.three_layer_cnn(n, input_shape=x.shape, n_classes=1, dtype=np.float64, rng=[stream, seed],
                                      **geometry)
        g = randvis.visualize(net, x[None], target=0, methods=("gbp",))["gbp"][0]
        spec = T.RandomNetSpec.from_network(net)
        r = T.patch_normalized_input(spec, x)
        gc, rc = g - g.mean(), r - r.mean()
        a.append(np.sum(gc * rc))
        b.append(np.sum(gc * gc))
        corr.append(pearson(g, r))
    a, b, rn = np.array(a), np.array(b), np.linalg.norm(rc)
    ratio = a.mean() / (rn * np.sqrt(b.mean()))
    grad = np.array([1 / (rn * np.sqrt(b.mean())), -a.mean() / (2 * rn * b.mean() ** 1.5)])
    return ratio, np.sqrt(grad @ np.cov(np.vstack([a, b])) @ grad / S), np.array(corr), spec, x


CORRELATION_CELLS = [(dict(kernel_size=3, stride=1), n) for n in (4, 16, 64)] + \
    [(dict(kernel_size=5, stride=2), n) for n in (4, 64)] + [(dict(kernel_size=7, stride=1), n) for n in (4, 16)]


@pytest.mark.parametrize("geometry, n", CORRELATION_CELLS,
                         ids=[f"k{g['kernel_size']}s{g['stride']}-N{n}" for g, n in CORRELATION_CELLS])
def test_predicted_correlation_matches_simulation(geometry, n):
    """predicted_correlation is E A / (|r_c| sqrt(E B)) with A = <g_c, r_c>,
    B = |g_c|^2 (g, r: GBP map and patch-normalised input, _c: overall mean
    removed). Over S = 400 networks on a 3x16x16 photo, the ratio of the sample
    means of A and B estimates it with a delta-method standard error (from the
    sample covariance of (A, B)); it must lie within 2 standard errors. Leaving
    out Var(sum_a s_a) / d in E B moves the prediction by 3.5 to 7 standard errors
    at stride 1. The mean of the single networks' correlations (the expectation
    of the ratio) is above by O(1/N); it must lie within 2 standard errors plus
    0.006 (measured: 0.000 to 0.005 for N = 4..64 on 16x16 and 32x32 photos)."""
    ratio, se, corr, spec, x = _simulated_ratio(natural_photo(16), n, geometry, 400, stream=7)
    predicted = T.predicted_correlation(spec, x)
    assert abs(ratio - predicted) < 2 * se, ((ratio - predicted) / se, se)
    assert abs(corr.mean() - predicted) < 2 * corr.std(ddof=1) / np.sqrt(corr.size) + 0.006


@pytest.mark.slow
@pytest.mark.parametrize("geometry, n", [(dict(kernel_size=7, stride=1), 256), (dict(kernel_size=7, stride=1), 1024),
                                         (dict(kernel_size=5, stride=2), 256), (dict(kernel_size=3, stride=1), 1024)])
def test_predicted_correlation_matches_simulation_at_larger_widths(geometry, n):
    """As test_predicted_correlation_matches_simulation, on a 3x32x32 photo at
    N = 256 and 1024 (S = 300 networks): the ratio of the sample means within 2
    delta-method standard errors of predicted_correlation."""
    ratio, se, _, spec, x = _simulated_ratio(natural_photo(32), n, geometry, 300, stream=8)
    assert abs(ratio - T.predicted_correlation(spec, x)) < 2 * se, ((ratio - T.predicted_correlation(spec, x)) / se)


def test_gbp_correlation_with_its_target_cnn_against_fcn():
    """At N = 256 on a 3x32x32 photo the CNN's GBP correlates with the
    patch-normalised input far better than the FCN's GBP with its own target
    x/|x| (theory: ~0.94 vs ~0.08). Over S = 64 networks of each kind the ratio
    of the sample means of A = <g_c, r_c> and B = |g_c|^2 lies within 3
    delta-method standard errors of predicted_correlation (the 2-SE comparison is
    test_predicted_correlation_matches_simulation; here the CNN lands at -2.3 SE,
    and at +1.3 SE with 300 other networks); a correlation of 0 for the FCN is
    about 50 standard errors away."""
    x = natural_photo(32)
    n, S = 256, 64
    out = {}
    for kind in ("cnn", "fcn"):
        a, b = [], []
        for seed in range(S):
            net = (randvis.three_layer_cnn(n, kernel_size=7, input_shape=x.shape, n_classes=1,
                                           dtype=np.float64, rng=seed) if kind == "cnn"
                   else randvis.fcn(n, input_shape=x.shape, n_classes=1, dtype=np.float64, rng=seed))
            spec = T.RandomNetSpec.from_network(net)
            g = randvis.visualize(net, x[None], target=0, methods=("gbp",))["gbp"][0]
            r = T.patch_normalized_input(spec, x)
            gc, rc = g - g.mean(), r - r.mean()
            a.append(np.sum(gc * rc))
            b.append(np.sum(gc * gc))
        a, b, rn = np.array(a), np.array(b), np.linalg.norm(rc)
        measured = a.mean() / (rn * np.sqrt(b.mean()))
        grad = np.array([1 / (rn * np.sqrt(b.mean())), -a.mean() / (2 * rn * b.mean() ** 1.5)])
        se = np.sqrt(grad @ np.cov(np.vstack([a, b])) @ grad / S)
        predicted = T.predicted_correlation(spec, x)
        assert abs(measured - predicted) < 3 * se, (kind, measured, predicted, se)
        out[kind] = measured
    assert out["cnn"] > out["fcn"] + 0.5
    need = T.fcn_units_to_match(T.RandomNetSpec.from_network(
        randvis.three_layer_cnn(n, kernel_size=7, input_shape=x.shape, n_classes=1, rng=0)), x)
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
