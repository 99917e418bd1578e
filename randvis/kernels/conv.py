"""2-D convolution lowered to GEMM: numba-parallel im2col / col2im + BLAS.

The column matrix of a whole image is large (576 x 50176 floats = 116 MB for
VGG's conv1_2), so the kernels work on tiles of whole output rows whose column
buffer (about ``TILE_FLOATS`` numbers) stays in cache: im2col of a tile, one
GEMM writing straight into the output, and for the backward one GEMM into the
tile buffer followed by col2im of that tile. numba does only the data
movement; BLAS does the multiply-adds, through :func:`.gemm.matmul`, whose
blocks depend only on the shapes. Tile sizes depend only on the layer shape
too, so results do not depend on thread counts.

Examples
--------
>>> import numpy as np
>>> from randvis.kernels import reference
>>> rng = np.random.default_rng(0)
>>> x, w = rng.normal(size=(1, 3, 9, 9)), rng.normal(size=(4, 3, 3, 3))
>>> y = conv2d_forward(x, w, None, (2, 2), (1, 1, 1, 1))
>>> bool(np.allclose(y, reference.conv2d_forward(x, w, None, (2, 2), (1, 1, 1, 1))))
True
>>> cols = im2col(x, (3, 3), (2, 2), (1, 1, 1, 1))        # (c*kh*kw, n*ho*wo)
>>> cols.shape
(27, 25)
>>> z = rng.normal(size=cols.shape)                      # col2im is the adjoint of im2col
>>> lhs = np.sum(cols * z)
>>> rhs = np.sum(x * col2im(z, x.shape, (3, 3), (2, 2), (1, 1, 1, 1)))
>>> bool(np.isclose(lhs, rhs))
True
"""
from __future__ import annotations

import numpy as np

from . import winograd
from .gemm import matmul
from ._numba import pjit, prange
from .padding import output_hw

#: target size of one tile's column buffer, in numbers (4 MiB in float32)
TILE_FLOATS = 1 << 20
#: stride-1 layers with c >= f and at least this many output pixels take the
#: flipped-filter route in the backward pass (measured faster on VGG-16)
FLIP_MIN_PIXELS = 56 * 56
#: 3x3 stride-1 layers with at least this many input and output channels take
#: the Winograd route (:mod:`.winograd`) ...
WINOGRAD_MIN_CHANNELS = 16
#: ... when their output has at least this many pixels and the caller passes the
#: transformed filters (a layer keeps them between calls) ...
WINOGRAD_MIN_PIXELS = 10 * 10
#: ... or at least this many, where transforming the filters on the fly costs
#: little next to the convolution (measured on VGG-16's layers)
WINOGRAD_MIN_PIXELS_UNCACHED = 56 * 56


def winograd_suits(c, f, kernel_hw, stride, out_hw, cached=True):
    """Whether a convolution with this shape takes the Winograd F(2x2, 3x3) route.

    ``cached`` says whether the caller keeps the transformed filters
    (:func:`winograd.filter_transform`) between calls.
    """
    return (tuple(kernel_hw) == (3, 3) and tuple(stride) == (1, 1)
            and min(c, f) >= WINOGRAD_MIN_CHANNELS
            and out_hw[0] * out_hw[1] >= (WINOGRAD_MIN_PIXELS if cached else WINOGRAD_MIN_PIXELS_UNCACHED))


@pjit
def _im2col_rows(x, b, oh0, oh1, kh, kw, sh, sw, pt, pl, wo, cols):
    # cols[(ci, ki, kj), (oh - oh0) * wo + ow] = xpad[b, ci, oh*sh + ki, ow*sw + kj]
    _, c, h, w = x.shape
    kk = kh * kw
    for r in prange(c * kk):
        ci = r // kk
        ki = (r % kk) // kw
        kj = r % kw
        # output columns whose input column iw = ow*sw - pl + kj lies inside the image
        lo = min(wo, max(0, (pl - kj + sw - 1) // sw))
        hi = max(lo, min(wo, (w - 1 + pl - kj) // sw + 1))
        off = kj - pl
        for oh in range(oh0, oh1):
            ih = oh * sh - pt + ki
            row = cols[r, (oh - oh0) * wo:(oh - oh0 + 1) * wo]
            if ih < 0 or ih >= h:
                row[:] = 0
                continue
            row[:lo] = 0
            row[hi:] = 0
            if sw == 1:
                row[lo:hi] = x[b, ci, ih, lo + off:hi + off]
            else:
                for ow in range(lo, hi):
                    row[ow] = x[b, ci, ih, ow * sw + off]


@pjit
def _col2im_rows(cols, b, oh0, oh1, kh, kw, sh, sw, pt, pl, wo, dx):
    # dx[b, ci, oh*sh + ki - pt, ow*sw + kj - pl] += cols[(ci, ki, kj), (oh - oh0) * wo + ow]
    _, c, h, w = dx.shape
    kk = kh * kw
    for ci in prange(c):
        for ki in range(kh):
            for kj in range(kw):
                r = ci * kk + ki * kw + kj
                lo = min(wo, max(0, (pl - kj + sw - 1) // sw))
                hi = max(lo, min(wo, (w - 1 + pl - kj) // sw + 1))
                off = kj - pl
                for oh in range(oh0, oh1):
                    ih = oh * sh - pt + ki
                    if ih < 0 or ih >= h:
                        continue
                    base = (oh - oh0) * wo
                    if sw == 1:
                        dx[b, ci, ih, lo + off:hi + off] += cols[r, base + lo:base + hi]
                    else:
                        for ow in range(lo, hi):
                            dx[b, ci, ih, ow * sw + off] += cols[r, base + ow]


def _is_pointwise(kernel_hw, stride, pads):
    return tuple(kernel_hw) == (1, 1) and tuple(stride) == (1, 1) and tuple(pads) == (0, 0, 0, 0)


def _tiles(ho, wo, ckk):
    rows = max(1, min(ho, TILE_FLOATS // max(1, ckk * wo)))
    return [(r, min(ho, r + rows)) for r in range(0, ho, rows)], rows


def _buffer(ckk, rows, wo, dtype):
    return np.empty(ckk * rows * wo, dtype=dtype)


def _tile_cols(buf, x, b, oh0, oh1, kernel_hw, stride, pads, wo):
    cols = buf[:x.shape[1] * kernel_hw[0] * kernel_hw[1] * (oh1 - oh0) * wo]
    cols = cols.reshape(-1, (oh1 - oh0) * wo)
    _im2col_rows(x, b, oh0, oh1, kernel_hw[0], kernel_hw[1], stride[0], stride[1],
                 pads[0], pads[2], wo, cols)
    return cols


def im2col(x, kernel_hw, stride, pads):
    """Unfold ``x`` (n, c, h, w) into columns (c*kh*kw, n*ho*wo) (whole batch;
    the convolutions themselves use tiles of this matrix)."""
    n, c, h, w = x.shape
    ho, wo = output_hw((h, w), kernel_hw, stride, pads)
    cols = np.empty((c * kernel_hw[0] * kernel_hw[1], n * ho * wo), dtype=x.dtype)
    for b in range(n):
        _im2col_rows(x, b, 0, ho, kernel_hw[0], kernel_hw[1], stride[0], stride[1],
                     pads[0], pads[2], wo, cols[:, b * ho * wo:(b + 1) * ho * wo])
    return cols


def col2im(cols, x_shape, kernel_hw, stride, pads):
    """Fold columns (c*kh*kw, n*ho*wo) back into an image, summing overlaps
    (the adjoint of :func:`im2col`)."""
    n, c, h, w = x_shape
    ho, wo = output_hw((h, w), kernel_hw, stride, pads)
    dx = np.zeros(x_shape, dtype=cols.dtype)
    for b in range(n):
        _col2im_rows(np.ascontiguousarray(cols[:, b * ho * wo:(b + 1) * ho * wo]), b, 0, ho,
                     kernel_hw[0], kernel_hw[1], stride[0], stride[1], pads[0], pads[2], wo, dx)
    return dx


def conv2d_forward(x, w, b, stride, pads, wino=None):
    """y = conv(x, w) + b for x (n, c, h, w), w (f, c, kh, kw), b (f,) or None.

    ``wino``, optional, is ``winograd.filter_transform(w)``, kept by the caller
    between calls; see :func:`winograd_suits` for when it is used.
    """
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = output_hw((h, wd), (kh, kw), stride, pads)
    if winograd_suits(c, f, (kh, kw), stride, (ho, wo), cached=wino is not None):
        if wino is None:
            wino = winograd.filter_transform(w)
        return winograd.conv3x3(x, wino, b, pads)
    w2 = w.reshape(f, -1)
    out = np.empty((n, f, ho * wo), dtype=x.dtype)
    bias = None if b is None else b.reshape(f, 1)
    if _is_pointwise((kh, kw), stride, pads):
        for bi in range(n):
            matmul(w2, x[bi].reshape(c, -1), out=out[bi])
            if bias is not None:
                out[bi] += bias
        return out.reshape(n, f, ho, wo)
    tiles, rows = _tiles(ho, wo, w2.shape[1])
    buf = _buffer(w2.shape[1], rows, wo, x.dtype)
    for bi in range(n):
        for oh0, oh1 in tiles:
            cols = _tile_cols(buf, x, bi, oh0, oh1, (kh, kw), stride, pads, wo)
            dst = out[bi, :, oh0 * wo:oh1 * wo]
            matmul(w2, cols, out=dst)
            if bias is not None:
                dst += bias
    return out.reshape(n, f, ho, wo)


def conv2d_backward_input(g, w, x_hw, stride, pads, wino=None):
    """dL/dx for dL/dy = g (n, f, ho, wo): col2im(w^T g), tile by tile.

    At stride 1 the adjoint is also a plain convolution of g with the
    flipped, transposed filters and padding k - 1 - p. Its GEMM has inner
    dimension f*kh*kw instead of f, which runs faster when the layer does not
    widen (c >= f) and the image is large, so those layers take that route.
    3x3 layers that suit Winograd (:func:`winograd_suits`) convolve that way,
    reusing the forward's transformed filters ``wino`` when given.
    """
    n, f, ho, wo = g.shape
    _, c, kh, kw = w.shape
    t, b, l, r = pads
    if max(pads) <= 2 and winograd_suits(c, f, (kh, kw), stride, (ho, wo), cached=wino is not None):
        if wino is None:
            wino = winograd.filter_transform(w)
        return winograd.conv3x3(g, wino, None, (2 - t, 2 - b, 2 - l, 2 - r), transpose=True)
    if (tuple(stride) == (1, 1) and c >= f and ho * wo >= FLIP_MIN_PIXELS
            and max(t, b) < kh and max(l, r) < kw and (kh, kw) != (1, 1)):
        wt = np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        return conv2d_forward(g, wt, None, (1, 1), (kh - 1 - t, kh - 1 - b, kw - 1 - l, kw - 1 - r))
    w2t = w.reshape(f, -1).T
    g3 = np.ascontiguousarray(g).reshape(n, f, ho * wo)
    if _is_pointwise((kh, kw), stride, pads):
        dx = np.empty((n, c, ho * wo), dtype=g.dtype)
        for bi in range(n):
            matmul(w2t, g3[bi], out=dx[bi])
        return dx.reshape((n, c) + tuple(x_hw))
    dx = np.zeros((n, c) + tuple(x_hw), dtype=g.dtype)
    tiles, rows = _tiles(ho, wo, w2t.shape[0])
    buf = _buffer(w2t.shape[0], rows, wo, g.dtype)
    for bi in range(n):
        for oh0, oh1 in tiles:
            dcols = buf[:w2t.shape[0] * (oh1 - oh0) * wo].reshape(w2t.shape[0], -1)
            matmul(w2t, g3[bi, :, oh0 * wo:oh1 * wo], out=dcols)
            _col2im_rows(dcols, bi, oh0, oh1, kh, kw, stride[0], stride[1], pads[0], pads[2], wo, dx)
    return dx


def conv2d_backward_weight(g, x, kernel_hw, stride, pads):
    """dL/dw[f] = sum over batch and tiles of g_tile @ cols_tile^T, (f, c, kh, kw)."""
    n, f, ho, wo = g.shape
    c = x.shape[1]
    ckk = c * kernel_hw[0] * kernel_hw[1]
    g3 = np.ascontiguousarray(g).reshape(n, f, ho * wo)
    dw = np.zeros((f, ckk), dtype=g.dtype)
    tiles, rows = _tiles(ho, wo, ckk)
    buf = _buffer(ckk, rows, wo, x.dtype)
    for bi in range(n):
        for oh0, oh1 in tiles:
            cols = _tile_cols(buf, x, bi, oh0, oh1, kernel_hw, stride, pads, wo)
            dw += matmul(g3[bi, :, oh0 * wo:oh1 * wo], cols.T)
    return dw.reshape(f, c, kernel_hw[0], kernel_hw[1])


def conv2d_backward_bias(g):
    """dL/db[f] = sum of g over batch and positions."""
    return g.sum(axis=(0, 2, 3))
