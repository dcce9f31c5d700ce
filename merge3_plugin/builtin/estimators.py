"""The built-in estimators, registered through the `merge3_estimators` hook like any plugin's.

Each takes an `Estimation` (a batch of models' anchor answers) and returns one estimate per model,
or None where it does not apply. A third-party estimator has the same shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..contracts import AdaptiveEstimator, FunctionEstimator
from ..hookspecs import hookimpl

if TYPE_CHECKING:  # registering the plugin must not import torch
    import numpy as np

    from ..estimation import Estimation


def anchor(state: Estimation) -> np.ndarray:
    """Weighted mean of the anchor scores (weights from extraction, e.g. cluster mass)."""
    return state.anchor_mean


def pirt(state: Estimation) -> np.ndarray:
    """p-IRT: answered items as observed, the others predicted from the ability fit on the anchors."""
    return state.pirt_at(state.theta)


def gpirt(state: Estimation) -> np.ndarray:
    """gp-IRT: anchor mean and p-IRT mixed by lambda*, learned on validation models."""
    lam = state.anchors.lambda_gpirt
    return lam * state.anchor_mean + (1 - lam) * pirt(state)


def mpirt(state: Estimation) -> np.ndarray | None:
    """mp-IRT: p-IRT at theta_merge = sum_j lambda_j theta_j (endpoint abilities fixed)."""
    if state.theta_merge is None:
        return None
    return state.pirt_at(state.theta_merge)


def gmpirt(state: Estimation) -> np.ndarray | None:
    """gmp-IRT: anchor mean and mp-IRT mixed by delta, learned on validation data."""
    merged = mpirt(state)
    if merged is None:
        return None
    delta = state.anchors.delta_gmpirt
    return delta * state.anchor_mean + (1 - delta) * merged


@hookimpl
def merge3_estimators():
    # the order is the one tables and lm-eval metrics list them in
    return {"anchor": FunctionEstimator(anchor), "pirt": FunctionEstimator(pirt), "gpirt": FunctionEstimator(gpirt),
            "mpirt": FunctionEstimator(mpirt, needs_endpoints=True),
            "gmpirt": FunctionEstimator(gmpirt, needs_endpoints=True),
            # asked per candidate in the evolve loop, not on fixed anchors (contracts.AdaptiveEstimator)
            "adaptive": AdaptiveEstimator("information"), "adaptive-accuracy": AdaptiveEstimator("accuracy")}
