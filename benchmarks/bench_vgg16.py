"""VGG-16 (float32, batch 1, 224x224x3, random He weights): randvis vs PyTorch CPU.

Measures, after warm-up runs, the median of ``--repeats`` timings
(time.perf_counter) of

  (a) forward only:            ``net.forward(x)``
  (b) forward + three maps:    ``randvis.visualize(net, x, target="max")``
                               (one forward, one stacked backward for saliency,
                               DeconvNet and GBP)
  (c) the stacked backward alone (``net.backward_stacked`` from one trace)

and prints seconds, GFLOP/s and the fraction of the machine's peak, a per-layer
breakdown of randvis's forward and stacked backward, the throughput of plain
numpy/BLAS GEMMs of the same shapes (a ceiling for the GEMM-lowered convs), and
the same two measurements for a hand-built torch.nn VGG-16 holding the same
weights (skipped with a message when torch is not importable), with a
correctness check of the three maps against randvis (relative L2 error < 1e-3,
same one-hot seed on the top logit) in float32, the ReLU-mask / max-pool-switch
decisions that differ between the two float32 forwards, and the same check in
float64 (where rounding cannot flip such decisions).

randvis is timed before torch is imported (importing torch loads libgomp, an
OpenMP runtime whose threads can compete with OpenBLAS's and numba's on 2
cores), then re-timed after torch has run.

FLOP model (computed from the network's layer shapes, not hard-coded):
  forward F  = sum over conv and dense layers of 2 * MACs
  backward-to-input of one map B = the same sum: every conv/dense layer's
               input-gradient GEMM has exactly its forward GEMM's MACs, and the
               maps are gradients w.r.t. the input, so conv1_1's input gradient
               is computed too (excluding it would take 0.17 GFLOP off B)
  forward + three maps = F + 3 * B
Pooling, ReLU, im2col/col2im and layout moves are not counted (memory-bound).

Run:  python benchmarks/bench_vgg16.py [--repeats 7] [--warmup 2] [--no-torch]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict

import numpy as np

import _common as C
import randvis
from randvis.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, StreamedDense
from randvis.methods import METHODS, make_seed


# ---------------------------------------------------------------- FLOP model
def flop_table(net):
    """Per-layer (name, type, out shape, MACs, GEMM shape) for conv/dense layers."""
    rows = []
    for layer, s_in, s_out in zip(net.layers, net.shapes[:-1], net.shapes[1:]):
        if isinstance(layer, Conv2d):
            f, c, kh, kw = layer.weight.shape
            hw = s_out[1] * s_out[2]
            rows.append((layer.name, "Conv2d", s_out, f * c * kh * kw * hw, (f, c * kh * kw, hw)))
        elif isinstance(layer, (Dense, StreamedDense)):
            rows.append((layer.name, type(layer).__name__, s_out,
                         layer.in_features * layer.out_features,
                         (layer.out_features, layer.in_features, 1)))
    return rows


# ---------------------------------------------------------------- randvis per layer
def per_layer_times(net, x, rules, repeats):
    """Median seconds of each layer's forward and stacked backward (all rules)."""
    names = [l.name for l in net.layers]
    fw = {n: [] for n in names}
    bw = {n: [] for n in names}
    for r in range(repeats + 1):  # the first pass is a warm-up
        a = np.ascontiguousarray(x, dtype=net.dtype)
        caches = []
        for layer in net.layers:
            t0 = time.perf_counter()
            a, cache = layer.forward(a)
            t1 = time.perf_counter()
            caches.append(cache)
            if r:
                fw[layer.name].append(t1 - t0)
        seed, _ = make_seed(a, "max")
        g = np.concatenate([seed] * len(rules), axis=0)
        for layer, cache in zip(reversed(net.layers), reversed(caches)):
            t0 = time.perf_counter()
            g = layer.backward(g, cache, rules)
            t1 = time.perf_counter()
            if r:
                bw[layer.name].append(t1 - t0)
    return ({n: float(np.median(v)) for n, v in fw.items()},
            {n: float(np.median(v)) for n, v in bw.items()})


def gemm_ceiling(fl, dtype, n_rules, repeats):
    """Seconds of one big numpy GEMM with each conv layer's forward shape
    (f x ckk) @ (ckk x hw) and backward shape (ckk x f) @ (f x n_rules*hw)."""
    rng = np.random.default_rng(0)
    out = []
    for name, kind, _, macs, (f, ckk, hw) in fl:
        if kind != "Conv2d":
            continue
        w = rng.standard_normal((f, ckk), dtype=np.float32).astype(dtype)
        cols = rng.standard_normal((ckk, hw), dtype=np.float32).astype(dtype)
        g = rng.standard_normal((f, n_rules * hw), dtype=np.float32).astype(dtype)
        tf = np.median(C.time_calls(lambda: w @ cols, repeats, 1))
        wt = w.T
        tb = np.median(C.time_calls(lambda: wt @ g, repeats, 1))
        out.append((name, (f, ckk, hw), macs, tf, tb))
        del w, cols, g
    return out


# ---------------------------------------------------------------- torch
def build_torch(net, torch):
    """A torch.nn.Sequential with randvis's layer names and weights; ReLUs apply
    the current rule (``RuleReLU.mode``) in backward when autograd is on."""
    nn = torch.nn

    class RuleReLUFn(torch.autograd.Function):
        mode = "saliency"

        @staticmethod
        def forward(ctx, x):
            mask = x > 0
            ctx.save_for_backward(mask)
            return torch.where(mask, x, torch.zeros((), dtype=x.dtype))

        @staticmethod
        def backward(ctx, g):
            (mask,) = ctx.saved_tensors
            mode = RuleReLUFn.mode
            if mode == "saliency":      # plain gradient: R * 1(y > 0)
                return g * mask
            if mode == "deconvnet":     # relu(R), forward mask ignored
                return torch.relu(g)
            if mode == "gbp":           # relu(R) * 1(y > 0)
                return torch.relu(g) * mask
            raise ValueError(mode)

    class RuleReLU(nn.Module):
        def forward(self, x):
            if torch.is_grad_enabled() and x.requires_grad:
                return RuleReLUFn.apply(x)
            return torch.relu(x)

    mods = OrderedDict()
    for layer, s_in in zip(net.layers, net.shapes[:-1]):
        if isinstance(layer, Conv2d):
            f, c, kh, kw = layer.weight.shape
            t, b, l, r = layer.pads(s_in[1:])
            if t != b or l != r:
                raise NotImplementedError(f"{layer.name}: asymmetric padding {t, b, l, r}")
            mods[layer.name] = nn.Conv2d(c, f, (kh, kw), stride=layer.stride, padding=(t, l),
                                         bias=layer.bias is not None)
        elif isinstance(layer, ReLU):
            mods[layer.name] = RuleReLU()
        elif isinstance(layer, MaxPool2d):
            if max(layer.pads(s_in[1:])) != 0:
                raise NotImplementedError(f"{layer.name}: padded pooling")
            mods[layer.name] = nn.MaxPool2d(layer.size, layer.stride)
        elif isinstance(layer, Flatten):
            mods[layer.name] = nn.Flatten()
        elif isinstance(layer, Dense):
            mods[layer.name] = nn.Linear(layer.in_features, layer.out_features,
                                         bias=layer.bias is not None)
        else:
            raise NotImplementedError(type(layer).__name__)
    model = nn.Sequential(mods).eval()
    params = net.parameters()
    tparams = dict(model.named_parameters())
    if set(tparams) != set(params):
        raise RuntimeError(f"parameter names differ: {sorted(set(tparams) ^ set(params))}")
    with torch.no_grad():
        for name, p in tparams.items():
            p.copy_(torch.from_numpy(np.array(params[name])))  # a writable copy
            p.requires_grad_(False)   # backward-to-input only, no weight gradients
    return model, RuleReLUFn


def torch_maps_fn(model, rule_fn, xt, torch, methods=METHODS):
    def run():
        xg = xt.detach().requires_grad_(True)
        logits = model(xg)
        seed = torch.zeros_like(logits)
        seed[torch.arange(logits.shape[0]), logits.argmax(1)] = 1
        out = {}
        for i, m in enumerate(methods):
            rule_fn.mode = m
            (gx,) = torch.autograd.grad(logits, xg, grad_outputs=seed,
                                        retain_graph=i < len(methods) - 1)
            out[m] = gx
        return logits, out
    return run


def decision_differences(net, model, x, torch):
    """Where float32 torch and randvis take different discrete decisions on the
    same input: ReLU masks (pre-activation > 0) and max-pool switches."""
    out = []
    try:
        _, trace = net.forward(x)
        a = torch.from_numpy(np.ascontiguousarray(x, dtype=net.dtype))
        with torch.no_grad():
            for layer, cache, (name, mod) in zip(net.layers, trace.caches, model.named_children()):
                pre = a
                a = mod(a)
                if isinstance(layer, ReLU):
                    d = int(((pre > 0).numpy() != np.asarray(cache)).sum())
                    if d:
                        out.append(f"{name}: {d} of {pre.numel()} ReLU masks differ")
                elif isinstance(layer, MaxPool2d):
                    _, idx = torch.nn.functional.max_pool2d(pre, layer.size, layer.stride,
                                                            return_indices=True)
                    d = int((idx.numpy() != np.asarray(cache[0])).sum())
                    if d:
                        out.append(f"{name}: {d} of {idx.numel()} max-pool switches differ")
    except Exception as exc:  # noqa: BLE001 - a diagnosis only; layer caches may change
        out.append(f"(diagnosis unavailable: {type(exc).__name__}: {exc})")
    return out or ["none: every ReLU mask and max-pool switch agrees"]


def map_errors(net, model, rule_fn, x, torch):
    """Relative L2 error of torch's maps vs randvis's, same one-hot seed (top logit)."""
    rv_maps, info = randvis.visualize(net, x, target="max", return_info=True)
    t_logits, t_maps = torch_maps_fn(model, rule_fn, torch.from_numpy(x.copy()), torch)()
    t_logits = t_logits.detach().numpy()
    same = bool(np.array_equal(t_logits.argmax(1), info["classes"]))
    e_logits = float(np.linalg.norm(t_logits - info["logits"]) / np.linalg.norm(info["logits"]))
    errs = {m: float(np.linalg.norm(rv_maps[m] - t_maps[m].numpy()) / np.linalg.norm(rv_maps[m]))
            for m in METHODS}
    norms = {m: float(np.linalg.norm(rv_maps[m])) for m in METHODS}
    return info["classes"].tolist(), t_logits.argmax(1).tolist(), same, e_logits, errs, norms


# ---------------------------------------------------------------- main
def summary_row(label, ts, gflop, peak, load, tries=1):
    med = float(np.median(ts))
    return [label, f"{med:.4f}", f"{ts.min():.4f}", f"{ts.max():.4f}", f"{gflop:.2f}",
            f"{gflop / med:.1f}", f"{100 * gflop / med / peak:.1f}%", C.load_note(*load, tries)]


SUMMARY_HEAD = ["measurement", "median s", "min s", "max s", "GFLOP", "GFLOP/s", "of peak",
                "other/steal cores"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (>= 5)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs before each measurement")
    ap.add_argument("--size", type=int, default=224, help="input height = width (multiple of 32)")
    ap.add_argument("--peak", type=float, default=C.DEFAULT_PEAK_GFLOPS,
                    help="peak float32 GFLOP/s of the machine (default: 518, 2 Zen 5 cores)")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    ap.add_argument("--no-per-layer", action="store_true", help="skip the per-layer breakdown")
    ap.add_argument("--no-gemm", action="store_true", help="skip the plain-GEMM ceiling table")
    ap.add_argument("--no-recheck", action="store_true",
                    help="do not re-time randvis after torch has run in the process")
    ap.add_argument("--no-f64-check", action="store_true",
                    help="skip the float64 torch-vs-randvis check (it separates implementation "
                         "errors from float32 rounding)")
    C.add_quiet_options(ap)
    ap.add_argument("--profile", action="store_true",
                    help="also cProfile a few visualize() calls and print the top functions")
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats must be >= 5")
    peak = args.peak

    t0 = time.perf_counter()
    net = randvis.vgg16(rng=0, input_shape=(3, args.size, args.size))
    t_build = time.perf_counter() - t0
    x = np.random.default_rng(1).random((1, 3, args.size, args.size), dtype=np.float32)
    rules = METHODS

    # ---- FLOP model
    fl = flop_table(net)
    macs = sum(r[3] for r in fl)
    F = 2 * macs / 1e9
    B = F
    B_no_first = F - 2 * fl[0][3] / 1e9
    TOTAL = F + len(rules) * B

    # first call compiles/loads the numba kernels; then the environment report
    # can name the threading layer actually in use
    net.forward(x)
    C.print_environment("bench_vgg16: VGG-16 float32, batch 1, %dx%dx3, randvis.vgg16(rng=0)"
                        % (args.size, args.size),
                        extra=[f"network built in {t_build:.2f} s; peak assumed {peak:.0f} GFLOP/s; "
                               f"repeats {args.repeats}, warm-up {args.warmup}"])
    print()
    print("FLOP model (2 * multiply-adds of every conv and dense layer, from the layer shapes):")
    rows = [[n, k, str(s), f"{m / 1e6:.1f}", f"{2 * m / 1e9:.3f}"] for n, k, s, m, _ in fl]
    print(C.table(["layer", "type", "output", "MMAC", "GFLOP"], rows))
    print(f"forward F = {macs / 1e9:.3f} G multiply-adds = {F:.3f} GFLOP")
    print(f"backward-to-input of one map B = {B:.3f} GFLOP (same GEMMs as the forward, incl. conv1_1's "
          f"input gradient; without it {B_no_first:.3f})")
    print(f"forward + {len(rules)} maps = F + {len(rules)} x B = {TOTAL:.3f} GFLOP "
          "(pool/ReLU/im2col/col2im/layout not counted)")
    print()
    C.flush()

    def measure(fn, warmup=args.warmup):
        """(times, load, try) of ``args.repeats`` timed calls on a quiet machine."""
        return C.run_quiet(lambda: C.time_calls(fn, args.repeats, warmup), args.quiet_wait, args.attempts)

    print("'other/steal cores': CPU cores kept busy by other processes on the machine "
          "(/proc/stat minus this process) and hypervisor steal during the timed runs. Each "
          f"measurement first waits up to {args.quiet_wait:g} s for a quiet machine and is repeated "
          f"(up to {args.attempts} tries, the least disturbed kept) while other processes disturb it.")
    print()
    # ---- randvis timings (before torch is imported: no OpenMP runtime loaded yet)
    fwd = measure(lambda: net.forward(x))
    vis = measure(lambda: randvis.visualize(net, x, target="max"))
    logits, trace = net.forward(x)
    seed, classes = make_seed(logits, "max")
    bwd = measure(lambda: net.backward_stacked(trace, seed, rules))
    del trace
    summary = [summary_row("randvis forward", fwd[0], F, peak, *fwd[1:]),
               summary_row("randvis forward + 3 maps (visualize)", vis[0], TOTAL, peak, *vis[1:]),
               summary_row("randvis stacked backward, 3 maps", bwd[0], len(rules) * B, peak, *bwd[1:])]
    fwd, vis = fwd[0], vis[0]
    print("randvis:")
    print(C.table(SUMMARY_HEAD, summary))
    print()
    C.flush()

    if not args.no_per_layer:
        (tf, tb), l_pl, k_pl = C.run_quiet(lambda: per_layer_times(net, x, rules, args.repeats),
                                           args.quiet_wait, args.attempts)
        mac_of = {r[0]: r[3] for r in fl}
        rows = []
        for layer in net.layers:
            m = mac_of.get(layer.name)
            rate_f = f"{2 * m / tf[layer.name] / 1e9:.1f}" if m else ""
            rate_b = f"{2 * len(rules) * m / tb[layer.name] / 1e9:.1f}" if m else ""
            rows.append([layer.name, type(layer).__name__, str(net.shapes[net.layers.index(layer) + 1]),
                         f"{1e3 * tf[layer.name]:.2f}", rate_f, f"{1e3 * tb[layer.name]:.2f}", rate_b])
        sf, sb = sum(tf.values()), sum(tb.values())
        rows.append(["total", "", "", f"{1e3 * sf:.2f}", f"{F / sf:.1f}", f"{1e3 * sb:.2f}",
                     f"{len(rules) * B / sb:.1f}"])
        print(f"randvis per layer (median of {args.repeats}; backward = all {len(rules)} rules stacked, "
              f"batch {len(rules)}; other/steal cores {C.load_note(*l_pl, k_pl)}):")
        print(C.table(["layer", "type", "output", "fwd ms", "fwd GFLOP/s", "bwd ms", "bwd GFLOP/s"], rows))
        print()
        kinds = OrderedDict()
        for layer in net.layers:
            k = kinds.setdefault(type(layer).__name__, [0, 0.0, 0.0])
            k[0] += 1
            k[1] += tf[layer.name]
            k[2] += tb[layer.name]
        rows = [[k, n, f"{1e3 * a:.1f}", f"{100 * a / sf:.1f}%", f"{1e3 * b:.1f}", f"{100 * b / sb:.1f}%"]
                for k, (n, a, b) in kinds.items()]
        print("randvis per layer type:")
        print(C.table(["type", "count", "fwd ms", "fwd share", "bwd ms", "bwd share"], rows))
        print()
        C.flush()

    if not args.no_gemm:
        gc, l_gc, k_gc = C.run_quiet(lambda: gemm_ceiling(fl, net.dtype, len(rules), max(3, args.repeats // 2)),
                                     args.quiet_wait, args.attempts)
        rows = []
        tot_f = tot_b = 0.0
        for name, (f, ckk, hw), m, a, b in gc:
            tot_f += a
            tot_b += b
            rows.append([name, f"{f}x{ckk} @ {ckk}x{hw}", f"{1e3 * a:.2f}", f"{2 * m / a / 1e9:.1f}",
                         f"{ckk}x{f} @ {f}x{len(rules) * hw}", f"{1e3 * b:.2f}",
                         f"{2 * len(rules) * m / b / 1e9:.1f}"])
        conv_f = sum(2 * r[3] for r in fl if r[1] == "Conv2d") / 1e9
        rows.append(["all convs", "", f"{1e3 * tot_f:.1f}", f"{conv_f / tot_f:.1f}", "", f"{1e3 * tot_b:.1f}",
                     f"{len(rules) * conv_f / tot_b:.1f}"])
        print("plain numpy GEMM with each conv's whole-image shapes (random data; the BLAS ceiling "
              f"for a GEMM-lowered conv; other/steal cores {C.load_note(*l_gc, k_gc)}):")
        print(C.table(["layer", "fwd GEMM", "ms", "GFLOP/s", "bwd GEMM (3 maps stacked)", "ms", "GFLOP/s"],
                      rows))
        print()
        C.flush()

    if args.profile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        for _ in range(3):
            randvis.visualize(net, x, target="max")
        pr.disable()
        print("cProfile of 3 visualize() calls (top 15 by own time; ufunc/matmul time is inside its caller):")
        pstats.Stats(pr, stream=sys.stdout).sort_stats("tottime").print_stats(15)
        C.flush()

    # ---- torch
    if args.no_torch:
        print("--no-torch: skipping the PyTorch comparison")
        return 0
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure means "no torch"
        print(f"torch is not importable ({type(exc).__name__}: {exc}): skipping the PyTorch comparison")
        return 0

    torch.set_num_threads(2)
    print(f"torch {torch.__version__}: num_threads {torch.get_num_threads()}, "
          f"interop threads {torch.get_num_interop_threads()}, mkldnn {torch.backends.mkldnn.is_available()}, "
          f"capability {torch.backends.cpu.get_cpu_capability()}")
    C.print_blas("BLAS/OpenMP libraries after importing torch (threadpoolctl)")
    model, rule_fn = build_torch(net, torch)
    xt = torch.from_numpy(x.copy())
    maps_fn = torch_maps_fn(model, rule_fn, xt, torch)
    print()

    # correctness, once: same weights, same input, same one-hot seed on the top logit
    ok = True
    for dt in ([np.float32] if args.no_f64_check else [np.float32, np.float64]):
        if dt == np.float32:
            n_, m_, r_ = net, model, rule_fn
        else:
            n_ = net.astype(np.float64)
            m_, r_ = build_torch(n_, torch)
            m_ = m_.double()
        c_rv, c_t, same, e_logits, errs, norms = map_errors(n_, m_, r_, x.astype(dt), torch)
        print(f"correctness in {np.dtype(dt).name}: top class randvis {c_rv} torch {c_t} "
              f"({'same' if same else 'DIFFERENT'}); logits relative L2 error {e_logits:.2e}")
        rows = [[m, f"{errs[m]:.2e}", "ok" if errs[m] < 1e-3 else "FAIL (>= 1e-3)", f"{norms[m]:.4g}"]
                for m in METHODS]
        print(C.table(["map", "rel. L2 error torch vs randvis", "< 1e-3", "||randvis map||"], rows))
        if dt == np.float32:
            ok = same and all(e < 1e-3 for e in errs.values())
            print("float32 discrete decisions that differ between torch and randvis (rounding-level "
                  "differences in pre-activations can flip a ReLU mask or a max-pool switch):")
            for line in decision_differences(net, model, x, torch):
                print("  " + line)
        del n_, m_, r_
    print()
    C.flush()

    def t_forward():
        with torch.no_grad():
            model(xt)

    tfwd = measure(t_forward)
    tvis = measure(maps_fn)
    rows = [summary_row("torch forward (no_grad)", tfwd[0], F, peak, *tfwd[1:]),
            summary_row("torch forward + 3 maps (1 fwd + 3 bwd)", tvis[0], TOTAL, peak, *tvis[1:])]
    tfwd, tvis = tfwd[0], tvis[0]
    if not args.no_recheck:
        fwd2 = measure(lambda: net.forward(x), 1)
        vis2 = measure(lambda: randvis.visualize(net, x, target="max"), 1)
        rows += [summary_row("randvis forward, re-timed after torch ran", fwd2[0], F, peak, *fwd2[1:]),
                 summary_row("randvis fwd + 3 maps, re-timed after torch", vis2[0], TOTAL, peak, *vis2[1:])]
    print("PyTorch CPU (same weights, hand-built torch.nn VGG-16):")
    print(C.table(SUMMARY_HEAD, rows))
    print()
    head = ["measurement", "randvis s", "torch s", "randvis/torch"]
    pairs = [("forward", fwd, tfwd, None if args.no_recheck else fwd2[0]),
             ("forward + 3 maps", vis, tvis, None if args.no_recheck else vis2[0])]
    if not args.no_recheck:
        head += ["randvis s, after torch", "randvis/torch, after torch"]
    rows = []
    for name, mine, theirs, again in pairs:
        row = [name, f"{np.median(mine):.4f}", f"{np.median(theirs):.4f}",
               f"{np.median(mine) / np.median(theirs):.2f}"]
        if again is not None:
            row += [f"{np.median(again):.4f}", f"{np.median(again) / np.median(theirs):.2f}"]
        rows.append(row)
    print("ratio randvis / torch (median seconds; > 1 means randvis is slower; the timing noise "
          "of this machine shows in the two randvis columns, timed before and after torch):")
    print(C.table(head, rows))
    if not ok:
        print("WARNING: in float32 the torch maps differ from randvis's by >= 1e-3 for some method; "
              "see the differing ReLU masks / max-pool switches and the float64 check above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
