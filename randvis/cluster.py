"""Running randvis's parallel work on a Dask cluster (``--scheduler``).

``randvis theory``, ``randvis reproduce`` and ``randvis corpus`` run in the
calling process (or, with ``--jobs``, in a process pool) by default. Given a
scheduler they send their cells to a ``dask.distributed`` cluster instead:

``--scheduler ADDRESS`` (or the ``DASK_SCHEDULER_ADDRESS`` environment variable)
    an existing cluster, e.g. ``tcp://10.0.0.5:8786`` started with ``dask
    scheduler`` and ``dask worker`` on any number of machines;
``--scheduler local``
    a ``LocalCluster`` on this machine: one single-threaded worker process per
    core.

The results do not depend on what runs them. Every cell is a pure function of
its key (the image's digest, the seed and the cell's label draw its random
networks), every matrix product goes through :mod:`randvis.kernels.gemm`,
whose results do not depend on the thread count, and results are assembled
in a fixed order whatever order the cells finish in. A worker that dies mid-task
has its tasks rerun on another one by the scheduler; since a cell is a pure
function of its key, the rerun gives the same numbers.

Workers read inputs and write checkpoints and figures through the file system
(``reproduce``'s experiments and ``corpus``'s images): with workers on other
machines the paths must name the same files there (a shared file system
mounted at the same place), and the workers need the same randvis version.

``dask[distributed]`` is an optional dependency (``pip install
'randvis[dask]'``), imported only when a scheduler is asked for.

Examples
--------
>>> resolve_scheduler(None, environ={})            # nothing asked for: run in-process
>>> resolve_scheduler(None, environ={"DASK_SCHEDULER_ADDRESS": "tcp://10.0.0.5:8786"})
'tcp://10.0.0.5:8786'
>>> resolve_scheduler("local", environ={"DASK_SCHEDULER_ADDRESS": "tcp://10.0.0.5:8786"})
'local'
"""
from __future__ import annotations

import contextlib
import os
import re

__all__ = ["ClusterError", "resolve_scheduler", "connect", "run_task", "limit_threads", "stream",
           "CONNECT_TIMEOUT", "ENV_VAR"]

#: seconds to wait for a scheduler before giving up with a one-line error
CONNECT_TIMEOUT = 10
#: the environment variable that names a scheduler when ``--scheduler`` is not given
ENV_VAR = "DASK_SCHEDULER_ADDRESS"

_ADDRESS = re.compile(r"^(?:(tcp|tls|inproc|ucx|ws|wss)://)?[A-Za-z0-9._\-\[\]:]+$")


class ClusterError(OSError):
    """The cluster cannot be used: dask is missing, the scheduler cannot be
    reached, or a task kept killing its workers. The message is one line."""


def resolve_scheduler(scheduler, environ=None):
    """The scheduler to use: ``scheduler`` when given, else the
    ``DASK_SCHEDULER_ADDRESS`` environment variable, else None (in-process).

    Parameters
    ----------
    scheduler : str or None
        ``"local"`` or an address such as ``tcp://host:8786`` or ``host:8786``.
    environ : mapping, optional
        The environment (default ``os.environ``).

    Returns
    -------
    str or None

    Raises
    ------
    ValueError
        An empty or malformed address (one line naming it).

    Examples
    --------
    >>> resolve_scheduler("127.0.0.1:8786", environ={})
    '127.0.0.1:8786'
    >>> try:
    ...     resolve_scheduler("tcp://a b", environ={})
    ... except ValueError as e:
    ...     print(e)
    --scheduler: 'tcp://a b' is not a scheduler address (e.g. tcp://host:8786) or 'local'
    """
    environ = os.environ if environ is None else environ
    what = "--scheduler"
    if scheduler is None:
        scheduler = environ.get(ENV_VAR) or None
        what = ENV_VAR
        if scheduler is None:
            return None
    scheduler = str(scheduler).strip()
    if scheduler == "local":
        return scheduler
    if not scheduler or not _ADDRESS.match(scheduler):
        raise ValueError(f"{what}: {scheduler!r} is not a scheduler address (e.g. tcp://host:8786) or 'local'")
    return scheduler


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError("--scheduler needs dask's distributed scheduler: pip install 'randvis[dask]'") from None
    return distributed


def _probe(address, timeout):
    """Try a TCP connection to a ``tcp://`` (or bare ``host:port``) address: a
    refused or unresolvable one fails at once instead of after ``timeout``.
    Returns None when it connects (or the address is of another kind), else the reason."""
    import socket

    m = re.match(r"^(?:tcp://)?(\[[^\]]+\]|[^:/\[\]]+)(?::(\d+))?$", address)
    if not m:
        return None
    host, port = m.group(1).strip("[]"), int(m.group(2) or 8786)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.timeout:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


def _handshake(address, timeout):
    """Open a Dask comm to ``address`` and read its handshake, within ``timeout``
    seconds (distributed's own connect waits for the handshake without a limit,
    so a peer that accepts and never speaks would hang it). Returns None when a
    Dask peer answered, else the reason. Runs in its own thread and event loop."""
    import asyncio
    import threading

    from distributed.comm import connect as comm_connect

    outcome = []

    async def attempt():
        comm = await asyncio.wait_for(comm_connect(address, timeout=timeout), timeout)
        await comm.close()

    def run():
        try:
            asyncio.run(attempt())
            outcome.append(None)
        except (asyncio.TimeoutError, TimeoutError):
            outcome.append(f"no Dask handshake within {timeout:g} s")
        except Exception as exc:
            outcome.append(f"{type(exc).__name__}: {str(exc)[:80]}")

    thread = threading.Thread(target=run, daemon=True, name="randvis-scheduler-probe")
    thread.start()
    thread.join(timeout + 2)
    return outcome[0] if outcome else f"no Dask handshake within {timeout:g} s"


@contextlib.contextmanager
def connect(scheduler, timeout=CONNECT_TIMEOUT, n_workers=None, label="--scheduler"):
    """A ``distributed.Client`` for ``scheduler``, closed on exit.

    Parameters
    ----------
    scheduler : str
        ``"local"`` (a ``LocalCluster`` of ``n_workers`` single-threaded worker
        processes, default one per core, without a dashboard) or an address.
    timeout : float
        Seconds to wait for the scheduler.
    label : str
        How the error names where the address came from.

    Raises
    ------
    ClusterError
        dask.distributed is not installed, or no scheduler answered at the
        address within ``timeout`` seconds (one line; a refused connection
        is reported at once).
    """
    distributed = _import_distributed()
    cluster = None
    if scheduler != "local":
        reason = _probe(scheduler, timeout)
        if reason is None:
            reason = _handshake(scheduler, timeout)
        if reason is not None:
            raise ClusterError(f"{label} {scheduler}: cannot reach a Dask scheduler there ({reason}; is "
                               "`dask scheduler` running, and the address right?)")
    try:
        if scheduler == "local":
            cluster = distributed.LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                                               processes=True, dashboard_address=None)
            client = distributed.Client(cluster, timeout=timeout)
        else:
            client = distributed.Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        if scheduler == "local":
            raise ClusterError(f"--scheduler local: the local Dask cluster did not start ({exc})") from None
        raise ClusterError(f"{label} {scheduler}: no Dask scheduler answered there within {timeout:g} s "
                           "(is `dask scheduler` running, and the address right?)") from None
    except Exception as exc:   # something answered, but not as a Dask scheduler does
        if cluster is not None:
            cluster.close()
        raise ClusterError(f"{label} {scheduler}: what answered there is not a Dask scheduler "
                           f"({type(exc).__name__}: {str(exc)[:80]})") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def limit_threads(n):
    """Limit BLAS (every threadpoolctl pool) and numba's kernels to ``n`` threads
    in this process (numba's setting is per thread: call it in the thread that
    computes).

    Examples
    --------
    >>> from randvis import kernels
    >>> before = kernels.get_num_threads()
    >>> limit_threads(1); kernels.get_num_threads()
    1
    >>> limit_threads.keep.restore_original_limits(); kernels.set_num_threads(before)
    """
    from threadpoolctl import threadpool_limits

    from .kernels import set_num_threads

    set_num_threads(int(n))
    limit_threads.keep = threadpool_limits(limits=int(n))


def run_task(setup, fn, *args):
    """Run ``fn(*args)`` on a worker with the client's limits and thread count.

    Parameters
    ----------
    setup : (dict, int or None)
        ``{limit name: value}`` of :mod:`randvis.limits` (see
        :func:`current_limits`), and the BLAS and numba threads of the task
        (None: leave them). A worker's parallelism is its task slots (``dask
        worker --nthreads``), so one thread per task is the usual choice.

    Examples
    --------
    >>> from randvis import limits
    >>> run_task(({"memory": limits.get_limit("memory")}, None), max, 2, 3)   # this process's limit
    3
    """
    from . import limits

    settings, threads = setup
    for name, value in settings.items():
        limits.set_limit(name, value)
    if threads is not None:
        limit_threads(threads)
    return fn(*args)


def current_limits():
    """``{name: value}`` of every limit of :mod:`randvis.limits` in this process,
    for :func:`run_task` on the workers."""
    from . import limits

    return {name: limits.get_limit(name) for name in limits.LIMITS}


def stream(executor, fn, items, window=None, key=None, threads=1):
    """Run ``fn(item)`` for every item, at most ``window`` at a time.

    Items are submitted as earlier ones finish, so a long list (a folder of
    50,000 images) never has more than ``window`` tasks or results in memory.
    Each task runs through :func:`run_task` (this process's limits, one thread
    per task).

    Parameters
    ----------
    executor : distributed.Client or concurrent.futures.Executor
    fn : callable
        A module-level function (sent to the workers by reference).
    items : iterable
    window : int, optional
        Tasks in flight (default: 2 per worker thread of a Dask cluster, at
        least 4; 2 per process of an executor).
    key : callable, optional
        ``key(item)`` -> a string naming the Dask task (default: dask's hash of
        the arguments).
    threads : int or None
        BLAS and numba threads of each task (None: as the worker has them).

    Yields
    ------
    (item, result)
        In the order the tasks finish.

    Raises
    ------
    ClusterError
        A task killed every worker it ran on (``distributed.KilledWorker``).

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(2) as pool:
    ...     sorted(stream(pool, abs, [-3, 1, -2], window=2, threads=None))
    [(-3, 3), (-2, 2), (1, 1)]
    """
    dask = hasattr(executor, "scheduler_info")
    if dask:
        wait = _import_distributed().wait
        if window is None:
            info = executor.scheduler_info().get("workers", {})
            window = max(4, 2 * sum(w.get("nthreads", 1) for w in info.values()))
    else:
        from concurrent.futures import wait

        window = window or 2 * (getattr(executor, "_max_workers", None) or 2)
    setup = (current_limits(), threads)
    items = iter(items)
    pending = {}

    def submit(item):
        if dask:
            kw = {"key": key(item)} if key is not None else {}
            fut = executor.submit(run_task, setup, fn, item, **kw)
        else:
            fut = executor.submit(run_task, setup, fn, item)
        pending[fut] = item

    for item in items:
        submit(item)
        if len(pending) >= window:
            break
    while pending:
        done, _ = wait(list(pending), return_when="FIRST_COMPLETED")
        for fut in done:
            item = pending.pop(fut)
            yield item, result_of(fut)
            nxt = next(items, _END)
            if nxt is not _END:
                submit(nxt)


_END = object()


def result_of(fut):
    """``fut.result()``, with ``distributed.KilledWorker`` (a task that took every
    worker it ran on down with it) as a one-line :class:`ClusterError`."""
    try:
        return fut.result()
    except Exception as exc:
        if type(exc).__name__ == "KilledWorker":
            raise ClusterError(f"a task killed every Dask worker it ran on ({exc}); see the workers' logs") from None
        raise
