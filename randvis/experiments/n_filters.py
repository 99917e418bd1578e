"""Experiment 2 -- number of filters: GBP over N for CNNs and FCNs, with theory.

GBP's correlation with the input rises with N towards the value
:func:`randvis.theory.predicted_correlation` gives; the FCN needs far more
units (it is still short of the CNN at N = 70,000). FCN maps at widths whose
first layer would exceed 2^26 weights come from the exact sampler
(:func:`randvis.montecarlo.sample_fcn_maps`), which has the network's
distribution. Every image has its own networks (seeded by its pixels), and
each is compared with its own prediction; the networks have one logit, the
fixed target the theory assumes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import theory as T
from ..images import preprocess
from ..montecarlo import simulate_maps
from ..stats import pearson
from ..claims import Claim, above, inside, judge
from ._base import show

NAME = "n_filters"
TITLE = "Number of filters / hidden units: GBP of random CNNs and FCNs"


@dataclass
class Result:
    cnn_ns: list
    fcn_ns: list
    corr: dict          # kind -> list over N of mean corr(GBP, x) over images
    corr_sd: dict
    theory: dict        # kind -> list over N of mean predicted corr over images
    per_image: dict     # kind -> list over N of lists over images: measured corr
    theory_per_image: dict  # kind -> list over N of lists over images: predicted corr
    panels: dict
    first_image: np.ndarray


def _spec(kind):
    return T.RandomNetSpec("cnn", 1, kernel_size=7) if kind == "cnn" else T.RandomNetSpec("fcn", 1)


def run(ctx):
    cnn_ns = [4, 16, 64, 256] if ctx.quick else [4, 16, 64, 256, 1024]
    fcn_ns = [16, 256, 4096, 70000]
    res = Result(cnn_ns, fcn_ns, {}, {}, {}, {}, {}, {}, ctx.images[0][1])
    for kind, ns in (("cnn", cnn_ns), ("fcn", fcn_ns)):
        vals, preds = [], []
        for name, img in ctx.images:
            x = preprocess(img)[0].astype(np.float64)
            # the closed form for this image (the networks' target is logit 0, fixed, as the theory assumes)
            nums, _ = ctx.cell(NAME, f"theory-{kind}-{name}", lambda kind=kind, x=x, ns=ns: (
                {"predicted": [float(v) for v in np.atleast_1d(T.predicted_correlation(_spec(kind), x, ref=x, n=ns))]},
                {}))
            preds.append(nums["predicted"])
        for n in ns:
            per_image = []
            for idx, (name, img) in enumerate(ctx.images):
                x = preprocess(img)[0].astype(np.float64)

                def compute(kind=kind, n=n, x=x, name=name, idx=idx):
                    sampler = "exact" if kind == "fcn" and n * x.size > (1 << 26) else "network"
                    _, maps = simulate_maps(kind, n, x, rng=ctx.draw_seed(NAME, kind, n, image=name),
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
        res.per_image[kind] = vals
        res.theory_per_image[kind] = [list(v) for v in zip(*preds)]
        res.corr[kind] = [float(np.mean(v)) for v in vals]
        res.corr_sd[kind] = [float(np.std(v)) for v in vals]
        res.theory[kind] = [float(np.mean(v)) for v in res.theory_per_image[kind]]
    return res


def numbers(res):
    return {"cnn_ns": res.cnn_ns, "fcn_ns": res.fcn_ns, "mean_corr_gbp_input": res.corr,
            "sd_corr_gbp_input": res.corr_sd, "mean_theory_corr": res.theory,
            "corr_gbp_input": res.per_image, "theory_corr": res.theory_per_image}


def claims(res):
    c = np.array(res.per_image["cnn"])       # (N, images)
    ns = res.cnn_ns
    rising = [judge(f"corr(GBP, x): N={b} minus N={a}", c[k + 1] - c[k], above(0.0))
              for k, (a, b) in enumerate(zip(ns, ns[1:]))]
    f = np.array(res.per_image["fcn"])
    gap = judge(f"corr(GBP, x): CNN N={ns[-1]} minus FCN N={res.fcn_ns[-1]}", c[-1] - f[-1], above(0.0))
    dev = [judge(f"measured minus predicted corr(GBP, x), {k.upper()} N={n}",
                 np.array(res.per_image[k][i]) - np.array(res.theory_per_image[k][i]), inside(-0.1, 0.1))
           for k in ("cnn", "fcn") for i, n in enumerate(res.cnn_ns if k == "cnn" else res.fcn_ns)]
    worst = max(dev, key=lambda v: abs(v.estimate))
    return [
        Claim("GBP looks more like the image as the number of filters grows",
              f"mean corr(GBP, x) over N={ns}: {', '.join(f'{v:.2f}' for v in res.corr['cnn'])}", rising, NAME,
              value=res.corr["cnn"][-1]),
        Claim("A random FCN is still short of a random CNN at very large width", "", [gap], NAME),
        Claim("(beyond the paper) the closed-form theory predicts the measured similarity",
              f"largest |measured - predicted|: {abs(worst.estimate):.3g} ({worst.what}); each image against "
              "its own prediction (theory.predicted_correlation)", dev, NAME, value=abs(worst.estimate)),
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
        ax.plot(ns, res.theory[kind], "-", color=color, alpha=0.6, label=f"{kind.upper()} theory (mean over images)")
    ax.set(xscale="log", xlabel="N", ylabel="corr(GBP, input)", ylim=(-0.05, 1.02))
    ax.legend(fontsize=7)
    fig.suptitle(TITLE, fontsize=10)
