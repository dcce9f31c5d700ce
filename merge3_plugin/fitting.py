"""A response matrix -> a fitted bundle: split the population, choose d, fit items, record diagnostics.

The population is split once (seeded) into training models, which the item parameters are fit
on, and validation models, which choose d (`dims="auto"`) and later calibrate gp-IRT's lambda*
and gmp-IRT's delta at extraction. Models named in `holdout` are left out altogether, so that
`merge3 report` can score them honestly.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .bundle import Bundle
from .errors import UserError
from .irt import ItemParams, fit_ability, fit_items, fit_items_girth, population_prior
from .responses import ResponseMatrix

AUTO_DIMS = (1, 2, 3, 5, 8)  # the candidates `--dims auto` tries (capped by the population size)
MIN_MODELS = 6
VALIDATION_SHARE = 0.2
BACKENDS = ("torch", "girth")


def split_population(models: list[str], seed: int, share: float = VALIDATION_SHARE) -> list[str]:
    """'train' or 'validation' per model; at least 2 validation models, at least 4 training ones."""
    n = len(models)
    n_val = min(max(2, round(share * n)), n - 4)
    order = np.random.default_rng(seed).permutation(n)
    splits = ["train"] * n
    for i in order[:n_val]:
        splits[i] = "validation"
    return splits


def validation_subset(n_items: int) -> int:
    """How many items a validation model's ability is fit on when scoring d: about an anchor set."""
    return max(10, min(50, n_items // 4))


def dims_error(items: ItemParams, val_scores: np.ndarray, seed: int, subset: int,
               prior: tuple[np.ndarray, np.ndarray], repeats: int = 3) -> float:
    """How well item parameters predict unseen answers of validation models: mean log loss on the
    items not in a random `subset` the ability was fit on, under `prior` (mean, covariance), as
    estimation will do with anchors."""
    mean, cov = prior
    rng = np.random.default_rng(seed)
    losses = []
    n_items = val_scores.shape[1]
    for _ in range(repeats):
        shown = np.zeros(n_items, dtype=bool)
        shown[rng.choice(n_items, size=min(subset, n_items - 1), replace=False)] = True
        observed = np.where(shown[None, :], val_scores, np.nan)
        theta = fit_ability(items, observed, prior_mean=mean, prior_cov=cov)
        p = np.clip(items.prob(theta)[:, ~shown], 1e-9, 1 - 1e-9)
        y = val_scores[:, ~shown]
        cell = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        losses.append(np.nanmean(cell))
    return float(np.mean(losses))


def choose_dims(scores: np.ndarray, train: np.ndarray, seed: int,
                progress: Callable[[str], None] = lambda _: None) -> tuple[int, dict]:
    """`--dims auto`: the candidate d whose items, fit on the training models, best predict the
    validation models' unseen answers (`dims_error`). (d, diagnostics for "dims_auto")."""
    # more dimensions than training models cannot be identified
    candidates = [d for d in AUTO_DIMS if d <= max(1, int(train.sum()) // 3)]
    subset = validation_subset(scores.shape[1])
    errors = {}
    for d in candidates:
        progress(f"trying d = {d}")
        items, train_theta = fit_items(scores[train], dims=d, seed=seed)
        # the prior estimation will use with these items (Bundle.ability_prior), not N(0, I)
        errors[d] = dims_error(items, scores[~train], seed, subset, prior=population_prior(train_theta))
    chosen = min(errors, key=errors.get)
    return chosen, {"criterion": f"validation log loss, ability fit on {subset} random items "
                                 "under the population prior (training abilities' mean and shrunk covariance)",
                    "errors": {str(d): e for d, e in errors.items()}}


def fit_bundle(matrix: ResponseMatrix, dims: int | str = "auto", backend: str = "torch", seed: int = 0,
               holdout: list[str] = (), lineage: dict[str, list[str]] | None = None,
               task_version: str | None = None, progress: Callable[[str], None] = lambda _: None) -> Bundle:
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}", param="backend")
    unknown = sorted(set(holdout) - set(matrix.models))
    if unknown:
        raise UserError(f"no samples for model(s) {', '.join(unknown)}; models found: {', '.join(matrix.models)}",
                        param="holdout")
    keep = [i for i, m in enumerate(matrix.models) if m not in set(holdout)]
    if len(keep) < MIN_MODELS:
        raise UserError(f"{matrix.task}: {len(keep)} model(s) to fit on; IRT needs at least {MIN_MODELS} "
                        "(more is better: tens to hundreds)")
    models = [matrix.models[i] for i in keep]
    scores = matrix.scores[keep]
    splits = split_population(models, seed)
    train = np.array([s == "train" for s in splits])
    started = time.perf_counter()

    diagnostics: dict = {"train_models": int(train.sum()), "validation_models": int((~train).sum()),
                         "holdout": sorted(holdout), "seed": seed}
    if backend == "girth":
        if dims not in ("auto", 1):
            raise UserError(f"{dims}: the girth backend is unidimensional (use 1 or the torch backend)", param="dims")
        try:
            items, _ = fit_items_girth(scores[train])
        except ValueError as err:
            raise UserError(f"{matrix.task}: {err}") from None
        chosen = 1
    else:
        if dims == "auto":
            chosen, diagnostics["dims_auto"] = choose_dims(scores, train, seed, progress)
        else:
            chosen = int(dims)
            if not 1 <= chosen <= 15:
                raise UserError(f"{dims} is out of range; use 1..15 or auto", param="dims")
        items, _ = fit_items(scores[train], dims=chosen, seed=seed)
    theta = fit_ability(items, scores)  # every population model, items fixed
    diagnostics["dims"] = chosen
    diagnostics["fit_seconds"] = round(time.perf_counter() - started, 3)
    diagnostics["validation_log_loss"] = dims_error(items, scores[~train], seed, validation_subset(scores.shape[1]),
                                                    prior=population_prior(theta[train]))
    lineage = {m: list(e) for m, e in (lineage or {}).items() if m in models}
    return Bundle(task=matrix.task, task_version=task_version, metric=matrix.metric, filter=matrix.filter,
                  doc_ids=list(matrix.doc_ids), doc_hashes=list(matrix.doc_hashes), items=items, backend=backend,
                  models=models, splits=splits, theta=theta, scores=scores, lineage=lineage,
                  diagnostics=diagnostics)
