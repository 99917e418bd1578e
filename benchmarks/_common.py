"""Shared helpers for the benchmark scripts: environment report, timing, tables.

Nothing here changes the environment: the OPENBLAS_* variables, thread counts
and threading layers are only *read* and printed.
"""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

#: peak float32 throughput of the 2-core Zen 5 machine (2 cores x 2 FMA pipes x 16 lanes x 2 x ~4 GHz)
DEFAULT_PEAK_GFLOPS = 518.0

ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY",
            "GOMP_SPINCOUNT")


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def source_fingerprint():
    """sha1 of randvis's Python sources plus the git state of randvis/ (the code
    is edited concurrently, so every printout says which version it timed)."""
    h = hashlib.sha1()
    for p in sorted((REPO / "randvis").rglob("*.py")):
        h.update(str(p.relative_to(REPO)).encode())
        h.update(p.read_bytes())
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "randvis"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
        dirty = [d.strip() for d in dirty if d.strip()]
    except (OSError, subprocess.SubprocessError):
        head, dirty = "?", []
    return h.hexdigest()[:12], head, dirty


def blas_info():
    """The BLAS / OpenMP libraries loaded in this process (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    return threadpool_info()


def print_environment(title, extra=()):
    import numba

    import randvis
    from randvis import kernels as K

    fp, head, dirty = source_fingerprint()
    print(f"== {title}")
    print(f"python {platform.python_version()}  numpy {np.__version__}  numba {numba.__version__}  "
          f"randvis {randvis.__version__} (git {head}, sources sha1 {fp}"
          f"{', uncommitted: ' + ' '.join(dirty) if dirty else ', clean'})")
    print(f"cpu: {cpu_model()}, os.cpu_count() = {os.cpu_count()}")
    print("environment: " + "  ".join(f"{k}={os.environ[k]!r}" if k in os.environ else f"{k}=<unset>"
                                      for k in ENV_VARS))
    print_blas()
    print(f"numba: threading layer {K.threading_layer()!r}, threads {K.get_num_threads()}")
    try:
        print("load average (1/5/15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    except OSError:
        pass
    for line in extra:
        print(line)


def print_blas(prefix="BLAS/OpenMP libraries (threadpoolctl)"):
    print(prefix + ":")
    for d in blas_info():
        print(f"  {d.get('user_api')}: internal_api={d.get('internal_api')} "
              f"architecture={d.get('architecture', '-')} num_threads={d.get('num_threads')} "
              f"version={d.get('version')} threading_layer={d.get('threading_layer', '-')} "
              f"lib={_short_path(d.get('filepath', ''))}")


def _short_path(path):
    """``numpy.libs/libscipy_openblas64_...so``: the parent folder tells whose copy it is
    (numpy's matmul uses the one under numpy.libs)."""
    return os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))


# ---------------------------------------------------------------- other load on the machine
# The machine may be shared with other processes (other sessions' test runs);
# every measurement also reports how many cores *other* processes kept busy
# meanwhile (from /proc/stat minus this process's own CPU time) and the
# hypervisor's steal time, so a disturbed number can be recognised.
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot():
    """(wall, busy CPU-seconds of the whole machine, steal seconds, own CPU-seconds)."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:9]]
        busy = (sum(v) - v[3] - v[4]) / _HZ          # all but idle and iowait
        steal = v[7] / _HZ
    except (OSError, ValueError, IndexError):
        busy = steal = float("nan")
    t = os.times()
    return time.perf_counter(), busy, steal, t.user + t.system + t.children_user + t.children_system


def other_load(a, b):
    """Cores kept busy by other processes, and steal (cores), between two snapshots."""
    wall = max(b[0] - a[0], 1e-9)
    steal = (b[2] - a[2]) / wall
    return max(0.0, (b[1] - a[1]) - (b[3] - a[3]) - (b[2] - a[2])) / wall, steal


def wait_quiet(max_wait=30.0, threshold=0.2, window=1.0):
    """Wait (up to ``max_wait`` s) for a ``window`` during which other processes
    use less than ``threshold`` cores; return (waited seconds, last other load)."""
    t0 = time.perf_counter()
    load = 0.0
    while True:
        a = cpu_snapshot()
        time.sleep(window)
        load, _ = other_load(a, cpu_snapshot())
        if load < threshold or time.perf_counter() - t0 >= max_wait:
            return time.perf_counter() - t0, load


#: a measurement during which other processes used more cores than this (or the
#: hypervisor stole more than STEAL_LIMIT cores) is repeated / flagged as disturbed
LOAD_LIMIT = 0.2
STEAL_LIMIT = 0.1


def disturbed(load, steal):
    return load > LOAD_LIMIT or steal > STEAL_LIMIT


def load_note(load, steal, attempts=1):
    flag = "  <- disturbed" if disturbed(load, steal) else ""
    tries = f" (try {attempts})" if attempts > 1 else ""
    return f"{load:.2f}/{steal:.2f}{tries}{flag}"


def add_quiet_options(ap, wait=60.0, attempts=True, unit="measurement"):
    """The ``--quiet-wait`` (and ``--attempts``) options every benchmark takes."""
    ap.add_argument("--quiet-wait", type=float, default=wait,
                    help=f"before each {unit} wait up to this many seconds for other processes to "
                         "leave the CPUs idle (0: do not wait)")
    if attempts:
        ap.add_argument("--attempts", type=int, default=3,
                        help=f"repeat a {unit} up to this many times while other processes disturb it "
                             "(the least disturbed one is kept)")


def run_quiet(fn, quiet_wait=60.0, attempts=3):
    """Run ``fn()`` on a quiet machine: wait (up to ``quiet_wait`` s) for other
    processes to go idle, run it, and repeat (up to ``attempts`` times) while
    other processes disturbed the run. Returns ``(result, (load, steal), try)``
    of the least disturbed run."""
    best = None
    for i in range(1, max(1, attempts) + 1):
        if quiet_wait > 0:
            wait_quiet(quiet_wait)
        a = cpu_snapshot()
        res = fn()
        load = other_load(a, cpu_snapshot())
        if best is None or sum(load) < sum(best[1]):
            best = (res, load, i)
        if not disturbed(*load):
            break
    return best


def time_calls(fn, repeats, warmup):
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; return seconds per call."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def table(headers, rows, aligns=None):
    """Format a plain-text table (first column left-aligned, the rest right)."""
    rows = [[str(c) for c in r] + [""] * (len(headers) - len(r)) for r in rows]
    cols = list(zip(*([headers] + rows)))
    widths = [max(len(c) for c in col) for col in cols]
    aligns = aligns or ["<"] + [">"] * (len(headers) - 1)

    def fmt(r):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(r, aligns, widths))

    lines = [fmt(headers), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def flush():
    sys.stdout.flush()
