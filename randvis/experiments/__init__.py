"""The paper's experiments, one module each.

Every module has ``NAME``, ``TITLE``, ``run(ctx) -> result``, ``numbers(result)
-> dict`` (JSON-able), ``claims(result) -> list of Claim`` and ``plot(result,
fig)``. :mod:`randvis.reproduce` runs them and writes the figures and tables.

Examples
--------
>>> list(EXPERIMENTS)[:3]
['trained_maps', 'local_connections', 'n_filters']
>>> all(hasattr(m, f) for m in EXPERIMENTS.values() for f in ("run", "numbers", "claims", "plot"))
True
"""
from . import (adversarial, class_sensitivity, depth, local_connections, max_pooling, n_filters,
               partly_trained, theory_curves, trained_maps)
from ._base import Claim, Context

#: in the order of the paper
EXPERIMENTS = {m.NAME: m for m in (trained_maps, local_connections, n_filters, max_pooling, depth,
                                   class_sensitivity, adversarial, partly_trained, theory_curves)}

__all__ = ["EXPERIMENTS", "Claim", "Context"]
