"""randvis.weights: VGG-16 weights from npz (two layouts), PyTorch and Keras files.

Every source file is made here from a small-width random VGG-16, then
converted / loaded back and compared parameter by parameter and through the
maps. PyTorch files are written with torch.save when torch is importable,
and always with tests/torch_writer.py.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest

import randvis
from randvis.weights import (FORMATS, VGG16_PARAMS, ConversionReport, WeightsError, convert,
                             load_vgg16, read_vgg16, save_vgg16_paper_npz)

from torch_writer import needs_torch, save_state_dict, torch

SMALL = dict(widths=(4, 4, 8, 8, 8), fc_width=16, n_classes=10, input_shape=(3, 64, 64))
TV_FEATURES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
TV_NAMES = [f"features.{i}" for i in TV_FEATURES] + ["classifier.0", "classifier.3", "classifier.6"]
LAYERS = [n.split(".")[0] for n in VGG16_PARAMS[::2]]
KERAS = [f"block{n[4]}_conv{n[6]}" for n in LAYERS[:13]] + ["fc1", "fc2", "predictions"]


@pytest.fixture(scope="module")
def net():
    return randvis.vgg16(rng=0, **SMALL)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(1).normal(size=(2, 3, 64, 64))


def assert_same_network(a, b, x):
    assert a.input_shape == b.input_shape and a.n_classes == b.n_classes
    assert [l.name for l in a.layers] == [l.name for l in b.layers]
    pa, pb = a.parameters(), b.parameters()
    assert list(pa) == list(pb)
    for k in pa:
        assert pa[k].dtype == pb[k].dtype and np.array_equal(pa[k], pb[k]), k
    assert np.array_equal(a.predict(x), b.predict(x))
    ma, mb = randvis.visualize(a, x), randvis.visualize(b, x)
    for m in ma:
        assert np.array_equal(ma[m], mb[m]), m


def torchvision_state_dict(net):
    return {f"{t}.{p}": net[f"{l}.{p}"] for t, l in zip(TV_NAMES, LAYERS) for p in ("weight", "bias")}


def _nhwc_rows(w, c, h, wd):
    """fc6 weight (out, c*h*w) -> (h*w*c, out): the rows an NHWC flatten multiplies."""
    return w.reshape(-1, c, h, wd).transpose(2, 3, 1, 0).reshape(h * wd * c, -1)


def write_keras_h5(net, path, saved_model=False):
    h5py = pytest.importorskip("h5py", reason="h5py is not installed")
    p = net.parameters()
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if saved_model else f
        if saved_model:
            f.attrs["model_config"] = json.dumps({"class_name": "Functional",
                                                  "config": {"data_format": "channels_last"}})
        names = ["input_1"]
        for layer, kname in zip(LAYERS, KERAS):
            names.append(kname)
            if kname in ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3",
                         "block5_conv3"):
                names.append(f"block{kname[5]}_pool")
        names.insert(names.index("fc1"), "flatten")
        root.attrs["layer_names"] = np.array([n.encode() for n in names])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.13.1"
        for name in names:
            g = root.create_group(name)
            if name not in KERAS:
                g.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            layer = LAYERS[KERAS.index(name)]
            w, b = p[f"{layer}.weight"], p[f"{layer}.bias"]
            if layer.startswith("conv"):
                kernel = w.transpose(2, 3, 1, 0)
            elif layer == "fc6":
                kernel = _nhwc_rows(w, 8, 2, 2)
            else:
                kernel = w.T
            g.attrs["weight_names"] = np.array([f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()])
            g.create_dataset(f"{name}/kernel:0", data=kernel)
            g.create_dataset(f"{name}/bias:0", data=b)
    return path


# ---------------------------------------------------------------------------
# the two npz layouts
# ---------------------------------------------------------------------------

def test_both_npz_layouts_load_identical_networks(tmp_path, net, x):
    own = net.save(tmp_path / "own.npz")
    paper = save_vgg16_paper_npz(net, tmp_path / "vgg16_weights.npz")
    plain = tmp_path / "plain.npz"
    np.savez(plain, **net.parameters())
    a, b, c = load_vgg16(own), load_vgg16(paper), load_vgg16(plain)
    assert a.info["weights"]["layout"] == "randvis" and b.info["weights"]["layout"] == "paper"
    assert c.info["weights"]["layout"] == "randvis"
    assert b.info["weights"]["path"] == os.path.abspath(paper)
    assert len(b.info["weights"]["sha256"]) == 64
    for loaded in (a, b, c):
        assert_same_network(loaded, net, x)
    assert a.info["widths"] == [4, 4, 8, 8, 8] and a.info["fc_width"] == 16


def test_paper_layout_axes(tmp_path, net):
    """The paper file's axes mean what the paper's TensorFlow code does with them."""
    with np.load(save_vgg16_paper_npz(net, tmp_path / "p.npz")) as f:
        assert sorted(f.files) == sorted(k.replace(".weight", "_W").replace(".bias", "_b")
                                         for k in VGG16_PARAMS)
        w6, k1 = net["fc6.weight"], f["fc6_W"]
        assert f["conv1_1_W"].shape == (3, 3, 3, 4) and k1.shape == (32, 16)
        # conv: HWIO kernel [i, j, c, o] is PyTorch's [o, c, i, j]
        assert f["conv3_1_W"][1, 2, 3, 5] == net["conv3_1.weight"][5, 3, 1, 2]
    pool5 = np.random.default_rng(0).normal(size=(8, 2, 2))       # (c, h, w)
    nchw = w6 @ pool5.reshape(-1)                                   # randvis / PyTorch flatten
    nhwc = pool5.transpose(1, 2, 0).reshape(-1) @ k1                # TensorFlow flatten
    np.testing.assert_allclose(nhwc, nchw, rtol=1e-5)


def test_architecture_matches_the_builder(tmp_path, net):
    loaded = load_vgg16(save_vgg16_paper_npz(net, tmp_path / "p.npz"))
    assert loaded.architecture()["layers"] == net.architecture()["layers"]
    assert loaded.shapes == net.shapes
    big = randvis.vgg16(n_classes=3, input_shape=(3, 96, 64), widths=(2, 2, 2, 2, 4),
                        fc_width=5, pool_type="avg", rng=1, dtype=np.float64)
    again = load_vgg16(big.save(tmp_path / "big.npz"), dtype=np.float64)
    assert again.input_shape == (3, 96, 64) and again.info["pool_type"] == "avg"
    assert again.architecture()["layers"] == big.architecture()["layers"]


def test_vgg16_builds_from_the_file_or_from_its_arrays(tmp_path, net, x):
    """read_vgg16 gives the arrays and dimensions; randvis.vgg16 builds the same
    network from them as from the path, with the provenance of the file."""
    path = save_vgg16_paper_npz(net, tmp_path / "p.npz")
    w = read_vgg16(path)
    assert list(w.params) == list(VGG16_PARAMS) and w.params["fc6.weight"].shape == (16, 32)
    assert (w.input_shape, w.widths, w.fc_width, w.n_classes, w.pool_type) == \
        ((3, 64, 64), [4, 4, 8, 8, 8], 16, 10, "max")
    for built in (randvis.vgg16(weights=w), randvis.vgg16(weights=path), load_vgg16(path)):
        assert_same_network(built, net, x)
        assert built.info["weights"] == w.info and w.info["layout"] == "paper"
    with pytest.raises(ValueError, match="n_classes=3 but"):
        randvis.vgg16(weights=path, n_classes=3)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        randvis.vgg16(weights=path, sha256="0" * 64)


def test_dtype_and_n_classes(tmp_path, net, x):
    path = save_vgg16_paper_npz(net, tmp_path / "p.npz")
    n64 = load_vgg16(path, dtype=np.float64, n_classes=10)
    assert n64.dtype == np.float64 and n64["fc8.bias"].dtype == np.float64
    np.testing.assert_allclose(n64.predict(x), net.predict(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(WeightsError, match=r"'fc8_W' has shape \(16, 10\), expected \(16, 1000\)"):
        load_vgg16(path, n_classes=1000)
    with pytest.raises(TypeError):
        load_vgg16(path, dtype=np.int32)


def test_sha256(tmp_path, net):
    path = net.save(tmp_path / "own.npz")
    digest = load_vgg16(path).info["weights"]["sha256"]
    assert load_vgg16(path, sha256=digest.upper()).info["weights"]["sha256"] == digest
    with pytest.raises(WeightsError, match="sha256 mismatch") as exc:
        load_vgg16(path, sha256="0" * 64)
    assert "0" * 64 in str(exc.value) and digest in str(exc.value)


# ---------------------------------------------------------------------------
# refusals name the key and what was expected
# ---------------------------------------------------------------------------

def _paper_arrays(net, tmp_path):
    with np.load(save_vgg16_paper_npz(net, tmp_path / "p.npz")) as f:
        return {k: f[k] for k in f.files}


def test_object_array_refused(tmp_path, net):
    arrays = dict(net.parameters())
    arrays["conv1_1.bias"] = np.array([object()] * 4, dtype=object)
    path = tmp_path / "obj.npz"
    np.savez(path, **arrays)
    with pytest.raises(WeightsError, match=r"'conv1_1.bias' is an object array"):
        load_vgg16(path)
    pkl = tmp_path / "pickle.npz"
    pkl.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(WeightsError):
        load_vgg16(pkl)


def test_missing_and_extra_keys(tmp_path, net):
    arrays = _paper_arrays(net, tmp_path)
    del arrays["conv3_2_b"]
    arrays["conv6_1_W"] = np.ones(3, np.float32)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(WeightsError, match="missing keys: conv3_2_b; unexpected keys: conv6_1_W"):
        load_vgg16(tmp_path / "bad.npz")
    own = dict(net.parameters())
    del own["fc7.weight"]
    np.savez(tmp_path / "own.npz", **own)
    with pytest.raises(WeightsError, match=r"randvis layout: missing keys: fc7\.weight"):
        load_vgg16(tmp_path / "own.npz")
    np.savez(tmp_path / "other.npz", a=np.ones(2))
    with pytest.raises(WeightsError, match="no VGG-16 weights found"):
        load_vgg16(tmp_path / "other.npz")


@pytest.mark.parametrize("key,value,msg", [
    ("conv2_2_W", np.ones((3, 3, 4, 5), np.float32), r"'conv2_2_W' has shape \(3, 3, 4, 5\), "
     r"expected \(3, 3, 4, 4\) \(kh, kw, in, out\)"),
    ("conv1_1_W", np.ones((4, 3, 3, 3), np.float32), r"'conv1_1_W' has shape \(4, 3, 3, 3\), "
     r"expected \(3, 3, 3, 3\) \(kh, kw, in, out\)"),
    ("fc7_b", np.ones(17, np.float32), r"'fc7_b' has shape \(17,\), expected \(16,\)"),
    ("fc6_W", np.ones((24, 16), np.float32), r"'fc6_W' has 24 input features"),
    ("fc7_W", np.ones(16, np.float32), r"'fc7_W' has shape \(16,\), expected a 2-d array \(in, out\)"),
    ("conv4_1_b", np.ones(8, np.int64), r"'conv4_1_b' has dtype int64"),
    ("fc8_b", np.full(10, np.nan, np.float32), r"'fc8_b' contains NaN"),
])
def test_bad_tensor_named(tmp_path, net, key, value, msg):
    arrays = _paper_arrays(net, tmp_path)
    arrays[key] = value
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(WeightsError, match=msg):
        load_vgg16(tmp_path / "bad.npz")


def test_randvis_layout_shape_error(tmp_path, net):
    own = dict(net.parameters())
    own["conv5_3.weight"] = np.ones((8, 8, 1, 1), np.float32)
    np.savez(tmp_path / "own.npz", **own)
    with pytest.raises(WeightsError, match=r"'conv5_3.weight' has shape \(8, 8, 1, 1\), expected "
                       r"\(8, 8, 3, 3\) \(out, in, kh, kw\)"):
        load_vgg16(tmp_path / "own.npz")


# ---------------------------------------------------------------------------
# converters
# ---------------------------------------------------------------------------

def test_convert_torchvision_state_dict(tmp_path, net, x):
    src = save_state_dict(torchvision_state_dict(net), tmp_path / "vgg16-397923af.pth")
    report = convert(src, tmp_path / "out.npz")
    assert isinstance(report, ConversionReport)
    assert report.format == "torch" and report.dst == str(tmp_path / "out.npz")
    assert report.input_shape == (3, 64, 64) and report.n_classes == 10
    assert report.widths == [4, 4, 8, 8, 8] and report.fc_width == 16
    assert [r.target for r in report.rows] == list(VGG16_PARAMS)
    assert report.mapping["features.28.bias"] == "conv5_3.bias"
    assert report.mapping["classifier.6.weight"] == "fc8.weight"
    row = report.rows[VGG16_PARAMS.index("fc6.weight")]
    assert (row.source, row.source_shape, row.shape, row.transform) == \
        ("classifier.0.weight", (16, 32), (16, 32), "as is")
    text = str(report)
    assert "features.0.weight" in text and "conv1_1.weight" in text and "(4, 3, 3, 3)" in text
    assert "zip serialisation" in text and "inferred from fc6" in text
    loaded = load_vgg16(report.dst, sha256=report.sha256)
    assert loaded.info["weights"]["converted_from"]["layout"] == "torch"
    assert_same_network(loaded, net, x)
    assert_same_network(randvis.Sequential.load(report.dst), net, x)


def test_convert_paper_and_randvis_npz(tmp_path, net, x):
    report = convert(save_vgg16_paper_npz(net, tmp_path / "p.npz"), tmp_path / "a.npz")
    assert report.format == "paper"
    row = report.rows[VGG16_PARAMS.index("fc6.weight")]
    assert (row.source, row.source_shape, row.shape) == ("fc6_W", (32, 16), (16, 32))
    assert "(h, w, c) -> (c, h, w)" in row.transform
    assert report.rows[0].transform.startswith("transposed (kh, kw, in, out)")
    assert_same_network(load_vgg16(report.dst), net, x)
    report = convert(net.save(tmp_path / "own.npz"), tmp_path / "b", format="randvis")
    assert report.format == "randvis" and report.dst.endswith("b.npz")
    assert all(r.transform == "as is" for r in report.rows)
    assert_same_network(load_vgg16(report.dst), net, x)


@pytest.mark.parametrize("saved_model", [False, True], ids=["weights-only", "saved-model"])
def test_convert_keras_h5(tmp_path, net, x, saved_model):
    src = write_keras_h5(net, tmp_path / "vgg16.h5", saved_model)
    report = convert(src, tmp_path / "k.npz")
    assert report.format == "keras"
    assert report.mapping["fc1/fc1/kernel:0"] == "fc6.weight"
    assert report.mapping["block3_conv2/block3_conv2/bias:0"] == "conv3_2.bias"
    assert ("model_weights" in report.notes[0]) == saved_model
    assert_same_network(load_vgg16(report.dst), net, x)
    assert_same_network(load_vgg16(src), net, x)  # load_vgg16 reads .h5 directly too


def test_keras_partial_match_refused(tmp_path, net):
    h5py = pytest.importorskip("h5py", reason="h5py is not installed")
    src = write_keras_h5(net, tmp_path / "notop.h5")
    with h5py.File(src, "a") as f:
        del f["predictions"]["predictions"]["bias:0"]
        f["predictions"].attrs["weight_names"] = np.array([b"predictions/kernel:0"])
        g = f.create_group("bn1")
        g.attrs["weight_names"] = np.array([b"bn1/gamma:0"])
        g.create_dataset("bn1/gamma:0", data=np.ones(4))
        f.attrs["layer_names"] = np.append(f.attrs["layer_names"], b"bn1")
    with pytest.raises(WeightsError, match=r"unmapped source tensors: bn1/bn1/gamma:0; VGG-16 "
                       r"parameters without a source: fc8.bias \(Keras predictions/bias\)"):
        convert(src, tmp_path / "k.npz")
    assert not (tmp_path / "k.npz").exists()


def test_torch_partial_match_refused(tmp_path, net):
    sd = torchvision_state_dict(net)
    sd["features.1.running_mean"] = np.zeros(4, np.float32)
    del sd["classifier.6.bias"]
    src = save_state_dict(sd, tmp_path / "bn.pth")
    with pytest.raises(WeightsError, match=r"unmapped source tensors: features\.1\.running_mean; "
                       r"VGG-16 parameters without a source: fc8\.bias"):
        convert(src, tmp_path / "out.npz")
    sd = torchvision_state_dict(net)
    sd["classifier.9.weight"] = np.ones((3, 10), np.float32)
    with pytest.raises(WeightsError, match=r"unmapped source tensors: classifier\.9\.weight$"):
        convert(save_state_dict(sd, tmp_path / "x.pth"), tmp_path / "out.npz")
    with pytest.raises(WeightsError, match=r"'features.7.weight' has shape"):
        sd = torchvision_state_dict(net)
        sd["features.7.weight"] = np.ones((4, 4, 5, 5), np.float32)
        convert(save_state_dict(sd, tmp_path / "k5.pth"), tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_convert_never_overwrites_its_source(tmp_path, net):
    src = save_vgg16_paper_npz(net, tmp_path / "vgg16_weights.npz")
    original = Path(src).read_bytes()
    os.symlink(src, tmp_path / "link.npz")
    os.link(src, tmp_path / "hard.npz")
    (tmp_path / "sub").mkdir()
    for dst in (src, tmp_path / "vgg16_weights", tmp_path / "sub" / ".." / "vgg16_weights.npz",
                tmp_path / "link.npz", tmp_path / "hard.npz"):
        with pytest.raises(ValueError, match="is the source file") as info:
            convert(src, dst)
        assert "vgg16_weights.npz" in str(info.value)
        assert Path(src).read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.npz", "link.npz", "sub",
                                                          "vgg16_weights.npz"]
    assert convert(tmp_path / "link.npz", tmp_path / "other.npz").format == "paper"


def test_convert_refuses_a_directory_as_output(tmp_path, net):
    src = net.save(tmp_path / "own.npz")
    for folder in (tmp_path / "out", tmp_path / "out.npz"):
        folder.mkdir()
        with pytest.raises(ValueError, match="is a directory") as info:
            convert(src, folder)
        assert str(folder) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.npz", "own.npz"]


def test_unrecognised_files(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(WeightsError, match="unrecognised weights file"):
        convert(tmp_path / "a.txt", tmp_path / "o.npz")
    with pytest.raises(ValueError, match="format must be one of"):
        convert(tmp_path / "a.txt", tmp_path / "o.npz", format="caffe")
    assert FORMATS == ("randvis", "paper", "torch", "keras")


# ---------------------------------------------------------------------------
# with torch: torch.save files and torch's own forward pass
# ---------------------------------------------------------------------------

def _torch_vgg(net):
    nn = torch.nn
    feats, it = [], iter(LAYERS[:13])
    for n in (2, 2, 3, 3, 3):
        for _ in range(n):
            name = next(it)
            w = net[f"{name}.weight"]
            conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
            feats += [conv, nn.ReLU(inplace=True)]
        feats.append(nn.MaxPool2d(2, 2))

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*feats)
            self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
            self.classifier = nn.Sequential(nn.Linear(32, 16), nn.ReLU(True), nn.Dropout(),
                                            nn.Linear(16, 16), nn.ReLU(True), nn.Dropout(),
                                            nn.Linear(16, 10))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    model = VGG().double().eval()
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float64))
                           for k, v in torchvision_state_dict(net).items()})
    return model


@needs_torch
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_convert_torch_save(tmp_path, net, x, legacy):
    model = _torch_vgg(net)
    assert list(model.state_dict()) == list(torchvision_state_dict(net))
    src = tmp_path / "vgg16.pth"
    torch.save(model.float().state_dict(), src, _use_new_zipfile_serialization=not legacy)
    report = convert(src, tmp_path / "out.npz")
    assert f"{'legacy' if legacy else 'zip'} serialisation" in report.notes[0]
    loaded = load_vgg16(report.dst, dtype=np.float64)
    model.double()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(loaded.predict(x), want, rtol=1e-6, atol=1e-6)
    assert_same_network(load_vgg16(report.dst), net, x)


def test_keras_without_h5py(tmp_path, monkeypatch):
    path = tmp_path / "w.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)
    with pytest.raises(ImportError, match="needs h5py"):
        convert(path, tmp_path / "o.npz")


def test_keras_nested_model_group(tmp_path, net, x):
    """A model wrapping VGG-16 keeps its weights in one group: 'vgg16/block1_conv1/kernel:0'."""
    h5py = pytest.importorskip("h5py", reason="h5py is not installed")
    flat = write_keras_h5(net, tmp_path / "flat.h5")
    nested = tmp_path / "nested.h5"
    with h5py.File(flat, "r") as f, h5py.File(nested, "w") as g:
        g.attrs["layer_names"] = np.array([b"input_2", b"vgg16"])
        g.create_group("input_2").attrs["weight_names"] = np.array([], dtype="S1")
        sub, names = g.create_group("vgg16"), []
        for layer in KERAS:
            for p in ("kernel:0", "bias:0"):
                names.append(f"{layer}/{p}".encode())
                sub.create_dataset(f"{layer}/{p}", data=f[layer][layer][p][()])
        sub.attrs["weight_names"] = np.array(names)
    report = convert(nested, tmp_path / "n.npz")
    assert report.mapping["vgg16/fc1/kernel:0"] == "fc6.weight"
    assert_same_network(load_vgg16(report.dst), net, x)
