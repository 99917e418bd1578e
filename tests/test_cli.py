"""The command line: a labelled panel on success, one clear line on failure."""
import subprocess
import sys

import numpy as np
import pytest

from randvis.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "randvis", *args], capture_output=True, text=True)


def test_visualize_writes_a_panel(tmp_path):
    out = tmp_path / "maps.png"
    npz = tmp_path / "maps.npz"
    rc = main(["visualize", "--model", "cnn3", "--filters", "8", "--size", "32", "--out", str(out),
               "--save-maps", str(npz)])
    assert rc == 0
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.ndim == 3 and img.shape[1] > 3 * img.shape[0]  # a row of four panels
    with np.load(npz) as f:
        assert set(f.files) == {"saliency", "deconvnet", "gbp"}
        assert f["gbp"].shape == (3, 32, 32)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("model", ["fcn", "vgg16"])
def test_other_models(tmp_path, model, monkeypatch):
    out = tmp_path / "m.png"
    extra = ["--hidden", "16"] if model == "fcn" else ["--classes", "5"]
    assert main(["visualize", "--model", model, "--size", "32", "--out", str(out), *extra]) == 0
    assert out.stat().st_size > 1000


def test_image_argument_and_module_entry_point(tmp_path):
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)).save(src)
    res = _run("visualize", str(src), "--filters", "4", "--size", "32", "--out", str(tmp_path / "o.png"))
    assert res.returncode == 0, res.stderr
    assert "ready in" in res.stderr and (tmp_path / "o.png").exists()


@pytest.mark.parametrize("args, words", [
    (["visualize", "no/such/image.png"], "no/such/image.png"),
    (["visualize", "--target", "banana", "--size", "32"], "--target"),
    (["visualize", "--target", "10", "--size", "32", "--filters", "2"], "out of range"),
    (["visualize", "--filters", "0", "--size", "32"], "n_filters"),
    (["visualize", "--size", "0"], "--size"),
    (["visualize", "--size", "32", "--filters", "2", "--out", "/no/such/dir/x.png"], "does not exist"),
])
def test_errors_are_one_line(args, words):
    res = _run(*args)
    assert res.returncode == 2
    lines = [l for l in res.stderr.splitlines() if l.startswith("randvis: error")]
    assert len(lines) == 1 and words in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_unreadable_image_file(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    res = _run("visualize", str(bad), "--size", "32")
    assert res.returncode == 2 and "notes.png" in res.stderr and "Traceback" not in res.stderr


def test_convert_then_visualize_with_weights(tmp_path):
    import randvis
    from randvis.weights import save_vgg16_paper_npz

    net = randvis.vgg16(n_classes=7, input_shape=(3, 64, 64), widths=(4, 4, 8, 8, 8), fc_width=16, rng=0)
    save_vgg16_paper_npz(net, tmp_path / "paper.npz")
    assert main(["convert", str(tmp_path / "paper.npz"), str(tmp_path / "mine.npz")]) == 0
    back = randvis.vgg16(weights=tmp_path / "mine.npz")
    for k, v in net.parameters().items():
        np.testing.assert_array_equal(back[k], v)
    out = tmp_path / "v.png"
    assert main(["visualize", "--model", "vgg16", "--weights", str(tmp_path / "mine.npz"), "--size", "64",
                 "--out", str(out)]) == 0 and out.exists()
    res = _run("convert", str(tmp_path / "missing.pth"), str(tmp_path / "x.npz"))
    assert res.returncode == 2 and "missing.pth" in res.stderr and "Traceback" not in res.stderr
