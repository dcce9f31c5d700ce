"""Adaptive item selection (issue #26): each model is asked the items that tell most about it.

Fluid Benchmarking (Hofmann et al., 2025, arXiv 2509.11106) asks a model, with a 2PL IRT model fitted
on other models' answers, the item with the most Fisher information at its current ability, fits the
ability again, and repeats. For an ability of d > 1 dimensions "most information" is D-optimal: the
item that most raises log det of the ability's information matrix, prior precision plus
p (1 - p) a a^T for every item asked. Here, for a batch of models at once:

    round 0   `first` items, chosen at the prior ability (a merge's: the mean of its endpoints')
    round k   `per_round` more per model, greedy on the information at its MAP ability after round k-1
    stop      at `max_items`, or for a model whose predicted accuracy's s.e. fell below `target_se`

The estimate is p-IRT's: the items asked as observed, the rest of the split predicted at the ability
(gp-IRT's mix with the anchor mean does not apply: these items are chosen to inform, not to represent).
Its standard error is the ability's (the inverse information, by the delta method) plus the binomial
spread of the items not asked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import UserError
from .estimation import pirt_of
from .irt import ItemParams, fit_ability

if TYPE_CHECKING:
    from .bundle import GradedChannel


@dataclass(frozen=True)
class AdaptivePolicy:
    max_items: int = 20
    first: int = 5  # items of round 0, at the prior ability
    per_round: int = 5  # items per later round
    target_se: float | None = None  # stop a model early once its estimate's s.e. is below this
    criterion: str = "information"  # or "accuracy": the items that most cut the predicted accuracy's variance

    def check(self, n_items: int, where: str = "adaptive") -> None:
        """A clear error for a policy the split cannot serve."""
        if self.max_items > n_items:
            raise UserError(f"{where}: {self.max_items} items asked for, but the split has only {n_items}")
        if min(self.max_items, self.first, self.per_round) < 1:
            raise UserError(f"{where}: items, first and per_round must be at least 1")
        if self.criterion not in ("information", "accuracy"):
            raise UserError(f"{where}: criterion must be information or accuracy, got {self.criterion!r}")
        if self.target_se is not None and not 0 < self.target_se < 0.5:
            raise UserError(f"{where}: target_se must be between 0 and 0.5, got {self.target_se}")


@dataclass
class AdaptiveRun:
    """The tests of a batch of models: what each was asked, in order, and the estimate after each round."""

    asked: list[list[int]]  # per model, the split's item positions in the order asked
    observed: np.ndarray  # models x N, the scores of the items asked (NaN elsewhere)
    theta: np.ndarray  # models x d, the MAP ability after the last round
    rounds: list[dict] = field(default_factory=list)  # per round: {"n": [...], "estimate": [...], "se": [...]}

    @property
    def estimate(self) -> np.ndarray:
        return np.asarray(self.rounds[-1]["estimate"])

    @property
    def se(self) -> np.ndarray:
        return np.asarray(self.rounds[-1]["se"])

    def estimate_at(self, n: int) -> np.ndarray:
        """Each model's estimate after the last round that left it with at most n items."""
        out = np.full(len(self.asked), np.nan)
        for record in self.rounds:
            counts = np.asarray(record["n"])
            take = counts <= n
            out[take] = np.asarray(record["estimate"])[take]
        return out


def replay(answers: np.ndarray, graded: np.ndarray | None = None) -> Callable[[list[list[int]]], list[list]]:
    """`run_adaptive`'s `answer` for models whose answers are known (models x N, e.g. read from logs);
    with `graded` (models x N, the probability of the right choice), (score, graded response) pairs."""
    if graded is None:
        return lambda asked: [answers[m, columns].tolist() for m, columns in enumerate(asked)]
    return lambda asked: [list(zip(answers[m, columns].tolist(), graded[m, columns].tolist()))
                          for m, columns in enumerate(asked)]


def information(items: ItemParams, theta: np.ndarray, asked: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """The information matrix of one model's ability (d x d) at `theta` after the items `asked` (bool, N)."""
    a = items.alpha[asked]
    p = items.prob(theta)[asked]
    return precision + (a * (p * (1 - p))[:, None]).T @ a


def choose_items(items: ItemParams, theta: np.ndarray, asked: np.ndarray, info: np.ndarray, k: int,
                 allowed: np.ndarray | None = None, criterion: str = "information",
                 predict: ItemParams | None = None) -> list[int]:
    """k unasked items, one at a time, each the largest gain in log det of the information at `theta`
    (matrix determinant lemma: log(1 + w a^T I^-1 a), w = p (1 - p); for d = 1 the most Fisher information),
    the information updated after each pick (Sherman-Morrison). `allowed`: items that may be asked (bool, N).
    `predict`: the right/wrong parameters whose accuracy criterion "accuracy" targets (graded responses)."""
    a = items.alpha
    p = items.prob(theta)
    w = p * (1 - p)
    inverse = np.linalg.inv(info)
    free = ~asked if allowed is None else (~asked & allowed)
    picked = []
    right = predict.prob(theta) if predict is not None else p
    target = ((right * (1 - right))[:, None] * (predict or items).alpha).mean(axis=0)  # d accuracy / d theta
    for _ in range(k):
        if not free.any():
            break
        spread = np.einsum("nd,de,ne->n", a, inverse, a)
        if criterion == "accuracy":  # the largest drop in the predicted accuracy's variance (c-optimal)
            gain = w * (a @ (inverse @ target)) ** 2 / (1 + w * spread)
        else:
            gain = np.log1p(w * spread)
        gain[~free] = -np.inf
        j = int(np.argmax(gain))  # ties: the first item
        v = inverse @ a[j]
        inverse -= w[j] * np.outer(v, v) / (1 + w[j] * a[j] @ v)
        free[j] = False
        picked.append(j)
    return picked


def standard_error(items: ItemParams, theta: np.ndarray, observed: np.ndarray, precision: np.ndarray,
                   item_weights: np.ndarray | None = None, predict: ItemParams | None = None) -> np.ndarray:
    """The p-IRT estimate's s.e. per model: the predicted part's through the ability's posterior
    (inverse information at the MAP, delta method) and the binomial spread of the items not asked.
    `predict`: the items' right/wrong parameters where `items` measure the ability (graded responses)."""
    out = np.empty(len(theta))
    for m in range(len(theta)):
        unseen = np.isnan(observed[m])
        share = unseen.mean()
        if not unseen.any():
            out[m] = 0.0
            continue
        p = (predict or items).prob(theta[m])
        w = p * (1 - p) * (1.0 if item_weights is None else item_weights)
        gradient = (w[unseen, None] * (predict or items).alpha[unseen]).mean(axis=0)
        posterior = np.linalg.inv(information(items, theta[m], ~unseen, precision))
        binomial = (p * (1 - p) * (1.0 if item_weights is None else item_weights ** 2))[unseen].sum() / unseen.sum() ** 2
        out[m] = share * np.sqrt(gradient @ posterior @ gradient + binomial)
    return out


def run_adaptive(items: ItemParams, answer: Callable[[list[list[int]]], list[list]], n_models: int,
                 policy: AdaptivePolicy, prior_mean: np.ndarray, prior_cov: np.ndarray,
                 start_theta: np.ndarray | None = None, item_weights: np.ndarray | None = None,
                 allowed: np.ndarray | None = None, graded: GradedChannel | None = None) -> AdaptiveRun:
    """Adaptive tests of `n_models` models over a split of N items.

    `answer(columns)`: per model, the scores (in [0, 1]) of the listed item positions (an empty list:
    nothing asked of that model this round). `prior_mean`: d, or models x d (a merge's endpoints' mean,
    also where its first items are chosen); `start_theta` overrides where round 0 chooses. `allowed`:
    models x N, the items each model can be asked (a replay: the items its logs hold).

    `graded` (a bundle's graded channel, graded.py): `answer` gives (score, graded response) pairs; the
    ability is measured and the items chosen on the graded scale (`prior_mean` and `prior_cov` on it too),
    the estimate is still the scores asked plus the accuracy predicted for the rest."""
    predict = items if graded is None else graded.predict
    items = items if graded is None else graded.items
    n_items = items.alpha.shape[0]
    policy.check(n_items)
    mean = np.broadcast_to(np.asarray(prior_mean, dtype=np.float64), (n_models, items.dims)).copy()
    precision = np.linalg.inv(np.asarray(prior_cov, dtype=np.float64))
    theta = mean.copy() if start_theta is None else np.asarray(start_theta, dtype=np.float64).copy()
    observed = np.full((n_models, n_items), np.nan)  # the scores (right/wrong): what is estimated
    responses = observed if graded is None else np.full((n_models, n_items), np.nan)  # what measures the ability
    asked_order: list[list[int]] = [[] for _ in range(n_models)]
    active = np.ones(n_models, dtype=bool)
    run = AdaptiveRun(asked_order, observed, theta)
    while active.any():
        requests: list[list[int]] = []
        for m in range(n_models):
            asked = ~np.isnan(observed[m])
            room = policy.max_items - int(asked.sum())
            k = min(policy.first if not asked.any() else policy.per_round, room) if active[m] else 0
            info = information(items, theta[m], asked, precision)
            requests.append(choose_items(items, theta[m], asked, info, k, None if allowed is None else allowed[m],
                                         policy.criterion, predict) if k > 0 else [])
        if not any(requests):
            break
        for m, (columns, given) in enumerate(zip(requests, answer(requests))):
            if not columns and not len(given):
                continue  # nothing asked of this model this round (stopped, or no item left to ask)
            values = np.asarray(given, dtype=float).reshape(len(given), -1)
            if len(given) != len(columns) or values.shape[1] != (1 if graded is None else 2) or np.isnan(values).any():
                # an unanswered item would look unasked and be asked again
                raise ValueError(f"answer() gave {len(given)} answers for {len(columns)} items of model {m}, each "
                                 + ("must be a number" if graded is None else "must be a (score, graded response) pair"))
            observed[m, columns] = values[:, 0]
            responses[m, columns] = values[:, -1]
            asked_order[m].extend(columns)
        theta = fit_ability(items, responses, prior_mean=mean, prior_cov=np.asarray(prior_cov, dtype=np.float64))
        estimate = np.clip(pirt_of(predict.prob(theta), observed, item_weights), 0.0, 1.0)
        se = standard_error(items, theta, observed, precision, item_weights, predict)
        counts = [len(order) for order in asked_order]
        run.rounds.append({"n": counts, "estimate": estimate.tolist(), "se": se.tolist()})
        for m in range(n_models):
            done = counts[m] >= policy.max_items or not requests[m]
            if policy.target_se is not None and se[m] < policy.target_se:
                done = True
            active[m] &= not done
    run.theta = theta
    return run
