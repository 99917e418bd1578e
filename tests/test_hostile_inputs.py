"""Hostile and careless files: every reader refuses them with a named error,
before it reads data it was not asked for, follows a path named inside the
file, or allocates more than the sizes it expects.

The files are built here byte by byte (zip archives, pickles, PNGs) or with
h5py; decompression bombs are deflate streams of zeros whose compressed size
is about 1/1000 of what they inflate to. Peak memory is measured in a child
process (``VmHWM``), which also contains a crash if a reader segfaults.
"""
import io
import json
import os
import pickle
import struct
import textwrap
import zipfile
import zlib

import numpy as np
import pytest

import randvis
from randvis import limits
from randvis.images import load_image
from randvis.limits import ResourceLimitError
from randvis.network import Sequential
from randvis.safeio import NpzError, NpzReader, load_npz
from randvis.torchfile import CheckpointError, load_state_dict
from randvis.weights import WeightsError, convert, load_vgg16, save_vgg16_paper_npz

from conftest import run_python
from torch_writer import MAGIC, T, pickle_body, write_zip
from test_weights import SMALL, write_keras_h5

MiB = 1 << 20
GiB = 1 << 30

#: the child's peak resident memory in MiB: VmHWM belongs to the process image, so
#: unlike ru_maxrss it does not carry over the parent's peak through fork and exec
PEAK_MIB = ("int(next(l.split()[1] for l in __import__('pathlib').Path('/proc/self/status')"
            ".read_text().splitlines() if l.startswith('VmHWM:'))) // 1024")
needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                                reason="peak memory is read from /proc/self/status (Linux)")


def _child(code, ok=True):
    proc = run_python("-c", textwrap.dedent(code), timeout=300)
    assert (proc.returncode == 0) == ok, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    return proc.stdout.strip()


# ---------------------------------------------------------------------------
# builders: zip archives with deflate bombs, .npy headers, PNGs
# ---------------------------------------------------------------------------

class Zeros:
    """A zip member: ``prefix`` followed by ``n`` zero bytes (n a multiple of 1 MiB),
    deflated block by block, so a gigabyte costs about a megabyte on disk."""

    def __init__(self, n, prefix=b""):
        assert n % MiB == 0
        self.n, self.prefix = n, prefix

    def deflated(self):
        blocks = zlib.compressobj(9, zlib.DEFLATED, -15)
        # after a full flush the compressor starts afresh: one MiB of zeros always
        # deflates to the same bytes, so the stream is that block repeated
        block = blocks.compress(bytes(MiB)) + blocks.flush(zlib.Z_FULL_FLUSH)
        head = zlib.compressobj(9, zlib.DEFLATED, -15)
        start = head.compress(self.prefix) + head.flush(zlib.Z_FULL_FLUSH)
        return start + block * (self.n // MiB) + head.flush(zlib.Z_FINISH)

    def crc(self):
        crc, zeros = zlib.crc32(self.prefix), bytes(MiB)
        for _ in range(self.n // MiB):
            crc = zlib.crc32(zeros, crc)
        return crc

    def __len__(self):
        return len(self.prefix) + self.n


def write_raw_zip(path, members):
    """A zip archive of deflated members ``{name: bytes or Zeros}``, written by hand
    (zipfile cannot store a stream it did not compress itself)."""
    out, central = io.BytesIO(), []
    for name, data in members.items():
        if isinstance(data, Zeros):
            comp, crc = data.deflated(), data.crc()
        else:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            comp, crc = c.compress(data) + c.flush(), zlib.crc32(data)
        fname = name.encode()
        offset = out.tell()
        fields = (20, 0, 8, 0, 0x21, crc, len(comp), len(data), len(fname))
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0) + fname + comp)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, 0,
                                   offset) + fname)
    start = out.tell()
    out.write(b"".join(central))
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central),
                          out.tell() - start, start, 0))
    path.write_bytes(out.getvalue())
    return path


def npy_header(shape, descr="<f4"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                              "shape": tuple(shape)})
    return buf.getvalue()


def npz_members(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_black_png(path, width, height):
    """An 8-bit RGB PNG of zeros, deflated block by block (9600 x 9600: 268 KB on disk)."""
    row = 1 + 3 * width                         # filter byte + RGB
    rows_per_block = max(1, (4 * MiB) // row)
    blocks = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = blocks.compress(bytes(row * rows_per_block)) + blocks.flush(zlib.Z_FULL_FLUSH)
    full, rest = divmod(height, rows_per_block)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = block * full + tail.compress(bytes(row * rest)) + tail.flush(zlib.Z_FINISH)
    zeros, adler = bytes(row * rows_per_block), 1
    for _ in range(full):
        adler = zlib.adler32(zeros, adler)
    adler = zlib.adler32(zeros[:row * rest], adler)
    idat = b"\x78\xda" + stream + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))
    return path


def deep_tuple(depth):
    """Pickle opcodes pushing a tuple nested ``depth`` deep: ((((),),),)..."""
    return b")" + b"\x85" * depth


def write_legacy_raw(path, obj_pickle, keys_pickle, storages=b""):
    """A legacy checkpoint from its object and key-list pickles and raw storage records."""
    path.write_bytes(pickle.dumps(MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
                     + pickle.dumps({"little_endian": True}, protocol=2)
                     + obj_pickle + keys_pickle + storages)
    return path


@pytest.fixture(scope="module")
def small_vgg():
    return randvis.vgg16(rng=0, **SMALL)


@pytest.fixture
def h5py():
    return pytest.importorskip("h5py", reason="h5py is not installed")


# ---------------------------------------------------------------------------
# Keras .h5: nothing outside the file is ever read
# ---------------------------------------------------------------------------

SECRET = b"TOP SECRET: launch code 0451; this file must never be copied out!!"[:64]


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_bytes(SECRET)
    # ASCII text read as little-endian float32: finite numbers, so no value check catches it
    assert np.isfinite(np.frombuffer(SECRET, "<f4")).all() and len(SECRET) == 64
    return path


@pytest.fixture
def reads(monkeypatch, h5py):
    """The names of the datasets whose data h5py reads (through [] or numpy)."""
    seen = []
    getitem, array = h5py.Dataset.__getitem__, h5py.Dataset.__array__

    def spy_getitem(self, *args, **kwargs):
        seen.append(self.name)
        return getitem(self, *args, **kwargs)

    def spy_array(self, *args, **kwargs):
        seen.append(self.name)
        return array(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy_getitem)
    monkeypatch.setattr(h5py.Dataset, "__array__", spy_array)
    return seen


def _keras(tmp_path, net, name="weights.h5"):
    return write_keras_h5(net, tmp_path / name)


def _replace(h5py, path, key, **create):
    """Replace dataset ``key`` by one of the same dtype made with ``create``
    (by default: the same shape, no data written)."""
    with h5py.File(path, "r+") as f:
        shape, dtype = f[key].shape, f[key].dtype
        del f[key]
        f.create_dataset(key, shape=create.pop("shape", shape), dtype=dtype, **create)


def _assert_refused(tmp_path, src, words, reads):
    dst = tmp_path / "out.npz"
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(WeightsError) as info:
        convert(src, dst)
    msg = str(info.value)
    assert str(src) in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    assert reads == [], f"data read before the refusal: {reads}"
    assert sorted(tmp_path.rglob("*")) == before     # nothing written, no temporary left
    with pytest.raises(WeightsError):
        load_vgg16(src)
    return msg


BIAS = "/fc2/fc2/bias:0"        # fc7.bias, 16 float32 = 64 bytes, stored without transposition


def test_keras_external_raw_storage_refused(tmp_path, small_vgg, secret, reads, h5py):
    src = _keras(tmp_path, small_vgg)
    _replace(h5py, src, BIAS, external=[(str(secret), 0, 64)])
    msg = _assert_refused(tmp_path, src, [BIAS, "external", "secret.txt"], reads)
    assert "refused" in msg


def test_keras_external_link_refused(tmp_path, small_vgg, reads, h5py):
    src = _keras(tmp_path, small_vgg)
    other = tmp_path / "other.h5"
    with h5py.File(src, "r") as f, h5py.File(other, "w") as g:
        f.copy("fc2", g)
    with h5py.File(src, "r+") as f:
        del f["fc2"]
        f["fc2"] = h5py.ExternalLink(str(other), "/fc2")
    _assert_refused(tmp_path, src, ["/fc2", "external link", "other.h5"], reads)


def test_keras_soft_links_refused(tmp_path, small_vgg, reads, h5py):
    src = _keras(tmp_path, small_vgg)
    with h5py.File(src, "r+") as f:
        del f[BIAS]
        f[BIAS] = h5py.SoftLink("/fc1/fc1/bias:0")       # inside the file, same shape
    _assert_refused(tmp_path, src, [BIAS, "soft link"], reads)
    src = _keras(tmp_path, small_vgg, "dangling.h5")
    with h5py.File(src, "r+") as f:
        f["fc2/elsewhere"] = h5py.SoftLink("/nowhere/at/all")
    _assert_refused(tmp_path, src, ["/fc2/elsewhere", "soft link"], reads)


def test_keras_virtual_dataset_refused(tmp_path, small_vgg, secret, reads, h5py):
    src = _keras(tmp_path, small_vgg)
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as g:
        g["data"] = np.frombuffer(SECRET, "<f4")
    layout = h5py.VirtualLayout(shape=(16,), dtype="<f4")
    layout[:] = h5py.VirtualSource(str(outside), "data", shape=(16,))
    with h5py.File(src, "r+") as f:
        del f[BIAS]
        f["fc2/fc2"].create_virtual_dataset("bias:0", layout)
    _assert_refused(tmp_path, src, [BIAS, "virtual dataset", "outside.h5"], reads)


def test_keras_huge_unallocated_dataset_refused_before_reading(tmp_path, small_vgg, reads, h5py):
    src = _keras(tmp_path, small_vgg)
    _replace(h5py, src, "/fc2/fc2/kernel:0", shape=(25000, 25000))
    assert os.path.getsize(src) < 200_000          # 2.5 GB declared, nothing stored
    msg = _assert_refused(tmp_path, src, ["fc2/kernel:0", "(25000, 25000)", "(16, 16)"], reads)
    # the same shape with data that is not stored: refused as unallocated, before reading
    src = _keras(tmp_path, small_vgg, "unallocated.h5")
    _replace(h5py, src, "/fc2/fc2/kernel:0")
    _assert_refused(tmp_path, src, ["fc2/kernel:0", "no stored data"], reads)
    assert "expected" in msg


# ---------------------------------------------------------------------------
# PyTorch checkpoints: strides, storages, pickles
# ---------------------------------------------------------------------------

def test_zero_stride_tensor_refused_before_materialising(tmp_path):
    one = struct.pack("<f", 1.0)
    path = write_zip(tmp_path / "z.pth", {"w": T("0", 0, (23000, 23000), (0, 0))},
                     {"0": ("FloatStorage", one)})
    assert os.path.getsize(path) < 1000
    with pytest.raises(CheckpointError, match=r"z\.pth.*'w'.*\(23000, 23000\).*1 element"):
        load_state_dict(path)
    # overlapping non-zero strides expand a storage the same way
    path = write_zip(tmp_path / "o.pth", {"w": T("0", 0, (300, 300), (1, 1))},
                     {"0": ("FloatStorage", np.zeros(600, "<f4").tobytes())})
    with pytest.raises(CheckpointError, match=r"o\.pth.*'w'.*90000 elements.*600"):
        load_state_dict(path)
    # a zero stride over a dimension of size 1 is harmless and still read
    path = write_zip(tmp_path / "ok.pth", {"w": T("0", 0, (1, 3), (0, 1))},
                     {"0": ("FloatStorage", np.arange(3, dtype="<f4").tobytes())})
    assert load_state_dict(path)["w"].tolist() == [[0.0, 1.0, 2.0]]


def test_state_dict_memory_checked_before_reading(tmp_path, monkeypatch):
    path = write_zip(tmp_path / "m.pth", {"w": T("0", 0, (64, 64), (64, 1))},
                     {"0": ("FloatStorage", np.zeros(4096, "<f4").tobytes())})
    with limits.limit("memory", 10_000), pytest.raises(ResourceLimitError, match=r"m\.pth.*memory limit"):
        load_state_dict(path)
    assert load_state_dict(path)["w"].shape == (64, 64)


def test_pickle_larger_than_the_limit_refused(tmp_path):
    pkl = b"\x80\x02}." + bytes(1024)     # a valid pickle, then padding it never reads
    path = write_raw_zip(tmp_path / "p.pth", {"archive/data.pkl": Zeros(65 * MiB, prefix=pkl)})
    with pytest.raises(CheckpointError, match=r"p\.pth.*data\.pkl.*65\.0 MiB.*64\.0 MiB"):
        load_state_dict(path)


@needs_proc
def test_storage_record_read_only_up_to_its_size(tmp_path):
    # the storage record inflates to 1 GiB; the tensor needs 16 bytes of it
    pkl = zipfile.ZipFile(write_zip(tmp_path / "good.pth", {"w": T("0", 0, (4,), (1,))},
                                    {"0": ("FloatStorage", bytes(16))})).read("archive/data.pkl")
    path = write_raw_zip(tmp_path / "s.pth", {"archive/data.pkl": pkl,
                                              "archive/data/0": Zeros(GiB)})
    code = f"""
        from randvis.torchfile import load_state_dict
        w = load_state_dict({str(path)!r})["w"]
        print(w.tolist(), {PEAK_MIB})
    """
    out = _child(code)
    values, peak = out.split("]")
    assert values == "[0.0, 0.0, 0.0, 0.0" and int(peak) < 400, out


NESTED_ZIP_KEY = b"\x80\x02}" + deep_tuple(200_000) + b"K\x01s."

def test_deeply_nested_pickles_refused_without_crashing(tmp_path):
    nested = write_raw_zip(tmp_path / "nested.pth", {"archive/data.pkl": NESTED_ZIP_KEY})
    assert os.path.getsize(nested) < 250_000
    # a legacy file whose object is a one-tensor state_dict and whose storage key
    # list holds a 200,000-deep tuple
    storages = {"0": ("FloatStorage", bytes(4))}
    obj = b"\x80\x02" + pickle_body({"w": T("0", 0, (1,), (1,))}, storages, True) + b"."
    legacy = write_legacy_raw(tmp_path / "legacy.pth", obj,
                              b"\x80\x02]" + deep_tuple(200_000) + b"a.",
                              struct.pack("<q", 1) + bytes(4))
    code = f"""
        from randvis.torchfile import load_state_dict, CheckpointError
        for path in ({str(nested)!r}, {str(legacy)!r}):
            try:
                load_state_dict(path)
                print("LOADED", path)
            except CheckpointError as exc:
                print("REFUSED", exc)
    """
    lines = _child(code).splitlines()
    assert len(lines) == 2, lines
    for line, name in zip(lines, ("nested.pth", "legacy.pth")):
        assert line.startswith("REFUSED") and name in line and "nested" in line, line
        assert "depth" in line and "100" in line, line


def test_pickle_container_and_string_bounds(tmp_path, monkeypatch):
    from randvis import safeio
    monkeypatch.setattr(safeio, "MAX_PICKLE_ITEMS", 10)
    monkeypatch.setattr(safeio, "MAX_PICKLE_STRING", 100)
    monkeypatch.setattr(safeio, "MAX_PICKLE_OBJECTS", 500)
    cases = {
        "list": (b"\x80\x02}X\x01\x00\x00\x00a](" + b"K\x01" * 11 + b"es.", "11 items", "10"),
        "tuple": (b"\x80\x02}X\x01\x00\x00\x00a(" + b"K\x01" * 11 + b"ts.", "11 items", "10"),
        "dict": (b"\x80\x02}(" + b"".join(b"K" + bytes([i]) + b"N" for i in range(11)) + b"u.",
                 "11 items", "10"),
        "string": (b"\x80\x02}X\x01\x00\x00\x00aX\x65\x00\x00\x00" + b"x" * 101 + b"s.",
                   "101 bytes", "100"),
        "objects": (b"\x80\x02]" + b"(K\x011" * 600 + b".", "objects", "500"),
        # a list that holds itself (through the memo): its depth has no bound
        "recursive": (b"\x80\x02}X\x01\x00\x00\x00a]q\x00h\x00as.", "recursive", "100"),
    }
    for name, (pkl, words, limit) in cases.items():
        path = write_raw_zip(tmp_path / f"{name}.pth", {"archive/data.pkl": pkl})
        with pytest.raises(CheckpointError) as info:
            load_state_dict(path)
        msg = str(info.value)
        assert f"{name}.pth" in msg and words in msg and limit in msg, (name, msg)
    # within the bounds the same structures are read (and then found to hold no tensors)
    ok = write_raw_zip(tmp_path / "ok.pth",
                       {"archive/data.pkl": b"\x80\x02}X\x01\x00\x00\x00a](" + b"K\x01" * 10 + b"es."})
    with pytest.raises(CheckpointError, match="no tensors found"):
        load_state_dict(ok)


# ---------------------------------------------------------------------------
# .npz: headers checked before any data is allocated or inflated
# ---------------------------------------------------------------------------

def test_npz_header_claiming_37_gib_refused_from_the_header(tmp_path, small_vgg):
    members = npz_members(save_vgg16_paper_npz(small_vgg, tmp_path / "good.npz"))
    members["fc7_W.npy"] = npy_header((100_000, 100_000))          # 37.3 GiB, no data
    path = write_raw_zip(tmp_path / "huge.npz", members)
    with pytest.raises(ValueError) as info:
        load_vgg16(path)
    assert "huge.npz" in str(info.value) and "fc7_W" in str(info.value)
    assert "(100000, 100000)" in str(info.value)
    with pytest.raises(ResourceLimitError, match=r"huge\.npz.*fc7_W.*37\.3 GiB.*memory limit"):
        load_npz(path)
    with NpzReader(path) as npz:                   # one member: checked on its own
        assert npz.headers["fc7_W"].nbytes == 4 * 10**10
        with pytest.raises(ResourceLimitError, match=r"huge\.npz.*fc7_W.*37\.3 GiB"):
            npz.read("fc7_W")
    net_members = npz_members(small_vgg.save(tmp_path / "net.npz"))
    net_members["fc7.weight.npy"] = npy_header((100_000, 100_000))
    with pytest.raises(ResourceLimitError, match=r"bad-net\.npz.*fc7\.weight.*37\.3 GiB"):
        Sequential.load(write_raw_zip(tmp_path / "bad-net.npz", net_members))


def test_npz_unexpected_member_never_inflated(tmp_path, small_vgg, monkeypatch):
    from randvis import safeio
    members = npz_members(save_vgg16_paper_npz(small_vgg, tmp_path / "good.npz"))
    members["junk.npy"] = Zeros(64 * MiB, prefix=npy_header((16 * MiB,)))
    path = write_raw_zip(tmp_path / "junk.npz", members)
    read = []
    original = safeio.NpzReader.read
    monkeypatch.setattr(safeio.NpzReader, "read",
                        lambda self, name, **kw: read.append(name) or original(self, name, **kw))
    with pytest.raises(WeightsError, match=r"junk\.npz.*unexpected keys: junk"):
        load_vgg16(path)
    assert read == []
    # a member whose data run past its header's shape is refused, not trusted
    members = npz_members(save_vgg16_paper_npz(small_vgg, tmp_path / "good.npz"))
    members["fc8_b.npy"] += bytes(8)
    with pytest.raises(NpzError, match=r"long\.npz.*fc8_b.*more data than its header"):
        load_npz(write_raw_zip(tmp_path / "long.npz", members))
    members["fc8_b.npy"] = members["fc8_b.npy"][:-16]
    with pytest.raises(NpzError, match=r"short\.npz.*fc8_b.*data end"):
        load_npz(write_raw_zip(tmp_path / "short.npz", members))


def test_npz_object_array_and_max_bytes(tmp_path):
    path = tmp_path / "o.npz"
    np.savez(path, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(NpzError, match=r"o\.npz.*'a'.*object array"):
        load_npz(path)
    np.savez(path, a=np.zeros(100), b=np.zeros(3))
    with pytest.raises(NpzError, match=r"o\.npz.*2 arrays hold 824 B.*800 B"):
        load_npz(path, max_bytes=800)
    assert load_npz(path, names=["b"], max_bytes=800)["b"].shape == (3,)


# ---------------------------------------------------------------------------
# architecture JSON
# ---------------------------------------------------------------------------

def _net_file(tmp_path, net, arch_text, name="net.npz"):
    members = npz_members(net.save(tmp_path / "orig.npz"))
    members["__architecture__.npy"] = _npy_bytes(np.array(arch_text))
    return write_raw_zip(tmp_path / name, members)


def _npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_architecture_json_nesting_and_size_bounded(tmp_path, small_vgg, monkeypatch):
    from randvis import network
    path = _net_file(tmp_path, small_vgg, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"net\.npz.*__architecture__.*nested 100000 deep.*64"):
        Sequential.load(path)
    arch = small_vgg.architecture()
    monkeypatch.setattr(network, "MAX_LAYERS", 10)
    path = _net_file(tmp_path, small_vgg, json.dumps(arch), "many.npz")
    with pytest.raises(ValueError, match=rf"many\.npz.*{len(arch['layers'])} layers.*10"):
        Sequential.load(path)


# ---------------------------------------------------------------------------
# images: the pixel count is read from the header
# ---------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_image_pixel_limit_from_the_header(tmp_path):
    path = write_black_png(tmp_path / "black.png", 40, 30)
    assert load_image(path).shape == (3, 30, 40)
    with limits.limit("image_pixels", 1199), \
            pytest.raises(ResourceLimitError, match=r"black\.png.*40x30 = 1,200 pixels.*1,199"):
        load_image(path)
    big = write_black_png(tmp_path / "big.png", 9600, 9600)
    assert os.path.getsize(big) < 300_000
    with pytest.raises(ResourceLimitError, match=r"big\.png.*9600x9600 = 92,160,000 pixels"):
        load_image(big)


# ---------------------------------------------------------------------------
# peak memory: every bomb refused (or read within its size) in a child process
# ---------------------------------------------------------------------------

@needs_proc
def test_peak_memory_of_hostile_files(tmp_path, small_vgg, h5py):
    one = struct.pack("<f", 1.0)
    zero_stride = write_zip(tmp_path / "stride.pth", {"w": T("0", 0, (23000, 23000), (0, 0))},
                            {"0": ("FloatStorage", one)})
    pkl = b"\x80\x02}."
    pickle_bomb = write_raw_zip(tmp_path / "pkl.pth", {"archive/data.pkl": Zeros(GiB, prefix=pkl)})
    members = npz_members(save_vgg16_paper_npz(small_vgg, tmp_path / "good.npz"))
    members["junk.npy"] = Zeros(GiB, prefix=npy_header((GiB // 4,)))
    npz_bomb = write_raw_zip(tmp_path / "junk.npz", members)
    net_members = npz_members(small_vgg.save(tmp_path / "net.npz"))
    net_members["extra.weight.npy"] = Zeros(GiB, prefix=npy_header((GiB // 4,)))
    net_bomb = write_raw_zip(tmp_path / "net-bomb.npz", net_members)
    h5 = write_keras_h5(small_vgg, tmp_path / "w.h5")
    with h5py.File(h5, "r+") as f:
        del f["/fc2/fc2/kernel:0"]
        f.create_dataset("/fc2/fc2/kernel:0", shape=(25000, 25000), dtype="<f4")
    png = write_black_png(tmp_path / "big.png", 9600, 9600)
    cases = [("torch", zero_stride), ("torch", pickle_bomb), ("vgg", npz_bomb),
             ("net", net_bomb), ("vgg", h5), ("image", png)]
    code = f"""
        from randvis.images import load_image
        from randvis.network import Sequential
        from randvis.torchfile import load_state_dict
        from randvis.weights import load_vgg16
        read = {{"torch": load_state_dict, "vgg": load_vgg16, "net": Sequential.load,
                 "image": load_image}}
        for kind, path in {[(k, str(p)) for k, p in cases]!r}:
            try:
                read[kind](path)
                outcome = "LOADED"
            except ValueError as exc:
                outcome = type(exc).__name__ + ": " + str(exc)[:300].replace(chr(10), " ")
            print({PEAK_MIB}, path.rsplit("/", 1)[1], outcome, flush=True)
    """
    lines = _child(code).splitlines()
    assert len(lines) == len(cases), lines
    for line in lines:
        peak, name, outcome = line.split(" ", 2)
        assert not outcome.startswith("LOADED") and name in outcome, line
        assert int(peak) < 500, line


def test_vgg16_architecture_json_bounded_too(tmp_path, small_vgg):
    path = _net_file(tmp_path, small_vgg, "{\"a\": " * 1000 + "1" + "}" * 1000, "vgg.npz")
    with pytest.raises(WeightsError, match=r"vgg\.npz: __architecture__: JSON nested 1000 deep"):
        load_vgg16(path)
