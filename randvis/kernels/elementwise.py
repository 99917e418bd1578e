"""Fused elementwise kernels: the clipped ReLU with its mask, and the rules' backward.

Examples
--------
>>> import numpy as np
>>> y = np.array([[-1.0, 0.0, 2.0, 6.0, 7.0]])
>>> a, mask = clip_mask(y, 0.0, np.inf)                  # ReLU: strict mask 1(y > 0)
>>> a.tolist(), mask.tolist()
([[0.0, 0.0, 2.0, 6.0, 7.0]], [[False, False, True, True, True]])
>>> a6, mask6 = clip_mask(y, 0.0, 6.0)                   # ReLU6: mask 1(0 < y < 6)
>>> a6.tolist(), mask6.tolist()
([[0.0, 0.0, 2.0, 6.0, 6.0]], [[False, False, True, False, False]])
>>> g = np.array([[3.0, -4.0, -5.0, 1.0, 2.0]])  # (+ 0.0 turns the -0.0 of masked negatives into 0.0)
>>> (relu_backward(g, mask, True, False) + 0.0).tolist()  # saliency: R * 1(y > 0)
[[0.0, 0.0, -5.0, 1.0, 2.0]]
>>> (relu_backward(g, mask, False, True) + 0.0).tolist()  # DeconvNet: relu(R)
[[3.0, 0.0, 0.0, 1.0, 2.0]]
>>> (relu_backward(g, mask, True, True) + 0.0).tolist()   # GBP: relu(R) * 1(y > 0)
[[0.0, 0.0, 0.0, 1.0, 2.0]]
"""
from __future__ import annotations

import numpy as np

from ._numba import pjit, prange


@pjit
def _clip_mask(y, lo, hi, out, mask):
    # the clipped ReLU (ReLU: lo=0, hi=inf; ReLU6: lo=0, hi=6); mask = lo < y < hi
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


def clip_mask(y, lo, hi):
    """min(max(y, lo), hi) and the mask lo < y < hi, rows along axis 0 (ReLU for
    lo=0, hi=inf; ReLU6 for lo=0, hi=6); returns ``(a, mask)``."""
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
