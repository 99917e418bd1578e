"""Experiment 1 -- local connections: random three-layer CNN vs FCN.

The paper (Section 5.1): with the same number of hidden units, GBP of a random
CNN recovers the image while GBP of a random fully connected net is noise;
saliency and DeconvNet are noise for both. Measured: Pearson correlation of
each map with the (preprocessed) input, per image and independent weight draw
(seeded by the image's pixels, see :meth:`Context.draw_seed`); target: the top
logit, as in the paper's code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..claims import Claim, above, inside, judge
from ..methods import METHODS
from ..models import fcn, three_layer_cnn
from ._base import maps_vs_input, show

NAME = "local_connections"
TITLE = "Local connections: random 3-layer CNN vs FCN"
MODELS = ("cnn", "fcn")


@dataclass
class Result:
    n_hidden: int
    images: list
    corr: dict      # corr[model][method] -> list over images of lists over draws
    panels: dict    # "<model>/<method>" -> map of the first image, first draw
    first_image: np.ndarray


def run(ctx):
    n = 64 if ctx.quick else 256
    out, panels = {}, {}

    def builders(model):
        if model == "cnn":
            return lambda seed, shape: three_layer_cnn(n, kernel_size=7, input_shape=shape, rng=seed)
        return lambda seed, shape: fcn(n, input_shape=shape, rng=seed)

    for model in MODELS:
        out[model], first = maps_vs_input(ctx, NAME, model, builders(model))
        panels.update({f"{model}/{m}": a for m, a in first.items()})
    return Result(n, [nm for nm, _ in ctx.images], out, panels, ctx.images[0][1])


def numbers(res):
    return {"n_hidden": res.n_hidden, "images": res.images,
            "corr_with_input": res.corr,
            "mean_corr_with_input": {k: {m: float(np.mean(v)) for m, v in d.items()} for k, d in res.corr.items()}}


def claims(res):
    c, f = np.array(res.corr["cnn"]["gbp"]), np.array(res.corr["fcn"]["gbp"])
    gap = judge("corr(GBP, x): CNN minus FCN", c - f, above(0.3))
    noise = [judge(f"corr({m}, x), {k.upper()}", res.corr[k][m], inside(-0.1, 0.1))
             for k in MODELS for m in ("saliency", "deconvnet")]
    worst = max(noise, key=lambda v: abs(v.estimate))
    return [
        Claim("GBP of a random CNN recovers the image, GBP of a random FCN does not (local connections)",
              f"mean corr(GBP, x): CNN {c.mean():.3f} vs FCN {f.mean():.3f} (N={res.n_hidden})", [gap], NAME),
        Claim("Saliency and DeconvNet of random 3-layer nets are noise unrelated to the image",
              f"largest |mean corr(map, x)|: {abs(worst.estimate):.3g} ({worst.what})", noise, NAME,
              value=abs(worst.estimate)),
    ]


def plot(res, fig):
    axes = fig.subplots(2, 4)
    for r, model in enumerate(MODELS):
        show(axes[r, 0], res.first_image, "input" if r == 0 else None)
        for k, m in enumerate(METHODS):
            label = {"saliency": "Saliency", "deconvnet": "DeconvNet", "gbp": "GBP"}[m]
            show(axes[r, k + 1], res.panels[f"{model}/{m}"],
                 f"{'CNN' if model == 'cnn' else 'FCN'} {label}  r={res.corr[model][m][0][0]:.2f}")
    fig.suptitle(f"{TITLE} (N = {res.n_hidden})", fontsize=10)
