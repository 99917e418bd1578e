"""Adversarial examples: the fast gradient sign method (FGSM).

Goodfellow, Shlens & Szegedy (2015): one step of size ``eps`` along the sign
of the input gradient of the cross-entropy loss. Untargeted FGSM increases the
loss of the true (or predicted) class; targeted FGSM decreases the loss of a
chosen class. The gradient comes from the network's own backward pass with
the saliency rule (plain backpropagation), seeded with ``softmax(z) - onehot``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks
from .rules import SALIENCY

__all__ = ["FGSMResult", "fgsm", "fgsm_flip", "cross_entropy_seed"]


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy_seed(logits, labels):
    """d CE(softmax(z), y) / dz = softmax(z) - onehot(y), shape (n, k).

    Parameters
    ----------
    logits : ndarray, shape (n, k)
    labels : int array, shape (n,)

    Returns
    -------
    ndarray, shape (n, k), float64
        The seed vector a backward pass needs for the loss gradient.

    Examples
    --------
    >>> import numpy as np
    >>> s = cross_entropy_seed(np.zeros((1, 4)), np.array([2]))
    >>> s.round(2).tolist()
    [[0.25, 0.25, -0.75, 0.25]]
    """
    z = _checks.real_array(logits, "logits")
    if z.ndim != 2 or 0 in z.shape:
        raise ValueError(f"logits must have shape (n, k) with n, k >= 1, got {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("logits contain NaN or Inf: the loss gradient is undefined")
    y = _classes(labels, "labels", z.shape)
    seed = _softmax(z.astype(np.float64))
    seed[np.arange(len(y)), y] -= 1.0
    return seed


def _classes(v, name, logits_shape, broadcast=False):
    """Class indices ``v`` as an int array of shape (n,), each in [0, k)."""
    n, k = logits_shape
    a = _checks.real_array(v, name, integer=True)
    if broadcast and a.ndim == 0:
        a = np.broadcast_to(a, (n,))
    if a.shape != (n,):
        want = f"an int or an int array of shape ({n},)" if broadcast else f"an int array of shape ({n},)"
        raise ValueError(f"{name} must be {want}, got shape {a.shape}")
    bad = (a < 0) | (a >= k)
    if bad.any():
        raise ValueError(f"{name}: class {int(a[bad][0])} out of range for {k} classes")
    return a.astype(np.intp)


def _bound(v, name):
    if v is None:
        return None
    a = _checks.real_array(v, name)
    if np.isnan(a).any():
        raise ValueError(f"{name} contains NaN")
    return a


@dataclass
class FGSMResult:
    """An adversarial batch and what it did."""

    x_adv: np.ndarray
    eps: float
    label_before: np.ndarray
    label_after: np.ndarray
    targeted: bool

    @property
    def flipped(self):
        """Per sample: did the top class change (untargeted) / reach the target (targeted)?"""
        return self.label_after != self.label_before


def fgsm(net, x, eps, label=None, target=None, lo=None, hi=None):
    """One FGSM step on the network input.

    Parameters
    ----------
    net : Sequential
    x : ndarray, shape (n, c, h, w)
        Network input (already preprocessed).
    eps : float
        Step size in the units of ``x``.
    label : int array (n,), optional
        True classes for the untargeted attack (default: the predicted ones).
    target : int or int array, optional
        Make the attack targeted: step *down* the loss of this class.
    lo, hi : float or array, optional
        Clip the result to the valid input range (e.g. the preprocessed images
        of 0 and 1 pixel values).

    Returns
    -------
    FGSMResult

    Examples
    --------
    >>> import numpy as np, randvis
    >>> net = randvis.three_layer_cnn(8, input_shape=(3, 16, 16), dtype=np.float64, rng=0)
    >>> x = np.random.default_rng(0).random((1, 3, 16, 16))
    >>> res = fgsm(net, x, eps=0.5)
    >>> bool(np.abs(res.x_adv - x).max() <= 0.5 + 1e-12)
    True
    """
    _checks.network(net, "forward", "backward", "predict")
    eps = _checks.nonnegative_real(eps, "eps")
    lo, hi = _bound(lo, "lo"), _bound(hi, "hi")
    if lo is not None and hi is not None and np.any(lo > hi):
        raise ValueError("lo must be <= hi (the clipping range is empty)")
    if label is not None and target is not None:
        raise ValueError("give label (untargeted) or target (targeted), not both")
    logits, trace = net.forward(x)
    before = logits.argmax(axis=1)
    n, k = logits.shape
    if target is not None:
        cls = _classes(target, "target", (n, k), broadcast=True)
        sign = -1.0
    else:
        cls = before if label is None else _classes(label, "label", (n, k))
        sign = 1.0
    grad = net.backward(trace, cross_entropy_seed(logits, cls), SALIENCY)
    x_adv = np.asarray(x, dtype=net.dtype) + sign * eps * np.sign(grad)
    if lo is not None or hi is not None:
        x_adv = np.clip(x_adv, lo, hi)
    after = net.predict(x_adv).argmax(axis=1)
    res = FGSMResult(x_adv.astype(net.dtype), float(eps), before, after, target is not None)
    if target is not None:
        res.label_before = cls
        res.label_after = after
    return res


def fgsm_flip(net, x, eps_grid, **kw):
    """The first ``eps`` of ``eps_grid`` (increasing) whose FGSM step flips every
    sample's prediction; returns that :class:`FGSMResult` (or the last one tried).

    Parameters
    ----------
    net : Sequential
    x : ndarray, shape (n, c, h, w)
    eps_grid : sequence of float
        Step sizes to try, smallest first.
    **kw
        Passed to :func:`fgsm` (``label``, ``target``, ``lo``, ``hi``).

    Returns
    -------
    FGSMResult
        Its ``eps`` is the step size that flipped every sample (or the last
        one tried, if none did).

    Examples
    --------
    >>> import numpy as np, randvis
    >>> net = randvis.fcn(16, n_classes=4, input_shape=(3, 8, 8), dtype=np.float64, rng=1)
    >>> batch = np.random.default_rng(2).random((2, 3, 8, 8))
    >>> res = fgsm_flip(net, batch, [0.001, 0.01, 0.1, 1.0])
    >>> res.eps, bool(res.flipped.all())
    (0.1, True)
    """
    grid = _checks.real_array(eps_grid, "eps_grid")
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"eps_grid must be a non-empty sequence of step sizes, got shape {grid.shape}")
    if grid.size > 1 and not (np.diff(grid) > 0).all():
        raise ValueError("eps_grid must be increasing (the first step that flips every sample is returned)")
    res = None
    for eps in eps_grid:
        res = fgsm(net, x, eps, **kw)
        if res.flipped.all():
            return res
    return res
