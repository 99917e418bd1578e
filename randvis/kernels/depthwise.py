"""Depthwise 2-D convolution: every channel filtered by its own kernel.

``y[n, c, i, j] = b[c] + sum_{u,v} w[c, u, v] * xpad[n, c, i*sh + u, j*sw + v]``

with weights stored as PyTorch does for ``groups == channels``:
``(c, 1, kh, kw)``. There is no channel mixing, so the work splits into
independent (image, channel) planes: the forward and the backward to the input
run one plane per parallel iteration (every output element is written by one
iteration only, so results do not depend on the thread count); the backward to
the weights runs one channel per iteration and sums over the batch in a fixed
order. Each plane is first copied into a zero-padded buffer (a thread-local
array; any padding, including TensorFlow's asymmetric "same", and any stride
work), so the inner loops run over whole output rows without bounds checks and
vectorise for stride 1. Accumulation is in the arrays' own dtype for the
forward and the backward to the input, in float64 for the weight gradient (a
long sum over the batch and all positions, kept as partial sums per output
column so that the inner loop stays vectorisable).

Examples
--------
>>> import numpy as np
>>> x = np.arange(18.0).reshape(1, 2, 3, 3)
>>> w = np.stack([np.ones((1, 3, 3)), -np.ones((1, 3, 3))])     # (2, 1, 3, 3)
>>> depthwise_forward(x, w, None, (1, 1), (0, 0, 0, 0)).ravel().tolist()
[36.0, -117.0]
"""
from __future__ import annotations

import numpy as np

from ._numba import jit, pjit, prange
from .padding import output_hw


@jit
def _pad_plane(x, bi, ci, pt, pl, buf):
    # buf[r, q] = x[bi, ci, r - pt, q - pl] inside the image, 0 in the padding
    h, wd = x.shape[2], x.shape[3]
    hp, wp = buf.shape
    for r in range(hp):
        ih = r - pt
        if ih < 0 or ih >= h:
            for q in range(wp):
                buf[r, q] = 0
        else:
            for q in range(wp):
                iw = q - pl
                buf[r, q] = x[bi, ci, ih, iw] if iw >= 0 and iw < wd else 0


@pjit
def _dw_forward(x, w, b, has_bias, sh, sw, pt, pl, y):
    # x (n, c, h, wd), w (c, kh, kw), b (c,), y (n, c, ho, wo)
    n, c = x.shape[0], x.shape[1]
    ho, wo = y.shape[2], y.shape[3]
    kh, kw = w.shape[1], w.shape[2]
    hp, wp = (ho - 1) * sh + kh, (wo - 1) * sw + kw
    for p in prange(n * c):
        bi = p // c
        ci = p % c
        buf = np.empty((hp, wp), dtype=x.dtype)
        _pad_plane(x, bi, ci, pt, pl, buf)
        acc = np.empty(wo, dtype=y.dtype)
        for i in range(ho):
            acc[:] = 0
            for ki in range(kh):
                row = buf[i * sh + ki]
                for kj in range(kw):
                    wv = w[ci, ki, kj]
                    if sw == 1:
                        for j in range(wo):
                            acc[j] += wv * row[j + kj]
                    else:
                        for j in range(wo):
                            acc[j] += wv * row[j * sw + kj]
            bv = b[ci] if has_bias else 0
            for j in range(wo):
                y[bi, ci, i, j] = acc[j] + bv


@pjit
def _dw_backward_input(g, w, sh, sw, pt, pl, dx):
    # g (n, c, ho, wo), w (c, kh, kw), dx (n, c, h, wd): scatter into a padded
    # plane, then keep its in-image part
    n, c, ho, wo = g.shape
    h, wd = dx.shape[2], dx.shape[3]
    kh, kw = w.shape[1], w.shape[2]
    hp, wp = (ho - 1) * sh + kh, (wo - 1) * sw + kw
    for p in prange(n * c):
        bi = p // c
        ci = p % c
        buf = np.zeros((hp, wp), dtype=g.dtype)
        for i in range(ho):
            grow = g[bi, ci, i]
            for ki in range(kh):
                row = buf[i * sh + ki]
                for kj in range(kw):
                    wv = w[ci, ki, kj]
                    if sw == 1:
                        for j in range(wo):
                            row[j + kj] += wv * grow[j]
                    else:
                        for j in range(wo):
                            row[j * sw + kj] += wv * grow[j]
        for ih in range(h):
            r = ih + pt
            for iw in range(wd):
                q = iw + pl
                dx[bi, ci, ih, iw] = buf[r, q] if r < hp and q < wp else 0


@pjit
def _dw_backward_weight(g, x, sh, sw, pt, pl, dw):
    # dw[c, u, v] = sum_{n,i,j} g[n, c, i, j] * xpad[n, c, i*sh + u, j*sw + v];
    # partial sums per (u, v, j) in float64, summed over j at the end
    n, c, ho, wo = g.shape
    kh, kw = dw.shape[1], dw.shape[2]
    hp, wp = (ho - 1) * sh + kh, (wo - 1) * sw + kw
    for ci in prange(c):
        buf = np.empty((hp, wp), dtype=x.dtype)
        acc = np.zeros((kh, kw, wo), dtype=np.float64)
        for bi in range(n):
            _pad_plane(x, bi, ci, pt, pl, buf)
            for i in range(ho):
                grow = g[bi, ci, i]
                for ki in range(kh):
                    row = buf[i * sh + ki]
                    for kj in range(kw):
                        a = acc[ki, kj]
                        if sw == 1:
                            for j in range(wo):
                                a[j] += grow[j] * row[j + kj]
                        else:
                            for j in range(wo):
                                a[j] += grow[j] * row[j * sw + kj]
        for ki in range(kh):
            for kj in range(kw):
                dw[ci, ki, kj] = acc[ki, kj].sum()


def _plane_weights(w):
    """(c, 1, kh, kw) or (c, kh, kw) -> contiguous (c, kh, kw)."""
    w = np.asarray(w)
    if w.ndim == 4:
        w = w.reshape(w.shape[0], w.shape[2], w.shape[3])
    return np.ascontiguousarray(w)


def depthwise_forward(x, w, b, stride, pads):
    """y = depthwise_conv(x, w) + b for x (n, c, h, w), w (c, 1, kh, kw), b (c,) or None."""
    x = np.ascontiguousarray(x)
    n, c, h, wd = x.shape
    w3 = _plane_weights(w).astype(x.dtype, copy=False)
    ho, wo = output_hw((h, wd), w3.shape[1:], stride, pads)
    y = np.empty((n, c, ho, wo), dtype=x.dtype)
    bias = np.zeros(1, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    _dw_forward(x, w3, bias, b is not None, stride[0], stride[1], pads[0], pads[2], y)
    return y


def depthwise_backward_input(g, w, x_hw, stride, pads):
    """dL/dx (n, c, h, w) for dL/dy = g (n, c, ho, wo); g's batch may stack
    several signals (the weights are per channel, not per sample)."""
    g = np.ascontiguousarray(g)
    w3 = _plane_weights(w).astype(g.dtype, copy=False)
    output_hw(tuple(x_hw), w3.shape[1:], stride, pads)  # validates the window fits
    dx = np.empty(g.shape[:2] + tuple(x_hw), dtype=g.dtype)
    _dw_backward_input(g, w3, stride[0], stride[1], pads[0], pads[2], dx)
    return dx


def depthwise_backward_weight(g, x, kernel_hw, stride, pads):
    """dL/dw (c, 1, kh, kw) for dL/dy = g (n, c, ho, wo) and the input x (n, c, h, w)."""
    g = np.ascontiguousarray(g)
    x = np.ascontiguousarray(x, dtype=g.dtype)
    c = x.shape[1]
    dw = np.empty((c,) + tuple(kernel_hw), dtype=g.dtype)
    _dw_backward_weight(g, x, stride[0], stride[1], pads[0], pads[2], dw)
    return dw.reshape(c, 1, kernel_hw[0], kernel_hw[1])


def depthwise_backward_bias(g):
    """dL/db[c] = sum of g over batch and positions."""
    return g.sum(axis=(0, 2, 3))
