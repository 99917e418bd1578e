"""Figures: the labelled input / saliency / DeconvNet / GBP panel, and how a map is shown.

A map (3, h, w) becomes pixels in four steps, each a setting of :class:`Display`:

1. **sign** (:func:`select_sign`): ``"all"`` keeps the signed values,
   ``"positive"`` keeps ``max(m, 0)``, ``"negative"`` shows ``max(-m, 0)`` (how
   negative), ``"absolute"`` shows ``|m|``;
2. **channel reduction** (:func:`reduce_channels`, not in the RGB mode):
   ``"sum"`` over the colour channels, ``"maxabs"`` (the channel of largest
   magnitude, with its sign) or ``"l2"`` (the Euclidean norm over channels);
3. **clipping** (``clip``, a percentile P in (0, 100]): the P-th percentile of
   the magnitudes is shown at full colour and larger values saturate
   (Captum's ``outlier_perc`` is 100 - P); ``None`` uses the extremes;
4. **mode**: ``"rgb"`` shows the three channels as colours, scaled by
   :func:`randvis.images.normalize_map` (the paper's global min-max by
   default, which reproduces its pictures of random networks); ``"heatmap"``
   shows the reduced map with a colormap and a colour bar; ``"blend"`` lays the
   heat map over the image (grey) with opacity ``alpha``; ``"mask"`` multiplies
   the image by the map's non-negative values scaled to [0, 1].

Figures are written atomically in the format of the file's extension
(:data:`FORMATS`).

Examples
--------
>>> import numpy as np, randvis
>>> net = randvis.three_layer_cnn(8, input_shape=(3, 16, 16), rng=0)
>>> img = np.random.default_rng(0).random((3, 16, 16))
>>> maps = randvis.visualize(net, img[None])
>>> fig = panel(img, {k: v[0] for k, v in maps.items()}, title="random CNN")
>>> [ax.get_title() for ax in fig.axes]
['input', 'Saliency', 'DeconvNet', 'GBP']
>>> Display(mode="heatmap", sign="absolute", clip=99).describe()
'heat map, sign absolute, channels sum, clip 99th percentile, colormap inferno'
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from . import _checks
from ._io import atomic_write

__all__ = ["DISPLAY_MODES", "Display", "FORMATS", "LABELS", "REDUCTIONS", "SIGNS", "Shown",
           "colour_range_used", "figure_format", "grid", "panel", "reduce_channels", "render",
           "save_figure", "save_panel", "select_sign"]

LABELS = {"saliency": "Saliency", "deconvnet": "DeconvNet", "gbp": "GBP"}

DISPLAY_MODES = ("rgb", "heatmap", "blend", "mask")
SIGNS = ("all", "positive", "negative", "absolute")
REDUCTIONS = ("sum", "maxabs", "l2")

#: file extension -> matplotlib's savefig format
FORMATS = {"png": "png", "pdf": "pdf", "svg": "svg", "jpg": "jpeg", "jpeg": "jpeg"}

_MODE_WORDS = {"rgb": "RGB", "heatmap": "heat map", "blend": "heat map over the image", "mask": "masked image"}
_NORMALIZE_WORDS = {"minmax": "min-max", "signed": "signed (0 = grey)", "abs": "channel |sum|"}


def _ordinal(p):
    p = float(p)
    text = f"{p:g}"
    if p != int(p):
        return text + "th"
    n = int(p)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True)
class Display:
    """How maps are turned into pixels (see the module's description).

    Parameters
    ----------
    mode : {"rgb", "heatmap", "blend", "mask"}
    sign : {"all", "positive", "negative", "absolute"}
    reduce : {"sum", "maxabs", "l2"}
        Channel reduction of the heat map, blend and mask modes (unused by "rgb").
    clip : float in (0, 100] or None
        Percentile of the magnitudes shown at full colour; None: the extremes.
    normalize : {"minmax", "signed", "abs"}
        Scaling of the "rgb" mode (:func:`randvis.images.normalize_map`).
    cmap : str or None
        matplotlib colormap of the heat map and blend modes; None: ``"bwr"``
        for signed values (blue negative, white zero, red positive),
        ``"inferno"`` for non-negative ones.
    alpha : float in [0, 1]
        Opacity of the heat map in the blend mode.

    Examples
    --------
    >>> Display().describe()
    'RGB, min-max, sign all'
    >>> Display(clip=99).describe()
    'RGB, min-max, sign all, clip 1st-99th percentile'
    """

    mode: str = "rgb"
    sign: str = "all"
    reduce: str = "sum"
    clip: float | None = None
    normalize: str = "minmax"
    cmap: str | None = None
    alpha: float = 0.5

    def __post_init__(self) -> None:
        from .images import NORMALIZE_MODES, _check_clip

        _checks.one_of(self.mode, "mode", DISPLAY_MODES)
        _checks.one_of(self.sign, "sign", SIGNS)
        _checks.one_of(self.reduce, "reduce", REDUCTIONS)
        _checks.one_of(self.normalize, "normalize", NORMALIZE_MODES)
        if self.clip is not None:
            object.__setattr__(self, "clip", _check_clip(self.clip))
        alpha = _checks.nonnegative_real(self.alpha, "alpha")
        if alpha > 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha!r}")
        object.__setattr__(self, "alpha", alpha)
        if self.cmap is not None:
            from matplotlib import colormaps

            if not isinstance(self.cmap, str) or self.cmap not in colormaps:
                raise ValueError(f"cmap must be the name of a matplotlib colormap, got {self.cmap!r}")
        if self.mode == "mask" and self.signed:
            raise ValueError("the mask mode needs non-negative values: sign 'positive', 'negative' or "
                             f"'absolute', or reduce 'l2' (got sign {self.sign!r}, reduce {self.reduce!r})")

    @property
    def signed(self) -> bool:
        """True if the values shown keep their sign (so zero sits mid-scale)."""
        if self.mode == "rgb":
            return self.sign == "all" and self.normalize != "abs"
        return self.sign == "all" and self.reduce != "l2"

    @property
    def colormap(self) -> str | None:
        """The colormap used (None in the RGB and mask modes)."""
        if self.mode in ("rgb", "mask"):
            return None
        return self.cmap or ("bwr" if self.signed else "inferno")

    def describe(self) -> str:
        """The settings in words, for a figure's title."""
        words = [_MODE_WORDS[self.mode]]
        if self.mode == "rgb":
            words.append(_NORMALIZE_WORDS[self.normalize])
        words.append(f"sign {self.sign}")
        if self.mode != "rgb":
            words.append(f"channels {self.reduce}")
        if self.clip is not None and self.clip < 100:
            low = self.mode == "rgb" and self.normalize == "minmax" and self.sign == "all"
            words.append(f"clip {_ordinal(100 - self.clip) + '-' if low else ''}{_ordinal(self.clip)} percentile")
        if self.colormap:
            words.append(f"colormap {self.colormap}")
        if self.mode == "blend":
            words.append(f"alpha {self.alpha:g}")
        return ", ".join(words)

    def settings(self) -> dict:
        """The settings as a JSON-able dict."""
        return {"mode": self.mode, "sign": self.sign, "reduce": self.reduce, "clip": self.clip,
                "normalize": self.normalize, "cmap": self.colormap, "alpha": self.alpha}


class Shown(NamedTuple):
    """What :func:`render` draws for one map."""

    #: (h, w, 3) RGB in [0, 1]
    rgb: np.ndarray
    #: (h, w) or (h, w, 3): each pixel's position on the colour scale, in [0, 1]
    levels: np.ndarray
    #: the colour bar's (vmin, vmax) in the map's units, or None
    limits: tuple | None
    #: the colour bar's colormap, or None
    cmap: str | None


def _map(m, name="m"):
    a = _checks.finite_array(m, name)
    if a.ndim != 3 or a.shape[0] != 3 or 0 in a.shape:
        raise ValueError(f"{name} must have shape (3, h, w), got {a.shape}")
    return a.astype(np.float64)


def select_sign(m: np.ndarray, sign: str = "all") -> np.ndarray:
    """The part of a map that a sign mode shows.

    Parameters
    ----------
    m : ndarray, shape (3, h, w)
    sign : {"all", "positive", "negative", "absolute"}
        ``m``, ``max(m, 0)``, ``max(-m, 0)`` or ``|m|``.

    Returns
    -------
    ndarray of float64, shape (3, h, w)

    Examples
    --------
    >>> import numpy as np
    >>> m = np.array([-2.0, 0.0, 3.0]).reshape(1, 1, 3) * np.ones((3, 1, 1))
    >>> [select_sign(m, s)[0, 0].tolist() for s in ("positive", "negative", "absolute")]
    [[0.0, 0.0, 3.0], [2.0, 0.0, 0.0], [2.0, 0.0, 3.0]]
    """
    a = _map(m)
    _checks.one_of(sign, "sign", SIGNS)
    if sign == "positive":
        return np.maximum(a, 0.0)
    if sign == "negative":
        return np.maximum(-a, 0.0)
    if sign == "absolute":
        return np.abs(a)
    return a


def reduce_channels(m: np.ndarray, how: str = "sum") -> np.ndarray:
    """One value per pixel from the three channels of a map.

    Parameters
    ----------
    m : ndarray, shape (3, h, w)
    how : {"sum", "maxabs", "l2"}
        The channel sum; the value of the channel of largest magnitude (with its
        sign; the first such channel on ties); the Euclidean norm over channels.

    Returns
    -------
    ndarray of float64, shape (h, w)

    Examples
    --------
    >>> import numpy as np
    >>> m = np.array([3.0, -4.0, 0.0]).reshape(3, 1, 1)
    >>> [float(reduce_channels(m, h)[0, 0]) for h in ("sum", "maxabs", "l2")]
    [-1.0, -4.0, 5.0]
    """
    a = _map(m)
    _checks.one_of(how, "how", REDUCTIONS)
    if how == "sum":
        return a.sum(axis=0)
    if how == "maxabs":
        pick = np.argmax(np.abs(a), axis=0)
        return np.take_along_axis(a, pick[None], axis=0)[0]
    return np.sqrt((a * a).sum(axis=0))


def _peak(v, clip):
    """The magnitude shown at full colour: the ``clip`` percentile of ``|v|``
    (the maximum if that is 0, so a sparse map still shows its values)."""
    mag = np.abs(v)
    peak = float(mag.max())
    if clip is not None and clip < 100:
        q = float(np.percentile(mag, clip))
        peak = q if q > 0 else peak
    return peak


def _grey(img):
    g = np.asarray(img, dtype=np.float64).mean(axis=0)
    return np.repeat(np.clip(g, 0, 1)[..., None], 3, axis=2)


def render(img: np.ndarray, m: np.ndarray, display: Display | None = None) -> Shown:
    """The pixels that show map ``m`` of image ``img``.

    Parameters
    ----------
    img : ndarray, shape (3, h, w), values in [0, 1]
        The input image (used by the blend and mask modes).
    m : ndarray, shape (3, h, w)
    display : Display, optional
        Default ``Display()``: the paper's RGB global min-max.

    Returns
    -------
    Shown
        ``rgb`` (h, w, 3) in [0, 1]; ``levels``, each pixel's place on the
        colour scale; the colour bar's ``limits`` (in the map's units, None for
        the RGB and mask modes) and ``cmap``.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((3, 1, 4), 0.5)
    >>> m = np.array([0.0, 1.0, 2.0, 4.0]).reshape(1, 1, 4) * np.ones((3, 1, 1))
    >>> render(img, m, Display(mode="mask", sign="positive", reduce="maxabs")).rgb[0, :, 0].tolist()
    [0.0, 0.125, 0.25, 0.5]
    >>> render(img, m, Display(mode="heatmap", reduce="maxabs")).limits
    (-4.0, 4.0)
    """
    from .images import normalize_map, to_hwc

    d = Display() if display is None else display
    if not isinstance(d, Display):
        raise TypeError(f"display must be a Display, got {type(d).__name__}")
    v = select_sign(m, d.sign)
    if d.mode == "rgb":
        rgb = to_hwc(normalize_map(v, d.normalize, clip=d.clip))
        return Shown(rgb, rgb, None, None)
    image = _map(img, "img")
    if image.shape != v.shape:
        raise ValueError(f"img and the map must have the same shape, got {image.shape} and {v.shape}")
    r = reduce_channels(v, d.reduce)
    peak = _peak(r, d.clip)
    scaled = r / peak if peak > 0 else np.zeros_like(r)
    if d.mode == "mask":
        levels = np.clip(scaled, 0.0, 1.0)
        return Shown(to_hwc(np.clip(image, 0, 1)) * levels[..., None], levels, None, None)
    from matplotlib import colormaps

    levels = (np.clip(scaled, -1.0, 1.0) + 1.0) / 2.0 if d.signed else np.clip(scaled, 0.0, 1.0)
    heat = colormaps[d.colormap](levels)[..., :3]
    limits = (-peak, peak) if d.signed else (0.0, peak)
    if d.mode == "blend":
        heat = (1.0 - d.alpha) * _grey(image) + d.alpha * heat
    return Shown(heat, levels, limits, d.colormap)


def colour_range_used(shown: Shown, central: float = 98.0) -> float:
    """Fraction of the colour scale spanned by the central ``central`` % of values.

    The distance between the ``(100 - central) / 2`` and ``(100 + central) / 2``
    percentiles of ``shown.levels`` (each value's place on the colour scale, in
    [0, 1]): about 0.02 for a flat grey panel whose few outliers take the ends of
    the scale, 1 when the bulk of the map spans it all.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.linspace(0, 1, 400).reshape(20, 20) * np.ones((3, 1, 1))
    >>> m[:, 0, 0] = 100.0                                     # one outlier
    >>> img = np.zeros((3, 20, 20))
    >>> round(colour_range_used(render(img, m)), 3), round(colour_range_used(render(img, m, Display(clip=99))), 3)
    (0.01, 1.0)
    """
    c = _checks.positive_real(central, "central")
    if c > 100:
        raise ValueError(f"central must be a percentage in (0, 100], got {central!r}")
    lo, hi = np.percentile(np.asarray(shown.levels, dtype=np.float64), [50 - c / 2, 50 + c / 2])
    return float(hi - lo)


def _off(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def grid(img: np.ndarray, rows: Sequence[tuple[str, Mapping[str, np.ndarray]]], title: str | None = None,
         display: Display | None = None, normalize: str = "minmax"):
    """Draw one row per target: the input, then each map.

    Parameters
    ----------
    img : ndarray, shape (3, h, w), values in [0, 1]
    rows : sequence of (label, maps)
        ``maps`` is a dict of (3, h, w) arrays (e.g. :func:`randvis.visualize`'s
        output for one sample and one target); ``label`` is written beside the
        row's input (e.g. the target class).
    title : str, optional
    display : Display, optional
        Default ``Display(normalize=normalize)``.

    Returns
    -------
    matplotlib.figure.Figure
        One row per target, one column per map after the input; a colour
        bar per row in the heat-map modes.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).random((3, 8, 8))
    >>> maps = {"saliency": img - 0.5, "gbp": img}
    >>> fig = grid(img, [("class 1", maps), ("class 2", maps)], display=Display(mode="heatmap"))
    >>> len(fig.axes)          # 2 rows of 3 pictures, and 2 colour bars per row
    10
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from .images import to_hwc

    d = Display(normalize=normalize) if display is None else display
    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty: nothing to draw")
    ncol = 1 + max(len(maps) for _, maps in rows)
    bar = d.mode in ("heatmap", "blend")
    fig = Figure(figsize=(3.0 * ncol + (0.6 * (ncol - 1) if bar else 0), 3.0 * len(rows) + 0.6))
    axes = np.asarray(fig.subplots(len(rows), ncol, squeeze=False))
    picture = np.clip(np.asarray(img, dtype=np.float64), 0, 1)
    for r, (label, maps) in enumerate(rows):
        axes[r, 0].imshow(to_hwc(picture))
        if r == 0:
            axes[r, 0].set_title("input")
        axes[r, 0].set_ylabel(label, fontsize=9)
        for ax, (name, m) in zip(axes[r, 1:], maps.items()):
            shown = render(picture, m, d)
            ax.imshow(shown.rgb)
            if r == 0:
                ax.set_title(LABELS.get(name, name))
            if shown.limits is not None:
                lo, hi = shown.limits
                fig.colorbar(ScalarMappable(Normalize(lo, hi if hi > lo else lo + 1), shown.cmap),
                             ax=ax, fraction=0.046, pad=0.03)
        for ax in axes[r, 1 + len(maps):]:
            ax.set_visible(False)
        for ax in axes[r]:
            _off(ax)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def panel(img: np.ndarray, maps: Mapping[str, np.ndarray], title: str | None = None,
          normalize: str = "minmax", axes=None, display: Display | None = None):
    """Draw the input and each map in a row of axes.

    Parameters
    ----------
    img : ndarray, shape (3, h, w), values in [0, 1]
    maps : dict of ndarray (3, h, w)
        e.g. the output of :func:`randvis.visualize` for one sample.
    normalize : "minmax", "signed" or "abs"
        Display normalisation (:func:`randvis.images.normalize_map`) when
        ``display`` is not given.
    axes : sequence of matplotlib Axes, optional
        Draw there (RGB maps only) instead of in a new figure.
    display : Display, optional
        How the maps are shown (:func:`render`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .images import to_hwc

    d = Display(normalize=normalize) if display is None else display
    if axes is None:
        return grid(img, [("input", maps)], title=title, display=d)
    fig = axes[0].figure
    picture = np.clip(np.asarray(img, dtype=np.float64), 0, 1)
    axes[0].imshow(to_hwc(picture))
    axes[0].set_title("input")
    for ax, (name, m) in zip(axes[1:], maps.items()):
        ax.imshow(render(picture, m, d).rgb)
        ax.set_title(LABELS.get(name, name))
    for ax in axes:
        _off(ax)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_format(path: str | os.PathLike) -> str:
    """matplotlib's format name for a figure file, from its extension.

    Raises
    ------
    ValueError
        For an extension not in :data:`FORMATS` (the message lists them).

    Examples
    --------
    >>> figure_format("maps.PDF"), figure_format("out/maps.jpg")
    ('pdf', 'jpeg')
    """
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise ValueError(f"cannot tell the figure format of {os.fspath(path)!r} from its extension "
                         f"{'.' + ext if ext else '(none)'}; use one of " + ", ".join("." + e for e in FORMATS))
    return FORMATS[ext]


def save_figure(path: str | os.PathLike, fig, dpi: int = 100) -> str:
    """Write a figure atomically, in the format of ``path``'s extension; returns the path."""
    fmt = figure_format(path)
    return atomic_write(os.fspath(path), lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt))


def save_panel(path: str | os.PathLike, img: np.ndarray, maps: Mapping[str, np.ndarray],
               title: str | None = None, normalize: str = "minmax", dpi: int = 100,
               display: Display | None = None) -> str:
    """Write :func:`panel` atomically in the format of ``path``'s extension
    (:data:`FORMATS`); returns the path."""
    figure_format(path)  # before drawing
    fig = panel(img, maps, title=title, normalize=normalize, display=display)
    return save_figure(path, fig, dpi=dpi)
