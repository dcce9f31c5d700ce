"""The built-in anchor extractors, registered through the `merge3_anchor_extractors` hook.

An extractor is called as ``extractor(bundle, size, rng)`` and returns ``(item positions, weights)``:
`size` distinct positions into the bundle's items and non-negative weights summing to 1. It sees
only the training models (the validation models calibrate the estimators afterwards).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from ..hookspecs import hookimpl

if TYPE_CHECKING:  # registering the plugin must not import torch
    from ..bundle import Bundle


def random_subset(bundle: Bundle, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random items, equal weights (what Mergenetic does)."""
    chosen = np.sort(rng.choice(bundle.n_items, size=size, replace=False))
    return chosen, np.full(size, 1.0 / size)


def stratified(bundle: Bundle, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random item from each of `size` equal strata of difficulty (beta); weight = stratum share."""
    order = np.argsort(bundle.items.beta, kind="stable")
    strata = np.array_split(order, size)
    chosen = np.array([rng.choice(stratum) for stratum in strata])
    weights = np.array([len(s) for s in strata], dtype=float)
    return chosen, weights / weights.sum()


def anchor_irt(bundle: Bundle, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """tinyBenchmarks' anchor points over IRT item embeddings (alpha_i, beta_i)."""
    return _kmeans_anchors(np.column_stack([bundle.items.alpha, bundle.items.beta]), size, rng)


def anchor_correctness(bundle: Bundle, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """tinyBenchmarks' anchor points over the items' correctness vectors across training models."""
    train = bundle.scores[bundle.split_index("train")]
    # a missing answer counts as the item's mean over the models that answered it
    filled = np.where(np.isnan(train), np.nanmean(train, axis=0, keepdims=True), train)
    return _kmeans_anchors(np.nan_to_num(filled.T, nan=0.5), size, rng)


def _kmeans_anchors(embedding: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k-means with k = size; each cluster's anchor is the item nearest its centroid, weighted by
    the cluster's share of items. Duplicate points can leave clusters that share an anchor: those
    are merged, and the remaining slots go to the next-nearest unused items of the largest clusters."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    n_items = embedding.shape[0]
    with warnings.catch_warnings():  # fewer distinct points than clusters is handled below
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=size, n_init=5, random_state=int(rng.integers(2**31 - 1))).fit(embedding)
    distance = ((embedding[:, None, :] - km.cluster_centers_[None, :, :]) ** 2).sum(-1)  # items x k
    chosen: list[int] = []
    weights: list[float] = []
    for k in range(size):
        members = np.flatnonzero(km.labels_ == k)
        if len(members) == 0:
            continue
        nearest = int(members[np.argmin(distance[members, k])])
        if nearest in chosen:
            weights[chosen.index(nearest)] += len(members)
            continue
        chosen.append(nearest)
        weights.append(float(len(members)))
    # fill up (rare: identical items) with unused items, split from their cluster's anchor
    spare = [i for i in np.argsort(distance.min(axis=1)) if i not in set(chosen)]
    while len(chosen) < size and spare:
        item = int(spare.pop(0))
        chosen.append(item)
        weights.append(0.0)
        biggest = int(np.argmax(weights))
        weights[biggest], weights[-1] = weights[biggest] / 2, weights[biggest] / 2
    order = np.argsort(chosen)
    w = np.asarray(weights)[order]
    assert len(chosen) == size <= n_items
    return np.asarray(chosen)[order], w / w.sum()


@hookimpl
def merge3_anchor_extractors():
    return {"random": random_subset, "stratified": stratified,
            "anchor-irt": anchor_irt, "anchor-correctness": anchor_correctness}
