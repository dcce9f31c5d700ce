"""pymoo's algorithms by short name, registered through merge3's `merge3_algorithms` hook (entry
point `mergekit_ext`). Imports are deferred: pymoo loads only when one is used.

Each factory takes the algorithm's options as keywords and `n_obj`, the number of objectives, which
the reference-direction algorithms (NSGA-III, MOEA/D) need when the user gives no `ref_dirs`.
`parego` is the GA with ParEGO's scalarisation (parego.py); `tpe` is Optuna's TPE sampler with,
under evolve.racing, its Hyperband pruner as the intensifier (tpe.py: the paper's own loop). Each is an `AlgorithmFactory` (merge3_plugin.contracts). `factory.accepts()` names the options the algorithm takes: pymoo silently ignores unknown ones, so a
misspelt `pop_sise` would run with the default population; the config check refuses it instead.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from merge3_plugin.hookspecs import hookimpl

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


@dataclass(frozen=True)
class PymooAlgorithm:
    """A pymoo algorithm class by its import path; calling it builds one with the given options."""

    module: str
    cls: str
    multi_objective: bool

    def load(self):
        return getattr(importlib.import_module(self.module), self.cls)

    def __call__(self, n_obj: int = 1, **options: Any) -> Any:
        algorithm = self.load()
        own = inspect.signature(algorithm.__init__).parameters
        if "ref_dirs" in own:
            # MOEA/D has no pop_size of its own (one individual per direction): it sets how many directions
            about = options.get("pop_size") if "pop_size" in own else options.pop("pop_size", None)
            if options.get("ref_dirs") is None:
                options["ref_dirs"] = reference_directions(max(n_obj, 2), int(about or 24))
        return algorithm(**options)

    def accepts(self) -> set[str]:
        """Keyword options of the class and its bases (pymoo passes **kwargs up to Algorithm)."""
        names = set()
        for klass in self.load().__mro__:
            init = klass.__dict__.get("__init__")
            if init is not None:
                names |= {p.name for p in inspect.signature(init).parameters.values()
                          if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        return names


class ParEGOFactory:
    """`parego`: pymoo's GA with ParEGO's random-weight Tchebycheff scalarisation (mergekit_ext/algorithms/parego.py)."""

    multi_objective = True

    def __call__(self, n_obj: int = 2, pop_size: int = 24, rho: float | None = None, **options: Any) -> Any:
        from .parego import RHO, ParEGO

        directions = reference_directions(max(n_obj, 2), int(pop_size))
        return ParEGO(directions, RHO if rho is None else rho, pop_size=pop_size, **options)

    def accepts(self) -> set[str]:
        return (PymooAlgorithm("pymoo.algorithms.soo.nonconvex.ga", "GA", False).accepts() | {"rho"}) - {
            "survival", "output"}


class TPEFactory:
    """`tpe`: Optuna's TPE proposals, `pop_size` trials per generation (default 1, one at a time as in the
    paper); with evolve.racing, Optuna's HyperbandPruner stops candidates on the anchor rungs (tpe.py)."""

    multi_objective = False

    def __call__(self, n_obj: int = 1, **options: Any) -> Any:
        from .tpe import TPEHyperband

        return TPEHyperband(**options)

    def accepts(self) -> set[str]:
        return {"pop_size", "n_startup_trials", "multivariate", "sampling"}


@hookimpl
def merge3_algorithms():
    return {**{name: PymooAlgorithm(*spec) for name, spec in PYMOO_ALGORITHMS.items()}, "parego": ParEGOFactory(),
            "tpe": TPEFactory()}
