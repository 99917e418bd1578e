"""Small layers: per-call latency of randvis's numba+BLAS kernels vs plain numpy.

A 16 -> 16 channel 3x3 convolution ("same" padding) on a 32x32 image, batch 1,
float32: ``randvis.kernels.conv2d_forward`` and ``conv2d_backward_input``,
a 2x2 max-pool forward/backward, the fused bias+ReLU forward and the stacked
three-rule ReLU backward, and a whole tiny network
(``randvis.three_layer_cnn(16, kernel_size=3, input_shape=(3, 32, 32))``)
forward and forward + three maps (``randvis.visualize``), each against a
plain-numpy implementation of the same computation in the same run (numpy
im2col via sliding_window_view + one BLAS GEMM for the conv forward; one GEMM
+ nine shifted slice-adds (col2im) for its input gradient; reshape/argmax for
the pooling).

Per call it prints the median, mean, 99th percentile and maximum in
microseconds and how many calls took longer than ``--stall-ms``: on 2 cores
numba's parallel regions alternate with OpenBLAS's threads, and a threading
layer whose idle workers spin (or sleep too deeply) shows up as
multi-millisecond outliers, not in the median. Regimes: randvis and numpy calls
interleaved (A B A B ..., so machine noise hits both alike and the ratio is
fair), back-to-back blocks, an idle gap before every call (``--gap-ms``: the
worker threads go to sleep and must be woken), and the fixed cost of one numba
parallel kernel call (a 1-element ReLU) and a numba kernel alternating with a
small BLAS GEMM, with numba at its default thread count and at one thread. The
garbage collector is disabled inside the timed loops.

Run:  python benchmarks/bench_small_layer.py [--calls 2000] [--gap-ms 1]
"""
from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import _common as C
import randvis
from randvis import kernels as K
from randvis.methods import METHODS


# ---------------------------------------------------------------- plain numpy
def np_conv_forward(x, w, pad):
    """im2col with sliding_window_view (copied by the reshape) + one BLAS GEMM."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))          # (n, c, ho, wo, kh, kw)
    ho, wo = win.shape[2:4]
    cols = win.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * ho * wo)
    y = w.reshape(f, -1) @ cols                                    # (f, n*ho*wo)
    return y.reshape(f, n, ho, wo).transpose(1, 0, 2, 3)


def np_conv_backward_input(g, w, pad):
    """One BLAS GEMM W^T g, then col2im as kh*kw shifted slice-adds."""
    n, f, ho, wo = g.shape
    _, c, kh, kw = w.shape
    g2 = g.transpose(1, 0, 2, 3).reshape(f, n * ho * wo)
    dcols = (w.reshape(f, -1).T @ g2).reshape(c, kh, kw, n, ho, wo)
    dxp = np.zeros((n, c, ho + kh - 1, wo + kw - 1), dtype=g.dtype)
    for ki in range(kh):
        for kj in range(kw):
            dxp[:, :, ki:ki + ho, kj:kj + wo] += dcols[:, ki, kj].transpose(1, 0, 2, 3)
    return dxp[:, :, pad:pad + ho - (kh - 1 - 2 * pad), pad:pad + wo - (kw - 1 - 2 * pad)]


def np_maxpool_forward(x):
    n, c, h, w = x.shape
    v = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    arg = v.argmax(axis=-1)
    return np.take_along_axis(v, arg[..., None], -1)[..., 0], arg


def np_maxpool_backward(g, arg):
    n, c, ho, wo = g.shape
    m = arg.shape[0]
    dv = np.zeros((n, c, ho, wo, 4), dtype=g.dtype)
    np.put_along_axis(dv, np.concatenate([arg] * (n // m))[..., None], g[..., None], -1)
    return dv.reshape(n, c, ho, wo, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * ho, 2 * wo)


def np_rule_backward(g, mask, n_rules=3):
    """Saliency, DeconvNet, GBP blocks of a stacked g through a ReLU."""
    m = g.shape[0] // n_rules
    out = np.empty_like(g)
    out[:m] = g[:m] * mask
    out[m:2 * m] = np.maximum(g[m:2 * m], 0)
    out[2 * m:] = np.maximum(g[2 * m:], 0) * mask
    return out


class NumpyTinyNet:
    """randvis.three_layer_cnn (conv 3x3 same, no bias -> ReLU -> flatten -> dense) in plain numpy."""

    def __init__(self, net):
        p = net.parameters()
        self.w = p["conv1.weight"]
        self.v = p["fc.weight"]
        self.fb = p.get("fc.bias")
        assert "conv1.bias" not in p, "expected a bias-free conv"
        self.pad = self.w.shape[2] // 2

    def forward(self, x):
        y = np_conv_forward(x, self.w, self.pad)
        mask = y > 0
        a = np.where(mask, y, 0).astype(x.dtype)
        logits = a.reshape(a.shape[0], -1) @ self.v.T
        if self.fb is not None:
            logits += self.fb
        return logits, mask

    def visualize(self, x):
        logits, mask = self.forward(x)
        seed = np.zeros_like(logits)
        seed[np.arange(len(seed)), logits.argmax(1)] = 1
        g = np.concatenate([seed] * 3) @ self.v                       # (3n, f*h*w)
        g = np_rule_backward(g.reshape((3 * x.shape[0],) + mask.shape[1:]), mask)
        dx = np_conv_backward_input(g, self.w, self.pad)
        return {m: dx[i * x.shape[0]:(i + 1) * x.shape[0]] for i, m in enumerate(METHODS)}


# ---------------------------------------------------------------- timing
def _timed(fn, gap):
    if gap:
        time.sleep(gap)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def lat(fns, calls, warmup, gap=0.0):
    """Per-call seconds of each function in ``fns``, called in turn (A B A B ...)
    ``calls`` times after ``warmup`` rounds, GC off, optional idle gap before each call.
    With one function this is a plain back-to-back loop."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    out = np.empty((len(fns), calls))
    gc.collect()
    gc.disable()
    try:
        for i in range(calls):
            for k, fn in enumerate(fns):
                out[k, i] = _timed(fn, gap)
    finally:
        gc.enable()
    return out


def stats_row(label, ts, stall, ref=None, load=None):
    us = ts * 1e6
    row = [label, len(ts), f"{np.median(us):.1f}", f"{us.mean():.1f}", f"{np.percentile(us, 99):.1f}",
           f"{us.max():.1f}", int((ts > stall).sum())]
    row.append(f"{np.median(ts) / np.median(ref):.2f}" if ref is not None else "")
    row.append(C.load_note(*load) if load is not None else "")
    return row


HEAD = ["call", "n", "median us", "mean us", "p99 us", "max us", "> stall", "randvis/numpy",
        "other/steal cores"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000, help="timed calls per kernel row")
    ap.add_argument("--net-calls", type=int, default=500, help="timed calls per tiny-network row")
    ap.add_argument("--gap-calls", type=int, default=300, help="timed calls per idle-gap row")
    ap.add_argument("--warmup", type=int, default=50, help="untimed calls before each row")
    ap.add_argument("--gap-ms", type=float, default=1.0, help="idle time before each call in the gap rows")
    ap.add_argument("--stall-ms", type=float, default=1.0, help="a call slower than this counts as a stall")
    C.add_quiet_options(ap, wait=30.0, unit="row")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args(argv)
    stall = args.stall_ms * 1e-3
    gap = args.gap_ms * 1e-3
    c, s = args.channels, args.size

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, c, s, s), dtype=np.float32)
    w = (rng.standard_normal((c, c, 3, 3), dtype=np.float32) * np.sqrt(2 / (9 * c))).astype(np.float32)
    g = rng.standard_normal((1, c, s, s), dtype=np.float32)
    pads, stride = (1, 1, 1, 1), (1, 1)
    g3 = rng.standard_normal((3, c, s, s), dtype=np.float32)

    net = randvis.three_layer_cnn(c, kernel_size=3, input_shape=(3, s, s), rng=0)
    ref = NumpyTinyNet(net)
    xi = rng.random((1, 3, s, s), dtype=np.float32)

    # ---- correctness of the numpy versions (and a first call of every kernel)
    y_rv = K.conv2d_forward(x, w, None, stride, pads)
    y_np = np_conv_forward(x, w, 1)
    dx_rv = K.conv2d_backward_input(g, w, (s, s), stride, pads)
    dx_np = np_conv_backward_input(g, w, 1)
    p_rv, sw = K.maxpool2d_forward(y_rv, (2, 2), (2, 2), (0, 0, 0, 0))
    p_np, arg = np_maxpool_forward(y_np)
    gp3 = rng.standard_normal((3,) + p_rv.shape[1:], dtype=np.float32)
    pb_rv = K.maxpool2d_backward(gp3, sw, (s, s))
    pb_np = np_maxpool_backward(gp3, arg)
    a_rv, mask = net.layers[1].forward(y_rv)  # the ReLU layer
    rb_rv = np.concatenate([K.relu_backward(g3[i:i + 1], mask, r.forward_mask, r.backward_relu)
                            for i, r in enumerate(randvis.get_rule(m) for m in METHODS)])
    rb_np = np_rule_backward(g3, mask)
    maps_rv = randvis.visualize(net, xi, target="max")
    maps_np = ref.visualize(xi)

    def rel(a, b):
        return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))

    C.print_environment(f"bench_small_layer: {c}->{c} conv 3x3 same at {s}x{s}, batch 1, float32")
    print("agreement randvis vs plain numpy (relative L2): "
          f"conv fwd {rel(y_rv, y_np):.1e}, conv bwd-input {rel(dx_rv, dx_np):.1e}, "
          f"maxpool fwd {rel(p_rv, p_np):.1e}, maxpool bwd {rel(pb_rv, pb_np):.1e}, "
          f"relu rules bwd {rel(rb_rv, rb_np):.1e}, tiny-net maps "
          + ", ".join(f"{m} {rel(maps_rv[m], maps_np[m]):.1e}" for m in METHODS))
    print(f"timing: perf_counter per call; {args.calls} calls per kernel row, {args.net_calls} per network row, "
          f"{args.warmup} warm-up calls; stall = call > {args.stall_ms:g} ms; GC disabled in the loops")
    print("'other/steal cores': cores kept busy by other processes on the machine (/proc/stat minus this "
          "process) and hypervisor steal during the row (for an interleaved pair: both calls); a disturbed "
          "row is repeated, up to --attempts tries")
    print()
    C.flush()

    rules = tuple(randvis.get_rule(m) for m in METHODS)

    def relu_bwd_rv():
        # the stacked three-rule ReLU backward exactly as the ReLU layer runs it
        return net.layers[1].backward(g3, mask, rules)

    kernels = [
        ("conv fwd 16->16 3x3", lambda: K.conv2d_forward(x, w, None, stride, pads),
         lambda: np_conv_forward(x, w, 1)),
        ("conv bwd-input", lambda: K.conv2d_backward_input(g, w, (s, s), stride, pads),
         lambda: np_conv_backward_input(g, w, 1)),
        ("conv bwd-input, 3 maps stacked", lambda: K.conv2d_backward_input(g3, w, (s, s), stride, pads),
         lambda: np_conv_backward_input(g3, w, 1)),
        ("maxpool 2x2 fwd", lambda: K.maxpool2d_forward(y_rv, (2, 2), (2, 2), (0, 0, 0, 0)),
         lambda: np_maxpool_forward(y_np)),
        ("maxpool 2x2 bwd, 3 maps", lambda: K.maxpool2d_backward(gp3, sw, (s, s)),
         lambda: np_maxpool_backward(gp3, arg)),
        ("relu fwd (+mask)", lambda: net.layers[1].forward(y_rv),
         lambda: (lambda m_: (np.where(m_, y_np, 0), m_))(y_np > 0)),
        ("relu bwd, 3 rules stacked", relu_bwd_rv, lambda: np_rule_backward(g3, mask)),
    ]
    nets = [
        ("tiny net forward", lambda: net.forward(xi), lambda: ref.forward(xi)),
        ("tiny net fwd + 3 maps", lambda: randvis.visualize(net, xi, target="max"),
         lambda: ref.visualize(xi)),
    ]

    def section(title, items, calls, gap_s=0.0, interleave=True):
        rows = []
        for label, f_rv, f_np in items:
            if interleave:
                (t_rv, t_np), l_rv, k = C.run_quiet(lambda: lat([f_rv, f_np], calls, args.warmup, gap_s),
                                                    args.quiet_wait, args.attempts)
                l_rv = l_rv + (k,)
                l_np = None
            else:
                (t_rv,), l_rv, k = C.run_quiet(lambda: lat([f_rv], calls, args.warmup, gap_s),
                                               args.quiet_wait, args.attempts)
                (t_np,), l_np, k2 = C.run_quiet(lambda: lat([f_np], calls, args.warmup, gap_s),
                                                args.quiet_wait, args.attempts)
                l_rv, l_np = l_rv + (k,), l_np + (k2,)
            rows.append(stats_row(f"randvis  {label}", t_rv, stall, t_np, l_rv))
            rows.append(stats_row(f"numpy    {label}", t_np, stall, None, l_np))
        print(title)
        print(C.table(HEAD, rows))
        print()
        C.flush()

    section("kernels, randvis and numpy calls interleaved (A B A B ..., both see the same machine state):",
            kernels, args.calls)
    section("whole tiny network three_layer_cnn(16, kernel_size=3, input 3x32x32), interleaved:",
            nets, args.net_calls)
    section("back-to-back blocks (all randvis calls, then all numpy calls):",
            [kernels[0], kernels[1], nets[1]], args.net_calls, interleave=False)
    section(f"idle gap of {args.gap_ms:g} ms before every call (worker threads go to sleep), interleaved:",
            [kernels[0], kernels[1], nets[1]], args.gap_calls, gap)

    # fixed cost of one numba parallel kernel call vs a numpy ufunc call, and a
    # numba kernel alternating with a small BLAS GEMM (the hand-off between pools)
    one = np.ones((1, 1, 1, 1), dtype=np.float32)
    ga = rng.standard_normal((c, 9 * c), dtype=np.float32)
    gb = rng.standard_normal((9 * c, s * s), dtype=np.float32)
    overhead = [
        ("clip_mask on 1 element", lambda: K.clip_mask(one, 0.0, np.inf),
         lambda: (lambda m_: (np.where(m_, one, 0), m_))(one > 0)),
        (f"relu kernel + GEMM {c}x{9 * c}@{9 * c}x{s * s}", lambda: (K.clip_mask(y_rv, 0.0, np.inf), ga @ gb),
         lambda: ((lambda m_: (np.where(m_, y_np, 0), m_))(y_np > 0), ga @ gb)),
    ]
    nthreads = K.get_num_threads()
    for th in sorted({nthreads, 1}, reverse=True):
        K.set_num_threads(th)
        try:
            section(f"numba with {th} thread(s) (set_num_threads; BLAS keeps "
                    f"{[d['num_threads'] for d in C.blas_info() if d.get('user_api') == 'blas']} threads): "
                    "fixed per-call cost and numba/BLAS alternation, interleaved:",
                    overhead + ([kernels[0], kernels[1], nets[1]] if th == 1 else []), args.calls)
        finally:
            K.set_num_threads(nthreads)
    print(f"numba threads restored to {K.get_num_threads()}; threading layer {K.threading_layer()!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
