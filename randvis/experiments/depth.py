"""Experiment 4 -- depth: the maps change little as random networks deepen.

Random plain CNNs of increasing depth (3x3 convolutions, 2x2 max-pooling
after every two) and random VGG-16 cut after each of its five blocks (a random
dense head on top). Measured: Spearman correlation and SSIM between the GBP
(and DeconvNet, saliency) maps of consecutive depths, and each map's
correlation with the input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..images import preprocess
from ..layers import Flatten
from ..methods import METHODS, visualize
from ..models import _dense, random_cnn, vgg16
from ..network import Sequential
from ..stats import similarity
from ..claims import Claim, above, judge
from ._base import corr, show

NAME = "depth"
TITLE = "Depth: random CNNs and VGG-16 cut at each block"


@dataclass
class Result:
    families: dict      # family -> list of depth labels
    corr_input: dict    # family -> method -> list over depths (mean over images)
    consecutive: dict   # family -> method -> list of mean Spearman between depth d and d+1
    ssim: dict
    spearman: dict      # family -> method -> list over depth pairs of lists over images
    panels: dict
    first_image: np.ndarray


def _vgg_cut(block, shape, seed):
    full = vgg16(n_classes=10, input_shape=shape, rng=seed)
    keep = []
    for layer in full.layers:
        keep.append(layer)
        if layer.name == f"pool{block}":
            break
    keep.append(Flatten(name="flatten"))
    feat = Sequential(keep, shape).shapes[-1][0]
    keep.append(_dense(np.random.default_rng(seed + 1), 10, feat, "he", name="head"))
    return Sequential(keep, shape)


def run(ctx):
    depths = [1, 2, 4, 8] if ctx.quick else [1, 2, 4, 8, 13]
    fams = {"random CNN": [f"depth {d}" for d in depths], "VGG-16 cut": [f"block {b}" for b in range(1, 6)]}
    res = Result(fams, {}, {}, {}, {}, {}, ctx.images[0][1])
    for fam, labels in fams.items():
        maps_by_image = []
        corr_in = {m: np.zeros(len(labels)) for m in METHODS}
        for idx, (name, img) in enumerate(ctx.images):
            x = preprocess(img)
            per_depth = []
            for k, label in enumerate(labels):
                def compute(fam=fam, k=k, x=x, name=name):
                    # one seed per family and image: the nets of one image share their first layers
                    seed = ctx.draw_seed(NAME, fam, image=name)
                    if fam == "random CNN":
                        net = random_cnn(depths[k], width=32 if ctx.quick else 64, pool_every=2,
                                         input_shape=x.shape[1:], rng=seed)
                    else:
                        net = _vgg_cut(k + 1, x.shape[1:], seed)
                    maps = visualize(net, x, target="max")
                    return {m: corr(maps[m], x) for m in METHODS}, {m: maps[m][0] for m in METHODS}
                nums, arrays = ctx.cell(NAME, f"{fam}-{label}-{name}", compute)
                for m in METHODS:
                    corr_in[m][k] += nums[m] / len(ctx.images)
                per_depth.append(arrays)
                if idx == 0:
                    res.panels[f"{fam}/{label}"] = arrays["gbp"]
            maps_by_image.append(per_depth)
        res.corr_input[fam] = {m: v.tolist() for m, v in corr_in.items()}
        res.consecutive[fam], res.ssim[fam], res.spearman[fam] = {}, {}, {}
        for m in METHODS:
            sims = [[similarity(pd[k][m], pd[k + 1][m]) for k in range(len(labels) - 1)] for pd in maps_by_image]
            res.spearman[fam][m] = [[float(s[k].spearman) for s in sims] for k in range(len(labels) - 1)]
            res.consecutive[fam][m] = [float(np.mean(v)) for v in res.spearman[fam][m]]
            res.ssim[fam][m] = [float(np.mean([s[k].ssim for s in sims])) for k in range(len(labels) - 1)]
    return res


def numbers(res):
    return {"families": res.families, "mean_corr_with_input": res.corr_input,
            "spearman_consecutive_depths": res.consecutive, "ssim_consecutive_depths": res.ssim,
            "spearman_consecutive_depths_per_image": res.spearman}


def claims(res):
    out = []
    for fam, labels in res.families.items():
        pairs = [judge(f"Spearman(GBP at {a}, GBP at {b})", v, above(0.5))
                 for a, b, v in zip(labels, labels[1:], res.spearman[fam]["gbp"])]
        out.append(Claim(f"GBP changes little with depth ({fam})",
                         f"mean Spearman between GBP maps of consecutive depths: min {min(res.consecutive[fam]['gbp']):.3f}",
                         pairs, NAME, value=min(v.estimate for v in pairs)))
    return out


def plot(res, fig):
    n = max(len(v) for v in res.families.values())
    axes = fig.subplots(len(res.families), n + 1)
    for r, (fam, labels) in enumerate(res.families.items()):
        show(axes[r, 0], res.first_image, "input")
        for k in range(n):
            ax = axes[r, k + 1]
            if k < len(labels):
                show(ax, res.panels[f"{fam}/{labels[k]}"], f"{fam}: {labels[k]} GBP")
            else:
                ax.axis("off")
    fig.suptitle(TITLE, fontsize=10)
