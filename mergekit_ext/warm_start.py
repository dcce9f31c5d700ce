"""`evolve.warm_start`: the first generation begins with chosen rows (the config's own values and the
endpoints, from the search space's `warm_start()`), the rest drawn as pymoo draws them. Algorithms
that start from one point (cmaes, nelder-mead, pattern-search) take the best of those first samples.
What config.py checks before anything loads is checked here again for callers of `run()`."""

from __future__ import annotations

import numpy as np
from pymoo.core.sampling import Sampling
from pymoo.operators.sampling.rnd import FloatRandomSampling

from merge3_plugin.errors import UserError


class WarmStartSampling(Sampling):
    """`rows` first (as many as the population holds), then uniform random genes for the rest."""

    def __init__(self, rows: np.ndarray):
        super().__init__()
        self.rows = np.atleast_2d(rows)

    def _do(self, problem, n_samples, random_state=None, **kwargs):
        chosen = self.rows[:n_samples]
        if len(chosen) == n_samples:
            return chosen
        rest = FloatRandomSampling().do(problem, n_samples - len(chosen), random_state=random_state).get("X")
        return np.vstack([chosen, rest])


def with_warm_start(config, factory, options: dict, space) -> dict:
    """The algorithm's options with the warm start added (options the user set stay as they are)."""
    rows = getattr(space, "warm_start", None)
    if rows is None:
        raise UserError(f"{config.path}: field 'evolve.warm_start': the {config.evolve.space} space has no warm "
                        "start (it has no config values or endpoints to begin from)")
    rows = rows()
    accepts = factory.accepts() if hasattr(factory, "accepts") else set()
    if "sampling" in accepts:
        options.setdefault("sampling", WarmStartSampling(rows))
    elif "x0" in accepts:
        options.setdefault("x0", rows[0])
    else:
        raise UserError(f"{config.path}: field 'evolve.warm_start': algorithm {config.evolve.algorithm.name} takes "
                        "neither a first population (sampling) nor a start point (x0)")
    return options
