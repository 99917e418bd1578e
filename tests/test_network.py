"""Network API: validation, targets, parameters, persistence, streamed layers, dtypes
(bitwise determinism across thread counts and processes: test_determinism.py)."""
import json

import numpy as np
import pytest

import randvis
from randvis.layers import Dense, ReLU, StreamedDense
from randvis.network import NonFiniteError


@pytest.fixture(scope="module")
def net():
    return randvis.three_layer_cnn(6, kernel_size=3, input_shape=(3, 12, 12), n_classes=5, rng=0)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).random((2, 3, 12, 12)).astype(np.float32)


# ---- bad input -----------------------------------------------------------
@pytest.mark.parametrize("bad, exc, words", [
    (np.zeros((3, 12, 12)), ValueError, "x[None]"),
    (np.zeros((1, 1, 3, 12, 12)), ValueError, "shape"),
    (np.zeros((1, 4, 12, 12)), ValueError, "4 channels"),
    (np.zeros((1, 3, 13, 12)), ValueError, "(3, 12, 12)"),
    (np.zeros((0, 3, 12, 12)), ValueError, "empty batch"),
    (np.full((1, 3, 12, 12), np.nan), ValueError, "NaN"),
    (np.full((1, 3, 12, 12), np.inf), ValueError, "Inf"),
    (np.full((1, 3, 12, 12), "a"), TypeError, "dtype"),
    (np.zeros((1, 3, 12, 12), dtype=object), TypeError, "dtype"),
    (np.zeros((1, 3, 12, 12), dtype=complex), TypeError, "dtype"),
    (np.zeros((1, 3, 12, 12), dtype=bool), TypeError, "dtype"),
])
def test_bad_input_is_named(net, bad, exc, words):
    with pytest.raises(exc, match=None) as err:
        randvis.visualize(net, bad)
    assert words in str(err.value)


@pytest.mark.parametrize("target, exc, words", [
    (5, ValueError, "out of range"),
    (-1, ValueError, "out of range"),
    (np.array([0, 9]), ValueError, "out of range"),
    (np.array([0, 1, 2]), ValueError, "shape"),
    ("top", ValueError, "'max'"),
    (np.ones(4), ValueError, "seed vector"),
    (np.array([np.nan] * 5), ValueError, "NaN"),
    (True, TypeError, "class index"),
    (["a"], TypeError, "class index"),
])
def test_bad_target_is_named(net, x, target, exc, words):
    with pytest.raises(exc) as err:
        randvis.visualize(net, x, target=target)
    assert words in str(err.value)


def test_bad_method_and_sizes():
    with pytest.raises(ValueError, match="unknown method"):
        randvis.visualize(randvis.fcn(3, input_shape=(1, 2, 2), rng=0), np.ones((1, 1, 2, 2)),
                          methods=("gradcam",))
    with pytest.raises(ValueError, match="smaller than the window"):
        randvis.three_layer_cnn(4, kernel_size=7, padding="valid", input_shape=(3, 5, 5))
    with pytest.raises(ValueError, match="divisible by 32"):
        randvis.vgg16(input_shape=(3, 100, 100))
    with pytest.raises(ValueError, match="n_filters"):
        randvis.three_layer_cnn(0)
    with pytest.raises(TypeError, match="stride"):
        randvis.three_layer_cnn(2, stride=1.5, input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match="padding"):
        randvis.three_layer_cnn(2, padding="full", input_shape=(3, 8, 8))


# ---- seeds, parameters and overflow at the network's boundary -------------
ONE_HOT = np.eye(5)[[0, 3]]


@pytest.mark.parametrize("seed, exc, words", [
    (ONE_HOT * 1j, TypeError, "imaginary part"),
    (ONE_HOT + 0j, TypeError, "complex128"),
    (ONE_HOT > 0, TypeError, "dtype bool"),
    (ONE_HOT.astype(object), TypeError, "dtype object"),
    (np.where(ONE_HOT > 0, np.nan, 0.0), ValueError, "NaN"),
    (np.where(ONE_HOT > 0, -np.inf, 0.0), ValueError, "Inf"),
    (np.where(ONE_HOT > 0, 1e300, 0.0), ValueError, "float32's range"),
])
def test_bad_seed_is_named(net, x, seed, exc, words):
    trace = net.forward(x)[1]
    calls = {"backward": lambda: net.backward(trace, seed, "gbp"),
             "backward_stacked": lambda: net.backward_stacked(trace, seed, ("saliency", "gbp")),
             "gradients": lambda: net.gradients(trace, seed)}
    for name, call in calls.items():
        with pytest.raises(exc) as err:
            call()
        assert "seed" in str(err.value) and words in str(err.value), name


def test_real_seeds_of_any_numeric_dtype(net, x):
    trace = net.forward(x)[1]
    want = net.backward(trace, ONE_HOT, "saliency")
    for seed in (ONE_HOT.astype(np.int64), ONE_HOT.astype(np.float32), ONE_HOT.astype(np.uint8)):
        np.testing.assert_array_equal(net.backward(trace, seed, "saliency"), want)


def _write_behind_the_lock(a, index, value):
    """Write into a read-only parameter array by making it writeable first (the
    one way a parameter can become non-finite)."""
    a.flags.writeable = True
    a[index] = value
    a.flags.writeable = False


@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")
def test_non_finite_parameters_are_named(x):
    net = randvis.three_layer_cnn(6, kernel_size=3, input_shape=(3, 12, 12), n_classes=5, rng=0)
    assert np.isfinite(net.predict(x)).all()
    with pytest.raises(ValueError, match="read-only"):
        net["conv1.weight"][2, 1, 0, 0] = np.inf
    _write_behind_the_lock(net["conv1.weight"], (2, 1, 0, 0), np.inf)
    with pytest.raises(NonFiniteError) as err:
        net.forward(x)
    msg = str(err.value)
    assert "layer 'conv1' (Conv2d)" in msg and "'conv1.weight'" in msg and "NaN or Inf" in msg, msg
    with pytest.raises(NonFiniteError, match="'conv1.weight'"):
        randvis.visualize(net, x)
    net["conv1.weight"] = np.ones((6, 3, 3, 3))
    _write_behind_the_lock(net["fc.weight"], (0, 0), np.nan)
    with pytest.raises(NonFiniteError, match=r"layer 'fc' \(Dense\).*'fc\.weight'"):
        net.forward(x)


@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")
def test_overflowing_activations_are_named():
    # d1 passes 1e10 through, d2 multiplies it by 1e30: 1e40 overflows float32 at d2
    layers = [Dense(np.eye(4), name="d1"), ReLU(name="r1"), Dense(1e30 * np.eye(4), name="d2")]
    net = randvis.Sequential(layers, (4,), np.float32)
    x = np.full((1, 4), 1e10)
    with pytest.raises(NonFiniteError) as err:
        net.forward(x)
    msg = str(err.value)
    assert "overflowed float32 at layer 'd2' (Dense)" in msg and "float64" in msg, msg
    assert "1e+10" in msg and "parameters are finite" in msg
    np.testing.assert_allclose(net.astype(np.float64).predict(x), 1e40)
    # an input of 3e38 is a finite float32, but a convolution of it is not
    cnn = randvis.three_layer_cnn(6, kernel_size=3, input_shape=(3, 12, 12), n_classes=5, rng=0)
    huge = np.full((1, 3, 12, 12), 3e38, np.float32)
    with pytest.raises(NonFiniteError, match=r"overflowed float32 at layer 'conv1'"):
        randvis.visualize(cnn, huge, target="max")
    assert np.isfinite(cnn.astype(np.float64).predict(huge)).all()


def test_complex_parameters_refused(net):
    copy = net.astype(np.float32)
    with pytest.raises(ValueError, match=r"'fc\.weight'.*complex64"):
        copy["fc.weight"] = copy["fc.weight"] + 1j
    assert np.isrealobj(copy["fc.weight"])


def test_load_refuses_non_finite_and_non_real_parameters(tmp_path, net):
    arch = np.array(json.dumps(net.architecture()))
    for name, change, words in [
            ("nan", lambda w: np.where(w == w.max(), np.nan, w), r"'fc\.weight' contains NaN"),
            ("inf", lambda w: np.where(w == w.max(), np.inf, w), r"'fc\.weight' contains NaN or Inf"),
            ("complex", lambda w: w * (1 + 1j), r"'fc\.weight' has dtype complex"),
            ("bool", lambda w: w > 0, r"'fc\.weight' has dtype bool")]:
        arrays = dict(net.parameters())
        arrays["fc.weight"] = change(arrays["fc.weight"])
        path = tmp_path / f"{name}.npz"
        np.savez(path, __architecture__=arch, **arrays)
        with pytest.raises(ValueError, match=rf"{name}\.npz: parameter {words}"):
            randvis.Sequential.load(path)


# ---- targets ------------------------------------------------------------
def test_targets(net, x):
    maps, info = randvis.visualize(net, x, target="max", return_info=True)
    np.testing.assert_array_equal(info["classes"], info["logits"].argmax(1))
    per = randvis.visualize(net, x, target=info["classes"])
    for k in maps:
        np.testing.assert_array_equal(per[k], maps[k])
    # an explicit seed vector is linear: maps of e0 + 2 e1 = maps(e0) + 2 maps(e1)
    a = randvis.visualize(net, x, target=0, methods=("saliency",))["saliency"]
    b = randvis.visualize(net, x, target=1, methods=("saliency",))["saliency"]
    c = randvis.visualize(net, x, target=np.array([1.0, 2.0, 0, 0, 0]), methods=("saliency",))["saliency"]
    np.testing.assert_allclose(c, a + 2 * b, rtol=1e-5, atol=1e-6 * np.abs(c).max())
    r1 = randvis.visualize(net, x, target="random", rng=3, return_info=True)[1]["classes"]
    r2 = randvis.visualize(net, x, target="random", rng=3, return_info=True)[1]["classes"]
    np.testing.assert_array_equal(r1, r2)


# ---- parameters and persistence ------------------------------------------
def test_parameters_read_write(net, x):
    params = net.parameters()
    assert set(params) == {"conv1.weight", "fc.weight"}
    assert params["conv1.weight"].shape == (6, 3, 3, 3)
    copy = net.astype(np.float32)
    copy["fc.weight"] = np.zeros_like(copy["fc.weight"])
    np.testing.assert_array_equal(copy.predict(x), 0)
    with pytest.raises(ValueError, match="shape"):
        copy["fc.weight"] = np.zeros((2, 2))
    with pytest.raises(KeyError, match="no parameter"):
        copy["fc.nothing"] = 0
    with pytest.raises(ValueError, match="finite"):
        copy["conv1.weight"] = np.full((6, 3, 3, 3), np.nan)


def test_save_load_round_trip(tmp_path, x):
    rng = np.random.default_rng(1)
    for net in (randvis.vgg16(n_classes=4, input_shape=(3, 32, 32), widths=(2, 2, 2, 2, 2), fc_width=4, rng=1),
                randvis.three_layer_cnn(4, pool=(3, 2), pool_type="avg", padding=((1, 0), (0, 2)),
                                        input_shape=(3, 12, 12), rng=2),
                randvis.fcn(7, input_shape=(3, 12, 12), stream=True, rng=3)):
        assert net.save(tmp_path / "net").endswith("net.npz")
        back = randvis.Sequential.load(tmp_path / "net.npz")
        assert back.architecture() == net.architecture()
        xx = rng.random((1,) + net.input_shape)
        a, b = randvis.visualize(net, xx), randvis.visualize(back, xx)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    # plain numpy can read the file too: weights move to other frameworks by name
    with np.load(tmp_path / "net.npz", allow_pickle=False) as f:
        assert "__architecture__" in f.files


# ---- streamed layers -----------------------------------------------------
def test_streamed_equals_materialised():
    layer = StreamedDense(50, 37, std=0.3, seed=9, dtype=np.float64, block_rows=8)
    dense = layer.materialize()
    # rows do not depend on the block size or on which rows are asked for
    np.testing.assert_array_equal(layer.rows(10, 20), dense.weight[10:20])
    other = StreamedDense(50, 37, std=0.3, seed=9, dtype=np.float64, block_rows=5).materialize()
    np.testing.assert_array_equal(other.weight, dense.weight)
    assert abs(dense.weight.std() / 0.3 - 1) < 0.05  # 1850 draws: std error ~1.6%
    x = np.random.default_rng(0).normal(size=(3, 50))
    np.testing.assert_allclose(layer.forward(x)[0], dense.forward(x)[0], rtol=1e-12, atol=1e-12)
    g = np.zeros((3, 37))
    g[:, [1, 30]] = np.random.default_rng(1).normal(size=(3, 2))
    np.testing.assert_allclose(layer.backward(g), dense.backward(g, x), rtol=1e-12, atol=1e-12)
    # a different seed gives different numbers
    assert not np.allclose(StreamedDense(50, 37, 0.3, 10, dtype=np.float64).rows(0, 1), dense.weight[:1])


def test_streamed_passes_do_not_depend_on_blas_threads():
    """While it streams several blocks, the layer runs BLAS on one thread, so the
    caller's BLAS setting does not change its sums (OpenBLAS splits a 1-row
    product's reduction between threads)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    # (1 x 20000) @ (20000 x 50) blocks: OpenBLAS threads this shape when allowed
    layer = StreamedDense(20000, 100, std=0.1, seed=2, dtype=np.float32, block_rows=50)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 20000)).astype(np.float32)
    g = rng.normal(size=(3, 100)).astype(np.float32)
    outs = []
    for n in (1, 2):
        with threadpool_limits(limits=n, user_api="blas"):
            outs.append((layer.forward(x)[0], layer.backward(g)))
            # the caller's setting is back after the pass
            assert all(i["num_threads"] == n for i in threadpool_info() if i["user_api"] == "blas")
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def test_streamed_network_equals_materialised_network():
    kw = dict(input_shape=(3, 10, 10), n_classes=4, dtype=np.float64, rng=5)
    s, m = randvis.fcn(40, stream=True, **kw), randvis.fcn(40, stream=False, **kw)
    assert isinstance(s.layers[1], StreamedDense) and isinstance(m.layers[1], Dense)
    x = np.random.default_rng(2).random((2, 3, 10, 10))
    a, b = randvis.visualize(s, x), randvis.visualize(m, x)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-14)


# ---- dtypes ------------------------------------------------------------------
def test_float32_agrees_with_float64():
    kw = dict(n_classes=10, input_shape=(3, 64, 64), widths=(8, 16, 16, 32, 32), fc_width=32, rng=9)
    n32, n64 = randvis.vgg16(dtype=np.float32, **kw), randvis.vgg16(dtype=np.float64, **kw)
    for k in n64.parameters():  # the same seed: the same weights up to rounding
        np.testing.assert_array_equal(n32[k], n64[k].astype(np.float32))
    x = np.random.default_rng(1).random((2, 3, 64, 64))
    m32 = randvis.visualize(n32, x, target=2)
    m64 = randvis.visualize(n64, x, target=2)
    for k in m64:
        assert m32[k].dtype == np.float32 and m64[k].dtype == np.float64
        rel = np.linalg.norm(m32[k] - m64[k]) / np.linalg.norm(m64[k])
        assert rel < 1e-4, (k, rel)
