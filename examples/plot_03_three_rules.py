"""
The three rules as h and g
==========================

Saliency, DeconvNet and Guided Backpropagation differ **only at the ReLUs**.
At a ReLU with forward pre-activation ``y`` and incoming backward signal ``R``
the paper writes all three as ``T = h(R) * dg(y)/dy``:

=========  ==========  ==========  ==========================
method     h           g           T
=========  ==========  ==========  ==========================
saliency   identity    relu        ``R * 1(y > 0)``
DeconvNet  relu        identity    ``relu(R)``
GBP        relu        relu        ``relu(R) * 1(y > 0)``
=========  ==========  ==========  ==========================

Every other layer uses its ordinary adjoint. We first look at one ReLU, then
at a whole random network, and find where the maps coincide, and why.
"""

import matplotlib.pyplot as plt
import numpy as np

import randvis
from randvis.images import normalize_map, sample_image, to_hwc
from randvis.layers import Conv2d, Dense, Flatten, ReLU
from randvis.network import Sequential
from randvis.stats import pearson

# %%
# One ReLU, one backward signal
# -----------------------------
# Nine units: three with the ReLU open (y > 0), three closed, three at the kink
# (y = 0, closed: masks are strict); each with a positive, a negative or a zero
# signal.

y = np.array([2.0, 2.0, 2.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0]).reshape(1, 1, 1, 9)
R = np.array([1.5, -1.5, 0.0] * 3).reshape(1, 1, 1, 9)
relu = ReLU()
_, mask = relu.forward(y)
T = {name: relu.backward(R, mask, name).ravel() for name in randvis.METHODS}
print(" y:       ", y.ravel())
print(" R:       ", R.ravel())
for name, t in T.items():
    print(f" {name:9s}", t)

assert np.array_equal(T["saliency"], R.ravel() * (y.ravel() > 0))
assert np.array_equal(T["deconvnet"], np.maximum(R.ravel(), 0))
assert np.array_equal(T["gbp"], np.maximum(R.ravel(), 0) * (y.ravel() > 0))

# %%
# At one unit the rules agree in two situations, readable off the table:
#
# * where the signal is positive (``R > 0``), h is the identity for all rules,
#   so **saliency = GBP**;
# * where the ReLU is open (``y > 0``), g' = 1 for all rules, so
#   **DeconvNet = GBP**.

pos, open_ = R.ravel() > 0, y.ravel() > 0
assert np.array_equal(T["saliency"][pos], T["gbp"][pos])
assert np.array_equal(T["deconvnet"][open_], T["gbp"][open_])

# %%
# A whole network
# ---------------
# The paper's random three-layer CNN: conv (N filters, 7x7) -> ReLU -> dense
# head. One forward pass serves all three rules; their backward signals are
# stacked and sent back together.

img = sample_image("grace_hopper", size=48)
x = (img - img.mean(axis=(1, 2), keepdims=True))[None].astype(np.float64)
rng = np.random.default_rng(0)
N, k = 32, 7
w = rng.normal(size=(N, 3, k, k)) / k
V = rng.normal(size=(10, N * 48 * 48)) * 0.01


def net_from(w, V, conv_bias=None):
    return Sequential([Conv2d(w, conv_bias, padding="same"), ReLU(), Flatten(), Dense(V)],
                      (3, 48, 48), np.float64)


net = net_from(w, V)
maps = randvis.visualize(net, x, target=0)

# %%
# Why the maps look as they do: with one-hot target k, the signal arriving at
# the ReLUs is the head's row ``V[k]``, which does not depend on the image. So
#
# * **DeconvNet** (no forward mask) never sees the image: its map is
#   ``sum relu(V) place(w)``, the same for every input;
# * **GBP** keeps ``relu(V)`` only where the filter matched the patch
#   (``w . x_j > 0``); summed over many filters this recovers the image;
# * **saliency** keeps the signed ``V``, and the signs cancel into noise.
#
# The first point is an exact identity: another image gives the same DeconvNet
# map, to the last bit.

other = np.random.default_rng(5).normal(size=x.shape)
maps_other = randvis.visualize(net, other, target=0)
assert np.array_equal(maps["deconvnet"], maps_other["deconvnet"])
assert not np.allclose(maps["gbp"], maps_other["gbp"])

# %%
# Where the whole maps coincide
# -----------------------------
# Make every backward signal at the ReLUs positive (a non-negative head) and
# saliency equals GBP; open every ReLU (a large positive bias in the
# convolution) and DeconvNet equals GBP.

m_pos = randvis.visualize(net_from(w, np.abs(V)), x, target=0)
m_open = randvis.visualize(net_from(w, V, conv_bias=np.full(N, 1e3)), x, target=0)
print("non-negative head: max |saliency - GBP|  =", np.abs(m_pos["saliency"] - m_pos["gbp"]).max())
print("all ReLUs open:    max |DeconvNet - GBP| =", np.abs(m_open["deconvnet"] - m_open["gbp"]).max())
assert np.array_equal(m_pos["saliency"], m_pos["gbp"])
assert np.array_equal(m_open["deconvnet"], m_open["gbp"])

corr = {name: pearson(maps[name][0], x[0]) for name in randvis.METHODS}
print("correlation with the input:", {n: round(c, 3) for n, c in corr.items()})
assert corr["gbp"] > 0.5 > abs(corr["saliency"])

# %%
# The three maps of the random network, and GBP of the two special networks:

fig, axes = plt.subplots(1, 6, figsize=(15, 2.9))
shown = [("input", img[None]), ("saliency", maps["saliency"]), ("DeconvNet", maps["deconvnet"]),
         ("GBP", maps["gbp"]), ("GBP = saliency\n(head >= 0)", m_pos["gbp"]),
         ("GBP = DeconvNet\n(all ReLUs open)", m_open["gbp"])]
for ax, (title, m) in zip(axes, shown):
    ax.imshow(to_hwc(normalize_map(m[0])))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()
plt.show()
