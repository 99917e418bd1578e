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
"""
from __future__ import annotations

import functools
import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

#: options shared by every serial kernel
jit = functools.partial(numba.njit, cache=True, nogil=True, fastmath=False)
#: options shared by every parallel kernel
pjit = functools.partial(numba.njit, cache=True, nogil=True, fastmath=False, parallel=True)
prange = numba.prange


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
