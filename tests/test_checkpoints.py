"""Checkpoints keyed by everything a result depends on; damaged ones recomputed;
no file lost: foreign outputs, paths that leave --out, stale temporaries, the README stamp."""
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import record_calls, write_huge_npz, write_png
from randvis import _io
from randvis import montecarlo as M
from randvis import reproduce as R
from randvis.experiments import Context
from randvis.experiments import _base
from randvis.images import sample_image


def _images(k=0):
    """Two small images; ``k`` shifts the crop (same names, other pixels)."""
    big = sample_image("grace_hopper", size=48)
    return [("a", big[:, k:k + 32, 4:36]), ("b", big[:, 8 + k:40 + k, 8:40])]


class Counter:
    """A cell computation that counts its calls; its numbers depend on the context."""

    def __init__(self, ctx):
        self.ctx, self.calls = ctx, 0

    def __call__(self):
        self.calls += 1
        value = float(self.ctx.rng("cell").random()) + float(self.ctx.images[0][1].sum())
        return {"value": value}, {"map": np.full((2, 3), value)}


def _cell(ctx, experiment="local_connections", key="cnn-a"):
    count = Counter(ctx)
    numbers, arrays = ctx.cell(experiment, key, count)
    return numbers, arrays, count.calls


# ---------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------

def test_a_cell_is_reused_only_under_equal_settings(tmp_path, monkeypatch):
    out = str(tmp_path)
    base = dict(out=out, images=_images(), quick=True, seed=1, progress=False)
    first, arrays, calls = _cell(Context(**base))
    assert calls == 1
    again, arrays2, calls = _cell(Context(**base))
    assert calls == 0 and again == first
    np.testing.assert_array_equal(arrays2["map"], arrays["map"])
    variants = {"seed": dict(base, seed=2), "images": dict(base, images=_images(k=3)),
                "quick": dict(base, quick=False)}
    for what, kw in variants.items():
        numbers, _, calls = _cell(Context(**kw))
        assert calls == 1, f"another {what} reused a cell"
    # another version of randvis's code
    monkeypatch.setattr(_base, "code_version", lambda: "0123456789abcdef")
    _, _, calls = _cell(Context(**base))
    assert calls == 1, "other code reused a cell"


def test_trained_experiments_are_keyed_by_the_weight_files(tmp_path, monkeypatch):
    monkeypatch.setattr(_base, "_trained_weight_digests", lambda: {"EfficientNet-Lite0": "e" * 64})
    w1, w2 = tmp_path / "w1", tmp_path / "w2"
    w1.mkdir(), w2.mkdir()
    (w1 / "vgg.npz").write_bytes(b"one")
    (w2 / "vgg.npz").write_bytes(b"two")   # same file name, other bytes
    base = dict(out=str(tmp_path / "out"), images=_images(), quick=True, seed=0, progress=False)
    assert _cell(Context(**base, vgg_weights=str(w1 / "vgg.npz")), "class_sensitivity")[2] == 1
    assert _cell(Context(**base, vgg_weights=str(w1 / "vgg.npz")), "class_sensitivity")[2] == 0
    assert _cell(Context(**base, vgg_weights=str(w2 / "vgg.npz")), "class_sensitivity")[2] == 1
    assert _cell(Context(**base), "class_sensitivity")[2] == 1
    monkeypatch.setattr(_base, "_trained_weight_digests", lambda: {"EfficientNet-Lite0": "f" * 64})
    assert _cell(Context(**base), "class_sensitivity")[2] == 1
    # experiments on random networks do not depend on weight files
    assert _cell(Context(**base, vgg_weights=str(w1 / "vgg.npz")))[2] == 1
    assert _cell(Context(**base, vgg_weights=str(w2 / "vgg.npz")))[2] == 0


def _write_images(folder, k):
    folder.mkdir()
    for name, img in _images(k):
        write_png(folder / f"{name}.png", img)
    return str(folder)


def test_rerun_into_the_same_folder_gives_a_fresh_runs_results(tmp_path):
    """A second run into one --out with another seed, or other images under the same
    file names, reports what a fresh run reports."""
    kw = dict(only=["local_connections"], quick=True, size=32, progress=False, log=lambda *_: None)
    one, two = _write_images(tmp_path / "one", 0), _write_images(tmp_path / "two", 5)
    R.reproduce(out=str(tmp_path / "shared"), seed=0, image_dir=one, **kw)
    for seed, images in ((1, one), (1, two)):
        reused = R.reproduce(out=str(tmp_path / "shared"), seed=seed, image_dir=images, **kw)
        fresh = R.reproduce(out=str(tmp_path / f"fresh-{seed}-{os.path.basename(images)}"), seed=seed,
                            image_dir=images, **kw)
        assert reused == fresh


# ---------------------------------------------------------------------------
# damaged checkpoints
# ---------------------------------------------------------------------------

def _pickled(path):
    with open(path, "wb") as fh:
        np.savez(fh, map=np.array([{"a": 1}], dtype=object))


def _edited(path, other):
    """The same members, one array changed, written as a valid archive."""
    with np.load(path) as f:
        members = {k: f[k] for k in f.files}
    members["map"] = members["map"] + 1.0
    with open(path, "wb") as fh:
        np.savez(fh, **members)


def _flip(path):
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 3] ^= 0xFF
    Path(path).write_bytes(bytes(data))


DAMAGE = {
    "empty": lambda p, other: Path(p).write_bytes(b""),
    "truncated": lambda p, other: os.truncate(p, os.path.getsize(p) // 2),
    "garbage": lambda p, other: Path(p).write_bytes(os.urandom(3000)),
    "text": lambda p, other: Path(p).write_text('{"value": 1.0}'),
    "another cell's file": lambda p, other: Path(p).write_bytes(Path(other).read_bytes()),
    "edited array": _edited,
    "37 GiB header": lambda p, other: write_huge_npz(p, "map.npy"),
    "pickled array": lambda p, other: _pickled(p),
    "flipped byte": lambda p, other: _flip(p),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_reported_in_one_line_and_recomputed(tmp_path, damage):
    notes = []
    kw = dict(out=str(tmp_path), images=_images(), quick=True, seed=3, progress=False)
    right, right_arrays, _ = _cell(Context(**kw))
    _cell(Context(**kw), key="fcn-a")
    ctx = Context(**kw)
    path, other = ctx.cell_path("local_connections", "cnn-a"), ctx.cell_path("local_connections", "fcn-a")
    DAMAGE[damage](path, other)
    ctx = Context(**kw, log=notes.append)
    numbers, arrays, calls = _cell(ctx)
    assert calls == 1 and numbers == right
    np.testing.assert_array_equal(arrays["map"], right_arrays["map"])
    assert len(notes) == 1 and "\n" not in notes[0], notes
    assert notes[0].startswith(f"checkpoint {path}: ") and notes[0].endswith("recomputing")
    # the recomputed cell was written back and is used from now on
    assert _cell(Context(**kw, log=notes.append))[2] == 0 and len(notes) == 1


def test_load_checkpoint_names_what_differs(tmp_path):
    p = tmp_path / "c.npz"
    _io.save_checkpoint(p, {"seed": 1, "images": ["a"]}, {"x": 1})
    with pytest.raises(_io.CheckpointError, match=r"c\.npz: written under other settings \(seed differs\)"):
        _io.load_checkpoint(p, {"seed": 2, "images": ["a"]})
    assert _io.load_checkpoint(p, {"seed": 1, "images": ["a"]})[0] == {"x": 1}


SWEEP = dict(cnn_ns=(4,), fcn_ns=(8,), seeds=2, kernel_size=3, progress=False)


@pytest.fixture(scope="module")
def sweep_x():
    return np.random.default_rng(0).normal(size=(3, 10, 10))


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "text", "another sweep's file"])
def test_a_damaged_sweep_checkpoint_is_reported_and_the_sweep_recomputed(tmp_path, sweep_x, damage):
    whole = M.theory_sweep(sweep_x, **SWEEP).to_json()
    ck, other = tmp_path / "ck.npz", tmp_path / "other.npz"
    M.theory_sweep(sweep_x, checkpoint=other, **dict(SWEEP, seeds=1))
    M.theory_sweep(sweep_x, checkpoint=ck, **SWEEP)
    if damage == "another sweep's file":
        ck.write_bytes(other.read_bytes())
    else:
        DAMAGE[damage](str(ck), None)
    notes = []
    assert M.theory_sweep(sweep_x, checkpoint=ck, log=notes.append, **SWEEP).to_json() == whole
    assert len(notes) == 1 and notes[0].startswith(f"checkpoint {ck}: "), notes
    assert M.theory_sweep(sweep_x, checkpoint=ck, log=notes.append, **SWEEP).to_json() == whole
    assert len(notes) == 1  # the rewritten checkpoint is good


def test_a_sweep_checkpoint_of_other_code_is_not_reused(tmp_path, sweep_x, monkeypatch):
    ck = tmp_path / "ck.npz"
    M.theory_sweep(sweep_x, checkpoint=ck, **SWEEP)
    calls = record_calls(monkeypatch, M, "simulate_maps")
    M.theory_sweep(sweep_x, checkpoint=ck, **SWEEP)
    assert not calls
    monkeypatch.setattr(M, "code_version", lambda: "0123456789abcdef")
    with pytest.warns(RuntimeWarning, match="written under other settings"):
        M.theory_sweep(sweep_x, checkpoint=ck, **SWEEP)
    assert len(calls) == 4


# ---------------------------------------------------------------------------
# nothing written outside --out, nothing foreign replaced
# ---------------------------------------------------------------------------

def _files(root):
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}


def test_names_from_images_and_keys_stay_inside_the_checkpoint_folder(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    out.mkdir(parents=True)
    img = sample_image("grace_hopper", size=32)
    names = ["../../../escaped", "/tmp/absolute", "..", ".hidden", "x" * 400, "a\nb|c"]
    ctx = Context(out=str(out), images=[(n, img) for n in names], quick=True, seed=0, progress=False)
    for n in names:
        ctx.cell("../../experiment", f"cnn-{n}", lambda: ({"v": 1}, {}))
        ctx.cell("local_connections", n, lambda: ({"v": 1}, {}))
    written = _files(tmp_path)
    assert len(written) == 2 * len(names)
    root = os.path.join(str(out), ".checkpoints") + os.sep
    assert all(p.startswith(root) for p in written), sorted(written)
    assert all(not os.path.basename(p).startswith(".") for p in written)


def test_image_names_must_be_unique(tmp_path):
    img = sample_image("grace_hopper", size=32)
    with pytest.raises(ValueError, match="unique"):
        Context(out=str(tmp_path), images=[("a", img), ("a", img[:, ::-1])])


def test_two_image_files_with_one_stem_are_two_images(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for k, ext in enumerate(("png", "bmp")):
        Image.fromarray(np.full((8, 8, 3), 60 * k, np.uint8)).save(folder / f"x.{ext}")
    names = [n for n, _ in R.load_images(str(folder), size=8)]
    assert names == ["x.bmp", "x.png"]


KW = dict(only=["local_connections"], quick=True, size=32, progress=False, log=lambda *_: None)


@pytest.mark.parametrize("name, content", [
    ("README.md", "# My project\n\nDo not lose me.\n"),
    ("results.json", "my numbers, not JSON"),
    ("results.json", '{"mine": 1}'),
    ("timings.json", "[1, 2]"),
    ("verdicts.tsv", "name\tvalue\nmine\t1\n"),
    ("local_connections.png", "not a figure of randvis"),
])
def test_foreign_files_in_out_are_not_replaced(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    before = _files(tmp_path)
    with pytest.raises(ValueError, match=f"{name} there .* refusing to replace it"):
        R.reproduce(out=str(tmp_path), **KW)
    assert (tmp_path / name).read_text() == content
    assert _files(tmp_path) == before  # nothing written at all


def test_verdicts_table_lists_every_comparison(tmp_path):
    """verdicts.tsv: one row per comparison of every claim in results.json, with
    its numbers, counts and verdict, in the columns randvis theory prints."""
    from randvis.claims import ROW_COLUMNS

    res = R.reproduce(out=str(tmp_path), **KW)
    lines = (tmp_path / "verdicts.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["experiment", "claim", *ROW_COLUMNS]
    want = [(c["claim"], v) for c in res["local_connections"]["claims"] for v in c["verdicts"]]
    assert len(lines) == 1 + len(want) == 1 + 5
    for line, (claim, v) in zip(lines[1:], want):
        cells = dict(zip(lines[0].split("\t"), line.split("\t")))
        assert (cells["experiment"], cells["claim"], cells["check"]) == ("local_connections", claim, v["what"])
        assert float(cells["ci_low"]) == pytest.approx(v["ci"][0], rel=1e-3)
        assert int(cells["n_images"]) == v["n_images"] and cells["verdict"] == ("holds" if v["holds"] else "fails")


def test_reproduce_reruns_over_its_own_outputs(tmp_path):
    a = R.reproduce(out=str(tmp_path), **KW)
    assert R.reproduce(out=str(tmp_path), **KW) == a
    # its figures carry a tag, so they are recognised without results.json too
    (tmp_path / "results.json").unlink()
    assert R.reproduce(out=str(tmp_path), **KW) == a


def test_inputs_are_not_outputs(tmp_path):
    imgs = tmp_path / "imgs"
    _write_images(imgs, 0)
    with pytest.raises(ValueError, match="--images folder"):
        R.reproduce(out=str(imgs), image_dir=str(imgs), **KW)
    (tmp_path / "out").mkdir()
    weights = tmp_path / "out" / "results.json"
    weights.write_text("{}")
    with pytest.raises(ValueError, match="--vgg-weights"):
        R.reproduce(out=str(tmp_path / "out"), vgg_weights=str(weights), **KW)


# ---------------------------------------------------------------------------
# the project README's run-time sentence, only when asked
# ---------------------------------------------------------------------------

README = "# x\nThe full run: " + R.README_MARK[0] + "It took 7.4 minutes" + R.README_MARK[1] + ".\n"


def test_a_full_run_leaves_the_readme_beside_out_alone(tmp_path):
    (tmp_path / "README.md").write_text(README)
    R.reproduce(out=str(tmp_path / "figures"), **dict(KW, quick=False))
    assert (tmp_path / "README.md").read_text() == README


def test_stamp_readme_writes_between_the_markers_only(tmp_path):
    (tmp_path / "README.md").write_text(README)
    R.reproduce(out=str(tmp_path / "figures"), stamp=True, **dict(KW, quick=False))
    def expected():
        seconds = json.loads((tmp_path / "figures" / "timings.json").read_text())["local_connections"]
        return README.replace("It took 7.4 minutes", f"It took {seconds / 60:.1f} minutes ({seconds:.0f} s, "
                              f"summed over the experiments) on {os.cpu_count()} cores")

    assert (tmp_path / "README.md").read_text() == expected()
    other = tmp_path / "NOTES.md"
    other.write_text(README)
    R.reproduce(out=str(tmp_path / "figures"), stamp=str(other), **dict(KW, quick=False))
    assert other.read_text() == expected()


@pytest.mark.parametrize("text, stamp, quick, match", [
    ("# no markers here\n", True, False, "does not have the run-time markers"),
    (README + README, True, False, "does not have the run-time markers"),
    (README, True, True, "cannot be used with --quick"),
    (None, True, False, "no such file"),
])
def test_stamp_readme_refuses_before_running(tmp_path, text, stamp, quick, match):
    if text is not None:
        (tmp_path / "README.md").write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        R.reproduce(out=str(tmp_path / "figures"), stamp=stamp, **dict(KW, quick=quick))
    assert not (tmp_path / "figures").exists()
    if text is not None:
        assert (tmp_path / "README.md").read_text() == text


def test_out_dot_keeps_the_projects_readme(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text(README)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="README.md there"):
        R.reproduce(out=".", **KW)
    assert (tmp_path / "README.md").read_text() == README


def test_the_stamped_readme_is_not_the_one_reproduce_writes(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "README.md").write_text(README)
    with pytest.raises(ValueError, match="is the README.md that reproduce writes"):
        R.reproduce(out=str(sub), stamp=str(tmp_path / "sub" / ".." / "sub" / "README.md"),
                    **dict(KW, quick=False))
    assert (sub / "README.md").read_text() == README


# ---------------------------------------------------------------------------
# temporaries of killed writers
# ---------------------------------------------------------------------------

WRITER = """
import os, signal, sys, time
from randvis._io import atomic_write
def write(tmp):
    with open(tmp, "wb") as fh:
        fh.write(b"partial")
    print("writing", flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
atomic_write(sys.argv[1], write)
"""


@contextlib.contextmanager
def _writer(path, mode):
    """A process stopped inside atomic_write(path): killed there (``mode="die"``,
    waited for) or still writing ("live", killed when the block ends)."""
    with subprocess.Popen([sys.executable, "-c", WRITER, str(path), mode], stdout=subprocess.PIPE,
                          text=True) as p:
        try:
            assert p.stdout.readline().strip() == "writing"
            if mode == "die":
                p.wait()
            yield p
        finally:
            p.kill()


def _temporaries(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith(".tmp-"))


def test_a_killed_writers_temporary_is_removed_by_the_next_run(tmp_path):
    with _writer(tmp_path / "fig.png", "die") as dead:
        assert dead.returncode == -signal.SIGKILL
    stale = _temporaries(tmp_path)
    assert len(stale) == 1 and f"-{dead.pid}-" in stale[0]
    with _writer(tmp_path / "other.png", "live"):
        keep = [f for f in _temporaries(tmp_path) if f not in stale]
        assert len(keep) == 1
        (tmp_path / ".tmp-notes.txt").write_text("someone else's")
        _io.atomic_write_text(tmp_path / "x.txt", "x")
        assert _temporaries(tmp_path) == sorted(keep + [".tmp-notes.txt"])  # the live writer's file stays


def test_reproduce_removes_stale_temporaries_in_its_checkpoint_folders(tmp_path):
    R.reproduce(out=str(tmp_path), **KW)
    folder = tmp_path / ".checkpoints" / "local_connections"
    with _writer(folder / "cell.npz", "die"):
        pass
    assert _temporaries(folder)
    notes = []
    R.reproduce(out=str(tmp_path), **dict(KW, log=notes.append))  # every cell reused: nothing written there
    assert not _temporaries(folder)
    assert any("left by a writer that was killed" in n for n in notes)


def test_a_resumed_run_says_how_many_cells_it_read(tmp_path):
    """A second run with the same settings reads every cell from its checkpoint
    and says so in one line; the first run says nothing of the kind."""
    folder = _write_images(tmp_path / "imgs", 0)
    kw = dict(out=str(tmp_path / "out"), only=["local_connections"], quick=True, size=16, image_dir=folder,
              progress=False)
    first, second = [], []
    R.reproduce(log=first.append, **kw)
    R.reproduce(log=second.append, **kw)
    assert not [m for m in first if "resumed" in m]
    resumed = [m for m in second if "resumed" in m]
    # 2 images (quick) x 2 models x 1 weight draw (quick) = 4 cells
    assert resumed == ["[local_connections] resumed: 4 of 4 cells read from checkpoints of an earlier run "
                       "with the same settings"]
