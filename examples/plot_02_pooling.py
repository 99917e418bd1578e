"""
Max-pooling switches and average pooling
========================================

**Max-pooling** keeps the largest value of each window. Its derivative is 1 for
the winning pixel and 0 for the others, so the backward pass sends each output's
signal to the pixel that won the forward pass. That pixel's position is the
*switch*; the forward pass records it, and all three methods (saliency,
DeconvNet, GBP) route through it. When two pixels tie, the maximum is not
differentiable there; randvis, like numpy's ``argmax``, picks the first maximum
in row-major order of the window.

**Average pooling** is linear: each output is the mean of its window, and the
backward pass spreads each output's signal evenly, ``g / k^2`` to each pixel
of the window (the adjoint of the mean).

When windows overlap (stride smaller than the size), a pixel can win several
windows; its backward signal is then the *sum* of theirs.
"""

import matplotlib.pyplot as plt
import numpy as np

from randvis.layers import AvgPool2d, MaxPool2d

rng = np.random.default_rng(1)

# %%
# Switches and ties
# -----------------
# An image with repeated values, pooled 2x2 with stride 2: the switches are the
# flat indices ``row * width + column`` of each window's winner.

x = np.array([[3., 1., 2., 2.],
              [0., 3., 2., 2.],
              [5., 4., 1., 0.],
              [4., 5., 0., 1.]])[None, None]
pool = MaxPool2d(2)
y, (switches, hw) = pool.forward(x)
print("pooled:\n", y[0, 0])
print("switches (flat index of each winner):\n", switches[0, 0])
# the top-left window ties between (0, 0) and (1, 1): the first in row-major order wins
assert switches[0, 0, 0, 0] == 0
# the top-right window is all 2s: its first pixel, (0, 2), wins
assert switches[0, 0, 0, 1] == 2
# bottom-left: 5 at (2, 0) and at (3, 1); (2, 0) comes first
assert switches[0, 0, 1, 0] == 2 * 4 + 0

g = np.array([[10., 20.], [30., 40.]])[None, None]
dx = pool.backward(g, (switches, hw))
print("max-pool backward of g = [[10, 20], [30, 40]]:\n", dx[0, 0])
assert dx.sum() == g.sum() and np.count_nonzero(dx) == 4

# %%
# The backward pass is the derivative (away from ties)
# ----------------------------------------------------
# With random values ties have probability zero, and the central finite
# difference of ``L = <pool(x), g>`` matches the switch routing exactly. Here the
# windows overlap (3x3, stride 2), so some pixels win twice.

xr = rng.normal(size=(1, 2, 9, 9))
pool3 = MaxPool2d(3, stride=2)
yr, cache = pool3.forward(xr)
gr = rng.normal(size=yr.shape)
dxr = pool3.backward(gr, cache)

h = 1e-6
fd = np.zeros_like(xr)
for idx in np.ndindex(xr.shape):
    e = np.zeros_like(xr)
    e[idx] = h
    fd[idx] = ((pool3.forward(xr + e)[0] - pool3.forward(xr - e)[0]) * gr).sum() / (2 * h)
wins = np.zeros(xr.shape, int)
np.add.at(wins.reshape(2, -1), (np.arange(2)[:, None], cache[0][0].reshape(2, -1)), 1)
print("pixels winning 0, 1, 2, ... windows:", np.bincount(wins.ravel()))
print("max |finite difference - backward| =", np.abs(fd - dxr).max())
assert wins.max() >= 2
assert np.allclose(fd, dxr, atol=1e-8)

# %%
# Average pooling: the adjoint of the mean
# ----------------------------------------
# ``<avgpool(x), g> = <x, avgpool^T(g)>`` for every x and g.

avg = AvgPool2d(2)
ya, hw_a = avg.forward(xr)
ga = rng.normal(size=ya.shape)
dxa = avg.backward(ga, hw_a)
lhs, rhs = float((ya * ga).sum()), float((xr * dxa).sum())
print(f"<avgpool(x), g> = {lhs:.12f},  <x, avgpool^T g> = {rhs:.12f}")
assert abs(lhs - rhs) < 1e-12 * max(1.0, abs(lhs))
# every pixel of a full window receives a quarter of that window's signal
assert np.allclose(dxa[0, 0, :2, :2], ga[0, 0, 0, 0] / 4)

# %%
# Max versus average, side by side
# --------------------------------
# The same backward signal (all ones) through both poolings of one image:
# max-pooling lights one pixel per window, chosen by the *image*; average
# pooling paints every window flat, whatever the image.

img = rng.normal(size=(1, 1, 8, 8))
ones_max = MaxPool2d(2).backward(np.ones((1, 1, 4, 4)), MaxPool2d(2).forward(img)[1])
ones_avg = AvgPool2d(2).backward(np.ones((1, 1, 4, 4)), AvgPool2d(2).forward(img)[1])
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, a, title in zip(axes, (img, ones_max, ones_avg),
                        ("input", "max-pool backward of ones", "avg-pool backward of ones")):
    ax.imshow(a[0, 0], cmap="gray")
    ax.set_title(title)
    ax.set_xticks(np.arange(-0.5, 8, 2), minor=False)
    ax.set_yticks(np.arange(-0.5, 8, 2), minor=False)
    ax.grid(color="tab:red", linewidth=1)
    ax.set_xticklabels([])
    ax.set_yticklabels([])
fig.tight_layout()
plt.show()
