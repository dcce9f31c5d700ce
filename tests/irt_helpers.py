"""Synthetic populations for the IRT tests: response matrices drawn from known 2PL parameters."""

from __future__ import annotations

import numpy as np

from merge3_plugin.irt import ItemParams, simulate
from merge3_plugin.responses import ResponseMatrix


def synthetic_matrix(n_models: int, n_items: int, dims: int, seed: int = 0) -> tuple[ResponseMatrix, ItemParams, np.ndarray]:
    truth, theta, y = simulate(n_models, n_items, dims, seed=seed)
    matrix = ResponseMatrix("synthetic", "acc", "none", [f"model{i:03d}" for i in range(n_models)],
                            list(range(n_items)), [f"hash{i}" for i in range(n_items)], y)
    return matrix, truth, theta


def with_merges(n_models: int, n_items: int, dims: int, n_merges: int, seed: int = 0):
    """A population plus merged models whose ability is a mix of two endpoints' (MERGE3's assumption):
    (matrix of all, lineage merged -> endpoints, true item parameters)."""
    rng = np.random.default_rng(seed + 1)
    matrix, truth, theta = synthetic_matrix(n_models, n_items, dims, seed)
    merged_theta, lineage, names = [], {}, []
    for k in range(n_merges):
        a, b = rng.choice(n_models, 2, replace=False)
        lam = rng.uniform(0.3, 0.7)
        merged_theta.append(lam * theta[a] + (1 - lam) * theta[b])
        names.append(f"merge{k:03d}")
        lineage[names[-1]] = [matrix.models[a], matrix.models[b]]
    merged_theta = np.array(merged_theta)
    y = (rng.random((n_merges, n_items)) < truth.prob(merged_theta)).astype(float)
    full = ResponseMatrix("synthetic", "acc", "none", matrix.models + names, matrix.doc_ids, matrix.doc_hashes,
                          np.vstack([matrix.scores, y]))
    return full, lineage, truth
