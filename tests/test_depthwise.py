"""Depthwise convolution and global average pooling kernels against the naive
references (the layers and Residual chains are tested in test_layers.py).

Kernel tolerances are elementwise forward-error bounds, as in test_kernels.py:
a floating-point sum of L terms is within gamma_L ~= L u of the exact sum times
sum |t_i| (u the unit roundoff), whatever the summation order; so
|fast - reference| <= 2 (L + 1) u * magnitude, the magnitude computed by the
reference on absolute values.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import DTYPES, Geometry, assert_within_rounding, draw_geometries, geometry_id

import randvis.kernels as K
from randvis.kernels import reference as R
from randvis.kernels.padding import resolve_padding
from randvis.layers import GlobalAvgPool2d
from randvis.rules import DECONVNET, GBP, SALIENCY


pytestmark = pytest.mark.usefixtures("parallel_builds")   # small arrays, parallel builds

SEED = 8128


def _configs(count=40):
    out = draw_geometries(SEED, count, kernel=7, size=14, batch=3, channels=5, filters=None, dtype_every=5)
    # corner cases: EfficientNet's layers (asymmetric TF 'same' at stride 2), 1x1
    # images, windows entirely in the padding, a window as large as the image
    specs = [(2, 3, 8, 8, 3, 3, 2, 2, "same"), (1, 4, 7, 9, 5, 5, 2, 2, "same"),
             (2, 2, 6, 6, 5, 5, 1, 1, "same"), (3, 2, 1, 1, 3, 3, 1, 1, "same"),
             (1, 2, 3, 3, 2, 2, 1, 1, 3), (2, 1, 5, 4, 5, 4, 1, 1, "valid")]
    for j, (n, c, h, w, kh, kw, sh, sw, padding) in enumerate(specs):
        kind = padding if isinstance(padding, str) else "int"
        for dtype in DTYPES:
            out.append(Geometry(n, c, c, h, w, kh, kw, sh, sw, kind, padding, dtype,
                                100 + 2 * j + (dtype is np.float64)))
    return out


CONFIGS = _configs()
configs = pytest.mark.parametrize("cfg", CONFIGS, ids=geometry_id)


def test_configurations_cover_the_space():
    assert len(CONFIGS) >= 20
    assert {(c.padding if isinstance(c.padding, str) else type(c.padding).__name__, c.dtype)
            for c in CONFIGS} >= {("same", np.float32), ("same", np.float64)}
    assert {c.sh for c in CONFIGS} == {1, 2, 3} and {c.sw for c in CONFIGS} == {1, 2, 3}
    assert any(c.pads[0] != c.pads[1] or c.pads[2] != c.pads[3] for c in CONFIGS if c.padding == "same")
    assert {np.dtype(c.dtype) for c in CONFIGS} == {np.dtype(np.float32), np.dtype(np.float64)}


def _inputs(cfg, reps=1):
    rng = np.random.default_rng([SEED, cfg.seed])
    x = rng.normal(size=(cfg.n, cfg.c, cfg.h, cfg.w)).astype(cfg.dtype)
    w = rng.normal(size=(cfg.c, 1, cfg.kh, cfg.kw)).astype(cfg.dtype)
    b = rng.normal(size=cfg.c).astype(cfg.dtype)
    g = rng.normal(size=(reps * cfg.n, cfg.c) + cfg.out_hw).astype(cfg.dtype)
    return x, w, b, g


def _f64(*arrays):
    return [None if a is None else a.astype(np.float64) for a in arrays]


@configs
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_depthwise_forward(cfg, with_bias):
    x, w, b, _ = _inputs(cfg)
    b = b if with_bias else None
    got = K.depthwise_forward(x, w, b, cfg.stride, cfg.pads)
    x64, w64, b64 = _f64(x, w, b)
    ref = R.depthwise_forward(x64, w64, b64, cfg.stride, cfg.pads)
    mag = R.depthwise_forward(np.abs(x64), np.abs(w64), None if b is None else np.abs(b64),
                              cfg.stride, cfg.pads)
    assert_within_rounding(got, ref, mag, cfg.kh * cfg.kw + 1, cfg.dtype)


@configs
@pytest.mark.parametrize("reps", [1, 3], ids=["single", "stacked3"])
def test_depthwise_backward_input(cfg, reps):
    _, w, _, g = _inputs(cfg, reps)
    got = K.depthwise_backward_input(g, w, (cfg.h, cfg.w), cfg.stride, cfg.pads)
    g64, w64 = _f64(g, w)
    ref = R.depthwise_backward_input(g64, w64, (cfg.h, cfg.w), cfg.stride, cfg.pads)
    mag = R.depthwise_backward_input(np.abs(g64), np.abs(w64), (cfg.h, cfg.w), cfg.stride, cfg.pads)
    assert got.shape == (reps * cfg.n, cfg.c, cfg.h, cfg.w)
    assert_within_rounding(got, ref, mag, cfg.kh * cfg.kw, cfg.dtype)


@configs
def test_depthwise_backward_weight_and_bias(cfg):
    x, _, _, g = _inputs(cfg)
    kernel = (cfg.kh, cfg.kw)
    got = K.depthwise_backward_weight(g, x, kernel, cfg.stride, cfg.pads)
    g64, x64 = _f64(g, x)
    ref = R.depthwise_backward_weight(g64, x64, kernel, cfg.stride, cfg.pads)
    mag = R.depthwise_backward_weight(np.abs(g64), np.abs(x64), kernel, cfg.stride, cfg.pads)
    terms = cfg.n * cfg.out_hw[0] * cfg.out_hw[1]
    assert_within_rounding(got, ref, mag, terms, cfg.dtype)
    gb = K.depthwise_backward_bias(g)
    assert_within_rounding(gb, g64.sum(axis=(0, 2, 3)), np.abs(g64).sum(axis=(0, 2, 3)), terms, cfg.dtype)


@pytest.mark.parametrize("cfg", CONFIGS[::4], ids=geometry_id)
def test_depthwise_forward_and_backward_are_adjoint(cfg):
    """<D x, g> = <x, D^T g> (float64), and D^T is linear in g."""
    x, w, _, g = _inputs(cfg)
    x, w, g = _f64(x, w, g)
    y = K.depthwise_forward(x, w, None, cfg.stride, cfg.pads)
    dx = K.depthwise_backward_input(g, w, (cfg.h, cfg.w), cfg.stride, cfg.pads)
    lhs, rhs = np.sum(y * g), np.sum(x * dx)
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, np.sum(np.abs(y * g)))
    # the weight gradient is the adjoint in w: <D_w x, g> = <w, dW>
    dw = K.depthwise_backward_weight(g, x, (cfg.kh, cfg.kw), cfg.stride, cfg.pads)
    assert abs(np.sum(w * dw) - lhs) <= 1e-12 * max(1.0, np.sum(np.abs(y * g)))


def test_depthwise_matches_grouped_full_convolution():
    """A depthwise conv is the full conv with a block-diagonal weight."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 9, 7))
    w = rng.normal(size=(3, 1, 3, 5))
    full = np.zeros((3, 3, 3, 5))
    for c in range(3):
        full[c, c] = w[c, 0]
    pads = resolve_padding("same", (9, 7), (3, 5), (2, 2))
    np.testing.assert_allclose(K.depthwise_forward(x, w, None, (2, 2), pads),
                               K.conv2d_forward(x, full, None, (2, 2), pads), atol=1e-12)


def test_depthwise_results_do_not_depend_on_thread_count():
    cfg = Geometry(2, 5, 5, 13, 11, 5, 3, 2, 1, "same", "same", np.float32, 999)
    x, w, b, g = _inputs(cfg, 3)
    old = K.get_num_threads()
    try:
        outs = []
        for t in sorted({1, old}):
            K.set_num_threads(t)
            outs.append((K.depthwise_forward(x, w, b, cfg.stride, cfg.pads),
                         K.depthwise_backward_input(g, w, (cfg.h, cfg.w), cfg.stride, cfg.pads),
                         K.depthwise_backward_weight(g[:2], x, (5, 3), cfg.stride, cfg.pads)))
    finally:
        K.set_num_threads(old)
    for a, b_ in zip(outs[0], outs[-1]):
        assert np.array_equal(a, b_)


def test_global_avgpool_kernel_references():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 4, 5))
    layer = GlobalAvgPool2d()
    y, hw = layer.forward(x)
    np.testing.assert_allclose(y, R.global_avgpool_forward(x), atol=1e-15)
    g = rng.normal(size=(6, 3))  # three stacked blocks
    np.testing.assert_allclose(layer.backward(g, hw, (SALIENCY, GBP, DECONVNET)),
                               R.global_avgpool_backward(g, (4, 5)), atol=1e-15)
    # adjoint
    assert np.isclose(np.sum(y * g[:2]), np.sum(x * layer.backward(g[:2], hw)))
