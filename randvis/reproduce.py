"""``randvis reproduce``: run the experiments, write figures, results.json and a claims table.

Everything is deterministic for a seed; finished work is checkpointed under
``OUT/.checkpoints``, keyed by everything it depends on (see
:meth:`randvis.experiments.Context.cell`), so an interrupted run resumes where
it stopped and writes the same ``results.json`` as an uninterrupted one, and a
run with other settings never reuses a number. Every file is written
atomically, only inside ``OUT`` (and the README named by ``stamp``), and never
over a file that reproduce did not write.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import numbers
import os
import time

import numpy as np

from . import limits
from ._io import (atomic_write, atomic_write_text, check_outputs, jsonable, remove_stale_temporaries,
                  same_file)
from .claims import ROW_COLUMNS, verdict_table
from .experiments import EXPERIMENTS, Context
from .kernels import one_blas_thread

__all__ = ["reproduce", "load_images"]


#: side of the zoomed crop of each built-in photo, as a fraction of its shorter side
CROP_FRACTION = 0.6


def _zoomed(img, size):
    """The centre ``CROP_FRACTION`` of a full-resolution (3, h, w) photo, resized to ``size``."""
    from . import images

    h, w = img.shape[1:]
    side = int(round(CROP_FRACTION * min(h, w)))
    top, left = (h - side) // 2, (w - side) // 2
    return images.resize_image(np.ascontiguousarray(img[:, top:top + side, left:left + side]), size)


def load_images(folder=None, size=224, quick=False, limit=None):
    """The image corpus: built-in samples by default, or every image in ``folder``.

    Built-in: matplotlib's grace_hopper plus scikit-image's samples when it is
    installed (astronaut, coffee, chelsea, rocket, motorcycle), each twice:
    whole (centre-cropped to a square) and zoomed in (its centre
    :data:`CROP_FRACTION` of the shorter side, ``NAME-zoom``): 12 images with
    scikit-image, 2 without; the whole photos first. ``quick`` keeps the
    first two. An image from
    ``folder`` is named by its file name without the extension (with it,
    when two files share a stem).

    Examples
    --------
    >>> names = [n for n, _ in load_images(size=32)]
    >>> names[0], "grace_hopper-zoom" in names
    ('grace_hopper', True)
    """
    from . import images

    if folder is not None:
        exts = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"--images: no such folder: {folder}")
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(exts)
                       and os.path.isfile(os.path.join(folder, f)))
        if not files:
            raise ValueError(f"--images: no image files in {folder}")
        if quick:
            files = files[:2]
        if limit:
            files = files[:limit]
        # each image is held as float32 (3, size, size) for the whole run
        limits.check_memory(len(files) * 3 * int(size) ** 2 * 4,
                            f"--images: {len(files)} images at {size}x{size}")
        stems = [os.path.splitext(f)[0] for f in files]
        names = [st if stems.count(st) == 1 else f for st, f in zip(stems, files)]
        out = [(n, images.load_image(os.path.join(folder, f), size=size)) for n, f in zip(names, files)]
    else:
        whole, zoomed = [], []
        for n in images.sample_names():
            full = images.sample_image(n, size=None)
            whole.append((n, images.resize_image(full, size)))
            zoomed.append((f"{n}-zoom", _zoomed(full, size)))
        out = whole + zoomed
    if quick:
        out = out[:2]
    if limit:
        out = out[:limit]
    return out


def reproduce(out="figures", only=None, quick=False, image_dir=None, vgg_weights=None, seed=0,
              progress=True, log=print, size=None, jobs=1, stamp=None, client=None):
    """Run the experiments and write ``OUT/NAME.png``, ``OUT/results.json`` and ``OUT/README.md``.

    Parameters
    ----------
    out : str
        Output folder (created). Files of those names that randvis did not
        write there (e.g. a project's README.md) are not replaced: the run is
        refused before it starts.
    only : list of str, optional
        Experiment names to run (default all, in the paper's order).
    quick : bool
        Small images (64x64), small sweeps and two images: one to two minutes on 2 cores.
    image_dir : str, optional
        Folder of images to use instead of the built-in samples.
    vgg_weights : str, optional
        A VGG-16 weight file for the trained-model experiments.
    seed : int
    size : int, optional
        Image side (default 224, or 64 with ``quick``).
    jobs : int
        Experiments run in this many worker processes (threads split between
        them); results do not depend on it.
    client : distributed.Client, optional
        Run each experiment as a task on this Dask cluster instead (one task
        per experiment; see :mod:`randvis.cluster`). Its workers write the
        cell checkpoints and figures into ``out``: they must see the same
        folder (one machine, or a shared file system). Results do not depend
        on it, and a task rerun after its worker died reuses the cells its
        first run checkpointed.
    stamp : None, True or path, optional
        Also rewrite the run-time sentence between the :data:`README_MARK`
        comments of this README (``True``: the ``README.md`` beside the output
        folder, i.e. the project README for ``out="figures"``); see
        :func:`stamp_readme`. Not with ``quick``.

    Returns
    -------
    dict
        The content of results.json.
    """
    seed = _count(seed, "seed", 0)
    jobs = _count(jobs, "jobs", 1)
    if size is not None:
        size = _count(size, "size", 1)
    names = list(EXPERIMENTS) if not only else list(dict.fromkeys(only))
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}")
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"--out {out} is a file, not a folder")
    if image_dir is not None and os.path.isdir(image_dir) and same_file(image_dir, out):
        raise ValueError(f"--out {out} is the --images folder; the figures would join the images")
    readme_path = _stamp_target(stamp, out, quick)
    outputs = [os.path.join(out, f) for f in ("README.md", "results.json", "timings.json", "verdicts.tsv")]
    outputs += [os.path.join(out, f"{n}.png") for n in names]
    check_outputs([("--out", p) for p in outputs], [("--vgg-weights", vgg_weights)])
    old = _own_outputs(out, names)
    os.makedirs(out, exist_ok=True)
    for folder in [out] + _checkpoint_folders(out):
        for path in remove_stale_temporaries(folder):
            log(f"removed {path}, left by a writer that was killed")
    imgs = load_images(image_dir, size=size or (64 if quick else 224), quick=quick)
    ctx = Context(out=out, images=imgs, quick=quick, seed=seed, vgg_weights=vgg_weights, progress=progress,
                  log=log)
    results_path = os.path.join(out, "results.json")
    results = {}
    if old is not None and old.get("_meta", {}).get("config") == _config(ctx):
        results = old
    results["_meta"] = {"config": _config(ctx)}
    timings = {}
    todo = []
    for name in names:
        mod = EXPERIMENTS[name]
        missing = [r for r in getattr(mod, "REQUIRES", ()) if importlib.util.find_spec(r) is None]
        if missing:
            log(f"[{name}] skipped: needs {', '.join(missing)} (pip install 'randvis[trained]')")
            results[name] = {"title": mod.TITLE, "skipped": f"needs {', '.join(missing)}", "claims": [],
                             "figure": None}
        else:
            todo.append(name)

    def record(name, entry, seconds):
        results[name] = entry
        timings[name] = seconds
        for c in entry["claims"]:
            log(f"  {'holds' if c['holds'] else 'DOES NOT HOLD'}: {c['claim']} -- {c['measure']}")
        atomic_write_text(results_path, json.dumps(results, indent=1, sort_keys=True) + "\n")

    if client is not None and todo:
        from .cluster import current_limits, result_of, run_task

        worker_ctx = dataclasses.replace(ctx, log=None, notes=[], progress=False)  # one terminal, several workers
        setup = (current_limits(), 1)
        futures = {name: client.submit(run_task, setup, _run_experiment, name, worker_ctx, pure=False)
                   for name in todo}
        for name in todo:
            log(f"[{name}] {EXPERIMENTS[name].TITLE} ... (Dask)")
        _record_in_order(todo, futures, _distributed_completed(futures.values()), record, log, result_of)
    elif jobs > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        jobs = min(jobs, len(todo))
        threads = max(1, (os.cpu_count() or 1) // jobs)
        settings = {name: limits.get_limit(name) for name in limits.LIMITS}
        worker_ctx = dataclasses.replace(ctx, log=None, notes=[], progress=False)  # one terminal, several workers
        with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(threads, settings)) as pool:
            futures = {name: pool.submit(_run_experiment, name, worker_ctx) for name in todo}
            for name in todo:
                log(f"[{name}] {EXPERIMENTS[name].TITLE} ... (worker)")
            _record_in_order(todo, futures, as_completed(futures.values()), record, log, lambda f: f.result())
    else:
        for name in todo:
            log(f"[{name}] {EXPERIMENTS[name].TITLE} ...")
            entry, seconds, _ = _run_experiment(name, ctx)
            record(name, entry, seconds)
    timings_path = os.path.join(out, "timings.json")
    if os.path.exists(timings_path):  # seconds each experiment took when last computed
        with open(timings_path, encoding="utf-8") as fh:
            timings = {**json.load(fh), **timings}
    timings = {k: v for k, v in timings.items() if k in results}
    atomic_write_text(timings_path, json.dumps(timings, indent=1, sort_keys=True) + "\n")
    atomic_write_text(os.path.join(out, "README.md"), _readme(results, timings, ctx))
    atomic_write_text(os.path.join(out, "verdicts.tsv"), _verdicts_tsv(results) + "\n")
    if readme_path is not None:
        if timings:
            stamp_readme(readme_path, timings)
            log(f"wrote the run time into {readme_path}")
        else:
            log(f"no experiment ran; {readme_path} left as it was")
    return results


README_MARK = ("<!-- randvis reproduce: run time -->", "<!-- /randvis reproduce: run time -->")

#: how every README.md that reproduce writes into its output folder begins
_OWN_README = "# Reproduced figures and claims\n\nGenerated by `randvis reproduce"
#: the PNG text chunk that marks reproduce's figures
_PNG_TAG = ("Software", "randvis reproduce")


def _count(v, name, low):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


def _markers(text):
    """(start, end) offsets of the README_MARK comments, or None unless both occur
    once, in order."""
    if any(text.count(m) != 1 for m in README_MARK):
        return None
    start, end = (text.find(m) for m in README_MARK)
    return (start, end) if start + len(README_MARK[0]) <= end else None


def _stamp_target(stamp, out, quick):
    """The README whose run-time sentence a run rewrites (None: none), checked before
    the run starts."""
    if stamp is None or stamp is False:
        return None
    if quick:
        raise ValueError("--stamp-readme records how long the full run takes; it cannot be used with --quick")
    path = os.path.join(os.path.dirname(os.path.abspath(out)), "README.md") if stamp is True else os.fspath(stamp)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--stamp-readme: no such file: {path}")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if _markers(text) is None:
        raise ValueError(f"--stamp-readme: {path} does not have the run-time markers "
                         f"{README_MARK[0]} ... {README_MARK[1]} (once each); refusing to edit it")
    if same_file(path, os.path.join(out, "README.md")):
        raise ValueError(f"--stamp-readme {path} is the README.md that reproduce writes into --out {out}")
    return path


def stamp_readme(path, timings):
    """Rewrite the run-time sentence between the :data:`README_MARK` comments of ``path``.

    ``randvis reproduce --stamp-readme`` calls this after a full (not
    ``--quick``) run for the project README (the ``README.md`` beside the
    output folder ``figures``), so its statement of how long the full run
    takes comes from the run that made the committed figures. Only the text
    between the markers changes.

    Returns
    -------
    bool
        True when the file was rewritten, False when it already said this.

    Raises
    ------
    FileNotFoundError, ValueError
        No such file, or not exactly one of each marker, in order: the file
        is left alone.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "README.md")
    >>> with open(p, "w") as fh:
    ...     _ = fh.write("x " + README_MARK[0] + "old" + README_MARK[1] + " y")
    >>> stamp_readme(p, {"a": 60.0, "b": 30.0})
    True
    >>> with open(p) as fh:
    ...     "1.5 minutes" in fh.read()
    True
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    marks = _markers(text)
    if marks is None:
        raise ValueError(f"{path} does not have the run-time markers {README_MARK[0]} ... "
                         f"{README_MARK[1]} (once each); refusing to edit it")
    start, end = marks
    total = sum(timings.values())
    sentence = (f"It took {total / 60:.1f} minutes ({total:.0f} s, summed over the experiments) "
                f"on {os.cpu_count()} cores")
    new = text[:start + len(README_MARK[0])] + sentence + text[end:]
    if new == text:
        return False
    atomic_write_text(path, new)
    return True


def _is_own_png(path):
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.format == "PNG" and im.text.get(_PNG_TAG[0]) == _PNG_TAG[1]
    except Exception:  # unreadable or not an image: not ours
        return False


def _own_outputs(out, names):
    """Refuse to run when ``out`` holds a README.md, results.json, timings.json or
    figure that randvis reproduce did not write (it would be replaced); returns the
    previous results.json (None without)."""
    def foreign(fname, why):
        raise ValueError(f"--out {out}: {fname} there {why}; refusing to replace it (move it away or "
                         "choose another --out)")

    def ours(fname, looks_right):
        path = os.path.join(out, fname)
        if not os.path.lexists(path):
            return None
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            data = None
        if not looks_right(data):
            foreign(fname, "was not written by randvis reproduce (or is damaged)")
        return data

    old = ours("results.json", lambda d: isinstance(d, dict) and isinstance(d.get("_meta"), dict))
    ours("timings.json", lambda d: isinstance(d, dict) and all(isinstance(v, (int, float)) for v in d.values()))
    path = os.path.join(out, "verdicts.tsv")
    if os.path.lexists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                head = fh.readline().rstrip("\n")
        except (OSError, ValueError):
            head = ""
        if head != _VERDICTS_HEADER:
            foreign("verdicts.tsv", "is not a table written by randvis reproduce")
    path = os.path.join(out, "README.md")
    if os.path.lexists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                head = fh.read(len(_OWN_README))
        except (OSError, ValueError):
            head = ""
        if head != _OWN_README:
            foreign("README.md", "is not a table written by randvis reproduce")
    listed = {r.get("figure") for r in (old or {}).values() if isinstance(r, dict)}
    for name in names:
        fname = f"{name}.png"
        path = os.path.join(out, fname)
        if os.path.lexists(path) and fname not in listed and not _is_own_png(path):
            foreign(fname, "is not a figure written by randvis reproduce")
    return old


def _checkpoint_folders(out):
    root = os.path.join(out, ".checkpoints")
    if not os.path.isdir(root):
        return []
    return [root] + [os.path.join(root, d) for d in sorted(os.listdir(root))
                     if os.path.isdir(os.path.join(root, d)) and not os.path.islink(os.path.join(root, d))]


def _init_worker(threads, settings):
    from .cluster import limit_threads

    for name, value in settings.items():
        limits.set_limit(name, value)
    limit_threads(threads)


def _distributed_completed(futures):
    from distributed import as_completed

    return as_completed(list(futures))


def _record_in_order(todo, futures, completed, record, log, result):
    """Log each experiment as it finishes, and record it once every experiment
    before it in ``todo`` is recorded: results.json and the README list the
    experiments in the same order whatever finishes first."""
    names = {fut: name for name, fut in futures.items()}
    finished = {}
    nxt = 0
    for fut in completed:
        name = names[fut]
        entry, seconds, notes = result(fut)
        for note in notes:
            log(note)
        log(f"[{name}] done in {seconds:.0f} s")
        finished[name] = (entry, seconds)
        while nxt < len(todo) and todo[nxt] in finished:
            record(todo[nxt], *finished.pop(todo[nxt]))
            nxt += 1


def _run_experiment(name, ctx):
    """Run one experiment, write its figure; returns (results entry, seconds, notes).

    The seconds are those of an uninterrupted computation: this call's own time plus
    the recorded computing time of every checkpointed cell it reused.
    """
    from matplotlib.figure import Figure

    mod = EXPERIMENTS[name]
    t0 = time.perf_counter()
    reused0, notes0, n_reused, n_computed = ctx.reused_seconds, len(ctx.notes), len(ctx.reused), len(ctx.computed)
    try:
        with one_blas_thread():  # any BLAS call (scipy's included) runs single-threaded
            res = mod.run(ctx)
    finally:
        ctx.close_progress()
    reused = len(ctx.reused) - n_reused
    if reused:
        ctx.note(f"[{name}] resumed: {reused} of {reused + len(ctx.computed) - n_computed} cells read from "
                 "checkpoints of an earlier run with the same settings")
    fig = Figure(figsize=(14, 7.5), layout="constrained") if name != "theory_curves" else Figure(figsize=(11, 4.5))
    mod.plot(res, fig)
    atomic_write(os.path.join(ctx.out, f"{name}.png"),
                 lambda tmp: fig.savefig(tmp, dpi=90, format="png", metadata=dict([_PNG_TAG])))
    entry = {"title": mod.TITLE, "figure": f"{name}.png", "numbers": jsonable(mod.numbers(res)),
             "claims": [c.as_dict() for c in mod.claims(res)]}
    return entry, time.perf_counter() - t0 + ctx.reused_seconds - reused0, ctx.notes[notes0:]


def _config(ctx):
    """What results.json's entries depend on (entries of another configuration are dropped)."""
    return ctx.fingerprint()


#: the columns of verdicts.tsv: the experiment and claim, then randvis.claims.ROW_COLUMNS
_VERDICT_COLUMNS = ("experiment", "claim") + ROW_COLUMNS
_VERDICTS_HEADER = "\t".join(_VERDICT_COLUMNS)


def _verdicts_tsv(results):
    """Every comparison of every claim, one tab-separated row each (the columns
    ``randvis theory`` prints, after the experiment and the claim)."""
    rows = [{"experiment": name, "claim": c["claim"], **v["row"]}
            for name, r in results.items() if not name.startswith("_")
            for c in r["claims"] for v in c.get("verdicts") or []]
    return verdict_table(rows, _VERDICT_COLUMNS)


def _deciding(claim):
    """The verdict that decides a claim: its first failing one, else the one nearest to failing."""
    vs = claim.get("verdicts") or []
    if not vs:
        return None
    failing = [v for v in vs if not v["holds"]]
    if failing:
        return failing[0]
    return min(vs, key=lambda v: v["margin"])


def _ci_text(v):
    if v["ci"] is None:
        return f"{v['estimate']:.3g} (no interval)"
    return f"{v['estimate']:.3g} [{v['ci'][0]:.3g}, {v['ci'][1]:.3g}]"


def _cell(text):
    return str(text).replace("|", "\\|")


def _readme(results, timings, ctx):
    n_img = len(ctx.images)
    lines = ["# Reproduced figures and claims", "",
             "Generated by `randvis reproduce" + (" --quick" if ctx.quick else "") + "`; do not edit by hand.",
             f"Seed {ctx.seed}; {n_img} images: {', '.join(n for n, _ in ctx.images)} "
             f"({ctx.images[0][1].shape[1]}x{ctx.images[0][1].shape[2]}); random networks are drawn afresh for "
             f"every image (seeded by its pixels), {ctx.n_draws} draw(s) per image where a network is cheap.", "",
             "Each claim is judged by a criterion fixed in the code before the numbers: the "
             "95% bootstrap interval of a mean over images (and weight draws: images resampled, then draws "
             "within each image) must lie above, below or inside stated thresholds. A claim with several "
             "comparisons holds when each does; the table shows the one that decides (the first failing, "
             "else the one nearest to failing), and [the list below](#every-comparison) shows all of them "
             "with their per-image values.", "",
             "| claim | figure | measured: mean [95% CI] | criterion | images x draws | holds |",
             "| --- | --- | --- | --- | --- | --- |"]
    details = []
    for name, r in results.items():
        if name.startswith("_"):
            continue
        if r.get("skipped"):
            lines.append(f"| {r['title']} | - | skipped: {r['skipped']} | - | - | - |")
        for c in r["claims"]:
            v = _deciding(c)
            if v is None:   # a claim judged without an interval (e.g. a count)
                measured, crit, counts = f"**{c['value']:.3g}**: {c['measure']}", "stated with the measure", "-"
            else:
                k = sum(x["holds"] for x in c["verdicts"])
                of = f" ({k} of {len(c['verdicts'])} comparisons hold)" if len(c["verdicts"]) > 1 else ""
                measured = f"**{_ci_text(v)}**: {v['what']}{of}"
                crit = v["criterion"]
                counts = f"{v['n_images']} x {v['n_draws']}"
            lines.append(f"| {_cell(c['claim'])} | [{r['figure']}]({r['figure']}) | {_cell(measured)} | "
                         f"{_cell(crit)} | {counts} | {'yes' if c['holds'] else '**no**'} |")
            about = ". ".join(t for t in (c.get("summary", c["measure"]), c.get("note")) if t)
            details += [f"- **{c['claim']}** ({'holds' if c['holds'] else 'does not hold'})"
                        + (f": {about}" if about else "")]
            for x in c.get("verdicts") or []:
                per = ", ".join(f"{p:.3g}" for p in x["per_image"])
                details.append(f"  - {x['what']} = {_ci_text(x)} ({x['criterion']}): "
                               f"{'holds' if x['holds'] else '**fails**'}; per image: {per}")
    lines += ["", "## Every comparison", ""] + details
    lines += ["", "## Figures", ""]
    for name, r in results.items():
        if not name.startswith("_") and r.get("figure"):
            lines += [f"### {r['title']}", "", f"![{name}]({r['figure']})", ""]
    if timings:
        total = sum(timings.values())
        lines += ["## Run time", "", f"Computing every experiment took {total:.0f} s in all on the machine "
                  f"that ran it ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}; from "
                  "`timings.json`, the time of the run that last computed each experiment).", ""]
    return "\n".join(lines)
