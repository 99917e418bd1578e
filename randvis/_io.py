"""Atomic file writes: write to a temporary file in the target folder, then rename."""
from __future__ import annotations

import os
import tempfile

import numpy as np


def atomic_write(path, write):
    """Call ``write(tmp_path)``, then rename the temporary file onto ``path``.

    A crash or interrupt leaves either the old file or the new one, never a
    partial file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"output folder does not exist: {folder}")
    fd, tmp = tempfile.mkstemp(suffix=os.path.splitext(path)[1], prefix=".tmp-", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


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
