"""Claims and their verdicts: numbers per image and weight draw, a bootstrap
interval, and a criterion declared before the numbers.

A claim of the paper is tested on a table of numbers, one per image and per
independent weight draw (``values[i, j]``: image ``i``, draw ``j``). Its
verdict comes from a :class:`Criterion` fixed in the code before any number is
seen -- e.g. "the lower 95% bound of the per-image difference is above 0" --
applied to a bootstrap confidence interval of the mean, never to a bare mean.

Three intervals are reported for each statistic:

* over images: the per-image means (averaged over draws) resampled;
* over weight draws: the per-draw means (averaged over images) resampled
  (only with two or more draws per image);
* over both: images resampled, then draws within each chosen image (a
  two-stage, nested bootstrap [1]_). The verdict uses this one: it counts
  both sources of variation, and with one draw per image it equals the
  interval over images.

References
----------
.. [1] Davison, A. C. & Hinkley, D. V. (1997). Bootstrap Methods and their
   Application. Cambridge University Press, section 3.8 (hierarchical data).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from . import _checks
from .stats import ConfidenceInterval, bootstrap_ci

__all__ = ["Criterion", "Verdict", "Claim", "above", "below", "inside", "judge", "nested_bootstrap_ci",
           "verdict_table", "ROW_COLUMNS", "LEVEL", "N_BOOT"]

LEVEL = 0.95
"""Confidence level of every claim's interval."""

N_BOOT = 4000
"""Bootstrap resamples per interval (Monte Carlo error of a 95% bound about 0.5% of its width)."""


def _threshold(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite real number, got {_checks.short_repr(v)}")
    return float(v)


@dataclass(frozen=True)
class Criterion:
    """How a claim holds: the confidence interval against fixed thresholds.

    Made with :func:`above`, :func:`below` or :func:`inside`.

    Attributes
    ----------
    low, high : float or None
        The interval's lower bound must be above ``low`` and its upper bound
        below ``high`` (None: no condition on that side).

    Examples
    --------
    >>> c = above(0.0)
    >>> c.describe("the per-image difference")
    'holds if the lower 95% bound of the per-image difference is above 0'
    >>> c.holds((0.01, 0.3)), c.holds((-0.01, 0.3))
    (True, False)
    """

    low: float = None
    high: float = None

    def __post_init__(self):
        if self.low is None and self.high is None:
            raise ValueError("a criterion needs a lower or an upper threshold")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"criterion thresholds must satisfy low < high, got {self.low} and {self.high}")

    def holds(self, ci):
        """True when the interval ``ci`` = (low, high) meets the criterion."""
        lo, hi = ci
        return bool((self.low is None or lo > self.low) and (self.high is None or hi < self.high))

    def margin(self, ci):
        """How far the interval ``ci`` is inside the criterion (negative: it fails by that much)."""
        lo, hi = ci
        sides = ([lo - self.low] if self.low is not None else []) + ([self.high - hi] if self.high is not None else [])
        return float(min(sides))

    def describe(self, what):
        """The criterion in words, about the statistic named ``what``."""
        pct = f"{LEVEL:.0%}"
        if self.high is None:
            return f"holds if the lower {pct} bound of {what} is above {self.low:g}"
        if self.low is None:
            return f"holds if the upper {pct} bound of {what} is below {self.high:g}"
        return f"holds if the {pct} interval of {what} lies inside ({self.low:g}, {self.high:g})"


def above(threshold):
    """Criterion: the lower bound is above ``threshold``."""
    return Criterion(low=_threshold(threshold, "threshold"))


def below(threshold):
    """Criterion: the upper bound is below ``threshold``."""
    return Criterion(high=_threshold(threshold, "threshold"))


def inside(low, high):
    """Criterion: the whole interval lies inside (``low``, ``high``)."""
    return Criterion(low=_threshold(low, "low"), high=_threshold(high, "high"))


def _table(values):
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"values must be a table (images, draws) of at least one number, got shape {np.shape(values)}")
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"values must be finite; image {bad[0]}, draw {bad[1]} is {a[tuple(bad)]}")
    return a


def nested_bootstrap_ci(values, n_boot=N_BOOT, level=LEVEL, rng=None):
    """Two-stage percentile bootstrap interval of the grand mean of a table.

    Each resample draws the images (rows) with replacement, then, within each
    drawn image, its weight draws (columns) with replacement.

    Parameters
    ----------
    values : array_like, shape (n_images, n_draws) or (n_images,)
        Finite numbers; at least 2 in all.
    n_boot : int
    level : float in (0, 1)
    rng : None, int or numpy.random.Generator

    Returns
    -------
    randvis.stats.ConfidenceInterval

    Examples
    --------
    >>> import numpy as np
    >>> v = np.random.default_rng(0).normal(1.0, 0.2, size=(12, 3))
    >>> ci = nested_bootstrap_ci(v, rng=0)
    >>> bool(ci.low < v.mean() < ci.high), bool(ci.low > 0.8)
    (True, True)
    """
    a = _table(values)
    if a.size < 2:
        raise ValueError("an interval needs at least 2 numbers, got 1")
    n_boot = _checks.positive_int(n_boot, "n_boot")
    level = _threshold(level, "level")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    gen = _checks.generator(rng)
    n_img, n_draw = a.shape
    boots = np.empty(n_boot)
    chunk = max(1, min(n_boot, 2_000_000 // (n_img * n_draw)))
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        rows = gen.integers(0, n_img, size=(m, n_img))
        cols = gen.integers(0, n_draw, size=(m, n_img, n_draw))
        boots[start:start + m] = a[rows[:, :, None], cols].mean(axis=(1, 2))
    alpha = 1.0 - level
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return ConfidenceInterval(low=float(lo), high=float(hi), level=level, estimate=float(a.mean()),
                              n_boot=n_boot)


@dataclass(frozen=True)
class Verdict:
    """A statistic over images and draws, its intervals and whether it meets its criterion.

    Attributes
    ----------
    what : str
        Name of the statistic (e.g. "corr(DeconvNet, x): max-pool minus no pool").
    per_image : tuple of float
        Mean over draws, per image.
    n_images, n_draws : int
    estimate : float
        Grand mean.
    ci : ConfidenceInterval or None
        Nested interval over images and draws (the one the criterion reads);
        None with a single number, which is then not judged (``holds`` False).
    ci_images : ConfidenceInterval or None
        Over images (per-image means resampled); None with one image.
    ci_draws : ConfidenceInterval or None
        Over draws (per-draw means resampled); None with one draw per image.
    criterion : Criterion
    holds : bool
    """

    what: str
    per_image: tuple
    n_images: int
    n_draws: int
    estimate: float
    ci: ConfidenceInterval
    ci_images: ConfidenceInterval
    ci_draws: ConfidenceInterval
    criterion: Criterion
    holds: bool

    def text(self, fmt=".3g"):
        """One line: estimate, interval, counts and the criterion."""
        draws = f" x {self.n_draws} weight draws" if self.n_draws > 1 else ""
        counts = f"{self.n_images} image{'s' if self.n_images > 1 else ''}{draws}"
        if self.ci is None:
            return (f"{self.what} = {self.estimate:{fmt}} from {counts}: no interval, not judged; "
                    f"{self.criterion.describe(self.what)}")
        return (f"{self.what} = {self.estimate:{fmt}} [{self.ci.low:{fmt}}, {self.ci.high:{fmt}}] "
                f"over {counts}; {self.criterion.describe(self.what)}")

    def row(self):
        """The verdict as one row of :data:`ROW_COLUMNS` (what ``randvis theory``
        prints per check and ``randvis reproduce`` writes to ``verdicts.tsv``)."""
        lo, hi = (float("nan"), float("nan")) if self.ci is None else (self.ci.low, self.ci.high)
        verdict = "no interval" if self.ci is None else ("holds" if self.holds else "fails")
        return {"check": self.what, "estimate": self.estimate, "ci_low": lo, "ci_high": hi,
                "n_images": self.n_images, "n_draws": self.n_draws,
                "criterion": self.criterion.describe("the mean"), "verdict": verdict}

    def as_dict(self):
        from ._io import jsonable

        pair = lambda ci: None if ci is None else [ci.low, ci.high]  # noqa: E731
        return jsonable({"what": self.what, "estimate": self.estimate, "ci": pair(self.ci),
                         "ci_images": pair(self.ci_images), "ci_draws": pair(self.ci_draws),
                         "level": LEVEL, "n_images": self.n_images, "n_draws": self.n_draws,
                         "per_image": list(self.per_image),
                         "criterion": self.criterion.describe(self.what), "holds": self.holds,
                         "margin": None if self.ci is None else self.criterion.margin(self.ci),
                         "row": self.row()})


def judge(what, values, criterion, rng=0, n_boot=N_BOOT, level=LEVEL):
    """Intervals of the mean of ``values`` and the verdict of ``criterion`` on them.

    Parameters
    ----------
    what : str
        Name of the statistic, used in the texts.
    values : array_like, shape (n_images, n_draws) or (n_images,)
        One number per image and independent weight draw. A single number
        gets no interval and does not hold.
    criterion : Criterion
        Declared before the numbers are computed.
    rng : int or Generator, default 0
        Bootstrap resamples (a fixed default: the same numbers give the same
        verdict).

    Returns
    -------
    Verdict

    Examples
    --------
    >>> v = judge("difference", [0.12, 0.3, 0.2, 0.25, 0.18, 0.22], above(0.0))
    >>> v.holds, v.n_images, round(v.estimate, 4)
    (True, 6, 0.2117)
    >>> judge("difference", [-0.1, 0.3, 0.05, -0.2, 0.1, 0.0], above(0.0)).holds
    False
    """
    if not isinstance(criterion, Criterion):
        raise TypeError(f"criterion must be a Criterion (above, below, inside), got {type(criterion).__name__}")
    a = _table(values)
    gen = _checks.generator(rng)
    ci = nested_bootstrap_ci(a, n_boot=n_boot, level=level, rng=gen) if a.size > 1 else None
    per_image = a.mean(axis=1)
    ci_images = (bootstrap_ci(per_image, np.mean, n_boot=n_boot, level=level, rng=gen)
                 if a.shape[0] > 1 else None)
    ci_draws = (bootstrap_ci(a.mean(axis=0), np.mean, n_boot=n_boot, level=level, rng=gen)
                if a.shape[1] > 1 else None)
    return Verdict(what=str(what), per_image=tuple(float(v) for v in per_image), n_images=a.shape[0],
                   n_draws=a.shape[1], estimate=float(a.mean()), ci=ci, ci_images=ci_images, ci_draws=ci_draws,
                   criterion=criterion, holds=ci is not None and criterion.holds(ci))


ROW_COLUMNS = ("check", "estimate", "ci_low", "ci_high", "n_images", "n_draws", "criterion", "verdict")
"""Columns of a verdict row (:meth:`Verdict.row`, :func:`verdict_table`)."""


def verdict_table(rows, columns=ROW_COLUMNS):
    """Tab-separated lines, a header then one line per row (a dict, e.g.
    :meth:`Verdict.row`); numbers with 4 significant digits.

    Examples
    --------
    >>> v = judge("slope", [-0.49, -0.51, -0.50, -0.48], inside(-0.6, -0.4))
    >>> lines = verdict_table([v.row()]).splitlines()
    >>> lines[0].split()[:4], lines[1].endswith("holds")
    (['check', 'estimate', 'ci_low', 'ci_high'], True)
    """
    lines = ["\t".join(columns)]
    for r in rows:
        lines.append("\t".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in columns))
    return "\n".join(lines)


@dataclass
class Claim:
    """One claim of the paper, the verdicts that test it, and whether it holds.

    A claim holds when every one of its verdicts does. ``value`` is the
    headline number (by default the first verdict's estimate).

    Examples
    --------
    >>> v = judge("corr(GBP, x)", [0.8, 0.85, 0.9, 0.82], above(0.5))
    >>> c = Claim("GBP recovers the image", "GBP of a random CNN", [v], figure="n_filters")
    >>> c.holds, c.as_dict()["verdicts"][0]["n_images"]
    (True, 4)
    """

    claim: str
    measure: str
    verdicts: list = field(default_factory=list)
    figure: str = ""
    value: float = None
    note: str = ""
    holds: bool = None

    def __post_init__(self):
        if self.value is None:
            self.value = self.verdicts[0].estimate if self.verdicts else float("nan")
        if self.holds is None:
            if not self.verdicts:
                raise ValueError(f"claim {self.claim!r} has no verdict and no explicit holds")
            self.holds = all(v.holds for v in self.verdicts)
        self.holds = bool(self.holds)

    def as_dict(self):
        from ._io import jsonable

        text = "; ".join(t for t in [self.measure] + [v.text() for v in self.verdicts] + [self.note] if t)
        return {"claim": self.claim, "measure": text, "summary": self.measure, "note": self.note,
                "value": jsonable(float(self.value)),
                "holds": self.holds, "figure": self.figure,
                "verdicts": [v.as_dict() for v in self.verdicts]}
