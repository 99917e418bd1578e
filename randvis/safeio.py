"""Bounded reading of untrusted files: ``.npz`` archives and pickle streams are
checked before anything is allocated, decompressed or built.

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

:func:`scan_pickle` walks a pickle's opcodes without building anything and
tracks only the shape of what they would build: it refuses (with
:class:`PickleScanError`) containers nested deeper than
:data:`MAX_PICKLE_DEPTH` (a recursive structure included), containers of more
than :data:`MAX_PICKLE_ITEMS` items, more than :data:`MAX_PICKLE_OBJECTS`
objects and strings longer than :data:`MAX_PICKLE_STRING` bytes, so that
unpickling the stream afterwards cannot exhaust memory or the stack.
:mod:`randvis.torchfile` scans every checkpoint pickle this way.

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
>>> import functools, io, pickle
>>> safeio.scan_pickle(io.BytesIO(pickle.dumps({"w": [1, 2, (3, 4)]})), "ok.pkl")
>>> deep = pickle.dumps(functools.reduce(lambda x, _: [x], range(200), 0))
>>> try:
...     safeio.scan_pickle(io.BytesIO(deep), "deep.pkl")
... except safeio.PickleScanError as exc:
...     print(exc)
deep.pkl: containers nested deeper than the limit of 100 (depth > 100, or a recursive structure); refused before unpickling
"""
from __future__ import annotations

import io
import math
import os
import struct
import zipfile
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy_format

from .limits import check_memory, format_bytes

__all__ = ["load_npz", "NpzReader", "NpzError", "ArrayHeader", "scan_pickle", "PickleScanError",
           "MAX_MEMBERS", "MAX_HEADER_BYTES", "MAX_PICKLE_DEPTH", "MAX_PICKLE_ITEMS",
           "MAX_PICKLE_OBJECTS", "MAX_PICKLE_STRING"]

#: most members an archive may have
MAX_MEMBERS = 100_000
#: most bytes an ``.npy`` header (magic, length and dictionary) may take
MAX_HEADER_BYTES = 1 << 16
#: deepest nesting of containers a pickle may have
MAX_PICKLE_DEPTH = 100
#: most items in one tuple, list, dict or set of a pickle
MAX_PICKLE_ITEMS = 1_000_000
#: most objects (opcodes) in one pickle
MAX_PICKLE_OBJECTS = 2_000_000
#: longest string, bytes or integer (in bytes) in a pickle
MAX_PICKLE_STRING = 16 << 20

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


# ---------------------------------------------------------------------------
# pickle streams: a structural scan, before anything in them is built
# ---------------------------------------------------------------------------

class PickleScanError(ValueError):
    """A pickle stream refused by :func:`scan_pickle`: corrupt, truncated or past
    one of the limits (the message names the file and the limit)."""


class _Shape:
    """What the scan knows of one object: how deep it nests, how many items it
    holds, and which containers hold it (so that growing it deepens them):
    ``parents`` is None, the one container, or a list of them."""

    __slots__ = ("depth", "items", "parents")

    def __init__(self, depth=0):
        self.depth, self.items, self.parents = depth, 0, None


#: every int, string, global ...: they hold nothing and never grow, so they share one shape
_ATOM = _Shape(0)

# opcode -> (stack effect, argument length) for every opcode of protocols 0-5;
# effects: "atom" pushes a leaf, "new" pushes an empty container, "build"
# pops n items (or a marked slice, n None) into a new object, "add" pops n
# items (or a marked slice) into the object below them; argument lengths:
# an int is a fixed size, "line" / "lines2" newline-terminated, "len1", "len4",
# "len8" a length prefix of that many bytes
_OPS = {
    b"I": ("atom", "line"), b"J": ("atom", 4), b"K": ("atom", 1), b"M": ("atom", 2),
    b"L": ("atom", "line"), b"\x8a": ("atom", "len1"), b"\x8b": ("atom", "len4"),
    b"S": ("atom", "line"), b"T": ("atom", "len4"), b"U": ("atom", "len1"),
    b"B": ("atom", "len4"), b"C": ("atom", "len1"), b"\x8e": ("atom", "len8"),
    b"\x96": ("atom", "len8"), b"N": ("atom", 0), b"\x88": ("atom", 0), b"\x89": ("atom", 0),
    b"V": ("atom", "line"), b"\x8c": ("atom", "len1"), b"X": ("atom", "len4"),
    b"\x8d": ("atom", "len8"), b"F": ("atom", "line"), b"G": ("atom", 8),
    b"\x82": ("atom", 1), b"\x83": ("atom", 2), b"\x84": ("atom", 4),
    b"c": ("atom", "lines2"), b"P": ("atom", "line"),
    b"]": ("new", 0), b"}": ("new", 0), b"\x8f": ("new", 0), b")": ("new", 0),
    b"l": ("build", 0), b"t": ("build", 0), b"d": ("build", 0), b"\x91": ("build", 0),
    b"i": ("build", "lines2"), b"o": ("build", 0),
    b"\x85": ("build1", 0), b"\x86": ("build2", 0), b"\x87": ("build3", 0),
    b"R": ("build2", 0), b"\x81": ("build2", 0), b"\x92": ("build3", 0),
    b"\x93": ("build2", 0), b"Q": ("build1", 0),
    b"a": ("add1", 0), b"s": ("add2", 0), b"b": ("add1", 0),
    b"e": ("add", 0), b"u": ("add", 0), b"\x90": ("add", 0),
    b"0": ("pop", 0), b"2": ("dup", 0), b"(": ("mark", 0), b"1": ("popmark", 0),
    b"g": ("get", "line"), b"h": ("get", 1), b"j": ("get", 4),
    b"p": ("put", "line"), b"q": ("put", 1), b"r": ("put", 4), b"\x94": ("memoize", 0),
    b"\x80": ("none", 1), b"\x95": ("none", 8), b".": ("stop", 0),
}
_INT_OPS = {b"J": "<i", b"K": "<B", b"M": "<H", b"h": "<B", b"j": "<I", b"q": "<B", b"r": "<I"}
_LEN_PREFIX = {"len1": ("<B", 1), "len4": ("<I", 4), "len8": ("<Q", 8)}
_SHORT = {b"\x8a", b"\x8b", b"I", b"L", b"J", b"K", b"M", b"F", b"g", b"p"}


class _Scan:
    """Walks a pickle's opcodes and tracks only the shape of what they would build."""

    def __init__(self, fh, path):
        self.fh, self.path = fh, path
        self.stack, self.marks, self.memo = [], [], {}
        self.objects = self.work = 0

    def fail(self, what):
        raise PickleScanError(f"{self.path}: {what}; refused before unpickling")

    def read(self, n):
        data = self.fh.read(n)
        if len(data) != n:
            raise PickleScanError(f"{self.path}: truncated or corrupt pickle (it ends inside an "
                                  "opcode)")
        return data

    def skip(self, n, code):
        limit = 64 if code in _SHORT else MAX_PICKLE_STRING
        if n > limit:
            what = "an integer" if code in _SHORT else "a string"
            self.fail(f"{what} of {n:,} bytes in the pickle, more than the limit of {limit:,} bytes")
        if hasattr(self.fh, "seekable") and self.fh.seekable():
            here = self.fh.tell()
            end = self.fh.seek(0, io.SEEK_END)
            if here + n > end:
                raise PickleScanError(f"{self.path}: truncated or corrupt pickle (a string runs "
                                      "past the end)")
            self.fh.seek(here + n)
        else:
            self.read(n)

    def line(self, code):
        limit = 64 if code in _SHORT else MAX_PICKLE_STRING
        data = self.fh.readline(limit + 1)
        if not data.endswith(b"\n"):
            if len(data) > limit:
                self.fail(f"a text field of more than {limit:,} bytes in the pickle")
            raise PickleScanError(f"{self.path}: truncated or corrupt pickle (unterminated line)")
        return data[:-1]

    def argument(self, code, kind):
        if kind == "line":
            return self.line(code)
        if kind == "lines2":
            return self.line(code), self.line(code)
        if kind in _LEN_PREFIX:
            fmt, size = _LEN_PREFIX[kind]
            self.skip(struct.unpack(fmt, self.read(size))[0], code)
            return None
        data = self.read(kind)
        return struct.unpack(_INT_OPS[code], data)[0] if code in _INT_OPS else data

    def pop(self):
        if not self.stack:
            raise PickleScanError(f"{self.path}: corrupt pickle (stack underflow)")
        return self.stack.pop()

    def pop_mark(self):
        if not self.marks:
            raise PickleScanError(f"{self.path}: corrupt pickle (no mark)")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def deepen(self, node, depth):
        """Raise ``node`` to ``depth`` and every container holding it accordingly."""
        todo = [(node, depth)]
        while todo:
            node, depth = todo.pop()
            if depth <= node.depth:
                continue
            if depth > MAX_PICKLE_DEPTH:
                self.fail(f"containers nested deeper than the limit of {MAX_PICKLE_DEPTH} "
                          f"(depth > {MAX_PICKLE_DEPTH}, or a recursive structure)")
            node.depth = depth
            held = node.parents
            if held is None:
                continue
            held = held if isinstance(held, list) else [held]
            self.work += len(held)
            if self.work > 4 * MAX_PICKLE_OBJECTS:
                self.fail("a structure too entangled to check")
            todo.extend((p, depth + 1) for p in held)

    def add(self, node, items, pairs=False):
        node.items += len(items) // 2 if pairs else len(items)
        if node.items > MAX_PICKLE_ITEMS:
            self.fail(f"a container of {node.items:,} items, more than the limit of "
                      f"{MAX_PICKLE_ITEMS:,}")
        deepest = 0
        for item in items:
            if item is not _ATOM:
                held = item.parents
                if held is None:
                    item.parents = node
                elif isinstance(held, list):
                    held.append(node)
                else:
                    item.parents = [held, node]
                deepest = max(deepest, item.depth)
        if items:
            self.deepen(node, deepest + 1)

    def run(self):
        """Scan up to and including STOP; the stream is left after it."""
        while True:
            code = self.fh.read(1)
            if not code:
                raise PickleScanError(f"{self.path}: truncated or corrupt pickle (no STOP opcode)")
            op = _OPS.get(code)
            if op is None:
                raise PickleScanError(f"{self.path}: corrupt pickle (unknown opcode {code!r})")
            effect, kind = op
            arg = self.argument(code, kind) if kind else None
            self.objects += 1
            if self.objects > MAX_PICKLE_OBJECTS:
                self.fail(f"more than the limit of {MAX_PICKLE_OBJECTS:,} objects in the pickle")
            if effect == "atom":
                self.stack.append(_ATOM)
            elif effect == "new":
                self.stack.append(_Shape(1))
            elif effect.startswith("build"):
                items = self.pop_mark() if effect == "build" else \
                    [self.pop() for _ in range(int(effect[-1]))][::-1]
                node = _Shape(1)
                self.add(node, items, pairs=code == b"d")
                self.stack.append(node)
            elif effect.startswith("add"):
                items = self.pop_mark() if effect == "add" else \
                    [self.pop() for _ in range(int(effect[-1]))][::-1]
                if not self.stack:
                    raise PickleScanError(f"{self.path}: corrupt pickle (nothing to add to)")
                self.add(self.stack[-1], items, pairs=code in (b"s", b"u"))
            elif effect == "pop":
                if self.stack:
                    self.stack.pop()
                else:
                    self.pop_mark()
            elif effect == "dup":
                top = self.pop()
                self.stack += [top, top]
            elif effect == "mark":
                self.marks.append(self.stack)
                self.stack = []
            elif effect == "popmark":
                self.pop_mark()
            elif effect == "get":
                key = int(arg) if isinstance(arg, bytes) else arg
                if key not in self.memo:
                    raise PickleScanError(f"{self.path}: corrupt pickle (memo key {key} missing)")
                self.stack.append(self.memo[key])
            elif effect in ("put", "memoize"):
                if not self.stack:
                    raise PickleScanError(f"{self.path}: corrupt pickle (nothing to memoize)")
                key = len(self.memo) if effect == "memoize" else \
                    (int(arg) if isinstance(arg, bytes) else arg)
                self.memo[key] = self.stack[-1]
            elif effect == "stop":
                self.pop()
                return


def scan_pickle(fh, path):
    """Check the pickle at ``fh``'s position without building anything in it.

    Every opcode is read; only the shape of what it would build is tracked
    (nesting depth, items per container, objects, string lengths) and
    compared with :data:`MAX_PICKLE_DEPTH`, :data:`MAX_PICKLE_ITEMS`,
    :data:`MAX_PICKLE_OBJECTS` and :data:`MAX_PICKLE_STRING`. Which globals
    the pickle names is not judged here (that is the unpickler's job).

    Parameters
    ----------
    fh : binary file object
        Positioned at the pickle; left after its STOP opcode.
    path : str
        The file's name, for messages.

    Raises
    ------
    PickleScanError
        A limit is exceeded, or the stream is truncated or corrupt.

    Examples
    --------
    >>> import io, pickle
    >>> fh = io.BytesIO(pickle.dumps([{"a": 1}] * 3) + b"rest")
    >>> scan_pickle(fh, "x.pkl")
    >>> fh.read()
    b'rest'
    >>> try:
    ...     scan_pickle(io.BytesIO(b"\\x80\\x02]("), "cut.pkl")
    ... except PickleScanError as exc:
    ...     print(exc)
    cut.pkl: truncated or corrupt pickle (no STOP opcode)
    """
    try:
        _Scan(fh, path).run()
    except PickleScanError:
        raise
    except (ValueError, struct.error) as exc:
        raise PickleScanError(f"{path}: corrupt pickle ({exc})") from None
