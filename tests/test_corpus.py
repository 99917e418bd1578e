"""`randvis corpus`: per-image rows against a reference computed from the public API,
resume after SIGKILL without lost or repeated rows, the summary against the table,
and one-line errors."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

from conftest import write_png
from randvis import corpus as C
from randvis.cli import main

TINY = ["--model", "cnn3", "--size", "16", "--filters", "8", "--kernel-size", "3"]


def _images(folder, n, seed=0, side=24):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    return [write_png(folder / f"im{i}.png", rng.random((3, side, side))) for i in range(n)]


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["corpus", *map(str, argv)])
    return code, out.getvalue(), err.getvalue()


def _table(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    _images(root / "imgs", 3)
    (root / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, out, err = _run(root / "imgs", *TINY, "--out", root / "out")
    assert code == 0, err
    return root, out, err


def test_rows_equal_a_reference_built_from_the_public_api(tiny_run):
    """Each number of a row, recomputed with randvis.visualize and randvis.stats on the
    network the documented seed draws: [image digest, seed, crc32("cnn3/net")]."""
    import randvis
    from randvis._io import array_digest
    from randvis.images import load_image, preprocess
    from randvis.stats import class_sensitivity, normality, pearson
    from randvis.theory import RandomNetSpec, patch_normalized_input

    root, _, _ = tiny_run
    rows = [r for r in C.read_table(root / "out" / "rows.csv") if not r["error"]]
    assert len(rows) == 3
    for r in rows:
        img = load_image(r["path"], size=16)
        digest = array_digest(img)
        assert r["digest"] == digest
        net = randvis.three_layer_cnn(8, kernel_size=3, n_classes=10, input_shape=(3, 16, 16), dtype=np.float64,
                                      rng=[int(digest, 16), 0, zlib.crc32(b"cnn3/net")])
        x = preprocess(img).astype(np.float64)
        logits = net.predict(x)[0]
        assert r["top_class"] == int(np.argmax(logits)) and r["random_class"] != r["top_class"]

        def maps(c):
            return {m: v[0] for m, v in randvis.visualize(net, x, target=c).items()}

        top, other, c0, c1 = maps(r["top_class"]), maps(r["random_class"]), maps(0), maps(1)
        pni = patch_normalized_input(RandomNetSpec("cnn", 1, kernel_size=3), x[0])
        for m in ("saliency", "deconvnet", "gbp"):
            assert r[f"corr_x_{m}"] == pearson(top[m], x[0], center="channel")
            assert r[f"corr_pni_{m}"] == pearson(top[m], pni, center="channel")
            assert r[f"maxrand_l2_{m}"] == class_sensitivity(top[m], other[m]).l2
            assert r[f"fixed_ssim_{m}"] == class_sensitivity(c0[m], c1[m]).ssim
            assert r[f"fixed_spearman_{m}"] == class_sensitivity(c0[m], c1[m]).spearman
        for m in ("saliency", "deconvnet"):
            nr = normality(top[m], per_channel=True, interior=1, rng=0).pooled
            assert r[f"ks_{m}"] == nr.ks_statistic and r[f"kurt_{m}"] == nr.excess_kurtosis


def test_rows_depend_on_pixels_and_seed_not_on_names_or_order(tmp_path):
    """A random network is drawn from the image's content: the same pixels under
    another name give the same row; another --seed gives other networks."""
    (a,) = _images(tmp_path / "a", 1)
    b = tmp_path / "b" / "zz-copy.png"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    spec = C.CorpusSpec("cnn3", size=16, filters=8, kernel_size=3)
    ra, rb = C.corpus_row((str(a), spec)), C.corpus_row((str(b), spec))
    assert {k: v for k, v in ra.items() if k != "path"} == {k: v for k, v in rb.items() if k != "path"}
    rc = C.corpus_row((str(a), C.CorpusSpec("cnn3", size=16, filters=8, kernel_size=3, seed=1)))
    assert rc["corr_x_gbp"] != ra["corr_x_gbp"]


def test_table_is_sorted_whole_and_lists_the_unreadable_image(tiny_run):
    root, out, err = tiny_run
    table = _table(root / "out" / "rows.csv")
    assert tuple(table[0]) == C.COLUMNS
    paths = [r[0] for r in table[1:]]
    assert paths == sorted(paths) and len(set(paths)) == len(paths) == 4
    bad = [r for r in table[1:] if r[0].endswith("broken.png")][0]
    assert "cannot read image" in bad[2] and bad[3:] == [""] * (len(C.COLUMNS) - 3)
    assert "skipped 1 unreadable image" in err and "broken.png" in err
    assert err.count("\n") <= 2   # the note is one line


def test_summary_equals_the_tables_numbers(tiny_run):
    """summary.json's means are the means of the table's columns (read here with the csv
    module); every interval holds its mean; --summarize rewrites the same file."""
    root, out, _ = tiny_run
    table = _table(root / "out" / "rows.csv")
    ok = [dict(zip(table[0], r)) for r in table[1:] if not r[2]]
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["n_images"] == 3 and [p for p, _ in summary["skipped"]][0].endswith("broken.png")
    for col in ("corr_x_gbp", "maxrand_l2_saliency", "ks_deconvnet", "fixed_ssim_gbp"):
        values = [float(r[col]) for r in ok]
        e = summary["columns"][col]
        assert e["mean"] == pytest.approx(np.mean(values), rel=1e-12) and e["n"] == 3
        assert e["ci_low"] <= e["mean"] <= e["ci_high"]
    assert (root / "out" / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = (root / "out" / "summary.json").read_bytes()
    code, out2, _ = _run("--summarize", "--out", root / "out")
    assert code == 0 and (root / "out" / "summary.json").read_bytes() == before
    assert "corr_x_gbp" in out2


def test_a_rerun_recomputes_nothing(tiny_run, monkeypatch):
    root, _, _ = tiny_run
    before = (root / "out" / "rows.csv").read_bytes()
    calls = []
    monkeypatch.setattr(C, "corpus_row", lambda job: calls.append(job))
    code, _, err = _run(root / "imgs", *TINY, "--out", root / "out")
    assert code == 0 and calls == [] and (root / "out" / "rows.csv").read_bytes() == before


def test_a_torn_last_line_is_cut_and_its_row_recomputed(tmp_path):
    _images(tmp_path / "imgs", 2)
    assert _run(tmp_path / "imgs", *TINY, "--out", tmp_path / "ref")[0] == 0
    whole = (tmp_path / "ref" / "rows.csv").read_bytes()
    lines = whole.splitlines(keepends=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "settings.json").write_bytes((tmp_path / "ref" / "settings.json").read_bytes())
    (tmp_path / "out" / "rows.csv").write_bytes(b"".join(lines[:2]) + lines[2][:40])   # killed mid-write
    code, _, err = _run(tmp_path / "imgs", *TINY, "--out", tmp_path / "out")
    assert code == 0, err
    assert "cut the torn last line" in err and "resuming: 1 of 2" in err
    assert (tmp_path / "out" / "rows.csv").read_bytes() == whole


def _data_rows(path):
    try:
        return max(0, path.read_bytes().count(b"\n") - 1)
    except OSError:
        return 0


def test_sigkill_and_rerun_give_the_same_table(tmp_path):
    """A run killed with SIGKILL after some rows, then rerun, writes the table of an
    undisturbed run byte for byte: no row lost, none repeated."""
    _images(tmp_path / "imgs", 8)
    args = ["--model", "cnn3", "--size", "64", "--filters", "64", "--kernel-size", "7"]
    cmd = [sys.executable, "-m", "randvis", "corpus", str(tmp_path / "imgs"), *args, "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    table = tmp_path / "out" / "rows.csv"
    try:
        deadline = time.monotonic() + 120
        while _data_rows(table) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    killed = _data_rows(table)
    assert 2 <= killed < 8, f"the kill came too late ({killed} rows)"
    code, _, err = _run(tmp_path / "imgs", *args, "--out", tmp_path / "out")
    assert code == 0, err
    assert f"resuming: {killed} of 8" in err
    assert _run(tmp_path / "imgs", *args, "--out", tmp_path / "ref")[0] == 0
    assert table.read_bytes() == (tmp_path / "ref" / "rows.csv").read_bytes()
    paths = [r[0] for r in _table(table)[1:]]
    assert len(paths) == len(set(paths)) == 8


def test_jobs_give_the_in_process_table(tiny_run, tmp_path):
    root, _, _ = tiny_run
    code, _, err = _run(root / "imgs", *TINY, "--jobs", "2", "--out", tmp_path / "jobs")
    assert code == 0, err
    assert (tmp_path / "jobs" / "rows.csv").read_bytes() == (root / "out" / "rows.csv").read_bytes()


def test_find_images_folders_globs_and_files(tmp_path):
    _images(tmp_path / "a", 2)
    _images(tmp_path / "a" / "sub", 1)
    (tmp_path / "a" / "notes.txt").write_text("x")
    assert [os.path.basename(p) for p in C.find_images([tmp_path / "a"])] == ["im0.png", "im1.png"]
    assert len(C.find_images([str(tmp_path / "a" / "**" / "*.png")])) == 3
    both = C.find_images([tmp_path / "a" / "im1.png", str(tmp_path / "a" / "im*.png")])
    assert len(both) == 2 and all(os.path.isabs(p) for p in both)


@pytest.mark.parametrize("argv, message", [
    (["EMPTY", "--model", "cnn3"], "IMAGES: no image files in"),
    (["MISSING", "--model", "cnn3"], "IMAGES: no such file or folder"),
    (["IMGS"], "--model is required"),
    (["IMGS", "--model", "cnn3", "--pair", "1,1"], "pair must be two different classes"),
    (["IMGS", "--model", "cnn3", "--pair", "0,10"], "class 10 out of range for 10 classes"),
    (["IMGS", "--model", "cnn3", "--pair", "a"], "--pair must be two different class indices"),
    (["IMGS", "--model", "cnn3", "--out", "IMGS"], "holds input images"),
    (["IMGS", "--model", "cnn3", "--scheduler", "tcp://a b"], "is not a scheduler address"),
    (["--summarize", "--out", "NOWHERE"], "no rows.csv there to summarize"),
])
def test_bad_input_gets_one_line(tmp_path, argv, message):
    _images(tmp_path / "imgs", 1)
    (tmp_path / "empty").mkdir()
    names = {"EMPTY": tmp_path / "empty", "MISSING": tmp_path / "missing", "IMGS": tmp_path / "imgs",
             "NOWHERE": tmp_path / "nowhere"}
    code, out, err = _run(*[names.get(a, a) for a in argv])
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and err.startswith("randvis: error:")


def test_other_settings_are_refused_not_mixed(tiny_run, tmp_path):
    root, _, _ = tiny_run
    code, _, err = _run(root / "imgs", *TINY, "--seed", "3", "--out", root / "out")
    assert code == 2 and "other settings (seed differ" in err
