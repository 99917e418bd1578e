"""The three backward rules as values of one rule type.

At a ReLU with forward pre-activation ``y`` and incoming backward signal ``R``
the paper (Nie, Zhang & Patel, 2018, Section 3) writes every method as

    T = h(R) * dg(y)/dy

=========  ==========  ==========  ==========================
method     h           g           T
=========  ==========  ==========  ==========================
saliency   identity    relu        R * 1(y > 0)
DeconvNet  relu        identity    relu(R)
GBP        relu        relu        relu(R) * 1(y > 0)
=========  ==========  ==========  ==========================

so a rule is two flags: ``forward_mask`` (g = relu: multiply by the forward
mask) and ``backward_relu`` (h = relu: keep only positive signals). Masks are
strict (y > 0, R > 0). For ReLU6 the forward mask is 1(0 < y < 6). Every other
layer uses its ordinary adjoint; max-pooling routes to the forward argmax for
all three rules.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Rule", "SALIENCY", "DECONVNET", "GBP", "RULES", "get_rule", "as_rules"]


@dataclass(frozen=True)
class Rule:
    """A backward rule through ReLU-like units.

    Parameters
    ----------
    name : str
    forward_mask : bool
        Multiply by the forward activation mask (the paper's g = relu).
    backward_relu : bool
        Pass only positive backward signals (the paper's h = relu).

    Examples
    --------
    >>> from randvis.rules import Rule, GBP
    >>> GBP == Rule("gbp", forward_mask=True, backward_relu=True)
    True
    """

    name: str
    forward_mask: bool
    backward_relu: bool

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"a rule's name must be a str, got {self.name!r}")
        if not self.name:
            raise ValueError("a rule's name must not be empty")
        for flag in ("forward_mask", "backward_relu"):
            v = getattr(self, flag)
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{flag} must be True or False, got {v!r} ({type(v).__name__})")
            object.__setattr__(self, flag, bool(v))


SALIENCY = Rule("saliency", forward_mask=True, backward_relu=False)
DECONVNET = Rule("deconvnet", forward_mask=False, backward_relu=True)
GBP = Rule("gbp", forward_mask=True, backward_relu=True)

RULES = {"saliency": SALIENCY, "deconvnet": DECONVNET, "gbp": GBP}
_ALIASES = {"gradient": "saliency", "deconv": "deconvnet", "guided": "gbp",
            "guided_backprop": "gbp", "guided-backprop": "gbp"}


def get_rule(rule) -> Rule:
    """Return a :class:`Rule` from a Rule or a name ('saliency', 'deconvnet', 'gbp').

    Examples
    --------
    >>> get_rule("GBP").name
    'gbp'
    """
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, str):
        key = rule.lower()
        key = _ALIASES.get(key, key)
        if key in RULES:
            return RULES[key]
        raise ValueError(f"unknown method {rule!r}; choose from {sorted(RULES)}")
    raise TypeError(f"a rule must be a Rule or a method name, got {type(rule).__name__}")


def as_rules(rule) -> tuple:
    """Normalise a rule or a sequence of rules to a tuple of :class:`Rule`.

    A tuple of rules means the backward signal holds one stacked block per
    rule along the batch axis (block ``i`` follows ``rules[i]``).
    """
    if isinstance(rule, (list, tuple)):
        if not rule:
            raise ValueError(f"at least one method is needed; choose from {sorted(RULES)}")
        return tuple(get_rule(r) for r in rule)
    return (get_rule(rule),)
