"""pymoo's algorithms by short name. Imports are deferred: pymoo loads only when one is used."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from ..hookspecs import hookimpl

# name -> (module, class); single-objective first, then multi-objective.
PYMOO_ALGORITHMS = {
    "ga": ("pymoo.algorithms.soo.nonconvex.ga", "GA"),
    "de": ("pymoo.algorithms.soo.nonconvex.de", "DE"),
    "cmaes": ("pymoo.algorithms.soo.nonconvex.cmaes", "CMAES"),
    "pso": ("pymoo.algorithms.soo.nonconvex.pso", "PSO"),
    "nelder-mead": ("pymoo.algorithms.soo.nonconvex.nelder", "NelderMead"),
    "pattern-search": ("pymoo.algorithms.soo.nonconvex.pattern", "PatternSearch"),
    "nsga2": ("pymoo.algorithms.moo.nsga2", "NSGA2"),
    "nsga3": ("pymoo.algorithms.moo.nsga3", "NSGA3"),
    "moead": ("pymoo.algorithms.moo.moead", "MOEAD"),
    "sms-emoa": ("pymoo.algorithms.moo.sms", "SMSEMOA"),
}


def _factory(module: str, cls: str) -> Callable[..., Any]:
    def make(**options: Any) -> Any:
        return getattr(importlib.import_module(module), cls)(**options)

    make.__name__ = f"make_{cls}"
    make.__doc__ = f"{module}.{cls}(**options)"
    return make


@hookimpl
def merge3_algorithms():
    return {name: _factory(module, cls) for name, (module, cls) in PYMOO_ALGORITHMS.items()}
