"""Experiment 1 -- local connections: random three-layer CNN vs FCN.

The paper (Section 5.1): with the same number of hidden units, GBP of a random
CNN recovers the image while GBP of a random fully connected net is noise;
saliency and DeconvNet are noise for both. Measured: Pearson correlation of
each map with the (preprocessed) input, per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..images import preprocess
from ..methods import METHODS, visualize
from ..models import fcn, three_layer_cnn
from ._base import Claim, corr, show

NAME = "local_connections"
TITLE = "Local connections: random 3-layer CNN vs FCN"


@dataclass
class Result:
    n_hidden: int
    images: list
    corr: dict      # corr[model][method] -> list over images
    panels: dict    # "<model>/<method>" -> map of the first image
    first_image: np.ndarray


def run(ctx):
    n = 64 if ctx.quick else 256
    out = {"cnn": {m: [] for m in METHODS}, "fcn": {m: [] for m in METHODS}}
    panels = {}
    for idx, (name, img) in enumerate(ctx.images):
        x = preprocess(img)
        for model in ("cnn", "fcn"):
            def compute(model=model, x=x, name=name):
                seed = ctx.seed_of(NAME, model, name)
                net = (three_layer_cnn(n, kernel_size=7, input_shape=x.shape[1:], rng=seed) if model == "cnn"
                       else fcn(n, input_shape=x.shape[1:], rng=seed))
                maps = visualize(net, x, target="max")
                return ({m: corr(maps[m], x) for m in METHODS},
                        {m: maps[m][0] for m in METHODS} if idx == 0 else {})
            nums, arrays = ctx.cell(NAME, f"{model}-{name}", compute)
            for m in METHODS:
                out[model][m].append(nums[m])
            panels.update({f"{model}/{m}": a for m, a in arrays.items()})
    return Result(n, [nm for nm, _ in ctx.images], out, panels, ctx.images[0][1])


def numbers(res):
    return {"n_hidden": res.n_hidden, "images": res.images,
            "corr_with_input": res.corr,
            "mean_corr_with_input": {k: {m: float(np.mean(v)) for m, v in d.items()} for k, d in res.corr.items()}}


def claims(res):
    c, f = np.array(res.corr["cnn"]["gbp"]), np.array(res.corr["fcn"]["gbp"])
    noise = max(abs(np.mean(res.corr[k][m])) for k in ("cnn", "fcn") for m in ("saliency", "deconvnet"))
    return [
        Claim("GBP of a random CNN recovers the image, GBP of a random FCN does not (local connections)",
              f"mean corr(GBP, x): CNN {c.mean():.3f} vs FCN {f.mean():.3f} (N={res.n_hidden}); "
              "holds if CNN > FCN + 0.3 on every image", float(c.mean() - f.mean()),
              bool(np.all(c > f + 0.3)), NAME),
        Claim("Saliency and DeconvNet of random 3-layer nets are noise unrelated to the image",
              "largest |mean corr(map, x)| over saliency/DeconvNet, CNN and FCN; holds if < 0.1",
              float(noise), bool(noise < 0.1), NAME),
    ]


def plot(res, fig):
    axes = fig.subplots(2, 4)
    for r, model in enumerate(("cnn", "fcn")):
        show(axes[r, 0], res.first_image, "input" if r == 0 else None)
        for k, m in enumerate(METHODS):
            label = {"saliency": "Saliency", "deconvnet": "DeconvNet", "gbp": "GBP"}[m]
            show(axes[r, k + 1], res.panels[f"{model}/{m}"],
                 f"{'CNN' if model == 'cnn' else 'FCN'} {label}  r={res.corr[model][m][0]:.2f}")
    fig.suptitle(f"{TITLE} (N = {res.n_hidden})", fontsize=10)
