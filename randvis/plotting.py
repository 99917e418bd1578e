"""Figures: the labelled input / saliency / DeconvNet / GBP panel.

Examples
--------
>>> import numpy as np, randvis
>>> net = randvis.three_layer_cnn(8, input_shape=(3, 16, 16), rng=0)
>>> img = np.random.default_rng(0).random((3, 16, 16))
>>> maps = randvis.visualize(net, img[None])
>>> fig = panel(img, {k: v[0] for k, v in maps.items()}, title="random CNN")
>>> [ax.get_title() for ax in fig.axes]
['input', 'Saliency', 'DeconvNet', 'GBP']
"""
from __future__ import annotations

import numpy as np

from ._io import atomic_write

LABELS = {"saliency": "Saliency", "deconvnet": "DeconvNet", "gbp": "GBP"}


def panel(img, maps, title=None, normalize="minmax", axes=None):
    """Draw the input and each map in a row of axes.

    Parameters
    ----------
    img : ndarray, shape (3, h, w), values in [0, 1]
    maps : dict of ndarray (3, h, w)
        e.g. the output of :func:`randvis.visualize` for one sample.
    normalize : "minmax", "signed" or "abs"
        Display normalisation (:func:`randvis.images.normalize_map`).
    axes : sequence of matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .images import normalize_map, to_hwc

    if axes is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(3.0 * (len(maps) + 1), 3.4))
        axes = fig.subplots(1, len(maps) + 1)
    else:
        fig = axes[0].figure
    axes[0].imshow(to_hwc(np.clip(img, 0, 1)))
    axes[0].set_title("input")
    for ax, (name, m) in zip(axes[1:], maps.items()):
        ax.imshow(to_hwc(normalize_map(np.asarray(m, dtype=np.float64), mode=normalize)))
        ax.set_title(LABELS.get(name, name))
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_panel(path, img, maps, title=None, normalize="minmax", dpi=100):
    """Write :func:`panel` to a PNG file atomically; returns the path."""
    fig = panel(img, maps, title=title, normalize=normalize)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
