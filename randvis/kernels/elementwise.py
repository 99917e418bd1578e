"""Fused elementwise kernels: bias + ReLU with its mask, and the rule backward.
Examples
--------
>>> import numpy as np
>>> y, mask = bias_relu(np.array([[[-1.0, 0.0, 2.0]]]), None)
>>> y.tolist(), mask.tolist()                            # strict mask: 1(y > 0)
([[[0.0, 0.0, 2.0]]], [[[False, False, True]]])
>>> g = np.array([[[3.0, -4.0, -5.0]]])          # (+ 0.0 turns the -0.0 of masked negatives into 0.0)
>>> (relu_backward(g, mask, True, False) + 0.0).tolist()  # saliency: R * 1(y > 0)
[[[0.0, 0.0, -5.0]]]
>>> (relu_backward(g, mask, False, True) + 0.0).tolist()  # DeconvNet: relu(R)
[[[3.0, 0.0, 0.0]]]
>>> (relu_backward(g, mask, True, True) + 0.0).tolist()   # GBP: relu(R) * 1(y > 0)
[[[0.0, 0.0, 0.0]]]
"""
from __future__ import annotations

import numpy as np

from ._numba import pjit, prange


@pjit
def _bias_relu(y, bias, has_bias, out, mask):
    # y, out, mask: (n, c, m)
    n, c, m = y.shape
    for p in prange(n * c):
        b = p // c
        ci = p % c
        bv = bias[ci] if has_bias else 0
        for k in range(m):
            z = y[b, ci, k] + bv
            if z > 0:
                out[b, ci, k] = z
                mask[b, ci, k] = True
            else:
                out[b, ci, k] = 0
                mask[b, ci, k] = False


@pjit
def _clip_mask(y, lo, hi, out, mask):
    # ReLU-like with an upper clip (ReLU6: lo=0, hi=6); mask = lo < y < hi
    n, m = y.shape
    for b in prange(n):
        for k in range(m):
            z = y[b, k]
            if z > lo:
                if z < hi:
                    out[b, k] = z
                    mask[b, k] = True
                else:
                    out[b, k] = hi
                    mask[b, k] = False
            else:
                out[b, k] = lo
                mask[b, k] = False


@pjit
def _rule_backward(g, mask, forward_mask, backward_relu, out):
    # g, out: (n, m); mask: (n0, m) with n a multiple of n0
    n, m = g.shape
    n0 = mask.shape[0]
    for b in prange(n):
        mb = b % n0
        for k in range(m):
            t = g[b, k]
            if backward_relu and not (t > 0):
                t = t * 0
            if forward_mask and not mask[mb, k]:
                t = t * 0
            out[b, k] = t


def bias_relu(y, b):
    """ReLU(y + b) with b per channel (axis 1) or None; returns ``(a, mask)``
    where ``mask = (y + b > 0)`` is the forward ReLU mask."""
    y = np.ascontiguousarray(y)
    shp = y.shape
    y3 = y.reshape(shp[0], shp[1], -1)
    out = np.empty_like(y3)
    mask = np.empty(y3.shape, dtype=np.bool_)
    bias = b if b is not None else np.zeros(1, dtype=y.dtype)
    _bias_relu(y3, bias, b is not None, out, mask)
    return out.reshape(shp), mask.reshape(shp)


def clip_mask(y, lo, hi):
    """min(max(y, lo), hi) and the mask lo < y < hi (ReLU6 for lo=0, hi=6)."""
    y = np.ascontiguousarray(y)
    y2 = y.reshape(y.shape[0], -1)
    out = np.empty_like(y2)
    mask = np.empty(y2.shape, dtype=np.bool_)
    _clip_mask(y2, y.dtype.type(lo), y.dtype.type(hi), out, mask)
    return out.reshape(y.shape), mask.reshape(y.shape)


def relu_backward(g, mask, forward_mask, backward_relu):
    """One rule's backward through a ReLU-like unit: ``T = h(R) * mask`` with
    h = relu when ``backward_relu`` and the mask used when ``forward_mask``.
    ``g``'s batch may be a multiple of the mask's (stacked signals)."""
    g = np.ascontiguousarray(g)
    g2 = g.reshape(g.shape[0], -1)
    out = np.empty_like(g2)
    _rule_backward(g2, mask.reshape(mask.shape[0], -1), bool(forward_mask), bool(backward_relu), out)
    return out.reshape(g.shape)
