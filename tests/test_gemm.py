"""kernels.matmul: the dense layers' product, bitwise independent of thread counts."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (loads scipy's BLAS now, not inside a thread-limited block)
from threadpoolctl import threadpool_info

import randvis
import randvis.kernels as K
from conftest import assert_within_rounding, at_thread_counts, record_calls, run_python


def _blas_threads():
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


# shapes on which OpenBLAS's own threading changed the last bits (measured):
# a dense layer on 1-3 images and its backward
SHAPES = [(1, 12288, 2000), (3, 2000, 12288), (2, 2000, 12288), (1, 262144, 10), (3, 10, 262144),
          (64, 500, 300), (5, 7, 3)]


@pytest.mark.parametrize("m, k, n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["forward", "backward"])
def test_matmul_is_the_product_and_ignores_thread_counts(m, k, n, dtype, layout):
    """forward: x @ W.T (a transposed view, blocked BLAS); backward: g @ W (row-major;
    with few rows the numba kernel)."""
    rng = np.random.default_rng(m * 7 + n)
    a = rng.normal(size=(m, k)).astype(dtype)
    if layout == "forward":
        b = rng.normal(size=(n, k)).astype(dtype).T
    else:
        b = rng.normal(size=(k, n)).astype(dtype)

    def run():
        out = K.matmul(a, b)
        assert _blas_threads() == {K.get_num_threads()}  # restored after the call
        return out

    outs = at_thread_counts(run, blas=True)
    np.testing.assert_array_equal(outs[0], outs[1])
    # the product itself: each element a sum of k terms
    ref = a.astype(np.float64) @ b.astype(np.float64)
    mag = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert_within_rounding(outs[0], ref, mag, k, dtype)


def test_thin_products_take_the_numba_kernel(monkeypatch):
    from randvis.kernels import gemm as dense

    calls = record_calls(monkeypatch, dense, "_thin_left")
    g, w = np.ones((3, 2000)), np.ones((2000, 12288))
    assert np.array_equal(K.matmul(g, w), np.full((3, 12288), 2000.0)) and len(calls) == 1
    K.matmul(np.ones((9, 2000)), w)  # too many rows: blocked BLAS
    K.matmul(np.ones((1, 2000)), w)  # one row: BLAS's matrix-vector product
    K.matmul(g, np.ones((12288, 2000)).T)  # not row-major: blocked BLAS
    assert len(calls) == 1


def test_one_blas_thread_nests_and_restores_across_threads():
    start = _blas_threads()
    with K.one_blas_thread():
        assert _blas_threads() == {1}
        with K.one_blas_thread():
            assert _blas_threads() == {1}
        assert _blas_threads() == {1}  # the inner block does not restore early
        seen = []
        t = threading.Thread(target=lambda: seen.append(K.matmul(np.ones((2, 3)), np.ones((3, 4))).sum()))
        t.start()
        t.join()
        assert seen == [24.0] and _blas_threads() == {1}  # another thread's block neither
    assert _blas_threads() == start


def test_fcn_maps_identical_across_thread_counts():
    """A materialised FCN (24.6 M weights): its dense products used to follow
    OpenBLAS's thread split."""
    net = randvis.fcn(2000, input_shape=(3, 64, 64), rng=0)
    x = np.random.default_rng(1).random((1, 3, 64, 64)).astype(np.float32)
    outs = at_thread_counts(lambda: randvis.visualize(net, x), blas=True)
    for key in outs[0]:
        np.testing.assert_array_equal(outs[0][key], outs[1][key])


_FORK_SCRIPT = """
import multiprocessing as mp
import numpy as np
import randvis.kernels as K
a, b = np.ones((1, 5000)), np.ones((5000, 4000))
K.matmul(a, b)  # the parent's thread pool exists before the fork
def child(_):
    return float(K.matmul(a, b).sum())
if __name__ == "__main__":
    with mp.get_context("fork").Pool(2) as p:
        print(p.map(child, range(2)))
"""


def test_matmul_works_in_forked_children(tmp_path):
    """A forked child inherits the pool object but not its threads; it makes its own."""
    script = tmp_path / "fork.py"
    script.write_text(_FORK_SCRIPT)
    out = run_python(str(script), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[20000000.0, 20000000.0]"


# --------------------------------------------------------------------------- one routine
_PRODUCTS = {"dot", "matmul", "inner", "vdot", "tensordot", "einsum", "corrcoef", "cov", "multi_dot"}


def _blas_calls_outside_gemm(source, filename):
    """Matrix products in ``source`` that bypass randvis.kernels.gemm: the ``@``
    operator, numpy's product functions, and numpy.linalg calls that are not
    inside a ``with ...one_blas_thread():`` block."""
    import ast

    tree = ast.parse(source)
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def guarded(node):
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.With) and any("one_blas_thread" in ast.unparse(i.context_expr)
                                                   for i in node.items):
                return True
        return False

    from_numpy = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  and (node.module or "").split(".")[0] == "numpy" for a in node.names
                  if a.name in _PRODUCTS or (node.module or "").endswith("linalg")}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.MatMult):
            found.append(f"{filename}:{node.lineno}: @")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = ast.unparse(node.func.value)
            if base in ("np", "numpy") and node.func.attr in _PRODUCTS:
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node.func)}")
            elif base.endswith("linalg") and not guarded(node):
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node.func)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in from_numpy:
            found.append(f"{filename}:{node.lineno}: {node.func.id}")
    return found


def test_every_matrix_product_goes_through_kernels_gemm():
    """OpenBLAS's threads change the bits of a product, so randvis multiplies only
    through kernels.gemm (matmul, matmul_many, dot, norm)."""
    from pathlib import Path

    root = Path(randvis.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "kernels" / "gemm.py":
            continue
        found += _blas_calls_outside_gemm(path.read_text(), path.relative_to(root).as_posix())
    assert not found, "products outside kernels.gemm:\n" + "\n".join(found)


def test_the_product_scan_sees_what_it_must():
    src = ("import numpy as np\nfrom numpy import linalg, dot as d0\nfrom .gemm import matmul\n"
           "a = b @ c\nd = np.dot(b, c)\ne = np.linalg.norm(b)\nf = linalg.eigh(b)\nd0(b, c)\n"
           "with K.one_blas_thread():\n    g = np.linalg.eigh(b)\nh = K.matmul(b, c)\ni = np.outer(b, c)\n"
           "matmul(b, c)\n")
    found = _blas_calls_outside_gemm(src, "x.py")
    assert sorted(f.split(": ")[1] for f in found) == sorted(["@", "np.dot", "np.linalg.norm", "linalg.eigh", "d0"])
