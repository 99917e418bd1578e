"""Tests of randvis.stats against mathematical facts, not against its own output.

Random samples use fixed seeds; every tolerance is a stated bound (DKW,
standard errors, binomial coverage) or exact arithmetic.
"""
import json
import math
import warnings

import numpy as np
import pytest
from scipy import ndimage
from scipy import stats as sst

from randvis import stats as S

SHAPE = (3, 64, 64)


def _rng(seed):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# normality
# ---------------------------------------------------------------------------

def _all_sets(res):
    return [("pooled", res.pooled)] + [(f"ch{k}", c) for k, c in enumerate(res.channels)]


def test_gaussian_not_rejected_at_1pct():
    m = _rng(0).normal(loc=0.3, scale=2.5, size=SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FutureWarning (anderson) or N > 5000 warning
        res = S.normality(m, rng=1)
    for label, st in _all_sets(res):
        assert st.shapiro_pvalue > 0.01, label
        assert st.dagostino_pvalue > 0.01, label
        assert st.anderson_statistic < st.anderson_critical_1pct, label
        assert st.ks_pvalue > 0.01, label
        assert not any(st.rejected(0.01).values()), label


@pytest.mark.parametrize("name, sampler", [
    ("exponential", lambda g: g.exponential(size=SHAPE)),
    ("uniform", lambda g: g.uniform(size=SHAPE)),
    ("chi-square(10)", lambda g: g.chisquare(10, size=SHAPE)),
])
def test_non_gaussian_rejected(name, sampler):
    res = S.normality(sampler(_rng(2)), rng=3)
    for label, st in _all_sets(res):
        assert st.shapiro_pvalue < 0.01, (name, label)
        assert st.dagostino_pvalue < 0.01, (name, label)
        assert st.anderson_statistic > st.anderson_critical_1pct, (name, label)
        assert st.anderson_reject_5pct, (name, label)
        assert st.ks_pvalue < 0.01, (name, label)
        assert all(st.rejected(0.01).values())


@pytest.mark.parametrize("standardize", [False, True])
def test_ks_distance_below_dkw_bound(standardize):
    # DKW: P(sup |F_n - F| > eps) <= 2 exp(-2 n eps^2); eps at probability 0.001.
    # (With fitted parameters the distance is stochastically even smaller.)
    res = S.normality(_rng(4).normal(size=SHAPE), standardize=standardize, rng=0)
    for label, st in _all_sets(res):
        bound = math.sqrt(math.log(2 / 0.001) / (2 * st.n))
        assert st.ks_statistic < bound, label


def test_ks_matches_definition():
    m = _rng(5).normal(size=(1, 8, 8))
    st = S.normality(m, standardize=False).pooled
    x = np.sort(m.ravel())
    n = x.size
    cdf = sst.norm.cdf(x)
    d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert st.ks_statistic == pytest.approx(d, abs=1e-12)


def test_moments_within_standard_errors():
    m = _rng(6).normal(loc=-1.0, scale=3.0, size=SHAPE)
    res = S.normality(m, rng=0)
    for label, st in _all_sets(res):
        n = st.n
        assert abs(st.skewness) < 4 * math.sqrt(6 / n), label
        assert abs(st.excess_kurtosis) < 4 * math.sqrt(24 / n), label
    # raw mean/std: within 4 standard errors of the true values
    n = res.pooled.n
    assert abs(res.pooled.mean + 1.0) < 4 * 3.0 / math.sqrt(n)
    assert abs(res.pooled.std - 3.0) < 4 * 3.0 / math.sqrt(2 * n)


def test_moments_of_exact_small_sample():
    # values -1, 0, 1, ..., symmetric -> skewness 0; two-point sample +-1 -> kurtosis -2
    sym = np.array([-3, -2, -1, 0, 0, 1, 2, 3], float).reshape(1, 2, 4)
    st = S.normality(sym).pooled
    assert st.skewness == pytest.approx(0.0, abs=1e-14)
    assert st.mean == pytest.approx(0.0, abs=1e-15)
    assert st.std == pytest.approx(math.sqrt(28 / 8))
    two = np.array([-1, 1] * 8, float).reshape(1, 4, 4)
    assert S.normality(two).pooled.excess_kurtosis == pytest.approx(-2.0)


def test_shapiro_subsample_recorded():
    m = _rng(7).normal(size=SHAPE)  # 12288 pooled values, 4096 per channel
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = S.normality(m, rng=11)
    assert res.pooled.n == 12288
    assert res.pooled.shapiro_n == S.SHAPIRO_MAX_N == 5000
    assert res.pooled.shapiro_subsampled
    for ch in res.channels:
        assert ch.shapiro_n == ch.n == 4096 and not ch.shapiro_subsampled
    # the subsample comes from rng: same seed -> same result, other seed -> other subsample
    again = S.normality(m, rng=11)
    other = S.normality(m, rng=12)
    assert again.pooled.shapiro_statistic == res.pooled.shapiro_statistic
    assert other.pooled.shapiro_statistic != res.pooled.shapiro_statistic
    # the channels (no subsampling) do not depend on rng
    assert other.channels[0].shapiro_statistic == res.channels[0].shapiro_statistic
    # smaller limit: every set is subsampled
    small = S.normality(m, max_shapiro=1000, rng=0)
    assert all(st.shapiro_n == 1000 for _, st in _all_sets(small))
    # the subsample statistic is W of some 5000 of the values: a valid W in (0, 1]
    assert 0 < res.pooled.shapiro_statistic <= 1


def test_anderson_critical_values_agree_with_scipy_legacy():
    x = _rng(8).normal(size=300)
    st = S.normality(x.reshape(1, 15, 20)).pooled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy = sst.anderson(x)  # deprecated tuple-like result in scipy >= 1.17
    if not hasattr(legacy, "critical_values"):
        pytest.skip("this scipy no longer returns Anderson-Darling critical values")
    sig = list(np.asarray(legacy.significance_level, float))
    assert st.anderson_statistic == pytest.approx(float(legacy.statistic), rel=1e-12)
    assert st.anderson_critical_5pct == pytest.approx(legacy.critical_values[sig.index(5.0)])
    assert st.anderson_critical_1pct == pytest.approx(legacy.critical_values[sig.index(1.0)])
    assert st.anderson_critical_1pct > st.anderson_critical_5pct


def test_constant_map_error():
    with pytest.raises(ValueError, match="map is constant: normality is undefined"):
        S.normality(np.full((3, 8, 8), 2.0))
    m = _rng(0).normal(size=(3, 8, 8))
    m[1] = 5.0
    with pytest.raises(ValueError, match="map is constant: normality is undefined"):
        S.normality(m)


def test_per_channel_standardisation_removes_offsets():
    m = _rng(9).normal(size=SHAPE)
    m[0] += 10.0
    m[2] -= 10.0
    res = S.normality(m, per_channel=True, rng=0)
    for label, st in _all_sets(res):
        assert not any(st.rejected(0.01).values()), label
    assert res.channels[0].mean == pytest.approx(10.0, abs=4 / 64)  # raw mean kept, 4 SE
    # pooled standardisation sees a three-component mixture
    pooled = S.normality(m, per_channel=False, rng=0)
    assert all(pooled.pooled.rejected(0.01).values())
    # KS against N(0,1) of pooled-standardised channels: channel 0 sits near +1.2
    assert pooled.channels[0].ks_statistic > 0.5


def test_interior_drops_border():
    # a map whose border is huge and interior Gaussian: interior=2 passes
    m = _rng(10).normal(size=(3, 40, 40))
    m[:, :2, :] = 50.0
    m[:, -2:, :] = -50.0
    m[:, :, :2] = 50.0
    m[:, :, -2:] = -50.0
    assert all(S.normality(m, rng=0).pooled.rejected(0.01).values())
    res = S.normality(m, interior=2, rng=0)
    assert res.shape == (3, 36, 36) and res.pooled.n == 3 * 36 * 36
    assert not any(res.pooled.rejected(0.01).values())


def test_two_dimensional_map_is_one_channel():
    m = _rng(11).normal(size=(32, 32))
    res = S.normality(m)
    assert len(res.channels) == 1 and res.pooled.n == 1024
    assert res.channels[0].shapiro_statistic == res.pooled.shapiro_statistic


def test_normality_result_serialises():
    res = S.normality(_rng(12).normal(size=(2, 16, 16)), rng=0)
    d = json.loads(json.dumps(res.as_dict(), allow_nan=False))
    assert d["pooled"]["n"] == 512 and len(d["channels"]) == 2
    assert isinstance(d["pooled"]["anderson_reject_5pct"], bool)
    text = str(res)
    assert "pooled" in text and "ch1" in text
    with pytest.raises(Exception):  # frozen
        res.interior = 3


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(m=np.zeros((3, 2, 2)) + np.arange(4).reshape(2, 2)), ValueError, "at least 8"),
    (dict(m=np.full((2, 8, 8), np.nan)), ValueError, "NaN or Inf"),
    (dict(m=np.array([[[np.inf] * 8] * 8])), ValueError, "NaN or Inf"),
    (dict(m=np.zeros(64)), ValueError, "dimensional"),
    (dict(m=np.zeros((1, 2, 8, 8))), ValueError, "dimensional"),
    (dict(m=np.ones((1, 8, 8), complex)), TypeError, "real numeric"),
    (dict(m=np.ones((1, 8, 8), bool)), TypeError, "real numeric"),
    (dict(interior=-1), ValueError, "interior"),
    (dict(interior=4), ValueError, "interior"),
    (dict(interior=1.5), TypeError, "interior"),
    (dict(max_shapiro=6000), ValueError, "max_shapiro"),
    (dict(max_shapiro=2), ValueError, "max_shapiro"),
    (dict(per_channel="yes"), TypeError, "per_channel"),
    (dict(standardize=None), TypeError, "standardize"),
    (dict(rng="seed"), TypeError, "rng"),
])
def test_normality_bad_arguments(kwargs, exc, match):
    args = dict(m=_rng(0).normal(size=(2, 8, 8)))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        S.normality(**args)


def test_unknown_option_rejected():
    with pytest.raises(TypeError):
        S.normality(np.zeros((1, 8, 8)), method="shapiro")


def test_rejected_alpha_validated():
    st = S.normality(_rng(0).normal(size=(1, 8, 8))).pooled
    with pytest.raises(ValueError, match="alpha"):
        st.rejected(0.1)


# ---------------------------------------------------------------------------
# qq_data, standardize_channels
# ---------------------------------------------------------------------------

def test_qq_data_full_sample_is_sorted_values():
    x = _rng(13).normal(size=50)
    q = S.qq_data(x, n_points=1000, standardize=False)
    assert q.sample.shape == q.theoretical.shape == (50,)
    np.testing.assert_array_equal(q.sample, np.sort(x))
    p = (np.arange(1, 51) - 0.5) / 50
    np.testing.assert_allclose(sst.norm.cdf(q.theoretical), p, rtol=1e-12)
    assert np.all(np.diff(q.theoretical) > 0)


def test_qq_data_gaussian_near_identity_and_affine_invariance():
    x = _rng(14).normal(size=20000)
    q = S.qq_data(3 * x - 7, n_points=99)
    inner = slice(5, -5)  # tails of the QQ plot are noisy
    assert np.max(np.abs(q.sample[inner] - q.theoretical[inner])) < 0.05
    q0 = S.qq_data(x, n_points=99)
    np.testing.assert_allclose(q.sample, q0.sample, atol=1e-10)
    assert json.loads(json.dumps(q.as_dict()))["n"] == 20000
    assert "99 quantiles" in str(q)


def test_qq_data_errors():
    with pytest.raises(ValueError, match="at least 8"):
        S.qq_data(np.arange(5.0))
    with pytest.raises(ValueError, match="constant"):
        S.qq_data(np.ones(20))
    with pytest.raises(ValueError, match="n_points"):
        S.qq_data(np.arange(20.0), n_points=1)


def test_standardize_channels():
    g = _rng(15)
    m = g.normal(size=(3, 10, 12)) * np.array([1, 5, 0.1])[:, None, None] + \
        np.array([0, 100, -3])[:, None, None]
    z = S.standardize_channels(m)
    np.testing.assert_allclose(z.mean(axis=(1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=(1, 2)), 1, rtol=1e-12)
    # an affine transform per channel does not change the result
    np.testing.assert_allclose(S.standardize_channels(4 * m + 1), z, atol=1e-12)
    batch = S.standardize_channels(np.stack([m, 2 * m]))
    np.testing.assert_allclose(batch[1], z, atol=1e-12)
    m[1] = 1.0
    with pytest.raises(ValueError, match="constant"):
        S.standardize_channels(m)


# ---------------------------------------------------------------------------
# similarity, SSIM
# ---------------------------------------------------------------------------

X12 = np.arange(12.0).reshape(1, 3, 4)


def test_similarity_hand_vectors():
    r = S.similarity(2 * X12 + 3, X12)
    assert r.pearson == pytest.approx(1.0, abs=1e-12)
    assert r.spearman == pytest.approx(1.0, abs=1e-12)
    assert r.ssim == pytest.approx(1.0, abs=1e-12)  # equal after min-max scaling
    # cosine by hand: x = 0..11, y = 2x + 3
    x = np.arange(12.0)
    y = 2 * x + 3
    sxy, sxx, syy = (x * y).sum(), (x * x).sum(), (y * y).sum()
    # sum x = 66, sum x^2 = 506: sum xy = 2*506 + 3*66, sum y^2 = 4*506 + 12*66 + 9*12
    assert (sxy, sxx, syy) == (1210.0, 506.0, 2924.0)
    assert r.cosine == pytest.approx(1210 / math.sqrt(506 * 2924), abs=1e-12)

    assert S.similarity(5 * X12, X12).cosine == pytest.approx(1.0, abs=1e-12)

    neg = S.similarity(-X12, X12)
    assert neg.pearson == pytest.approx(-1.0, abs=1e-12)
    assert neg.spearman == pytest.approx(-1.0, abs=1e-12)
    assert neg.cosine == pytest.approx(-1.0, abs=1e-12)

    mono = S.similarity(np.exp(X12), X12)  # monotone, not linear
    assert mono.spearman == pytest.approx(1.0, abs=1e-12)
    assert mono.pearson < 0.9


def test_similarity_pearson_hand_value():
    # x = (1, 2, 3, 4, 5, 6, 7, 8), y = (2, 1, 4, 3, 6, 5, 8, 7):
    # centred: Sxx = Syy = 42, Sxy = Sxx - sum (dx - dy)^2 / 2 = 42 - 8/2 = 38 -> r = 38/42
    x = np.arange(1.0, 9.0).reshape(1, 2, 4)
    y = np.array([2, 1, 4, 3, 6, 5, 8, 7], float).reshape(1, 2, 4)
    r = S.similarity(x, y)
    assert r.pearson == pytest.approx(38 / 42, abs=1e-12)
    assert r.spearman == pytest.approx(38 / 42, abs=1e-12)  # values are their ranks


def test_similarity_constant_is_nan_and_serialises_to_none():
    r = S.similarity(np.ones((1, 3, 4)), X12)
    assert math.isnan(r.pearson) and math.isnan(r.spearman)
    d = json.loads(json.dumps(r.as_dict(), allow_nan=False))
    assert d["pearson"] is None and isinstance(d["ssim"], float)
    assert "pearson=nan" in str(r)


@pytest.mark.parametrize("a, b, exc, match", [
    (np.zeros((1, 3, 4)), np.zeros((1, 4, 3)), ValueError, "shape mismatch"),
    (np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), ValueError, "at least 8"),
    (np.full((1, 3, 4), np.nan), X12, ValueError, "NaN or Inf"),
    (np.zeros(12), np.zeros(12), ValueError, "dimensional"),
    (X12.astype(complex), X12, TypeError, "real numeric"),
])
def test_similarity_bad_arguments(a, b, exc, match):
    with pytest.raises(exc, match=match):
        S.similarity(a, b)
    with pytest.raises(exc, match=match):
        S.class_sensitivity(a, b)


# slow reference SSIM: explicit loops over pixels and window offsets, with
# scipy.ndimage's 'reflect' extension (d c b a | a b c d | d c b a) written out.

def _reflect(i, n):
    i %= 2 * n
    return i if i < n else 2 * n - 1 - i


def _ssim_loops(a, b, data_range, sigma=1.5, radius=5):
    g = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    w2 = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    scores = []
    for x, y in zip(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])):
        h, w = x.shape
        rows = range(radius, h - radius) if h > 2 * radius else range(h)
        cols = range(radius, w - radius) if w > 2 * radius else range(w)
        vals = []
        for i in rows:
            for j in cols:
                px = np.empty((2 * radius + 1,) * 2)
                py = np.empty_like(px)
                for di in range(-radius, radius + 1):
                    for dj in range(-radius, radius + 1):
                        ii, jj = _reflect(i + di, h), _reflect(j + dj, w)
                        px[di + radius, dj + radius] = x[ii, jj]
                        py[di + radius, dj + radius] = y[ii, jj]
                mx, my = (w2 * px).sum(), (w2 * py).sum()
                vx = (w2 * (px - mx) ** 2).sum()
                vy = (w2 * (py - my) ** 2).sum()
                cxy = (w2 * (px - mx) * (py - my)).sum()
                vals.append((2 * mx * my + c1) * (2 * cxy + c2)
                            / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
        scores.append(np.mean(vals))
    return float(np.mean(scores))


def _ssim_gaussian_filter(a, b, data_range):
    def f(z):
        return ndimage.gaussian_filter(z, sigma=(0,) * (z.ndim - 2) + (1.5, 1.5),
                                       mode="reflect", truncate=3.5)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = f(a), f(b)
    vx, vy, cxy = f(a * a) - mx ** 2, f(b * b) - my ** 2, f(a * b) - mx * my
    smap = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    h, w = a.shape[-2:]
    rs = slice(5, h - 5) if h > 10 else slice(None)
    cs = slice(5, w - 5) if w > 10 else slice(None)
    return float(smap[..., rs, cs].mean())


@pytest.mark.parametrize("shape", [(2, 14, 13), (1, 12, 7), (2, 6, 9), (3, 3)])
def test_ssim_matches_slow_reference(shape):
    g = _rng(16)
    a = g.random(shape)
    b = 0.6 * a + 0.4 * g.random(shape) - 0.2
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    ref = _ssim_loops(a, b, hi - lo)
    assert S.ssim(a, b) == pytest.approx(ref, abs=1e-10)  # default data_range
    assert S.ssim(a, b, data_range=2.0) == pytest.approx(_ssim_loops(a, b, 2.0), abs=1e-10)
    assert S.ssim(a, b) == pytest.approx(_ssim_gaussian_filter(a, b, hi - lo), abs=1e-10)


def test_ssim_properties():
    g = _rng(17)
    yy, xx = np.mgrid[0:32, 0:32]
    img = np.stack([np.sin(xx / 5.0) + np.cos(yy / 7.0), np.sin((xx + yy) / 6.0)])
    assert S.ssim(img, img) == pytest.approx(1.0, abs=1e-15)
    noise = g.normal(size=img.shape)
    scores = [S.ssim(img, img + s * noise, data_range=4.0) for s in (0.05, 0.1, 0.2, 0.4, 0.8)]
    assert all(x > y for x, y in zip(scores, scores[1:]))
    scores_default = [S.ssim(img, img + s * noise) for s in (0.05, 0.1, 0.2, 0.4, 0.8)]
    assert all(x > y for x, y in zip(scores_default, scores_default[1:]))
    other = img + 0.3 * g.normal(size=img.shape)
    assert S.ssim(img, other) == pytest.approx(S.ssim(other, img), abs=1e-15)
    assert -1 <= S.ssim(img, other) <= 1
    # zero-mean image vs its negative: luminance term ~1, structure term ~ -1
    zm = img - img.mean(axis=(1, 2), keepdims=True)
    assert S.ssim(zm + 10, -zm + 10) < 0
    # channels are averaged: SSIM of a stack is the mean of the per-channel SSIMs
    per = [S.ssim(img[k], other[k], data_range=3.0) for k in range(2)]
    assert S.ssim(img, other, data_range=3.0) == pytest.approx(np.mean(per), abs=1e-14)


def test_ssim_errors():
    a = np.zeros((8, 8))
    with pytest.raises(ValueError, match="data_range is zero"):
        S.ssim(a, a)
    assert S.ssim(a, a, data_range=1.0) == 1.0
    with pytest.raises(ValueError, match="data_range"):
        S.ssim(a, a, data_range=0.0)
    with pytest.raises(TypeError, match="data_range"):
        S.ssim(a, a, data_range="1")
    with pytest.raises(ValueError, match="shape mismatch"):
        S.ssim(a, np.zeros((8, 9)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        S.ssim(np.zeros(8), np.zeros(8))


# ---------------------------------------------------------------------------
# minmax01, class sensitivity
# ---------------------------------------------------------------------------

def test_minmax01_hand_values():
    np.testing.assert_array_equal(S.minmax01([[0, 2], [4, 8]]), [[0, 0.25], [0.5, 1]])
    np.testing.assert_array_equal(S.minmax01([[-1.0, 1.0], [0.0, 3.0]]),
                                  [[0, 0.5], [0.25, 1]])
    np.testing.assert_array_equal(S.minmax01(np.full((2, 3), 7.0)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        S.minmax01([1.0, np.nan])


def test_class_sensitivity_hand_values():
    m = np.arange(8.0).reshape(1, 2, 4)
    same = S.class_sensitivity(m, m)
    assert same.l2 == 0 and same.ssim == pytest.approx(1.0, abs=1e-15)
    assert same.spearman == pytest.approx(1.0, abs=1e-12)
    aff = S.class_sensitivity(m, 2.5 * m - 4)
    assert aff.l2 == pytest.approx(0.0, abs=1e-14)
    assert aff.ssim == pytest.approx(1.0, abs=1e-12)
    # m vs -m: normalised maps k/7 and 1 - k/7, difference (2k - 7)/7, k = 0..7
    neg = S.class_sensitivity(m, -m)
    assert neg.l2 == pytest.approx(math.sqrt(49 + 25 + 9 + 1 + 1 + 9 + 25 + 49) / 7, abs=1e-12)
    assert neg.spearman == pytest.approx(-1.0, abs=1e-12)
    assert neg.ssim < 0
    # constant maps normalise to zeros: identical -> ssim 1, l2 0
    c = S.class_sensitivity(np.full((1, 3, 3), 4.0), np.full((1, 3, 3), -2.0))
    assert c.l2 == 0 and c.ssim == pytest.approx(1.0) and math.isnan(c.spearman)
    assert "l2=" in str(neg) and json.dumps(neg.as_dict())
    # unit-norm L2: sqrt(2 - 2 cos); m and 2.5 m - 4 have cos = <m, u> / (|m| |u|)
    u = 2.5 * m - 4
    cos = float((m * u).sum() / np.sqrt((m * m).sum() * (u * u).sum()))
    assert aff.l2_unit == pytest.approx(math.sqrt(2 - 2 * cos), abs=1e-12)
    assert neg.l2_unit == pytest.approx(2.0) and same.l2_unit == pytest.approx(0.0, abs=1e-7)
    assert neg.spearman_abs == pytest.approx(1.0)
    # |m - 3.5| ranks pixels by distance from the middle: uncorrelated with the order of m
    mid = S.class_sensitivity(m, m - 3.5)
    assert mid.spearman == pytest.approx(1.0) and mid.spearman_abs == pytest.approx(0.0, abs=1e-12)  # symmetric V
    assert math.isnan(S.class_sensitivity(m, np.zeros_like(m)).l2_unit)


# ---------------------------------------------------------------------------
# bootstrap, summarize
# ---------------------------------------------------------------------------

def test_bootstrap_ci_covers_true_mean_and_shrinks():
    g = _rng(18)
    widths = []
    for n in (50, 800):
        x = g.exponential(scale=2.0, size=n)
        ci = S.bootstrap_ci(x, rng=n)
        lo, hi = ci  # unpacks as a pair
        assert lo < 2.0 < hi
        assert lo < ci.estimate < hi and ci.estimate == pytest.approx(x.mean())
        widths.append(ci.width)
    # width ~ 1/sqrt(n): expected ratio 4; allow generous slack
    assert widths[1] < widths[0] / 2


def test_bootstrap_ci_coverage():
    # 200 independent normal samples of size 40: a 90% CI should cover mu about
    # 180 times (binomial sd 4.2); percentile intervals undercover slightly.
    g = _rng(19)
    hits = sum(lo < 1.0 < hi for lo, hi in
               (S.bootstrap_ci(g.normal(1.0, 1.0, 40), n_boot=400, level=0.9, rng=g)
                for _ in range(200)))
    assert 160 <= hits <= 195


def test_bootstrap_non_vectorised_stat_same_resamples():
    x = _rng(20).normal(size=60)
    vec = S.bootstrap_ci(x, np.median, n_boot=300, rng=5)
    loop = S.bootstrap_ci(x, lambda v: float(np.median(v)), n_boot=300, rng=5)
    assert (vec.low, vec.high) == pytest.approx((loop.low, loop.high), abs=1e-14)


def test_bootstrap_errors():
    x = np.arange(10.0)
    with pytest.raises(ValueError, match="level"):
        S.bootstrap_ci(x, level=1.5)
    with pytest.raises(TypeError, match="stat must be callable"):
        S.bootstrap_ci(x, stat="mean")
    with pytest.raises(ValueError, match="n_boot"):
        S.bootstrap_ci(x, n_boot=0)
    with pytest.raises(ValueError, match="at least 2"):
        S.bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="NaN or Inf"):
        S.bootstrap_ci([1.0, np.inf])


def test_summarize():
    s = S.summarize([1.0, 2.0, 3.0, 4.0, 5.0], rng=0)
    assert s.mean == 3.0 and s.n == 5
    assert s.std == pytest.approx(math.sqrt(10 / 4))  # sum of squared deviations 10, ddof 1
    assert s.sem == pytest.approx(math.sqrt(10 / 4) / math.sqrt(5))
    assert 1.0 <= s.ci.low < 3.0 < s.ci.high <= 5.0
    d = json.loads(json.dumps(s.as_dict()))
    assert d["ci"]["level"] == 0.95 and "CI" in str(s)


# ---------------------------------------------------------------------------
# relative error, log-log slope
# ---------------------------------------------------------------------------

def test_relative_error():
    assert S.relative_error([3.0, 4.0], [3.0, 0.0]) == pytest.approx(4 / 3)
    assert S.relative_error([[1.0, 1.0], [1.0, 1.0]], [[2.0, 2.0], [2.0, 2.0]]) == 0.5
    assert S.relative_error(np.ones(5), np.ones(5)) == 0.0
    with pytest.raises(ValueError, match="all zeros"):
        S.relative_error([1.0, 2.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="shape mismatch"):
        S.relative_error([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN or Inf"):
        S.relative_error([np.nan, 2.0], [1.0, 2.0])


def test_loglog_slope_exact_power_law():
    ns = np.array([8, 16, 32, 64, 128, 256, 512, 1024, 4096])
    fit = S.fit_loglog_slope(ns, 3.7 * ns ** -0.5)
    assert fit.slope == pytest.approx(-0.5, abs=1e-12)
    assert fit.intercept == pytest.approx(math.log(3.7), abs=1e-12)
    assert fit.prefactor == pytest.approx(3.7, rel=1e-12)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(fit.predict([100.0]), [0.37], rtol=1e-12)
    # two points determine the line
    fit2 = S.fit_loglog_slope([10, 1000], [1.0, 0.01])
    assert fit2.slope == pytest.approx(-1.0, abs=1e-12)


def test_loglog_slope_noisy_r2_below_one():
    ns = np.array([10.0, 20, 40, 80, 160])
    vals = ns ** -1.0 * np.array([1.1, 0.9, 1.05, 0.95, 1.0])
    fit = S.fit_loglog_slope(ns, vals)
    assert 0 < fit.r2 < 1
    assert fit.slope == pytest.approx(-1.0, abs=0.1)


@pytest.mark.parametrize("ns, vals, match", [
    ([1, 2, 3], [1.0, -1.0, 2.0], "positive"),
    ([0, 2, 3], [1.0, 1.0, 2.0], "positive"),
    ([1, 2], [1.0, 2.0, 3.0], "shape mismatch"),
    ([5], [1.0], "at least 2"),
    ([4, 4, 4], [1.0, 2.0, 3.0], "all equal"),
    ([1, 2, np.nan], [1.0, 2.0, 3.0], "NaN or Inf"),
])
def test_loglog_slope_errors(ns, vals, match):
    with pytest.raises(ValueError, match=match):
        S.fit_loglog_slope(ns, vals)


# ---------------------------------------------------------------------------
# documentation
# ---------------------------------------------------------------------------

def test_public_functions_documented():
    for name in S.__all__:
        obj = getattr(S, name)
        if callable(obj) and not isinstance(obj, type):
            doc = obj.__doc__ or ""
            for section in ("Parameters", "Returns", "Examples"):
                assert section in doc, (name, section)
