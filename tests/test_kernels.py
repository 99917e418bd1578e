"""The numba kernels against the naive references in ``randvis.kernels.reference``.

Random configurations are drawn once, at import time, from a fixed seed; each is
its own test id. Tolerances are elementwise forward-error bounds
(``conftest.assert_within_rounding``): a floating point sum of L terms t_i
satisfies |fl(sum) - sum| <= gamma_L * sum|t_i| with gamma_L ~= L * u (u = eps/2
the unit roundoff), whatever the summation order (Higham, *Accuracy and
Stability of Numerical Algorithms*, ch. 3/4). So we compute the "magnitude"
sum|t_i| of every output with the reference applied to absolute values and
require |fast - ref| <= 2 (L + 1) u * magnitude: both the kernel and the
reference are within gamma_L * magnitude of the exact value (float64 vs
float64), or the float32 kernel is within gamma_L(u32) and the float64
reference is negligibly close (float32 vs float64 reference computed from the
same float32 inputs). This is a guaranteed bound (no test can fail by bad luck,
whatever order BLAS sums in), yet tight: it is relative to each element's own
magnitude, not to the largest output, and on these configurations the observed
errors reach 10-30% of it. Kernels that only move or select data (im2col, max
pooling, ReLU masks, clipping) must match exactly.

The elementwise kernels (clipping with its mask, the rules' backward) see
arrays, not windows: they are parametrized by shape, dtype and build instead.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import randvis.kernels as K
import randvis.kernels.conv as conv_module
from conftest import (DTYPES, PAD_KINDS, Geometry, assert_matches_reference, assert_within_rounding,
                      at_thread_counts, draw_geometries, geometry_id, use_kernel_build)
from randvis.kernels import reference as R
from randvis.kernels.padding import as_pair, output_hw, resolve_padding

pytestmark = pytest.mark.usefixtures("parallel_builds")

SEED = 20240611
N_RANDOM = 60


# --------------------------------------------------------------------------- configs

def _extra_configs(start, pool):
    """Hand-picked corner cases: the pointwise (1x1, stride 1, no padding) GEMM
    path, 1x1 images, windows as large as the padded image, asymmetric 'same'."""
    specs = [
        (2, 3, 4, 5, 6, 1, 1, 1, 1, "valid", "valid"),
        (1, 2, 3, 7, 4, 1, 1, 1, 1, "int", 0),
        (3, 1, 2, 1, 1, 1, 1, 1, 1, "same", "same"),
        (1, 2, 2, 7, 7, 4, 4, 2, 2, "same", "same"),     # total pad 3 -> (1, 2)
        (2, 2, 1, 6, 9, 2, 4, 1, 3, "same", "same"),     # (0, 1) rows, (1, 2) cols
        (1, 1, 2, 5, 5, 5, 5, 3, 3, "valid", "valid"),   # window = whole image
        (2, 2, 2, 3, 4, 5, 6, 2, 1, "quad", ((1, 1), (0, 2))),  # window = padded image
    ]
    if not pool:
        specs.append((1, 2, 2, 3, 3, 2, 2, 1, 1, "int", 3))  # windows entirely in padding
    out = []
    for j, (n, c, f, h, w, kh, kw, sh, sw, kind, padding) in enumerate(specs):
        for dtype in DTYPES:
            out.append(Geometry(n, c, f, h, w, kh, kw, sh, sw, kind, padding, dtype,
                                seed=start + 2 * j + (dtype is np.float64)))
    return out


# random draws: the padding kind, dtype and kernel height cycle (so every kind x
# dtype and every kernel size 1..11 occurs); everything else is random
CONV_CONFIGS = draw_geometries(SEED, N_RANDOM, pool=False) + _extra_configs(500, pool=False)
POOL_CONFIGS = draw_geometries(SEED + 1, N_RANDOM, pool=True) + _extra_configs(700, pool=True)

conv_configs = pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=geometry_id)
pool_configs = pytest.mark.parametrize("cfg", POOL_CONFIGS, ids=geometry_id)


@pytest.mark.parametrize("configs", [CONV_CONFIGS, POOL_CONFIGS], ids=["conv", "pool"])
def test_configurations_cover_the_required_space(configs):
    rnd = configs[:N_RANDOM]
    assert len(rnd) >= 50
    assert {c.kh for c in rnd} == set(range(1, 12))
    assert {c.kw for c in rnd} == set(range(1, 12))
    assert {c.sh for c in rnd} == {1, 2, 3} and {c.sw for c in rnd} == {1, 2, 3}
    assert {c.n for c in rnd} == {1, 2, 3, 4}
    assert {(c.kind, c.dtype) for c in rnd} == set(itertools.product(PAD_KINDS, DTYPES))
    assert {c.h % 2 for c in rnd} == {0, 1} and {c.w % 2 for c in rnd} == {0, 1}
    same = [c.pads for c in rnd if c.kind == "same"]
    assert any(t != b or l != r for t, b, l, r in same), "no asymmetric 'same' padding drawn"
    assert any(max(c.pads) > 0 for c in rnd if c.kind in ("int", "pair", "quad"))
    # every configuration fits
    for c in configs:
        assert min(c.out_hw) >= 1


# --------------------------------------------------------------------------- helpers

def _normal(rng, shape, dtype):
    return rng.normal(size=shape).astype(dtype)


def _conv_inputs(cfg):
    rng = cfg.rng(SEED)
    x = _normal(rng, (cfg.n, cfg.c, cfg.h, cfg.w), cfg.dtype)
    w = _normal(rng, (cfg.f, cfg.c, cfg.kh, cfg.kw), cfg.dtype)
    b = _normal(rng, (cfg.f,), cfg.dtype)
    ho, wo = cfg.out_hw
    g = _normal(rng, (cfg.n, cfg.f, ho, wo), cfg.dtype)
    return x, w, b, g


def _check_forward(cfg, x, w, b):
    got = K.conv2d_forward(x, w, b, cfg.stride, cfg.pads)
    assert_matches_reference(got, R.conv2d_forward, (x, w, b), (cfg.stride, cfg.pads),
                             cfg.c * cfg.kh * cfg.kw + 1, cfg.dtype)


def _check_backward_input(cfg, w, g):
    got = K.conv2d_backward_input(g, w, (cfg.h, cfg.w), cfg.stride, cfg.pads)
    assert got.shape == (cfg.n, cfg.c, cfg.h, cfg.w)
    # each dx element sums at most f * kh * kw products
    assert_matches_reference(got, R.conv2d_backward_input, (g, w), ((cfg.h, cfg.w), cfg.stride, cfg.pads),
                             cfg.f * cfg.kh * cfg.kw, cfg.dtype)


def _check_backward_weight(cfg, x, g, extra_terms=0):
    got = K.conv2d_backward_weight(g, x, cfg.kernel, cfg.stride, cfg.pads)
    assert got.shape == (cfg.f, cfg.c, cfg.kh, cfg.kw)
    ho, wo = cfg.out_hw
    assert_matches_reference(got, R.conv2d_backward_weight, (g, x), (cfg.kernel, cfg.stride, cfg.pads),
                             cfg.n * ho * wo + extra_terms, cfg.dtype)


# --------------------------------------------------------------------------- convolution

@conv_configs
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_conv2d_forward(cfg, with_bias):
    x, w, b, _ = _conv_inputs(cfg)
    _check_forward(cfg, x, w, b if with_bias else None)


FLIP_CONFIGS = [c for c in CONV_CONFIGS if c.stride == (1, 1) and c.c >= c.f and c.kh * c.kw > 1
                and max(c.pads[:2]) < c.kh and max(c.pads[2:]) < c.kw]


@pytest.mark.parametrize("cfg, route", [pytest.param(c, "col2im", id=f"col2im-{geometry_id(c)}")
                                        for c in CONV_CONFIGS]
                         + [pytest.param(c, "flipped", id=f"flipped-{geometry_id(c)}") for c in FLIP_CONFIGS])
def test_conv2d_backward_input(cfg, route, monkeypatch):
    """Both routes equal the reference: col2im of w^T g, and at stride 1 the
    convolution with flipped, transposed filters (taken by large layers only,
    forced here on the small configurations)."""
    if route == "flipped":
        monkeypatch.setattr(conv_module, "FLIP_MIN_PIXELS", 1)
    _, w, _, g = _conv_inputs(cfg)
    _check_backward_input(cfg, w, g)


def test_flipped_filter_route_is_exercised():
    assert len(FLIP_CONFIGS) >= 4


@conv_configs
def test_conv2d_backward_weight(cfg):
    x, _, _, g = _conv_inputs(cfg)
    _check_backward_weight(cfg, x, g)


@conv_configs
def test_conv2d_backward_bias(cfg):
    _, _, _, g = _conv_inputs(cfg)
    got = K.conv2d_backward_bias(g)
    ho, wo = cfg.out_hw
    assert got.shape == (cfg.f,)
    assert_matches_reference(got, R.conv2d_backward_bias, (g,), (), cfg.n * ho * wo, cfg.dtype)
    # the adjoint of adding a bias at every position: <g, broadcast(b)> = <db, b>
    g64 = g.astype(np.float64)
    b = np.random.default_rng(cfg.f).normal(size=cfg.f)
    lhs = float(np.sum(g64 * b[None, :, None, None]))
    rhs = float(np.sum(got.astype(np.float64) * b))
    scale = float(np.sum(np.abs(g64) * np.abs(b)[None, :, None, None]))
    assert abs(lhs - rhs) <= (cfg.n * ho * wo + cfg.f) * np.finfo(cfg.dtype).eps * scale


def _im2col_reference(x, kernel_hw, stride, pads):
    n, c, h, w = x.shape
    kh, kw = kernel_hw
    sh, sw = stride
    ho, wo = output_hw((h, w), kernel_hw, stride, pads)
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    cols = np.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            cols[:, u, v] = xp[:, :, u:u + sh * (ho - 1) + 1:sh, v:v + sw * (wo - 1) + 1:sw].transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * ho * wo)


@conv_configs
def test_im2col_matches_explicit_unfolding(cfg):
    x, _, _, _ = _conv_inputs(cfg)
    got = K.im2col(x, cfg.kernel, cfg.stride, cfg.pads)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, _im2col_reference(x, cfg.kernel, cfg.stride, cfg.pads))


@conv_configs
def test_im2col_col2im_are_adjoint(cfg):
    """<im2col(x), C> == <x, col2im(C)> in float64, to rounding: both sides sum the
    same products sum_ij |x_i| |C_j| (N = C.size of them) in different orders."""
    rng = cfg.rng(SEED)
    x = rng.normal(size=(cfg.n, cfg.c, cfg.h, cfg.w))
    ho, wo = cfg.out_hw
    cmat = rng.normal(size=(cfg.c * cfg.kh * cfg.kw, cfg.n * ho * wo))
    lhs = np.sum(K.im2col(x, cfg.kernel, cfg.stride, cfg.pads) * cmat)
    folded = K.col2im(cmat, x.shape, cfg.kernel, cfg.stride, cfg.pads)
    assert folded.shape == x.shape and folded.dtype == np.float64
    rhs = np.sum(x * folded)
    mag = np.sum(np.abs(x) * K.col2im(np.abs(cmat), x.shape, cfg.kernel, cfg.stride, cfg.pads))
    assert_within_rounding(lhs, rhs, mag, cmat.size, np.float64)
    # and col2im is exactly conv2d_backward_input's fold: with w = identity on
    # the (c, kh, kw) rows, conv2d_backward_input(g) == col2im(g rows)
    f = cfg.c * cfg.kh * cfg.kw
    w_id = np.eye(f).reshape(f, cfg.c, cfg.kh, cfg.kw)
    g = cmat.reshape(f, cfg.n, ho, wo).transpose(1, 0, 2, 3)
    assert_matches_reference(folded, R.conv2d_backward_input, (g, w_id), ((cfg.h, cfg.w), cfg.stride, cfg.pads),
                             cfg.kh * cfg.kw, np.float64)


@pytest.mark.parametrize("cfg", [c for c in CONV_CONFIGS if c.kh * c.kw > 1][::6], ids=geometry_id)
def test_conv_tiling_matches_reference(cfg, monkeypatch):
    """Force tiny tiles (a few output rows each, ragged last tile) so the tile loop
    of the convolutions is exercised on small images too."""
    ckk = cfg.c * cfg.kh * cfg.kw
    ho, wo = cfg.out_hw
    monkeypatch.setattr(conv_module, "TILE_FLOATS", 2 * ckk * wo + 1)
    tiles, rows = conv_module._tiles(ho, wo, ckk)
    assert rows == min(ho, 2)
    x, w, b, g = _conv_inputs(cfg)
    _check_forward(cfg, x, w, b)
    _check_backward_input(cfg, w, g)
    # per image, one GEMM per tile summed into dw: depth <= ho*wo + n*len(tiles)
    _check_backward_weight(cfg, x, g, extra_terms=cfg.n * len(tiles))


def test_conv_kernels_raise_when_the_window_does_not_fit():
    x = np.zeros((1, 1, 3, 3))
    w = np.zeros((1, 1, 5, 5))
    with pytest.raises(ValueError, match="window"):
        K.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="window"):
        K.im2col(x, (5, 5), (1, 1), (1, 0, 1, 0))
    with pytest.raises(ValueError, match="window"):
        K.maxpool2d_forward(x, (4, 2), (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="window"):
        K.avgpool2d_forward(x, (2, 4), (1, 1), (0, 0, 0, 0))


# --------------------------------------------------------------------------- pooling

def _pool_input(cfg, kind="normal"):
    rng = cfg.rng(SEED)
    shape = (cfg.n, cfg.c, cfg.h, cfg.w)
    if kind == "normal":
        return _normal(rng, shape, cfg.dtype)
    if kind == "ties":  # small integers: many equal values in every window
        return rng.integers(-2, 2, size=shape).astype(cfg.dtype)
    return np.full(shape, -1.5, dtype=cfg.dtype)  # constant (negative: padding must not win)


@pool_configs
@pytest.mark.parametrize("kind", ["normal", "ties", "constant"])
def test_maxpool2d_forward_values_and_switches_exact(cfg, kind):
    x = _pool_input(cfg, kind)
    y, sw = K.maxpool2d_forward(x, cfg.kernel, cfg.stride, cfg.pads)
    yr, swr = R.maxpool2d_forward(x, cfg.kernel, cfg.stride, cfg.pads)
    assert y.dtype == x.dtype and sw.dtype == np.int32
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(sw, swr)
    # the switch points at the value it reports
    flat = x.reshape(cfg.n, cfg.c, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, sw.reshape(cfg.n, cfg.c, -1), 2),
                                  y.reshape(cfg.n, cfg.c, -1))
    if kind == "constant":
        # every pixel ties: the winner is the window's first in-image pixel
        ho, wo = cfg.out_hw
        t, _, l, _ = cfg.pads
        ih = np.maximum(np.arange(ho) * cfg.sh - t, 0)
        iw = np.maximum(np.arange(wo) * cfg.sw - l, 0)
        expect = ih[:, None] * cfg.w + iw[None, :]
        np.testing.assert_array_equal(sw, np.broadcast_to(expect, sw.shape))
        np.testing.assert_array_equal(y, np.full(y.shape, -1.5, dtype=cfg.dtype))


@pool_configs
@pytest.mark.parametrize("reps", [1, 3], ids=["single", "stacked3"])
def test_maxpool2d_backward(cfg, reps):
    """Routing only adds the g's landing on one pixel in the same (row-major output)
    order as the reference, so the result is bitwise equal in either dtype."""
    x = _pool_input(cfg, "ties")
    _, sw = K.maxpool2d_forward(x, cfg.kernel, cfg.stride, cfg.pads)
    ho, wo = cfg.out_hw
    g = _normal(cfg.rng(SEED), (reps * cfg.n, cfg.c, ho, wo), cfg.dtype)
    got = K.maxpool2d_backward(g, sw, (cfg.h, cfg.w))
    ref = R.maxpool2d_backward(g, sw, (cfg.h, cfg.w))
    assert got.dtype == g.dtype and got.shape == (reps * cfg.n, cfg.c, cfg.h, cfg.w)
    np.testing.assert_array_equal(got, ref)
    # told the window geometry (as the layer does), the same result
    np.testing.assert_array_equal(K.maxpool2d_backward(g, sw, (cfg.h, cfg.w), (cfg.kernel, cfg.stride, cfg.pads)), ref)
    # stacked batches: block k is the backward of g's k-th block with the same switches
    for k in range(reps):
        blk = slice(k * cfg.n, (k + 1) * cfg.n)
        np.testing.assert_array_equal(got[blk], K.maxpool2d_backward(g[blk], sw, (cfg.h, cfg.w)))


@pool_configs
def test_avgpool2d_forward(cfg):
    x = _pool_input(cfg)
    got = K.avgpool2d_forward(x, cfg.kernel, cfg.stride, cfg.pads)
    # kh*kw additions, one division (+ float32 output rounding)
    assert_matches_reference(got, R.avgpool2d_forward, (x,), (cfg.kernel, cfg.stride, cfg.pads),
                             cfg.kh * cfg.kw + 2, cfg.dtype)


@pool_configs
def test_avgpool2d_backward(cfg):
    ho, wo = cfg.out_hw
    g = _normal(cfg.rng(SEED), (cfg.n, cfg.c, ho, wo), cfg.dtype)
    got = K.avgpool2d_backward(g, (cfg.h, cfg.w), cfg.kernel, cfg.stride, cfg.pads)
    assert_matches_reference(got, R.avgpool2d_backward, (g,), ((cfg.h, cfg.w), cfg.kernel, cfg.stride, cfg.pads),
                             cfg.kh * cfg.kw + 2, cfg.dtype)


@pytest.mark.parametrize("shape", [(1, 2, 4, 4), (2, 3, 7, 9), (1, 1, 2, 3), (3, 2, 16, 15), (1, 1, 3, 5)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_maxpool_2x2_stride2_fast_path(shape, dtype, kind):
    """VGG's pooling (2x2, stride 2, no padding) has its own kernels; odd sizes
    leave a last row/column that no window covers (its gradient is 0)."""
    rng = np.random.default_rng(sum(shape))
    x = (rng.integers(-2, 2, size=shape) if kind == "ties" else rng.normal(size=shape)).astype(dtype)
    window = ((2, 2), (2, 2), (0, 0, 0, 0))
    y, sw = K.maxpool2d_forward(x, *window)
    yr, swr = R.maxpool2d_forward(x, *window)
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(sw, swr)
    for reps in (1, 3):
        g = rng.normal(size=(reps * shape[0],) + y.shape[1:]).astype(dtype)
        dx = K.maxpool2d_backward(g, sw, shape[2:], window)
        np.testing.assert_array_equal(dx, R.maxpool2d_backward(g, sw, shape[2:]))


def test_maxpool_ties_hand_computed():
    """First maximum in row-major window order, worked out by hand."""
    x = np.array([[1, 3, 3, 0],
                  [3, 2, 1, 1],
                  [5, 5, 2, 2],
                  [5, 4, 2, 2]], dtype=np.float64).reshape(1, 1, 4, 4)
    # windows (2x2, stride 2): top-left {1,3 / 3,2}: first 3 at (0,1) -> 1;
    # top-right {3,0 / 1,1}: 3 at (0,2) -> 2; bottom-left {5,5 / 5,4}: first 5
    # at (2,0) -> 8; bottom-right all 2: first at (2,2) -> 10.
    expect_sw = np.array([[1, 2], [8, 10]], dtype=np.int32).reshape(1, 1, 2, 2)
    expect_y = np.array([[3, 3], [5, 2]], dtype=np.float64).reshape(1, 1, 2, 2)
    for dtype in DTYPES:
        y, sw = K.maxpool2d_forward(x.astype(dtype), (2, 2), (2, 2), (0, 0, 0, 0))
        np.testing.assert_array_equal(sw, expect_sw)
        np.testing.assert_array_equal(y, expect_y)
        yr, swr = R.maxpool2d_forward(x.astype(dtype), (2, 2), (2, 2), (0, 0, 0, 0))
        np.testing.assert_array_equal(swr, expect_sw)
        np.testing.assert_array_equal(yr, expect_y)
        g = np.array([[1, 2], [3, 4]], dtype=dtype).reshape(1, 1, 2, 2)
        expect_dx = np.zeros(16, dtype=dtype)
        expect_dx[[1, 2, 8, 10]] = [1, 2, 3, 4]
        for window in (None, ((2, 2), (2, 2), (0, 0, 0, 0))):
            dx = K.maxpool2d_backward(g, sw, (4, 4), window)
            np.testing.assert_array_equal(dx, expect_dx.reshape(1, 1, 4, 4))


def test_maxpool_overlapping_windows_hand_computed():
    """3x3 windows, stride 1, 'same' padding on a 1x1x3x3 input with ties: the
    padding is ignored (all values negative) and the first maximum wins."""
    x = np.array([[-1, -1, -3],
                  [-2, -1, -1],
                  [-3, -3, -1]], dtype=np.float64).reshape(1, 1, 3, 3)
    pads = resolve_padding("same", (3, 3), (3, 3), (1, 1))
    assert pads == (1, 1, 1, 1)
    y, sw = K.maxpool2d_forward(x, (3, 3), (1, 1), pads)
    # window of output (i, j) covers rows i-1..i+1, cols j-1..j+1 (clipped);
    # the value -1 sits at flat 0, 1, 4, 5, 8 and is every window's maximum;
    # (0,0): rows 0-1 cols 0-1 -> 0; (0,1): cols 0-2 -> 0; (0,2): cols 1-2 -> 1;
    # (1,0): rows 0-2 -> 0; (1,1): 0; (1,2): 1; (2,0): rows 1-2 cols 0-1 -> 4;
    # (2,1): 4; (2,2): rows 1-2 cols 1-2 -> 4.
    np.testing.assert_array_equal(sw[0, 0], [[0, 0, 1], [0, 0, 1], [4, 4, 4]])
    np.testing.assert_array_equal(y, np.full((1, 1, 3, 3), -1.0))
    np.testing.assert_array_equal(sw, R.maxpool2d_forward(x, (3, 3), (1, 1), pads)[1])


# --------------------------------------------------------------------------- elementwise

#: what the elementwise kernels see: one element, one row, one column, a dense
#: layer's (batch, features), images of odd and even sizes and a one-pixel-high one
ELEM_SHAPES = [(1, 1), (1, 13), (7, 1), (3, 17), (3, 2, 5, 7), (2, 1, 1, 9), (4, 3, 8, 6)]
#: clip_mask's (lo, hi): ReLU, ReLU6, and a window around zero
CLIPS = [(0.0, np.inf), (0.0, 6.0), (-1.5, 0.5)]

elem_shapes = pytest.mark.parametrize("shape", ELEM_SHAPES, ids=lambda s: "x".join(map(str, s)))
elem_dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
elem_builds = pytest.mark.parametrize("build", ["parallel", "serial"])


def _elem_rng(shape, dtype, *more):
    return np.random.default_rng([SEED, *shape, np.dtype(dtype).itemsize, *more])


def _pre_activations(shape, dtype, lo, hi):
    """Normal values (sd 4) with the ends planted: exactly lo and hi, their
    neighbouring floats, +-inf and -0.0 (all of them once an array has 18
    elements; none in a single element)."""
    rng = _elem_rng(shape, dtype, CLIPS.index((lo, hi)))
    y = (rng.normal(size=shape) * 4).astype(dtype)
    t = np.dtype(dtype).type
    lo, hi, inf = t(lo), t(hi), t(np.inf)
    ends = [lo, hi, np.nextafter(lo, -inf), np.nextafter(lo, inf), np.nextafter(hi, -inf),
            np.nextafter(hi, inf), -inf, inf, t(-0.0)]
    k = min(len(ends), y.size // 2)
    y.reshape(-1)[rng.permutation(y.size)[:k]] = ends[:k]
    return y


def _same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


@elem_builds
@elem_dtypes
@elem_shapes
@pytest.mark.parametrize("lo, hi", CLIPS, ids=["relu", "relu6", "window"])
def test_clip_mask(shape, dtype, lo, hi, build, monkeypatch):
    """min(max(y, lo), hi) and the strict mask lo < y < hi, bit for bit as the
    reference computes them (y == lo and y == hi are clipped and masked)."""
    use_kernel_build(monkeypatch, build)
    y = _pre_activations(shape, dtype, lo, hi)
    before = y.copy()
    got, mask = K.clip_mask(y, lo, hi)
    assert got.dtype == y.dtype and got.shape == y.shape
    assert mask.dtype == np.bool_ and mask.shape == y.shape
    ref, ref_mask = R.clip_mask(y, lo, hi)
    _same_bits(got, ref)
    np.testing.assert_array_equal(mask, ref_mask)
    # and the plain formula
    np.testing.assert_array_equal(got, np.clip(y, lo, hi))
    np.testing.assert_array_equal(mask, (y > lo) & (y < hi))
    _same_bits(y, before)


def test_clip_mask_sees_every_planted_end():
    y = _pre_activations((3, 2, 5, 7), np.float32, 0.0, 6.0)
    for v in (0.0, 6.0, np.inf, -np.inf):
        assert (y == v).any(), v
    assert (np.signbit(y) & (y == 0)).any()  # -0.0
    assert ((y > 0) & (y < 1e-30)).any() and ((y > 6) & (y < 6.001)).any()


@elem_builds
@elem_dtypes
@elem_shapes
@pytest.mark.parametrize("forward_mask, backward_relu", list(itertools.product([False, True], repeat=2)),
                         ids=["identity", "deconvnet", "saliency", "gbp"])
@pytest.mark.parametrize("reps", [1, 3], ids=["single", "stacked3"])
def test_relu_backward(shape, dtype, forward_mask, backward_relu, reps, build, monkeypatch):
    """T = h(R) * mask for one rule's flags; a signal of ``reps`` stacked batches
    meets the mask of one batch in every block."""
    use_kernel_build(monkeypatch, build)
    rng = _elem_rng(shape, dtype, reps)
    mask = rng.random(shape) < 0.5
    g = (rng.normal(size=(reps * shape[0],) + shape[1:])).astype(dtype)
    g[rng.random(g.shape) < 0.1] = 0
    got = K.relu_backward(g, mask, forward_mask, backward_relu)
    ref = R.relu_backward(g, mask, forward_mask, backward_relu)
    assert got.dtype == g.dtype and got.shape == g.shape
    np.testing.assert_array_equal(got, ref)
    # and the plain formula
    m = np.concatenate([mask] * reps) if forward_mask else True
    expect = np.where(m & ((g > 0) if backward_relu else True), g, 0)
    np.testing.assert_array_equal(got, expect)


# --------------------------------------------------------------------------- padding arithmetic

@pytest.mark.parametrize("n,k,s,pads", [
    (7, 4, 2, (1, 2)),   # out 4, total max(3*2 + 4 - 7, 0) = 3
    (6, 3, 2, (0, 1)),   # out 3, total max(2*2 + 3 - 6, 0) = 1
    (7, 3, 1, (1, 1)),   # out 7, total 2
    (8, 4, 1, (1, 2)),   # out 8, total 3
    (5, 1, 3, (0, 0)),   # out 2, total max(1*3 + 1 - 5, 0) = 0
    (6, 2, 3, (0, 0)),   # out 2, total max(3 + 2 - 6, 0) = 0 (clamped from -1)
    (4, 5, 1, (2, 2)),   # out 4, total 3 + 5 - 4 = 4
    (1, 11, 3, (5, 5)),  # out 1, total 0 + 11 - 1 = 10
    (10, 6, 3, (2, 3)),  # out 4, total 9 + 6 - 10 = 5
])
def test_resolve_padding_same_by_hand(n, k, s, pads):
    got = resolve_padding("same", (n, 5), (k, 1), (s, 1))
    assert got == pads + (0, 0)
    got = resolve_padding("same", (5, n), (1, k), (1, s))
    assert got == (0, 0) + pads
    # TF 'same': the output has ceil(n / s) positions
    assert output_hw((n, n), (k, k), (s, s), pads + pads) == (-(-n // s),) * 2


def test_resolve_padding_same_two_dims():
    # rows: in 7, k 4, s 2 -> (1, 2); cols: in 5, k 3, s 1 -> out 5, total 2 -> (1, 1)
    assert resolve_padding("same", (7, 5), (4, 3), (2, 1)) == (1, 2, 1, 1)


@pytest.mark.parametrize("spec,expect", [
    ("valid", (0, 0, 0, 0)),
    (0, (0, 0, 0, 0)),
    (2, (2, 2, 2, 2)),
    (np.int64(3), (3, 3, 3, 3)),
    ((1, 3), (1, 1, 3, 3)),
    ([1, 3], (1, 1, 3, 3)),
    (((0, 1), (2, 3)), (0, 1, 2, 3)),
    ([[4, 0], [0, 5]], (4, 0, 0, 5)),
])
def test_resolve_padding_explicit(spec, expect):
    got = resolve_padding(spec, (9, 9), (3, 3), (2, 2))
    assert got == expect
    assert all(type(p) is int for p in got)


@pytest.mark.parametrize("spec,exc", [
    ("full", ValueError),
    ("", ValueError),
    (-1, ValueError),
    ((1, -2), ValueError),
    (((1, 2), (3, -1)), ValueError),
    (1.5, TypeError),
    (True, TypeError),
    (None, TypeError),
    ((1, 2, 3), TypeError),
    ((1, 2.0), TypeError),
    (((1, 2), 3), TypeError),
    (((1, 2, 3), (1, 2)), TypeError),
    (((1, 2), (1, None)), TypeError),
])
def test_resolve_padding_rejects_invalid_specs(spec, exc):
    with pytest.raises(exc, match="padding") as info:
        resolve_padding(spec, (9, 9), (3, 3), (1, 1))
    # the message names the offending value (the spec, or its bad half)
    parts = [spec] + (list(spec) if isinstance(spec, tuple) else [])
    assert any(repr(p) in str(info.value) for p in parts), str(info.value)


def test_as_pair():
    assert as_pair(3, "stride") == (3, 3)
    assert as_pair((1, 2), "stride") == (1, 2)
    with pytest.raises(ValueError, match="stride"):
        as_pair(0, "stride")
    with pytest.raises(ValueError, match="stride"):
        as_pair((2, 0), "stride")
    with pytest.raises(TypeError, match="stride"):
        as_pair("2", "stride")
    with pytest.raises(TypeError, match="stride"):
        as_pair((1, 2, 3), "stride")


def test_output_hw():
    assert output_hw((7, 7), (4, 4), (2, 2), (1, 2, 1, 2)) == (4, 4)
    assert output_hw((5, 5), (5, 5), (1, 1), (0, 0, 0, 0)) == (1, 1)
    assert output_hw((3, 4), (5, 5), (3, 3), (1, 1, 1, 0)) == (1, 1)
    assert output_hw((10, 9), (3, 2), (3, 2), (0, 0, 0, 0)) == (3, 4)


@pytest.mark.parametrize("in_hw,kernel,pads", [
    ((3, 3), (4, 3), (0, 0, 0, 0)),
    ((3, 3), (3, 4), (0, 0, 0, 0)),
    ((3, 3), (5, 5), (1, 0, 1, 0)),  # padded 4x4 < 5x5
    ((1, 8), (2, 1), (0, 0, 0, 0)),
])
def test_output_hw_raises_for_a_window_larger_than_the_padded_input(in_hw, kernel, pads):
    with pytest.raises(ValueError, match="smaller than the window"):
        output_hw(in_hw, kernel, (1, 1), pads)


# --------------------------------------------------------------------------- threads

def _bytes(out):
    if isinstance(out, tuple):
        return tuple(_bytes(o) for o in out)
    return out.dtype.str, out.shape, np.ascontiguousarray(out).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tile_floats", [None, 1000], ids=["default-tiles", "small-tiles"])
def test_results_do_not_depend_on_thread_count(dtype, tile_floats, monkeypatch):
    if tile_floats is not None:
        monkeypatch.setattr(conv_module, "TILE_FLOATS", tile_floats)
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(3, 5, 17, 14)).astype(dtype)
    w = rng.normal(size=(6, 5, 4, 3)).astype(dtype)
    b = rng.normal(size=6).astype(dtype)
    stride = (1, 2)
    pads = resolve_padding("same", (17, 14), (4, 3), stride)
    ho, wo = output_hw((17, 14), (4, 3), stride, pads)
    g = rng.normal(size=(3, 6, ho, wo)).astype(dtype)
    ppads = resolve_padding("same", (17, 14), (3, 3), (2, 2))
    _, sw = K.maxpool2d_forward(x, (3, 3), (2, 2), ppads)
    gp = rng.normal(size=(9,) + sw.shape[1:]).astype(dtype)
    cols = rng.normal(size=(5 * 4 * 3, 3 * ho * wo)).astype(dtype)

    def run():
        return {
            "conv_fwd": K.conv2d_forward(x, w, b, stride, pads),
            "conv_bwd_in": K.conv2d_backward_input(g, w, (17, 14), stride, pads),
            "conv_bwd_w": K.conv2d_backward_weight(g, x, (4, 3), stride, pads),
            "maxpool_fwd": K.maxpool2d_forward(x, (3, 3), (2, 2), ppads),
            "maxpool_bwd": K.maxpool2d_backward(gp, sw, (17, 14)),
            "avgpool_fwd": K.avgpool2d_forward(x, (3, 3), (2, 2), ppads),
            "im2col": K.im2col(x, (4, 3), stride, pads),
            "col2im": K.col2im(cols, x.shape, (4, 3), stride, pads),
        }

    one, two = at_thread_counts(lambda: {k: _bytes(v) for k, v in run().items()})
    for k in one:
        assert one[k] == two[k], k
