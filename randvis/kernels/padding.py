"""Padding and output-size arithmetic shared by the kernels and their references.
Examples
--------
>>> resolve_padding("same", (7, 7), (3, 3), (2, 2))   # TensorFlow: extra row/column at the end
(1, 1, 1, 1)
>>> resolve_padding("same", (8, 8), (3, 3), (2, 2))
(0, 1, 0, 1)
>>> output_hw((224, 224), (3, 3), (1, 1), (1, 1, 1, 1))
(224, 224)
"""
from __future__ import annotations

import numbers


def _pair(v, name):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return int(v), int(v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(
        isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in v
    ):
        return int(v[0]), int(v[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")


def as_pair(v, name="value"):
    """Return ``(v, v)`` for an int, or the pair itself, validated positive."""
    a, b = _pair(v, name)
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be >= 1, got {v!r}")
    return a, b


def resolve_padding(padding, in_hw, kernel_hw, stride_hw):
    """Resolve a padding specification to ``(top, bottom, left, right)``.

    Parameters
    ----------
    padding : "same", "valid", int, (ph, pw) or ((top, bottom), (left, right))
        ``"same"`` follows TensorFlow: the output has ``ceil(in / stride)``
        rows/columns and the total padding ``max((out - 1) * stride + k - in, 0)``
        is split with the smaller half before (top/left) and the extra pixel, if
        any, after (bottom/right). ``"valid"`` is no padding.
    in_hw, kernel_hw, stride_hw : pairs of ints

    Returns
    -------
    tuple of 4 ints
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            pads = []
            for n, k, s in zip(in_hw, kernel_hw, stride_hw):
                out = -(-n // s)
                total = max((out - 1) * s + k - n, 0)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        raise ValueError(f"padding must be 'same', 'valid' or ints, got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
        isinstance(p, (tuple, list)) for p in padding
    ):
        (t, b), (l, r) = _pair(padding[0], "padding"), _pair(padding[1], "padding")
        pads = (t, b, l, r)
    else:
        ph, pw = _pair(padding, "padding")
        pads = (ph, ph, pw, pw)
    if min(pads) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return pads


def output_hw(in_hw, kernel_hw, stride_hw, pads):
    """Output height and width of a sliding window; raises if it would be empty."""
    h, w = in_hw
    kh, kw = kernel_hw
    sh, sw = stride_hw
    t, b, l, r = pads
    hp, wp = h + t + b, w + l + r
    if hp < kh or wp < kw:
        raise ValueError(
            f"spatial size {h}x{w} (padded {hp}x{wp}) is smaller than the "
            f"window {kh}x{kw}"
        )
    return (hp - kh) // sh + 1, (wp - kw) // sw + 1
