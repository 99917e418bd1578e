"""``randvis corpus``: per-image statistics of the three maps over a folder of images.

For every image and one network (a random network drawn for that image, or a
trained one), a row of a table records

* ``corr_x_M``, ``corr_pni_M``: Pearson correlation (channel means removed) of
  method M's map with the network input x and with the patch-normalised input
  :func:`randvis.theory.patch_normalized_input` (patches of the first layer's
  kernel at stride 1: 3 x 3 for VGG-16 and EfficientNet-Lite0, the whole image
  for a fully connected net);
* ``ks_M``, ``shapiro_p_M``, ``skew_M``, ``kurt_M``: the normality statistics
  (:func:`randvis.stats.normality`, standardised per channel) of the saliency
  and DeconvNet maps;
* ``maxrand_*_M`` and ``fixed_*_M``: L2, SSIM and Spearman
  (:func:`randvis.stats.class_sensitivity`) between the maps of two logits: the
  top one against a random other one, and a fixed pair of classes (default
  0 and 1) for every image;
* ``top_class`` (and its name when the model has named classes).

A random network is drawn for each image from the image's content digest
(:func:`randvis._io.array_digest` of its pixels), the run's seed and the model:
rows do not depend on the order, the subset or the machine that computes them.

The table is CSV, not Parquet. A Parquet file cannot grow a row at a time
(its footer is written once, at the end); rows would go to thousands of small
files or wait in memory, and it needs pyarrow. A CSV row is one ``write`` of
one line, followed by ``fsync``: a killed run leaves whole rows and at most
one torn last line, which the next run cuts off before it resumes. The table
is its own index of finished images (its ``path`` column): a rerun skips them,
so no row is lost or written twice. When every image is done the table is
rewritten once, atomically, sorted by path, so a finished table does not
depend on the order rows finished in (in-process, ``--jobs`` or a Dask
cluster). Floats are written with ``repr``, which reads back to the same bits.

Images stream: they are read by the process that computes their row (a
worker, on a cluster), at most a few at a time; the main process keeps the
list of paths and the set of finished ones. The summary (means, bootstrap
intervals, a figure) reads the table's numbers back.

Examples
--------
>>> spec = CorpusSpec("cnn3", size=16, filters=4, kernel_size=3)
>>> spec.settings()["model"], spec.n_classes
('cnn3', 10)
"""
from __future__ import annotations

import csv
import functools
import glob
import io
import json
import math
import os
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from . import _checks
from ._io import array_digest, atomic_write, atomic_write_text, code_version, jsonable

__all__ = ["CorpusSpec", "MODELS", "COLUMNS", "find_images", "corpus_row", "run_corpus", "read_table",
           "summarize_table", "IMAGE_EXTENSIONS"]

#: --model choices: random networks drawn per image, and trained networks
MODELS = ("cnn3", "fcn", "vgg16", "efficientnet-lite0", "vgg16-trained")
TRAINED = ("efficientnet-lite0", "vgg16-trained")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
METHODS = ("saliency", "deconvnet", "gbp")
PAIRS = ("maxrand", "fixed")
NORMALITY = ("ks", "shapiro_p", "skew", "kurt")
#: the table's columns, in order
COLUMNS = (("path", "digest", "error", "top_class", "top_name", "random_class")
           + tuple(f"corr_{r}_{m}" for r in ("x", "pni") for m in METHODS)
           + tuple(f"{k}_{m}" for m in METHODS[:2] for k in NORMALITY)
           + tuple(f"{p}_{k}_{m}" for p in PAIRS for k in ("l2", "ssim", "spearman") for m in METHODS))
#: columns that are not statistics
_TEXT = ("path", "digest", "error", "top_name")
TABLE, SETTINGS = "rows.csv", "settings.json"
SUMMARY_FILES = ("summary.json", "summary.txt", "summary.png")


@dataclass(frozen=True)
class CorpusSpec:
    """What a corpus row depends on besides its image.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    size : int, optional
        Images are read at ``size`` x ``size`` (centre crop; default 224, 240
        for vgg16-trained).
    seed : int
        Seed of the random networks and random classes.
    filters, kernel_size : int
        cnn3: filters N and filter size.
    hidden : int
        fcn: hidden units.
    classes : int
        Random models: number of logits.
    pair : (int, int)
        The fixed pair of classes compared on every image.
    """

    model: str
    size: int = None
    seed: int = 0
    filters: int = 64
    kernel_size: int = 7
    hidden: int = 1000
    classes: int = 10
    pair: tuple = (0, 1)

    def __post_init__(self):
        _checks.one_of(self.model, "model", MODELS)
        size = self.size if self.size is not None else (240 if self.model == "vgg16-trained" else 224)
        object.__setattr__(self, "size", _checks.positive_int(size, "size"))
        for name in ("seed",):
            object.__setattr__(self, name, _checks.nonnegative_int(getattr(self, name), name))
        for name in ("filters", "kernel_size", "hidden", "classes"):
            object.__setattr__(self, name, _checks.positive_int(getattr(self, name), name))
        pair = tuple(_checks.nonnegative_int(c, "pair") for c in self.pair)
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"pair must be two different classes, got {self.pair!r}")
        if max(pair) >= self.n_classes:
            raise ValueError(f"pair {pair[0]},{pair[1]}: class {max(pair)} out of range for {self.n_classes} classes")
        if self.n_classes < 2:
            raise ValueError("a corpus compares the maps of two logits: the model needs at least 2 classes")
        object.__setattr__(self, "pair", pair)

    @property
    def n_classes(self):
        return {"efficientnet-lite0": 1000, "vgg16-trained": 4}.get(self.model, self.classes)

    def settings(self):
        """The settings that apply to this model (a JSON-able dict)."""
        d = asdict(self)
        d["pair"] = list(self.pair)
        keep = {"cnn3": ("filters", "kernel_size", "classes"), "fcn": ("hidden", "classes"),
                "vgg16": ("classes",)}.get(self.model, ())
        return {k: v for k, v in d.items() if k in ("model", "size", "seed", "pair") + keep}

    def plan(self):
        """(builder, keyword arguments) of :func:`randvis.models.memory_estimate` for a
        random model (None for a trained one)."""
        shape = (3, self.size, self.size)
        if self.model == "cnn3":
            return "three_layer_cnn", dict(n_filters=self.filters, kernel_size=self.kernel_size,
                                           n_classes=self.classes, input_shape=shape, dtype="float64")
        if self.model == "fcn":
            return "fcn", dict(n_hidden=self.hidden, n_classes=self.classes, input_shape=shape, dtype="float64")
        if self.model == "vgg16":
            return "vgg16", dict(n_classes=self.classes, input_shape=shape, dtype="float64")
        return None

    def check_memory(self):
        """Refuse a random network that would not fit (:mod:`randvis.limits`), before any is built."""
        plan = self.plan()
        if plan is not None:
            from .models import memory_estimate

            memory_estimate(plan[0], **plan[1]).check()


# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------

def find_images(inputs):
    """The image files named by ``inputs``, sorted, as absolute paths (each once).

    Each input is an image file, a folder (its image files, not its
    subfolders) or a glob pattern (``photos/*.jpg``, ``data/**/*.png``).

    Raises
    ------
    FileNotFoundError
        An input that is neither a file, a folder nor a pattern matching anything.
    ValueError
        No image file at all (one line naming the inputs).

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> for name in ("b.png", "a.jpg", "notes.txt"):
    ...     open(os.path.join(d, name), "w").close()
    >>> [os.path.basename(p) for p in find_images([d])]
    ['a.jpg', 'b.png']
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found = set()
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            with os.scandir(item) as it:
                found.update(os.path.abspath(e.path) for e in it
                             if e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file())
        elif os.path.isfile(item):
            found.add(os.path.abspath(item))   # named explicitly: read whatever its extension
        elif glob.has_magic(item):
            found.update(os.path.abspath(p) for p in glob.iglob(item, recursive=True)
                         if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p))
        else:
            raise FileNotFoundError(f"IMAGES: no such file or folder: {item}")
    if not found:
        raise ValueError(f"IMAGES: no image files in {', '.join(map(str, inputs))} "
                         f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
    return sorted(found)


# ---------------------------------------------------------------------------
# one row
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _trained_net(model, size):
    """The trained network, built once per process (a worker reuses it for every image)."""
    if model == "efficientnet-lite0":
        from .efficientnet import efficientnet_lite0

        return efficientnet_lite0("pretrained", dtype=np.float64, input_shape=(3, size, size))
    from .models import vgg16_trained

    return vgg16_trained(dtype=np.float64, preprocessing="tumor")


def _entropy(spec, digest, what):
    """Seed entropy of ``what`` ("net", "class") for the image of ``digest``."""
    return [int(digest, 16), spec.seed, zlib.crc32(f"{spec.model}/{what}".encode())]


def _network(spec, digest):
    if spec.model in TRAINED:
        return _trained_net(spec.model, spec.size)
    from . import models

    builder, kwargs = spec.plan()
    return getattr(models, builder)(**kwargs, rng=_entropy(spec, digest, "net"))


def _input(spec, img):
    if spec.model == "efficientnet-lite0":
        from .efficientnet import pixels_to_input

        return pixels_to_input(img, np.float64)[None]
    if spec.model == "vgg16-trained":
        from .tumorvgg import to_input

        return to_input(img, "tumor", dtype=np.float64)
    from .images import preprocess

    return preprocess(img).astype(np.float64)


def _patch_spec(spec):
    from .theory import RandomNetSpec

    if spec.model == "fcn":
        return RandomNetSpec("fcn", 1)
    return RandomNetSpec("cnn", 1, kernel_size=spec.kernel_size if spec.model == "cnn3" else 3)


def _class_name(spec, k):
    if spec.model == "efficientnet-lite0":
        from .efficientnet import imagenet_classes

        return imagenet_classes()[k]
    if spec.model == "vgg16-trained":
        from .tumorvgg import CLASS_NAMES

        return CLASS_NAMES[k]
    return ""


def corpus_row(job):
    """The row of one image: ``job`` = (path, :class:`CorpusSpec`).

    A pure function of the image's pixels and the spec. An image that cannot
    be read gives a row with the reason in ``error`` and no numbers.

    Returns
    -------
    dict
        One value per entry of :data:`COLUMNS`.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from PIL import Image
    >>> p = os.path.join(tempfile.mkdtemp(), "noise.png")
    >>> Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(p)
    >>> row = corpus_row((p, CorpusSpec("cnn3", size=16, filters=4, kernel_size=3)))
    >>> row["error"], 0 <= row["top_class"] < 10, -1 <= row["corr_x_gbp"] <= 1
    ('', True, True)
    """
    from .images import load_image
    from .kernels import one_blas_thread
    from .methods import visualize
    from .montecarlo import _normality
    from .stats import class_sensitivity, pearson
    from .theory import patch_normalized_input

    path, spec = job
    row = dict.fromkeys(COLUMNS, "")
    row["path"] = path
    try:
        img = load_image(path, size=spec.size)
    except (ValueError, OSError) as exc:
        row["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return row
    digest = array_digest(img)
    row["digest"] = digest
    with one_blas_thread():
        net = _network(spec, digest)
        x = _input(spec, img)
        logits = net.predict(x)[0]
        top = int(np.argmax(logits))
        other = int(np.random.default_rng(_entropy(spec, digest, "class")).integers(net.n_classes - 1))
        other += other >= top
        maps = {c: {m: v[0].astype(np.float64) for m, v in visualize(net, x, target=c).items()}
                for c in dict.fromkeys((top, other) + spec.pair)}
        x0 = np.asarray(x[0], dtype=np.float64)
        pni = patch_normalized_input(_patch_spec(spec), x0)
        row.update(top_class=top, top_name=_class_name(spec, top), random_class=other)
        for m in METHODS:
            row[f"corr_x_{m}"] = pearson(maps[top][m], x0, center="channel")
            row[f"corr_pni_{m}"] = pearson(maps[top][m], pni, center="channel")
        border = spec.kernel_size // 2 if spec.model == "cnn3" else 0
        for m in METHODS[:2]:
            try:
                stats = _normality(maps[top][m], border)
            except ValueError:   # a constant map: no distribution to test
                stats = dict.fromkeys(NORMALITY, math.nan)
            row.update({f"{k}_{m}": stats[k] for k in NORMALITY})
        for name, (a, b) in zip(PAIRS, ((top, other), spec.pair)):
            for m in METHODS:
                cs = class_sensitivity(maps[a][m], maps[b][m])
                row.update({f"{name}_l2_{m}": cs.l2, f"{name}_ssim_{m}": cs.ssim, f"{name}_spearman_{m}": cs.spearman})
    return row


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------

def _line(values):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _format(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))   # reads back to the same bits
    return str(v)


def _parse(column, text):
    if column in _TEXT or text == "":
        return text
    if column in ("top_class", "random_class"):
        return int(text)
    return float(text)


def read_table(path):
    """The rows of a corpus table, one dict per line, streamed (a generator).

    A torn last line (a run killed while writing it) is not returned.

    Raises
    ------
    ValueError
        The file does not start with the corpus header.
    """
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise ValueError(f"{path} is not a randvis corpus table (its header differs)")
        for values in reader:
            if len(values) != len(COLUMNS):
                break   # the torn tail of a killed run
            yield {c: _parse(c, v) for c, v in zip(COLUMNS, values)}


def _repair_tail(path):
    """Cut a torn last line (no newline at the end) off the table; returns its length."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        keep = size
        step = 1 << 16
        while keep > 0:   # find the last newline, reading backwards in blocks
            start = max(0, keep - step)
            fh.seek(start)
            block = fh.read(keep - start)
            i = block.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            keep = start
        fh.truncate(keep)
        os.fsync(fh.fileno())
        return size - keep


class _Appender:
    """Appends whole rows to the table: one ``write`` per line, then ``fsync``."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))

    def append(self, row):
        data = _line([_format(row[c]) for c in COLUMNS]).encode("utf-8")
        while data:
            data = data[os.write(self.fd, data):]
        os.fsync(self.fd)

    def close(self):
        os.close(self.fd)


def _settings_of(spec):
    return {"format": "randvis-corpus-1", "randvis": code_version(), "spec": spec.settings()}


def _open_table(out, spec, log):
    """Create the table (and settings.json) or check an existing one; returns the
    set of finished paths."""
    table, settings_path = os.path.join(out, TABLE), os.path.join(out, SETTINGS)
    want = _settings_of(spec)
    if os.path.lexists(table):
        if os.path.islink(table) or not os.path.isfile(table):
            raise ValueError(f"--out {out}: {TABLE} there is not a regular file")
        try:
            with open(settings_path, encoding="utf-8") as fh:
                have = json.load(fh)
        except (OSError, ValueError):
            raise ValueError(f"--out {out}: {TABLE} has no readable {SETTINGS} beside it; it was not written by "
                             "randvis corpus (or is damaged): choose another --out") from None
        if have != want:
            diff = sorted(k for k in set(have.get("spec", {})) | set(want["spec"])
                          if have.get("spec", {}).get(k) != want["spec"].get(k))
            if have.get("randvis") != want["randvis"]:
                diff.append("randvis code version")
            raise ValueError(f"--out {out}: its table was computed with other settings ({', '.join(diff) or 'format'} "
                             "differ); choose another --out, or remove it to start over")
        cut = _repair_tail(table)
        if cut:
            log(f"cut the torn last line ({cut} bytes) of {table}, left by a run that was killed")
        return {r["path"] for r in read_table(table)}
    os.makedirs(out, exist_ok=True)
    atomic_write_text(settings_path, json.dumps(want, indent=1, sort_keys=True) + "\n")
    atomic_write_text(table, _line(COLUMNS))
    return set()


def _finish_table(out):
    """Rewrite the table atomically with its rows sorted by path (each path once)."""
    table = os.path.join(out, TABLE)
    rows = {}
    with open(table, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        for values in reader:
            if len(values) == len(COLUMNS):
                rows.setdefault(values[0], values)
    text = _line(COLUMNS) + "".join(_line(rows[p]) for p in sorted(rows))

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(table, write)


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------

def run_corpus(images, spec, out, client=None, jobs=1, progress=True, log=print):
    """Compute the row of every image not yet in ``out``'s table, then summarize.

    Parameters
    ----------
    images : list of str
        Image paths (see :func:`find_images`).
    spec : CorpusSpec
    out : str
        Output folder: ``rows.csv``, ``settings.json`` and the summary files.
        A table already there for the same settings is resumed; one for other
        settings is refused.
    client : distributed.Client, optional
        Compute the rows on this Dask cluster (:mod:`randvis.cluster`).
    jobs : int
        Without a client: rows computed in this many processes.
    progress : bool
        A progress bar of rows done and their rate (on a terminal).
    log : callable
        Receives one-line notes.

    Returns
    -------
    dict
        The summary (see :func:`summarize_table`).
    """
    from tqdm.auto import tqdm

    jobs = _checks.positive_int(jobs, "jobs")
    spec.check_memory()
    out = os.fspath(out)
    root = os.path.abspath(out)
    inside = [p for p in images if os.path.commonpath([root, os.path.abspath(p)]) == root]
    if inside:
        raise ValueError(f"--out {out} holds input images ({inside[0]}); choose an output folder outside the inputs")
    done = _open_table(out, spec, log)
    paths = [os.path.abspath(p) for p in images]
    todo = [p for p in paths if p not in done]
    if done and todo:
        log(f"resuming: {len(paths) - len(todo)} of {len(paths)} images already in {os.path.join(out, TABLE)}")
    jobs_iter = ((p, spec) for p in todo)
    pool = None
    if client is not None:
        from .cluster import stream

        finished = stream(client, corpus_row, jobs_iter,
                          key=lambda job: f"randvis-corpus-{zlib.crc32(repr(spec).encode()):08x}-{job[0]}")
    elif jobs > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        from .cluster import stream

        pool = ProcessPoolExecutor(min(jobs, len(todo)))
        finished = stream(pool, corpus_row, jobs_iter)
    else:
        finished = ((job, corpus_row(job)) for job in jobs_iter)
    appender = _Appender(os.path.join(out, TABLE))
    bar = tqdm(total=len(paths), initial=len(paths) - len(todo), desc="corpus", unit="img",
               disable=not progress or None, leave=False)
    try:
        with bar:
            for _, row in finished:
                appender.append(row)
                bar.update()
    finally:
        appender.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    _finish_table(out)
    return summarize_table(out, log=log)


# ---------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------

def _stat_columns():
    return [c for c in COLUMNS if c not in _TEXT and c not in ("top_class", "random_class")]


def summarize_table(out, log=print):
    """Means and 95% bootstrap intervals of every statistic over the images of
    ``out``'s table; writes ``summary.json``, ``summary.txt`` and ``summary.png``.

    Returns
    -------
    dict
        ``n_images``, ``skipped`` ([path, reason] of each unreadable image),
        ``top_classes`` (the ten most frequent top classes with counts) and
        ``columns``: per statistic ``mean``, ``std``, ``ci_low``, ``ci_high``,
        ``n`` (images with a finite value).
    """
    from .stats import summarize

    table = os.path.join(out, TABLE)
    if not os.path.isfile(table):
        raise FileNotFoundError(f"--out {out}: no {TABLE} there to summarize (run randvis corpus IMAGES first)")
    with open(os.path.join(out, SETTINGS), encoding="utf-8") as fh:
        settings = json.load(fh)
    seed = int(settings["spec"]["seed"])
    values = {c: [] for c in _stat_columns()}
    skipped, counts, names, n = [], {}, {}, 0
    for r in read_table(table):
        if r["error"]:
            skipped.append([r["path"], r["error"]])
            continue
        n += 1
        counts[r["top_class"]] = counts.get(r["top_class"], 0) + 1
        names[r["top_class"]] = r["top_name"]
        for c in values:
            values[c].append(r[c])
    cols = {}
    for k, (c, v) in enumerate(values.items()):
        v = np.asarray(v, dtype=np.float64)
        v = v[np.isfinite(v)]
        entry = {"mean": float(v.mean()) if v.size else math.nan, "std": math.nan, "ci_low": math.nan,
                 "ci_high": math.nan, "n": int(v.size)}
        if v.size >= 2:
            s = summarize(v, rng=[seed, k])
            entry.update(std=s.std, ci_low=s.ci.low, ci_high=s.ci.high)
        cols[c] = entry
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    res = {"settings": settings["spec"], "n_images": n, "skipped": skipped,
           "top_classes": [[k, names[k], c] for k, c in top], "columns": cols}
    atomic_write_text(os.path.join(out, "summary.json"),
                      json.dumps(jsonable(res, finite_only=True), indent=1) + "\n")
    atomic_write_text(os.path.join(out, "summary.txt"), summary_text(res) + "\n")
    fig = plot_summary(res)
    atomic_write(os.path.join(out, "summary.png"), lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    if skipped:
        shown = "; ".join(e if p in e else f"{p}: {e}" for p, e in skipped[:5])
        log(f"skipped {len(skipped)} unreadable image(s) (rows with an error in {table}): {shown}"
            + (" ..." if len(skipped) > 5 else ""))
    return res


def summary_text(res):
    """The summary as a plain-text table."""
    lines = [f"{res['n_images']} images, model {res['settings']['model']}, "
             f"{len(res['skipped'])} skipped (unreadable)",
             f"{'statistic':<26} {'mean':>9} {'95% CI':>21} {'n':>7}"]
    for c, e in res["columns"].items():
        lines.append(f"{c:<26} {e['mean']:>9.4f} [{e['ci_low']:>9.4f}, {e['ci_high']:>9.4f}] {e['n']:>7}")
    if res["top_classes"]:
        lines.append("top classes: " + ", ".join(f"{k}{' ' + nm if nm else ''} ({c})"
                                                 for k, nm, c in res["top_classes"]))
    return "\n".join(lines)


def plot_summary(res, fig=None):
    """Bars of the means with their 95% intervals: correlations with the input,
    and the L2 distance and SSIM between the maps of two logits, per method.

    Examples
    --------
    >>> res = {"n_images": 2, "settings": {"model": "cnn3"},
    ...        "columns": {c: {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6} for c in COLUMNS}}
    >>> len(plot_summary(res).axes)
    3
    """
    if fig is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(13, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = ((("corr_x", "corr(map, x)"), ("corr_pni", "corr(map, patch-norm. x)")),
              (("maxrand_l2", "top vs random"), ("fixed_l2", "fixed pair")),
              (("maxrand_ssim", "top vs random"), ("fixed_ssim", "fixed pair")))
    titles = ("correlation with the input", "L2 between the maps of two logits", "SSIM between them")
    cols = res["columns"]
    for ax, panel, title in zip(axes, panels, titles):
        for k, (prefix, label) in enumerate(panel):
            e = [cols[f"{prefix}_{m}"] for m in METHODS]
            mean = np.array([v["mean"] for v in e], dtype=float)
            err = np.array([[m - (v["ci_low"] if v["ci_low"] is not None else math.nan),
                             (v["ci_high"] if v["ci_high"] is not None else math.nan) - m]
                            for m, v in zip(mean, e)], dtype=float).T
            ax.bar(np.arange(3) + 0.4 * k, mean, 0.4, yerr=np.nan_to_num(err), capsize=3, label=label)
        ax.set_xticks(np.arange(3) + 0.2, ["Saliency", "DeconvNet", "GBP"])
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"randvis corpus: {res['n_images']} images, {res['settings']['model']} "
                 "(means, 95% bootstrap CI)", fontsize=10)
    return fig
