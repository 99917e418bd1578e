"""Shared test helpers and fixtures.

Test modules import the helpers by name (``from conftest import
assert_within_rounding``); pytest finds the fixtures by itself.

Rounding bounds
    :func:`assert_within_rounding`, :func:`assert_matches_reference`
Kernel builds and thread counts
    fixture ``parallel_builds``, :func:`use_kernel_build`, :func:`at_thread_counts`
Convolution geometries
    :class:`Geometry`, :func:`draw_padding`, :func:`draw_geometries`, :func:`geometry_id`
Finite differences
    :func:`input_differences`, :func:`parameter_differences`
Calls, processes and files
    :func:`record_calls`, :func:`run_python`, :func:`npy_header`, :func:`write_huge_npz`,
    :func:`write_png`, :func:`natural_photo`
"""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import zipfile
from typing import NamedTuple

import numba
import numpy as np
import pytest

DTYPES = (np.float32, np.float64)
PAD_KINDS = ("same", "valid", "int", "pair", "quad")


# --------------------------------------------------------------------------- rounding bounds

def assert_within_rounding(got, ref, magnitude, terms, dtype):
    """Assert ``|got - ref| <= 2 (terms + 1) u * magnitude`` elementwise, u = eps/2 of ``dtype``.

    A floating-point sum of L terms t_i is within gamma_L ~= L u of the exact sum
    times sum |t_i|, whatever the summation order (Higham, *Accuracy and
    Stability of Numerical Algorithms*, ch. 3-4). With ``magnitude`` the sum of
    |t_i| of every element (the reference applied to absolute values) and
    ``ref`` computed in float64, both the fast result and the reference are
    within that bound of the exact value, so no test fails by bad luck. Also
    checks ``got``'s dtype and shape; NaN in ``got`` fails.
    """
    got, ref, magnitude = np.asarray(got), np.asarray(ref), np.asarray(magnitude)
    assert got.dtype == np.dtype(dtype), (got.dtype, dtype)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    u = np.finfo(dtype).eps / 2
    bound = 2 * (terms + 1) * u * magnitude
    err = np.abs(got.astype(np.float64) - ref)
    bad = ~(err <= bound)
    assert not bad.any(), (
        f"{bad.sum()} of {bad.size} elements off; worst err {np.nanmax(err):.3e}, "
        f"err/bound max {np.nanmax(err / np.where(bound > 0, bound, np.inf)):.3g}, terms {terms}")


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _abs64(a):
    return None if a is None else np.abs(_f64(a))


def assert_matches_reference(got, reference, arrays, params, terms, dtype):
    """Compare a kernel's output with its naive reference, to rounding.

    ``reference(*arrays, *params)`` is evaluated twice: on ``arrays`` cast to
    float64 (the value) and on their absolute values (the magnitude, valid
    for references that are sums of products of the arrays' entries);
    ``None`` entries stay ``None``. Then :func:`assert_within_rounding`.
    """
    ref = reference(*map(_f64, arrays), *params)
    mag = reference(*map(_abs64, arrays), *params)
    assert_within_rounding(got, ref, mag, terms, dtype)


# --------------------------------------------------------------------------- kernel builds, threads

def use_kernel_build(monkeypatch, build):
    """Make every numba kernel run its ``"parallel"`` or its ``"serial"`` build,
    whatever the array sizes (they normally switch at ``_numba.PARALLEL_MIN``)."""
    from randvis.kernels import _numba

    monkeypatch.setattr(_numba, "PARALLEL_MIN", {"parallel": 0, "serial": np.inf}[build])


@pytest.fixture
def parallel_builds(monkeypatch):
    """Small test arrays would take the kernels' serial builds; this fixture makes
    them take the parallel ones (the serial builds run in every small-network
    test). Use it with ``pytestmark = pytest.mark.usefixtures("parallel_builds")``."""
    use_kernel_build(monkeypatch, "parallel")


def at_thread_counts(run, counts=(1, 2), *, blas=False):
    """``[run() for each count in counts]`` with numba's kernels on that many
    threads (and, when ``blas``, every threadpoolctl pool, BLAS included,
    limited to the same count); numba's thread count is restored afterwards.
    Skips the test when numba has fewer threads than ``max(counts)``."""
    import randvis.kernels as K

    if numba.config.NUMBA_NUM_THREADS < max(counts):
        pytest.skip(f"numba has {numba.config.NUMBA_NUM_THREADS} thread(s), fewer than {max(counts)}")
    before = K.get_num_threads()
    out = []
    try:
        for t in counts:
            K.set_num_threads(t)
            assert K.get_num_threads() == t
            if blas:
                from threadpoolctl import threadpool_limits
                limit = threadpool_limits(limits=t)
            else:
                limit = contextlib.nullcontext()
            with limit:
                out.append(run())
    finally:
        K.set_num_threads(before)
    return out


# --------------------------------------------------------------------------- convolution geometries

class Geometry(NamedTuple):
    """A convolution or pooling window on a batch: ``n`` images of ``c`` channels,
    ``h x w``; ``f`` filters (``c`` for depthwise and pooling layers) of
    ``kh x kw`` at stride ``(sh, sw)``; ``padding`` as a layer takes it, of the
    ``kind`` named in :data:`PAD_KINDS`; ``seed`` numbers the geometry."""
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
        from randvis.kernels.padding import resolve_padding

        return resolve_padding(self.padding, (self.h, self.w), self.kernel, self.stride)

    @property
    def out_hw(self):
        from randvis.kernels.padding import output_hw

        return output_hw((self.h, self.w), self.kernel, self.stride, self.pads)

    def rng(self, base):
        """The geometry's own generator: ``default_rng([base, seed])``."""
        return np.random.default_rng([base, self.seed])


def geometry_id(g):
    """A test id naming every field, e.g. ``007-float32-n2c3f1-9x5-k3x2-s1x2-same0101``."""
    t, b, l, r = g.pads
    return (f"{g.seed:03d}-{np.dtype(g.dtype).name}-n{g.n}c{g.c}f{g.f}-{g.h}x{g.w}"
            f"-k{g.kh}x{g.kw}-s{g.sh}x{g.sw}-{g.kind}{t}{b}{l}{r}")


def draw_padding(rng, kind, kh, kw, pool):
    """A padding argument of ``kind`` with random pads up to 4. Pooling layers need
    every pad smaller than the window (else a window could hold no pixel), so
    ``pool`` draws pads < k; convolutions take pads up to k."""
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


def draw_geometries(seed, count, *, kernel=11, size=16, batch=4, channels=3, filters=3, pool=False,
                    dtype_every=1):
    """``count`` deterministic geometries from ``seed``. The padding kind and the
    kernel height cycle (geometry i: ``PAD_KINDS[i % 5]``, ``kh = 1 + i % kernel``)
    and the dtype changes every ``dtype_every`` geometries; kernel width, strides
    (1..3), batch (1..batch), channels (1..channels), filters (1..filters; None:
    as many as channels), image size (1..size) and pads are drawn in that order.
    Sizes and pads whose window does not fit are redrawn."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        kind = PAD_KINDS[i % len(PAD_KINDS)]
        dtype = DTYPES[(i // dtype_every) % 2]
        kh = 1 + i % kernel
        kw = int(rng.integers(1, kernel + 1))
        sh, sw = (int(s) for s in rng.integers(1, 4, size=2))
        n = int(rng.integers(1, batch + 1))
        c = int(rng.integers(1, channels + 1))
        f = c if filters is None else int(rng.integers(1, filters + 1))
        for _ in range(1000):
            h, w = (int(s) for s in rng.integers(1, size + 1, size=2))
            g = Geometry(n, c, f, h, w, kh, kw, sh, sw, kind, draw_padding(rng, kind, kh, kw, pool),
                         dtype, seed=i)
            try:
                g.out_hw
            except ValueError:
                continue
            break
        else:  # pragma: no cover - the draw always finds one
            raise RuntimeError("could not draw a fitting geometry")
        out.append(g)
    return out


# --------------------------------------------------------------------------- finite differences

def _objective(seed, logits):
    return np.sum(seed * logits)


def input_differences(net, x, seed, index, h, pieces=None):
    """Central differences ``(f(x + h e_i) - f(x - h e_i)) / (2 h)`` of
    ``f(x) = sum(seed * logits(x))`` in the flat entries ``index`` of ``x``.

    ``pieces(trace)`` returns arrays that name the linear piece of a piecewise
    linear network at an input (ReLU masks, max-pool switches); when given,
    both steps of every difference must stay in ``x``'s piece (asserted), so
    the difference is the gradient up to rounding (about eps |f| / h).
    """
    base = pieces(net.forward(x)[1]) if pieces is not None else None
    fd = np.empty(len(index))
    for k, i in enumerate(index):
        e = np.zeros(x.size)
        e[i] = h
        e = e.reshape(x.shape)
        lp, tp = net.forward(x + e)
        lm, tm = net.forward(x - e)
        if pieces is not None:
            for a, b, c in zip(base, pieces(tp), pieces(tm)):
                assert np.array_equal(a, b) and np.array_equal(a, c), "step left the linear piece"
        fd[k] = (_objective(seed, lp) - _objective(seed, lm)) / (2 * h)
    return fd


def parameter_differences(net, name, index, x, seed, h):
    """Central differences of ``sum(seed * net.predict(x))`` in the flat entries
    ``index`` of parameter ``name``. Each step is set through ``net[name] = ...``
    (so anything derived from the weights follows); the parameter is restored."""
    value = np.array(net[name], copy=True)
    fd = np.empty(len(index))
    try:
        for k, i in enumerate(index):
            f = []
            for step in (h, -h):
                moved = value.copy()
                moved.flat[i] += step
                net[name] = moved
                f.append(_objective(seed, net.predict(x)))
            fd[k] = (f[0] - f[1]) / (2 * h)
    finally:
        net[name] = value
    return fd


# --------------------------------------------------------------------------- calls, processes, files

def record_calls(monkeypatch, owner, name, *, interrupt_at=None):
    """Wrap ``owner.name`` so that each call appends ``(args, kwargs)`` to the
    returned list before running the original; with ``interrupt_at=k`` the k-th
    call raises KeyboardInterrupt instead (a run killed midway). ``monkeypatch``
    restores the original at the end of the test."""
    real = getattr(owner, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def run_python(*args, env=None, cwd=None, timeout=600):
    """Run ``python *args`` (this interpreter) in a fresh process; its stdout and
    stderr are captured as text in the returned CompletedProcess."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def npy_header(shape, descr="<f4"):
    """The bytes of a version 1.0 ``.npy`` header for a C-ordered array."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                              "shape": tuple(shape)})
    return buf.getvalue()


def write_huge_npz(path, member):
    """A valid npz whose one ``member`` claims a (100000, 100000) float32 array
    (37 GiB) and holds 64 bytes: a reader must refuse it from the header."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, npy_header((100_000, 100_000)) + b"\0" * 64)
    return path


def write_png(path, img):
    """Save a (3, h, w) image with values in [0, 1] as an 8-bit RGB PNG
    (``(img * 255).astype(uint8)``: truncation, as a photo's bytes)."""
    from PIL import Image

    Image.fromarray((np.asarray(img) * 255).astype(np.uint8).transpose(1, 2, 0)).save(path)
    return path


def natural_photo(size):
    """matplotlib's sample photo at ``size`` x ``size``, preprocessed (ImageNet
    mean removed, 0-255 scale), as a float64 (3, size, size) array."""
    from randvis.images import preprocess, sample_image

    return preprocess(sample_image("grace_hopper", size=size))[0].astype(np.float64)
