"""Experiment 8 -- theory vs simulation (randvis.theory checked by Monte Carlo).

One sweep per image (:func:`randvis.montecarlo.theory_sweep`, 64x64, or 32x32
with ``quick``): random three-layer CNNs and FCNs of growing width, several
independent weight draws per width, seeded by the image's pixels, the run's
seed and the cell. The networks have one logit, the fixed target the theory
assumes. The claims are judged on the table of (image, draw) values: the
log-log slope of each draw's GBP error across N, each draw's error against
the closed form, and each draw's KS distance to a Gaussian.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..claims import Claim, judge
from ..images import preprocess, resize_image
from ..montecarlo import (KS_CRITERION, KS_MIN_N, RMS_CRITERION, RMS_MIN_N, SLOPE_CRITERION, plot_sweep,
                          theory_sweep)
from ..stats import fit_loglog_slope

NAME = "theory_curves"
TITLE = "Closed-form theory vs simulation of random CNNs and FCNs"


@dataclass
class Result:
    sweep: object           # the first image's SweepResult (the figure)
    images: list
    rows: list              # per image: the sweep's rows (one per kind, N and draw)
    theory: list            # per image: {(kind, N): predicted RMS relative error}
    seeds: int

    # the first sweep's fields, as the figure and results.json use them
    @property
    def summary(self):
        return self.sweep.summary

    @property
    def slopes(self):
        return self.sweep.slopes

    @property
    def config(self):
        return self.sweep.config


def run(ctx):
    size = 32 if ctx.quick else 64
    cnn_ns = (4, 16, 64, 256) if ctx.quick else (4, 16, 64, 256, 1024, 4096)
    fcn_ns = (16, 256, 4096) if ctx.quick else (16, 256, 4096, 70000)
    seeds = 2 if ctx.quick else 3
    sweeps = []
    for name, img in ctx.images:
        x = preprocess(resize_image(img, size))[0].astype(np.float64)
        # each sweep checkpoints itself after every network, under its own key (the
        # configuration, the image's digest, the seed and the code version)
        ck = ctx.cell_path(NAME, f"sweep-{size}-{name}")
        os.makedirs(os.path.dirname(ck), exist_ok=True)
        sweeps.append(theory_sweep(x, cnn_ns, fcn_ns, seeds=seeds, checkpoint=ck, progress=ctx.progress,
                                   image_name=f"{name} {size}x{size}", log=ctx.note, seed=ctx.seed))
    theory = [{(s["kind"], s["n"]): s["rel_error_theory"] for s in sw.summary} for sw in sweeps]
    return Result(sweeps[0], [n for n, _ in ctx.images], [sw.rows for sw in sweeps], theory, seeds)


def numbers(res):
    per_image = {name: [{k: r[k] for k in ("kind", "n", "seed", "rel_error", "corr_input", "ks_saliency",
                                           "ks_deconvnet")} for r in rows]
                 for name, rows in zip(res.images, res.rows)}
    return {"summary": res.summary, "slopes": res.slopes, "config": res.config, "images": res.images,
            "rows_per_image": per_image}


def _table(res, kind, n, value):
    """(images, draws) table of ``value(row, image index)`` for the rows of (kind, n)."""
    return np.array([[value(r, i) for r in sorted(rows, key=lambda r: r["seed"])
                      if r["kind"] == kind and r["n"] == n] for i, rows in enumerate(res.rows)])


def claims(res):
    ns = [s["n"] for s in res.summary if s["kind"] == "cnn"]
    errs = np.stack([_table(res, "cnn", n, lambda r, i: r["rel_error"]) for n in ns], axis=-1)
    slopes = np.array([[fit_loglog_slope(ns, e).slope for e in per_image] for per_image in errs])
    slope = judge("log-log slope of GBP relative error vs N (CNN, each draw)", slopes, SLOPE_CRITERION)
    ratio = [judge(f"(measured / predicted RMS GBP relative error)^2, {s['kind'].upper()} N={s['n']}",
                   _table(res, s["kind"], s["n"], lambda r, i, s=s: (r["rel_error"] / res.theory[i][s["kind"], s["n"]]) ** 2),
                   RMS_CRITERION)
             for s in res.summary if s["n"] >= RMS_MIN_N[s["kind"]]]
    ks = [judge(f"KS distance of {m} to N(0, 1), CNN N={n}", _table(res, "cnn", n, lambda r, i, m=m: r[f"ks_{m}"]),
                KS_CRITERION)
          for n in ns if n >= KS_MIN_N for m in ("saliency", "deconvnet")]
    worst = max(ratio, key=lambda v: abs(np.sqrt(v.estimate) - 1))
    return [
        Claim("GBP's error around the image shrinks like N^(-1/2) (Theorem 2)", "", [slope], NAME),
        Claim("(beyond the paper) the exact closed-form error matches simulation",
              f"RMS measured / predicted farthest from 1: {np.sqrt(worst.estimate):.3f} ({worst.what})", ratio, NAME,
              value=float(np.sqrt(worst.estimate))),
        Claim("Saliency and DeconvNet maps of random CNNs are Gaussian (Theorem 1)",
              "standardised interior pixels", ks, NAME, value=max(v.estimate for v in ks)),
    ]


def plot(res, fig):
    plot_sweep(res.sweep, fig)
    fig.suptitle(f"{TITLE} ({res.images[0]}; the claims use {len(res.images)} images)", fontsize=10)
