"""
Local connections: CNN versus fully connected network
=====================================================

A fully connected first layer is a convolution whose single patch is the whole
image: ``p = d`` (all the pixels) instead of ``p = C k^2``. The closed form of
GBP's mean is the same, ``E[s] ∝ sum_j place_j(x_j / |x_j|)``; for the FCN it is
the image itself, ``x / |x|``. What differs is the noise. Each hidden unit's
contribution is a random vector in R^p, and the part of it along the patch is
what adds up to the image; the other ``p - 1`` directions are noise. The
relative error is ``c / sqrt(N)`` with ``c^2 = pi^2 p - 1`` per patch for the
FCN (:func:`randvis.theory.relative_error_constant`), so a fully connected
network needs ``N >> d`` hidden units where a CNN needs ``N >> C k^2`` filters.

This is the paper's *local connections* argument. We check it at equal width,
then ask :func:`randvis.theory.fcn_units_to_match` how wide the FCN must be to
match the CNN, and simulate that width. The FCN's maps are drawn exactly by
:func:`randvis.montecarlo.sample_fcn_maps`, which never builds the ``d x N``
weight matrix, so a million hidden units take a fraction of a second.
"""

import matplotlib.pyplot as plt
import numpy as np

from randvis.images import normalize_map, sample_image, to_hwc
from randvis.montecarlo import simulate_maps
from randvis.stats import pearson, relative_error
from randvis.theory import (RandomNetSpec, expected_map, fcn_units_to_match,
                            predicted_relative_error)

img = sample_image("grace_hopper", size=32)
x = (img - img.mean(axis=(1, 2), keepdims=True)).astype(np.float64)
d = x.size

# %%
# Equal width
# -----------
# The same N = 256 for both networks.

n = 256
spec_cnn, cnn = simulate_maps("cnn", n, x, rng=0, kernel_size=7)
spec_fcn, fcn = simulate_maps("fcn", n, x, rng=0, sampler="exact")
corr_cnn, corr_fcn = pearson(cnn["gbp"], x), pearson(fcn["gbp"], x)
print(f"N = {n}: GBP correlation with the input, CNN {corr_cnn:.3f}, FCN {corr_fcn:.3f}")
print(f"predicted relative error: CNN {predicted_relative_error(spec_cnn, x):.3f}, "
      f"FCN {predicted_relative_error(spec_fcn, x):.2f}")
assert corr_cnn > 0.6 and abs(corr_fcn) < 0.2

# %%
# How wide must the FCN be?
# -------------------------
# Both errors fall like ``N^(-1/2)``, so the FCN needs
# ``N_fcn = N (c_fcn / c_cnn)^2`` units to match a CNN with N filters.

n_match = int(np.ceil(fcn_units_to_match(spec_cnn, x)))
print(f"a {d}-pixel image: the FCN needs {n_match:,} hidden units to match {n} filters "
      f"({n_match / n:,.0f} times as many)")
assert n_match > 100 * n

widths = np.unique(np.geomspace(n, 4 * n_match, 6).astype(int))
draws = 4
err = np.zeros((len(widths), draws))
for a, m in enumerate(widths):
    for s in range(draws):
        spec, maps = simulate_maps("fcn", int(m), x, rng=100 * a + s, sampler="exact")
        err[a, s] = relative_error(maps["gbp"], expected_map(spec, x, "gbp"))
pred = predicted_relative_error(spec_fcn, x, widths)
rms = np.sqrt((err ** 2).mean(axis=1))
se = 0.5 * (err ** 2).std(axis=1, ddof=1) / np.sqrt(draws) / (err ** 2).mean(axis=1)
for m, r, p, e in zip(widths, rms, pred, se):
    print(f"FCN N = {m:>9,d}: RMS relative error {r:.3f}, predicted {p:.3f} (se {e:.3f})")
# the theory's mean squared error is exact: each width within four standard errors
assert np.all(np.abs(rms / pred - 1) < 4 * se)

# %%
# At the predicted width the FCN's GBP is as close to its mean as the CNN's.

spec_big, big = simulate_maps("fcn", n_match, x, rng=7, sampler="exact")
e_big = relative_error(big["gbp"], expected_map(spec_big, x, "gbp"))
e_cnn = predicted_relative_error(spec_cnn, x)
print(f"FCN with {n_match:,} units: relative error {e_big:.3f}; CNN with {n} filters: {e_cnn:.3f}")
assert abs(e_big / e_cnn - 1) < 0.1

fig = plt.figure(figsize=(12, 3.6))
gs = fig.add_gridspec(1, 5)
for b, (title, m) in enumerate([("input", img), (f"CNN GBP, N = {n}", cnn["gbp"]),
                                (f"FCN GBP, N = {n}", fcn["gbp"]),
                                (f"FCN GBP, N = {n_match:,}", big["gbp"])]):
    ax = fig.add_subplot(gs[0, b])
    ax.imshow(to_hwc(normalize_map(m)))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
ax = fig.add_subplot(gs[0, 4])
ax.loglog(widths, rms, "o", label="FCN, simulated")
ax.loglog(widths, pred, "k--", label="FCN, theory")
ax.axhline(e_cnn, color="tab:orange", label=f"CNN, N = {n}")
ax.set_xlabel("hidden units")
ax.set_ylabel("GBP relative error")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
