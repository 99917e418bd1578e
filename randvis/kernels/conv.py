"""2-D convolution lowered to GEMM: numba-parallel im2col / col2im + BLAS.

Columns are laid out ``(c*kh*kw, n*ho*wo)`` so that one GEMM serves the whole
batch (a stacked batch of backward signals makes the backward GEMM wider, which
runs closer to peak). numba does only the data movement; numpy's BLAS does the
multiply-adds.
"""
from __future__ import annotations

import numpy as np

from ._numba import jit, pjit, prange
from .padding import output_hw


@pjit
def _im2col(x, kh, kw, sh, sw, pt, pl, ho, wo, cols):
    n, c, h, w = x.shape
    kk = kh * kw
    for r in prange(c * kk):
        ci = r // kk
        ki = (r % kk) // kw
        kj = r % kw
        for b in range(n):
            for oh in range(ho):
                ih = oh * sh - pt + ki
                base = (b * ho + oh) * wo
                if ih < 0 or ih >= h:
                    for ow in range(wo):
                        cols[r, base + ow] = 0
                else:
                    for ow in range(wo):
                        iw = ow * sw - pl + kj
                        if iw >= 0 and iw < w:
                            cols[r, base + ow] = x[b, ci, ih, iw]
                        else:
                            cols[r, base + ow] = 0


@pjit
def _col2im(cols, kh, kw, sh, sw, pt, pl, ho, wo, dx):
    n, c, h, w = dx.shape
    kk = kh * kw
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for ki in range(kh):
            for kj in range(kw):
                r = ci * kk + ki * kw + kj
                for oh in range(ho):
                    ih = oh * sh - pt + ki
                    if ih < 0 or ih >= h:
                        continue
                    base = (b * ho + oh) * wo
                    for ow in range(wo):
                        iw = ow * sw - pl + kj
                        if iw >= 0 and iw < w:
                            dx[b, ci, ih, iw] += cols[r, base + ow]


@pjit
def _cn_to_nchw_bias(y2, bias, has_bias, out):
    # y2: (f, n*hw) -> out: (n, f, hw) (+ bias[f])
    n, f, hw = out.shape
    for fi in prange(f):
        bv = bias[fi] if has_bias else 0
        for b in range(n):
            for k in range(hw):
                out[b, fi, k] = y2[fi, b * hw + k] + bv


@pjit
def _nchw_to_cn(g, out):
    # g: (n, f, hw) -> out: (f, n*hw)
    n, f, hw = g.shape
    for fi in prange(f):
        for b in range(n):
            for k in range(hw):
                out[fi, b * hw + k] = g[b, fi, k]


def im2col(x, kernel_hw, stride, pads):
    """Unfold ``x`` (n, c, h, w) into columns (c*kh*kw, n*ho*wo)."""
    n, c, h, w = x.shape
    kh, kw = kernel_hw
    ho, wo = output_hw((h, w), kernel_hw, stride, pads)
    if kh == 1 and kw == 1 and stride == (1, 1) and pads == (0, 0, 0, 0):
        return to_cn(x)
    cols = np.empty((c * kh * kw, n * ho * wo), dtype=x.dtype)
    _im2col(x, kh, kw, stride[0], stride[1], pads[0], pads[2], ho, wo, cols)
    return cols


def col2im(cols, x_shape, kernel_hw, stride, pads):
    """Fold columns back into an image, summing overlaps (adjoint of im2col)."""
    n, c, h, w = x_shape
    ho, wo = output_hw((h, w), kernel_hw, stride, pads)
    dx = np.zeros(x_shape, dtype=cols.dtype)
    _col2im(cols, kernel_hw[0], kernel_hw[1], stride[0], stride[1], pads[0], pads[2], ho, wo, dx)
    return dx


def to_cn(g):
    """(n, f, h, w) -> (f, n*h*w) contiguous (a reshape when n == 1)."""
    n, f = g.shape[:2]
    g3 = np.ascontiguousarray(g).reshape(n, f, -1)
    if n == 1:
        return g3.reshape(f, -1)
    out = np.empty((f, g3.shape[0] * g3.shape[2]), dtype=g.dtype)
    _nchw_to_cn(g3, out)
    return out


def conv2d_forward(x, w, b, stride, pads):
    """y = conv(x, w) + b for x (n, c, h, w), w (f, c, kh, kw), b (f,) or None."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = output_hw((h, wd), (kh, kw), stride, pads)
    cols = im2col(x, (kh, kw), stride, pads)
    y2 = w.reshape(f, -1) @ cols
    out = np.empty((n, f, ho * wo), dtype=x.dtype)
    bias = b if b is not None else np.zeros(1, dtype=x.dtype)
    _cn_to_nchw_bias(y2, bias, b is not None, out)
    return out.reshape(n, f, ho, wo)


def conv2d_backward_input(g, w, x_hw, stride, pads):
    """dL/dx for dL/dy = g (n, f, ho, wo): col2im(w^T g)."""
    n, f = g.shape[:2]
    _, c, kh, kw = w.shape
    dcols = w.reshape(f, -1).T @ to_cn(g)
    return col2im(dcols, (n, c) + tuple(x_hw), (kh, kw), stride, pads)


def conv2d_backward_weight(g, x, kernel_hw, stride, pads):
    """dL/dw = g (f, n*ho*wo) @ im2col(x)^T, reshaped to (f, c, kh, kw)."""
    f = g.shape[1]
    c = x.shape[1]
    cols = im2col(x, kernel_hw, stride, pads)
    return (to_cn(g) @ cols.T).reshape(f, c, kernel_hw[0], kernel_hw[1])


def conv2d_backward_bias(g):
    """dL/db[f] = sum of g over batch and positions."""
    return to_cn(g).sum(axis=1)
