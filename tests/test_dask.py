"""Dask execution: a real scheduler and two worker processes on 127.0.0.1 (`dask scheduler`,
`dask worker`), no LocalCluster in this process. `randvis theory --quick`, a small
`reproduce --only` and `randvis corpus` give the in-process results through it; a worker
killed mid-run does not change the table; an unreachable scheduler is one line."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import write_png
from randvis.cli import main

distributed = pytest.importorskip("distributed")

KILL_ARGS = ["--model", "cnn3", "--size", "64", "--filters", "64", "--kernel-size", "7"]
CORPUS_ARGS = ["--model", "cnn3", "--size", "16", "--filters", "8", "--kernel-size", "3"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_worker(address, folder, name):
    return subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--no-nanny",
                             "--no-dashboard", "--host", "127.0.0.1", "--name", name,
                             "--local-directory", str(folder), "--death-timeout", "60"],
                            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(address, client, folder, processes): `dask scheduler` and two `dask worker` processes,
    killed at the end. Should this process die first, the scheduler stops after 5 idle
    minutes and the workers a minute after it."""
    folder = tmp_path_factory.mktemp("cluster")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard", "--idle-timeout", "300"], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    client = None
    try:
        procs += [_start_worker(address, folder, f"w{i}") for i in range(2)]
        client = distributed.Client(address, timeout=60)
        client.wait_for_workers(2, timeout=120)
        yield address, client, folder, procs
    finally:
        if client is not None:
            client.close()
        _stop(procs)


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*map(str, argv)])
    return code, out.getvalue(), err.getvalue()


def _workers_of(task_stream, prefix):
    return {t["worker"] for t in task_stream if str(t["key"]).startswith(prefix)}


def test_theory_quick_on_the_cluster_equals_in_process(cluster, tmp_path):
    address, client, _, _ = cluster
    assert _run("theory", "--quick", "--size", "16", "--out", tmp_path / "here")[0] == 0
    with distributed.get_task_stream(client) as ts:
        code, _, err = _run("theory", "--quick", "--size", "16", "--out", tmp_path / "there", "--scheduler", address)
    assert code == 0, err
    assert len(_workers_of(ts.data, "randvis-theory")) == 2      # both workers computed cells
    for ext in (".json", ".txt"):
        assert (tmp_path / f"there{ext}").read_bytes() == (tmp_path / f"here{ext}").read_bytes()


def test_reproduce_on_the_cluster_equals_in_process(cluster, tmp_path):
    address, client, _, _ = cluster
    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(2):
        write_png(tmp_path / "imgs" / f"im{i}.png", rng.random((3, 24, 24)))
    common = ["reproduce", "--only", "local_connections", "--quick", "--images", tmp_path / "imgs"]
    assert _run(*common, "--out", tmp_path / "here")[0] == 0
    with distributed.get_task_stream(client) as ts:
        code, _, err = _run(*common, "--out", tmp_path / "there", "--scheduler", address)
    assert code == 0, err
    assert "(Dask)" in err and _workers_of(ts.data, "run_task")
    here, there = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("here", "there"))
    assert here == there and there["local_connections"]["claims"]


@pytest.fixture(scope="module")
def corpus_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus-images")
    rng = np.random.default_rng(1)
    for i in range(6):
        write_png(folder / f"im{i}.png", rng.random((3, 24, 24)))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    return folder


def test_corpus_on_the_cluster_equals_in_process(cluster, corpus_images, tmp_path):
    address, client, _, _ = cluster
    assert _run("corpus", corpus_images, *CORPUS_ARGS, "--out", tmp_path / "here")[0] == 0
    with distributed.get_task_stream(client) as ts:
        code, _, err = _run("corpus", corpus_images, *CORPUS_ARGS, "--out", tmp_path / "there", "--scheduler", address)
    assert code == 0, err
    assert len(_workers_of(ts.data, "randvis-corpus")) == 2
    for name in ("rows.csv", "summary.json", "summary.txt"):
        assert (tmp_path / "there" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()
    assert "broken.jpg" in err


def test_environment_variable_names_the_scheduler(cluster, corpus_images, tmp_path, monkeypatch):
    address, client, _, _ = cluster
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    code, _, err = _run("corpus", corpus_images, *CORPUS_ARGS, "--out", tmp_path / "env")
    assert code == 0 and f"running on the Dask cluster {address}" in err


def test_a_worker_killed_mid_run_changes_nothing(cluster, corpus_images, tmp_path):
    """A third worker is killed (SIGKILL) while the scheduler has tasks of the run on it;
    the scheduler reruns them on the others and the table equals the in-process one."""
    address, client, folder, _ = cluster
    victim = _start_worker(address, folder, "victim")
    try:
        client.wait_for_workers(3, timeout=120)
        victim_addr = [a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "victim"][0]
        cmd = [sys.executable, "-m", "randvis", "corpus", str(corpus_images), *KILL_ARGS,
               "--out", str(tmp_path / "there"), "--scheduler", address]
        run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            busy = []
            while not busy and run.poll() is None and time.monotonic() < deadline:
                busy = [k for k in client.processing().get(victim_addr, ()) if "randvis-corpus" in str(k)]
                time.sleep(0.005)
            assert busy, "the victim never got a task"
            victim.send_signal(signal.SIGKILL)
            _, err = run.communicate(timeout=300)
        finally:
            run.kill()
            run.wait()
        assert run.returncode == 0, err
    finally:
        _stop([victim])
    assert victim.returncode == -signal.SIGKILL
    assert _run("corpus", corpus_images, *KILL_ARGS, "--out", tmp_path / "here")[0] == 0
    assert (tmp_path / "there" / "rows.csv").read_bytes() == (tmp_path / "here" / "rows.csv").read_bytes()


def test_refused_address_is_one_line_at_once(tmp_path, corpus_images):
    port = _free_port()   # nothing listens there
    t0 = time.monotonic()
    code, _, err = _run("corpus", corpus_images, *CORPUS_ARGS, "--out", tmp_path / "x",
                        "--scheduler", f"tcp://127.0.0.1:{port}")
    assert code == 2 and time.monotonic() - t0 < 10
    line = err.strip().splitlines()[-1]
    assert line.startswith("randvis: error: --scheduler") and "cannot reach a Dask scheduler" in line
    assert not (tmp_path / "x").exists()


_SILENT = r"""
import socket, time
from randvis.cluster import ClusterError, connect
with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    t0 = time.monotonic()
    try:
        with connect("tcp://127.0.0.1:%d" % server.getsockname()[1], timeout=2):
            print("connected")
    except ClusterError as exc:
        print(f"{time.monotonic() - t0:.1f}", exc)
"""


def test_silent_address_times_out_in_one_line():
    """A port that accepts connections but never speaks (distributed alone would wait for
    its handshake forever): one line after the timeout. In a child, so a hang fails."""
    from conftest import run_python

    res = run_python("-c", _SILENT, timeout=60)
    seconds, message = res.stdout.strip().split(" ", 1)
    assert 1.5 < float(seconds) < 6, res.stdout
    assert "cannot reach a Dask scheduler there (no Dask handshake within 2 s" in message


def test_stream_keeps_at_most_window_tasks_in_flight():
    """randvis.cluster.stream submits a new item only as one finishes (a folder of
    50,000 images never has more than `window` tasks or results in memory)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from randvis.cluster import stream

    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def task(i):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return -i

    with ThreadPoolExecutor(6) as pool:
        got = dict(stream(pool, task, range(20), window=3, threads=None))
    assert got == {i: -i for i in range(20)} and state["max"] == 3
