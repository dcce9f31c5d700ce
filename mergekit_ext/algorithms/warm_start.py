"""The first generation (`evolve.init`): `config` holds your config's own values and the endpoints (the
search space's `warm_start()` rows) and draws the rest within a trust region around your config;
`warm` (`warm_start: true`) draws the rest uniformly over the ranges; `uniform` is pymoo's own draw.
Algorithms that start from one point (cmaes, nelder-mead, pattern-search) start from your config.
What config.py checks before anything loads is checked here again for callers of `run()`."""

from __future__ import annotations

import numpy as np
from pymoo.core.sampling import Sampling
from pymoo.operators.sampling.rnd import FloatRandomSampling

from merge3_plugin.errors import UserError

from ..config import effective_init


class WarmStartSampling(Sampling):
    """`rows` first (as many as the population holds), then the rest: uniform random genes, or with
    `radius` genes drawn uniformly within `radius` of the first row (your config), clipped to [0, 1]."""

    def __init__(self, rows: np.ndarray, radius: float | None = None):
        super().__init__()
        self.rows = np.atleast_2d(rows)
        self.radius = radius

    def _do(self, problem, n_samples, random_state=None, **kwargs):
        chosen = self.rows[:n_samples]
        if len(chosen) == n_samples:
            return chosen
        rest = FloatRandomSampling().do(problem, n_samples - len(chosen), random_state=random_state).get("X")
        if self.radius is not None:  # the unit draw moved into the box of side 2 * radius around the config
            rest = np.clip(self.rows[0] + (2.0 * rest - 1.0) * self.radius, 0.0, 1.0)
        return np.vstack([chosen, rest])


def with_init(config, factory, options: dict, space) -> dict:
    """The algorithm's options with the first generation of `evolve.init` added (options the user set
    stay as they are)."""
    init = effective_init(config.evolve)
    if init == "uniform":
        return options
    field = "evolve.warm_start" if config.evolve.warm_start else "evolve.init"
    rows = getattr(space, "warm_start", None)
    if rows is None:
        raise UserError(f"{config.path}: field '{field}': the {config.evolve.space} space has no config values or "
                        "endpoints to begin from; use init: uniform")
    rows = rows()
    accepts = factory.accepts() if hasattr(factory, "accepts") else set()
    if "sampling" in accepts:
        radius = config.evolve.trust_radius if init == "config" else None
        options.setdefault("sampling", WarmStartSampling(rows, radius))
    elif "x0" in accepts:
        options.setdefault("x0", rows[0])
    else:
        raise UserError(f"{config.path}: field '{field}': algorithm {config.evolve.algorithm.name} takes neither a "
                        "first population (sampling) nor a start point (x0); use init: uniform")
    return options
