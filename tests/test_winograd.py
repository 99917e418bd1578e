"""Winograd F(2x2, 3x3) convolution against the naive direct references.

Tolerance: the same forward-error argument as tests/test_kernels.py, applied to
the Winograd algorithm's own sums. Every quantity it computes is a short sum
(filter transform: 2 + 2 additions, the halvings are exact; input transform:
1 + 1; channel sum in the GEMM: c terms; output transform: 2 + 3 with the bias),
so each output is within gamma_L * M of the exact value, L = c + 12, where M is
the Winograd computation repeated on absolute values:

    M = |A^T| [ sum_c (|G| |g| |G^T|) * (|B^T| |d| |B|) ] |A| + |bias|.

M is at least the direct sum's magnitude sum |w| |x| (true for each of the 2x2
outputs by expanding the products), so the float64 direct reference, within
gamma_(9c + 1) of its magnitude, is within the same multiple of M; the tests
use L = 9c + 16 for both and the guaranteed bound 2 (L + 1) u M. Bugs (a wrong
sign, tile or padding) give errors of the order of M itself.
"""
from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import randvis.kernels as K
from conftest import assert_within_rounding, at_thread_counts, record_calls
from randvis.kernels import conv as conv_mod
from randvis.kernels import reference as R
from randvis.kernels import winograd as W

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=float)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=float)

pytestmark = pytest.mark.usefixtures("parallel_builds")


def winograd_magnitude(x, w, b, pads):
    """M above, for x (n, c, h, w), w (f, c, 3, 3), pads (t, b, l, r); float64."""
    x, w = np.abs(np.asarray(x, float)), np.abs(np.asarray(w, float))
    n, c, h, wd = x.shape
    t, bt, l, r = pads
    ho, wo = h + t + bt - 2, wd + l + r - 2
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    xp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2))
    # image rows/cols inside the padded frame (the frame may cut the image when
    # the output is odd-sized or pads are small)
    xp_rows = slice(t, t + h)
    xp_cols = slice(l, l + wd)
    big = np.zeros((n, c, max(2 * th + 2, t + h), max(2 * tw + 2, l + wd)))
    big[:, :, xp_rows, xp_cols] = x
    xp[:] = big[:, :, :2 * th + 2, :2 * tw + 2]
    d = sliding_window_view(xp, (4, 4), axis=(2, 3))[:, :, ::2, ::2]  # (n, c, th, tw, 4, 4)
    v = np.einsum("ij,ncyxjk,lk->ncyxil", np.abs(BT), d, np.abs(BT))
    u = np.einsum("ij,fcjk,lk->fcil", np.abs(G), w, np.abs(G))
    m = np.einsum("fcil,ncyxil->nfyxil", u, v)
    y = np.einsum("ai,nfyxil,bl->nfyaxb", np.abs(AT), m, np.abs(AT)).reshape(n, -1, 2 * th, 2 * tw)
    y = y[:, :, :ho, :wo]
    if b is not None:
        y = y + np.abs(np.asarray(b, float))[None, :, None, None]
    return y


def _assert_close(got, ref, mag, c, dtype):
    assert_within_rounding(got, ref, mag, 9 * c + 16, dtype)


def _configs():
    """Deterministic draws: odd and even sizes from 1x1 up, every padding 0..3 on
    each side independently, batch 1..3, channels 1..20, both dtypes."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(40):
        n = int(rng.integers(1, 4))
        c, f = (int(v) for v in rng.integers(1, 21, size=2))
        pads = tuple(int(v) for v in rng.integers(0, 4, size=4))
        if i % 4 == 0:
            pads = (1, 1, 1, 1)  # 'same'
        elif i % 4 == 1:
            pads = (0, 0, 0, 0)  # 'valid'
        while True:
            h, w = (int(v) for v in rng.integers(1, 18, size=2))
            if h + pads[0] + pads[1] >= 3 and w + pads[2] + pads[3] >= 3:
                break
        out.append((i, n, c, f, h, w, pads, (np.float32, np.float64)[i % 2]))
    out.append((40, 1, 3, 2, 1, 1, (1, 1, 1, 1), np.float64))  # a 1x1 image, 'same'
    out.append((41, 2, 4, 5, 2, 3, (3, 3, 2, 3), np.float32))  # outputs mostly from padding
    return out


CONFIGS = _configs()


def _ids(cfg):
    i, n, c, f, h, w, pads, dt = cfg
    return f"{i:02d}-{np.dtype(dt).name}-n{n}c{c}f{f}-{h}x{w}-p{''.join(map(str, pads))}"


def _inputs(cfg):
    i, n, c, f, h, w, pads, dt = cfg
    rng = np.random.default_rng([11, i])
    x = rng.normal(size=(n, c, h, w)).astype(dt)
    wt = rng.normal(size=(f, c, 3, 3)).astype(dt)
    b = rng.normal(size=f).astype(dt)
    ho, wo = h + pads[0] + pads[1] - 2, w + pads[2] + pads[3] - 2
    g = rng.normal(size=(n, f, ho, wo)).astype(dt)
    return x, wt, b, g


def test_configurations_cover_odd_even_and_every_padding():
    assert {h % 2 for _, _, _, _, h, _, _, _ in CONFIGS} == {0, 1}
    assert {w % 2 for _, _, _, _, _, w, _, _ in CONFIGS} == {0, 1}
    for side in range(4):
        assert {p[side] for *_, p, _ in CONFIGS} == {0, 1, 2, 3}
    assert sum(max(p) <= 2 for *_, p, _ in CONFIGS) >= 20  # enough for the backward test


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_forward_equals_direct_convolution(cfg, with_bias):
    _, n, c, f, h, w, pads, dt = cfg
    x, wt, b, _ = _inputs(cfg)
    b = b if with_bias else None
    got = W.conv3x3(x, W.filter_transform(wt), b, pads)
    ref = R.conv2d_forward(x.astype(float), wt.astype(float), None if b is None else b.astype(float), (1, 1), pads)
    _assert_close(got, ref, winograd_magnitude(x, wt, b, pads), c, dt)


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if max(c[6]) <= 2], ids=_ids)
def test_backward_input_equals_direct_adjoint(cfg):
    _, n, c, f, h, w, pads, dt = cfg
    x, wt, _, g = _inputs(cfg)
    back = tuple(2 - p for p in pads)
    got = W.conv3x3(g, W.filter_transform(wt), None, back, transpose=True)
    ref = R.conv2d_backward_input(g.astype(float), wt.astype(float), (h, w), (1, 1), pads)
    flipped = wt.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
    _assert_close(got, ref, winograd_magnitude(g, flipped, None, back), f, dt)


def test_flip_permutes_the_transform():
    """G rev(g) G^T is G g G^T with rows and columns permuted by (3, 1, 2, 0)."""
    w = np.random.default_rng(0).normal(size=(3, 2, 3, 3))
    u = W.filter_transform(w)
    uf = W.filter_transform(np.ascontiguousarray(w[:, :, ::-1, ::-1]))
    # equal up to the order of the 3-term sums (a few ulps of numbers of order 1)
    np.testing.assert_allclose(uf, u[W.flip_index()], rtol=0, atol=1e-14)
    np.testing.assert_allclose(u[:, 1, 0].reshape(4, 4), G @ w[1, 0] @ G.T, rtol=1e-15, atol=0)


@pytest.mark.parametrize("cfg", CONFIGS[:12], ids=_ids)
def test_conv_kernels_route_through_winograd(cfg, monkeypatch):
    """conv2d_forward / conv2d_backward_input take the Winograd route when the
    thresholds allow it, with and without the caller's transform."""
    monkeypatch.setattr(conv_mod, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(conv_mod, "WINOGRAD_MIN_PIXELS", 1)
    monkeypatch.setattr(conv_mod, "WINOGRAD_MIN_PIXELS_UNCACHED", 1)
    calls = record_calls(monkeypatch, W, "conv3x3")
    _, n, c, f, h, w, pads, dt = cfg
    x, wt, b, g = _inputs(cfg)
    ref = R.conv2d_forward(x.astype(float), wt.astype(float), b.astype(float), (1, 1), pads)
    mag = winograd_magnitude(x, wt, b, pads)
    for wino in (None, W.filter_transform(wt)):
        _assert_close(K.conv2d_forward(x, wt, b, (1, 1), pads, wino=wino), ref, mag, c, dt)
    assert len(calls) == 2
    if max(pads) <= 2:
        ref = R.conv2d_backward_input(g.astype(float), wt.astype(float), (h, w), (1, 1), pads)
        flipped = wt.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
        mag = winograd_magnitude(g, flipped, None, tuple(2 - p for p in pads))
        got = K.conv2d_backward_input(g, wt, (h, w), (1, 1), pads, wino=W.filter_transform(wt))
        _assert_close(got, ref, mag, f, dt)
        assert len(calls) == 3


def test_route_selection():
    s = K.winograd_suits
    assert s(64, 64, (3, 3), (1, 1), (224, 224), cached=False)
    assert s(512, 512, (3, 3), (1, 1), (14, 14)) and not s(512, 512, (3, 3), (1, 1), (14, 14), cached=False)
    assert not s(3, 64, (3, 3), (1, 1), (224, 224))  # VGG's first layer: im2col
    assert not s(64, 64, (3, 3), (2, 2), (112, 112)) and not s(64, 64, (5, 5), (1, 1), (112, 112))
    assert not s(512, 512, (3, 3), (1, 1), (7, 7))


def test_winograd_is_deterministic_across_thread_counts():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 32, 40, 40)).astype(np.float32)
    w = rng.normal(size=(32, 32, 3, 3)).astype(np.float32)
    u = W.filter_transform(w)
    outs = at_thread_counts(lambda: (W.conv3x3(x, u, None, (1, 1, 1, 1)),
                                     W.conv3x3(x, u, None, (1, 1, 1, 1), transpose=True)))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
