"""``randvis reproduce``: run the experiments, write figures, results.json and a claims table.

Everything is deterministic for a seed; finished work is checkpointed under
``OUT/.checkpoints`` so an interrupted run resumes where it stopped and writes
the same ``results.json`` as an uninterrupted one. Every file is written
atomically.
"""
from __future__ import annotations

import importlib.util
import json
import os
import time

from ._io import atomic_write
from .experiments import EXPERIMENTS, Context

__all__ = ["reproduce", "load_images"]


def load_images(folder=None, size=224, quick=False, limit=None):
    """The image corpus: built-in samples by default, or every image in ``folder``.

    Built-in: matplotlib's grace_hopper plus scikit-image's samples when it is
    installed (astronaut, coffee, chelsea, rocket, motorcycle). ``quick`` keeps
    the first two.
    """
    from . import images

    if folder is not None:
        exts = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"--images: no such folder: {folder}")
        names = sorted(f for f in os.listdir(folder) if f.lower().endswith(exts))
        if not names:
            raise ValueError(f"--images: no image files in {folder}")
        out = [(os.path.splitext(n)[0], images.load_image(os.path.join(folder, n), size=size)) for n in names]
    else:
        out = [(n, images.sample_image(n, size=size)) for n in images.sample_names()]
    if quick:
        out = out[:2]
    if limit:
        out = out[:limit]
    return out


def reproduce(out="figures", only=None, quick=False, image_dir=None, vgg_weights=None, seed=0,
              progress=True, log=print, size=None, jobs=1):
    """Run the experiments and write ``OUT/NAME.png``, ``OUT/results.json`` and ``OUT/README.md``.

    Parameters
    ----------
    out : str
        Output folder (created).
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

    Returns
    -------
    dict
        The content of results.json.
    """
    if int(jobs) < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    jobs = int(jobs)
    names = list(EXPERIMENTS) if not only else list(only)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}")
    os.makedirs(out, exist_ok=True)
    imgs = load_images(image_dir, size=size or (64 if quick else 224), quick=quick)
    ctx = Context(out=out, images=imgs, quick=quick, seed=seed, vgg_weights=vgg_weights, progress=progress)
    results_path = os.path.join(out, "results.json")
    results = {}
    if os.path.exists(results_path):
        with open(results_path) as fh:
            old = json.load(fh)
        if old.get("_meta", {}).get("config") == _config(ctx, names):
            results = old
    results["_meta"] = {"config": _config(ctx, names)}
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
        text = json.dumps(results, indent=1, sort_keys=True)
        atomic_write(results_path, lambda tmp: open(tmp, "w").write(text + "\n"))

    if jobs > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, initializer=_limit_threads, initargs=(threads,)) as pool:
            futures = {pool.submit(_run_experiment, name, ctx): name for name in todo}
            for name in todo:
                log(f"[{name}] {EXPERIMENTS[name].TITLE} ... (worker)")
            for fut in as_completed(futures):
                name = futures[fut]
                entry, seconds = fut.result()
                log(f"[{name}] done in {seconds:.0f} s")
                record(name, entry, seconds)
    else:
        for name in todo:
            log(f"[{name}] {EXPERIMENTS[name].TITLE} ...")
            record(name, *_run_experiment(name, ctx))
    timings_path = os.path.join(out, "timings.json")
    if os.path.exists(timings_path):  # seconds each experiment took when last computed
        with open(timings_path) as fh:
            timings = {**json.load(fh), **timings}
    timings = {k: v for k, v in timings.items() if k in results}
    text = json.dumps(timings, indent=1, sort_keys=True)
    atomic_write(timings_path, lambda tmp: open(tmp, "w").write(text + "\n"))
    readme = _readme(results, timings, ctx)
    atomic_write(os.path.join(out, "README.md"), lambda tmp: open(tmp, "w").write(readme))
    if not ctx.quick and timings:
        stamp_readme(os.path.join(os.path.dirname(os.path.abspath(out)), "README.md"), timings)
    return results


README_MARK = ("<!-- randvis reproduce: run time -->", "<!-- /randvis reproduce: run time -->")


def stamp_readme(path, timings):
    """Rewrite the run-time sentence between the :data:`README_MARK` comments of ``path``.

    A full (not ``--quick``) run calls this for the ``README.md`` beside its output
    folder, so the project README's statement of how long the full run takes comes
    from the run that made the committed figures. Files without both markers are
    left alone. Returns True when the file was rewritten.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "README.md")
    >>> _ = open(p, "w").write("x " + README_MARK[0] + "old" + README_MARK[1] + " y")
    >>> stamp_readme(p, {"a": 60.0, "b": 30.0})
    True
    >>> "1.5 minutes" in open(p).read()
    True
    """
    if not os.path.exists(path):
        return False
    with open(path) as fh:
        text = fh.read()
    start, end = (text.find(m) for m in README_MARK)
    if start < 0 or end < start:
        return False
    total = sum(timings.values())
    sentence = (f"It took {total / 60:.1f} minutes ({total:.0f} s, summed over the experiments) "
                f"on {os.cpu_count()} cores")
    new = text[:start + len(README_MARK[0])] + sentence + text[end:]
    if new != text:
        atomic_write(path, lambda tmp: open(tmp, "w").write(new))
    return True


def _limit_threads(n):
    from threadpoolctl import threadpool_limits

    from .kernels import set_num_threads

    set_num_threads(n)
    _limit_threads.keep = threadpool_limits(limits=n)


def _run_experiment(name, ctx):
    """Run one experiment, write its figure; returns (results entry, seconds).

    The seconds are those of an uninterrupted computation: this call's own time plus
    the recorded computing time of every checkpointed cell it reused.
    """
    from matplotlib.figure import Figure

    mod = EXPERIMENTS[name]
    t0 = time.perf_counter()
    reused0 = ctx.reused_seconds
    res = mod.run(ctx)
    fig = Figure(figsize=(14, 7.5), layout="constrained") if name != "theory_curves" else Figure(figsize=(11, 4.5))
    mod.plot(res, fig)
    atomic_write(os.path.join(ctx.out, f"{name}.png"), lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    entry = {"title": mod.TITLE, "figure": f"{name}.png", "numbers": _jsonable(mod.numbers(res)),
             "claims": [c.as_dict() for c in mod.claims(res)]}
    return entry, time.perf_counter() - t0 + ctx.reused_seconds - reused0


def _config(ctx, names):
    return {"quick": ctx.quick, "seed": ctx.seed, "images": [n for n, _ in ctx.images],
            "vgg_weights": os.path.basename(ctx.vgg_weights) if ctx.vgg_weights else None}


def _jsonable(v):
    import numpy as np

    if isinstance(v, dict):
        return {str(k): _jsonable(t) for k, t in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(t) for t in v]
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    return v


def _readme(results, timings, ctx):
    lines = ["# Reproduced figures and claims", "",
             "Generated by `randvis reproduce" + (" --quick" if ctx.quick else "") + "`; do not edit by hand.",
             f"Seed {ctx.seed}; images: {', '.join(n for n, _ in ctx.images)} "
             f"({ctx.images[0][1].shape[1]}x{ctx.images[0][1].shape[2]}).", "",
             "| claim | figure | measured | holds |", "| --- | --- | --- | --- |"]
    for name, r in results.items():
        if name.startswith("_"):
            continue
        if r.get("skipped"):
            lines.append(f"| {r['title']} | - | skipped: {r['skipped']} | - |")
        for c in r["claims"]:
            measured = f"**{c['value']:.3g}**: {c['measure']}".replace("|", "\\|")
            lines.append(f"| {c['claim']} | [{r['figure']}]({r['figure']}) | {measured} | "
                         f"{'yes' if c['holds'] else '**no**'} |")
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
