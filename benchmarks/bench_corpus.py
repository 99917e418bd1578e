"""randvis corpus: images per second in this process vs a 2-worker local Dask cluster,
and the fixed cost of one Dask task.

A folder of ``--images`` random photos-sized PNGs is summarised with ``--model cnn3``
(a random three-layer CNN drawn per image, ``--filters`` filters of ``--kernel-size``,
at ``--size``), once in-process and once on ``randvis.cluster.connect("local",
n_workers=2)`` (two single-threaded worker processes on this machine). Each run starts
from an empty output folder after one warm-up row (numba kernels compiled / loaded
from cache in every process), and its time covers the rows and the table; the summary
(bootstrap intervals and figure) is timed on its own. The tables of both runs must be
identical, byte for byte.

The per-task overhead is the time a trivial task (``abs`` of an int) takes through
``randvis.cluster.stream`` on the same cluster: one at a time (round-trip latency) and
with many in flight (throughput-bound cost per task), next to a plain call.

Run:  python benchmarks/bench_corpus.py [--images 24] [--size 64] [--filters 64]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

from randvis import corpus  # noqa: E402


def _write_images(folder, n, side):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(os.path.join(folder, f"im{i:05d}.png"))
    return corpus.find_images([folder])


def _run(paths, spec, root, client=None):
    out = tempfile.mkdtemp(dir=root)
    shutil.rmtree(out)
    t0 = time.perf_counter()
    corpus.run_corpus(paths, spec, out, client=client, progress=False, log=lambda msg: None)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    corpus.summarize_table(out, log=lambda msg: None)
    summary = time.perf_counter() - t1
    with open(os.path.join(out, corpus.TABLE), "rb") as fh:
        table = fh.read()
    return total - summary, summary, table


def _worker_cpu(pids):
    """CPU seconds the worker processes used so far (they are not this process's
    reaped children, so other_load would count them as another program's load)."""
    import psutil

    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def _on_cluster(fn, pids):
    """``fn()`` and the cores its workers kept busy meanwhile."""
    c0, t0 = _worker_cpu(pids), time.perf_counter()
    res = fn()
    return res, (_worker_cpu(pids) - c0) / (time.perf_counter() - t0)


def _own(load, workers):
    """(other load minus our own workers' cores, steal)."""
    return max(0.0, load[0] - workers), load[1]


def _overhead(client, n):
    from randvis.cluster import stream

    t0 = time.perf_counter()
    for i in range(n // 4):
        list(stream(client, abs, [i], window=1, key=lambda i: f"bench-one-{i}-{time.time_ns()}"))
    one = (time.perf_counter() - t0) / (n // 4)
    t0 = time.perf_counter()
    list(stream(client, abs, range(n), window=64, key=lambda i: f"bench-many-{i}-{time.time_ns()}"))
    many = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for i in range(n):
        abs(i)
    plain = (time.perf_counter() - t0) / n
    return one, many, plain


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--filters", type=int, default=64)
    p.add_argument("--kernel-size", type=int, default=7)
    p.add_argument("--tasks", type=int, default=400, help="trivial tasks for the overhead (default 400)")
    C.add_quiet_options(p)
    args = p.parse_args()
    try:
        from randvis.cluster import connect
        import distributed  # noqa: F401
    except ImportError as exc:  # pragma: no cover
        print(f"dask.distributed unavailable ({exc}); pip install 'randvis[dask]'")
        return 0
    spec = corpus.CorpusSpec("cnn3", size=args.size, filters=args.filters, kernel_size=args.kernel_size)
    C.print_environment(f"bench_corpus: randvis corpus, {args.images} images, random cnn3 N={args.filters} "
                        f"{args.kernel_size}x{args.kernel_size} at {args.size}x{args.size}, float64")
    root = tempfile.mkdtemp(prefix="bench-corpus-")
    try:
        os.mkdir(os.path.join(root, "imgs"))
        paths = _write_images(os.path.join(root, "imgs"), args.images, max(args.size, 32))
        corpus.corpus_row((paths[0], spec))   # compile / load the kernels here
        rows, tables = [], {}
        (here, load, tries) = C.run_quiet(lambda: _run(paths, spec, root), args.quiet_wait, args.attempts)
        tables["in-process"] = here[2]
        rows.append(["in-process (1 process)", f"{here[0]:.2f}", f"{args.images / here[0]:.2f}",
                     f"{here[1]:.2f}", C.load_note(*load, attempts=tries)])
        t0 = time.perf_counter()
        with connect("local", n_workers=2) as client:
            start = time.perf_counter() - t0
            client.run(corpus.corpus_row, (paths[0], spec))   # warm both workers
            pids = list(client.run(os.getpid).values())
            ((there, busy), load, tries) = C.run_quiet(lambda: _on_cluster(lambda: _run(paths, spec, root, client), pids),
                                                       args.quiet_wait, args.attempts)
            tables["dask"] = there[2]
            rows.append(["local Dask cluster, 2 workers x 1 thread", f"{there[0]:.2f}",
                         f"{args.images / there[0]:.2f}", f"{there[1]:.2f}",
                         C.load_note(*_own(load, busy), attempts=tries)])
            ((over, busy), load, tries) = C.run_quiet(lambda: _on_cluster(lambda: _overhead(client, args.tasks), pids),
                                                      args.quiet_wait, args.attempts)
            load = _own(load, busy)
        print(C.table(["run", "rows s", "images/s", "summary s", "other/steal cores"], rows))
        print(f"speed-up of the cluster: {here[0] / there[0]:.2f}x; cluster start-up {start:.1f} s (not in the "
              f"times); tables identical: {tables['in-process'] == tables['dask']}")
        one, many, plain = over
        print(C.table(["trivial task (abs)", "ms per task", "other/steal cores"],
                      [["one at a time (round trip)", f"{one * 1e3:.2f}", C.load_note(*load, attempts=tries)],
                       ["64 in flight", f"{many * 1e3:.2f}", ""],
                       ["plain call", f"{plain * 1e3:.5f}", ""]]))
        print(f"one corpus row in-process takes {here[0] / args.images * 1e3:.0f} ms: the task overhead is "
              f"{many / (here[0] / args.images) * 100:.1f}% of it with tasks in flight")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
