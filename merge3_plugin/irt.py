"""Multidimensional two-parameter logistic IRT, fitted by batched MAP with torch.

    P(y_il = 1) = sigmoid(alpha_i . theta_l - beta_i),   theta_l in R^d

Item parameters (alpha, beta) come from a population of models' responses; a new model's theta
is then fitted on whatever items it answered. Priors keep every estimate finite (all-correct
and all-wrong patterns included) and the fit robust to missing cells: theta ~ N(0, I),
alpha ~ N(0, s_a^2), beta ~ N(0, s_b^2). Graded scores in [0, 1] enter the likelihood as soft
labels. Full-batch L-BFGS in float64 on one thread: deterministic for a seed.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ItemParams:
    alpha: np.ndarray  # items x d discriminations
    beta: np.ndarray  # items difficulties

    @property
    def dims(self) -> int:
        return self.alpha.shape[1]

    def prob(self, theta: np.ndarray) -> np.ndarray:
        """P(correct) for abilities theta (models x d or d): models x items (or items)."""
        return 1.0 / (1.0 + np.exp(-(theta @ self.alpha.T - self.beta)))

    def subset(self, index: np.ndarray) -> "ItemParams":
        return ItemParams(self.alpha[index], self.beta[index])


def simulate(n_models: int, n_items: int, dims: int, seed: int = 0) -> tuple[ItemParams, np.ndarray, np.ndarray]:
    """Responses drawn from known parameters, for recovery tests and benchmarks:
    (true item parameters, true abilities, 0/1 responses models x items)."""
    rng = np.random.default_rng(seed)
    truth = ItemParams(np.abs(rng.normal(1.0, 0.4, (n_items, dims))), rng.normal(0.0, 1.2, n_items))
    theta = rng.normal(0.0, 1.0, (n_models, dims))
    return truth, theta, (rng.random((n_models, n_items)) < truth.prob(theta)).astype(float)


@dataclass(frozen=True)
class Priors:
    theta_sd: float = 1.0
    alpha_sd: float = 1.0
    beta_sd: float = 3.0


def _nll(logits: torch.Tensor, y: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    # soft-label binary cross-entropy over observed cells only
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return (loss * seen).sum()


def _as_tensors(responses: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    scores = np.asarray(responses, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"responses must be models x items, got shape {scores.shape}")
    seen = ~np.isnan(scores)
    if np.any((scores[seen] < 0) | (scores[seen] > 1)):
        raise ValueError("responses must be scores in [0, 1] (NaN for missing)")
    return torch.from_numpy(np.where(seen, scores, 0.0)), torch.from_numpy(seen.astype(np.float64))


@contextmanager
def _one_thread():
    """One torch thread while fitting: reductions in a fixed order, the same answer every run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def lbfgs(params: list[torch.Tensor], closure_loss, max_iter: int) -> None:
    """Minimise `closure_loss()` over `params` in place (the settings every IRT fit here shares)."""
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, tolerance_grad=1e-7, tolerance_change=1e-10,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = closure_loss()
        loss.backward()
        return loss

    opt.step(closure)


def fit_items(responses: np.ndarray, dims: int = 1, seed: int = 0, priors: Priors = Priors(),
              max_iter: int = 500) -> tuple[ItemParams, np.ndarray]:
    """Joint MAP of item parameters and the population's abilities: (ItemParams, thetas)."""
    if not 1 <= dims <= 15:
        raise ValueError(f"dims must be in 1..15, got {dims}")
    y, seen = _as_tensors(responses)
    n_models, n_items = y.shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # start from small random abilities; difficulties from the items' observed logits
        theta = (0.1 * torch.randn(n_models, dims, dtype=torch.float64)).requires_grad_()
        alpha = (0.5 + 0.1 * torch.randn(n_items, dims, dtype=torch.float64)).requires_grad_()
    p = ((y * seen).sum(0) + 0.5) / (seen.sum(0) + 1.0)
    beta = (-torch.log(p / (1 - p))).clone().requires_grad_()

    def loss():
        logits = theta @ alpha.T - beta
        return (_nll(logits, y, seen)
                + 0.5 * (theta ** 2).sum() / priors.theta_sd ** 2
                + 0.5 * (alpha ** 2).sum() / priors.alpha_sd ** 2
                + 0.5 * (beta ** 2).sum() / priors.beta_sd ** 2)

    with _one_thread():
        lbfgs([theta, alpha, beta], loss, max_iter)
    items = ItemParams(alpha.detach().numpy().copy(), beta.detach().numpy().copy())
    return _orient(items, theta.detach().numpy().copy())


def fit_items_at(theta: np.ndarray, responses: np.ndarray, priors: Priors = Priors(),
                 max_iter: int = 500) -> ItemParams:
    """MAP item parameters given the models' abilities (models x d, fixed): one logistic regression per
    item, e.g. the binary channel of abilities measured on graded responses (graded.py)."""
    y, seen = _as_tensors(responses)
    th = torch.from_numpy(np.asarray(theta, dtype=np.float64))
    alpha = torch.full((y.shape[1], th.shape[1]), 0.5, dtype=torch.float64).requires_grad_()
    p = ((y * seen).sum(0) + 0.5) / (seen.sum(0) + 1.0)
    beta = (-torch.log(p / (1 - p))).clone().requires_grad_()

    def loss():
        return (_nll(th @ alpha.T - beta, y, seen) + 0.5 * (alpha ** 2).sum() / priors.alpha_sd ** 2
                + 0.5 * (beta ** 2).sum() / priors.beta_sd ** 2)

    with _one_thread():
        lbfgs([alpha, beta], loss, max_iter)
    return ItemParams(alpha.detach().numpy().copy(), beta.detach().numpy().copy())


def _orient(items: ItemParams, theta: np.ndarray) -> tuple[ItemParams, np.ndarray]:
    """The likelihood is unchanged by flipping a dimension's sign; choose the sign under which
    discriminations are mostly positive (higher ability, more correct answers)."""
    sign = np.where(items.alpha.sum(0) < 0, -1.0, 1.0)
    return ItemParams(items.alpha * sign, items.beta), theta * sign


def fit_ability(items: ItemParams, responses: np.ndarray, priors: Priors = Priors(), max_iter: int = 100,
                prior_mean: np.ndarray | None = None, prior_cov: np.ndarray | None = None) -> np.ndarray:
    """MAP abilities (models x d) of models that answered some items (NaN elsewhere), item
    parameters fixed. Finite for all-correct and all-wrong patterns, thanks to the prior:
    N(0, theta_sd^2 I), or N(prior_mean, prior_cov) (e.g. the population's abilities; `prior_mean` may
    also be one row per model, e.g. a merge's endpoints' mean)."""
    y, seen = _as_tensors(np.atleast_2d(responses))
    if y.shape[1] != items.alpha.shape[0]:
        raise ValueError(f"responses have {y.shape[1]} items, the item parameters {items.alpha.shape[0]}")
    alpha = torch.from_numpy(items.alpha)
    beta = torch.from_numpy(items.beta)
    mean = torch.zeros(items.dims, dtype=torch.float64) if prior_mean is None else torch.from_numpy(np.asarray(prior_mean, dtype=np.float64))
    precision = (torch.eye(items.dims, dtype=torch.float64) / priors.theta_sd ** 2 if prior_cov is None
                 else torch.linalg.inv(torch.from_numpy(np.asarray(prior_cov, dtype=np.float64))))
    theta = (mean.clone() if mean.dim() == 2 else mean.repeat(y.shape[0], 1)).requires_grad_()

    def loss():
        centred = theta - mean
        return _nll(theta @ alpha.T - beta, y, seen) + 0.5 * ((centred @ precision) * centred).sum()

    lbfgs([theta], loss, max_iter)
    return theta.detach().numpy().copy()


def population_prior(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a population's abilities (models x d): the empirical-Bayes prior for
    a new model's ability. The covariance is shrunk toward the identity by d pseudo-models, so a
    small population cannot make it singular."""
    n, d = theta.shape
    centred = theta - theta.mean(axis=0)
    cov = (centred.T @ centred + d * np.eye(d)) / (n + d)
    return theta.mean(axis=0), cov


def fit_items_girth(responses: np.ndarray) -> tuple[ItemParams, np.ndarray]:
    """Unidimensional 2PL by girth's joint maximum likelihood (`twopl_jml`), the reference backend.

    girth takes items x models 0/1 integers (missing = girth.INVALID_RESPONSE) and parametrises
    P = sigmoid(a (theta - b)); here that is alpha = a, beta = a * b.
    """
    import girth

    scores = np.asarray(responses, dtype=np.float64)
    seen = ~np.isnan(scores)
    if np.any((scores[seen] != 0) & (scores[seen] != 1)):
        raise ValueError("the girth backend takes 0/1 scores only; use the torch backend for graded scores")
    data = np.where(seen, scores, girth.INVALID_RESPONSE).astype(int).T
    with np.errstate(all="ignore"):
        fit = girth.twopl_jml(data)
    a = np.asarray(fit["Discrimination"], dtype=np.float64)
    b = np.asarray(fit["Difficulty"], dtype=np.float64)
    items = ItemParams(a[:, None].copy(), a * b)
    # girth reports abilities only for some versions; refit them under our prior either way
    return items, fit_ability(items, scores)
