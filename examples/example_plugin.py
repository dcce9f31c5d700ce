"""An example merge3 plugin: one of each kind, small enough to read in one go (docs/plugins.md).

- extractor `every-kth`: anchors evenly spaced along the items' difficulty;
- estimator `anchor-shrunk`: the anchor mean pulled toward the population's mean accuracy;
- search space `one-weight`: one gene, the same `weight` for every model of the mergekit config;
- algorithm `random-search`: pymoo's RandomSearch, a baseline for the others;
- command `merge3 anchors BUNDLE`: list a bundle's anchor items.

A package registers such a module with an entry point in its pyproject.toml:

    [project.entry-points.merge3]
    example = "my_package.example_plugin"

A running program can also register it by hand:

    from merge3_plugin.plugins import plugin_manager
    plugin_manager().register(example_plugin)

tests/test_docs.py registers it and runs every part.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from merge3_plugin.contracts import FunctionEstimator
from merge3_plugin.errors import UserError
from merge3_plugin.hookspecs import hookimpl


# -- extractor: (bundle, size, rng) -> (item positions, weights summing to 1) --------------------------
def every_kth(bundle, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sort the items by difficulty (beta), cut them into `size` equal runs, take the middle item of
    each run. Equal weights. Deterministic: `rng` is not used."""
    order = np.argsort(bundle.items.beta, kind="stable")
    middles = (2 * np.arange(size) + 1) * bundle.n_items // (2 * size)  # distinct when size <= n_items
    return np.sort(order[middles]), np.full(size, 1.0 / size)


# -- estimator: Estimation -> one estimate per model -------------------------------------------------
PSEUDO_ITEMS = 5


def anchor_shrunk(state) -> np.ndarray:
    """The weighted anchor mean, shrunk toward the population's mean accuracy as if PSEUDO_ITEMS more
    items had been answered at that mean: steadier on a few anchors, pulled toward the middle."""
    population_mean = float(state.bundle.items.prob(state.bundle.theta).mean())  # IRT-predicted
    answered = state.answered.sum(axis=1)
    return (answered * state.anchor_mean + PSEUDO_ITEMS * population_mean) / (answered + PSEUDO_ITEMS)


# -- search space: space(config) -> object with dims, to_config(x), describe() -------------------------
class OneWeight:
    """One gene: the same `weight` for every model in `models:`, scaled into space_options.range
    (default [0, 1]). A line search over task-arithmetic scales, say."""

    dims = 1

    def __init__(self, config):
        options = dict(config.evolve.space_options)
        self.low, self.high = options.pop("range", (0.0, 1.0))
        if options:
            raise UserError(f"one-weight takes only space_options.range, not {', '.join(options)}")
        if not config.merge.get("models"):
            raise UserError("one-weight needs models: in the mergekit config")
        self.merge = config.merge

    def value(self, x: np.ndarray) -> float:
        return self.low + float(np.clip(x[0], 0.0, 1.0)) * (self.high - self.low)

    def to_config(self, x: np.ndarray) -> dict:
        merge = copy.deepcopy(self.merge)
        for entry in merge["models"]:
            entry.setdefault("parameters", {})["weight"] = self.value(x)
        return merge

    def describe(self) -> str:
        return f"1 gene: the weight of all {len(self.merge['models'])} models, in [{self.low}, {self.high}]"


# -- algorithm: factory(n_obj=1, **options) -> pymoo Algorithm ----------------------------------------
class RandomSearch:
    """pymoo's RandomSearch: fresh uniform samples every generation, the best kept."""

    multi_objective = False  # one objective only

    def __call__(self, n_obj: int = 1, **options: Any) -> Any:
        from pymoo.algorithms.soo.nonconvex.random_search import RandomSearch as PymooRandomSearch

        return PymooRandomSearch(**options)

    def accepts(self) -> set[str]:
        return {"n_points_per_iteration"}


# -- a subcommand: `merge3 anchors BUNDLE` ------------------------------------------------------------
def _anchors(args) -> int:
    from merge3_plugin.bundle import Bundle

    bundle = Bundle.load(args.bundle)
    anchors = bundle.require_anchors(args.bundle)
    beta = bundle.items.beta[bundle.anchor_columns()]
    print(f"{bundle.task}: {anchors.size} anchors ({anchors.method}) of {bundle.n_items} items")
    for doc_id, weight, difficulty in zip(anchors.doc_ids, anchors.weights, beta):
        print(f"  doc_id {doc_id:>6}  weight {weight:.4f}  beta {difficulty:+.3f}")
    return 0


# -- the hooks: each returns {name: implementation} ---------------------------------------------------
@hookimpl
def merge3_anchor_extractors():
    return {"every-kth": every_kth}


@hookimpl
def merge3_estimators():
    return {"anchor-shrunk": FunctionEstimator(anchor_shrunk)}


@hookimpl
def merge3_search_spaces():
    return {"one-weight": OneWeight}


@hookimpl
def merge3_algorithms():
    return {"random-search": RandomSearch()}


@hookimpl
def merge3_add_commands(subparsers):
    parser = subparsers.add_parser("anchors", help="list a bundle's anchor items (example plugin)")
    parser.add_argument("bundle", type=Path, help="a bundle with anchors (merge3 extract)")
    parser.set_defaults(func=_anchors)
