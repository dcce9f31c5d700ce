"""pymoo's algorithms by short name. Imports are deferred: pymoo loads only when one is used.

Each factory takes the algorithm's options as keywords and `n_obj`, the number of objectives, which
the reference-direction algorithms (NSGA-III, MOEA/D) need when the user gives no `ref_dirs`.
`factory.accepts()` names the options the algorithm takes: pymoo silently ignores unknown ones, so a
misspelt `pop_sise` would run with the default population; the config check refuses it instead.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from ..hookspecs import hookimpl

# name -> (module, class, several objectives?); single-objective first, then multi-objective.
PYMOO_ALGORITHMS = {
    "ga": ("pymoo.algorithms.soo.nonconvex.ga", "GA", False),
    "de": ("pymoo.algorithms.soo.nonconvex.de", "DE", False),
    "cmaes": ("pymoo.algorithms.soo.nonconvex.cmaes", "CMAES", False),
    "pso": ("pymoo.algorithms.soo.nonconvex.pso", "PSO", False),
    "nelder-mead": ("pymoo.algorithms.soo.nonconvex.nelder", "NelderMead", False),
    "pattern-search": ("pymoo.algorithms.soo.nonconvex.pattern", "PatternSearch", False),
    "nsga2": ("pymoo.algorithms.moo.nsga2", "NSGA2", True),
    "nsga3": ("pymoo.algorithms.moo.nsga3", "NSGA3", True),
    "moead": ("pymoo.algorithms.moo.moead", "MOEAD", True),
    "sms-emoa": ("pymoo.algorithms.moo.sms", "SMSEMOA", True),
}


def reference_directions(n_obj: int, about: int):
    """Das-Dennis directions, as many partitions as keep their number near `about` (the population)."""
    from pymoo.util.ref_dirs import get_reference_directions

    partitions = 1
    while len(get_reference_directions("das-dennis", n_obj, n_partitions=partitions + 1)) <= about:
        partitions += 1
    return get_reference_directions("das-dennis", n_obj, n_partitions=partitions)


def _factory(module: str, cls: str, multi: bool) -> Callable[..., Any]:
    def load():
        return getattr(importlib.import_module(module), cls)

    def make(n_obj: int = 1, **options: Any) -> Any:
        algorithm = load()
        own = inspect.signature(algorithm.__init__).parameters
        if "ref_dirs" in own:
            # MOEA/D has no pop_size of its own (one individual per direction): it sets how many directions
            about = options.get("pop_size") if "pop_size" in own else options.pop("pop_size", None)
            if options.get("ref_dirs") is None:
                options["ref_dirs"] = reference_directions(max(n_obj, 2), int(about or 24))
        return algorithm(**options)

    def accepts() -> set[str]:
        """Keyword options of the class and its bases (pymoo passes **kwargs up to Algorithm)."""
        names = set()
        for klass in load().__mro__:
            init = klass.__dict__.get("__init__")
            if init is not None:
                names |= {p.name for p in inspect.signature(init).parameters.values()
                          if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        return names

    make.__name__ = f"make_{cls}"
    make.__doc__ = f"{module}.{cls}(**options)"
    make.accepts = accepts
    make.multi_objective = multi
    return make


@hookimpl
def merge3_algorithms():
    return {name: _factory(*spec) for name, spec in PYMOO_ALGORITHMS.items()}
