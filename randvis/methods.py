"""The public entry point: saliency, DeconvNet and GBP maps from one forward pass."""
from __future__ import annotations

import numbers

import numpy as np

from . import _checks
from .rules import as_rules

__all__ = ["visualize", "make_seed", "METHODS"]

METHODS = ("saliency", "deconvnet", "gbp")


def make_seed(logits, target, rng=None):
    """The backward seed over the logits for a target specification.

    Parameters
    ----------
    logits : ndarray, shape (n, k)
    target : int, "max", "random", array of ints (n,), or float array (k,) / (n, k)
        A class index for all samples; the top logit per sample; a uniformly
        random class per sample (drawn from ``rng``); one class per sample
        (integer dtype); or explicit seed vectors (float dtype).
    rng : Generator, int or None
        Used by "random" only.

    Returns
    -------
    seed : ndarray, shape (n, k)
    classes : ndarray of int, shape (n,), or None for explicit seed vectors

    Raises
    ------
    ValueError
        If the logits hold NaN or Inf (an overflowing forward pass: no class
        can be chosen and the maps would be meaningless), or the target is out
        of range or of the wrong shape.
    TypeError
        For a target that is not one of the forms above (complex seeds are
        refused: their imaginary part would be lost).

    Examples
    --------
    >>> import numpy as np
    >>> seed, cls = make_seed(np.array([[0.1, 2.0, -1.0]]), "max")
    >>> seed.tolist(), cls.tolist()
    ([[0.0, 1.0, 0.0]], [1])
    """
    logits = _checks.real_array(logits, "logits")
    if logits.ndim != 2 or 0 in logits.shape:
        raise ValueError(f"logits must have shape (n, k) with n, k >= 1, got {logits.shape}")
    n, k = logits.shape
    bad = ~np.isfinite(logits)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"the logits contain NaN or Inf ({int(bad.sum())} of {logits.size} values, first in "
                         f"sample {row}): the forward pass overflowed or met NaN, so no target class can be "
                         "chosen and the maps would be meaningless")
    dtype = logits.dtype if logits.dtype.kind == "f" else np.dtype(np.float64)
    classes = None
    if isinstance(target, str):
        if target == "max":
            classes = np.argmax(logits, axis=1)
        elif target == "random":
            classes = _checks.generator(rng).integers(k, size=n)
        else:
            raise ValueError(f"target must be an int, 'max', 'random' or an array, got {target!r}")
    elif isinstance(target, numbers.Integral) and not isinstance(target, bool):
        classes = np.full(n, int(target))
    else:
        t = np.asarray(target)
        if t.dtype == np.bool_ or not np.issubdtype(t.dtype, np.number):
            raise TypeError(f"target must be a class index, 'max', 'random' or numbers, got {t.dtype}")
        if np.issubdtype(t.dtype, np.complexfloating):
            raise TypeError(f"target must be a class index, 'max', 'random' or real numbers, got dtype "
                            f"{t.dtype} (a complex seed would lose its imaginary part)")
        if t.ndim == 0:
            raise TypeError(f"target must be a class index (an int), 'max', 'random', an int array (n,) "
                            f"or a float seed vector ({k},) / ({n}, {k}); got the scalar {target!r}")
        if np.issubdtype(t.dtype, np.integer):
            if t.shape != (n,):
                raise ValueError(f"per-sample targets must have shape ({n},), got {t.shape}")
            classes = t.astype(np.int64)
        else:
            if t.shape not in ((k,), (n, k)):
                raise ValueError(f"a seed vector must have shape ({k},) or ({n}, {k}), got {t.shape}")
            if not np.isfinite(t).all():
                raise ValueError("the seed vector contains NaN or Inf")
            return np.broadcast_to(t, (n, k)).astype(dtype), None
    bad = (classes < 0) | (classes >= k)
    if bad.any():
        raise ValueError(f"target class {int(classes[bad][0])} out of range for {k} classes")
    seed = np.zeros((n, k), dtype=dtype)
    seed[np.arange(n), classes] = 1
    return seed, classes


def visualize(net, x, target="max", methods=METHODS, rng=None, return_info=False):
    """Saliency / DeconvNet / GBP maps of a batch, from one forward pass.

    The backward signals of all requested methods are stacked along the batch
    axis and sent through the network once, so each GEMM of the backward runs
    once, wider.

    Parameters
    ----------
    net : Sequential
    x : ndarray, shape (n, c, h, w)
    target : int, "max", "random", int array (n,) or float seed vector(s)
        See :func:`make_seed`.
    methods : sequence of str or Rule
        Any of "saliency", "deconvnet", "gbp".
    rng : Generator, int or None
        For ``target="random"``.
    return_info : bool
        Also return ``{"logits": ..., "classes": ..., "seed": ...}``.

    Returns
    -------
    maps : dict
        ``{method: ndarray (n, c, h, w)}`` in ``net.dtype``.
    info : dict, only if ``return_info``

    Examples
    --------
    >>> import numpy as np, randvis
    >>> net = randvis.three_layer_cnn(8, input_shape=(3, 16, 16), rng=0)
    >>> x = np.random.default_rng(1).random((2, 3, 16, 16))
    >>> maps = randvis.visualize(net, x, target="max")
    >>> sorted(maps), maps["gbp"].shape
    (['deconvnet', 'gbp', 'saliency'], (2, 3, 16, 16))
    """
    _checks.network(net, "forward", "backward_stacked")
    if isinstance(methods, (str, bytes)) or not hasattr(methods, "__iter__"):
        rules = as_rules(methods)
    else:
        rules = as_rules(tuple(methods))
    return_info = _checks.flag(return_info, "return_info")
    if isinstance(target, str) and target == "random":
        _checks.generator(rng)  # refuse a bad rng before the forward pass
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"methods repeat: {names}")
    logits, trace = net.forward(x)
    seed, classes = make_seed(logits, target, rng)
    stacked = net.backward_stacked(trace, seed, rules)
    maps = {name: stacked[i] for i, name in enumerate(names)}
    if return_info:
        return maps, {"logits": logits, "classes": classes, "seed": seed}
    return maps
