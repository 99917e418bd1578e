"""Naive, readable versions of every kernel: the test oracle and the teaching text.

Each function loops over output positions and spells the formula out; nothing
here is fast and nothing here imports numba. Array conventions match the fast
kernels: images are ``(n, c, h, w)``, convolution weights ``(f, c, kh, kw)``
(cross-correlation, as every deep-learning framework computes "convolution"),
``pads`` is ``(top, bottom, left, right)`` and ``stride`` is ``(sh, sw)``.

Examples
--------
>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> w = np.ones((1, 1, 2, 2))
>>> conv2d_forward(x, w, None, (2, 2), (0, 0, 0, 0))[0, 0].tolist()
[[10.0, 18.0], [42.0, 50.0]]
>>> conv2d_backward_input(np.ones((1, 1, 2, 2)), w, (4, 4), (2, 2), (0, 0, 0, 0))[0, 0].sum()
np.float64(16.0)
"""
from __future__ import annotations

import numpy as np

from .padding import output_hw


def _padded(x, pads, fill=0.0):
    t, b, l, r = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=fill)


def conv2d_forward(x, w, b, stride, pads):
    """y[n, f, i, j] = b[f] + sum_{c,u,v} w[f, c, u, v] * xpad[n, c, i*sh + u, j*sw + v]."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    sh, sw = stride
    ho, wo = output_hw((h, wd), (kh, kw), stride, pads)
    xp = _padded(x, pads)
    y = np.zeros((n, f, ho, wo), dtype=x.dtype)
    for ni in range(n):
        for fi in range(f):
            for i in range(ho):
                for j in range(wo):
                    patch = xp[ni, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    y[ni, fi, i, j] = np.sum(patch * w[fi])
            if b is not None:
                y[ni, fi] += b[fi]
    return y


def conv2d_backward_input(g, w, x_hw, stride, pads):
    """Adjoint of the convolution in x: every output gradient is spread back over
    its window, weighted by the filter (``dx = sum place(g * w)``)."""
    n, f, ho, wo = g.shape
    _, c, kh, kw = w.shape
    sh, sw = stride
    t, b, l, r = pads
    h, wd = x_hw
    dxp = np.zeros((n, c, h + t + b, wd + l + r), dtype=g.dtype)
    for ni in range(n):
        for fi in range(f):
            for i in range(ho):
                for j in range(wo):
                    dxp[ni, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += g[ni, fi, i, j] * w[fi]
    return dxp[:, :, t:t + h, l:l + wd]


def conv2d_backward_weight(g, x, kernel_hw, stride, pads):
    """dw[f, c, u, v] = sum_{n,i,j} g[n, f, i, j] * xpad[n, c, i*sh + u, j*sw + v]."""
    n, f, ho, wo = g.shape
    c = x.shape[1]
    kh, kw = kernel_hw
    sh, sw = stride
    xp = _padded(x, pads)
    dw = np.zeros((f, c, kh, kw), dtype=g.dtype)
    for ni in range(n):
        for fi in range(f):
            for i in range(ho):
                for j in range(wo):
                    dw[fi] += g[ni, fi, i, j] * xp[ni, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
    return dw


def conv2d_backward_bias(g):
    """db[f] = sum over batch and positions of g[:, f]: the bias is added at every
    output position, so its gradient collects the signal of every position
    (one accumulator per filter, in float64, summed in loop order)."""
    n, f = g.shape[:2]
    flat = g.reshape(n, f, -1)
    db = np.zeros(f, dtype=np.float64)
    for fi in range(f):
        acc = 0.0
        for ni in range(n):
            for v in flat[ni, fi]:
                acc += float(v)
        db[fi] = acc
    return db.astype(g.dtype)


def maxpool2d_forward(x, size, stride, pads):
    """Max over each window, ignoring padding; ``switches`` holds the flat index
    ``ih * w + iw`` of the winner in its input plane. Ties go to the first
    maximum in row-major window order."""
    n, c, h, wd = x.shape
    kh, kw = size
    sh, sw = stride
    t, _, l, _ = pads
    ho, wo = output_hw((h, wd), size, stride, pads)
    y = np.zeros((n, c, ho, wo), dtype=x.dtype)
    sw_ = np.zeros((n, c, ho, wo), dtype=np.int32)
    for ni in range(n):
        for ci in range(c):
            for i in range(ho):
                for j in range(wo):
                    best, arg = None, -1
                    for u in range(kh):
                        for v in range(kw):
                            ih, iw = i * sh - t + u, j * sw - l + v
                            if 0 <= ih < h and 0 <= iw < wd:
                                val = x[ni, ci, ih, iw]
                                if best is None or val > best:
                                    best, arg = val, ih * wd + iw
                    y[ni, ci, i, j] = best
                    sw_[ni, ci, i, j] = arg
    return y, sw_


def maxpool2d_backward(g, switches, x_hw):
    """Route each output gradient to its window's argmax. ``g`` may hold several
    stacked batches (its batch a multiple of the switches' batch)."""
    n, c, ho, wo = g.shape
    m = switches.shape[0]
    h, wd = x_hw
    dx = np.zeros((n, c, h * wd), dtype=g.dtype)
    for ni in range(n):
        for ci in range(c):
            for i in range(ho):
                for j in range(wo):
                    dx[ni, ci, switches[ni % m, ci, i, j]] += g[ni, ci, i, j]
    return dx.reshape(n, c, h, wd)


def _window_counts(x_hw, size, stride, pads):
    h, wd = x_hw
    ones = np.ones((1, 1, h, wd))
    return avgpool_sum(ones, size, stride, pads)[0, 0]


def avgpool_sum(x, size, stride, pads):
    n, c, h, wd = x.shape
    kh, kw = size
    sh, sw = stride
    ho, wo = output_hw((h, wd), size, stride, pads)
    xp = _padded(x, pads)
    y = np.zeros((n, c, ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            y[:, :, i, j] = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].sum(axis=(2, 3))
    return y


def avgpool2d_forward(x, size, stride, pads):
    """Mean over each window's pixels inside the image (padding not counted,
    TensorFlow's convention)."""
    return avgpool_sum(x, size, stride, pads) / _window_counts(x.shape[2:], size, stride, pads).astype(x.dtype)


def avgpool2d_backward(g, x_hw, size, stride, pads):
    """Spread each output gradient evenly over its window's in-image pixels."""
    n, c, ho, wo = g.shape
    kh, kw = size
    sh, sw = stride
    t, b, l, r = pads
    h, wd = x_hw
    cnt = _window_counts(x_hw, size, stride, pads)
    dxp = np.zeros((n, c, h + t + b, wd + l + r), dtype=g.dtype)
    for i in range(ho):
        for j in range(wo):
            dxp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += (g[:, :, i, j] / cnt[i, j])[:, :, None, None]
    return dxp[:, :, t:t + h, l:l + wd]


def clip_mask(y, lo, hi):
    """The clipped ReLU min(max(y, lo), hi) and its forward mask lo < y < hi,
    one element at a time (ReLU: lo = 0, hi = inf; ReLU6: lo = 0, hi = 6).

    The mask is strict at both ends: at y == lo or y == hi the unit is flat, so
    its derivative is 0 there. Anything not above lo (NaN included) becomes lo.
    """
    lo, hi = y.dtype.type(lo), y.dtype.type(hi)
    out = np.empty_like(y)
    mask = np.zeros(y.shape, dtype=np.bool_)
    for i in np.ndindex(y.shape):
        v = y[i]
        if lo < v < hi:
            out[i], mask[i] = v, True
        elif v >= hi:
            out[i] = hi
        else:
            out[i] = lo
    return out, mask


def relu_backward(g, mask, forward_mask, backward_relu):
    """The paper's T = h(R) * dg(y)/dy for one rule: h = relu if backward_relu,
    the forward mask applied if forward_mask. ``g`` may stack several batches."""
    m = mask.shape[0]
    reps = g.shape[0] // m
    t = np.maximum(g, 0) if backward_relu else g.copy()
    if forward_mask:
        t = t * np.concatenate([mask] * reps, axis=0)
    return t.astype(g.dtype)


def _depthwise_planes(w):
    w = np.asarray(w)
    return w.reshape(w.shape[0], w.shape[-2], w.shape[-1])


def depthwise_forward(x, w, b, stride, pads):
    """Depthwise convolution, weights (c, 1, kh, kw): channel c is filtered by
    its own kernel, y[n, c, i, j] = b[c] + sum_{u,v} w[c, 0, u, v] * xpad[n, c, i*sh + u, j*sw + v]."""
    n, c, h, wd = x.shape
    w3 = _depthwise_planes(w)
    kh, kw = w3.shape[1:]
    sh, sw = stride
    ho, wo = output_hw((h, wd), (kh, kw), stride, pads)
    xp = _padded(x, pads)
    y = np.zeros((n, c, ho, wo), dtype=x.dtype)
    for ni in range(n):
        for ci in range(c):
            for i in range(ho):
                for j in range(wo):
                    y[ni, ci, i, j] = np.sum(xp[ni, ci, i * sh:i * sh + kh, j * sw:j * sw + kw] * w3[ci])
            if b is not None:
                y[ni, ci] += b[ci]
    return y


def depthwise_backward_input(g, w, x_hw, stride, pads):
    """Adjoint of the depthwise convolution in x: each output gradient is spread
    back over its window of its own channel, weighted by that channel's kernel.
    ``g`` may stack several batches (the weights do not depend on the sample)."""
    n, c, ho, wo = g.shape
    w3 = _depthwise_planes(w)
    kh, kw = w3.shape[1:]
    sh, sw = stride
    t, b, l, r = pads
    h, wd = x_hw
    dxp = np.zeros((n, c, h + t + b, wd + l + r), dtype=g.dtype)
    for ni in range(n):
        for ci in range(c):
            for i in range(ho):
                for j in range(wo):
                    dxp[ni, ci, i * sh:i * sh + kh, j * sw:j * sw + kw] += g[ni, ci, i, j] * w3[ci]
    return dxp[:, :, t:t + h, l:l + wd]


def depthwise_backward_weight(g, x, kernel_hw, stride, pads):
    """dw[c, 0, u, v] = sum_{n,i,j} g[n, c, i, j] * xpad[n, c, i*sh + u, j*sw + v]."""
    n, c, ho, wo = g.shape
    kh, kw = kernel_hw
    sh, sw = stride
    xp = _padded(x, pads)
    dw = np.zeros((c, 1, kh, kw), dtype=g.dtype)
    for ni in range(n):
        for ci in range(c):
            for i in range(ho):
                for j in range(wo):
                    dw[ci, 0] += g[ni, ci, i, j] * xp[ni, ci, i * sh:i * sh + kh, j * sw:j * sw + kw]
    return dw


def global_avgpool_forward(x):
    """(n, c, h, w) -> (n, c): the mean of every plane."""
    return x.sum(axis=(2, 3)) / x.dtype.type(x.shape[2] * x.shape[3])


def global_avgpool_backward(g, x_hw):
    """Adjoint of the global mean: g[n, c] / (h*w) on every pixel of plane (n, c)."""
    h, wd = x_hw
    return np.repeat(np.repeat((g / g.dtype.type(h * wd))[:, :, None, None], h, axis=2), wd, axis=3)
