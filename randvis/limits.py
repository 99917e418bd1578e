"""Size limits, checked from shapes before anything large is allocated or run.

A random layer, an image file or a weight file can ask for more memory or
work than the machine has. Every such size is estimated from the shapes first
and compared with a limit; past it, :class:`ResourceLimitError` (a
``ValueError``) names the estimate, the limit and how to raise it. Nothing is
allocated before the check.

=====================  ===========================  ================================
limit                  default                      environment variable
=====================  ===========================  ================================
memory                 8 GiB                        ``RANDVIS_MAX_MEMORY`` (``16G``)
image pixels           50,000,000 (about 7071^2)    ``RANDVIS_MAX_IMAGE_PIXELS``
streamed weights       5e10 per pass                ``RANDVIS_MAX_STREAMED_WEIGHTS``
=====================  ===========================  ================================

The defaults do not depend on the machine, so the same call is accepted or
refused everywhere. :func:`set_limit` changes a limit for this process;
``None`` restores the default (or the environment variable's value).

Examples
--------
>>> from randvis import limits
>>> limits.check_memory(3 * 2**30, "a weight matrix")       # 3 GiB: under the default
>>> try:
...     limits.check_memory(40 * 2**30, "a weight matrix")
... except limits.ResourceLimitError as e:
...     print(str(e).split(";")[0])
a weight matrix needs about 40.0 GiB, more than the memory limit of 8.0 GiB
>>> limits.format_bytes(1536)
'1.5 KiB'
"""
from __future__ import annotations

import contextlib
import os
import re

__all__ = ["ResourceLimitError", "check_memory", "check_image_pixels", "check_streamed_weights",
           "get_limit", "set_limit", "limit", "parse_bytes", "format_bytes", "LIMITS"]


class ResourceLimitError(ValueError):
    """A job or a file is larger than a limit of :mod:`randvis.limits`."""


#: name -> (default, environment variable, unit) of every limit
LIMITS = {
    "memory": (8 << 30, "RANDVIS_MAX_MEMORY", "bytes"),
    "image_pixels": (50_000_000, "RANDVIS_MAX_IMAGE_PIXELS", "pixels"),
    "streamed_weights": (50_000_000_000, "RANDVIS_MAX_STREAMED_WEIGHTS", "weights"),
}

_override = {}

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text):
    """``"16G"``, ``"512M"``, ``"2.5g"``, ``"1000"`` -> bytes (binary units).

    >>> parse_bytes("16G") == 16 * 2**30
    True
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 16G, 512M, 1000000)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"a size must be positive and finite, got {text!r}")
    return int(value)


def format_bytes(n):
    """A short human-readable size (binary units)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def _from_env(name):
    default, var, unit = LIMITS[name]
    raw = os.environ.get(var)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse_bytes(raw) if unit == "bytes" else int(float(raw))
    except ValueError as exc:
        raise ValueError(f"environment variable {var}={raw!r}: {exc}") from None
    if value <= 0:
        raise ValueError(f"environment variable {var}={raw!r} must be positive")
    return value


def get_limit(name):
    """The current value of limit ``name`` (see :data:`LIMITS`)."""
    if name not in LIMITS:
        raise KeyError(f"unknown limit {name!r}; choose from {sorted(LIMITS)}")
    return _override[name] if name in _override else _from_env(name)


def set_limit(name, value):
    """Set limit ``name`` for this process (``None``: back to the default/environment).

    Memory accepts a size string (``"16G"``) or a number of bytes.
    """
    if name not in LIMITS:
        raise KeyError(f"unknown limit {name!r}; choose from {sorted(LIMITS)}")
    if value is None:
        _override.pop(name, None)
        return
    value = parse_bytes(value) if isinstance(value, str) else int(value)
    if value <= 0:
        raise ValueError(f"limit {name} must be positive, got {value}")
    _override[name] = value


@contextlib.contextmanager
def limit(name, value):
    """Set limit ``name`` to ``value`` inside a ``with`` block, then restore it.

    >>> with limit("memory", "1G"):
    ...     get_limit("memory") == 2**30
    True
    """
    had = name in _override
    old = _override.get(name)
    set_limit(name, value)
    try:
        yield
    finally:
        if had:
            _override[name] = old
        else:
            _override.pop(name, None)


def _how_to_raise(name):
    var = LIMITS[name][1]
    return f"raise it with {var}=... or randvis.limits.set_limit({name!r}, ...)"


def check_memory(nbytes, what):
    """Raise :class:`ResourceLimitError` when ``what`` needs more than the memory limit."""
    limit = get_limit("memory")
    if nbytes > limit:
        raise ResourceLimitError(f"{what} needs about {format_bytes(nbytes)}, more than the memory "
                                 f"limit of {format_bytes(limit)}; {_how_to_raise('memory')}")


def check_image_pixels(width, height, what="image"):
    """Raise :class:`ResourceLimitError` for an image with more pixels than the limit
    (checked from the file header, before decoding)."""
    limit = get_limit("image_pixels")
    n = int(width) * int(height)
    if n > limit:
        raise ResourceLimitError(f"{what} is {int(width)}x{int(height)} = {n:,} pixels, more than the "
                                 f"limit of {limit:,}; {_how_to_raise('image_pixels')}")


def check_streamed_weights(n, what):
    """Raise :class:`ResourceLimitError` when a pass would generate more streamed
    random weights than the limit (each costs a few nanoseconds)."""
    limit = get_limit("streamed_weights")
    if n > limit:
        raise ResourceLimitError(f"{what} streams {n:.3g} random weights per pass, more than the "
                                 f"limit of {limit:.3g} (about {n * 5e-9 / 60:.0f} min per pass at 5 ns "
                                 f"per weight); {_how_to_raise('streamed_weights')}")
