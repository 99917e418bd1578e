"""randvis's own files: atomic writes, keyed checkpoints, and output-path checks.

Atomic writes
    :func:`atomic_write` writes to a temporary file in the target folder, then
    renames it onto the target, so a crash leaves the old file or the new one,
    never a partial one. The temporary is named ``.tmp-randvis-<pid>-<random><ext>``;
    a writer killed outright (``kill -9``) cannot remove it, so every write
    first removes the temporaries of its folder whose writer process is gone
    (:func:`remove_stale_temporaries`). A live writer's file is never touched.

Checkpoints
    :func:`save_checkpoint` stores numbers (JSON) and arrays in one ``.npz``
    together with the *key* they were computed under (everything the numbers
    depend on) and a digest of the content. :func:`load_checkpoint` reads
    one back only if it is intact and was written under an equal key;
    otherwise it raises :class:`CheckpointError`, whose one-line message
    names the file and says what is wrong, and the caller recomputes. The
    archive is read by :func:`randvis.safeio.load_npz` with at most the
    file's own size in arrays (checkpoints are stored uncompressed) and no
    pickles, so a damaged file can neither run code nor ask for more memory.

Output paths
    :func:`check_outputs` refuses an output path that is one of the inputs
    (the same file, also through a symbolic or hard link) or another output.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
import tempfile
import zipfile
from functools import lru_cache

import numpy as np

__all__ = ["atomic_write", "atomic_write_text", "atomic_savez", "remove_stale_temporaries",
           "CheckpointError", "save_checkpoint", "load_checkpoint", "code_version", "file_sha256",
           "array_digest", "safe_name", "same_file", "check_outputs", "jsonable"]

TMP_PREFIX = ".tmp-randvis-"
_TMP_RE = re.compile(re.escape(TMP_PREFIX) + r"(\d+)-[A-Za-z0-9_]+(\.[A-Za-z0-9]+)*$")


def atomic_write(path, write):
    """Call ``write(tmp_path)``, then rename the temporary file onto ``path``.

    A crash or interrupt leaves either the old file or the new one, never a
    partial file. Stale temporaries of dead writers in the same folder are
    removed first.
    """
    path = os.fspath(path)
    if not path or "\0" in path:
        raise ValueError(f"not a usable file name: {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"output folder does not exist: {folder}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a file name")
    remove_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(suffix=os.path.splitext(path)[1], prefix=f"{TMP_PREFIX}{os.getpid()}-",
                               dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    return atomic_write(path, write)


def jsonable(v, finite_only=False):
    """``v`` with numpy scalars and arrays, tuples and result objects turned into
    plain JSON types (dict, list, int, float, bool, str, None).

    Objects with an ``as_dict()`` method give that dict; ``finite_only`` turns
    NaN and infinities into None (strict JSON) instead of keeping them.

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"a": np.float32(0.5), "b": (1, np.int64(2)), "c": np.arange(2)})
    {'a': 0.5, 'b': [1, 2], 'c': [0, 1]}
    >>> jsonable([np.nan, True], finite_only=True)
    [None, True]
    """
    if hasattr(v, "as_dict") and callable(v.as_dict):
        return v.as_dict()
    if isinstance(v, dict):
        return {str(k): jsonable(x, finite_only) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [jsonable(x, finite_only) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist(), finite_only) if v.ndim else jsonable(v.item(), finite_only)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        v = float(v)
        return None if finite_only and not math.isfinite(v) else v
    return v


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_savez(path, arrays):
    """``numpy.savez`` written atomically; ``.npz`` is appended if missing."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(path, write)


def _pid_alive(pid):
    if pid <= 0:
        return True  # not a real writer's pid: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's process) or cannot tell: keep
    return True


def remove_stale_temporaries(folder):
    """Remove randvis's temporary files in ``folder`` whose writer process is gone.

    Only names made by :func:`atomic_write` (``.tmp-randvis-<pid>-...``) whose
    ``pid`` is not a running process are removed; returns their paths.

    Examples
    --------
    >>> import os, subprocess, sys, tempfile
    >>> d = tempfile.mkdtemp()
    >>> dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
    ...                       capture_output=True, text=True).stdout.strip()
    >>> for name in (f".tmp-randvis-{dead}-abc.png", f".tmp-randvis-{os.getpid()}-abc.png", ".tmp-x.png"):
    ...     open(os.path.join(d, name), "w").close()
    >>> [os.path.basename(p) for p in remove_stale_temporaries(d)] == [f".tmp-randvis-{dead}-abc.png"]
    True
    >>> sorted(os.listdir(d)) == sorted([f".tmp-randvis-{os.getpid()}-abc.png", ".tmp-x.png"])
    True
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _TMP_RE.match(name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        path = os.path.join(folder, name)
        try:
            if os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass  # gone already, or not ours to remove
    return removed


# ---------------------------------------------------------------------------
# keyed checkpoints
# ---------------------------------------------------------------------------

CHECKPOINT_FORMAT = "randvis-checkpoint-1"
_META = ("__format__", "__key__", "__numbers__", "__seconds__", "__digest__")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, damaged or written under another key."""


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _content_digest(key_text, numbers_text, seconds, arrays):
    h = hashlib.sha256()
    for part in (CHECKPOINT_FORMAT, key_text, numbers_text, repr(float(seconds))):
        h.update(part.encode())
        h.update(b"\0")
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(path, key, numbers, arrays=None, seconds=0.0):
    """Write a checkpoint atomically to ``path`` (an npz archive, whatever the
    name): ``numbers`` (JSON-able) and ``arrays`` (name -> ndarray) computed
    under ``key`` (a JSON-able dict), with a digest of the content.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "cell.npz")
    >>> _ = save_checkpoint(p, {"seed": 1}, {"corr": 0.5}, {"map": np.ones(3)}, seconds=2.0)
    >>> numbers, arrays, seconds = load_checkpoint(p, {"seed": 1})
    >>> numbers, arrays["map"].tolist(), seconds
    ({'corr': 0.5}, [1.0, 1.0, 1.0], 2.0)
    >>> try:
    ...     load_checkpoint(p, {"seed": 2})
    ... except CheckpointError as e:
    ...     print(str(e).split(": ", 1)[1])
    written under other settings (seed differs)
    """
    arrays = {} if arrays is None else dict(arrays)
    bad = [k for k in arrays if k.startswith("__")]
    if bad:
        raise ValueError(f"checkpoint array names must not start with '__': {bad}")
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype.hasobject:
            raise TypeError(f"checkpoint array {k!r} has dtype object")
    key_text = _canonical(key)
    numbers_text = json.dumps(numbers, separators=(",", ":"))  # keeps the dicts' order
    seconds = float(seconds)
    digest = _content_digest(key_text, numbers_text, seconds, arrays)
    members = {"__format__": np.array(CHECKPOINT_FORMAT), "__key__": np.array(key_text),
               "__numbers__": np.array(numbers_text), "__seconds__": np.array(seconds),
               "__digest__": np.array(digest), **arrays}

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **members)

    return atomic_write(path, write)


def _read_members(path):
    """{name: ndarray} of a checkpoint archive, read by :func:`randvis.safeio.load_npz`
    (every size checked before it is read; no pickles), at most as many bytes as
    the file holds since checkpoints are stored uncompressed (raises CheckpointError)."""
    from .limits import ResourceLimitError
    from .safeio import load_npz

    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path}: cannot read it ({exc.strerror or exc})") from None
    if size == 0:
        raise CheckpointError(f"checkpoint {path}: the file is empty")
    try:
        return load_npz(path, max_bytes=size)
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, ResourceLimitError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if reason.startswith(str(path)):
            reason = reason[len(str(path)):].lstrip(": ")
        raise CheckpointError(f"checkpoint {path}: unreadable ({reason})") from None


def load_checkpoint(path, key):
    """``(numbers, arrays, seconds)`` of a checkpoint written under ``key``.

    Raises
    ------
    CheckpointError
        The file is unreadable, damaged, not a checkpoint, its content does not
        match its digest, or it was written under another key. The message is
        one line and starts with ``checkpoint <path>:``.
    """
    path = os.fspath(path)
    members = _read_members(path)

    def fail(reason):
        raise CheckpointError(f"checkpoint {path}: {reason}")

    missing = [m for m in _META if m not in members]
    if missing:
        fail(f"not a randvis checkpoint (no {', '.join(missing)})")
    try:
        fmt = str(members["__format__"][()])
        key_text = str(members["__key__"][()])
        numbers_text = str(members["__numbers__"][()])
        seconds = float(members["__seconds__"][()])
        digest = str(members["__digest__"][()])
    except (TypeError, ValueError, IndexError) as exc:
        fail(f"damaged header ({exc})")
    if fmt != CHECKPOINT_FORMAT:
        fail(f"unknown format {fmt[:40]!r}")
    arrays = {k: v for k, v in members.items() if k not in _META}
    if _content_digest(key_text, numbers_text, seconds, arrays) != digest:
        fail("its content does not match its digest (damaged or edited)")
    expected = _canonical(key)
    if key_text != expected:
        try:
            stored = json.loads(key_text)
        except ValueError:
            stored = None
        if isinstance(stored, dict) and isinstance(key, dict):
            diff = sorted(k for k in set(stored) | set(key) if stored.get(k) != json.loads(_canonical(key.get(k))))
            fail(f"written under other settings ({', '.join(diff)} differ{'s' if len(diff) == 1 else ''})")
        fail("written under other settings")
    if not math.isfinite(seconds) or seconds < 0:
        fail(f"impossible computing time {seconds}")
    try:
        numbers = json.loads(numbers_text)
    except ValueError as exc:
        fail(f"damaged numbers ({exc})")
    return numbers, arrays, seconds


# ---------------------------------------------------------------------------
# what results depend on
# ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def code_version():
    """A digest of randvis's source (every ``.py``, ``.txt`` and ``.json`` file of
    the package) and of the numpy and scipy versions: results computed by
    other code are not reused."""
    import scipy

    root = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256(f"numpy {np.__version__}\0scipy {scipy.__version__}\0".encode())
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        files += [os.path.join(folder, n) for n in names if n.endswith((".py", ".txt", ".json"))]
    for path in sorted(files):
        h.update(os.path.relpath(path, root).replace(os.sep, "/").encode() + b"\0")
        with open(path, "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()[:16]


def file_sha256(path, chunk=1 << 22):
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def array_digest(a):
    """A short digest of an array's dtype, shape and bytes."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}\0{a.shape}\0".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def safe_name(text, limit=80):
    """A file-name component made from ``text``: letters, digits and ``_.=-`` only,
    no leading dot (so never ``..`` or a hidden file), at most ``limit`` characters.

    >>> safe_name("../../x y.png")
    'x_y.png'
    >>> safe_name("..")
    '_'
    """
    s = re.sub(r"[^A-Za-z0-9_.=-]+", "_", str(text)).lstrip("._")[:limit]
    return s or "_"


# ---------------------------------------------------------------------------
# output paths
# ---------------------------------------------------------------------------

def same_file(a, b):
    """Whether paths ``a`` and ``b`` name one file (symbolic links resolved;
    existing files compared by device and inode, so hard links count too)."""
    a, b = os.fspath(a), os.fspath(b)
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs, inputs=()):
    """Refuse output paths that would replace an input or each other.

    Parameters
    ----------
    outputs, inputs : iterables of (label, path)
        ``label`` names the option in the error (e.g. ``"--out"``); ``None``
        paths are skipped.

    Raises
    ------
    ValueError
        One line naming both options and the path.

    Examples
    --------
    >>> check_outputs([("--out", "maps.png")], [("IMAGE", "photo.png")])
    >>> try:
    ...     check_outputs([("--out", "photo.png")], [("IMAGE", "./photo.png")])
    ... except ValueError as e:
    ...     print(e)
    --out photo.png is the input IMAGE ./photo.png; refusing to overwrite it
    """
    outputs = [(label, os.fspath(p)) for label, p in outputs if p is not None]
    inputs = [(label, os.fspath(p)) for label, p in inputs if p is not None]
    for i, (olabel, o) in enumerate(outputs):
        for ilabel, p in inputs:
            if same_file(o, p):
                raise ValueError(f"{olabel} {o} is the input {ilabel} {p}; refusing to overwrite it")
        for olabel2, o2 in outputs[:i]:
            if same_file(o, o2):
                raise ValueError(f"{olabel} {o} is also the output of {olabel2}; give them different paths")
