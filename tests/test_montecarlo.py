"""Monte Carlo sweeps: exact FCN sampler, normality both ways, resumable sweeps."""
import json

import numpy as np
import pytest

from conftest import natural_photo, record_calls
from randvis import montecarlo as M
from randvis import theory as T
from randvis.stats import normality


def test_exact_fcn_sampler_matches_theory():
    """Per-pixel mean and variance of S = 4000 exact draws within 5 standard
    errors of the closed forms (as in test_theory), for all three maps."""
    x = np.random.default_rng(3).normal(size=(1, 3, 4))
    spec = T.RandomNetSpec("fcn", 5, 0.7, 1.3)
    draws = [M.sample_fcn_maps(spec, x, rng=s) for s in range(4000)]
    for m in ("saliency", "deconvnet", "gbp"):
        s = np.array([d[m] for d in draws])
        e, v = T.expected_map(spec, x, m), T.pixel_variance(spec, x, m)
        z = (s.mean(0) - e) / np.sqrt(v / len(s))
        assert np.abs(z).max() < 5, (m, np.abs(z).max())
        dev = s - s.mean(0)
        kappa = (dev ** 4).mean(0) / (dev ** 2).mean(0) ** 2
        assert np.all(np.abs(s.var(0, ddof=1) / v - 1) < 5 * np.sqrt((kappa - 1) / len(s))), m


def test_exact_fcn_sampler_matches_the_network_jointly():
    """The sampler reproduces cross-moments between maps of one network too:
    E[s_sal * s_gbp] per pixel from 3000 sampler draws vs 3000 networks, a
    two-sample z-test at 5 standard errors."""
    x = np.random.default_rng(4).normal(size=(1, 2, 3))
    net_prod, samp_prod = [], []
    for s in range(3000):
        spec, maps = M.simulate_maps("fcn", 4, x, rng=s, sampler="network")
        net_prod.append(maps["saliency"] * maps["gbp"])
        samp_prod.append(np.prod([M.sample_fcn_maps(spec, x, rng=10_000 + s)[k] for k in ("saliency", "gbp")], 0))
    a, b = np.array(net_prod), np.array(samp_prod)
    se = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
    assert np.abs((a.mean(0) - b.mean(0)) / se).max() < 5


@pytest.fixture(scope="module")
def photo():
    return natural_photo(64)


@pytest.mark.parametrize("n", [16, 64, 256, 1024])
def test_normality_both_ways_on_a_natural_photo(photo, n):
    """Saliency and DeconvNet maps of a random 7x7 CNN are Gaussian noise:
    interior pixels, each channel standardised, KS distance to N(0,1) < 0.03,
    |skewness| < 0.15, |excess kurtosis| < 0.3 (10,092 values: standard errors
    0.009, 0.024, 0.049). GBP maps of the same networks are rejected as normal
    at the 1% level by Shapiro-Wilk on a 5000-value subsample."""
    spec, maps = M.simulate_maps("cnn", n, photo, rng=n, kernel_size=7)
    for m in ("saliency", "deconvnet"):
        r = normality(maps[m], per_channel=True, interior=3, rng=0).pooled
        assert r.ks_statistic < 0.03, (m, r.ks_statistic)
        assert abs(r.skewness) < 0.15, (m, r.skewness)
        assert abs(r.excess_kurtosis) < 0.3, (m, r.excess_kurtosis)
    g = normality(maps["gbp"], per_channel=True, interior=3, rng=0).pooled
    assert g.shapiro_n == 5000 and g.shapiro_pvalue < 0.01, g.shapiro_pvalue


def test_gbp_input_correlation_rises_towards_theory(photo):
    res = M.theory_sweep(photo[:, :32, :32], cnn_ns=(8, 64, 512), fcn_ns=(), seeds=2, progress=False)
    corr = [s["corr_input"] for s in res.summary]
    assert corr[0] < corr[1] < corr[2]
    limit = T.predicted_correlation(T.RandomNetSpec("cnn", 1, kernel_size=7), photo[:, :32, :32],
                                    ref=photo[:, :32, :32], n=1e12)
    assert corr[2] > 0.9 * limit and abs(corr[2] - res.summary[2]["corr_input_theory"]) < 0.05


def test_sweep_resumes_after_interruption(tmp_path, monkeypatch):
    x = np.random.default_rng(0).normal(size=(3, 12, 12))
    kw = dict(cnn_ns=(4, 16), fcn_ns=(8, 64), seeds=2, kernel_size=3, progress=False)
    whole = M.theory_sweep(x, **kw).to_json()

    ck = tmp_path / "ck.json"
    real = M.simulate_maps
    record_calls(monkeypatch, M, "simulate_maps", interrupt_at=5)
    with pytest.raises(KeyboardInterrupt):
        M.theory_sweep(x, checkpoint=ck, **kw)
    with np.load(ck) as f:
        assert len(json.loads(str(f["__numbers__"]))["rows"]) == 4
    monkeypatch.setattr(M, "simulate_maps", real)
    calls = record_calls(monkeypatch, M, "simulate_maps")
    resumed = M.theory_sweep(x, checkpoint=ck, **kw).to_json()
    assert resumed == whole and len(calls) == 4
    # a checkpoint of another configuration is reported and not used
    with pytest.warns(RuntimeWarning, match=r"ck\.json: written under other settings \(sweep differs\)"):
        other = M.theory_sweep(x, checkpoint=ck, **dict(kw, seeds=3)).to_json()
    assert other == M.theory_sweep(x, **dict(kw, seeds=3)).to_json()


def test_sweep_draws_networks_from_the_image_the_seed_and_the_cell():
    """DeconvNet of a pooling-free network with a fixed target does not depend on
    the input, so equal DeconvNet statistics on two images mean equal networks.
    Two images (same shape): every DeconvNet number differs (independent
    networks); the same image twice: identical rows; another seed: different
    rows. Within one sweep the cells are different networks too."""
    rng = np.random.default_rng(5)
    x1, x2 = rng.normal(size=(2, 3, 12, 12))
    kw = dict(cnn_ns=(4, 16), fcn_ns=(8,), seeds=2, kernel_size=3, progress=False)
    a, again = M.theory_sweep(x1, **kw), M.theory_sweep(x1.copy(), **kw)
    b, other = M.theory_sweep(x2, **kw), M.theory_sweep(x1, seed=1, **kw)
    assert a.rows == again.rows
    dec = [(r["ks_deconvnet"], r["skew_deconvnet"], r["kurt_deconvnet"]) for r in a.rows]
    assert len(set(dec)) == len(dec)
    for res in (b, other):
        assert all(p != q for p, q in zip(dec, [(r["ks_deconvnet"], r["skew_deconvnet"], r["kurt_deconvnet"])
                                               for r in res.rows]))
    assert [r["rel_error"] for r in other.rows] != [r["rel_error"] for r in a.rows]
    assert a.config["seed"] == 0 and other.config["seed"] == 1
    # the control: the same networks on two images give equal DeconvNet numbers
    same = [M.simulate_maps("cnn", 4, x, rng=M.cell_seed(a.config["x_sha"], 0, "cnn", 4, 0), kernel_size=3)[1]
            for x in (x1, x2)]
    np.testing.assert_array_equal(same[0]["deconvnet"], same[1]["deconvnet"])
    with pytest.raises(ValueError, match="seed"):
        M.theory_sweep(x1, seed=-1, **kw)


def test_sweep_per_draw_numbers():
    """draws() puts each row at (N index, seed); per_seed slopes are least-squares
    fits of log(error) on log(N) over one draw's networks (numpy's polyfit as the
    reference)."""
    x = np.random.default_rng(6).normal(size=(3, 12, 12))
    res = M.theory_sweep(x, cnn_ns=(4, 16, 64), fcn_ns=(), seeds=3, kernel_size=3, progress=False)
    e = res.draws("cnn", "rel_error")
    assert e.shape == (3, 3)
    for r in res.rows:
        assert e[[4, 16, 64].index(r["n"]), r["seed"]] == r["rel_error"]
    want = [np.polyfit(np.log([4, 16, 64]), np.log(e[:, s]), 1)[0] for s in range(3)]
    np.testing.assert_allclose(res.slopes["cnn"]["per_seed"], want, rtol=1e-10)
    assert len(set(res.slopes["cnn"]["per_seed"])) == 3


def test_sweep_checks_every_network_before_the_first(monkeypatch):
    """A sweep whose largest network is past the memory limit is refused before it
    simulates anything."""
    from randvis import limits

    calls = []
    monkeypatch.setattr(M, "simulate_maps", lambda *a, **k: calls.append(1))
    with pytest.raises(limits.ResourceLimitError, match="n_filters=1000000000"):
        M.theory_sweep(np.ones((3, 8, 8)), cnn_ns=(4, 10 ** 9), fcn_ns=(), seeds=1, progress=False)
    assert not calls


def test_sweep_bad_arguments():
    x = np.ones((3, 8, 8))
    with pytest.raises(ValueError, match="N must be"):
        M.theory_sweep(x, cnn_ns=(0,), fcn_ns=(), progress=False)
    with pytest.raises(ValueError, match="one image"):
        M.theory_sweep(np.ones((8, 8)), progress=False)
    with pytest.raises(ValueError, match="seeds"):
        M.theory_sweep(x, seeds=0, progress=False)
    with pytest.raises(ValueError, match="kind='fcn'"):
        M.sample_fcn_maps(T.RandomNetSpec("cnn", 3), x)


@pytest.mark.slow
def test_full_sweep(tmp_path):
    """The full sweep shown in docs/theory.md: `randvis theory` with its defaults
    (64x64 photo, CNN N = 4..4096, FCN N = 16..70,000, 10 weight draws)."""
    from randvis.cli import main

    assert main(["theory", "--out", str(tmp_path / "sweep")]) == 0
    res = json.loads((tmp_path / "sweep.json").read_text())
    assert -0.6 <= res["slopes"]["cnn"]["slope"] <= -0.4
    for s in res["summary"]:
        if s["kind"] == "cnn" and s["n"] >= 16:
            assert s["ks_saliency"] < 0.03 and s["ks_deconvnet"] < 0.03
            assert abs(s["rel_error_rms"] / s["rel_error_theory"] - 1) < 0.25
    # slope, RMS and normality hold on their intervals over the 10 draws; a
    # correlation's interval can be wider than its +-0.02 band at small N (the
    # spread of one network's correlation at N = 16 is about 0.035)
    for c in res["checks"]:
        if "corr" in c["check"]:
            assert abs(c["estimate"]) < 0.02, c
        else:
            assert c["verdict"] == "holds", c
