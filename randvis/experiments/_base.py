"""Shared machinery of the experiments: context, cells with checkpoints, claims."""
from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..claims import Claim  # noqa: F401  (re-exported by randvis.experiments)
from ..stats import pearson
from .._io import (CheckpointError, array_digest, code_version, file_sha256, load_checkpoint, safe_name,
                   save_checkpoint)


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
    draws : int or None
        Independent weight draws per image for the random networks that are
        cheap to draw (default: 1 with ``quick``, 2 otherwise).
    progress : bool
        A progress bar of the cells done per experiment (on a terminal only).
    log : callable or None
        Receives one-line notes (a damaged checkpoint that is recomputed); they
        are also kept in ``notes``.

    Examples
    --------
    >>> import numpy as np
    >>> ctx = Context(out="unused", images=[("flat", np.zeros((3, 4, 4)))], seed=7)
    >>> ctx.seed_of("vgg16-random") == ctx.seed_of("vgg16-random")   # a function of seed and key only
    True
    >>> ctx.seed_of("vgg16-random") == Context(out="x", images=[], seed=8).seed_of("vgg16-random")
    False

    Weight draws are seeded by the image's content, not its name: two images
    get independent networks, the same pixels under another name the same one.

    >>> two = Context(out="unused", images=[("a", np.zeros((3, 4, 4))), ("b", np.ones((3, 4, 4))),
    ...                                     ("a2", np.zeros((3, 4, 4)))])
    >>> two.draw_seed("cnn", "a") == two.draw_seed("cnn", "a2"), two.draw_seed("cnn", "a") == two.draw_seed("cnn", "b")
    (True, False)
    >>> two.draw_seed("cnn", "a", draw=1) == two.draw_seed("cnn", "a")
    False
    """

    out: str
    images: list
    quick: bool = False
    seed: int = 0
    vgg_weights: str = None
    draws: int = None
    progress: bool = True
    computed: list = field(default_factory=list)
    reused: list = field(default_factory=list)
    reused_seconds: float = 0.0
    log: object = None
    notes: list = field(default_factory=list)
    _digests: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _bars: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def rng(self, *key):
        """A Generator determined by the seed and ``key`` only (order-independent)."""
        return np.random.default_rng([self.seed, zlib.crc32(repr(key).encode())])

    def seed_of(self, *key):
        return int(self.rng(*key).integers(2 ** 31))

    def image_digest(self, name):
        """Digest of the pixels of the image called ``name`` (see :func:`randvis._io.array_digest`)."""
        digests = dict(self._digest("images", lambda: [[str(n), array_digest(np.asarray(a))]
                                                       for n, a in self.images]))
        if str(name) not in digests:
            raise KeyError(f"no image called {name!r} in this run")
        return digests[str(name)]

    def draw_seed(self, *key, image=None, draw=0):
        """Seed of weight draw ``draw`` of the network of cell ``key`` for ``image``.

        A function of the run's seed, ``key``, the image's pixels (their
        digest, not the image's name) and ``draw`` only: every image has its
        own independent networks, so images are independent observations of a
        claim, and a run is reproducible whatever order or subset of images it
        gets. ``image`` may also be given as the last element of ``key``.
        """
        if image is None:
            key, image = key[:-1], key[-1]
        return self.seed_of(*key, self.image_digest(image), int(draw))

    @property
    def n_draws(self):
        """Weight draws per image (``draws``, or 1 with ``quick`` and 2 otherwise)."""
        return int(self.draws) if self.draws is not None else (1 if self.quick else 2)

    def note(self, message):
        self.notes.append(message)
        if self.log is not None:
            self.log(message)

    def _digest(self, what, compute):
        if what not in self._digests:
            self._digests[what] = compute()
        return self._digests[what]

    def __post_init__(self):
        if self.draws is not None:
            from .. import _checks

            self.draws = _checks.positive_int(self.draws, "draws")
        names = [str(n) for n, _ in self.images]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"image names must be unique (cells are keyed by them), repeated: {dup}")

    def fingerprint(self):
        """The settings of the whole run: the randvis code version
        (:func:`randvis._io.code_version`), the seed, ``quick``, every image's
        name and a digest of its array (size included), and the sha256 of
        ``vgg_weights`` (None without)."""
        return {"randvis": code_version(), "seed": int(self.seed), "quick": bool(self.quick),
                "images": self._digest("images", lambda: [[str(n), array_digest(np.asarray(a))]
                                                          for n, a in self.images]),
                "draws": self.n_draws,
                "vgg16": (self._digest(("vgg", self.vgg_weights), lambda: file_sha256(self.vgg_weights))
                          if self.vgg_weights else None)}

    def settings(self, experiment):
        """Everything a cell of ``experiment`` depends on besides its own label:
        :meth:`fingerprint`, and for the experiments on trained networks (those
        that require a package) the sha256 of every installed trained model's
        weight file (:func:`randvis.experiments._trained.weight_digests`); the
        others do not depend on any weight file."""
        from . import EXPERIMENTS

        key = {"experiment": str(experiment), **self.fingerprint()}
        if getattr(EXPERIMENTS.get(experiment), "REQUIRES", ()):
            key["trained"] = self._digest("trained", _trained_weight_digests)
        else:
            key.pop("vgg16")
        return key

    def cell_path(self, experiment, key, settings=None):
        """Where the checkpoint of cell ``key`` of ``experiment`` lives:
        ``out/.checkpoints/<experiment>/<key>.<digest of the settings>.npz``.

        Names are reduced to letters, digits and ``_.=-`` (no leading dot), so a
        key made from an image's file name cannot leave the checkpoint folder.
        """
        settings = self.settings(experiment) if settings is None else settings
        tag = hashlib.sha256(json.dumps([str(key), settings], sort_keys=True).encode()).hexdigest()[:16]
        root = os.path.join(self.out, ".checkpoints")
        path = os.path.join(root, safe_name(experiment), f"{safe_name(key)}.{tag}.npz")
        if os.path.commonpath([os.path.abspath(root), os.path.abspath(path)]) != os.path.abspath(root):
            raise ValueError(f"checkpoint path {path} would leave {root}")  # pragma: no cover
        return path

    def cell(self, experiment, key, compute):
        """``compute()`` -> (numbers dict, arrays dict), cached on disk.

        A finished cell is written atomically to :meth:`cell_path` together with
        its full key (the label ``key`` and :meth:`settings`) and read back
        instead of recomputed only when that key is equal, so an interrupted run
        resumes with identical results and a run with another seed, other
        images, other weights or other code never reuses a number. A checkpoint
        that is damaged or belongs to another key is reported in one line
        (:meth:`note`) and recomputed. A cell keeps the seconds its computation
        took; a reused cell adds them to ``reused_seconds`` so a resumed run can
        still report how long the whole computation takes.
        """
        settings = self.settings(experiment)
        full_key = {"cell": str(key), **settings}
        path = self.cell_path(experiment, key, settings)
        if os.path.exists(path):
            try:
                numbers, arrays, seconds = load_checkpoint(path, full_key)
            except CheckpointError as exc:
                self.note(f"{exc}; recomputing")
            else:
                self.reused_seconds += seconds
                self.reused.append((experiment, key))
                self._tick(experiment)
                return numbers, arrays
        t0 = time.perf_counter()
        numbers, arrays = compute()
        seconds = time.perf_counter() - t0
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_checkpoint(path, full_key, numbers, arrays, seconds)
        self.computed.append((experiment, key))
        self._tick(experiment)
        return numbers, arrays

    def _tick(self, experiment):
        """Advance the experiment's progress bar (cells done; shown on a terminal only)."""
        if not self.progress:
            return
        if experiment not in self._bars:
            from tqdm.auto import tqdm

            self._bars[experiment] = tqdm(desc=f"[{experiment}] cells", unit="cell", disable=None, leave=False)
        self._bars[experiment].update()

    def close_progress(self):
        """Close the progress bars (at the end of each experiment)."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def _trained_weight_digests():
    from ._trained import weight_digests

    return weight_digests()


def maps_vs_input(ctx, experiment, label, build, draws=None):
    """Every image's maps from independent random networks, and their correlation with the input.

    For image ``i`` and draw ``j`` (``draws``, default :attr:`Context.n_draws`),
    ``build(seed, input_shape)`` makes the network, with ``seed`` from
    :meth:`Context.draw_seed`; the maps are for its top logit. Each (image,
    draw) is one cell, ``"<label>-<image>-draw<j>"``.

    Returns
    -------
    values : dict
        method -> list over images of lists over draws of :func:`corr` (map, x).
    panels : dict
        method -> map of the first image's first draw.
    """
    from ..images import preprocess
    from ..methods import METHODS, visualize

    values, panels = {m: [] for m in METHODS}, {}
    for idx, (name, img) in enumerate(ctx.images):
        x = preprocess(img)
        rows = {m: [] for m in METHODS}
        for draw in range(ctx.n_draws if draws is None else draws):
            def compute(x=x, name=name, first=idx == 0 and draw == 0, draw=draw):
                net = build(ctx.draw_seed(experiment, label, image=name, draw=draw), x.shape[1:])
                maps = visualize(net, x, target="max")
                return {m: corr(maps[m], x) for m in METHODS}, ({m: maps[m][0] for m in METHODS} if first else {})
            nums, arrays = ctx.cell(experiment, f"{label}-{name}-draw{draw}", compute)
            for m in METHODS:
                rows[m].append(nums[m])
            panels.update(arrays)
        for m in METHODS:
            values[m].append(rows[m])
    return values, panels


def corr(a, b):
    """Pearson correlation of two (c, h, w) maps after removing each channel's mean.

    Removing channel means keeps a channel-wide offset (DeconvNet of a random
    net has one, see docs/theory.md) from passing for image structure.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim == 4:
        a, b = a[0], b[0]
    return pearson(a, b, center="channel")


def show(ax, m, title=None, mode="minmax"):
    """Draw a (3, h, w) map with the paper's min-max normalisation."""
    from ..images import normalize_map, to_hwc

    ax.imshow(to_hwc(normalize_map(np.asarray(m, dtype=np.float64), mode=mode)))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
