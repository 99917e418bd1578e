"""Matrix products whose bits do not depend on any thread count.

OpenBLAS splits one product between its threads differently for different
thread counts, and with some kernels (AVX2 "Haswell" float32, and float64
dot products longer than ~10,000 on every kernel seen) the split changes how
the sums are grouped, so the last bits of ``a @ b`` depend on
``OPENBLAS_NUM_THREADS``. Measured with the Haswell kernel: float32
``(256, 256) @ (256, 256)`` differs in 9% of its entries between 1 and 2
threads; ``(32, 288) @ (288, 64)`` in 46%.

Every matrix product in randvis therefore goes through :func:`matmul` (or
:func:`matmul_many` for several independent products, :func:`dot` for
vectors). The rule that makes the bits independent of threads:

* the output is cut into a grid of blocks whose sizes depend only on the
  shapes ``(m, k, n)`` (:func:`plan`), never on a thread count;
* each block is one *single-threaded* BLAS call on the whole inner dimension
  ``k`` (BLAS is limited to one thread while randvis multiplies, see
  :func:`one_blas_thread`), so each output entry is computed by the same
  instructions in the same order whoever runs the block;
* a pool of ``kernels.get_num_threads()`` threads (the caller plus workers)
  takes blocks from a shared counter. Which thread runs a block changes from
  run to run; what the block computes does not.

A product with 2 to :data:`THIN_ROWS` rows on the left and a row-major right
factor (a dense layer's backward ``g @ W`` for the three stacked maps of one
image) runs instead in a numba kernel that reads ``W`` once, each output
summing its ``k`` products in ascending order: memory-bound work that a BLAS
GEMM would first copy ("pack").

Examples
--------
>>> import numpy as np
>>> a, b = np.arange(6.0).reshape(2, 3), np.ones((3, 1000))
>>> np.array_equal(matmul(a, b), a @ b)
True
>>> plan(64, 576, 50176)[:2]                  # (row0, row1, col0, col1) blocks
[(0, 64, 0, 6272), (0, 64, 6272, 12544)]
>>> float(dot(np.arange(4.0), np.arange(4.0)))
14.0
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import os
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

from ._numba import get_num_threads, pjit, prange

#: a product with fewer multiply-adds than this is one block (one BLAS call on
#: the calling thread): splitting it costs more than it saves
BLOCK_MIN_WORK = 1 << 21
#: at most this many blocks per product (enough for the pool to balance them)
MAX_BLOCKS = 8
#: block edges are multiples of this many rows / columns (the BLAS kernels'
#: register tiles), except at the matrix edge
ALIGN = 16
#: a product with 2 to this many rows on the left and a row-major right factor
#: runs in :func:`_thin_left`
THIN_ROWS = 8
#: ... when it has at least this many multiply-adds
THIN_MIN_WORK = 1 << 22
#: output columns per block of :func:`_thin_left`
THIN_COLUMNS = 2048


@pjit
def _thin_left(a, b, cols, out):
    # out = a @ b, a (m, k) with few rows, b (k, n) row-major: blocks of output
    # columns in parallel; every output sums its k products in ascending order
    m, k = a.shape
    n = b.shape[1]
    for blk in prange((n + cols - 1) // cols):
        j0 = blk * cols
        j1 = min(n, j0 + cols)
        acc = np.zeros((m, j1 - j0), dtype=out.dtype)
        for o in range(k):
            row = b[o, j0:j1]
            for i in range(m):
                av = a[i, o]
                ai = acc[i]
                for j in range(j1 - j0):
                    ai[j] += av * row[j]
        out[:, j0:j1] = acc


# ---------------------------------------------------------------- BLAS threads
_depth = 0
_limiter = None
_controller = None
_lock = threading.Lock()


def _blas():
    global _controller
    if _controller is None:  # finds the BLAS libraries once (~ms); limits then cost ~3 us
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


@contextlib.contextmanager
def one_blas_thread():
    """Run the body with BLAS limited to one thread.

    The limit is process-wide while any thread is inside such a block (BLAS
    has one thread setting per process); the last one out restores the
    previous setting. Nested and concurrent use is safe.
    """
    global _depth, _limiter
    with _lock:
        if _depth == 0:
            _limiter = _blas().limit(limits=1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None


# ---------------------------------------------------------------- the pool
_pool = None
_pool_key = None
_pool_lock = threading.Lock()


def _executor(workers):
    # one pool per process and size (a pool inherited through fork has no threads)
    global _pool, _pool_key
    with _pool_lock:
        key = (os.getpid(), workers)
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key[0] == key[0]:
                _pool.shutdown(wait=False)
            _pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="randvis-gemm")
            _pool_key = key
        return _pool


def _split(size, parts):
    """Cut ``range(size)`` into ``parts`` spans with edges on multiples of ALIGN."""
    step = -(-size // parts)
    step = -(-step // ALIGN) * ALIGN
    return [(s, min(size, s + step)) for s in range(0, size, step)]


def plan(m, k, n, max_blocks=MAX_BLOCKS):
    """The blocks ``(r0, r1, c0, c1)`` of an ``(m, k) @ (k, n)`` product.

    A function of the shapes only: the grid never depends on a thread count.
    Columns are split first (each block then reads all of ``a``, which is the
    small operand of a convolution's GEMM), rows when there are too few
    columns for the wanted number of blocks.
    """
    work = m * k * n
    want = int(max(1, min(max_blocks, work // BLOCK_MIN_WORK)))
    if want == 1:
        return [(0, m, 0, n)]
    col_parts = max(1, min(want, n // (4 * ALIGN)))
    row_parts = max(1, min(want // col_parts, m // (4 * ALIGN)))
    return [(r0, r1, c0, c1) for r0, r1 in _split(m, row_parts) for c0, c1 in _split(n, col_parts)]


def _run(tasks):
    """Run the block products ``(a, b, out, (r0, r1, c0, c1))`` on the pool."""
    if not tasks:
        return
    counter = itertools.count()
    total = len(tasks)

    def work():
        while True:
            i = next(counter)  # atomic under the GIL: every block runs exactly once
            if i >= total:
                return
            a, b, out, (r0, r1, c0, c1) = tasks[i]
            np.matmul(a[r0:r1], b[:, c0:c1], out=out[r0:r1, c0:c1])

    workers = min(total, max(1, get_num_threads())) - 1
    with one_blas_thread():
        if workers == 0:
            work()
            return
        pool = _executor(workers)
        futures = [pool.submit(work) for _ in range(workers)]
        try:
            work()
        finally:
            for f in futures:
                f.result()


def _check(a, b, out):
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul needs (m, k) @ (k, n), got {a.shape} @ {b.shape}")
    shape = (a.shape[0], b.shape[1])
    if out is None:
        return np.empty(shape, dtype=np.result_type(a, b))
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, the product {shape}")
    return out


def _thin(a, b):
    m, k = a.shape
    return (2 <= m <= THIN_ROWS and a.dtype == b.dtype and b.flags.c_contiguous
            and m * k * b.shape[1] >= THIN_MIN_WORK)


def matmul(a, b, out=None):
    """``a @ b`` for 2-D ``a`` (m, k) and ``b`` (k, n), bitwise independent of the
    BLAS and numba thread counts (see the module notes).

    ``out``, optional, receives the product (any strides BLAS accepts, e.g. a
    slice of a larger array) and is returned.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.random.default_rng(0).random((300, 200))
    >>> b = np.random.default_rng(1).random((200, 4000))
    >>> bool(np.allclose(matmul(a, b), a @ b))
    True
    """
    out = _check(a, b, out)
    if _thin(a, b):
        _thin_left(np.ascontiguousarray(a), b, THIN_COLUMNS, out)
        return out
    _run([(a, b, out, blk) for blk in plan(a.shape[0], a.shape[1], b.shape[1])])
    return out


def matmul_many(products):
    """Several independent products ``[(a, b, out), ...]`` at once: their blocks
    share one pass of the pool (the 16 small GEMMs of a Winograd chunk). The
    products are split less the more of them there are (16 products: each one
    block), so the pool gets about :data:`MAX_BLOCKS` tasks or more, and no
    operand is packed again for a split that brings no parallelism."""
    products = list(products)
    cap = max(1, MAX_BLOCKS // max(1, len(products)))
    tasks = []
    for a, b, out in products:
        out = _check(a, b, out)
        if _thin(a, b):
            _thin_left(np.ascontiguousarray(a), b, THIN_COLUMNS, out)
            continue
        tasks.extend((a, b, out, blk) for blk in plan(a.shape[0], a.shape[1], b.shape[1], cap))
    _run(tasks)


def dot(a, b):
    """The dot product of two vectors (raveled), as a 0-d array, independent of
    the BLAS thread count (OpenBLAS splits float64 dot products longer than
    ~10,000 between its threads)."""
    a = np.ravel(a)
    b = np.ravel(b)
    if a.shape != b.shape:
        raise ValueError(f"dot needs vectors of one length, got {a.size} and {b.size}")
    with one_blas_thread():
        return np.dot(a, b)


def norm(a):
    """The Euclidean norm of ``a`` (raveled), independent of the BLAS thread count."""
    a = np.ravel(a)
    return np.sqrt(dot(a, a))
