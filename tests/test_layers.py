"""Layers and layer chains: what a layer holds (read-only parameters it owns,
the Winograd transform derived when weights are set, nothing written during a
pass), the clipped-ReLU presets, and chains (Residual inside Sequential):
copies of the given layers, nested names, save/load, dtypes, gradients."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import randvis
from randvis import kernels as K
from randvis.kernels import reference as R
from randvis.layers import (ClippedReLU, Conv2d, Dense, DepthwiseConv2d, Flatten, GlobalAvgPool2d, ReLU,
                            ReLU6, Residual, StreamedDense)
from randvis.network import Sequential
from randvis.rules import DECONVNET, GBP, SALIENCY

from conftest import parameter_differences
from dense_reference import rule_formula

RULES = (SALIENCY, DECONVNET, GBP)
DTYPES = (np.float32, np.float64)


def _tiny_net(rng, dtype=np.float64):
    """Conv stem -> residual(expand, relu6, depthwise, relu6, project) -> depthwise s2
    -> relu -> global pool -> dense."""
    return Sequential([
        Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), padding="same", name="stem"),
        ReLU6(name="stem_act"),
        Residual([Conv2d(rng.normal(size=(8, 4, 1, 1)), rng.normal(size=8), padding="valid", name="expand"),
                  ReLU6(name="expand_act"),
                  DepthwiseConv2d(rng.normal(size=(8, 1, 3, 3)), rng.normal(size=8), name="dw"),
                  ReLU6(name="dw_act"),
                  Conv2d(rng.normal(size=(4, 8, 1, 1)) * 0.3, rng.normal(size=4), padding="valid",
                         name="project")], name="block"),
        DepthwiseConv2d(rng.normal(size=(4, 1, 5, 5)), None, stride=2, name="dw2"),
        ReLU(name="relu"),
        GlobalAvgPool2d(name="pool"),
        Dense(rng.normal(size=(3, 4)), rng.normal(size=3), name="fc"),
    ], (2, 7, 6), dtype)


def _winograd_conv(rng, dtype=np.float64):
    """A 3x3 stride-1 layer wide enough for the Winograd route on 12 x 11 images."""
    return Conv2d(rng.normal(size=(17, 16, 3, 3)).astype(dtype), rng.normal(size=17).astype(dtype))


def _states(layers):
    """(layer, copy of its attribute dict) for every layer, those in blocks too."""
    out = []
    for layer in layers:
        out.append((layer, dict(layer.__dict__)))
        out += _states(getattr(layer, "body", []))
    return out


def _assert_unchanged(states):
    """Every layer holds the very objects it held when ``states`` was taken."""
    for layer, state in states:
        assert layer.__dict__.keys() == state.keys(), layer
        assert all(layer.__dict__[k] is v for k, v in state.items()), layer


# --------------------------------------------------------------------------- layer state

def test_layers_own_read_only_parameters():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    layer = Dense(w, b)
    assert not layer.weight.flags.writeable and not layer.bias.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        layer.weight[0, 0] = 1.0
    kept = w.copy()
    w[0, 0] = 7.0                                  # the caller's array stays the caller's
    assert w.flags.writeable and np.array_equal(layer.weight, kept)
    frozen = np.ones((3, 4))
    frozen.flags.writeable = False                 # nobody can write to it: shared, not copied
    assert Dense(frozen).weight is frozen
    net = Sequential([layer], (4,), np.float64)
    assert all(not v.flags.writeable for v in net.parameters().values())
    with pytest.raises(ValueError, match="read-only"):
        net["dense0.bias"][0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        net["dense0.weight"] += 1.0


def test_assigning_a_parameter_checks_casts_and_copies():
    layer = Dense(np.zeros((2, 3), np.float32), name="fc")
    new = np.arange(6.0).reshape(2, 3)
    layer.weight = new
    assert layer.weight.dtype == np.float32 and not layer.weight.flags.writeable
    new[0, 0] = 99.0
    assert layer.weight[0, 0] == 0.0
    same = np.ones((2, 3), np.float32)             # already the right dtype: still copied
    layer.weight = same
    same[0, 0] = 5.0
    assert same.flags.writeable and layer.weight[0, 0] == 1.0
    with pytest.raises(ValueError, match=r"'fc\.weight' must have shape \(2, 3\)"):
        layer.weight = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"'fc\.weight' must be finite.*non-finite"):
        layer.weight = np.full((2, 3), np.inf)
    with pytest.raises(ValueError, match=r"'fc\.bias'.*built without it"):
        layer.bias = np.zeros(2)


def test_the_winograd_transform_follows_the_weights():
    """The transform is made whenever the weights are set, and a pass writes
    nothing on the layer."""
    rng = np.random.default_rng(3)
    layer = _winograd_conv(rng)
    x = rng.normal(size=(2, 16, 12, 11))
    assert K.winograd_suits(16, 17, (3, 3), (1, 1), (12, 11))

    def check(layer, x):
        np.testing.assert_array_equal(layer._wino, K.winograd_filter_transform(layer.weight))
        assert layer._wino.dtype == layer.weight.dtype and not layer._wino.flags.writeable
        before = _states([layer])
        tol = 1e-10 if x.dtype == np.float64 else 1e-3
        w64, b64 = layer.weight.astype(np.float64), layer.bias.astype(np.float64)
        y, cache = layer.forward(x)
        np.testing.assert_allclose(y, R.conv2d_forward(x.astype(np.float64), w64, b64, (1, 1), (1, 1, 1, 1)),
                                   rtol=tol, atol=tol)
        g = rng.normal(size=y.shape).astype(x.dtype)
        np.testing.assert_allclose(layer.backward(g, cache),
                                   R.conv2d_backward_input(g.astype(np.float64), w64, x.shape[2:], (1, 1),
                                                           (1, 1, 1, 1)), rtol=tol, atol=tol)
        _assert_unchanged(before)

    check(layer, x)
    layer.weight = rng.normal(size=layer.weight.shape)            # the property
    check(layer, x)
    net = Sequential([layer, Flatten(), Dense(np.ones((1, 17 * 12 * 11)))], (16, 12, 11), np.float64)
    net["conv2d0.weight"] = rng.normal(size=layer.weight.shape)   # through the network
    check(net.layers[0], x)
    check(layer.astype(np.float32), x.astype(np.float32))         # a new dtype
    back = pickle.loads(pickle.dumps(layer))                      # not pickled, made again
    assert "_wino" not in layer.__getstate__()
    assert not back.weight.flags.writeable
    check(back, x)
    assert _winograd_conv(rng)._wino is not None and Conv2d(np.ones((17, 16, 5, 5)))._wino is None
    assert Conv2d.keeps_winograd((17, 16, 3, 3), 1) and not Conv2d.keeps_winograd((17, 16, 3, 3), 2)
    assert Conv2d(np.ones((17, 16, 3, 3)), stride=2)._wino is None


# --------------------------------------------------------------------------- clipped ReLU

def _edge_values(dtype):
    info = np.finfo(dtype)
    edge = [0.0, -0.0, info.tiny, -info.tiny, info.smallest_subnormal, -info.smallest_subnormal,
            info.max, -info.max, 1.0, -1.0, 6.0, np.nextafter(dtype(6), dtype(0)), np.nextafter(dtype(6), dtype(7))]
    rng = np.random.default_rng(5)
    return np.concatenate([np.array(edge, dtype), (rng.normal(size=187) * 5).astype(dtype)]).reshape(2, 5, 4, 5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_presets_are_bitwise_the_formulas(dtype):
    """ReLU: z > 0 -> z, else +0 (also for -0.0), mask z > 0; ReLU6 clips at 6 with
    the mask 0 < z < 6. Bits compared, so the sign of zero counts."""
    x = _edge_values(dtype)
    y, mask = ReLU().forward(x)
    assert y.dtype == np.dtype(dtype) and y.tobytes() == np.where(x > 0, x, dtype(0)).tobytes()
    assert np.array_equal(mask, x > 0)
    y6, mask6 = ReLU6().forward(x)
    assert y6.tobytes() == np.where(x > 0, np.where(x < 6, x, dtype(6)), dtype(0)).tobytes()
    assert np.array_equal(mask6, (x > 0) & (x < 6))
    y2, mask2 = ClippedReLU(-1.0, 2.5).forward(x)
    assert np.array_equal(y2, np.clip(x, -1, 2.5)) and np.array_equal(mask2, (x > -1) & (x < 2.5))


def test_relu_layers_unchanged_by_row_view():
    """ReLU/ReLU6 work on (n*c, rest) rows; results equal the plain formulas for
    images, vectors and stacked signals."""
    rng = np.random.default_rng(9)
    for shape in [(2, 3, 4, 5), (3, 7)]:
        x = rng.normal(size=shape) * 5
        for layer, mask in ((ReLU6(), (x > 0) & (x < 6)), (ReLU(), x > 0)):
            y, m = layer.forward(x)
            assert np.array_equal(m, mask)
            assert np.array_equal(y, np.clip(x, 0, 6) if isinstance(layer, ReLU6) else np.maximum(x, 0))
            g = rng.normal(size=(3 * shape[0],) + shape[1:])
            out = layer.backward(g, m, RULES)
            for k, rule in enumerate(RULES):
                blk = g[k * shape[0]:(k + 1) * shape[0]]
                assert np.array_equal(out[k * shape[0]:(k + 1) * shape[0]], rule_formula(rule.name, blk, m))


def test_clipped_relu_saves_and_validates(tmp_path):
    net = Sequential([ReLU(), ReLU6(), ClippedReLU(-1.0, name="floor"), ClippedReLU(0.5, 3.0, name="band")],
                     (5,), np.float64)
    specs = net.architecture()["layers"]
    assert specs[:2] == [{"type": "ReLU", "name": "relu0"}, {"type": "ReLU6", "name": "relu61"}]
    assert specs[2:] == [{"type": "ClippedReLU", "name": "floor", "lo": -1.0, "hi": None},
                         {"type": "ClippedReLU", "name": "band", "lo": 0.5, "hi": 3.0}]
    back = Sequential.load(net.save(tmp_path / "clip.npz"))
    assert back.architecture() == net.architecture()
    x = np.array([[-3.0, 0.2, 1.0, 4.0, 9.0]])
    np.testing.assert_array_equal(back.predict(x), [[0.5, 0.5, 1.0, 3.0, 3.0]])
    for lo, hi, exc in [(1.0, 1.0, ValueError), (np.inf, None, ValueError), (np.nan, 1.0, ValueError),
                        (0.0, np.nan, ValueError), ("0", 1.0, TypeError), (0.0, True, TypeError)]:
        with pytest.raises(exc, match="ClippedReLU"):
            ClippedReLU(lo, hi)


# --------------------------------------------------------------------------- chains

def test_a_network_copies_its_layers_and_leaves_them_untouched():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 2, 3, 3))
    conv, inner = Conv2d(w), DepthwiseConv2d(rng.normal(size=(4, 1, 3, 3)))
    block = Residual([inner, ReLU6()], name="block")
    head = StreamedDense(4 * 6 * 6, 3, std=0.1, seed=2, dtype=np.float64)
    layers = [conv, ReLU(), block, Flatten(), head]
    before = _states(layers)
    assert [l.name for l in block.body] == ["depthwiseconv2d0", "relu61"]
    net = Sequential(layers, (2, 6, 6), np.float32)
    assert [l.name for l in net.layers] == ["conv2d0", "relu1", "block", "flatten3", "streameddense4"]
    assert net.layers[4].dtype == np.float32 and net["conv2d0.weight"].dtype == np.float32
    net["block.depthwiseconv2d0.weight"] = np.zeros((4, 1, 3, 3))
    assert conv.name is None and inner.name is None and head.dtype == np.float64
    _assert_unchanged(before)
    assert conv.weight.dtype == np.float64 and np.array_equal(conv.weight, w)
    assert not any(a is b for a in net.layers for b in layers)
    assert net.layer("block.depthwiseconv2d0") is not block.body[0]


@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")
def test_passes_store_nothing_on_the_layers():
    """One forward trace serves any number of backward passes: no pass (forward,
    stacked backward, gradients, the non-finite diagnosis) writes on a layer."""
    rng = np.random.default_rng(13)
    wino = Sequential([_winograd_conv(rng), ReLU(), Flatten(), Dense(np.ones((2, 17 * 12 * 11)))],
                      (16, 12, 11), np.float32)
    for net in (_tiny_net(rng), randvis.fcn(9, input_shape=(2, 4, 4), n_classes=3, stream=True, rng=1), wino):
        before = _states(net.layers)
        logits, trace = net.forward(rng.normal(size=(2,) + net.input_shape))
        net.backward_stacked(trace, np.ones_like(logits), RULES)
        net.gradients(trace, np.ones_like(logits))
        _assert_unchanged(before)
    before = _states(wino.layers)
    with pytest.raises(randvis.network.NonFiniteError):
        wino.forward(np.full((1, 16, 12, 11), 1e38))
    _assert_unchanged(before)


def test_depthwise_layer_validates():
    with pytest.raises(ValueError, match=r"\(c, 1, kh, kw\)"):
        DepthwiseConv2d(np.ones((3, 2, 3, 3)))
    with pytest.raises(ValueError, match="bias"):
        DepthwiseConv2d(np.ones((3, 1, 3, 3)), np.ones(2))
    layer = DepthwiseConv2d(np.ones((3, 1, 3, 3)), name="dw")
    with pytest.raises(ValueError, match="3 input channels"):
        layer.output_shape((4, 8, 8))
    assert layer.output_shape((3, 8, 8)) == (3, 8, 8)
    assert DepthwiseConv2d(np.ones((3, 1, 5, 5)), stride=2).output_shape((3, 7, 7)) == (3, 4, 4)
    assert DepthwiseConv2d(np.ones((3, 1, 3, 3)), padding="valid").output_shape((3, 7, 7)) == (3, 5, 5)


def test_chains_validate():
    conv = lambda name=None: Conv2d(np.zeros((2, 2, 1, 1)), name=name)  # noqa: E731
    with pytest.raises(ValueError, match="at least one"):
        Residual([])
    with pytest.raises(ValueError, match="duplicate"):
        Residual([conv("a"), conv("a")])
    with pytest.raises(ValueError, match="'.'"):
        Residual([conv("a.b")])
    with pytest.raises(TypeError, match="not a Layer"):
        Residual([conv(), "relu"])
    block = Residual([Conv2d(np.zeros((3, 2, 1, 1)))], name="r")
    with pytest.raises(ValueError, match="keep the shape"):
        block.output_shape((2, 4, 4))
    flat = [Flatten(), Dense(np.ones((1, 8)))]
    with pytest.raises(ValueError, match="'.'"):
        Sequential([conv("a.b")] + flat, (2, 2, 2))
    with pytest.raises(ValueError, match="duplicate"):
        Sequential([conv("a"), conv("a")] + flat, (2, 2, 2))


def test_nested_parameter_names_get_set_and_layer_lookup():
    net = _tiny_net(np.random.default_rng(0))
    names = set(net.parameters())
    assert {"block.expand.weight", "block.dw.bias", "block.project.weight", "dw2.weight",
            "stem.bias", "fc.weight"} <= names
    assert "dw2.bias" not in names
    assert net.layer("block.dw") is net.layer("block").body[2]
    for missing in ("block.nothere", "stem.dw", "block.dw.weight", "nothere", 3):
        with pytest.raises(KeyError):
            net.layer(missing)
    new = np.full((8, 1, 3, 3), 0.5)
    net["block.dw.weight"] = new
    assert np.array_equal(net.layer("block.dw").weight, new) and net["block.dw.weight"] is net.layer("block.dw").weight
    with pytest.raises(ValueError, match="shape"):
        net["block.dw.weight"] = np.ones((8, 1, 2, 2))
    for missing in ("block.dw.nothere", "block.nothere.weight", "block.dw", "dw2.bias", "stem"):
        with pytest.raises(KeyError, match="no parameter"):
            net[missing] = new
        with pytest.raises(KeyError, match="no parameter"):
            net[missing]
    block = net.layer("block")
    block["dw.bias"] = np.zeros(8)                 # a residual block is a chain too
    assert not net["block.dw.bias"].any()
    assert "block" in net.summary() and "Residual" in net.summary()


def test_save_load_roundtrip_with_nested_layers(tmp_path):
    net = _tiny_net(np.random.default_rng(1), np.float32)
    path = net.save(tmp_path / "tiny.npz") or tmp_path / "tiny.npz"
    back = Sequential.load(path)
    assert back.architecture() == net.architecture()
    assert set(back.parameters()) == set(net.parameters())
    for k, v in net.parameters().items():
        assert np.array_equal(back[k], v) and back[k].dtype == np.float32 and not back[k].flags.writeable
    x = np.random.default_rng(2).normal(size=(2, 2, 7, 6))
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    maps = back.backward_stacked(back.forward(x)[1], np.eye(3)[[0, 2]], (SALIENCY, GBP))
    ref = net.backward_stacked(net.forward(x)[1], np.eye(3)[[0, 2]], (SALIENCY, GBP))
    np.testing.assert_array_equal(maps, ref)


def test_astype_converts_nested_layers():
    net = _tiny_net(np.random.default_rng(3))
    n32 = net.astype(np.float32)
    assert all(v.dtype == np.float32 for v in n32.parameters().values())
    assert all(v.dtype == np.float64 for v in net.parameters().values())
    x = np.random.default_rng(4).normal(size=(1, 2, 7, 6))
    np.testing.assert_allclose(n32.predict(x), net.predict(x), rtol=1e-4, atol=1e-4)
    same = net.astype(np.float64)                  # new layers sharing the read-only arrays
    same["block.dw.weight"] = np.zeros((8, 1, 3, 3))
    assert net["block.dw.weight"].any() and net.layer("block.dw") is not same.layer("block.dw")


@pytest.mark.parametrize("dtype", DTYPES)
def test_layers_keep_the_dtype(dtype):
    net = _tiny_net(np.random.default_rng(10), dtype)
    x = np.random.default_rng(11).normal(size=(1, 2, 7, 6))
    logits, trace = net.forward(x)
    assert logits.dtype == np.dtype(dtype)
    assert net.backward(trace, np.ones_like(logits), GBP).dtype == np.dtype(dtype)


def test_flatten_after_depthwise_in_a_plain_network():
    """Depthwise layers also work in nets ending in Flatten + Dense."""
    rng = np.random.default_rng(12)
    net = Sequential([DepthwiseConv2d(rng.normal(size=(2, 1, 3, 3)), stride=2), ReLU(), Flatten(),
                      Dense(rng.normal(size=(4, 2 * 3 * 3)))], (2, 5, 5), np.float64)
    assert net.shapes[1] == (2, 3, 3)
    assert list(net.parameters()) == ["depthwiseconv2d0.weight", "dense3.weight"]


NETS = {
    "residual": lambda rng: _tiny_net(rng),
    "deep_maxpool": lambda rng: randvis.random_cnn(3, width=3, kernel_size=3, pool_every=1,
                                                   input_shape=(2, 8, 8), n_classes=4,
                                                   dtype=np.float64, rng=rng),
    "vgg_style": lambda rng: randvis.vgg16(n_classes=5, input_shape=(3, 32, 32), widths=(3, 3, 4, 4, 4),
                                           fc_width=8, dtype=np.float64, rng=rng),
}


@pytest.mark.parametrize("name", ["residual", "deep_maxpool"])
def test_single_rule_backward_equals_stacked(name):
    rng = np.random.default_rng(5)
    net = NETS[name](rng)
    x = rng.normal(size=(2,) + net.input_shape) * 2
    logits, trace = net.forward(x)
    seed = rng.normal(size=logits.shape)
    stacked = net.backward_stacked(trace, seed, RULES)
    for i, rule in enumerate(RULES):
        np.testing.assert_allclose(net.backward(trace, seed, rule), stacked[i], rtol=0, atol=1e-13)


@pytest.mark.parametrize("name, step, tol, count, names", [
    ("residual", 1e-6, 1e-5, 3, ("block.dw.weight", "block.dw.bias", "block.expand.weight",
                                 "block.project.bias", "dw2.weight", "stem.weight")),
    ("vgg_style", 1e-5, 1e-6, 4, ("conv1_1.weight", "conv3_2.bias", "fc6.weight", "fc8.bias")),
])
def test_parameter_gradients_match_finite_differences(name, step, tol, count, names):
    """Central differences of sum(seed * logits), each step assigned through
    net[name] = ... (the networks are piecewise linear)."""
    rng = np.random.default_rng(8)
    net = NETS[name](rng)
    x = rng.normal(size=(2,) + net.input_shape)
    logits, trace = net.forward(x)
    seed = rng.normal(size=logits.shape)
    _, grads = net.gradients(trace, seed)
    assert set(grads) == set(net.parameters())
    for pname in names:
        index = rng.choice(net[pname].size, min(count, net[pname].size), replace=False)
        fd = parameter_differences(net, pname, index, x, seed, step)
        got = grads[pname].ravel()[index]
        assert (np.abs(got - fd) <= tol * np.maximum(1.0, np.abs(fd))).all(), (pname, got, fd)
