"""Max pooling with argmax switches and average pooling, forward and backward.

Parallel over (image, channel) planes: each plane is written by one thread,
so overlapping windows never race and results do not depend on thread count.

Examples
--------
>>> import numpy as np
>>> x = np.array([[[[1., 5., 2., 2.], [3., 4., 2., 2.]]]])      # (1, 1, 2, 4): two 2x2 windows
>>> y, switches = maxpool2d_forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
>>> y.ravel().tolist(), switches.ravel().tolist()              # a tie goes to the first maximum
([5.0, 2.0], [1, 2])
>>> maxpool2d_backward(np.ones_like(y), switches, (2, 4))[0, 0].tolist()
[[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
>>> avgpool2d_backward(np.ones_like(y), (2, 4), (2, 2), (2, 2), (0, 0, 0, 0))[0, 0].tolist()
[[0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]]
"""
from __future__ import annotations

import numpy as np

from ._numba import pjit, prange
from .padding import output_hw


@pjit
def _maxpool_fwd(x, kh, kw, sh, sw, pt, pl, y, switches):
    n, c, h, w = x.shape
    _, _, ho, wo = y.shape
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for oh in range(ho):
            for ow in range(wo):
                best = x[b, ci, 0, 0]
                arg = -1
                for ki in range(kh):
                    ih = oh * sh - pt + ki
                    if ih < 0 or ih >= h:
                        continue
                    for kj in range(kw):
                        iw = ow * sw - pl + kj
                        if iw < 0 or iw >= w:
                            continue
                        v = x[b, ci, ih, iw]
                        if arg < 0 or v > best:
                            best = v
                            arg = ih * w + iw
                y[b, ci, oh, ow] = best
                switches[b, ci, oh, ow] = arg


@pjit
def _maxpool2x2_fwd(x, y, switches):
    # the common 2x2, stride-2, unpadded case: every window lies inside the image
    n, c, h, w = x.shape
    _, _, ho, wo = y.shape
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for oh in range(ho):
            r = 2 * oh
            for ow in range(wo):
                q = 2 * ow
                best = x[b, ci, r, q]
                arg = r * w + q
                v = x[b, ci, r, q + 1]
                if v > best:
                    best = v
                    arg = r * w + q + 1
                v = x[b, ci, r + 1, q]
                if v > best:
                    best = v
                    arg = (r + 1) * w + q
                v = x[b, ci, r + 1, q + 1]
                if v > best:
                    best = v
                    arg = (r + 1) * w + q + 1
                y[b, ci, oh, ow] = best
                switches[b, ci, oh, ow] = arg


@pjit
def _maxpool2x2_bwd(g, switches, w, dx):
    # dx: (n, c, h*w), written whole (no zero-fill first): each window's four
    # pixels get 0 except the switch; pixels of an odd last row/column, which no
    # window covers, get 0
    n, c, ho, wo = g.shape
    m = switches.shape[0]
    hw = dx.shape[2]
    h = hw // w
    for p in prange(n * c):
        b = p // c
        ci = p % c
        sb = b % m
        for oh in range(ho):
            r = 2 * oh * w
            for ow in range(wo):
                q = r + 2 * ow
                dx[b, ci, q] = 0
                dx[b, ci, q + 1] = 0
                dx[b, ci, q + w] = 0
                dx[b, ci, q + w + 1] = 0
                dx[b, ci, switches[sb, ci, oh, ow]] = g[b, ci, oh, ow]
            if w > 2 * wo:
                dx[b, ci, r + w - 1] = 0
                dx[b, ci, r + 2 * w - 1] = 0
        if h > 2 * ho:
            for k in range((h - 1) * w, h * w):
                dx[b, ci, k] = 0


def _is_2x2(size, stride, pads):
    return tuple(size) == (2, 2) and tuple(stride) == (2, 2) and tuple(pads) == (0, 0, 0, 0)


@pjit
def _maxpool_bwd(g, switches, dx):
    # dx: (n, c, h*w); g batch may be a multiple of the switches' batch
    n, c, ho, wo = g.shape
    m = switches.shape[0]
    for p in prange(n * c):
        b = p // c
        ci = p % c
        sb = b % m
        for oh in range(ho):
            for ow in range(wo):
                dx[b, ci, switches[sb, ci, oh, ow]] += g[b, ci, oh, ow]


@pjit
def _avgpool_fwd(x, kh, kw, sh, sw, pt, pl, y):
    n, c, h, w = x.shape
    _, _, ho, wo = y.shape
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for oh in range(ho):
            for ow in range(wo):
                acc = x[b, ci, 0, 0] * 0
                cnt = 0
                for ki in range(kh):
                    ih = oh * sh - pt + ki
                    if ih < 0 or ih >= h:
                        continue
                    for kj in range(kw):
                        iw = ow * sw - pl + kj
                        if iw < 0 or iw >= w:
                            continue
                        acc += x[b, ci, ih, iw]
                        cnt += 1
                y[b, ci, oh, ow] = acc / cnt


@pjit
def _avgpool_bwd(g, kh, kw, sh, sw, pt, pl, dx):
    n, c, h, w = dx.shape
    _, _, ho, wo = g.shape
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for oh in range(ho):
            for ow in range(wo):
                cnt = 0
                for ki in range(kh):
                    ih = oh * sh - pt + ki
                    if ih >= 0 and ih < h:
                        for kj in range(kw):
                            iw = ow * sw - pl + kj
                            if iw >= 0 and iw < w:
                                cnt += 1
                share = g[b, ci, oh, ow] / cnt
                for ki in range(kh):
                    ih = oh * sh - pt + ki
                    if ih < 0 or ih >= h:
                        continue
                    for kj in range(kw):
                        iw = ow * sw - pl + kj
                        if iw >= 0 and iw < w:
                            dx[b, ci, ih, iw] += share


def maxpool2d_forward(x, size, stride, pads):
    """Max over windows; returns ``(y, switches)`` with switches the int32 flat
    index ``ih * w + iw`` of each window's first maximum (row-major order)."""
    n, c, h, w = x.shape
    ho, wo = output_hw((h, w), size, stride, pads)
    y = np.empty((n, c, ho, wo), dtype=x.dtype)
    switches = np.empty((n, c, ho, wo), dtype=np.int32)
    if _is_2x2(size, stride, pads):
        _maxpool2x2_fwd(x, y, switches)
        return y, switches
    _maxpool_fwd(x, size[0], size[1], stride[0], stride[1], pads[0], pads[2], y, switches)
    return y, switches


def maxpool2d_backward(g, switches, x_hw, window=None):
    """Route g to the switches; g's batch may be a multiple of the switches'.

    ``window``, optional, is the forward's ``(size, stride, pads)``; 2x2
    stride-2 unpadded windows, which never overlap, take a faster kernel.
    """
    n, c, ho, wo = g.shape
    if window is not None and _is_2x2(*window):
        dx = np.empty((n, c, x_hw[0] * x_hw[1]), dtype=g.dtype)
        _maxpool2x2_bwd(np.ascontiguousarray(g), switches, x_hw[1], dx)
        return dx.reshape(n, c, x_hw[0], x_hw[1])
    dx = np.zeros((n, c, x_hw[0] * x_hw[1]), dtype=g.dtype)
    _maxpool_bwd(np.ascontiguousarray(g), switches, dx)
    return dx.reshape(n, c, x_hw[0], x_hw[1])


def avgpool2d_forward(x, size, stride, pads):
    """Mean over each window's in-image pixels (padding not counted)."""
    n, c, h, w = x.shape
    ho, wo = output_hw((h, w), size, stride, pads)
    y = np.empty((n, c, ho, wo), dtype=x.dtype)
    _avgpool_fwd(x, size[0], size[1], stride[0], stride[1], pads[0], pads[2], y)
    return y


def avgpool2d_backward(g, x_hw, size, stride, pads):
    """Spread g evenly over each window's in-image pixels."""
    n, c = g.shape[:2]
    dx = np.zeros((n, c) + tuple(x_hw), dtype=g.dtype)
    _avgpool_bwd(np.ascontiguousarray(g), size[0], size[1], stride[0], stride[1], pads[0], pads[2], dx)
    return dx
