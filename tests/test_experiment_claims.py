"""Every claim's declared criterion on synthetic numbers: it holds where the
effect is there on every image, and fails where it is absent, reversed or
carried by one image; independent weight draws per image."""
from types import SimpleNamespace

import numpy as np
import pytest

from randvis.experiments import EXPERIMENTS, Context
from randvis.methods import METHODS

N_IMG, N_DRAW = 12, 2


def _t(mean, sd=0.02, seed=0, draws=N_DRAW, images=N_IMG):
    """A (images, draws) table around ``mean``; an array ``mean`` gives per-image means."""
    rng = np.random.default_rng(seed)
    mean = np.broadcast_to(np.asarray(mean, dtype=float).reshape(-1, 1), (images, 1))
    return (mean + rng.normal(0.0, sd, size=(images, draws))).tolist()


def _one_image_effect(size):
    """Zero on every image but one, which carries the whole (large) mean."""
    v = np.zeros(N_IMG)
    v[-1] = size * N_IMG
    return v


def _holds(name, res):
    return [c.holds for c in EXPERIMENTS[name].claims(res)]


# -- local connections --------------------------------------------------------

def _local(cnn_gbp=0.8, fcn_gbp=0.02, noise=0.0):
    mod = EXPERIMENTS["local_connections"]
    corr = {k: {m: _t(0.0, seed=i * 3 + j) for j, m in enumerate(METHODS)} for i, k in enumerate(("cnn", "fcn"))}
    corr["cnn"]["gbp"], corr["fcn"]["gbp"] = _t(cnn_gbp, seed=10), _t(fcn_gbp, seed=11)
    corr["fcn"]["deconvnet"] = _t(noise, seed=12)
    return mod.Result(256, [f"i{k}" for k in range(N_IMG)], corr, {}, None)


@pytest.mark.parametrize("kwargs, want", [
    ({}, [True, True]),
    ({"cnn_gbp": 0.3, "fcn_gbp": 0.1}, [False, True]),            # CNN barely ahead
    ({"cnn_gbp": _one_image_effect(0.9)}, [False, True]),          # one image carries it
    ({"noise": 0.15}, [True, False]),                              # DeconvNet tracks the image
    ({"noise": -0.15}, [True, False]),
])
def test_local_connections_criteria(kwargs, want):
    assert _holds("local_connections", _local(**kwargs)) == want


# -- number of filters ------------------------------------------------------

def _n_filters(step=0.1, fcn_last=0.3, offset=0.0, base=0.3):
    mod = EXPERIMENTS["n_filters"]
    cnn_ns, fcn_ns = [4, 16, 64], [16, 70000]
    per = {"cnn": [np.ravel(_t(base + step * k, draws=1, seed=k)).tolist() for k in range(3)],
           "fcn": [np.ravel(_t(v, draws=1, seed=5 + k)).tolist() for k, v in enumerate((0.1, fcn_last))]}
    theory = {k: [(np.array(v) - offset + np.random.default_rng(9).normal(0, 0.005, N_IMG)).tolist()
                  for v in per[k]] for k in per}
    mean = {k: [float(np.mean(v)) for v in per[k]] for k in per}
    return mod.Result(cnn_ns, fcn_ns, mean, {}, {k: [float(np.mean(v)) for v in theory[k]] for k in per},
                      per, theory, {}, None)


@pytest.mark.parametrize("kwargs, want", [
    ({}, [True, True, True]),
    ({"step": 0.0, "base": 0.5}, [False, True, True]),    # no growth with N
    ({"fcn_last": 0.55}, [True, False, True]),            # the FCN caught up
    ({"offset": 0.15}, [True, True, False]),              # theory off by 0.15
])
def test_n_filters_criteria(kwargs, want):
    assert _holds("n_filters", _n_filters(**kwargs)) == want


# -- max-pooling ------------------------------------------------------------

def _max_pooling(gain=0.3, avg=0.0, vgg_gap=0.15):
    mod = EXPERIMENTS["max_pooling"]
    labels = ["CNN, no pool"] + [f"CNN, {t}-pool {p}" for t in ("max", "avg") for p in (2, 4, 8)] + \
             ["VGG-16 (max-pool)", "VGG-16 (avg-pool)"]
    values = {}
    for k, label in enumerate(labels):
        d = 1 if label.startswith("VGG") else N_DRAW
        base = {"CNN, no": 0.0, "CNN, max": gain, "CNN, avg": avg, "VGG-16 (max": vgg_gap, "VGG-16 (avg": 0.0}
        mean = next(v for key, v in base.items() if label.startswith(key))
        values[label] = {m: _t(mean if m == "deconvnet" else 0.5, draws=d, seed=k * 5 + j)
                         for j, m in enumerate(METHODS)}
    corr = {lb: {m: float(np.mean(v)) for m, v in d.items()} for lb, d in values.items()}
    return mod.Result(labels, corr, values, {}, None)


@pytest.mark.parametrize("kwargs, want", [
    ({}, [True, True, True]),
    ({"gain": 0.01}, [False, True, True]),                # max-pooling adds nothing
    ({"avg": 0.2}, [True, False, True]),                  # average pooling image-like too
    ({"vgg_gap": -0.05}, [True, True, False]),            # VGG: average pooling ahead
])
def test_max_pooling_criteria(kwargs, want):
    assert _holds("max_pooling", _max_pooling(**kwargs)) == want


# -- depth ------------------------------------------------------------------

def _depth(low=0.8):
    mod = EXPERIMENTS["depth"]
    fams = {"random CNN": ["depth 1", "depth 2", "depth 4"], "VGG-16 cut": ["block 1", "block 2", "block 3"]}
    spear = {f: {m: [np.ravel(_t(0.9, draws=1, seed=k)).tolist(), np.ravel(_t(low, draws=1, seed=k + 7)).tolist()]
                 for k, m in enumerate(METHODS)} for f in fams}
    cons = {f: {m: [float(np.mean(v)) for v in spear[f][m]] for m in METHODS} for f in fams}
    return mod.Result(fams, {}, cons, {}, spear, {}, None)


@pytest.mark.parametrize("low, want", [(0.8, [True, True]), (0.45, [False, False]), (0.51, [False, False])])
def test_depth_criteria(low, want):
    # 0.51 on average is above 0.5, but not its interval's lower bound (sd 0.02 over 12 images)
    assert _holds("depth", _depth(low)) == want


# -- class sensitivity and the attack -------------------------------------------

def _class_sensitivity(sal=10.0, gbp=1.0):
    mod = EXPERIMENTS["class_sensitivity"]
    l2 = {"net": {"saliency": np.ravel(_t(sal, 0.5, draws=1, seed=1)).tolist(),
                  "gbp": np.ravel(_t(gbp, 0.1, draws=1, seed=2)).tolist(),
                  "deconvnet": np.ravel(_t(gbp / 2, 0.1, draws=1, seed=3)).tolist()}}
    summary = {"net": {m: {"mean": float(np.mean(v)), "n": N_IMG} for m, v in l2["net"].items()}}
    return mod.Result(["net"], l2, {}, summary)


@pytest.mark.parametrize("kwargs, want", [({}, [True]), ({"sal": 1.4}, [False]), ({"sal": 1.5}, [False])])
def test_class_sensitivity_criteria(kwargs, want):
    # a mean ratio of 1.5 is not enough: its interval's lower bound is below 1.5
    assert _holds("class_sensitivity", _class_sensitivity(**kwargs)) == want


def _adversarial(flips=N_IMG, sal=1.2, sal_rank=0.1):
    """Per image: unit-norm L2 before/after (saliency ``sal``, GBP 0.3, DeconvNet 0.2)
    and Spearman (saliency ``sal_rank``, GBP 0.9, DeconvNet 0.95)."""
    mod = EXPERIMENTS["adversarial"]
    rng = np.random.default_rng(4)
    per = {}
    for k in range(N_IMG):
        unit = {"saliency": sal, "gbp": 0.3, "deconvnet": 0.2}
        rank = {"saliency": sal_rank, "gbp": 0.9, "deconvnet": 0.95}
        per[f"i{k}"] = {"eps_levels": 1.0, "flipped": k < flips, "before": "a", "after": "b" if k < flips else "a",
                        **{m: {"l2_unit": unit[m] + rng.normal(0, 0.03), "l2": 1.0, "ssim": 0.9,
                               "spearman": rank[m] + rng.normal(0, 0.03), "spearman_abs": 0.5} for m in METHODS}}
    return mod.Result(["net"], {"net": per}, {"net": "i0"}, {})


@pytest.mark.parametrize("kwargs, want", [({}, [True, True]), ({"flips": N_IMG - 1}, [False, True]),
                                          ({"sal": 0.4}, [True, False]), ({"sal_rank": 0.92}, [True, False])])
def test_adversarial_criteria(kwargs, want):
    # saliency's unit-norm L2 only 1.3x GBP's, or its rank correlation as high as GBP's: the claim fails
    assert _holds("adversarial", _adversarial(**kwargs)) == want


# -- partly trained -----------------------------------------------------------

def _partly(gain=0.3, worst=0.8, blank=False):
    mod = EXPERIMENTS["partly_trained"]
    groups = ["stem", "block1", "head"]
    all_but = np.array([np.ravel(_t(v, draws=1, seed=k)) for k, v in enumerate((0.9, worst, 0.9))]).T
    if blank:
        all_but[3, 1] = np.nan
    return [mod.Result("net", groups, {}, {}, {}, None, [f"i{k}" for k in range(N_IMG)],
                       np.ravel(_t(gain, draws=1, seed=9)).tolist(), all_but.tolist())]


@pytest.mark.parametrize("kwargs, want", [({}, [True, True]), ({"gain": -0.1}, [False, True]),
                                          ({"worst": 0.3}, [True, False]), ({"blank": True}, [True, False])])
def test_partly_trained_criteria(kwargs, want):
    assert _holds("partly_trained", _partly(**kwargs)) == want


# -- theory curves ------------------------------------------------------------

def _theory_curves(slope=-0.5, ratio=1.0, ks=0.01):
    mod = EXPERIMENTS["theory_curves"]
    rng = np.random.default_rng(3)
    ns = {"cnn": [16, 64, 256], "fcn": [256, 4096]}
    rows, theory = [], []
    for i in range(N_IMG):
        th = {(k, n): 2.0 * n ** -0.5 for k in ns for n in ns[k]}
        rows.append([{"kind": k, "n": n, "seed": s,
                      "rel_error": ratio * 2.0 * n ** slope * np.exp(rng.normal(0, 0.03)),
                      "ks_saliency": ks + abs(rng.normal(0, 0.002)), "ks_deconvnet": ks + abs(rng.normal(0, 0.002))}
                     for k in ns for n in ns[k] for s in range(N_DRAW)])
        theory.append(th)
    sweep = SimpleNamespace(summary=[{"kind": k, "n": n} for k in ns for n in ns[k]], slopes={}, config={})
    return mod.Result(sweep, [f"i{k}" for k in range(N_IMG)], rows, theory, N_DRAW)


@pytest.mark.parametrize("kwargs, want", [
    ({}, [True, True, True]),
    ({"slope": -0.3}, [False, False, True]),     # wrong law: also far off the closed form
    ({"ratio": 1.3}, [True, False, True]),       # right law, wrong constant
    ({"ks": 0.05}, [True, True, False]),
])
def test_theory_curves_criteria(kwargs, want):
    assert _holds("theory_curves", _theory_curves(**kwargs)) == want


# -- independent weight draws per image -------------------------------------------

def test_weight_draws_depend_on_the_image_not_its_name(tmp_path, monkeypatch):
    """Two images get different networks; the same pixels under another name the
    same one; another run seed other ones."""
    from randvis.experiments import local_connections as mod
    from randvis.images import sample_image

    a, b = sample_image("grace_hopper", size=16), sample_image("grace_hopper", size=20)[:, 2:18, 2:18]
    seeds = []
    real = mod.three_layer_cnn

    def spy(*args, rng=None, **kw):
        seeds.append(rng)
        return real(*args, rng=rng, **kw)

    monkeypatch.setattr(mod, "three_layer_cnn", spy)

    def run(images, seed=0):
        seeds.clear()
        ctx = Context(out=str(tmp_path / f"o{seed}-{len(images)}-{images[0][0]}"), images=images, quick=True,
                      seed=seed, draws=2, progress=False)
        res = mod.run(ctx)
        return list(seeds), res

    (s1, r1) = run([("a", a), ("b", b), ("a-again", a.copy())])
    assert len(s1) == 6 and len(set(s1)) == 4             # 3 images x 2 draws; a and a-again share
    assert s1[0:2] == s1[4:6] and s1[0] != s1[1]
    assert r1.corr["cnn"]["gbp"][0] == r1.corr["cnn"]["gbp"][2]
    assert r1.corr["cnn"]["gbp"][0] != r1.corr["cnn"]["gbp"][1]
    s2, _ = run([("b", b), ("a", a)])                      # order and company do not matter
    assert s2 == s1[2:4] + s1[0:2]
    s3, _ = run([("a", a), ("b", b)], seed=1)
    assert not set(s3) & set(s1)
