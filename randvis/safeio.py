"""Bounded reading of ``.npz`` archives: sizes are checked before anything is
allocated or decompressed.

``numpy.load`` trusts an archive: it allocates whatever an ``.npy`` header
claims and inflates whatever a zip member holds. :func:`load_npz` and
:class:`NpzReader` read the same files with every size checked first:

* each member's ``.npy`` header is parsed (``numpy.lib.format``) from a
  stream that stops after a few kilobytes, so a header can neither be huge
  nor decompress to gigabytes;
* the array's size (``prod(shape) * itemsize``) is compared with the memory
  limit of :mod:`randvis.limits` and with the caller's ``max_bytes`` before
  the array is allocated; a header claiming 37 GiB is refused from its 128
  bytes;
* the data are read from a stream that stops at exactly the size the header
  announced: a member that holds more (or less) is refused, whatever the zip
  directory claims;
* pickled (object) arrays are never loaded, and members that are not
  ``.npy`` arrays, or appear twice, are refused.

Errors are :class:`NpzError` (a ``ValueError``) naming the file and the
member, or :class:`randvis.limits.ResourceLimitError` when a limit the user
can raise is exceeded.

Examples
--------
>>> import os, tempfile, numpy as np
>>> from randvis import safeio
>>> path = os.path.join(tempfile.mkdtemp(), "a.npz")
>>> np.savez_compressed(path, w=np.arange(6.0).reshape(2, 3), b=np.zeros(3, np.float32))
>>> with safeio.NpzReader(path) as npz:         # headers only: nothing is decompressed yet
...     npz.headers["w"].shape, npz.headers["w"].nbytes
((2, 3), 48)
>>> safeio.load_npz(path, names=["w"])["w"][1]
array([3., 4., 5.])
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy_format

from .limits import check_memory, format_bytes

__all__ = ["load_npz", "NpzReader", "NpzError", "ArrayHeader", "MAX_MEMBERS", "MAX_HEADER_BYTES"]

#: most members an archive may have
MAX_MEMBERS = 100_000
#: most bytes an ``.npy`` header (magic, length and dictionary) may take
MAX_HEADER_BYTES = 1 << 16

_CHUNK = 1 << 24


class NpzError(ValueError):
    """An ``.npz`` archive that cannot be read safely: corrupt, pickled, not what
    the caller expects, or larger than the caller allows (the message names
    the file and the member)."""


@dataclass(frozen=True)
class ArrayHeader:
    """What an ``.npy`` member's header announces (read before any data).

    Attributes
    ----------
    shape : tuple of int
    dtype : numpy.dtype
    fortran_order : bool
    nbytes : int
        ``prod(shape) * dtype.itemsize``: the bytes the array will occupy.
    """

    shape: tuple
    dtype: np.dtype
    fortran_order: bool
    nbytes: int


class _Bounded:
    """A read-only view of a stream that refuses to read past ``budget`` bytes."""

    def __init__(self, stream, budget, what):
        self._stream, self._left, self._what = stream, budget, what

    def read(self, n=-1):
        if n is None or n < 0 or n > self._left:
            raise NpzError(f"{self._what} is longer than {self._left} bytes")
        data = self._stream.read(n)
        self._left -= len(data)
        return data


class NpzReader:
    """An ``.npz`` archive opened for bounded reading (a context manager).

    Opening reads the zip directory and every member's ``.npy`` header, at
    most :data:`MAX_HEADER_BYTES` decompressed bytes each; no array data.
    :meth:`read` then reads one member, after checking its size.

    Parameters
    ----------
    path : str or os.PathLike

    Attributes
    ----------
    path : str
    headers : dict of str to ArrayHeader
        Member name (without ``.npy``) -> header, in archive order.

    Raises
    ------
    NpzError
        Not a zip archive, a member that is not an ``.npy`` array, a
        duplicated member, a corrupt or oversized header, an object
        (pickled) dtype, more than :data:`MAX_MEMBERS` members.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(path, a=np.ones((2, 2)), b=np.arange(3))
    >>> with NpzReader(path) as npz:
    ...     sorted(npz.headers), npz.read("b", max_bytes=1024)
    (['a', 'b'], array([0, 1, 2]))
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except IsADirectoryError:
            raise NpzError(f"{self.path}: a directory, not an .npz archive") from None
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise NpzError(f"{self.path}: not a readable .npz archive ({exc})") from None
        try:
            self.headers = self._read_headers()
        except BaseException:
            self._zip.close()
            raise

    # -- opening ---------------------------------------------------------
    def _read_headers(self):
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise NpzError(f"{self.path}: {len(infos):,} members, more than the {MAX_MEMBERS:,} "
                           "an .npz archive may have here")
        self._infos, headers = {}, {}
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise NpzError(f"{self.path}: member {info.filename!r} is not an .npy array")
            name = info.filename[:-len(".npy")]
            if name in headers:
                raise NpzError(f"{self.path}: member {info.filename!r} appears twice")
            if info.flag_bits & 0x1:
                raise NpzError(f"{self.path}: member {info.filename!r} is encrypted")
            with self._open(info) as stream:
                headers[name] = self._parse_header(name, _Bounded(stream, MAX_HEADER_BYTES,
                                                                  f"the header of {name!r}"))
            self._infos[name] = info
        return headers

    def _open(self, info):
        try:
            return self._zip.open(info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
            raise NpzError(f"{self.path}: member {info.filename!r} cannot be read ({exc})") from None

    def _parse_header(self, name, stream):
        where = f"{self.path}: member {name!r}"
        try:
            version = npy_format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(stream)
            else:
                raise NpzError(f"{where}: unsupported .npy format version {version}")
        except NpzError as exc:
            if str(exc).startswith(self.path):
                raise
            raise NpzError(f"{where}: {exc}") from None
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError, EOFError,
                zipfile.BadZipFile, OSError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise NpzError(f"{where}: corrupt .npy header ({first})") from None
        if dtype.hasobject:
            raise NpzError(f"{where} is an object array (pickled data); refused: only numeric "
                           "and string arrays are read")
        if any(n < 0 for n in shape):
            raise NpzError(f"{where}: negative dimension in shape {shape}")
        return ArrayHeader(tuple(shape), dtype, fortran, math.prod(shape) * dtype.itemsize)

    # -- reading ---------------------------------------------------------
    def read(self, name, max_bytes=None):
        """One member as an array, after checking its size.

        Parameters
        ----------
        name : str
            A key of :attr:`headers`.
        max_bytes : int, optional
            Refuse (:class:`NpzError`) a member larger than this.

        Returns
        -------
        ndarray
            With the header's shape and dtype (byte order kept).

        Raises
        ------
        KeyError
            No member ``name``.
        NpzError
            Larger than ``max_bytes``; data shorter or longer than the header
            announces; a corrupt member (bad CRC, bad compressed data).
        randvis.limits.ResourceLimitError
            Larger than the memory limit.
        """
        if name not in self.headers:
            raise KeyError(f"{self.path}: no member {name!r}")
        h = self.headers[name]
        where = f"{self.path}: member {name!r}"
        if max_bytes is not None and h.nbytes > max_bytes:
            raise NpzError(f"{where} holds {format_bytes(h.nbytes)} (shape {h.shape}, {h.dtype}), "
                           f"more than the {format_bytes(max_bytes)} expected")
        check_memory(h.nbytes, f"{where} (shape {h.shape}, {h.dtype})")
        out = np.empty(h.shape[::-1] if h.fortran_order else h.shape, h.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8)) if h.nbytes else memoryview(b"")
        with self._open(self._infos[name]) as stream:
            try:
                again = self._parse_header(name, _Bounded(stream, MAX_HEADER_BYTES,
                                                          f"the header of {name!r}"))
                if again != h:
                    raise NpzError(f"{where}: the member changed while it was read")
                done = 0
                while done < h.nbytes:
                    data = stream.read(min(_CHUNK, h.nbytes - done))
                    if not data:
                        raise NpzError(f"{where}: the data end after {done} of the "
                                       f"{h.nbytes} bytes its header announces")
                    view[done:done + len(data)] = data
                    done += len(data)
                if stream.read(1):
                    raise NpzError(f"{where}: more data than its header announces (shape "
                                   f"{h.shape}, {h.dtype}); refused")
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                if isinstance(exc, NpzError):
                    raise
                raise NpzError(f"{where}: corrupt data ({exc})") from None
        return out.T if h.fortran_order else out

    def close(self):
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_npz(path, names=None, max_bytes=None):
    """Read arrays from an ``.npz`` archive, every size checked before it is read.

    Parameters
    ----------
    path : str or os.PathLike
    names : iterable of str, optional
        The members to read (without ``.npy``); default all. Other members
        are not decompressed. A missing name raises :class:`NpzError`.
    max_bytes : int, optional
        The most bytes the caller expects all the arrays read to take
        together; refused beyond it.

    Returns
    -------
    dict of str to ndarray
        In archive order.

    Raises
    ------
    NpzError
        Corrupt archive or member, object (pickled) arrays, missing names,
        more than ``max_bytes``, data longer or shorter than a header says.
    randvis.limits.ResourceLimitError
        The arrays together need more than the memory limit.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(path, w=np.eye(2), n=np.array(3))
    >>> arrays = load_npz(path)
    >>> list(arrays), int(arrays["n"])
    (['w', 'n'], 3)
    >>> try:
    ...     load_npz(path, max_bytes=16)
    ... except NpzError as exc:
    ...     print(str(exc).split(": ", 1)[1])
    2 arrays hold 40 B, more than the 16 B expected
    """
    with NpzReader(path) as npz:
        if names is None:
            names = list(npz.headers)
        else:
            names = list(dict.fromkeys(names))
            missing = [n for n in names if n not in npz.headers]
            if missing:
                raise NpzError(f"{npz.path}: no member(s) {', '.join(map(repr, missing))}; "
                               f"the archive has {', '.join(map(repr, npz.headers)) or 'none'}")
        total = sum(npz.headers[n].nbytes for n in names)
        if max_bytes is not None and total > max_bytes:
            raise NpzError(f"{npz.path}: {len(names)} arrays hold {format_bytes(total)}, more than "
                           f"the {format_bytes(max_bytes)} expected")
        if names:
            big = max(names, key=lambda n: npz.headers[n].nbytes)
            h = npz.headers[big]
            check_memory(total, f"{npz.path}: {len(names)} arrays (the largest: {big!r}, shape "
                         f"{h.shape}, {h.dtype})")
        return {n: npz.read(n) for n in names}
