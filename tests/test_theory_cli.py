"""`randvis theory`: one parseable row per check, intervals over weight draws, verdicts."""
import json

import numpy as np
import pytest

from randvis import montecarlo as M
from randvis.cli import main

COLUMNS = ["check", "estimate", "ci_low", "ci_high", "n_images", "n_draws", "criterion", "verdict"]


def _rows(text):
    lines = text.split("\n\n")[-1].strip().splitlines()
    i = lines.index("\t".join(COLUMNS))
    rows = [dict(zip(COLUMNS, line.split("\t"))) for line in lines[i + 1:] if line.count("\t") == 7]
    for r in rows:
        for k in ("estimate", "ci_low", "ci_high"):
            r[k] = float(r[k])
        r["n_images"], r["n_draws"] = int(r["n_images"]), int(r["n_draws"])
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("theory") / "sweep"
    import contextlib
    import io

    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(std), contextlib.redirect_stderr(err):
        assert main(["theory", "--size", "16", "--cnn-ns", "4,16,64", "--fcn-ns", "256", "--seeds", "4",
                     "--kernel-size", "3", "--quick", "--out", str(out)]) == 0
    return std.getvalue(), err.getvalue(), json.loads(out.with_suffix(".json").read_text()), out


def test_rows_are_parseable_and_match_the_json(run):
    out, _, res, prefix = run
    rows = _rows(out)
    names = [r["check"] for r in rows]
    assert names == [c["check"] for c in res["checks"]]
    assert names[0] == "cnn GBP error log-log slope vs N (per draw)"
    # every declared check: RMS and correlation for CNN N >= 16 and FCN N >= 256, KS for CNN N >= 16
    for n in (16, 64):
        for what in ("(GBP error / predicted RMS)^2", "KS saliency pixels to N(0,1)",
                     "KS deconvnet pixels to N(0,1)", "corr(GBP, pni) measured - predicted"):
            assert f"cnn N={n} {what}" in names
    assert "fcn N=256 (GBP error / predicted RMS)^2" in names and not any("N=4 " in n for n in names)
    for r, c in zip(rows, res["checks"]):
        assert (r["n_images"], r["n_draws"]) == (1, 4) and r["verdict"] in ("holds", "fails")
        assert r["estimate"] == pytest.approx(c["estimate"], rel=1e-3)
        assert r["ci_low"] <= r["ci_high"]
    assert prefix.with_suffix(".txt").read_text().strip().endswith(out.strip().splitlines()[-2])
    assert res["config"]["seed"] == 0


def test_estimates_are_means_over_draws_and_verdicts_follow_the_criteria(run):
    """Recomputed from the JSON's per-network rows: the slope row is the mean of
    least-squares slopes of each draw's log errors on log N (numpy's polyfit),
    the RMS rows the mean of (error / predicted)^2; each verdict is 'holds'
    exactly when the printed interval meets the declared thresholds."""
    out, _, res, _ = run
    rows = {r["check"]: r for r in _rows(out)}
    ns = [4, 16, 64]
    by_cell = {(r["n"], r["seed"]): r["rel_error"] for r in res["rows"] if r["kind"] == "cnn"}
    err = np.array([[by_cell[n, s] for n in ns] for s in range(4)])
    slopes = [np.polyfit(np.log(ns), np.log(e), 1)[0] for e in err]
    assert rows["cnn GBP error log-log slope vs N (per draw)"]["estimate"] == pytest.approx(np.mean(slopes),
                                                                                          rel=1e-3)
    pred = {s["n"]: s["rel_error_theory"] for s in res["summary"] if s["kind"] == "cnn"}
    assert rows["cnn N=16 (GBP error / predicted RMS)^2"]["estimate"] == pytest.approx(
        np.mean((err[:, 1] / pred[16]) ** 2), rel=1e-3)
    for name, r in rows.items():
        lo, hi = r["ci_low"], r["ci_high"]
        if name.startswith("cnn GBP error log-log slope"):
            want = -0.6 < lo and hi < -0.4
        elif "RMS" in name:
            want = 0.5625 < lo and hi < 1.5625
        elif " KS " in name:
            want = hi < 0.03
        else:
            want = -0.02 < lo and hi < 0.02
        assert (r["verdict"] == "holds") == want, r


def test_quick_warns_once_about_the_options_it_does_not_override(run):
    _, err, _, _ = run
    lines = [ln for ln in err.splitlines() if "--quick" in ln]
    assert len(lines) == 1
    assert "--size, --cnn-ns, --fcn-ns, --seeds" in lines[0] and "explicitly" in lines[0]


def _sweep(rows, ns, seeds, theory=1.0, corr_theory=0.5):
    config = {"cnn_ns": ns, "fcn_ns": [], "seeds": seeds}
    res = M.SweepResult(config=config, rows=rows)
    res.summary = [{"kind": "cnn", "n": n, "rel_error_theory": theory, "corr_target_theory": corr_theory}
                   for n in ns]
    return res


@pytest.mark.parametrize("case", ["holds", "slope", "rms", "ks", "corr"])
def test_each_criterion_holds_and_fails_on_synthetic_draws(case):
    """Eight draws per N of hand-made measurements: errors exactly c N^(-1/2)
    times a per-draw factor near 1, KS 0.01, correlation on its prediction:
    everything holds. Then one quantity at a time is moved past its threshold
    (errors falling like N^(-0.38), equal to the prediction at N = 64 and within
    20% of it at 16 and 256; errors 1.4 times the prediction; KS 0.04;
    correlation 0.05 above) and exactly that check fails."""
    ns, seeds = [16, 64, 256], 8
    rng = np.random.default_rng(1)
    rows = []
    for s in range(seeds):
        f = 1 + 0.02 * rng.standard_normal()
        for n in ns:
            rows.append({"kind": "cnn", "n": n, "seed": s,
                         "rel_error": f * (4 / np.sqrt(n) if case != "slope" else 0.5 * (n / 64) ** -0.38)
                         * (1.4 if case == "rms" else 1.0),
                         "ks_saliency": 0.01 + 0.001 * rng.standard_normal() + (0.03 if case == "ks" else 0),
                         "ks_deconvnet": 0.01 + 0.001 * rng.standard_normal(),
                         "corr_target": 0.5 + 0.002 * rng.standard_normal() + (0.05 if case == "corr" else 0)})
    res = _sweep(rows, ns, seeds)
    per_seed = [np.polyfit(np.log(ns), np.log(res.draws("cnn", "rel_error")[:, s]), 1)[0] for s in range(seeds)]
    res.slopes["cnn"] = {"per_seed": per_seed}
    for s in res.summary:
        s["rel_error_theory"] = 4 / np.sqrt(s["n"])
    checks = M._judge_checks(res)
    failed = {c["check"] for c in checks if c["verdict"] == "fails"}
    assert all(c["verdict"] in ("holds", "fails") for c in checks)
    want = {"holds": set(),
            "slope": {"cnn GBP error log-log slope vs N (per draw)"},
            "rms": {f"cnn N={n} (GBP error / predicted RMS)^2" for n in ns},
            "ks": {f"cnn N={n} KS saliency pixels to N(0,1)" for n in ns},
            "corr": {f"cnn N={n} corr(GBP, pni) measured - predicted" for n in ns}}[case]
    assert failed == want
