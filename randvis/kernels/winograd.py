"""3x3, stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3).

Each 2x2 block of outputs is computed from a 4x4 input tile ``d`` and the 3x3
filter ``g`` as

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, summed over channels)

with the standard matrices (Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks", 2016)

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

The channel sum of the elementwise products is, for each of the 16 positions
``k`` of the 4x4 transformed tile, a matrix product ``M[k] = U[k] @ V[k]``
with ``U[k]`` (f, c) the transformed filters and ``V[k]`` (c, tiles) the
transformed input: 16 GEMMs with 16/36 = 1/2.25 of the multiply-adds of the
im2col GEMM. numba does the three transforms; BLAS does the GEMMs, all 16 in one pass
of :func:`.gemm.matmul_many` (bits independent of thread counts).

The backward pass to the input of a stride-1 layer is the convolution of the
output gradient with the flipped, transposed filters. Flipping a 3x3 filter
permutes the rows and columns of ``G g G^T`` by (3, 1, 2, 0), so the backward
pass reuses the forward's transformed filters, transposed (:func:`flip_index`).

Rounding: every transform is a short sum (at most 4 terms per dimension) and
the halvings are exact, so the error of an output stays within a small multiple
of the unit roundoff times ``|A^T| [sum_c (|G||g||G^T|) * (|B^T||d||B|)] |A|``,
a few times the magnitude bound of the direct sum (see tests/test_kernels.py).
The work is split over independent outputs only, so results do not depend on
the thread count.

Examples
--------
>>> import numpy as np
>>> from randvis.kernels import reference
>>> rng = np.random.default_rng(0)
>>> x, w = rng.normal(size=(1, 16, 10, 10)), rng.normal(size=(16, 16, 3, 3))
>>> y = conv3x3(x, filter_transform(w), None, (1, 1, 1, 1))
>>> ref = reference.conv2d_forward(x, w, None, (1, 1), (1, 1, 1, 1))
>>> bool(np.allclose(y, ref))
True
>>> flip_index()[:4].tolist()                 # component (0, 0) of a flipped filter is (3, 3)
[15, 13, 14, 12]
"""
from __future__ import annotations

import numpy as np

from ._numba import pjit, prange
from .gemm import matmul_many

#: target size of one chunk's transformed input (16 x c x tiles), in numbers
CHUNK_FLOATS = 1 << 21

#: component k = 4 i + j of a flipped filter's transform is component
#: FLIP[k] of the original's
FLIP = np.array([4 * a + b for a in (3, 1, 2, 0) for b in (3, 1, 2, 0)])


def flip_index():
    """The permutation of the 16 transform components that flipping a 3x3 filter causes."""
    return FLIP.copy()


@pjit
def _filter_transform(w, u):
    # u[4 i + j, fi, ci] = (G w[fi, ci] G^T)[i, j]
    f, c = w.shape[0], w.shape[1]
    for fi in prange(f):
        for ci in range(c):
            g = w[fi, ci]
            # t = G g (4 x 3)
            t00 = g[0, 0]
            t01 = g[0, 1]
            t02 = g[0, 2]
            t10 = 0.5 * (g[0, 0] + g[1, 0] + g[2, 0])
            t11 = 0.5 * (g[0, 1] + g[1, 1] + g[2, 1])
            t12 = 0.5 * (g[0, 2] + g[1, 2] + g[2, 2])
            t20 = 0.5 * (g[0, 0] - g[1, 0] + g[2, 0])
            t21 = 0.5 * (g[0, 1] - g[1, 1] + g[2, 1])
            t22 = 0.5 * (g[0, 2] - g[1, 2] + g[2, 2])
            t30 = g[2, 0]
            t31 = g[2, 1]
            t32 = g[2, 2]
            # u = t G^T, row by row
            u[0, fi, ci] = t00
            u[1, fi, ci] = 0.5 * (t00 + t01 + t02)
            u[2, fi, ci] = 0.5 * (t00 - t01 + t02)
            u[3, fi, ci] = t02
            u[4, fi, ci] = t10
            u[5, fi, ci] = 0.5 * (t10 + t11 + t12)
            u[6, fi, ci] = 0.5 * (t10 - t11 + t12)
            u[7, fi, ci] = t12
            u[8, fi, ci] = t20
            u[9, fi, ci] = 0.5 * (t20 + t21 + t22)
            u[10, fi, ci] = 0.5 * (t20 - t21 + t22)
            u[11, fi, ci] = t22
            u[12, fi, ci] = t30
            u[13, fi, ci] = 0.5 * (t30 + t31 + t32)
            u[14, fi, ci] = 0.5 * (t30 - t31 + t32)
            u[15, fi, ci] = t32


@pjit
def _input_transform(x, b, ty0, ty1, tw, pt, pl, v):
    # v[4 i + j, ci, (ty - ty0) * tw + tx] = (B^T d B)[i, j],
    # d = xpad[b, ci, 2 ty - pt : 2 ty - pt + 4, 2 tx - pl : 2 tx - pl + 4] (zero outside).
    # Row by row over whole tile rows, so the inner loops run over contiguous data.
    _, c, h, w = x.shape
    wp = 2 * tw + 2  # padded columns a tile row reads
    lo = min(wp, max(0, pl))  # padded columns [lo, hi) hold image columns
    hi = max(lo, min(wp, w + pl))
    for ci in prange(c):
        rows = np.zeros((4, wp), dtype=x.dtype)
        q = np.empty((4, wp), dtype=x.dtype)
        for ty in range(ty0, ty1):
            base = (ty - ty0) * tw
            for r in range(4):
                iy = 2 * ty - pt + r
                if iy < 0 or iy >= h:
                    rows[r, lo:hi] = 0
                else:
                    rows[r, lo:hi] = x[b, ci, iy, lo - pl:hi - pl]
            for s in range(wp):  # q = B^T d on every column at once
                q[0, s] = rows[0, s] - rows[2, s]
                q[1, s] = rows[1, s] + rows[2, s]
                q[2, s] = rows[2, s] - rows[1, s]
                q[3, s] = rows[1, s] - rows[3, s]
            for i in range(4):  # (B^T d) B, tile by tile
                v0 = v[4 * i, ci]
                v1 = v[4 * i + 1, ci]
                v2 = v[4 * i + 2, ci]
                v3 = v[4 * i + 3, ci]
                qi = q[i]
                for tx in range(tw):
                    a0 = qi[2 * tx]
                    a1 = qi[2 * tx + 1]
                    a2 = qi[2 * tx + 2]
                    a3 = qi[2 * tx + 3]
                    v0[base + tx] = a0 - a2
                    v1[base + tx] = a1 + a2
                    v2[base + tx] = a2 - a1
                    v3[base + tx] = a1 - a3


@pjit
def _output_transform(m, bias, has_bias, b, ty0, ty1, tw, y):
    # y[b, fi, 2 ty + i, 2 tx + j] = (A^T m A)[i, j] + bias[fi], cropped to y's size
    _, f, ho, wo = y.shape
    for fi in prange(f):
        bv = bias[fi] if has_bias else 0.0
        srow = np.empty((8, tw), dtype=y.dtype)
        out = np.empty((2, 2 * tw), dtype=y.dtype)
        for ty in range(ty0, ty1):
            base = (ty - ty0) * tw
            for j in range(4):  # s = A^T m: row 0 in srow[j], row 1 in srow[4 + j]
                ma = m[j, fi, base:base + tw]
                mb = m[4 + j, fi, base:base + tw]
                mc = m[8 + j, fi, base:base + tw]
                md = m[12 + j, fi, base:base + tw]
                s0 = srow[j]
                s1 = srow[4 + j]
                for tx in range(tw):
                    s0[tx] = ma[tx] + mb[tx] + mc[tx]
                    s1[tx] = mb[tx] - mc[tx] - md[tx]
            for i in range(2):  # (s A) + bias
                s0 = srow[4 * i]
                s1 = srow[4 * i + 1]
                s2 = srow[4 * i + 2]
                s3 = srow[4 * i + 3]
                o = out[i]
                for tx in range(tw):
                    o[2 * tx] = s0[tx] + s1[tx] + s2[tx] + bv
                    o[2 * tx + 1] = s1[tx] - s2[tx] - s3[tx] + bv
            oy = 2 * ty
            y[b, fi, oy, :] = out[0, :wo]
            if oy + 1 < ho:
                y[b, fi, oy + 1, :] = out[1, :wo]


def filter_transform(w):
    """Transformed filters ``U`` (16, f, c) of 3x3 filters ``w`` (f, c, 3, 3)."""
    f, c = w.shape[:2]
    u = np.empty((16, f, c), dtype=w.dtype)
    _filter_transform(np.ascontiguousarray(w), u)
    return u


def conv3x3(x, u, bias, pads, transpose=False):
    """Stride-1 3x3 convolution of ``x`` (n, c, h, w) from transformed filters.

    ``u`` is :func:`filter_transform` of the filters, (16, f, c); with
    ``transpose`` it is the transform of filters (c, f, 3, 3) whose flipped,
    transposed versions are convolved (the backward pass to the input), and
    ``x`` then has f channels. ``pads`` = (top, bottom, left, right), any
    non-negative ints.
    """
    n, c, h, w = x.shape
    f = u.shape[2] if transpose else u.shape[1]
    t, bt, l, r = pads
    ho, wo = h + t + bt - 2, w + l + r - 2
    y = np.empty((n, f, ho, wo), dtype=x.dtype)
    if ho <= 0 or wo <= 0:
        return y
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    rows = max(1, min(th, CHUNK_FLOATS // (16 * max(c, f) * tw)))
    v = np.empty(16 * c * rows * tw, dtype=x.dtype)
    m = np.empty(16 * f * rows * tw, dtype=x.dtype)
    has_bias = bias is not None
    bias = np.zeros(1, dtype=x.dtype) if bias is None else np.ascontiguousarray(bias)
    mats = [u[k].T for k in FLIP] if transpose else list(u)
    for bi in range(n):
        for ty0 in range(0, th, rows):
            ty1 = min(th, ty0 + rows)
            npix = (ty1 - ty0) * tw
            vc = v[:16 * c * npix].reshape(16, c, npix)
            mc = m[:16 * f * npix].reshape(16, f, npix)
            _input_transform(x, bi, ty0, ty1, tw, t, l, vc)
            matmul_many([(mats[k], vc[k], mc[k]) for k in range(16)])
            _output_transform(mc, bias, has_bias, bi, ty0, ty1, tw, y)
    return y
