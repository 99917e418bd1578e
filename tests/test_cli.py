"""The command line: a labelled panel on success, one clear line on failure."""
import shlex

import numpy as np
import pytest

from conftest import run_python, write_huge_npz, write_png
from randvis.cli import main


def _run(*args):
    return run_python("-m", "randvis", *args)


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


def _fixtures(tmp_path):
    """Files the bad invocations refer to: a photo, a directory, a FIFO, an
    unreadable file, a symbolic link to the photo, weights whose header claims 37 GiB."""
    import os

    photo = write_png(tmp_path / "photo.png", np.random.default_rng(0).random((40, 40, 3)).transpose(2, 0, 1))
    (tmp_path / "dir.png").mkdir()
    os.mkfifo(tmp_path / "fifo.png")
    locked = tmp_path / "locked.png"
    locked.write_bytes(photo.read_bytes())
    locked.chmod(0)
    (tmp_path / "link.png").symlink_to(photo)
    write_huge_npz(tmp_path / "huge.npz", "conv1_1.weight.npy")
    return photo


BAD = [
    # sizes: refused from the shapes, before anything is built
    "visualize --filters 1000000000 --size 32",
    "visualize --filters 1e9 --size 32",
    "visualize --size 100000",
    "visualize --kernel-size 2000 --size 32",
    "visualize --model fcn --hidden 10000000",
    "visualize --classes 100000000 --size 32",
    "visualize --model vgg16 --classes 100000000 --size 32",
    "visualize --model vgg16 --size 7040",
    "visualize --max-memory 1M --size 32",
    "theory --cnn-ns 1000000000",
    'theory --fcn-ns 100000000 --fcn-sampler network --cnn-ns ""',
    "theory --size 100000",
    # numbers out of range or malformed
    "visualize --filters 0 --size 32",
    "visualize --classes 0 --size 32",
    "visualize --classes -3 --size 32",
    "visualize --filters -1",
    "visualize --filters 2.5",
    "visualize --hidden 0 --model fcn",
    "visualize --kernel-size 0",
    "visualize --pool 0",
    "visualize --pool 100 --size 32 --filters 2",
    "visualize --size 0",
    "visualize --size -5",
    "visualize --size nan",
    "visualize --seed -1",
    "visualize --seed x",
    "visualize --target banana --size 32",
    "visualize --target -1 --size 32 --filters 2",
    "visualize --target 10 --size 32 --filters 2",
    "visualize --model vgg16 --size 33",
    "visualize --max-memory 0",
    "visualize --max-memory lots",
    "visualize --max-streamed-weights -1",
    "visualize --model efficientnet-lite0 --classes 5",
    "visualize --model cnn3 --weights {photo}",
    "theory --seeds 0",
    "theory --size 0",
    "theory --kernel-size 0",
    "theory --cnn-ns 4,x",
    "theory --cnn-ns 4,-2",
    "theory --cnn-ns 4,4",
    'theory --cnn-ns "" --fcn-ns ""',
    "reproduce --jobs 0",
    "reproduce --jobs -2",
    "reproduce --seed -5",
    "reproduce --only nope",
    "reproduce --quick --stamp-readme --out {tmp}/figs",
    "reproduce --stamp-readme {photo} --out {tmp}/figs",
    "reproduce --images {tmp}/nothing --out {tmp}/figs",
    "reproduce --images {tmp} --out {tmp} --only depth",
    "reproduce --vgg-weights {tmp}/dir.png --out {tmp}/figs",
    "reproduce --out {photo}",
    "unknown-command",
    "visualize --no-such-option",
    # files: missing, a directory, a FIFO, unreadable, not an image
    "visualize no/such/image.png",
    "visualize {tmp}/missing.png --size 32",
    "visualize {tmp}/dir.png --size 32",
    "visualize {tmp}/fifo.png --size 32",
    "visualize {tmp}/huge.npz --size 32",
    'visualize "" --size 32',
    "visualize --model vgg16 --weights {tmp}/huge.npz --size 32",
    "visualize --model vgg16 --weights {tmp}/dir.png --size 32",
    "theory {tmp}/dir.png --quick",
    "convert {tmp}/missing.pth {tmp}/x.npz",
    "convert {tmp}/huge.npz {tmp}/x.npz",
    "convert {tmp}/dir.png {tmp}/x.npz",
    # outputs: an input, each other, a directory, nowhere
    "visualize {photo} --out {photo} --size 32",
    "visualize {photo} --out {tmp}/link.png --size 32",
    "visualize {tmp}/link.png --out {photo} --size 32",
    "visualize --model vgg16 --weights {tmp}/w.npz --save-maps {tmp}/w --size 32",
    "visualize --out {tmp}/m.npz --save-maps {tmp}/m.npz --size 32",
    "visualize --out {tmp} --size 32",
    'visualize --out "" --size 32',
    "visualize --out {tmp}/no/such/dir/m.png --size 32",
    "theory {photo} --out {tmp}/photo --quick",
    "theory --out {tmp}/no/such/dir/sweep --quick",
    "convert {tmp}/w.npz {tmp}/w.npz",
    "convert {tmp}/w.npz {tmp}/w",
    "convert {tmp}/w.npz {tmp}/wlink.npz",
]
#: what the line must name, for some of them
NAMED = {
    "visualize no/such/image.png": "no/such/image.png",
    "visualize --target banana --size 32": "--target",
    "visualize --target 10 --size 32 --filters 2": "out of range",
    "visualize --filters 0 --size 32": "--filters",
    "visualize --size 0": "--size",
    "visualize --out {tmp}/no/such/dir/m.png --size 32": "does not exist",
}


def test_named_invocations_are_in_the_table():
    assert set(NAMED) <= set(BAD) and len(set(BAD)) == len(BAD)


@pytest.mark.parametrize("line", BAD)
def test_bad_invocations_give_one_line(tmp_path, capsys, line):
    """Every bad invocation: exit status 2, exactly one line on stderr starting
    ``randvis: error:`` (naming what :data:`NAMED` says), nothing written, no traceback."""
    import os

    photo = _fixtures(tmp_path)
    import randvis

    net = randvis.vgg16(n_classes=7, input_shape=(3, 32, 32), widths=(4, 4, 8, 8, 8), fc_width=16, rng=0)
    net.save(tmp_path / "w.npz")
    (tmp_path / "wlink.npz").symlink_to(tmp_path / "w.npz")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir() if not p.is_fifo() and p.name != "locked.png"}
    rc = main([a.format(tmp=tmp_path, photo=photo) for a in shlex.split(line)])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("randvis: error: "), err
    assert NAMED.get(line, "").format(tmp=tmp_path) in lines[0]
    assert "Traceback" not in err
    after = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir() if not p.is_fifo() and p.name != "locked.png"}
    assert after == before
    assert os.path.exists(photo)


def test_unreadable_files_are_named(tmp_path, capsys):
    import os

    _fixtures(tmp_path)
    if os.access(tmp_path / "locked.png", os.R_OK):
        pytest.skip("running as a user who can read any file")
    assert main(["visualize", str(tmp_path / "locked.png"), "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "locked.png" in err


@pytest.mark.parametrize("exc, words", [(MemoryError(), "out of memory"),
                                        (ZeroDivisionError("division by zero"), "unexpected ZeroDivisionError"),
                                        (RecursionError("deep"), "unexpected RecursionError")])
def test_unexpected_errors_are_one_line_too(capsys, monkeypatch, exc, words):
    import randvis.cli as cli

    def boom(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_visualize", boom)
    assert main(["visualize"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"randvis: error: {words}"), err


def test_limits_options_raise_the_limits_for_one_command(tmp_path, capsys):
    from randvis import limits

    out = tmp_path / "m.png"
    fcn = ["visualize", "--model", "fcn", "--hidden", "100000", "--size", "32", "--out", str(out)]
    # 100000 x 3072 = 3.1e8 streamed weights: refused under a limit of 1e8; under 1e9 the
    # job gets past that limit and is refused by the memory limit instead
    assert main(fcn + ["--max-streamed-weights", "1e8"]) == 2
    assert "streams 3.07e+08 random weights" in capsys.readouterr().err
    assert main(fcn + ["--max-streamed-weights", "1e9", "--max-memory", "1K"]) == 2
    err = capsys.readouterr().err
    assert "more than the memory limit of 1.0 KiB" in err and "(command line: --max-memory)" in err
    cnn = ["visualize", "--filters", "8", "--size", "32", "--out", str(out)]
    assert main(cnn + ["--max-memory", "100K"]) == 2 and not out.exists()
    assert main(cnn + ["--max-memory", "64M"]) == 0 and out.exists()
    assert limits.get_limit("streamed_weights") == limits.LIMITS["streamed_weights"][0]
    assert limits.get_limit("memory") == limits.LIMITS["memory"][0]


def test_large_jobs_are_announced_before_they_start(tmp_path, capsys, monkeypatch):
    import randvis.cli as cli
    from randvis.models import MemoryEstimate

    monkeypatch.setattr(cli, "ANNOUNCE_BYTES", 1 << 20)   # announce from 1 MiB on
    assert main(["visualize", "--filters", "8", "--size", "32", "--out", str(tmp_path / "m.png")]) == 0
    # (a fresh install also says, before computing, that the kernels compile)
    err = [e for e in capsys.readouterr().err.splitlines() if "compiling kernels" not in e]
    assert err[0].startswith("randvis: random 3-layer CNN, N=8, 7x7 filters needs about ")
    assert err[1].startswith("randvis: ready in")
    cli._announce("fcn", MemoryEstimate("fcn(...)", 10, 10, 3 * 10 ** 10))
    line = capsys.readouterr().err
    assert "streams 3e+10 random weights per pass" in line and "about 2 min each" in line


def test_theory_writes_beside_its_image_but_never_over_it(tmp_path, capsys):
    photo = _fixtures(tmp_path)
    assert main(["theory", str(photo), "--size", "16", "--cnn-ns", "4", "--fcn-ns", "", "--seeds", "1",
                 "--kernel-size", "3", "--out", str(tmp_path / "sweep")]) == 0
    assert (tmp_path / "sweep.json").exists() and not (tmp_path / "sweep.checkpoint.npz").exists()
