"""The numba kernels against the naive references in ``randvis.kernels.reference``.

Random configurations are drawn once, at import time, from a fixed seed; each is
its own test id. Tolerances are elementwise forward-error bounds: a floating
point sum of L terms t_i satisfies |fl(sum) - sum| <= gamma_L * sum|t_i| with
gamma_L ~= L * u (u = eps/2 the unit roundoff), whatever the summation order
(Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3/4). So we
compute the "magnitude" sum|t_i| of every output with the reference applied to
absolute values and require |fast - ref| <= 2 (L + 1) u * magnitude: both the
kernel and the reference are within gamma_L * magnitude of the exact value
(float64 vs float64), or the float32 kernel is within gamma_L(u32) and the
float64 reference is negligibly close (float32 vs float64 reference computed
from the same float32 inputs). This is a guaranteed bound (no test can fail by
bad luck, whatever order BLAS sums in), yet tight: it is relative to each
element's own magnitude, not to the largest output, and on these configurations
the observed errors reach 10-30% of it. Kernels that only move or select data
(im2col, max pooling, ReLU masks, clipping) must match exactly.
"""
from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numba
import numpy as np
import pytest

import randvis.kernels as K
import randvis.kernels.conv as conv_module
from randvis.kernels import reference as R
from randvis.kernels.padding import as_pair, output_hw, resolve_padding


@pytest.fixture(autouse=True)
def _parallel_builds(monkeypatch):
    """Small test arrays would take the kernels' serial builds; test the
    parallel builds here (the serial ones run in every small-network test)."""
    from randvis.kernels import _numba

    monkeypatch.setattr(_numba, "PARALLEL_MIN", 0)

SEED = 20240611
N_RANDOM = 60
PAD_KINDS = ("same", "valid", "int", "pair", "quad")
DTYPES = (np.float32, np.float64)


# --------------------------------------------------------------------------- configs

class Config(NamedTuple):
    n: int
    c: int
    f: int
    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    kind: str
    padding: object
    dtype: type
    seed: int

    @property
    def kernel(self):
        return (self.kh, self.kw)

    @property
    def stride(self):
        return (self.sh, self.sw)

    @property
    def pads(self):
        return resolve_padding(self.padding, (self.h, self.w), self.kernel, self.stride)

    @property
    def out_hw(self):
        return output_hw((self.h, self.w), self.kernel, self.stride, self.pads)

    def rng(self):
        return np.random.default_rng([SEED, self.seed])


def _config_id(cfg):
    t, b, l, r = cfg.pads
    return (f"{cfg.seed:03d}-{np.dtype(cfg.dtype).name}-n{cfg.n}c{cfg.c}f{cfg.f}-{cfg.h}x{cfg.w}"
            f"-k{cfg.kh}x{cfg.kw}-s{cfg.sh}x{cfg.sw}-{cfg.kind}{t}{b}{l}{r}")


def _draw_padding(rng, kind, kh, kw, pool):
    # Pooling layers require every pad < window size (else some windows would
    # hold no pixel, see layers.MaxPool2d.pads); convolution accepts any pad.
    def one(k):
        hi = min(k - 1, 4) if pool else min(k, 4)
        return int(rng.integers(0, hi + 1))
    if kind in ("same", "valid"):
        return kind
    if kind == "int":
        return one(min(kh, kw))
    if kind == "pair":
        return (one(kh), one(kw))
    return ((one(kh), one(kh)), (one(kw), one(kw)))


def _draw_configs(seed, count, pool):
    """Deterministic configurations: the padding kind, dtype and kernel height cycle
    (so every kind x dtype and every kernel size 1..11 occurs); everything else is
    random. Configurations whose window does not fit are redrawn."""
    rng = np.random.default_rng(seed)
    configs = []
    for i in range(count):
        kind = PAD_KINDS[i % len(PAD_KINDS)]
        dtype = DTYPES[i % 2]
        kh = 1 + i % 11
        kw = int(rng.integers(1, 12))
        sh, sw = (int(s) for s in rng.integers(1, 4, size=2))
        n = int(rng.integers(1, 5))
        c = int(rng.integers(1, 4))
        f = int(rng.integers(1, 4))
        for _ in range(1000):
            h, w = (int(s) for s in rng.integers(1, 17, size=2))
            padding = _draw_padding(rng, kind, kh, kw, pool)
            cfg = Config(n, c, f, h, w, kh, kw, sh, sw, kind, padding, dtype, seed=i)
            try:
                cfg.out_hw
            except ValueError:
                continue
            break
        else:  # pragma: no cover - the draw above always finds one
            raise RuntimeError("could not draw a fitting configuration")
        configs.append(cfg)
    return configs


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
            out.append(Config(n, c, f, h, w, kh, kw, sh, sw, kind, padding, dtype,
                              seed=start + 2 * j + (dtype is np.float64)))
    return out


CONV_CONFIGS = _draw_configs(SEED, N_RANDOM, pool=False) + _extra_configs(500, pool=False)
POOL_CONFIGS = _draw_configs(SEED + 1, N_RANDOM, pool=True) + _extra_configs(700, pool=True)

conv_configs = pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=_config_id)
pool_configs = pytest.mark.parametrize("cfg", POOL_CONFIGS, ids=_config_id)


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


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def assert_within_rounding(got, ref, magnitude, terms, dtype):
    """|got - ref| <= 2 (terms + 1) u * magnitude elementwise (see module doc)."""
    assert got.dtype == np.dtype(dtype), (got.dtype, dtype)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    u = np.finfo(dtype).eps / 2
    bound = 2 * (terms + 1) * u * magnitude
    err = np.abs(got.astype(np.float64) - ref)
    bad = err > bound
    assert not bad.any(), (
        f"{bad.sum()} of {bad.size} elements off; worst err {err.max():.3e}, "
        f"err/bound max {np.max(err / np.where(bound > 0, bound, np.inf)):.3g}, "
        f"terms {terms}"
    )


def _conv_inputs(cfg):
    rng = cfg.rng()
    x = _normal(rng, (cfg.n, cfg.c, cfg.h, cfg.w), cfg.dtype)
    w = _normal(rng, (cfg.f, cfg.c, cfg.kh, cfg.kw), cfg.dtype)
    b = _normal(rng, (cfg.f,), cfg.dtype)
    ho, wo = cfg.out_hw
    g = _normal(rng, (cfg.n, cfg.f, ho, wo), cfg.dtype)
    return x, w, b, g


# --------------------------------------------------------------------------- convolution

@conv_configs
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_conv2d_forward(cfg, with_bias):
    x, w, b, _ = _conv_inputs(cfg)
    b = b if with_bias else None
    got = K.conv2d_forward(x, w, b, cfg.stride, cfg.pads)
    ref = R.conv2d_forward(_f64(x), _f64(w), _f64(b), cfg.stride, cfg.pads)
    mag = R.conv2d_forward(np.abs(_f64(x)), np.abs(_f64(w)), None if b is None else np.abs(_f64(b)),
                           cfg.stride, cfg.pads)
    assert_within_rounding(got, ref, mag, cfg.c * cfg.kh * cfg.kw + 1, cfg.dtype)


@conv_configs
def test_conv2d_backward_input(cfg):
    x, w, _, g = _conv_inputs(cfg)
    got = K.conv2d_backward_input(g, w, (cfg.h, cfg.w), cfg.stride, cfg.pads)
    ref = R.conv2d_backward_input(_f64(g), _f64(w), (cfg.h, cfg.w), cfg.stride, cfg.pads)
    mag = R.conv2d_backward_input(np.abs(_f64(g)), np.abs(_f64(w)), (cfg.h, cfg.w), cfg.stride, cfg.pads)
    assert got.shape == x.shape
    # each dx element sums at most f * kh * kw products
    assert_within_rounding(got, ref, mag, cfg.f * cfg.kh * cfg.kw, cfg.dtype)


FLIP_CONFIGS = [c for c in CONV_CONFIGS if c.stride == (1, 1) and c.c >= c.f and c.kh * c.kw > 1
                and max(c.pads[:2]) < c.kh and max(c.pads[2:]) < c.kw]


@pytest.mark.parametrize("cfg", FLIP_CONFIGS, ids=_config_id)
def test_conv2d_backward_input_flipped_filter_route(cfg, monkeypatch):
    """The stride-1 backward through flipped, transposed filters (taken by
    large layers only) equals the reference on the small configurations too."""
    from randvis.kernels import conv as conv_mod

    monkeypatch.setattr(conv_mod, "FLIP_MIN_PIXELS", 1)
    x, w, _, g = _conv_inputs(cfg)
    got = K.conv2d_backward_input(g, w, (cfg.h, cfg.w), cfg.stride, cfg.pads)
    ref = R.conv2d_backward_input(_f64(g), _f64(w), (cfg.h, cfg.w), cfg.stride, cfg.pads)
    mag = R.conv2d_backward_input(np.abs(_f64(g)), np.abs(_f64(w)), (cfg.h, cfg.w), cfg.stride, cfg.pads)
    assert got.shape == x.shape
    assert_within_rounding(got, ref, mag, cfg.f * cfg.kh * cfg.kw, cfg.dtype)


def test_flipped_filter_route_is_exercised():
    assert len(FLIP_CONFIGS) >= 4


@conv_configs
def test_conv2d_backward_weight(cfg):
    x, w, _, g = _conv_inputs(cfg)
    got = K.conv2d_backward_weight(g, x, cfg.kernel, cfg.stride, cfg.pads)
    ref = R.conv2d_backward_weight(_f64(g), _f64(x), cfg.kernel, cfg.stride, cfg.pads)
    mag = R.conv2d_backward_weight(np.abs(_f64(g)), np.abs(_f64(x)), cfg.kernel, cfg.stride, cfg.pads)
    assert got.shape == w.shape
    ho, wo = cfg.out_hw
    assert_within_rounding(got, ref, mag, cfg.n * ho * wo, cfg.dtype)


@conv_configs
def test_conv2d_backward_bias(cfg):
    _, _, _, g = _conv_inputs(cfg)
    got = K.conv2d_backward_bias(g)
    ref = R.conv2d_backward_bias(_f64(g))
    mag = R.conv2d_backward_bias(np.abs(_f64(g)))
    ho, wo = cfg.out_hw
    assert got.shape == (cfg.f,)
    assert_within_rounding(got, ref, mag, cfg.n * ho * wo, cfg.dtype)
    # the adjoint of adding a bias at every position: <g, broadcast(b)> = <db, b>
    b = np.random.default_rng(cfg.f).normal(size=cfg.f)
    lhs = float(np.sum(_f64(g) * b[None, :, None, None]))
    rhs = float(np.sum(_f64(got) * b))
    scale = float(np.sum(np.abs(_f64(g)) * np.abs(b)[None, :, None, None]))
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
    rng = cfg.rng()
    x = rng.normal(size=(cfg.n, cfg.c, cfg.h, cfg.w))
    ho, wo = cfg.out_hw
    cmat = rng.normal(size=(cfg.c * cfg.kh * cfg.kw, cfg.n * ho * wo))
    lhs = np.sum(K.im2col(x, cfg.kernel, cfg.stride, cfg.pads) * cmat)
    folded = K.col2im(cmat, x.shape, cfg.kernel, cfg.stride, cfg.pads)
    assert folded.shape == x.shape and folded.dtype == np.float64
    rhs = np.sum(x * folded)
    mag = np.sum(np.abs(x) * K.col2im(np.abs(cmat), x.shape, cfg.kernel, cfg.stride, cfg.pads))
    u = np.finfo(np.float64).eps / 2
    assert abs(lhs - rhs) <= 2 * (cmat.size + 1) * u * mag
    # and col2im is exactly conv2d_backward_input's fold: with w = identity on
    # the (c, kh, kw) rows, conv2d_backward_input(g) == col2im(g rows)
    f = cfg.c * cfg.kh * cfg.kw
    w_id = np.eye(f).reshape(f, cfg.c, cfg.kh, cfg.kw)
    g = cmat.reshape(f, cfg.n, ho, wo).transpose(1, 0, 2, 3)
    ref = R.conv2d_backward_input(g, w_id, (cfg.h, cfg.w), cfg.stride, cfg.pads)
    mag = R.conv2d_backward_input(np.abs(g), w_id, (cfg.h, cfg.w), cfg.stride, cfg.pads)
    assert_within_rounding(folded, ref, mag, cfg.kh * cfg.kw, np.float64)


@pytest.mark.parametrize("cfg", [c for c in CONV_CONFIGS if c.kh * c.kw > 1][::6], ids=_config_id)
def test_conv_tiling_matches_reference(cfg, monkeypatch):
    """Force tiny tiles (a few output rows each, ragged last tile) so the tile loop
    of the convolutions is exercised on small images too."""
    ckk = cfg.c * cfg.kh * cfg.kw
    ho, wo = cfg.out_hw
    monkeypatch.setattr(conv_module, "TILE_FLOATS", 2 * ckk * wo + 1)
    tiles, rows = conv_module._tiles(ho, wo, ckk)
    assert rows == min(ho, 2)
    x, w, b, g = _conv_inputs(cfg)
    got = K.conv2d_forward(x, w, b, cfg.stride, cfg.pads)
    ref = R.conv2d_forward(_f64(x), _f64(w), _f64(b), cfg.stride, cfg.pads)
    mag = R.conv2d_forward(np.abs(_f64(x)), np.abs(_f64(w)), np.abs(_f64(b)), cfg.stride, cfg.pads)
    assert_within_rounding(got, ref, mag, ckk + 1, cfg.dtype)
    got = K.conv2d_backward_input(g, w, (cfg.h, cfg.w), cfg.stride, cfg.pads)
    ref = R.conv2d_backward_input(_f64(g), _f64(w), (cfg.h, cfg.w), cfg.stride, cfg.pads)
    mag = R.conv2d_backward_input(np.abs(_f64(g)), np.abs(_f64(w)), (cfg.h, cfg.w), cfg.stride, cfg.pads)
    assert_within_rounding(got, ref, mag, cfg.f * cfg.kh * cfg.kw, cfg.dtype)
    got = K.conv2d_backward_weight(g, x, cfg.kernel, cfg.stride, cfg.pads)
    ref = R.conv2d_backward_weight(_f64(g), _f64(x), cfg.kernel, cfg.stride, cfg.pads)
    mag = R.conv2d_backward_weight(np.abs(_f64(g)), np.abs(_f64(x)), cfg.kernel, cfg.stride, cfg.pads)
    # per image, one GEMM per tile summed into dw: depth <= ho*wo + n*len(tiles)
    assert_within_rounding(got, ref, mag, cfg.n * ho * wo + cfg.n * len(tiles), cfg.dtype)


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
    rng = cfg.rng()
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
    g = _normal(cfg.rng(), (reps * cfg.n, cfg.c, ho, wo), cfg.dtype)
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
    ref = R.avgpool2d_forward(_f64(x), cfg.kernel, cfg.stride, cfg.pads)
    mag = R.avgpool2d_forward(np.abs(_f64(x)), cfg.kernel, cfg.stride, cfg.pads)
    # kh*kw additions, one division (+ float32 output rounding)
    assert_within_rounding(got, ref, mag, cfg.kh * cfg.kw + 2, cfg.dtype)


@pool_configs
def test_avgpool2d_backward(cfg):
    ho, wo = cfg.out_hw
    g = _normal(cfg.rng(), (cfg.n, cfg.c, ho, wo), cfg.dtype)
    got = K.avgpool2d_backward(g, (cfg.h, cfg.w), cfg.kernel, cfg.stride, cfg.pads)
    ref = R.avgpool2d_backward(_f64(g), (cfg.h, cfg.w), cfg.kernel, cfg.stride, cfg.pads)
    mag = R.avgpool2d_backward(np.abs(_f64(g)), (cfg.h, cfg.w), cfg.kernel, cfg.stride, cfg.pads)
    assert_within_rounding(got, ref, mag, cfg.kh * cfg.kw + 2, cfg.dtype)


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

ELEM_CONFIGS = CONV_CONFIGS[:N_RANDOM]


def _activations(cfg):
    """Pre-activations y with bias b such that some y + b are exactly zero."""
    rng = cfg.rng()
    ho, wo = cfg.out_hw
    y = _normal(rng, (cfg.n, cfg.f, ho, wo), cfg.dtype)
    b = _normal(rng, (cfg.f,), cfg.dtype)
    hit = rng.random(y.shape) < 0.2
    y[hit] = np.broadcast_to(-b[None, :, None, None], y.shape)[hit]
    return y, b


@pytest.mark.parametrize("cfg", ELEM_CONFIGS, ids=_config_id)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_bias_relu(cfg, with_bias):
    y, b = _activations(cfg)
    b = b if with_bias else None
    a, mask = K.bias_relu(y, b)
    ar, maskr = R.bias_relu(y, b)
    assert a.dtype == y.dtype and mask.dtype == np.bool_ and mask.shape == y.shape
    # one rounded addition, identical in numba and numpy: bitwise equal
    np.testing.assert_array_equal(a, ar)
    np.testing.assert_array_equal(mask, maskr)
    if with_bias:
        assert (~mask).any()


@pytest.mark.parametrize("cfg", ELEM_CONFIGS[::2], ids=_config_id)
@pytest.mark.parametrize("forward_mask,backward_relu", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("reps", [1, 3], ids=["single", "stacked3"])
def test_relu_backward(cfg, forward_mask, backward_relu, reps):
    y, b = _activations(cfg)
    _, mask = K.bias_relu(y, b)
    rng = cfg.rng()
    g = _normal(rng, (reps * y.shape[0],) + y.shape[1:], cfg.dtype)
    g[rng.random(g.shape) < 0.1] = 0
    got = K.relu_backward(g, mask, forward_mask, backward_relu)
    ref = R.relu_backward(g, mask, forward_mask, backward_relu)
    assert got.dtype == g.dtype and got.shape == g.shape
    np.testing.assert_array_equal(got, ref)
    # and the plain formula
    m = np.concatenate([mask] * reps) if forward_mask else True
    expect = np.where(m & ((g > 0) if backward_relu else True), g, 0)
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("cfg", ELEM_CONFIGS[::3], ids=_config_id)
def test_clip_mask(cfg):
    rng = cfg.rng()
    ho, wo = cfg.out_hw
    y = (rng.normal(size=(cfg.n, cfg.f, ho, wo)) * 5).astype(cfg.dtype)
    # exact boundary values
    y.flat[::7] = 0
    y.flat[3::11] = 6
    got, mask = K.clip_mask(y, 0, 6)
    assert got.dtype == y.dtype and mask.dtype == np.bool_
    np.testing.assert_array_equal(got, np.clip(y, 0, 6))
    np.testing.assert_array_equal(mask, (y > 0) & (y < 6))


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

@pytest.fixture
def thread_counts():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread available")
    before = K.get_num_threads()
    try:
        yield (1, 2)
    finally:
        K.set_num_threads(before)


def _bytes(out):
    if isinstance(out, tuple):
        return tuple(_bytes(o) for o in out)
    return out.dtype.str, out.shape, np.ascontiguousarray(out).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tile_floats", [None, 1000], ids=["default-tiles", "small-tiles"])
def test_results_do_not_depend_on_thread_count(thread_counts, dtype, tile_floats, monkeypatch):
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

    results = {}
    for t in thread_counts:
        K.set_num_threads(t)
        assert K.get_num_threads() == t
        results[t] = {k: _bytes(v) for k, v in run().items()}
    for k in results[1]:
        assert results[1][k] == results[2][k], k
