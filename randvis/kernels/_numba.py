"""The one place where numba is configured.

Threading policy
----------------
numba's parallel kernels use the ``workqueue`` threading layer: its worker
threads sleep between parallel regions instead of busy-waiting, so they do not
fight with OpenBLAS's own threads on a 2-core machine (the OpenMP layer's
spinning workers caused multi-millisecond stalls on small layers interleaved
with BLAS calls). Every parallel kernel splits its work over independent
outputs only (no parallel reductions), so results are bitwise identical for
any thread count.

Examples
--------
>>> get_num_threads() >= 1
True
>>> threading_layer() in ("workqueue", "omp", "tbb")
True
"""
from __future__ import annotations

import functools
import os
import types

import numba
import numpy as np

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

#: options shared by every serial kernel
jit = functools.partial(numba.njit, cache=True, nogil=True, fastmath=False)
prange = numba.prange

#: below this many elements in the largest array argument a kernel runs its
#: serial build: launching a parallel region costs tens of microseconds, more
#: than a small layer's whole work
PARALLEL_MIN = 1 << 18


class _Dual:
    """A kernel compiled twice, parallel and serial, dispatched on problem size."""

    def __init__(self, fn):
        self.parallel = numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                  fn.__defaults__, fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"  # its own numba cache files
        self.serial = numba.njit(cache=True, nogil=True, fastmath=False)(twin)
        functools.update_wrapper(self, fn)

    def __call__(self, *args):
        big = max((a.size for a in args if isinstance(a, np.ndarray)), default=0)
        return (self.parallel if big >= PARALLEL_MIN else self.serial)(*args)


def pjit(fn):
    """Decorator for kernels whose outer loop is a ``prange`` over independent outputs."""
    return _Dual(fn)


def set_num_threads(n: int) -> None:
    """Set the number of threads numba's parallel kernels use."""
    numba.set_num_threads(int(n))


def get_num_threads() -> int:
    """Number of threads numba's parallel kernels use."""
    return numba.get_num_threads()


def threading_layer() -> str:
    """Name of the threading layer in use (valid after the first parallel call)."""
    try:
        return numba.threading_layer()
    except ValueError:
        return numba.config.THREADING_LAYER
