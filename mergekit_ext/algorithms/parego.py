"""ParEGO-style scalarisation for several objectives (`algorithm: {name: parego}`), on pymoo's GA.

"Fine, I'll Merge It Myself" searches several objectives (one per task or language) with ParEGO:
every iteration draws a weight vector at random from an evenly spread set and scalarises the
objectives with the augmented Tchebycheff function

    s(f) = max_j lambda_j * f'_j + rho * sum_j lambda_j * f'_j      (f' normalised to [0, 1], minimised)

so that over many iterations every trade-off of the front is pushed on. ParEGO proposes one point at
a time; a GA has a population, so here each place in the next population goes, in turn, to the best
remaining candidate under its own weight vector drawn from pymoo's Das-Dennis directions (one vector
for the whole generation collapses the population onto one trade-off: on ZDT1 that did no better
than random sampling). The mating tournament prefers the candidates chosen first, and the result is
the non-dominated set of every candidate evaluated, as ParEGO's is. Left out: ParEGO's surrogate
(a GP, or SMAC's random forest, proposing each next point); candidates are the GA's offspring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.soo.nonconvex.ga import GA
from pymoo.core.population import Population
from pymoo.core.survival import Survival
from pymoo.util.optimum import filter_optimum
from pymoo.operators.selection.tournament import TournamentSelection, compare
from pymoo.util.display.multi import MultiObjectiveOutput

RHO = 0.05  # ParEGO's augmentation: a small pull toward the weighted sum, so no point is weakly dominated


def tchebycheff(F: np.ndarray, weights: np.ndarray, rho: float = RHO) -> np.ndarray:
    """Augmented Tchebycheff values of objective rows F (minimised), each objective normalised to [0, 1]
    over the rows."""
    from .problem import NOT_EVALUATED

    scored = (F < NOT_EVALUATED).all(axis=1)  # failed or past the budget: ranked last, not in the scale
    if not scored.any():
        return np.full(len(F), np.inf)
    low, high = F[scored].min(axis=0), F[scored].max(axis=0)
    scaled = (F - low) / np.where(high > low, high - low, 1.0)
    weighted = scaled * weights
    return np.where(scored, weighted.max(axis=1) + rho * weighted.sum(axis=1), np.inf)


class TchebycheffSurvival(Survival):
    """`n_survive` places filled one by one, each by the best remaining candidate under the augmented
    Tchebycheff value of its own weight vector (drawn from `directions`); the order of choice is kept
    on the individuals (`scalar`, smaller first) for the mating tournament."""

    def __init__(self, directions: np.ndarray, rho: float = RHO):
        super().__init__(filter_infeasible=True)
        self.directions = directions
        self.rho = rho
        self.seen = Population.empty()  # every candidate ranked so far (each generation's offspring pass here)
        self._seen_ids: set[int] = set()

    def _do(self, problem, pop, n_survive=None, random_state=None, **kwargs):
        new = [ind for ind in pop if id(ind) not in self._seen_ids]
        self._seen_ids.update(id(ind) for ind in new)
        self.seen = Population.merge(self.seen, Population.create(*new)) if new else self.seen
        F = pop.get("F")
        n_survive = min(n_survive or len(pop), len(pop))
        left = np.arange(len(pop))
        chosen, values = [], []
        for _ in range(n_survive):  # each place goes to the best of the rest under its own random weights
            weights = self.directions[random_state.integers(len(self.directions))]
            scores = tchebycheff(F, weights, self.rho)[left]
            best = int(np.argmin(scores))
            chosen.append(left[best])
            values.append(len(chosen))
            left = np.delete(left, best)
        survivors = pop[np.array(chosen)]
        survivors.set("scalar", np.array(values, dtype=float))  # the order of choice: earlier is better
        return survivors


def compare_by_scalar(pop, P, random_state=None, **kwargs):
    """Binary tournament on the survival's scalarised value (smaller wins; a tie by coin)."""
    winners = np.empty(P.shape[0], dtype=int)
    for i, (a, b) in enumerate(P):
        winners[i] = compare(a, pop[a].get("scalar"), b, pop[b].get("scalar"), method="smaller_is_better",
                             return_random_if_equal=True, random_state=random_state)
    return winners


class ParEGO(GA):
    """pymoo's GA under the Tchebycheff survival, whose result is the non-dominated set of every
    candidate it evaluated (as ParEGO's is), not only of its last population."""

    def __init__(self, directions: np.ndarray, rho: float = RHO, **options: Any):
        options.setdefault("selection", TournamentSelection(func_comp=compare_by_scalar))
        super().__init__(survival=TchebycheffSurvival(directions, rho), output=MultiObjectiveOutput(), **options)
        self.advance_after_initial_infill = True  # the first population is ranked too (as NSGA-II's is)

    def _set_optimum(self):
        self.opt = filter_optimum(self.survival.seen, least_infeasible=True)
