"""Statistics for judging visualisation maps against the theory of random networks.

Nie, Zhang & Patel (ICML 2018) predict that for random networks the saliency
and DeconvNet maps look like Gaussian noise, while Guided Backpropagation (GBP)
approximately recovers the (patch-normalised) input. This module supplies the
measurements used to test those claims:

* normality of a map's pixel values -- :func:`normality`, :func:`qq_data`,
  :func:`standardize_channels`;
* similarity of a map to a reference image -- :func:`similarity`,
  :func:`ssim`;
* class sensitivity (how much a map changes with the target class) --
  :func:`minmax01`, :func:`class_sensitivity`;
* summaries over repeated experiments -- :func:`bootstrap_ci`,
  :func:`summarize`;
* convergence checks -- :func:`relative_error`, :func:`fit_loglog_slope`.

A *map* is an array of shape (c, h, w) (a single 2-D image (h, w) is accepted
where noted and treated as one channel). All results are small frozen
dataclasses with a readable ``str()`` and an ``as_dict()`` method returning
plain Python values (non-finite floats become ``None``) suitable for
:func:`json.dumps`.

Only numpy and scipy are used.
"""
from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage
from scipy import stats as _st

from . import _checks
from ._io import jsonable
from .kernels import dot as _dot
from .kernels import norm as _norm

__all__ = [
    "MIN_VALUES", "SHAPIRO_MAX_N",
    "NormalityStats", "NormalityResult", "QQData", "SimilarityResult",
    "ClassSensitivityResult", "ConfidenceInterval", "Summary", "LogLogFit",
    "normality", "qq_data", "standardize_channels", "similarity", "ssim",
    "minmax01", "class_sensitivity", "bootstrap_ci", "summarize",
    "relative_error", "fit_loglog_slope", "pearson",
]

#: Fewest values a map may have for the statistics here to be meaningful
#: (also the smallest sample scipy's D'Agostino K^2 test accepts).
MIN_VALUES = 8

#: Largest sample for which scipy's Shapiro-Wilk p-value is accurate.
SHAPIRO_MAX_N = 5000

# Anderson-Darling, normal distribution with mean and variance estimated:
# asymptotic critical values of the modified statistic
# A*^2 = A^2 (1 + 0.75/n + 2.25/n^2) at the 15, 10, 5, 2.5 and 1% levels
# (D'Agostino & Stephens 1986, Table 4.7 -- the values scipy uses).
_AD_SIG = np.array([0.15, 0.10, 0.05, 0.025, 0.01])
_AD_NORM = np.array([0.561, 0.631, 0.752, 0.873, 1.035])
# scipy >= 1.17 warns (FutureWarning) unless ``method`` is given; older versions
# have no ``method`` argument and return the critical values themselves.
_ANDERSON_HAS_METHOD = "method" in inspect.signature(_st.anderson).parameters

# SSIM (Wang et al. 2004): Gaussian window, sigma 1.5, truncated at 3.5 sigma
# (radius 5: the 11 x 11 window of the paper), normalised to sum 1.
_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5
_SSIM_RADIUS = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_k = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=float)
_SSIM_WINDOW = np.exp(-0.5 * (_k / _SSIM_SIGMA) ** 2)
_SSIM_WINDOW /= _SSIM_WINDOW.sum()
del _k


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------

def _as_array(x, name, ndims=None, min_size=1):
    """float64 copy of ``x`` after checking dtype, ndim, size and finiteness."""
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nested sequences
        raise ValueError(f"{name} must be a real numeric array, got {_checks.short_repr(x)} ({exc})") from None
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    if ndims is not None and a.ndim not in ndims:
        want = " or ".join(str(d) for d in ndims)
        raise ValueError(f"{name} must be {want}-dimensional, got shape {a.shape}")
    if a.size < min_size:
        raise ValueError(f"{name} has {a.size} values; need at least {min_size}")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} contains NaN or Inf ({int(bad.sum())} non-finite values)")
    return a


def _same_shape(a, b, na, nb):
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {na} has shape {a.shape}, {nb} has shape {b.shape}")


def _check_bool(name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


def _check_int(name, v, lo, hi=None):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    v = int(v)
    if v < lo or (hi is not None and v > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be {rng}, got {v}")
    return v


def _generator(rng):
    return _checks.generator(rng)


def _jsonable(v):
    return jsonable(v, finite_only=True)


class _Result:
    """Mixin: ``as_dict()`` with plain, JSON-able Python values."""

    def as_dict(self):
        """Fields as a dict of plain Python values (non-finite floats -> None)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


def _fmt(x, spec=".4f"):
    return "nan" if x is None or not math.isfinite(x) else format(x, spec)


# --------------------------------------------------------------------------
# 1. normality
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class NormalityStats(_Result):
    """Normality statistics of one set of values (a channel, or all pooled).

    Attributes
    ----------
    n : int
        Number of values.
    mean, std : float
        Mean and (population, ddof=0) standard deviation of the raw values,
        before standardisation.
    skewness, excess_kurtosis : float
        Moment estimates g1 and g2 (0 for a Gaussian; standard errors about
        sqrt(6/n) and sqrt(24/n)).
    shapiro_statistic, shapiro_pvalue : float
        Shapiro-Wilk W and p-value.
    shapiro_n : int
        Number of values Shapiro-Wilk was computed on: ``n``, or the size of
        the random subsample when ``n`` exceeded ``max_shapiro``.
    dagostino_statistic, dagostino_pvalue : float
        D'Agostino-Pearson K^2 (:func:`scipy.stats.normaltest`).
    anderson_statistic : float
        Anderson-Darling A^2 against a normal with fitted mean and variance.
    anderson_critical_1pct, anderson_critical_5pct : float
        Critical values of A^2 at the 1% and 5% levels for this ``n``.
    anderson_reject_5pct : bool
        ``anderson_statistic > anderson_critical_5pct``.
    ks_statistic, ks_pvalue : float
        Kolmogorov-Smirnov distance to N(0, 1) of the standardised values and
        its p-value (conservative when the values were standardised, see
        :func:`normality`).
    """

    n: int
    mean: float
    std: float
    skewness: float
    excess_kurtosis: float
    shapiro_statistic: float
    shapiro_pvalue: float
    shapiro_n: int
    dagostino_statistic: float
    dagostino_pvalue: float
    anderson_statistic: float
    anderson_critical_1pct: float
    anderson_critical_5pct: float
    anderson_reject_5pct: bool
    ks_statistic: float
    ks_pvalue: float

    @property
    def shapiro_subsampled(self):
        """True if Shapiro-Wilk used a random subsample of the values."""
        return self.shapiro_n < self.n

    def rejected(self, alpha=0.01):
        """Which tests reject normality at level ``alpha``.

        Parameters
        ----------
        alpha : {0.01, 0.05}
            Significance level (Anderson-Darling critical values are only
            recorded at these two levels).

        Returns
        -------
        dict
            ``{"shapiro": bool, "dagostino": bool, "anderson": bool, "ks": bool}``.
        """
        if alpha not in (0.01, 0.05):
            raise ValueError(f"alpha must be 0.01 or 0.05, got {alpha!r}")
        crit = self.anderson_critical_1pct if alpha == 0.01 else self.anderson_critical_5pct
        return {"shapiro": bool(self.shapiro_pvalue < alpha),
                "dagostino": bool(self.dagostino_pvalue < alpha),
                "anderson": bool(self.anderson_statistic > crit),
                "ks": bool(self.ks_pvalue < alpha)}

    def _row(self, label):
        sw = f"{self.shapiro_pvalue:.3g}"
        if self.shapiro_subsampled:
            sw += f" ({self.shapiro_n})"
        return (f"{label:<7} {self.n:>7d} {self.mean:>10.4g} {self.std:>10.4g} "
                f"{self.skewness:>7.3f} {self.excess_kurtosis:>7.3f} {sw:>14} "
                f"{self.dagostino_pvalue:>9.3g} "
                f"{self.anderson_statistic:>7.3f}{'*' if self.anderson_reject_5pct else ' '} "
                f"{self.ks_statistic:>7.4f} {self.ks_pvalue:>9.3g}")

    def __str__(self):
        return "\n".join([_NORMALITY_HEADER, self._row("values")])


_NORMALITY_HEADER = (f"{'':<7} {'n':>7} {'mean':>10} {'std':>10} {'skew':>7} {'exkurt':>7} "
                     f"{'SW p (n)':>14} {'K2 p':>9} {'AD A2':>8} {'KS D':>7} {'KS p':>9}")


@dataclass(frozen=True)
class NormalityResult(_Result):
    """Result of :func:`normality`.

    Attributes
    ----------
    pooled : NormalityStats
        Statistics of all (standardised) values together.
    channels : tuple of NormalityStats
        One entry per channel.
    shape : tuple of int
        Shape (c, h, w) of the map that was tested (after dropping the border).
    interior : int
        Border pixels dropped on each side.
    per_channel, standardized : bool
        How the values were standardised before testing.
    """

    pooled: NormalityStats
    channels: tuple
    shape: tuple
    interior: int
    per_channel: bool
    standardized: bool

    def rejected(self, alpha=0.01):
        """``{"pooled": {...}, "ch0": {...}, ...}`` of :meth:`NormalityStats.rejected`."""
        out = {"pooled": self.pooled.rejected(alpha)}
        for k, ch in enumerate(self.channels):
            out[f"ch{k}"] = ch.rejected(alpha)
        return out

    def __str__(self):
        how = ("not standardised" if not self.standardized
               else "standardised per channel" if self.per_channel else "standardised pooled")
        lines = [f"normality of {'x'.join(map(str, self.shape))} map "
                 f"(interior={self.interior}, {how}; * = AD rejects at 5%)",
                 _NORMALITY_HEADER, self.pooled._row("pooled")]
        lines += [ch._row(f"ch{k}") for k, ch in enumerate(self.channels)]
        return "\n".join(lines)


def _anderson_norm(u):
    """A^2 and the 1% / 5% critical values, without scipy's FutureWarning."""
    if _ANDERSON_HAS_METHOD:
        res = _st.anderson(u, dist="norm", method="interpolate")
    else:  # pragma: no cover - scipy < 1.17
        res = _st.anderson(u, dist="norm")
    n = u.size
    crit = np.round(_AD_NORM / (1.0 + 0.75 / n + 2.25 / n ** 2), 3)
    return float(res.statistic), float(crit[_AD_SIG == 0.01][0]), float(crit[_AD_SIG == 0.05][0])


def _normality_stats(raw, z, gen, max_shapiro):
    n = raw.size
    if n > max_shapiro:
        sub = z[np.sort(gen.choice(n, size=max_shapiro, replace=False))]
    else:
        sub = z
    sw = _st.shapiro(sub)
    k2 = _st.normaltest(z)
    a2, c1, c5 = _anderson_norm(z)
    ks = _st.kstest(z, "norm")
    return NormalityStats(
        n=int(n), mean=float(raw.mean()), std=float(raw.std()),
        skewness=float(_st.skew(z)), excess_kurtosis=float(_st.kurtosis(z)),
        shapiro_statistic=float(sw.statistic), shapiro_pvalue=float(sw.pvalue),
        shapiro_n=int(sub.size),
        dagostino_statistic=float(k2.statistic), dagostino_pvalue=float(k2.pvalue),
        anderson_statistic=a2, anderson_critical_1pct=c1, anderson_critical_5pct=c5,
        anderson_reject_5pct=bool(a2 > c5),
        ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue))


def _constant_message(a, where):
    return f"map is constant: normality is undefined ({where} has the single value {a.flat[0]!r})"


def normality(m, per_channel=True, interior=0, standardize=True, max_shapiro=SHAPIRO_MAX_N,
              rng=None):
    """Test whether a map's pixel values look like Gaussian noise.

    Runs Shapiro-Wilk, D'Agostino-Pearson K^2, Anderson-Darling and
    Kolmogorov-Smirnov tests, and reports moments, for all values pooled and
    for each channel separately.

    Parameters
    ----------
    m : array_like, shape (c, h, w) or (h, w)
        The map (a 2-D map is treated as one channel).
    per_channel : bool, default True
        Standardise each channel with its own mean and standard deviation
        (True), or all values with the pooled mean and standard deviation
        (False). With True, channel offsets and scales do not count against
        normality of the pooled values.
    interior : int, default 0
        Number of border pixels to drop on each side before testing. Border
        pixels are covered by fewer patches, hence have smaller variance, so
        the raw map is a scale mixture there.
    standardize : bool, default True
        Subtract the mean and divide by the (ddof=0) standard deviation before
        testing. Shapiro-Wilk, K^2, Anderson-Darling, skewness and kurtosis
        are location-scale invariant, so this only matters for the
        Kolmogorov-Smirnov test (which compares with N(0, 1)) and, for pooled
        values, for whether channel offsets are removed.
    max_shapiro : int, default 5000
        Largest sample given to Shapiro-Wilk, in [3, 5000]. scipy's
        Shapiro-Wilk p-value is only accurate up to 5000 values; when a set of
        values is larger, the test is run on a random subsample (without
        replacement) of ``max_shapiro`` values drawn with ``rng``, and the size
        used is recorded in ``shapiro_n``. The other tests use all values.
    rng : None, int, SeedSequence or numpy.random.Generator
        Source of the Shapiro-Wilk subsample (numpy convention: None means
        fresh entropy, pass an int for reproducible results).

    Returns
    -------
    NormalityResult
        ``pooled`` and ``channels`` hold :class:`NormalityStats`; ``mean`` and
        ``std`` there describe the raw values, all other statistics the
        standardised values.

    Raises
    ------
    ValueError
        If ``m`` has the wrong number of dimensions, contains NaN/Inf, has a
        channel with fewer than ``MIN_VALUES`` values after dropping the
        border, is constant (pooled or in any channel: "map is constant:
        normality is undefined"), or an argument is out of range.
    TypeError
        If ``m`` is not real numeric or an argument has the wrong type.

    Notes
    -----
    When ``standardize`` is True the mean and standard deviation are estimated
    from the same data, so the Kolmogorov-Smirnov p-value computed against a
    fully specified N(0, 1) is conservative (too large); the correct null
    distribution is Lilliefors'. The KS distance itself is still a useful
    effect size. Anderson-Darling critical values are those for estimated
    mean and variance (D'Agostino & Stephens 1986), computed here because
    scipy >= 1.17 only returns them with a deprecation warning.

    With many tests (4 tests x (c + 1) sets of values) some rejections at a
    fixed level are expected by chance even for exact Gaussian noise.

    References
    ----------
    .. [1] Nie, W., Zhang, Y. & Patel, A. (2018). A Theoretical Explanation
       for Perplexing Behaviors of Backpropagation-based Visualizations. ICML.
    .. [2] Shapiro, S. S. & Wilk, M. B. (1965). An analysis of variance test
       for normality. Biometrika 52, 591-611.
    .. [3] D'Agostino, R. B. & Pearson, E. S. (1973). Tests for departure from
       normality. Biometrika 60, 613-622.
    .. [4] D'Agostino, R. B. & Stephens, M. A. (1986). Goodness-of-Fit
       Techniques. Marcel Dekker (Anderson-Darling, Table 4.7).
    .. [5] Lilliefors, H. W. (1967). On the Kolmogorov-Smirnov test for
       normality with mean and variance unknown. JASA 62, 399-402.

    Examples
    --------
    >>> import numpy as np
    >>> noise = np.random.default_rng(0).normal(size=(3, 64, 64))
    >>> res = normality(noise, rng=0)
    >>> res.pooled.n, res.pooled.shapiro_n, res.channels[0].shapiro_n
    (12288, 5000, 4096)
    >>> any(any(r.values()) for r in res.rejected(0.01).values())
    False
    >>> expo = np.random.default_rng(0).exponential(size=(3, 64, 64))
    >>> normality(expo, rng=0).pooled.rejected(0.01)
    {'shapiro': True, 'dagostino': True, 'anderson': True, 'ks': True}
    """
    per_channel = _check_bool("per_channel", per_channel)
    standardize = _check_bool("standardize", standardize)
    interior = _check_int("interior", interior, 0)
    max_shapiro = _check_int("max_shapiro", max_shapiro, 3, SHAPIRO_MAX_N)
    gen = _generator(rng)
    a = _as_array(m, "m", ndims=(2, 3))
    if a.ndim == 2:
        a = a[None]
    c, h, w = a.shape
    if 2 * interior >= min(h, w):
        raise ValueError(f"interior={interior} leaves no pixels of a {h}x{w} map")
    if interior:
        a = a[:, interior:h - interior, interior:w - interior]
    if a[0].size < MIN_VALUES:
        raise ValueError(f"m has {a[0].size} values per channel (shape {a.shape} after "
                         f"interior={interior}); need at least {MIN_VALUES}")
    if np.ptp(a) == 0:
        raise ValueError(_constant_message(a, "every pixel"))
    for k in range(c):
        if np.ptp(a[k]) == 0:
            raise ValueError(_constant_message(a[k], f"channel {k}"))

    if not standardize:
        z = a
    elif per_channel:
        z = standardize_channels(a)
    else:
        z = (a - a.mean()) / a.std()
    pooled = _normality_stats(a.ravel(), z.ravel(), gen, max_shapiro)
    chans = tuple(_normality_stats(a[k].ravel(), z[k].ravel(), gen, max_shapiro)
                  for k in range(c))
    return NormalityResult(pooled=pooled, channels=chans, shape=tuple(a.shape),
                           interior=interior, per_channel=per_channel,
                           standardized=standardize)


def standardize_channels(m):
    """Standardise each channel of a map to mean 0 and standard deviation 1.

    Parameters
    ----------
    m : array_like, shape (h, w), (c, h, w) or (n, c, h, w)
        Map(s). Each 2-D image (the last two axes) is standardised separately
        with its own mean and population (ddof=0) standard deviation.

    Returns
    -------
    numpy.ndarray of float64, same shape as ``m``

    Raises
    ------
    ValueError
        If a channel is constant, ``m`` contains NaN/Inf or has the wrong
        number of dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.stack([np.arange(4.0).reshape(2, 2), 10 + 2 * np.arange(4.0).reshape(2, 2)])
    >>> z = standardize_channels(m)
    >>> np.allclose(z[0], z[1]), np.round(z.mean(axis=(1, 2)), 12).tolist()
    (True, [0.0, 0.0])
    >>> np.round(z.std(axis=(1, 2)), 12).tolist()
    [1.0, 1.0]
    """
    a = _as_array(m, "m", ndims=(2, 3, 4))
    mu = a.mean(axis=(-2, -1), keepdims=True)
    sd = a.std(axis=(-2, -1), keepdims=True)
    flat_sd = sd.reshape(-1)
    if (flat_sd == 0).any():
        idx = np.unravel_index(int(np.argmin(flat_sd)), sd.shape[:-2]) if a.ndim > 2 else ()
        idx = tuple(int(i) for i in idx)
        raise ValueError(f"channel {idx} of m is constant: cannot standardise")
    return (a - mu) / sd


@dataclass(frozen=True, eq=False)
class QQData(_Result):
    """Quantile pairs for a normal QQ plot (result of :func:`qq_data`).

    Attributes
    ----------
    theoretical : numpy.ndarray, shape (k,)
        Standard normal quantiles at probabilities ``(i - 0.5) / k``.
    sample : numpy.ndarray, shape (k,)
        Sample quantiles at the same probabilities.
    n : int
        Number of values the sample quantiles come from.
    standardized : bool
        Whether the values were standardised (then the reference line is y = x).
    """

    theoretical: np.ndarray
    sample: np.ndarray
    n: int
    standardized: bool

    def __str__(self):
        dev = float(np.max(np.abs(self.sample - self.theoretical)))
        return (f"QQData({self.theoretical.size} quantiles of {self.n} values, "
                f"standardized={self.standardized}, max |sample - theoretical| = {dev:.4g})")


def qq_data(values, n_points=200, *, standardize=True):
    """Theoretical (standard normal) and sample quantiles for a QQ plot.

    Parameters
    ----------
    values : array_like
        Any shape; flattened. At least ``MIN_VALUES`` finite values.
    n_points : int, default 200
        Number of quantiles, at probabilities ``p_i = (i - 0.5) / k`` for
        ``i = 1..k`` with ``k = min(n_points, values.size)``. Sample quantiles
        use the Hazen definition, so with ``k == values.size`` they are exactly
        the sorted values.
    standardize : bool, default True
        Standardise the values (pooled mean, ddof=0 standard deviation) so that
        Gaussian values fall on the line y = x.

    Returns
    -------
    QQData
        ``theoretical`` and ``sample``, arrays of shape (k,).

    Examples
    --------
    >>> import numpy as np
    >>> q = qq_data(np.random.default_rng(0).normal(size=10_000), n_points=5)
    >>> np.round(q.theoretical, 3).tolist()
    [-1.282, -0.524, 0.0, 0.524, 1.282]
    >>> bool(np.max(np.abs(q.sample - q.theoretical)) < 0.05)
    True
    """
    a = _as_array(values, "values", min_size=MIN_VALUES).ravel()
    n_points = _check_int("n_points", n_points, 2)
    standardize = _check_bool("standardize", standardize)
    if standardize:
        sd = a.std()
        if sd == 0:
            raise ValueError("values are constant: cannot standardise")
        a = (a - a.mean()) / sd
    k = min(n_points, a.size)
    p = (np.arange(1, k + 1) - 0.5) / k
    theo = _st.norm.ppf(p)
    samp = np.sort(a) if k == a.size else np.quantile(a, p, method="hazen")
    theo.flags.writeable = False
    samp.flags.writeable = False
    return QQData(theoretical=theo, sample=samp, n=int(a.size), standardized=standardize)


# --------------------------------------------------------------------------
# 2. similarity to a reference
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class SimilarityResult(_Result):
    """Result of :func:`similarity`.

    Attributes
    ----------
    pearson, spearman, cosine : float
        Correlations and cosine similarity over all values (NaN when
        undefined: a constant input for the correlations, a zero input for
        the cosine).
    ssim : float
        Mean SSIM over channels after min-max scaling both images to [0, 1].
    """

    pearson: float
    spearman: float
    cosine: float
    ssim: float

    def __str__(self):
        return (f"pearson={_fmt(self.pearson)}  spearman={_fmt(self.spearman)}  "
                f"cosine={_fmt(self.cosine)}  ssim={_fmt(self.ssim)}")


def _cosine(x, y):
    nx, ny = _norm(x), _norm(y)
    if nx == 0 or ny == 0:
        return math.nan
    return float(np.clip(_dot(x / nx, y / ny), -1.0, 1.0))


def _pearson(x, y):
    return _cosine(x - x.mean(), y - y.mean()) if np.ptp(x) > 0 and np.ptp(y) > 0 else math.nan


def _spearman(x, y):
    return _pearson(_st.rankdata(x), _st.rankdata(y))


def pearson(a, b, center="global"):
    """Pearson correlation of two equally shaped arrays, over all their values.

    Every correlation randvis reports comes from here. Its sums are taken
    through :func:`randvis.kernels.dot`, so the value does not depend on the
    BLAS thread count.

    Parameters
    ----------
    a, b : array_like, equal shapes
    center : "global" or "channel"
        ``"global"`` removes each array's overall mean (the textbook Pearson
        coefficient). ``"channel"`` removes the mean of every channel (the
        last two axes are the image plane), so a channel-wide offset, such as
        the positive mean of a random network's DeconvNet map, does not pass
        for image structure.

    Returns
    -------
    float
        In [-1, 1]; 0.0 when either array is constant after centring.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(12.0).reshape(3, 2, 2)
    >>> pearson(x, 2 * x + 1)
    1.0
    >>> offset = x + np.array([0.0, 50.0, -50.0])[:, None, None]   # per-channel offsets
    >>> pearson(x, offset) < 0.5, pearson(x, offset, center="channel")
    (True, 1.0)
    """
    if center not in ("global", "channel"):
        raise ValueError(f"center must be 'global' or 'channel', got {center!r}")
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"pearson needs equal shapes, got {a.shape} and {b.shape}")
    if center == "channel":
        if a.ndim < 2:
            raise ValueError(f"center='channel' needs arrays of at least 2 dimensions, got shape {a.shape}")
        a = a - a.mean(axis=(-2, -1), keepdims=True)
        b = b - b.mean(axis=(-2, -1), keepdims=True)
    else:
        a = a - a.mean()
        b = b - b.mean()
    den = math.sqrt(float(_dot(a, a)) * float(_dot(b, b)))
    return float(np.clip(float(_dot(a, b)) / den, -1.0, 1.0)) if den > 0 else 0.0


def similarity(m, ref):
    """How similar a map is to a reference image.

    Parameters
    ----------
    m, ref : array_like, shape (c, h, w) or (h, w)
        The map and the reference (e.g. the input image, or the
        patch-normalised input of :func:`randvis.theory.patch_normalized_input`),
        with equal shapes and at least ``MIN_VALUES`` values.

    Returns
    -------
    SimilarityResult
        ``pearson``, ``spearman`` (ties get average ranks) and ``cosine`` over
        all values flattened; ``ssim`` per channel, averaged. Because maps have
        arbitrary scale (and sign), both images are first min-max scaled to
        [0, 1] over all their values with :func:`minmax01` -- the paper's
        normalisation -- and SSIM is computed with ``data_range=1``.
        Correlations of a constant input and the cosine of an all-zero input
        are undefined and returned as NaN.

    Raises
    ------
    ValueError
        On mismatched shapes, NaN/Inf, wrong dimensions or too few values.

    References
    ----------
    .. [1] Wang, Z., Bovik, A. C., Sheikh, H. R. & Simoncelli, E. P. (2004).
       Image quality assessment: from error visibility to structural
       similarity. IEEE Trans. Image Processing 13(4), 600-612.
    .. [2] Nie, W., Zhang, Y. & Patel, A. (2018). A Theoretical Explanation
       for Perplexing Behaviors of Backpropagation-based Visualizations. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((3, 16, 16))
    >>> print(similarity(2 * x, x))
    pearson=1.0000  spearman=1.0000  cosine=1.0000  ssim=1.0000
    >>> bool(similarity(2 * x + 1, x).cosine < 1)  # cosine is not shift invariant
    True
    >>> r = similarity(-x, x)
    >>> round(r.pearson, 6), round(r.spearman, 6)
    (-1.0, -1.0)
    """
    a = _as_array(m, "m", ndims=(2, 3), min_size=MIN_VALUES)
    b = _as_array(ref, "ref", ndims=(2, 3), min_size=MIN_VALUES)
    _same_shape(a, b, "m", "ref")
    x, y = a.ravel(), b.ravel()
    return SimilarityResult(pearson=_pearson(x, y), spearman=_spearman(x, y),
                            cosine=_cosine(x, y),
                            ssim=ssim(minmax01(a), minmax01(b), data_range=1.0))


def _gauss_window(x):
    """Gaussian-weighted local mean over the last two axes ('reflect' boundary)."""
    y = ndimage.correlate1d(x, _SSIM_WINDOW, axis=-1, mode="reflect")
    return ndimage.correlate1d(y, _SSIM_WINDOW, axis=-2, mode="reflect")


def ssim(a, b, data_range=None):
    """Structural similarity index (Wang et al. 2004) of two images.

    Parameters
    ----------
    a, b : array_like, shape (..., h, w)
        Images of equal shape: one 2-D image, or a stack such as (c, h, w) or
        (n, c, h, w); SSIM is computed on each 2-D image and averaged.
    data_range : float, optional
        Dynamic range L of the values, setting ``C1 = (0.01 L)^2`` and
        ``C2 = (0.03 L)^2``. Default ``max(a.max(), b.max()) - min(a.min(),
        b.min())``, the range spanned by the two inputs (maps have no fixed
        scale).

    Returns
    -------
    float
        Mean SSIM, in [-1, 1]; 1 iff the images are identical.

    Raises
    ------
    ValueError
        On mismatched shapes, NaN/Inf, fewer than 2 dimensions, an empty
        image, a non-positive ``data_range``, or when the default data range is
        zero (both images constant and equal: pass ``data_range``).

    Notes
    -----
    Local means, variances and covariance use a Gaussian window with
    sigma = 1.5 truncated at radius 5 (11 x 11, weights normalised to sum 1),
    K1 = 0.01, K2 = 0.03, and (biased) weighted moments:

        SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))

    Filtering extends the image by reflection (scipy.ndimage mode
    ``'reflect'``: ``d c b a | a b c d | d c b a``). The SSIM map is averaged
    over the pixels whose window lies inside the image (5 pixels are dropped
    at each edge), as in Wang et al.'s reference code; along an axis shorter
    than 11 pixels nothing is dropped and the reflected boundary is used.
    For images of at least 11 x 11 this equals
    ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=L)``.

    References
    ----------
    .. [1] Wang, Z., Bovik, A. C., Sheikh, H. R. & Simoncelli, E. P. (2004).
       Image quality assessment: from error visibility to structural
       similarity. IEEE Trans. Image Processing 13(4), 600-612.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).random((32, 32))
    >>> ssim(img, img)
    1.0
    >>> noise = np.random.default_rng(1).normal(size=img.shape)
    >>> ssim(img, img + 0.1 * noise) > ssim(img, img + 0.3 * noise)
    True
    >>> ssim(img, img + noise) == ssim(img + noise, img)
    True
    """
    x = _as_array(a, "a")
    y = _as_array(b, "b")
    if x.ndim < 2:
        raise ValueError(f"a must have at least 2 dimensions (h, w), got shape {x.shape}")
    _same_shape(x, y, "a", "b")
    if data_range is None:
        data_range = max(x.max(), y.max()) - min(x.min(), y.min())
        if data_range == 0:
            raise ValueError("data_range is zero (both images are the same constant); "
                             "pass data_range explicitly")
    else:
        if isinstance(data_range, (bool, np.bool_)) or not isinstance(data_range, numbers.Real):
            raise TypeError(f"data_range must be a real number, got {type(data_range).__name__}")
        if not (math.isfinite(data_range) and data_range > 0):
            raise ValueError(f"data_range must be finite and > 0, got {data_range!r}")
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _gauss_window(x), _gauss_window(y)
    s_xx = _gauss_window(x * x) - mu_x * mu_x
    s_yy = _gauss_window(y * y) - mu_y * mu_y
    s_xy = _gauss_window(x * y) - mu_x * mu_y
    smap = ((2 * mu_x * mu_y + c1) * (2 * s_xy + c2)
            / ((mu_x * mu_x + mu_y * mu_y + c1) * (s_xx + s_yy + c2)))
    h, w = smap.shape[-2:]
    r = _SSIM_RADIUS
    rows = slice(r, h - r) if h > 2 * r else slice(None)
    cols = slice(r, w - r) if w > 2 * r else slice(None)
    return float(smap[..., rows, cols].mean())


# --------------------------------------------------------------------------
# 3. class sensitivity and summaries
# --------------------------------------------------------------------------

def minmax01(m):
    """Min-max scale a map to [0, 1] over all its values (the paper's normalisation).

    Parameters
    ----------
    m : array_like
        Any shape, finite values.

    Returns
    -------
    numpy.ndarray of float64, same shape
        ``(m - m.min()) / (m.max() - m.min())``; all zeros if ``m`` is constant.

    Examples
    --------
    >>> minmax01([[0, 2], [4, 8]]).tolist()
    [[0.0, 0.25], [0.5, 1.0]]
    >>> minmax01([3.0, 3.0]).tolist()
    [0.0, 0.0]
    """
    a = _as_array(m, "m")
    lo, hi = a.min(), a.max()
    if hi == lo:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


@dataclass(frozen=True)
class ClassSensitivityResult(_Result):
    """Result of :func:`class_sensitivity`.

    Attributes
    ----------
    l2 : float
        ``||minmax01(m1) - minmax01(m2)||_2`` (0 for maps equal up to a
        positive affine transform).
    ssim : float
        SSIM of the two normalised maps (``data_range=1``).
    spearman : float
        Rank correlation of the two maps (NaN if one is constant).
    l2_unit : float
        ``||m1 / |m1| - m2 / |m2|||_2 = sqrt(2 - 2 cos)``: the L2 distance of
        the maps scaled to unit L2 norm, in [0, 2] (NaN if one map is all
        zero). Like ``l2`` it ignores the maps' scale, but the scale is set by
        every value, not by the two most extreme ones as in min-max scaling.
    spearman_abs : float
        Rank correlation of ``|m1|`` and ``|m2|`` (where the map is strong,
        whatever its sign; NaN if one is constant).
    """

    l2: float
    ssim: float
    spearman: float
    l2_unit: float = float("nan")
    spearman_abs: float = float("nan")

    def __str__(self):
        return f"l2={_fmt(self.l2)}  ssim={_fmt(self.ssim)}  spearman={_fmt(self.spearman)}"


def class_sensitivity(m1, m2):
    """How different the maps for two target classes are.

    Parameters
    ----------
    m1, m2 : array_like, shape (c, h, w) or (h, w)
        Maps of the same input for two classes; equal shapes, at least
        ``MIN_VALUES`` values.

    Returns
    -------
    ClassSensitivityResult
        ``l2`` distance and ``ssim`` between the maps after :func:`minmax01`,
        and their Spearman correlation. Class-insensitive methods (GBP,
        DeconvNet in the paper) give small ``l2`` and SSIM near 1.

    References
    ----------
    .. [1] Nie, W., Zhang, Y. & Patel, A. (2018). A Theoretical Explanation
       for Perplexing Behaviors of Backpropagation-based Visualizations. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.arange(8.0).reshape(1, 2, 4)
    >>> print(class_sensitivity(m, 3 * m + 7))
    l2=0.0000  ssim=1.0000  spearman=1.0000
    >>> round(class_sensitivity(m, -m).l2 ** 2 * 49, 10)  # sum (2k - 7)^2, k = 0..7
    168.0
    >>> r = class_sensitivity(m, -m)
    >>> round(r.l2_unit, 12), round(r.spearman_abs, 12)    # opposite directions; |m| identical
    (2.0, 1.0)
    """
    a = _as_array(m1, "m1", ndims=(2, 3), min_size=MIN_VALUES)
    b = _as_array(m2, "m2", ndims=(2, 3), min_size=MIN_VALUES)
    _same_shape(a, b, "m1", "m2")
    na, nb = minmax01(a), minmax01(b)
    sa, sb = float(_norm(a)), float(_norm(b))
    unit = float(_norm(a / sa - b / sb)) if sa > 0 and sb > 0 else float("nan")
    return ClassSensitivityResult(l2=float(_norm(na - nb)),
                                  ssim=ssim(na, nb, data_range=1.0),
                                  spearman=_spearman(a.ravel(), b.ravel()),
                                  l2_unit=unit, spearman_abs=_spearman(np.abs(a).ravel(), np.abs(b).ravel()))


@dataclass(frozen=True)
class ConfidenceInterval(_Result):
    """Percentile bootstrap confidence interval (result of :func:`bootstrap_ci`).

    Unpacks like a pair: ``low, high = bootstrap_ci(x)``.

    Attributes
    ----------
    low, high : float
        Interval bounds.
    level : float
        Confidence level.
    estimate : float
        The statistic on the original values.
    n_boot : int
        Number of bootstrap resamples.
    """

    low: float
    high: float
    level: float
    estimate: float
    n_boot: int

    def __iter__(self):
        return iter((self.low, self.high))

    @property
    def width(self):
        """``high - low``."""
        return self.high - self.low

    def __str__(self):
        return (f"{_fmt(self.estimate, '.4g')} [{_fmt(self.low, '.4g')}, "
                f"{_fmt(self.high, '.4g')}] ({self.level:.0%} bootstrap CI, {self.n_boot} resamples)")


def bootstrap_ci(values, stat=np.mean, n_boot=2000, level=0.95, rng=None):
    """Percentile bootstrap confidence interval of a statistic.

    Parameters
    ----------
    values : array_like
        Observations (flattened), at least 2, finite.
    stat : callable, default numpy.mean
        ``stat(sample) -> float``. If it accepts ``axis=-1`` (numpy
        reductions do) all resamples are evaluated at once; otherwise one by
        one. The resamples drawn are the same either way.
    n_boot : int, default 2000
        Number of resamples (with replacement, of the same size as ``values``).
    level : float, default 0.95
        Confidence level, in (0, 1).
    rng : None, int, SeedSequence or numpy.random.Generator
        Source of the resamples (None: fresh entropy).

    Returns
    -------
    ConfidenceInterval
        ``low`` and ``high`` are the ``(1 - level)/2`` and ``(1 + level)/2``
        quantiles of the bootstrap distribution; unpacks as ``(low, high)``.

    References
    ----------
    .. [1] Efron, B. & Tibshirani, R. J. (1993). An Introduction to the
       Bootstrap. Chapman & Hall, ch. 13.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(loc=5.0, size=400)
    >>> low, high = bootstrap_ci(x, rng=0)
    >>> bool(low < 5.0 < high), bool(0.15 < high - low < 0.25)
    (True, True)
    """
    x = _as_array(values, "values", min_size=2).ravel()
    if not callable(stat):
        raise TypeError(f"stat must be callable, got {type(stat).__name__}")
    n_boot = _check_int("n_boot", n_boot, 1)
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, numbers.Real):
        raise TypeError(f"level must be a real number, got {type(level).__name__}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    gen = _generator(rng)
    n = x.size
    chunk = max(1, min(n_boot, 4_000_000 // n))
    vectorised = True
    boots = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        idx = gen.integers(0, n, size=(min(chunk, n_boot - start), n))
        samples = x[idx]
        out = None
        if vectorised:
            try:
                out = np.asarray(stat(samples, axis=-1), dtype=float)
                if out.shape != (idx.shape[0],):
                    out = None
            except (TypeError, ValueError):  # stat has no (usable) axis argument
                out = None
            if out is None:
                vectorised = False
        if out is None:
            out = np.array([float(stat(s)) for s in samples])
        boots[start:start + idx.shape[0]] = out
    alpha = 1.0 - level
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return ConfidenceInterval(low=float(low), high=float(high), level=float(level),
                              estimate=float(stat(x)), n_boot=n_boot)


@dataclass(frozen=True)
class Summary(_Result):
    """Result of :func:`summarize`.

    Attributes
    ----------
    mean, std : float
        Sample mean and standard deviation (ddof=1).
    n : int
        Number of values.
    sem : float
        Standard error of the mean, ``std / sqrt(n)``.
    ci : ConfidenceInterval
        Percentile bootstrap interval for the mean.
    """

    mean: float
    std: float
    n: int
    sem: float
    ci: ConfidenceInterval

    def __str__(self):
        return (f"mean={_fmt(self.mean, '.4g')} std={_fmt(self.std, '.4g')} n={self.n} "
                f"{self.ci.level:.0%} CI=[{_fmt(self.ci.low, '.4g')}, {_fmt(self.ci.high, '.4g')}]")


def summarize(values, rng=None, *, n_boot=2000, level=0.95):
    """Mean, standard deviation, count and bootstrap CI of repeated measurements.

    Parameters
    ----------
    values : array_like
        Observations (flattened), at least 2, finite.
    rng : None, int, SeedSequence or numpy.random.Generator
        Source of the bootstrap resamples.
    n_boot : int, default 2000
    level : float, default 0.95
        Passed to :func:`bootstrap_ci`.

    Returns
    -------
    Summary

    Examples
    --------
    >>> s = summarize([1.0, 2.0, 3.0, 4.0], rng=0)
    >>> s.mean, round(s.std, 6), s.n
    (2.5, 1.290994, 4)
    >>> bool(1.0 <= s.ci.low < 2.5 < s.ci.high <= 4.0)
    True
    """
    x = _as_array(values, "values", min_size=2).ravel()
    ci = bootstrap_ci(x, np.mean, n_boot=n_boot, level=level, rng=rng)
    sd = float(x.std(ddof=1))
    return Summary(mean=float(x.mean()), std=sd, n=int(x.size),
                   sem=sd / math.sqrt(x.size), ci=ci)


# --------------------------------------------------------------------------
# 4. convergence
# --------------------------------------------------------------------------

def relative_error(sim, expected):
    """Relative Euclidean (Frobenius) error ``||sim - expected|| / ||expected||``.

    Parameters
    ----------
    sim, expected : array_like
        Equal shapes, finite values; ``expected`` not all zeros.

    Returns
    -------
    float

    Examples
    --------
    >>> relative_error([3.0, 4.0], [3.0, 0.0])
    1.3333333333333333
    """
    s = _as_array(sim, "sim")
    e = _as_array(expected, "expected")
    _same_shape(s, e, "sim", "expected")
    ne = float(_norm(e))
    if ne == 0:
        raise ValueError("expected is all zeros: relative error is undefined")
    return float(_norm(s - e)) / ne


@dataclass(frozen=True)
class LogLogFit(_Result):
    """Least-squares line ``log(value) = slope * log(n) + intercept``.

    Attributes
    ----------
    slope, intercept : float
        Natural logarithms; ``value ~ exp(intercept) * n ** slope``.
    r2 : float
        Coefficient of determination of the fit in log space (1 when all
        log-values are equal, the fit then being exact).
    n_points : int
    """

    slope: float
    intercept: float
    r2: float
    n_points: int

    @property
    def prefactor(self):
        """``exp(intercept)``."""
        return math.exp(self.intercept)

    def predict(self, ns):
        """``exp(intercept) * ns ** slope``."""
        return np.exp(self.intercept) * np.asarray(ns, dtype=float) ** self.slope

    def __str__(self):
        return (f"value ~ {self.prefactor:.4g} * N^{self.slope:.4f}  "
                f"(r^2={self.r2:.4f}, {self.n_points} points)")


def fit_loglog_slope(ns, values):
    """Fit a power law ``value = c * N ** slope`` by least squares in log-log space.

    Parameters
    ----------
    ns, values : array_like, shape (k,)
        Positive, finite; ``k >= 2`` and at least two distinct ``ns``.

    Returns
    -------
    LogLogFit
        ``slope``, ``intercept`` (natural log of ``c``) and ``r2``.

    Examples
    --------
    >>> import numpy as np
    >>> ns = np.array([16, 64, 256, 1024])
    >>> print(fit_loglog_slope(ns, 2.0 / np.sqrt(ns)))
    value ~ 2 * N^-0.5000  (r^2=1.0000, 4 points)
    """
    x = _as_array(ns, "ns", ndims=(1,), min_size=2)
    y = _as_array(values, "values", ndims=(1,), min_size=2)
    _same_shape(x, y, "ns", "values")
    for name, v in (("ns", x), ("values", y)):
        if (v <= 0).any():
            raise ValueError(f"{name} must be positive for a log-log fit "
                             f"({int((v <= 0).sum())} values <= 0)")
    lx, ly = np.log(x), np.log(y)
    dx = lx - lx.mean()
    sxx = float(_dot(dx, dx))
    if sxx == 0:
        raise ValueError("ns are all equal: the slope is undefined")
    dy = ly - ly.mean()
    slope = float(_dot(dx, dy)) / sxx
    intercept = float(ly.mean() - slope * lx.mean())
    resid = dy - slope * dx
    ss_tot = float(_dot(dy, dy))
    r2 = 1.0 if ss_tot == 0 else 1.0 - float(_dot(resid, resid)) / ss_tot
    return LogLogFit(slope=slope, intercept=intercept, r2=r2, n_points=int(x.size))
