"""
Benchmarking the kernels: direct loops, im2col + GEMM, Winograd
===============================================================

One 3x3 convolution layer (64 -> 64 channels on a 48x48 image, float32), three
ways:

* **direct**: the six nested loops of the definition, compiled by numba and
  parallel over the filters. Simple, but each multiply-add loads its operands
  from memory: such loops reach a small fraction of the machine's peak.
* **im2col + GEMM**: copy the patches into a matrix
  (:func:`randvis.kernels.conv.im2col`), then one matrix product
  (:func:`randvis.kernels.gemm.matmul`, BLAS underneath). The copy is cheap and the
  product runs near peak, because BLAS reuses every loaded number many times.
* **Winograd F(2x2, 3x3)**: computes each 2x2 output tile from a 4x4 input tile
  with 16 multiplications per channel pair instead of 36, i.e. 2.25x fewer
  multiply-adds, done as 16 GEMMs (:mod:`randvis.kernels.winograd`).

GFLOP/s below counts the direct algorithm's ``2 F C k^2 H W`` floating-point
operations for all three, so it compares the time to the same answer. Timings
depend on the machine and on what else runs on it: each is the best of
several runs. The numbers printed here are from the machine that built these
pages.
"""

import time

import matplotlib.pyplot as plt
import numba
import numpy as np

from randvis import kernels as K
from randvis.kernels import reference

rng = np.random.default_rng(0)
C = F = 64
H = W = 48
k = 3
x = rng.normal(size=(1, C, H, W)).astype(np.float32)
w = (rng.normal(size=(F, C, k, k)) / np.sqrt(C * k * k)).astype(np.float32)
pads = K.resolve_padding("same", (H, W), (k, k), (1, 1))
flops = 2.0 * F * C * k * k * H * W


@numba.njit(parallel=True, cache=False)
def direct(x, w, out):
    c_in, h, wd = x.shape
    f_out = w.shape[0]
    for f in numba.prange(f_out):
        for i in range(h):
            for j in range(wd):
                acc = np.float32(0.0)
                for c in range(c_in):
                    for u in range(3):
                        for v in range(3):
                            ii, jj = i + u - 1, j + v - 1
                            if 0 <= ii < h and 0 <= jj < wd:
                                acc += w[f, c, u, v] * x[c, ii, jj]
                out[f, i, j] = acc
    return out


def run_direct():
    return direct(x[0], w, np.empty((F, H, W), np.float32))[None]


def run_gemm():
    cols = K.im2col(x, (k, k), (1, 1), pads)                 # (C k^2, H W)
    return K.matmul(w.reshape(F, -1), cols).reshape(1, F, H, W)


wino = K.winograd_filter_transform(w)  # a layer computes this once, when its weights are set


def run_winograd():
    return K.conv2d_forward(x, w, None, (1, 1), pads, wino=wino)


assert K.winograd_suits(C, F, (k, k), (1, 1), (H, W), cached=True)


def best_time(fn, repeats=7):
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# %%
# Same answer three ways
# ----------------------
# Compared with the float64 loop of :mod:`randvis.kernels.reference` (on a
# 12x12 corner, the loop is slow), each result is within float32 rounding of a
# sum of ``C k^2 = 576`` terms.

ref = reference.conv2d_forward(x[:, :, :12, :12].astype(np.float64), w.astype(np.float64), None,
                               (1, 1), K.resolve_padding("same", (12, 12), (k, k), (1, 1)))
outs = {"direct": run_direct(), "im2col + GEMM": run_gemm(), "Winograd": run_winograd()}
scale = np.abs(ref).max()
for name, y in outs.items():
    # compare away from the corner's cut edge (last row and column see pixels 12)
    err = np.abs(y[:, :, :11, :11] - ref[:, :, :11, :11]).max() / scale
    print(f"{name:14s} max error relative to max |y|: {err:.1e}")
    assert err < 576 * np.finfo(np.float32).eps

# %%
# Timings
# -------

times = {name: best_time(fn) for name, fn in
         (("direct", run_direct), ("im2col + GEMM", run_gemm), ("Winograd", run_winograd))}
a = rng.normal(size=(1024, 1024)).astype(np.float32)
t_peak = best_time(lambda: K.matmul(a, a), repeats=5)
peak = 2.0 * 1024 ** 3 / t_peak / 1e9
rates = {name: flops / t / 1e9 for name, t in times.items()}
print(f"numba threads: {numba.get_num_threads()}, one layer = {flops / 1e9:.3f} GFLOP")
for name in times:
    print(f"{name:14s} {times[name] * 1e3:7.2f} ms   {rates[name]:7.1f} GFLOP/s (direct-equivalent)")
print(f"1024^3 sgemm   {t_peak * 1e3:7.2f} ms   {peak:7.1f} GFLOP/s (what BLAS reaches here)")

# the lowering to GEMM is what makes the layer fast: it beats the direct loop
# (best-of-7 timings, so another process on the machine would have to slow
# every single run of the GEMM route to break this)
assert times["im2col + GEMM"] < times["direct"]

fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.barh(list(rates), list(rates.values()), color=["tab:gray", "tab:blue", "tab:green"])
ax.axvline(peak, color="k", linestyle="--", label="large sgemm")
ax.set_xlabel("GFLOP/s (direct-equivalent)")
ax.set_title(f"3x3 conv, {C}->{F} channels, {H}x{W}, float32")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
