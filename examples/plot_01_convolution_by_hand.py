"""
A convolution layer by hand
===========================

A convolution layer computes, for every filter ``f`` and output position
``(i, j)``, the dot product of the filter with the image patch under it:

.. math::

    y_{f,i,j} = b_f + \\sum_{c,u,v} w_{f,c,u,v}\\, x_{c,\\, s i + u - p,\\, s j + v - p}.

Written as loops this is six nested ``for``; written as linear algebra it is
one matrix product. *im2col* copies every patch into a column of a matrix
``X_col`` of shape ``(C k^2, H_out W_out)``; the filters are the rows of
``W`` of shape ``(F, C k^2)``; then ``Y = W X_col + b``. This is how randvis
(and most frameworks) run convolutions: numba fills ``X_col``, BLAS multiplies.

The backward pass to the input is the **adjoint** of this linear map:
``dx = col2im(W^T g)``, where *col2im* adds every column back onto the pixels
of its patch (overlapping patches sum). Here we build both by hand, compare
them with randvis and with the naive loop of :mod:`randvis.kernels.reference`,
and check the backward against finite differences.
"""

import matplotlib.pyplot as plt
import numpy as np

from randvis.kernels import reference
from randvis.layers import Conv2d

rng = np.random.default_rng(0)
C, H, W, F, k = 2, 7, 7, 3, 3
x = rng.normal(size=(1, C, H, W))
w = rng.normal(size=(F, C, k, k))
b = rng.normal(size=F)
pad = k // 2  # "same" padding for an odd kernel at stride 1

# %%
# im2col and one matrix product
# -----------------------------
# ``sliding_window_view`` gives every k x k window of the padded image; reshaping
# puts each patch, flattened in the order (c, u, v), into one column.

xp = np.pad(x[0], ((0, 0), (pad, pad), (pad, pad)))
windows = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # (C, H, W, k, k)
cols = windows.transpose(0, 3, 4, 1, 2).reshape(C * k * k, H * W)
y_hand = (w.reshape(F, -1) @ cols + b[:, None]).reshape(1, F, H, W)

layer = Conv2d(w, b, stride=1, padding="same")
y_randvis, cache = layer.forward(x)
y_loops = reference.conv2d_forward(x, w, b, (1, 1), (pad, pad, pad, pad))

print("im2col matrix:", cols.shape, " filters:", w.reshape(F, -1).shape)
print("max |hand - randvis| =", np.abs(y_hand - y_randvis).max())
print("max |hand - loops|   =", np.abs(y_hand - y_loops).max())
assert np.allclose(y_hand, y_randvis, rtol=1e-12, atol=1e-12)
assert np.allclose(y_hand, y_loops, rtol=1e-12, atol=1e-12)

# %%
# The backward pass is the adjoint
# --------------------------------
# With ``L = <y, g>`` for a backward signal ``g``, ``dL/dx = col2im(W^T g)``. The
# adjoint identity ``<conv(x), g> = <x, conv^T(g)>`` (no bias) holds for *every*
# pair ``x, g`` exactly, so it is a sharp test of a hand-written backward.

g = rng.normal(size=(1, F, H, W))
dcols = w.reshape(F, -1).T @ g[0].reshape(F, -1)            # (C k^2, H W)
dxp = np.zeros_like(xp)
dpatches = dcols.reshape(C, k, k, H, W)
for u in range(k):
    for v in range(k):
        dxp[:, u:u + H, v:v + W] += dpatches[:, u, v]          # col2im: patches add up
dx_hand = dxp[None, :, pad:pad + H, pad:pad + W]

dx_randvis = layer.backward(g, cache)
y0, _ = Conv2d(w, None, padding="same").forward(x)
lhs, rhs = float((y0 * g).sum()), float((x * dx_hand).sum())
print(f"<conv(x), g> = {lhs:.12f}\n<x, conv^T g> = {rhs:.12f}")
assert abs(lhs - rhs) <= 1e-10 * abs(lhs)
assert np.allclose(dx_hand, dx_randvis, rtol=1e-12, atol=1e-12)

# %%
# Finite differences
# ------------------
# The central difference ``(L(x + h e) - L(x - h e)) / 2h`` of the loss along one
# pixel ``e`` is exact for a linear map up to rounding, so every pixel of the
# backward can be checked.

h = 1e-5
fd = np.zeros_like(x)
for idx in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[idx] = h
    fd[idx] = ((layer.forward(x + e)[0] * g).sum() - (layer.forward(x - e)[0] * g).sum()) / (2 * h)
err = np.abs(fd - dx_hand).max() / np.abs(dx_hand).max()
print(f"largest finite-difference error, relative to max |dx|: {err:.1e}")
assert err < 1e-8

# %%
# What the matrices look like
# ---------------------------
# Each column of ``X_col`` is one patch; each pixel appears in up to ``k^2``
# columns, which is why col2im must *add*.

fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
axes[0].imshow(x[0, 0], cmap="gray")
axes[0].set_title("input, channel 0")
axes[1].imshow(cols, aspect="auto", cmap="gray")
axes[1].set_title(f"im2col: {cols.shape[0]} x {cols.shape[1]}")
axes[2].imshow(y_hand[0, 0], cmap="gray")
axes[2].set_title("output, filter 0")
axes[3].scatter(fd.ravel(), dx_hand.ravel(), s=8)
axes[3].set_xlabel("finite difference")
axes[3].set_ylabel("col2im(W^T g)")
axes[3].set_title("backward vs finite differences")
for ax in axes[:3]:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
