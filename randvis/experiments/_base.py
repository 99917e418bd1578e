"""Shared machinery of the experiments: context, cells with checkpoints, claims."""
from __future__ import annotations

import json
import os
import re
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from .._io import atomic_savez


@dataclass
class Claim:
    """One claim of the paper, the number that tests it, and whether it holds."""

    claim: str
    measure: str
    value: float
    holds: bool
    figure: str = ""

    def as_dict(self):
        return {"claim": self.claim, "measure": self.measure, "value": float(self.value),
                "holds": bool(self.holds), "figure": self.figure}


@dataclass
class Context:
    """What every experiment gets: images, options, seeded randomness and a cell cache.

    Parameters
    ----------
    out : str
        Output folder; checkpoints live in ``out/.checkpoints``.
    images : list of (name, ndarray (3, h, w) in [0, 1])
    quick : bool
        Small sizes and sweeps (CI).
    seed : int
    vgg_weights : str or None
    progress : bool
    """

    out: str
    images: list
    quick: bool = False
    seed: int = 0
    vgg_weights: str = None
    progress: bool = True
    computed: list = field(default_factory=list)
    reused_seconds: float = 0.0

    def rng(self, *key):
        """A Generator determined by the seed and ``key`` only (order-independent)."""
        return np.random.default_rng([self.seed, zlib.crc32(repr(key).encode())])

    def seed_of(self, *key):
        return int(self.rng(*key).integers(2 ** 31))

    def cell(self, experiment, key, compute):
        """``compute()`` -> (numbers dict, arrays dict), cached on disk.

        A finished cell is written atomically to ``out/.checkpoints/<experiment>/<key>.npz``
        and read back instead of recomputed, so an interrupted run resumes with
        identical results. It keeps the seconds its computation took; a reused cell
        adds them to ``reused_seconds`` so a resumed run can still report how long the
        whole computation takes.
        """
        safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", str(key))
        folder = os.path.join(self.out, ".checkpoints", experiment)
        path = os.path.join(folder, safe + ".npz")
        if os.path.exists(path):
            with np.load(path, allow_pickle=False) as f:
                numbers = json.loads(str(f["__numbers__"]))
                if "__seconds__" in f.files:
                    self.reused_seconds += float(f["__seconds__"])
                arrays = {k: f[k] for k in f.files if k not in ("__numbers__", "__seconds__")}
            return numbers, arrays
        t0 = time.perf_counter()
        numbers, arrays = compute()
        seconds = time.perf_counter() - t0
        os.makedirs(folder, exist_ok=True)
        atomic_savez(path, {"__numbers__": np.array(json.dumps(numbers)), "__seconds__": np.array(seconds),
                            **arrays})
        self.computed.append((experiment, key))
        return numbers, arrays


def corr(a, b):
    """Pearson correlation of two (c, h, w) maps after removing each channel's mean.

    Removing channel means keeps a channel-wide offset (DeconvNet of a random
    net has one, see docs/theory.md) from passing for image structure.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim == 4:
        a, b = a[0], b[0]
    a = (a - a.mean(axis=(-2, -1), keepdims=True)).ravel()
    b = (b - b.mean(axis=(-2, -1), keepdims=True)).ravel()
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den > 0 else 0.0


def show(ax, m, title=None, mode="minmax"):
    """Draw a (3, h, w) map with the paper's min-max normalisation."""
    from ..images import normalize_map, to_hwc

    ax.imshow(to_hwc(normalize_map(np.asarray(m, dtype=np.float64), mode=mode)))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
