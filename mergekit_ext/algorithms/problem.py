"""The pymoo side of the search: the problem (genes in, negated fitness out) and the callback that
writes checkpoint.json after every generation. Module-level classes, as pymoo's own problems are;
the problem knows nothing of the algorithm."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pymoo.core.callback import Callback
from pymoo.core.problem import Problem
from pymoo.core.termination import Termination

from merge3_plugin.files import write_atomic

from ..select.pareto import archive_front, hypervolume

# pymoo's value for a candidate cut by the budget: objectives are accuracies (negated, in [-1, 0]);
# finite, because decompositions (MOEA/D) multiply it by zero weights and inf * 0 is NaN
NOT_EVALUATED = 1e9


class MergeProblem(Problem):
    """Maximise a `MergeSearch`'s objectives over its genes in [0, 1]^dims (pymoo minimises: negated).
    A whole generation at once, so that a parallel backend can score its candidates side by side."""

    def __init__(self, search, n_obj: int):
        self.search = search
        # requires_kwargs: pymoo then passes the asking algorithm along (an intensifier, see search.py)
        super().__init__(n_var=search.space.dims, n_obj=n_obj, xl=0.0, xu=1.0, requires_kwargs=True)

    def _evaluate(self, X, out, *args, algorithm=None, **kwargs):
        # past the budget a generation is cut short: its remaining members are not evaluated, and
        # stand as worse than any real candidate so that no algorithm keeps them; so do failed ones
        out["F"] = np.array([[NOT_EVALUATED] * self.n_obj if objectives is None else [-v for v in objectives]
                             for objectives in self.search.evaluate(X, algorithm)], dtype=float)


class ItemBudget(Termination):
    """evolve.budget.items: done once the candidates asked so far have cost `items` documents. Read from
    the problem's search (pymoo deep-copies a termination; the search must not be copied with it)."""

    def __init__(self, items: int):
        super().__init__()
        self.items = items

    def _update(self, algorithm):
        return algorithm.problem.search.items_spent / self.items


class CheckpointCallback(Callback):
    """After each generation: generation, evaluations, how many were replayed, the best objectives."""

    def __init__(self, search, path: Path):
        super().__init__()
        self.search = search
        self.path = path

    def notify(self, algorithm):
        search = self.search
        front = -np.atleast_2d(algorithm.opt.get("F"))
        state = {"generation": int(algorithm.n_gen), "candidates": search.asked,
                 "evaluated_now": search.evaluated, "replayed": search.replayed, "repeated": search.repeated,
                 "failed_now": search.failed, "best": [float(f) for f in front[0]]}
        if front.shape[1] > 1:  # several objectives: the hypervolume of everything scored so far (never falls)

            front = archive_front(search.succeeded())[1]
            state["hypervolume"] = hypervolume(front)
            history = search.history
            if state["generation"] > len(history.generations):  # a resumed run replays those it has
                history.add({"kind": "generation", "generation": state["generation"],
                             "hypervolume": state["hypervolume"], "front": len(front)})
        write_atomic(self.path, json.dumps(state, indent=1) + "\n")
        search.watch.end_generation(int(algorithm.n_gen), search.history.path)  # stops when most failed
