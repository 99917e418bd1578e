"""Experiment 3 -- max-pooling makes DeconvNet image-like.

Without pooling DeconvNet never looks at the input (its map is the same for
every image); after a max-pooling layer the switches carry the image into the
backward pass. Measured: Pearson correlation of each map with the input, for a
random three-layer CNN without pooling, with max-pooling of several window
sizes, with average pooling of the same sizes (ablation: average pooling is
linear and carries no image information), and for random VGG-16 with max and
with average pooling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..methods import METHODS
from ..models import three_layer_cnn, vgg16
from ..claims import Claim, above, inside, judge
from ._base import maps_vs_input, show

NAME = "max_pooling"
TITLE = "Max-pooling: DeconvNet becomes image-like"


@dataclass
class Result:
    configs: list
    corr: dict      # config -> method -> mean corr over images and draws
    values: dict    # config -> method -> list over images of lists over draws
    panels: dict
    first_image: np.ndarray


def _configs(quick):
    cfg = [("cnn", None, "max")] + [("cnn", p, t) for t in ("max", "avg") for p in (2, 4, 8)]
    return cfg + [("vgg16", None, "max"), ("vgg16", None, "avg")]


def _label(cfg):
    model, pool, kind = cfg
    if model == "vgg16":
        return f"VGG-16 ({kind}-pool)"
    return "CNN, no pool" if pool is None else f"CNN, {kind}-pool {pool}"


def _builder(cfg, n):
    model, pool, kind = cfg
    if model == "vgg16":
        return lambda seed, shape: vgg16(n_classes=1000, input_shape=shape, pool_type=kind, rng=seed)
    return lambda seed, shape: three_layer_cnn(n, kernel_size=7, pool=pool, pool_type=kind, input_shape=shape,
                                               rng=seed)


def run(ctx):
    n = 64 if ctx.quick else 256
    configs = _configs(ctx.quick)
    res = Result([_label(c) for c in configs], {}, {}, {}, ctx.images[0][1])
    for cfg in configs:
        label = _label(cfg)
        # a VGG-16 costs far more than a three-layer CNN: one draw per image
        vals, first = maps_vs_input(ctx, NAME, label, _builder(cfg, n), draws=1 if cfg[0] == "vgg16" else None)
        res.panels.update({f"{label}/{m}": a for m, a in first.items()})
        res.values[label] = vals
        res.corr[label] = {m: float(np.mean(v)) for m, v in vals.items()}
    return res


def numbers(res):
    return {"configs": res.configs, "mean_corr_with_input": res.corr, "corr_with_input": res.values}


def _deconv(res, label):
    return np.array(res.values[label]["deconvnet"])     # (images, draws)


def claims(res):
    no_pool = _deconv(res, "CNN, no pool")
    # the CNN configurations share the draw count, so images and draws pair up
    gains = [judge(f"corr(DeconvNet, x): max-pool {p} minus no pool", _deconv(res, f"CNN, max-pool {p}") - no_pool,
                   above(0.0)) for p in (2, 4, 8)]
    avg = [judge(f"corr(DeconvNet, x), avg-pool {p}", _deconv(res, f"CNN, avg-pool {p}"), inside(-0.1, 0.1))
           for p in (2, 4, 8)]
    vgg = judge("corr(DeconvNet, x): VGG-16 max-pool minus avg-pool",
                _deconv(res, "VGG-16 (max-pool)") - _deconv(res, "VGG-16 (avg-pool)"), above(0.0))
    best = max(gains, key=lambda v: v.estimate)
    c = res.corr
    return [
        Claim("With max-pooling DeconvNet recovers the image (three-layer CNN)",
              f"mean corr(DeconvNet, x): no pool {c['CNN, no pool']['deconvnet']:.3f}, max-pool 2/4/8 "
              + "/".join(f"{c[f'CNN, max-pool {p}']['deconvnet']:.3f}" for p in (2, 4, 8)),
              gains, NAME, value=best.estimate),
        Claim("(ablation) average pooling does not make DeconvNet image-like", "", avg, NAME,
              value=max(abs(v.estimate) for v in avg)),
        Claim("Random VGG-16: DeconvNet is image-like thanks to its max-pooling",
              f"mean corr(DeconvNet, x): max-pool {c['VGG-16 (max-pool)']['deconvnet']:.3f} vs avg-pool "
              f"{c['VGG-16 (avg-pool)']['deconvnet']:.3f}", [vgg], NAME),
    ]


def plot(res, fig):
    show_cfgs = ["CNN, no pool", "CNN, max-pool 2", "CNN, max-pool 8", "CNN, avg-pool 8",
                 "VGG-16 (max-pool)", "VGG-16 (avg-pool)"]
    axes = fig.subplots(3, len(show_cfgs) + 1)
    for r, m in enumerate(METHODS):
        show(axes[r, 0], res.first_image, "input" if r == 0 else None)
        for k, label in enumerate(show_cfgs):
            name = {"saliency": "Sal", "deconvnet": "Deconv", "gbp": "GBP"}[m]
            show(axes[r, k + 1], res.panels[f"{label}/{m}"], f"{label}\n{name} r={res.corr[label][m]:.2f}")
    fig.suptitle(TITLE, fontsize=10)
