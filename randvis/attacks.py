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
    seed = _softmax(logits.astype(np.float64))
    seed[np.arange(len(labels)), labels] -= 1.0
    return seed


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
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    logits, trace = net.forward(x)
    before = logits.argmax(axis=1)
    n, k = logits.shape
    if target is not None:
        cls = np.broadcast_to(np.asarray(target, dtype=int), (n,))
        sign = -1.0
    else:
        cls = before if label is None else np.asarray(label, dtype=int)
        sign = 1.0
    if np.any((cls < 0) | (cls >= k)):
        raise ValueError(f"class out of range for {k} classes")
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

    Examples
    --------
    >>> import numpy as np, randvis
    >>> net = randvis.three_layer_cnn(8, input_shape=(3, 16, 16), dtype=np.float64, rng=0)
    >>> x = np.random.default_rng(0).random((1, 3, 16, 16))
    >>> res = fgsm_flip(net, x, [0.01, 0.1, 1.0, 10.0])
    >>> bool(res.flipped.all())
    True
    """
    res = None
    for eps in eps_grid:
        res = fgsm(net, x, eps, **kw)
        if res.flipped.all():
            return res
    return res
