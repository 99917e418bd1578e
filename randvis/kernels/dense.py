"""Matrix products whose result does not depend on the thread count.

OpenBLAS splits a product between its threads differently for different
thread counts, and for thin products (a few rows: a dense layer on one image,
or its backward for three maps) the split changes the order of the sums, so
the last bits of the result depend on how many threads BLAS runs (measured:
``(3, 2000) @ (2000, 12288)`` differs between 1 and 2 threads). The dense
layers therefore multiply through :func:`matmul`: the output columns are cut
into blocks of a fixed width, which depends only on the shapes, and each block
is one single-threaded BLAS call; a thread pool runs the blocks side by side.
A backward product ``g @ W`` with a few rows of ``g`` runs instead in a numba
kernel that reads ``W`` once, in column blocks of a fixed width, each output
summing in ascending order. The convolutions' GEMMs (wide in every dimension)
split the same way for any thread count and keep BLAS's own threads; the tests
check both.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

from ._numba import get_num_threads, pjit, prange

#: multiply-adds per block, about; each block is one single-threaded BLAS
#: call of whole multiples of BLOCK_ALIGN output columns
BLOCK_WORK = 1 << 21
BLOCK_ALIGN = 128
#: products with fewer multiply-adds than this run on the calling thread
#: (a thread pool costs more than they do)
POOL_MIN_WORK = 1 << 22
#: a product with 2 to this many rows on the left and a row-major right
#: factor (a dense layer's backward, ``g @ W``) runs in the numba kernel
#: :func:`_thin_left` instead: one pass over ``W``, which a single-threaded BLAS
#: GEMM would pack first (one row is a matrix-vector product: BLAS reads ``W``
#: once itself)
THIN_ROWS = 8
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


_depth = 0
_limiter = None
_controller = None
_pool = None
_pool_key = None
_lock = threading.Lock()
_pool_lock = threading.Lock()


def _blas():
    global _controller
    if _controller is None:  # finds the BLAS libraries once (~ms); limits then cost ~3 us
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


@contextlib.contextmanager
def one_blas_thread():
    """Run the body with BLAS limited to one thread.

    The limit is process-wide while any thread is inside such a block; the last
    one out restores the previous setting.
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


def _executor(workers):
    # one pool per process and size (a pool inherited through fork has no threads)
    global _pool, _pool_key
    with _pool_lock:
        key = (os.getpid(), workers)
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key[0] == key[0]:
                _pool.shutdown(wait=False)
            _pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="randvis-matmul")
            _pool_key = key
        return _pool


def matmul(a, b):
    """``a @ b`` for 2-D ``a`` (m, k) and ``b`` (k, n), bitwise independent of
    the BLAS and numba thread counts.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.arange(6.0).reshape(2, 3), np.ones((3, 1000))
    >>> np.array_equal(matmul(a, b), a @ b)
    True
    """
    m, k = a.shape
    n = b.shape[1]
    out = np.empty((m, n), dtype=np.result_type(a, b))
    if (2 <= m <= THIN_ROWS and a.dtype == b.dtype and b.flags.c_contiguous
            and m * n * k >= POOL_MIN_WORK):
        _thin_left(np.ascontiguousarray(a), b, THIN_COLUMNS, out)
        return out
    width = -(-BLOCK_WORK // max(1, m * k))
    width = -(-width // BLOCK_ALIGN) * BLOCK_ALIGN  # depends on the shapes only
    spans = [(s, min(n, s + width)) for s in range(0, n, width)]
    workers = min(len(spans), max(1, get_num_threads()))

    def run(first):  # blocks first, first + workers, ...: any schedule gives the same blocks
        for s, e in spans[first::workers]:
            np.matmul(a, b[:, s:e], out=out[:, s:e])

    with one_blas_thread():
        if workers == 1 or m * n * k < POOL_MIN_WORK:
            workers = 1
            run(0)
        else:
            list(_executor(workers).map(run, range(workers)))
    return out
