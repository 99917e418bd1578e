"""Experiment 2 -- number of filters: GBP over N for CNNs and FCNs, with theory.

GBP's correlation with the input rises with N towards the value
:func:`randvis.theory.predicted_correlation` gives; the FCN needs far more
units (it is still short of the CNN at N = 70,000). FCN maps at widths whose
first layer would exceed 2^26 weights come from the exact sampler
(:func:`randvis.montecarlo.sample_fcn_maps`), which has the network's
distribution.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import theory as T
from ..images import preprocess
from ..montecarlo import simulate_maps
from ..stats import pearson
from ._base import Claim, show

NAME = "n_filters"
TITLE = "Number of filters / hidden units: GBP of random CNNs and FCNs"


@dataclass
class Result:
    cnn_ns: list
    fcn_ns: list
    corr: dict          # kind -> list over N of mean corr(GBP, x) over images
    corr_sd: dict
    theory: dict        # kind -> list over N of predicted corr (first image)
    panels: dict
    first_image: np.ndarray


def run(ctx):
    cnn_ns = [4, 16, 64, 256] if ctx.quick else [4, 16, 64, 256, 1024]
    fcn_ns = [16, 256, 4096, 70000]
    res = Result(cnn_ns, fcn_ns, {}, {}, {}, {}, ctx.images[0][1])
    for kind, ns in (("cnn", cnn_ns), ("fcn", fcn_ns)):
        vals = []
        for n in ns:
            per_image = []
            for idx, (name, img) in enumerate(ctx.images):
                x = preprocess(img)[0].astype(np.float64)

                def compute(kind=kind, n=n, x=x, name=name, idx=idx):
                    sampler = "exact" if kind == "fcn" and n * x.size > (1 << 26) else "network"
                    _, maps = simulate_maps(kind, n, x, rng=ctx.seed_of(NAME, kind, n, name),
                                            sampler=sampler)
                    # plain Pearson over all values: the quantity theory.predicted_correlation predicts
                    r = pearson(maps["gbp"], x)
                    return ({"corr": r, "sampler": sampler},
                            {"gbp": maps["gbp"]} if idx == 0 else {})
                nums, arrays = ctx.cell(NAME, f"{kind}-{n}-{name}", compute)
                per_image.append(nums["corr"])
                if arrays:
                    res.panels[f"{kind}/{n}"] = arrays["gbp"]
            vals.append(per_image)
        res.corr[kind] = [float(np.mean(v)) for v in vals]
        res.corr_sd[kind] = [float(np.std(v)) for v in vals]
        x0 = preprocess(ctx.images[0][1])[0].astype(np.float64)
        spec = T.RandomNetSpec("cnn", 1, kernel_size=7) if kind == "cnn" else T.RandomNetSpec("fcn", 1)
        res.theory[kind] = [float(T.predicted_correlation(spec, x0, ref=x0, n=n)) for n in ns]
    return res


def numbers(res):
    return {"cnn_ns": res.cnn_ns, "fcn_ns": res.fcn_ns, "mean_corr_gbp_input": res.corr,
            "sd_corr_gbp_input": res.corr_sd, "theory_corr_first_image": res.theory}


def claims(res):
    c = res.corr["cnn"]
    mono = all(b > a for a, b in zip(c, c[1:]))
    gap = c[-1] - res.corr["fcn"][-1]
    dev = max(abs(a - b) for k in ("cnn", "fcn") for a, b in zip(res.corr[k], res.theory[k]))
    return [
        Claim("GBP looks more like the image as the number of filters grows",
              f"mean corr(GBP, x) over N={res.cnn_ns}: {', '.join(f'{v:.2f}' for v in c)}; holds if increasing",
              float(c[-1]), mono, NAME),
        Claim("A random FCN is still short of a random CNN at very large width",
              f"corr(GBP, x): CNN N={res.cnn_ns[-1]} minus FCN N={res.fcn_ns[-1]}; holds if > 0",
              float(gap), bool(gap > 0), NAME),
        Claim("(beyond the paper) the closed-form theory predicts the measured similarity",
              "largest |measured - predicted corr(GBP, x)|; holds if < 0.1 (images differ from the "
              "first, on which the theory curve is computed)", float(dev), bool(dev < 0.1), NAME),
    ]


def plot(res, fig):
    gs = fig.add_gridspec(3, max(len(res.cnn_ns), len(res.fcn_ns)) + 1)
    show(fig.add_subplot(gs[0, 0]), res.first_image, "input")
    for k, n in enumerate(res.cnn_ns):
        show(fig.add_subplot(gs[0, k + 1]), res.panels[f"cnn/{n}"], f"CNN GBP N={n}")
    for k, n in enumerate(res.fcn_ns):
        show(fig.add_subplot(gs[1, k + 1]), res.panels[f"fcn/{n}"], f"FCN GBP N={n}")
    ax = fig.add_subplot(gs[2, :])
    for kind, color in (("cnn", "C0"), ("fcn", "C3")):
        ns = res.cnn_ns if kind == "cnn" else res.fcn_ns
        ax.errorbar(ns, res.corr[kind], yerr=res.corr_sd[kind], fmt="o", color=color,
                    label=f"{kind.upper()} measured (mean over images)")
        ax.plot(ns, res.theory[kind], "-", color=color, alpha=0.6, label=f"{kind.upper()} theory (first image)")
    ax.set(xscale="log", xlabel="N", ylabel="corr(GBP, input)", ylim=(-0.05, 1.02))
    ax.legend(fontsize=7)
    fig.suptitle(TITLE, fontsize=10)
