"""Argument checks shared by the public functions.

Each check either returns the normalised value or raises an error that names
the argument, shows the value and says what is expected: ``TypeError`` when the
value has the wrong kind (a string where a number belongs, a complex number,
a float where a count belongs), ``ValueError`` when the kind is right but the
value is not (a negative width, an infinite standard deviation). The checks
look at the arguments only; none of them recomputes a result.

Examples
--------
>>> from randvis import _checks
>>> _checks.positive_int(3, "n_filters")
3
>>> try:
...     _checks.positive_int(0, "n_filters")
... except ValueError as e:
...     print(e)
n_filters must be a positive integer, got 0
>>> try:
...     _checks.positive_real("1", "v_std")
... except TypeError as e:
...     print(e)
v_std must be a positive finite real number, got '1' (str)
>>> _checks.image_shape((3, 16, 16))
(3, 16, 16)
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = []

#: elements per block when an array is scanned for NaN/Inf (bounds the temporary mask)
_FINITE_BLOCK = 1 << 22


def short_repr(v, limit=60):
    """``repr(v)``, shortened; arrays show their dtype and shape, not their values."""
    if isinstance(v, np.ndarray) and v.size > 8:
        return f"array of dtype {v.dtype} and shape {v.shape}"
    r = repr(v)
    return r if len(r) <= limit else r[:limit - 3] + "..."


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _kind(v):
    return type(v).__name__


def _int_from(v, name, low, want):
    if not _is_int(v):
        raise TypeError(f"{name} must be {want}, got {short_repr(v)} ({_kind(v)})")
    if v < low:
        raise ValueError(f"{name} must be {want}, got {short_repr(v)}")
    return int(v)


def positive_int(v, name):
    """``v`` as an int >= 1 (bools and floats are refused)."""
    return _int_from(v, name, 1, "a positive integer")


def nonnegative_int(v, name):
    """``v`` as an int >= 0."""
    return _int_from(v, name, 0, "an integer >= 0")


def positive_real(v, name, allow_none=False):
    """``v`` as a float that is finite and > 0 (``None`` passes if ``allow_none``)."""
    if v is None and allow_none:
        return None
    what = f"{name} must be a positive finite real number" + (" or None" if allow_none else "")
    if not _is_real(v):
        raise TypeError(f"{what}, got {short_repr(v)} ({_kind(v)})")
    f = float(v)
    if not (np.isfinite(f) and f > 0):
        raise ValueError(f"{what}, got {short_repr(v)}")
    return f


def nonnegative_real(v, name):
    """``v`` as a float that is finite and >= 0."""
    if not _is_real(v):
        raise TypeError(f"{name} must be a finite real number >= 0, got {short_repr(v)} ({_kind(v)})")
    f = float(v)
    if not (np.isfinite(f) and f >= 0):
        raise ValueError(f"{name} must be a finite real number >= 0, got {short_repr(v)}")
    return f


def flag(v, name, allow_none=False):
    """``v`` as a bool (``None`` passes if ``allow_none``)."""
    if v is None and allow_none:
        return None
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False{' or None' if allow_none else ''}, "
                        f"got {short_repr(v)} ({_kind(v)})")
    return bool(v)


def one_of(v, name, options, allow_none=False):
    """``v`` if it is one of the strings ``options`` (``None`` passes if ``allow_none``)."""
    if v is None and allow_none:
        return None
    if not isinstance(v, str) or v not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}{' or None' if allow_none else ''}, "
                         f"got {short_repr(v)}")
    return v


def shape(v, name, ndim=None, form=None):
    """``v`` as a tuple of positive ints (of length ``ndim`` if given, else >= 1);
    ``form`` names the axes in messages, e.g. ``"(c, h, w)"``."""
    if ndim:
        want = f"{form + ', ' if form else 'a tuple of '}{ndim} positive integers"
    else:
        want = "a non-empty tuple of positive integers"
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or isinstance(v, np.ndarray) and v.ndim != 1:
        raise TypeError(f"{name} must be {want}, got {short_repr(v)} ({_kind(v)})")
    items = tuple(v)
    if (ndim and len(items) != ndim) or not items:
        raise ValueError(f"{name} must be {want}, got {short_repr(v)} (length {len(items)})")
    for i, s in enumerate(items):
        if not _is_int(s):
            raise TypeError(f"{name} must be {want}, got {short_repr(v)} "
                            f"(entry {i} is {short_repr(s)}, not an integer)")
        if s < 1:
            raise ValueError(f"{name} must be {want}, got {short_repr(v)} (entry {i} is {int(s)})")
    return tuple(int(s) for s in items)


def image_shape(v, name="input_shape"):
    """``v`` as a (c, h, w) tuple of positive ints."""
    return shape(v, name, 3, "(c, h, w)")


def generator(rng, name="rng"):
    """``rng`` as a ``numpy.random.Generator``: None, an int >= 0, a sequence of
    ints >= 0, a SeedSequence, a BitGenerator or a Generator (numpy's rules)."""
    if isinstance(rng, np.random.Generator):
        return rng
    want = (f"{name} must be None, an int >= 0, a sequence of ints >= 0, a SeedSequence, "
            f"a BitGenerator or a numpy Generator")
    if isinstance(rng, (bool, np.bool_, str, bytes, float, complex, np.floating, np.complexfloating)):
        raise TypeError(f"{want}, got {short_repr(rng)} ({_kind(rng)})")
    try:
        return np.random.default_rng(rng)
    except TypeError:
        raise TypeError(f"{want}, got {short_repr(rng)} ({_kind(rng)})") from None
    except ValueError:
        raise ValueError(f"{want}, got {short_repr(rng)}") from None


def network(net, *methods, name="net"):
    """``net`` if it has the callable ``methods`` a randvis network has (a
    :class:`~randvis.network.Sequential`)."""
    if not all(callable(getattr(net, m, None)) for m in methods):
        raise TypeError(f"{name} must be a randvis network (Sequential, e.g. from "
                        f"randvis.three_layer_cnn), got {_kind(net)}")
    return net


def float_dtype(dtype, name="dtype"):
    """``dtype`` as ``numpy.dtype`` float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {short_repr(dtype)}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


def real_array(a, name, integer=False):
    """``np.asarray(a)`` after checking it holds real numbers (integers if
    ``integer``): complex, bool, string and object arrays are refused, so no
    imaginary part or text is ever cast away."""
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers, got {short_repr(a)} ({exc})") from None
    kinds = "iu" if integer else "iuf"
    if arr.dtype.kind not in kinds:
        want = "integers" if integer else "real numbers"
        if arr.dtype.kind == "c":
            why = " (complex values would lose their imaginary part)"
        elif integer and arr.dtype.kind == "f":
            why = " (fractions would be cut)"
        else:
            why = ""
        raise TypeError(f"{name} must hold {want}, got dtype {arr.dtype}{why}")
    return arr


def all_finite(a):
    """True if the real array ``a`` has no NaN or Inf (scanned in blocks, so the
    temporary mask stays small whatever the size of ``a``)."""
    if a.dtype.kind in "iu":
        return True
    flat = a.ravel(order="K")  # a view for any contiguous layout
    for s in range(0, flat.size, _FINITE_BLOCK):
        if not np.isfinite(flat[s:s + _FINITE_BLOCK]).all():
            return False
    return True


def finite_array(a, name, integer=False):
    """:func:`real_array` that also refuses NaN and Inf."""
    arr = real_array(a, name, integer)
    if not all_finite(arr):
        raise ValueError(f"{name} contains NaN or Inf")
    return arr
