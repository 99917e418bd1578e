"""Checkers for the "implement it yourself" exercises of the documentation.

Each checker calls the learner's function on a few cases, compares its answer
with randvis's own and says in plain words whether they match and, if not,
where they first differ: the case, the element, the expected and the returned
value, and a hint about what that mismatch usually means.

================================  ===============================================
checker                           the learner writes
================================  ===============================================
:func:`check_relu_rule`           ``fn(r, y)``: the backward signal at a ReLU
                                  under one rule (saliency, DeconvNet or GBP)
:func:`check_maxpool_backward`    ``fn(g, x, size, stride)``: max-pooling's
                                  backward pass
:func:`check_gbp_expected_map`    ``fn(x, kernel_size, n, w_std, v_std)``: the
                                  expected GBP map of a random three-layer CNN
================================  ===============================================

Every checker returns a :class:`CheckResult`, true when the function matches;
``print(result)`` shows the message.

Examples
--------
>>> import numpy as np
>>> from randvis.exercises import check_relu_rule
>>> print(check_relu_rule(lambda r, y: np.maximum(r, 0), "deconvnet"))
Your function matches randvis's DeconvNet rule on all 4 cases.
>>> result = check_relu_rule(lambda r, y: r * (y > 0), "gbp")
>>> result.passed
False
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks
from .layers import MaxPool2d, ReLU
from .rules import RULES, get_rule
from .theory import RandomNetSpec, expected_map

__all__ = ["CheckResult", "check_relu_rule", "check_maxpool_backward", "check_gbp_expected_map"]

#: relative and absolute (times the largest expected magnitude) tolerances: the
#: three exercises are exact in float64 up to the order of the additions
RTOL, ATOL = 1e-9, 1e-12

_RULE_WORDS = {
    "saliency": "the saliency map keeps the signal where the ReLU was open: T = R * 1(y > 0)",
    "deconvnet": "DeconvNet keeps the positive signal, whatever the forward pass did: T = relu(R)",
    "gbp": "GBP keeps the positive signal where the ReLU was open: T = relu(R) * 1(y > 0)",
}


@dataclass(frozen=True)
class CheckResult:
    """What a checker found.

    Parameters
    ----------
    passed : bool
        True when the learner's function matched on every case.
    message : str
        The verdict in plain words.
    case : str or None
        The first case that failed.
    index : tuple of int or None
        The first element that differs, in C order.
    expected, got : float or None
        randvis's value and the learner's at that element.

    Examples
    --------
    >>> r = CheckResult(False, "no", case="tiny", index=(0, 1), expected=1.0, got=0.0)
    >>> bool(r), str(r)
    (False, 'no')
    """

    passed: bool
    message: str
    case: str | None = None
    index: tuple | None = None
    expected: float | None = None
    got: float | None = None

    def __bool__(self):
        return self.passed

    def __str__(self):
        return self.message


def _fmt(v):
    return f"{float(v) + 0.0:.6g}"  # + 0.0 shows -0.0 as 0


def _call(fn, args, names, case):
    """The learner's answer as a float64 array, or a failing CheckResult."""
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    try:
        out = fn(*args)
    except Exception as e:  # the learner's code may raise anything
        return CheckResult(False, f"On case {case!r} your function raised {type(e).__name__}: {e}",
                           case=case)
    for name, a, b in zip(names, args, before):
        if isinstance(a, np.ndarray) and not np.array_equal(a, b, equal_nan=True):
            return CheckResult(False, f"On case {case!r} your function changed its input {name} in "
                                      f"place; compute a new array and return it instead.", case=case)
    if out is None:
        return CheckResult(False, f"On case {case!r} your function returned None: compute the "
                                  f"array and return it (is the return statement missing?).",
                           case=case)
    try:
        out = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        return CheckResult(False, f"On case {case!r} your function returned "
                                  f"{_checks.short_repr(out)}, which is not an array of numbers.",
                           case=case)
    return out


def _compare(got, want, case, hint=None, where=None):
    """None when ``got`` matches ``want``; else a CheckResult naming the first difference.

    ``hint(index, expected, got)`` returns a sentence about that element;
    ``where(index)`` describes the element's inputs.
    """
    if got.shape != want.shape:
        return CheckResult(False, f"On case {case!r} your function returned shape {got.shape}; "
                                  f"the answer has shape {want.shape}.", case=case)
    atol = ATOL * max(1.0, float(np.abs(want).max(initial=0.0)))
    bad = ~(np.abs(got - want) <= atol + RTOL * np.abs(want))  # NaN counts as a difference
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad.ravel())), want.shape))
    e, g = float(want[index]), float(got[index])
    text = (f"On case {case!r} your function differs first at element {index}"
            f"{where(index) if where else ''}: expected {_fmt(e)}, got {_fmt(g)} "
            f"({int(bad.sum())} of {bad.size} elements differ).")
    extra = hint(index, e, g) if hint else None
    return CheckResult(False, text + (f" {extra}" if extra else ""), case=case, index=index,
                       expected=e, got=g)


def _callable(fn):
    if not callable(fn):
        raise TypeError(f"fn must be a function, got {_checks.short_repr(fn)} ({type(fn).__name__})")


# --- exercise 1: one ReLU, three rules ---------------------------------------

def _relu_cases(rng):
    r_edge = np.array([1.0, -1.0, 0.0, 2.0, -2.0, 0.5, -0.5, 0.0, 3.0])
    y_edge = np.array([2.0, 2.0, 2.0, 0.0, 0.0, -1.0, -1.0, -1.0, -3.0])
    return [
        ("hand-picked values", r_edge.reshape(1, 1, 1, 9), y_edge.reshape(1, 1, 1, 9)),
        ("one random image", rng.normal(size=(1, 3, 5, 5)), rng.normal(size=(1, 3, 5, 5))),
        ("a batch of two", rng.normal(size=(2, 4, 3, 3)), rng.normal(size=(2, 4, 3, 3))),
        ("every ReLU open, large inputs", 10 * rng.normal(size=(1, 2, 4, 4)),
         np.abs(10 * rng.normal(size=(1, 2, 4, 4))) + 0.1),
    ]


def _relu_answer(rule, r, y):
    relu = ReLU()
    _, mask = relu.forward(y)
    return relu.backward(r, mask, rule)


def check_relu_rule(fn, rule="gbp", rng=0):
    """Check a hand-written backward pass through one ReLU under a rule.

    At a ReLU with forward pre-activation ``y`` and incoming backward signal
    ``r``, the paper writes each method as ``T = h(r) * dg(y)/dy``:
    saliency ``r * 1(y > 0)``, DeconvNet ``relu(r)``, GBP
    ``relu(r) * 1(y > 0)``. Masks are strict: at ``y == 0`` the ReLU is closed.

    Parameters
    ----------
    fn : callable
        ``fn(r, y) -> T``, arrays of shape (n, c, h, w), float64. It must not
        change ``r`` or ``y``.
    rule : {"saliency", "deconvnet", "gbp"} or Rule
    rng : Generator, int or None
        Draws the random cases.

    Returns
    -------
    CheckResult
        Passed when ``fn`` gives the rule's backward signal on every case;
        otherwise the first element where it differs.

    Examples
    --------
    >>> import numpy as np
    >>> res = check_relu_rule(lambda r, y: r * (y >= 0), "saliency")
    >>> res.passed, res.index, res.expected, res.got
    (False, (0, 0, 0, 3), 0.0, 2.0)
    >>> print(check_relu_rule(lambda r, y: r * (y > 0), "saliency"))
    Your function matches randvis's saliency rule on all 4 cases.
    """
    _callable(fn)
    rule = get_rule(rule)
    cases = _relu_cases(_checks.generator(rng))
    for case, r, y in cases:
        got = _call(fn, (r, y), ("r", "y"), case)
        if isinstance(got, CheckResult):
            return got
        want = _relu_answer(rule, r, y)

        def where(i, r=r, y=y):
            return f" (r = {_fmt(r[i])}, y = {_fmt(y[i])})"

        def hint(i, e, g, r=r, y=y):
            same = [_display(o.name) for o in RULES.values() if o.name != rule.name
                    and float(_relu_answer(o, np.full((1, 1, 1, 1), r[i]), np.full((1, 1, 1, 1), y[i]))
                              .ravel()[0]) == g]
            words = f"Remember: {_RULE_WORDS[rule.name]}."
            if same:
                words = f"That is what {' and '.join(same)} would give. " + words
            if y[i] == 0 and rule.forward_mask:
                words += " The mask is strict: y = 0 closes the ReLU."
            return words

        failed = _compare(got, want, case, hint, where)
        if failed is not None:
            return failed
    return CheckResult(True, f"Your function matches randvis's {_display(rule.name)} rule on all "
                             f"{len(cases)} cases.")


def _display(name):
    return {"saliency": "saliency", "deconvnet": "DeconvNet", "gbp": "GBP"}[name]


# --- exercise 2: max-pooling backward ----------------------------------------

def _pool_cases(rng):
    ties = rng.integers(0, 3, size=(1, 2, 6, 6)).astype(np.float64)
    return [
        ("2x2 windows, stride 2", rng.normal(size=(1, 2, 4, 4)), 2, 2,
         "Each output's signal goes to the input pixel that won its window in the forward pass."),
        ("3x3 windows, stride 2 (overlapping)", rng.normal(size=(1, 3, 7, 7)), 3, 2,
         "Windows overlap here: a pixel that wins several windows receives the sum of their "
         "signals (add, do not overwrite)."),
        ("ties (pixels of values 0, 1, 2)", ties, 2, 2,
         "This case has ties: randvis gives the whole signal to the first maximum in row-major "
         "order of the window (top row first, then left to right), as numpy's argmax does."),
        ("2x2 windows, stride 1, batch of two", rng.normal(size=(2, 2, 5, 5)), 2, 1,
         "Windows overlap here: a pixel that wins several windows receives the sum of their "
         "signals."),
    ]


def check_maxpool_backward(fn, rng=0):
    """Check a hand-written max-pooling backward pass.

    Forward: each output is the maximum of a ``size`` x ``size`` window, the
    windows ``stride`` apart, no padding. Backward: each output's signal goes to
    the input pixel that won its window (the "switch"); ties go to the first
    maximum in row-major window order; a pixel winning several windows receives
    the sum of their signals.

    Parameters
    ----------
    fn : callable
        ``fn(g, x, size, stride) -> dx``: ``x`` of shape (n, c, h, w), ``g`` of the
        pooled shape (n, c, ho, wo) with ``ho = (h - size) // stride + 1``, ``dx``
        of the shape of ``x``. It must not change ``g`` or ``x``.
    rng : Generator, int or None
        Draws the random cases.

    Returns
    -------
    CheckResult
        Passed when every window's signal reaches its switch (ties and overlaps
        included); otherwise the first input pixel where it differs.

    Examples
    --------
    >>> import numpy as np
    >>> def backward(g, x, size, stride):
    ...     dx = np.zeros_like(x)
    ...     n, c, ho, wo = g.shape
    ...     for b, ch, i, j in np.ndindex(n, c, ho, wo):
    ...         win = x[b, ch, i * stride:i * stride + size, j * stride:j * stride + size]
    ...         u, v = np.unravel_index(np.argmax(win), win.shape)
    ...         dx[b, ch, i * stride + u, j * stride + v] += g[b, ch, i, j]
    ...     return dx
    >>> print(check_maxpool_backward(backward))
    Your max-pooling backward matches randvis's on all 4 cases.
    """
    _callable(fn)
    rng = _checks.generator(rng)
    cases = _pool_cases(rng)
    for case, x, size, stride, advice in cases:
        pool = MaxPool2d(size, stride)
        y, cache = pool.forward(x)
        g = rng.normal(size=y.shape)
        got = _call(fn, (g, x, size, stride), ("g", "x", "size", "stride"), case)
        if isinstance(got, CheckResult):
            return got
        want = pool.backward(g, cache)

        def where(i, x=x):
            return f" (input value {_fmt(x[i])})"

        def hint(i, e, gv, advice=advice):
            lead = ("This pixel won no window, so it gets nothing. " if e == 0 else "")
            return lead + advice

        failed = _compare(got, want, case, hint, where)
        if failed is not None:
            return failed
    return CheckResult(True, f"Your max-pooling backward matches randvis's on all {len(cases)} cases.")


# --- exercise 3: the expected GBP map ----------------------------------------

def _gbp_cases(rng):
    corner = rng.normal(size=(3, 8, 8))
    corner[:, :4, :4] = 0.0  # a zero region: patches inside it have no direction
    return [
        ("one channel 5x5, kernel 3", rng.normal(size=(1, 5, 5)), 3, 16, 1.0, 1.0),
        ("three channels 8x8, kernel 3, other stds", rng.normal(size=(3, 8, 8)), 3, 64, 0.1, 0.01),
        ("a zero corner, kernel 3", corner, 3, 32, 1.0, 0.5),
        ("kernel 5 on 6x7", rng.normal(size=(2, 6, 7)), 5, 8, 2.0, 1.0),
    ]


def check_gbp_expected_map(fn, rng=0):
    """Check a hand-written expected GBP map of a random three-layer CNN.

    The network: ``N`` filters ``w_i ~ N(0, w_std^2 I)`` of size ``k x k`` over
    all channels, stride 1, zero padding that keeps the size ("same"), ReLU,
    then a dense head ``V ~ N(0, v_std^2)``, no biases. Over the weights::

        E[s_GBP] = N v_std w_std / (2 pi) * sum_j place_j(x_j / |x_j|)

    where ``x_j`` is the j-th patch (zeros where it overlaps the padding),
    ``place_j`` adds a patch back at its position and a zero patch adds
    nothing (its ReLU never opens).

    Parameters
    ----------
    fn : callable
        ``fn(x, kernel_size, n, w_std, v_std) -> m``: ``x`` and ``m`` of shape
        (c, h, w); ``kernel_size`` odd. It must not change ``x``.
    rng : Generator, int or None
        Draws the random cases.

    Returns
    -------
    CheckResult

    Examples
    --------
    A wrong constant (``2 pi`` forgotten) is found at the first pixel:

    >>> import numpy as np
    >>> from randvis.theory import RandomNetSpec, expected_map
    >>> def almost(x, k, n, w_std, v_std):
    ...     spec = RandomNetSpec("cnn", n, w_std, v_std, kernel_size=k)
    ...     return expected_map(spec, x) * 2 * np.pi
    >>> res = check_gbp_expected_map(almost)
    >>> res.passed, res.index
    (False, (0, 0, 0))
    """
    _callable(fn)
    rng = _checks.generator(rng)
    cases = _gbp_cases(rng)
    for case, x, k, n, w_std, v_std in cases:
        got = _call(fn, (x, k, n, w_std, v_std), ("x", "kernel_size", "n", "w_std", "v_std"), case)
        if isinstance(got, CheckResult):
            return got
        want = expected_map(RandomNetSpec("cnn", n, w_std, v_std, kernel_size=k), x, "gbp")

        def hint(i, e, g, got=got, want=want, k=k):
            if not np.isfinite(g):
                return "A zero patch has no direction: skip it (it adds nothing) instead of dividing by 0."
            ratio = np.divide(got, want, out=np.full_like(want, np.nan), where=np.abs(want) > 1e-12)
            ratio = ratio[np.isfinite(ratio)]
            if ratio.size and np.allclose(ratio, ratio[0], rtol=1e-6):
                return (f"Your map is {ratio[0]:.6g} times the expected one everywhere: check the "
                        f"constant N v_std w_std / (2 pi).")
            h = k - 1  # pixels this close to the border lie in a patch that overlaps it
            c, hh, ww = want.shape
            border = np.ones(want.shape, bool)
            border[:, h:hh - h, h:ww - h] = False
            if border[i] and np.allclose(got[~border], want[~border], rtol=RTOL, atol=ATOL):
                return ("Only pixels near the border differ: a patch overlapping the padding holds "
                        "zeros there, and its norm counts only the pixels inside the image.")
            return "Each patch is divided by its own norm, then added back at its position."

        failed = _compare(got, want, case, hint)
        if failed is not None:
            return failed
    return CheckResult(True, f"Your expected GBP map matches randvis.theory.expected_map on all "
                             f"{len(cases)} cases.")
