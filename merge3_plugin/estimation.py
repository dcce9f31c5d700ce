"""Full-benchmark accuracy from a few anchor answers: the quantities every estimator shares.

An `Estimation` holds a batch of models' scores on one bundle's anchors (NaN where a model did
not answer one, e.g. under `--limit`) and, for merged models, their endpoints' abilities. It
computes lazily and once what the estimators (built-in or plugins, see `builtin/estimators.py`)
combine: the weighted anchor mean, the ability fitted on the anchors, the merge weights.

    p-IRT   = l * seen mean + (1 - l) * mean_{unseen items} P_i(theta),      l = n / N
    gp-IRT  = l* * anchor + (1 - l*) * p-IRT                                 (l* from validation)
    mp-IRT  = p-IRT at theta_merge = sum_j lambda_j theta_j                  (lambda fit on anchors)
    gmp-IRT = delta * anchor + (1 - delta) * mp-IRT                          (delta from validation)

Every estimate is clipped to [0, 1].
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .bundle import Anchors, Bundle
from .contracts import Estimator
from .errors import UserError
from .irt import ItemParams, fit_ability, lbfgs
from .plugins import registry, unknown_name

MERGE_WEIGHT_SD = 1.0  # prior on each merge weight lambda_j: N(1/J, sd^2), i.e. near the endpoints' mean


class Estimation:
    def __init__(self, bundle: Bundle, anchor_scores: np.ndarray, endpoint_theta: np.ndarray | None = None,
                 anchors: Anchors | None = None):
        """anchor_scores: models x n (the anchors' order), NaN = not answered.
        endpoint_theta: models x J x d, the abilities of each model's J endpoints (or None)."""
        self.bundle = bundle
        self.anchors = anchors or bundle.require_anchors()
        self.scores = np.atleast_2d(np.asarray(anchor_scores, dtype=np.float64))
        if self.scores.shape[1] != self.anchors.size:
            raise ValueError(f"anchor scores have {self.scores.shape[1]} columns, the anchors {self.anchors.size}")
        self.endpoint_theta = None if endpoint_theta is None else np.asarray(endpoint_theta, dtype=np.float64)
        self.columns = bundle.columns(self.anchors.doc_ids)
        self.answered = ~np.isnan(self.scores)
        if not self.answered.any(axis=1).all():
            raise UserError("a model answered none of the anchor items; nothing to estimate from")

    # -- model-free ------------------------------------------------------------------------------
    @functools.cached_property
    def anchor_mean(self) -> np.ndarray:
        """Weighted anchor mean, weights renormalised over the anchors each model answered."""
        w = np.where(self.answered, self.anchors.weights[None, :], 0.0)
        return np.nansum(w * np.nan_to_num(self.scores), axis=1) / w.sum(axis=1)

    @functools.cached_property
    def seen_mean(self) -> np.ndarray:
        return np.nanmean(self.scores, axis=1)

    # -- IRT -------------------------------------------------------------------------------------
    @functools.cached_property
    def anchor_items(self) -> ItemParams:
        return self.bundle.items.subset(self.columns)

    @functools.cached_property
    def theta(self) -> np.ndarray:
        """Each model's ability, MAP on the anchors it answered, under the population's prior."""
        mean, cov = self.bundle.ability_prior()
        return fit_ability(self.anchor_items, self.scores, prior_mean=mean, prior_cov=cov)

    def pirt_at(self, theta: np.ndarray) -> np.ndarray:
        """p-IRT for abilities theta (models x d): answered items as observed, the rest predicted."""
        observed = np.full((self.scores.shape[0], self.bundle.n_items), np.nan)
        observed[:, self.columns] = self.scores
        return pirt_of(self.bundle.items.prob(theta), observed, self.bundle.item_weights)

    @functools.cached_property
    def merge_weights(self) -> np.ndarray | None:
        """lambda (models x J): theta_merge = sum_j lambda_j theta_j, fit on the anchors by MAP."""
        if self.endpoint_theta is None:
            return None
        return fit_merge_weights(self.anchor_items, self.scores, self.endpoint_theta)

    @functools.cached_property
    def theta_merge(self) -> np.ndarray | None:
        if self.merge_weights is None:
            return None
        return np.einsum("mj,mjd->md", self.merge_weights, self.endpoint_theta)


def pirt_of(prob: np.ndarray, observed: np.ndarray, item_weights: np.ndarray | None = None) -> np.ndarray:
    """p-IRT of models over a whole split: the items they answered as observed (`observed`, models x N,
    NaN where not asked), the rest predicted (`prob`, models x N, at their abilities), each part weighted
    by its share of the split. With item weights w (an imported bundle's subject balance, mean 1), both
    parts are means of w * score, as tinyBenchmarks computes them."""
    unseen = np.isnan(observed)
    n_seen = (~unseen).sum(axis=1)
    lam = n_seen / observed.shape[1]
    if item_weights is not None:
        prob = prob * item_weights[None, :]
        observed = observed * item_weights[None, :]
    # a model that answered nothing has only the predicted part
    seen_mean = np.where(unseen, 0.0, observed).sum(axis=1) / np.maximum(n_seen, 1)
    predicted = (prob * unseen).sum(axis=1) / np.maximum(unseen.sum(axis=1), 1)
    return lam * seen_mean + (1 - lam) * predicted


def fit_merge_weights(items: ItemParams, scores: np.ndarray, endpoint_theta: np.ndarray,
                      sd: float = MERGE_WEIGHT_SD, max_iter: int = 100) -> np.ndarray:
    """MAP merge weights of each model's endpoints from its anchor answers (models x J)."""
    n_models, n_end, dims = endpoint_theta.shape
    if dims != items.dims:
        raise ValueError(f"endpoint abilities have {dims} dimensions, the item parameters {items.dims}")
    seen = ~np.isnan(scores)
    y = torch.from_numpy(np.where(seen, scores, 0.0))
    mask = torch.from_numpy(seen.astype(np.float64))
    ends = torch.from_numpy(endpoint_theta)
    alpha, beta = torch.from_numpy(items.alpha), torch.from_numpy(items.beta)
    prior = 1.0 / n_end
    lam = torch.full((n_models, n_end), prior, dtype=torch.float64, requires_grad=True)

    def loss():
        theta = torch.einsum("mj,mjd->md", lam, ends)
        logits = theta @ alpha.T - beta
        nll = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return (nll * mask).sum() + 0.5 * ((lam - prior) ** 2).sum() / sd ** 2

    lbfgs([lam], loss, max_iter)
    return lam.detach().numpy().copy()


def estimate(bundle: Bundle, anchor_scores: np.ndarray, endpoint_theta: np.ndarray | None = None,
             names: list[str] | None = None, anchors: Anchors | None = None,
             estimators: dict[str, Estimator] | None = None) -> dict[str, np.ndarray]:
    """{estimator name: estimates per model}, each in [0, 1]; estimators that do not apply are left out."""
    available = estimators if estimators is not None else registry("estimator")
    if names is not None:
        unknown = [n for n in names if n not in available]
        if unknown:
            raise UserError(unknown_name("estimator", unknown[0], available))
        available = {n: available[n] for n in names}

    anchors, anchor_scores = narrow(anchors or bundle.require_anchors(), anchor_scores)  # a rung, if answered so
    state = Estimation(bundle, anchor_scores, endpoint_theta, anchors)
    out = {}
    for name, estimator in available.items():
        values = estimator(state)
        if values is not None:
            out[name] = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return out


def narrow(anchors: Anchors, scores: np.ndarray) -> tuple[Anchors, np.ndarray]:
    """The rung to estimate `scores` (models x anchors, NaN unanswered) with: the one whose anchors are
    exactly the ones every model answered, if any; else the full set."""
    answered = ~np.isnan(np.atleast_2d(scores))
    for rung in anchors.rungs:
        k = rung.size
        if answered[:, :k].all() and not answered[:, k:].any():
            return rung, np.atleast_2d(scores)[:, :k]
    return anchors, scores


def anchor_scores_of(bundle: Bundle, doc_ids: list[int], scores: np.ndarray, anchors: Anchors | None = None) -> np.ndarray:
    """Reorder a models x items score matrix keyed by doc_ids into the anchors' order (NaN if absent)."""
    anchors = anchors or bundle.require_anchors()
    position = {d: j for j, d in enumerate(doc_ids)}
    scores = np.atleast_2d(scores)
    out = np.full((scores.shape[0], anchors.size), np.nan)
    for k, doc_id in enumerate(anchors.doc_ids):
        j = position.get(doc_id)
        if j is not None:
            out[:, k] = scores[:, j]
    return out


# -- calibration on validation models -----------------------------------------------------------
# Both weights follow tinyBenchmarks' rule for mixing an unbiased but noisy estimate (the anchor
# mean, variance s^2) with a biased but steady one (an IRT prediction, mean squared error b^2 on
# models the items were not fit on): weight on the anchor mean = b^2 / (b^2 + s^2). Estimation
# reads only the anchors' items and weights, so the uncalibrated anchors serve as they are.
def calibrate(bundle: Bundle, anchors: Anchors) -> Anchors:
    """Anchors with lambda* (gp-IRT) and delta (gmp-IRT) learned on the bundle's validation models,
    and the record of both (`Anchors.calibration`)."""
    lam, anchor_variance, record = gpirt_lambda(bundle, anchors)
    delta, merge_record = gmpirt_delta(bundle, anchors, anchor_variance, fallback=lam)
    return Anchors(anchors.method, anchors.seed, list(anchors.doc_ids), anchors.weights,
                   float(np.clip(lam, 0, 1)), float(np.clip(delta, 0, 1)), {**record, **merge_record})


def mixing_weight(bias2: float, variance: float) -> float:
    """tinyBenchmarks' weight on the anchor mean: b^2 / (b^2 + s^2); 0.5 when both vanish."""
    return bias2 / (bias2 + variance) if bias2 + variance > 0 else 0.5


def gpirt_lambda(bundle: Bundle, anchors: Anchors) -> tuple[float, float, dict]:
    """gp-IRT's lambda* from the validation models: (lambda*, s^2, record). s^2 is the mean over
    them of sum_i w_i^2 P_i (1 - P_i), the anchor mean's variance under the IRT model; b^2 is
    p-IRT's mean squared error on them."""
    val = bundle.split_index("validation")
    if len(val) == 0:
        raise UserError("the bundle has no validation models; refit with more models")
    truth = np.nanmean(bundle.scores, axis=1)[val]
    state = Estimation(bundle, bundle.scores[np.ix_(val, bundle.columns(anchors.doc_ids))], anchors=anchors)
    prob = state.anchor_items.prob(state.theta)
    s2 = float(np.mean((anchors.weights[None, :] ** 2 * prob * (1 - prob)).sum(axis=1)))
    pirt = np.clip(state.pirt_at(state.theta), 0, 1)
    b2 = float(np.mean((pirt - truth) ** 2))
    record = {"validation_models": int(len(val)), "pirt_mse": b2, "anchor_variance": s2,
              "anchor_mae": float(np.mean(np.abs(state.anchor_mean - truth))),
              "pirt_mae": float(np.mean(np.abs(pirt - truth)))}
    return mixing_weight(b2, s2), s2, record


def gmpirt_delta(bundle: Bundle, anchors: Anchors, anchor_variance: float, fallback: float) -> tuple[float, dict]:
    """gmp-IRT's delta: (delta, record). b^2 is mp-IRT's mean squared error on merges whose
    endpoints are known (from the bundle's lineage); without any, delta is `fallback` (lambda*)."""
    merges, source = calibration_merges(bundle)
    if not merges:
        return fallback, {"delta_source": "no merges with known endpoints among the fit models: delta = lambda*"}
    errors = mpirt_errors(bundle, anchors, merges)
    bm2 = float(np.mean(np.square(errors)))
    record = {"merges": len(errors), "merges_from": source, "mpirt_mse": bm2,
              "mpirt_mae": float(np.mean(np.abs(errors))),
              "delta_source": "mp-IRT error on merges with known endpoints"}
    return mixing_weight(bm2, anchor_variance), record


def calibration_merges(bundle: Bundle) -> tuple[list[tuple[int, list[int]]], str]:
    """The merges delta is learned on, as (row, endpoint rows), and where they come from: the
    validation merges, or all known merges (their items were in the fit: in-sample) if none."""
    merges = [(i, [bundle.models.index(e) for e in bundle.lineage[name]])
              for i, name in enumerate(bundle.models)
              if name in bundle.lineage and all(e in bundle.models for e in bundle.lineage[name])]
    in_validation = [m for m in merges if bundle.splits[m[0]] == "validation"]
    return (in_validation, "validation") if in_validation else (merges, "train (in-sample)")


def mpirt_errors(bundle: Bundle, anchors: Anchors, merges: list[tuple[int, list[int]]]) -> list[float]:
    """mp-IRT's error (estimate - full-benchmark accuracy) on each merge, from its anchor answers."""
    columns = bundle.columns(anchors.doc_ids)
    truth = np.nanmean(bundle.scores, axis=1)
    errors = []
    for group in group_by_endpoint_count(merges, lambda merge: len(merge[1])):
        rows = np.array([m for m, _ in group])
        ends = np.stack([bundle.theta[e] for _, e in group])
        state = Estimation(bundle, bundle.scores[np.ix_(rows, columns)], ends, anchors=anchors)
        errors.extend((np.clip(state.pirt_at(state.theta_merge), 0, 1) - truth[rows]).tolist())
    return errors


def group_by_endpoint_count(merges: list, count_of) -> list[list]:
    """Merges grouped by how many endpoints each has (`count_of(merge)`): mp-IRT stacks the endpoints'
    abilities into one array per batch, so a batch needs one count."""
    groups: dict[int, list] = {}
    for merge in merges:
        groups.setdefault(count_of(merge), []).append(merge)
    return list(groups.values())
