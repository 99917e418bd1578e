"""Peak memory and time of the three maps of the wide random FCN on one image.

``randvis.fcn(N)`` on a 224x224x3 float32 image: flatten -> dense (N units) ->
ReLU -> dense (10). For N = 70,000 the first layer has 150,528 x 70,000 =
10.5 G weights (42 GB in float32), so it is a StreamedDense: its rows are
generated from the seed block by block in every pass and never stored. The
maps are computed exactly as ``randvis.visualize`` does it (one forward, one
stacked backward for saliency, DeconvNet and GBP), timed step by step; the
backward streams only the row blocks with a non-zero incoming signal.

The work runs in a fresh subprocess (this script re-invoked with ``--child``)
so that its peak resident set size, ``resource.getrusage(RUSAGE_SELF).ru_maxrss``,
belongs to the computation alone; the parent prints it (and RUSAGE_CHILDREN as
a cross-check) in GB and checks it against ``--limit-gb`` (default 4).

Run:  python benchmarks/bench_fcn_memory.py [--hidden 70000]   (N = 70,000 takes minutes)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

import _common as C

GB = 1e9


def maxrss_bytes(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss * 1024  # Linux: kilobytes


def current_rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return float("nan")


def child(args):
    t_start = time.perf_counter()
    import randvis
    from randvis.layers import StreamedDense
    from randvis.methods import METHODS, make_seed
    from randvis.rules import as_rules

    # load/compile the numba kernels on a tiny network first, so the timed passes hold no JIT work
    randvis.visualize(randvis.fcn(4, input_shape=(3, 4, 4), rng=0), np.ones((1, 3, 4, 4), np.float32))
    rss_import = maxrss_bytes()
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
        print(f"(diagnostic) BLAS limited to {args.blas_threads} thread(s) with threadpoolctl")
    C.print_environment(f"bench_fcn_memory (child, pid {os.getpid()}): randvis.fcn({args.hidden}), "
                        f"one {args.size}x{args.size}x3 float32 image")
    t0 = time.perf_counter()
    net = randvis.fcn(args.hidden, input_shape=(3, args.size, args.size), rng=0)
    t_build = time.perf_counter() - t0
    print(net.summary())
    fc1 = net.layers[1]
    streamed = isinstance(fc1, StreamedDense)
    if streamed:
        print(f"fc1 is a StreamedDense: {fc1.in_features} x {fc1.out_features} = "
              f"{fc1.in_features * fc1.out_features / 1e9:.3f} G weights, block_rows {fc1.block_rows} "
              f"({fc1.block_rows * fc1.in_features * 8 / 2**20:.1f} MiB float64 per block), "
              f"{randvis.kernels.get_num_threads()} generator threads")
    else:
        print(f"fc1 is a materialised {type(fc1).__name__} (below the streaming threshold)")
    C.flush()
    x = np.random.default_rng(1).random((1, 3, args.size, args.size), dtype=np.float32)
    rss_built = maxrss_bytes()

    if args.quiet_wait > 0:
        waited, load = C.wait_quiet(args.quiet_wait)
        print(f"waited {waited:.0f} s for a quiet machine (other processes: {load:.2f} cores)")
    # exactly randvis.visualize's body, timed per step
    a0 = C.cpu_snapshot()
    c0 = time.process_time()
    t0 = time.perf_counter()
    logits, trace = net.forward(x)
    t_fwd = time.perf_counter() - t0
    c_fwd = time.process_time() - c0
    l_fwd = C.other_load(a0, C.cpu_snapshot())
    rss_fwd = maxrss_bytes()
    print(f"forward done in {t_fwd:.2f} s (peak RSS so far {rss_fwd / GB:.3f} GB)")
    C.flush()
    seed, classes = make_seed(logits, "max")
    rules = as_rules(METHODS)

    # how many fc1 rows the stacked backward needs (signal after fc2 and the ReLU)
    g = np.concatenate([seed] * len(rules), axis=0)
    for layer, cache in zip(reversed(net.layers[2:]), reversed(trace.caches[2:])):
        g = layer.backward(g, cache, rules)
    live = int(np.count_nonzero(np.any(g != 0, axis=0)))
    if streamed:
        blocks = set((np.flatnonzero(np.any(g != 0, axis=0)) // fc1.block_rows).tolist())
        rows_bwd = sum(min(fc1.block_rows, fc1.out_features - b * fc1.block_rows) for b in blocks)
    else:
        rows_bwd = fc1.out_features
    del g

    a0 = C.cpu_snapshot()
    c0 = time.process_time()
    t0 = time.perf_counter()
    stacked = net.backward_stacked(trace, seed, rules)
    t_bwd = time.perf_counter() - t0
    c_bwd = time.process_time() - c0
    l_bwd = C.other_load(a0, C.cpu_snapshot())
    maps = {r.name: stacked[i] for i, r in enumerate(rules)}
    rss_end = maxrss_bytes()
    print(f"stacked backward done in {t_bwd:.2f} s")
    finite = all(bool(np.isfinite(m).all()) for m in maps.values())
    w_fwd = fc1.in_features * fc1.out_features
    w_bwd = fc1.in_features * rows_bwd
    result = {
        "hidden": args.hidden, "streamed": streamed, "class": int(classes[0]),
        "t_build": t_build, "t_fwd": t_fwd, "t_bwd": t_bwd, "c_fwd": c_fwd, "c_bwd": c_bwd,
        "l_fwd": l_fwd, "l_bwd": l_bwd,
        "t_total_child": time.perf_counter() - t_start,
        "w_fwd": w_fwd, "w_bwd": w_bwd, "live": live, "rows_bwd": rows_bwd,
        "rss_import": rss_import, "rss_built": rss_built, "rss_fwd": rss_fwd, "rss_end": rss_end,
        "rss_current_end": current_rss_bytes(),
        "norms": {k: float(np.linalg.norm(v)) for k, v in maps.items()}, "finite": finite,
    }
    print("RESULT " + json.dumps(result))
    return 0


def parent(args):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--hidden", str(args.hidden),
           "--size", str(args.size), "--quiet-wait", str(args.quiet_wait)] + (["--blas-threads", str(args.blas_threads)] if args.blas_threads else [])
    print(f"running in a fresh subprocess: {' '.join(cmd)}")
    C.flush()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
    result = None
    for line in proc.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
        else:
            print("  | " + line, end="")
            C.flush()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    children_peak = maxrss_bytes(resource.RUSAGE_CHILDREN)
    if rc != 0 or result is None:
        print(f"the child failed (exit code {rc}); no result")
        return 1
    r = result
    print()
    print(f"randvis.fcn({r['hidden']}) three maps (saliency, DeconvNet, GBP) of one image, "
          f"top class {r['class']}; fc1 {'streamed' if r['streamed'] else 'materialised'}"
          + ("" if r["streamed"] else " (nothing is streamed: the weight columns count fc1's weights)"))
    rows = [
        ["build network", f"{r['t_build']:.2f}", "", "", ""],
        ["forward", f"{r['t_fwd']:.2f}", f"{r['c_fwd'] / r['t_fwd']:.2f}", f"{r['w_fwd'] / 1e9:.3f}",
         f"{r['t_fwd'] / r['w_fwd'] * 1e9:.2f}", C.load_note(*r["l_fwd"])],
        ["stacked backward (3 maps)", f"{r['t_bwd']:.2f}", f"{r['c_bwd'] / r['t_bwd']:.2f}",
         f"{r['w_bwd'] / 1e9:.3f}", f"{r['t_bwd'] / max(r['w_bwd'], 1) * 1e9:.2f}", C.load_note(*r["l_bwd"])],
        ["maps total (forward + backward)", f"{r['t_fwd'] + r['t_bwd']:.2f}", "",
         f"{(r['w_fwd'] + r['w_bwd']) / 1e9:.3f}",
         f"{(r['t_fwd'] + r['t_bwd']) / (r['w_fwd'] + r['w_bwd']) * 1e9:.2f}", ""],
        ["child process, start to end", f"{r['t_total_child']:.2f}", "", "", "", ""],
        ["parent wall clock (incl. interpreter start)", f"{wall:.2f}", "", "", "", ""],
    ]
    print(C.table(["step", "seconds", "CPU/wall", "G weights streamed", "ns per weight (wall)",
                   "other/steal cores"], rows))
    print(f"backward: {r['live']} of {r['hidden']} hidden units carry a non-zero signal for some map, "
          f"so {r['rows_bwd']} of {r['hidden']} fc1 rows ({100 * r['rows_bwd'] / r['hidden']:.1f}%) are "
          "regenerated")
    print()
    rows = [["after imports and a warm-up on a tiny fcn", f"{r['rss_import'] / GB:.3f}"],
            ["after building the network", f"{r['rss_built'] / GB:.3f}"],
            ["after the forward", f"{r['rss_fwd'] / GB:.3f}"],
            ["after the backward = peak (ru_maxrss, RUSAGE_SELF)", f"{r['rss_end'] / GB:.3f}"],
            ["current RSS at the end (/proc/self/statm)", f"{r['rss_current_end'] / GB:.3f}"],
            ["parent's RUSAGE_CHILDREN ru_maxrss", f"{children_peak / GB:.3f}"]]
    print("peak resident memory of the child (GB = 1e9 bytes):")
    print(C.table(["when", "peak RSS GB"], rows))
    ok = r["rss_end"] < args.limit_gb * GB
    print(f"peak RSS {r['rss_end'] / GB:.3f} GB ({r['rss_end'] / 2**30:.3f} GiB) "
          f"{'<' if ok else '>='} {args.limit_gb:g} GB: {'PASS' if ok else 'FAIL'}")
    print("map norms: " + ", ".join(f"{k} {v:.4g}" for k, v in r["norms"].items())
          + f"; all finite: {r['finite']}")
    return 1 if (args.strict and not ok) else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=70000, help="hidden units N (default 70000)")
    ap.add_argument("--size", type=int, default=224, help="image height = width (default 224)")
    ap.add_argument("--limit-gb", type=float, default=4.0, help="peak RSS budget in GB (default 4)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when the peak exceeds --limit-gb")
    ap.add_argument("--blas-threads", type=int, default=0,
                    help="diagnostic: limit BLAS to this many threads in the child (threadpoolctl); "
                         "default: leave BLAS as it is")
    C.add_quiet_options(ap, attempts=False, unit="timed pass")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    return child(args) if args.child else parent(args)


if __name__ == "__main__":
    sys.exit(main())
