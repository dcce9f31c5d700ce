"""What each kind of plugin must be: one `typing.Protocol` per kind, checked by `merge3 plugins`
and by the tests. The hooks in `hookspecs` return ``{name: implementation}``; each implementation
satisfies the Protocol of its kind. Attributes are declared here, not set on functions afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:  # registering a plugin must not import torch
    import numpy as np

    from .bundle import Bundle
    from .estimation import Estimation


@runtime_checkable
class Extractor(Protocol):
    """``extractor(bundle, size, rng) -> (positions, weights)``: `size` distinct item positions and
    non-negative weights summing to 1, chosen from the bundle's training models only."""

    def __call__(self, bundle: Bundle, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class Estimator(Protocol):
    """``estimator(state) -> estimates``: one full-benchmark estimate per model of an `Estimation`,
    or None where it does not apply. `needs_endpoints`: it estimates merges from their endpoints'
    abilities (mp-IRT, gmp-IRT), so a caller must measure the endpoints first."""

    needs_endpoints: bool

    def __call__(self, state: Estimation) -> np.ndarray | None: ...


@runtime_checkable
class SearchSpace(Protocol):
    """Genes in [0, 1]^dims <-> plain mergekit configs."""

    dims: int

    def to_config(self, x: np.ndarray) -> dict | list: ...  # a mergekit config, or a recipe of several

    def describe(self) -> str: ...


@runtime_checkable
class AlgorithmFactory(Protocol):
    """``factory(n_obj=1, **options) -> pymoo Algorithm``. `accepts()` names the options it takes
    (pymoo ignores unknown ones silently; the config check refuses them); `multi_objective` says
    whether it optimises several objectives."""

    multi_objective: bool

    def __call__(self, n_obj: int = 1, **options: Any) -> Any: ...

    def accepts(self) -> set[str]: ...


@runtime_checkable
class EvalBackend(Protocol):
    """What an eval backend factory returns (see `hookspecs.merge3_eval_backends`): scores jobs, calls
    ``done(job, scored)`` as each finishes, and releases its workers on `close()`."""

    def score(self, jobs: list, stage: str, done: Callable[[Any, Any], None]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class FunctionEstimator:
    """An `Estimator` made from a plain function: the simplest way to write one."""

    function: Callable[[Estimation], np.ndarray | None]
    needs_endpoints: bool = False

    def __call__(self, state: Estimation) -> np.ndarray | None:
        return self.function(state)


@dataclass(frozen=True)
class AdaptiveEstimator:
    """An `Estimator` that chooses each model's items as it goes (merge3_plugin/adaptive.py) instead of
    reading fixed anchors: the evolve loop runs its test per candidate (`estimator: adaptive`,
    `items: N`). `criterion` ranks the unasked items: "information" (Fisher information, D-optimal for
    d > 1) or "accuracy" (the largest drop in the predicted accuracy's variance). An lm-eval task cannot
    adapt within one run, so on fixed anchors it does not apply (None) and merge3_* tasks do not report it."""

    criterion: str = "information"
    needs_endpoints: bool = False  # a merge's test starts from its endpoints' ability when they are known
    adaptive: bool = True

    def __call__(self, state: Estimation) -> np.ndarray | None:
        return None
