"""
Why GBP recovers the image: the closed form beside the simulation
=================================================================

In the random three-layer CNN ``f_k(x) = sum_{i,j} V_{k,ij} relu(w_i . x_j)``
(N filters ``w_i ~ N(0, s_w^2 I)``, head ``V ~ N(0, s_v^2)``), GBP's map is

.. math::

    s = \\sum_{i,j} \\mathrm{relu}(V_{k,ij})\\, 1(w_i \\cdot x_j > 0)\\, \\mathrm{place}_j(w_i).

Two Gaussian facts give its mean: ``E relu(v) = s_v / sqrt(2 pi)`` and
``E[w 1(w . u > 0)] = s_w u / (sqrt(2 pi) |u|)``. The filters that *pass* a
patch lean towards it, on average exactly along ``x_j / |x_j|``. Hence

.. math::

    E[s] = \\frac{N s_v s_w}{2\\pi} \\sum_j \\mathrm{place}_j\\!\\left(\\frac{x_j}{|x_j|}\\right),

an image built from the normalised patches of the input: **GBP recovers the
image whatever the weights are**. The N filters are independent, so the
fluctuation around the mean is a sum of N independent terms: relative to the
mean it shrinks like ``N^(-1/2)``, with a constant that
:func:`randvis.theory.predicted_relative_error` computes exactly.

Here we simulate networks of growing width and put each beside the theory.
"""

import matplotlib.pyplot as plt
import numpy as np

from randvis.images import normalize_map, sample_image, to_hwc
from randvis.montecarlo import simulate_maps
from randvis.stats import fit_loglog_slope, pearson, relative_error
from randvis.theory import expected_map, predicted_relative_error

img = sample_image("grace_hopper", size=32)
x = (img - img.mean(axis=(1, 2), keepdims=True)).astype(np.float64)
ns = [4, 16, 64, 256, 1024]
draws = 4

errors = np.zeros((len(ns), draws))
maps = {}
for a, n in enumerate(ns):
    for s in range(draws):
        spec, m = simulate_maps("cnn", n, x, rng=1000 * a + s, kernel_size=7)
        mean = expected_map(spec, x, "gbp")
        errors[a, s] = relative_error(m["gbp"], mean)
        if s == 0:
            maps[n] = m["gbp"]
predicted = predicted_relative_error(spec, x, np.array(ns))
rms = np.sqrt((errors ** 2).mean(axis=1))

print(" N      measured RMS   predicted")
for n, r, p in zip(ns, rms, predicted):
    print(f"{n:5d}   {r:10.4f}   {p:10.4f}")
fit = fit_loglog_slope(ns, rms)
print(fit)

# %%
# The checks. The theory predicts the *mean squared* relative error exactly, so
# the mean of the four squared errors estimates it without bias; its standard
# error comes from the spread between the draws (and is halved for the square
# root). Each width must agree within four standard errors, and the slope of
# the log-log fit must be the theory's -1/2.

ratio = rms / predicted
se = 0.5 * (errors ** 2).std(axis=1, ddof=1) / np.sqrt(draws) / (errors ** 2).mean(axis=1)
print("measured / predicted:", np.round(ratio, 3), " standard errors:", np.round(se, 3))
assert np.all(np.abs(ratio - 1) < 4 * se)
assert abs(fit.slope + 0.5) < 0.05
corr_wide = pearson(maps[ns[-1]], expected_map(spec, x, "gbp"))
print(f"correlation of the N = {ns[-1]} map with the closed form: {corr_wide:.3f}")
assert corr_wide > 0.9

# %%
# The map at each width beside the closed form, then the law.

fig = plt.figure(figsize=(13, 5.5))
gs = fig.add_gridspec(2, len(ns) + 1)
ax = fig.add_subplot(gs[0, 0])
ax.imshow(img.transpose(1, 2, 0))
ax.set_title("input")
ax.axis("off")
for b, n in enumerate(ns):
    ax = fig.add_subplot(gs[0, b + 1])
    ax.imshow(to_hwc(normalize_map(maps[n])))
    ax.set_title(f"GBP, N = {n}")
    ax.axis("off")
ax = fig.add_subplot(gs[1, 0])
ax.imshow(to_hwc(normalize_map(expected_map(spec, x, "gbp"))))
ax.set_title("closed form E[s]")
ax.axis("off")
ax = fig.add_subplot(gs[1, 2:])
ax.loglog(ns, errors, "o", color="tab:blue", alpha=0.4, markersize=4)
ax.loglog(ns, rms, "o-", color="tab:blue", label="simulation (RMS of 4 draws)")
ax.loglog(ns, predicted, "k--", label="theory: c / sqrt(N)")
ax.set_xlabel("N (filters)")
ax.set_ylabel("|s - E s| / |E s|")
ax.legend()
fig.tight_layout()
plt.show()
