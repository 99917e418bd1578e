"""randvis.claims: criteria, the nested bootstrap's coverage, verdicts and claims."""
import json

import numpy as np
import pytest

from randvis.claims import Claim, above, below, inside, judge, nested_bootstrap_ci


def test_criteria_read_the_right_bound():
    assert above(0.2).holds((0.21, 5.0)) and not above(0.2).holds((0.19, 5.0))
    assert below(0.03).holds((-1.0, 0.029)) and not below(0.03).holds((-1.0, 0.031))
    c = inside(-0.6, -0.4)
    assert c.holds((-0.55, -0.45))
    assert not c.holds((-0.61, -0.45)) and not c.holds((-0.55, -0.39))
    assert c.margin((-0.55, -0.45)) == pytest.approx(0.05)
    assert above(0.0).margin((-0.1, 1.0)) == pytest.approx(-0.1)
    assert "lower 95% bound of d is above 0.3" in above(0.3).describe("d")
    assert "upper 95% bound" in below(1).describe("d") and "inside (-1, 1)" in inside(-1, 1).describe("d")


@pytest.mark.parametrize("bad", [lambda: inside(1, 0), lambda: above(float("nan")), lambda: below("x"),
                                 lambda: above(True)])
def test_bad_criteria_are_refused(bad):
    with pytest.raises(ValueError):
        bad()


def _coverage(n_images, n_draws, sd_image, sd_draw, reps, ci_of, rng):
    hits = 0
    for _ in range(reps):
        table = (rng.normal(0.0, sd_image, size=(n_images, 1))
                 + rng.normal(0.0, sd_draw, size=(n_images, n_draws)))
        lo, hi = ci_of(table)
        hits += lo < 0.0 < hi
    return hits / reps


def test_nested_bootstrap_covers_the_mean_of_clustered_data():
    """Images vary far more than draws of one image: the draws of an image are
    not independent observations. The two-stage bootstrap resamples images
    first, so its 95% interval covers the true mean about 95% of the time
    (percentile intervals with 12 clusters run a little short: about 92%); an
    interval that treats the 48 numbers as independent covers far less
    (about 2 Phi(1.96 / 2) - 1 = 67% here, since a draw mean's variance is
    dominated by the shared image effect). 400 repetitions give a binomial
    standard error of 1.1-2.4 points, so the bounds below are over 3 standard
    errors from both expectations."""
    rng = np.random.default_rng(7)
    nested = _coverage(12, 4, 1.0, 0.1, 400, lambda t: nested_bootstrap_ci(t, n_boot=1000, rng=rng), rng)
    assert 0.86 <= nested <= 0.99

    def naive(t):
        flat = t.ravel()
        boots = flat[rng.integers(0, flat.size, size=(1000, flat.size))].mean(axis=1)
        return np.quantile(boots, [0.025, 0.975])

    assert _coverage(12, 4, 1.0, 0.1, 400, naive, rng) < 0.8


def test_nested_bootstrap_reduces_to_the_image_bootstrap_with_one_draw():
    v = np.random.default_rng(0).normal(size=15)
    a = nested_bootstrap_ci(v[:, None], n_boot=500, rng=3)
    ref_rng = np.random.default_rng(3)
    rows = ref_rng.integers(0, 15, size=(500, 15))
    ref_rng.integers(0, 1, size=(500, 15, 1))      # the within-image draw (always column 0)
    boots = v[rows].mean(axis=1)
    assert (a.low, a.high) == tuple(np.quantile(boots, [0.025, 0.975]))


def test_judge_holds_and_fails_on_synthetic_effects():
    rng = np.random.default_rng(1)
    real = rng.normal(0.2, 0.05, size=(12, 2))        # a clear effect on every image
    assert judge("d", real, above(0.0)).holds
    none = rng.normal(0.0, 0.05, size=(12, 2))        # no effect
    assert not judge("d", none, above(0.0)).holds
    # a big mean carried by one image: the interval over images is wide
    one = np.r_[np.full(11, -0.01), 3.0]
    v = judge("d", one, above(0.0))
    assert v.estimate > 0.2 and not v.holds


def test_verdict_reports_per_image_and_both_intervals():
    t = np.arange(24, dtype=float).reshape(12, 2)
    v = judge("x", t, above(0.0))
    assert v.per_image == tuple(t.mean(axis=1)) and (v.n_images, v.n_draws) == (12, 2)
    assert v.ci_images is not None and v.ci_draws is not None
    assert v.ci_images.low < v.estimate < v.ci_images.high
    d = json.loads(json.dumps(v.as_dict()))
    assert d["holds"] and d["ci"] == [v.ci.low, v.ci.high] and d["margin"] == pytest.approx(v.ci.low)
    assert judge("x", t[:, :1], above(0)).ci_draws is None


def test_a_single_number_is_not_judged():
    v = judge("x", [5.0], above(0.0))
    assert v.ci is None and not v.holds and "not judged" in v.text()
    assert json.loads(json.dumps(v.as_dict()))["ci"] is None


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="finite"):
        judge("x", [1.0, np.nan, 2.0], above(0))
    with pytest.raises(ValueError, match="table"):
        judge("x", np.zeros((2, 2, 2)), above(0))
    with pytest.raises(TypeError, match="Criterion"):
        judge("x", [1.0, 2.0], 0.5)


def test_claim_holds_when_every_verdict_does():
    good = judge("a", [1.0, 1.1, 0.9], above(0.0))
    bad = judge("b", [-1.0, 1.1, 0.9], above(0.0))
    assert Claim("c", "m", [good, good]).holds
    assert not Claim("c", "m", [good, bad]).holds
    d = Claim("c", "m", [good, bad], figure="f.png").as_dict()
    assert d["holds"] is False and len(d["verdicts"]) == 2 and d["value"] == pytest.approx(1.0)
    assert Claim("count", "3 of 3", [], holds=True, value=1.0).holds
    with pytest.raises(ValueError, match="no verdict"):
        Claim("c", "m", [])
