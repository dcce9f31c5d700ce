"""Nested anchor rungs for multi-fidelity search: the first k anchors are an anchor set of their own.

Racing candidates through rungs of anchors (e.g. 5 -> 10 -> 20 items) only pays if a low rung is
cheap *and* still calibrated. So the extractor's anchors are put in a greedy coverage order: in the
items' IRT parameter space (each item's discriminations and difficulty, standardised), each next
anchor is the one that most shortens the items' distances to their nearest chosen anchor (greedy
facility location, whose every prefix is within 1 - 1/e of the best cover of its size). Each rung
then gets its own weights (the share of all items nearest each of its anchors, as anchor-irt
weights its clusters) and its own lambda* and delta, learned on the validation models like the
full set's. The full set keeps the extractor's weights and calibration.

A model that answered exactly the first k anchors, k a rung's size, is estimated with that rung
(`estimation.narrow`); any other pattern of answers uses the full set, as before.
"""

from __future__ import annotations

import numpy as np

from .bundle import Anchors, Bundle
from .errors import UserError


def item_embedding(bundle: Bundle) -> np.ndarray:
    """Each item as its IRT parameters (discriminations, difficulty), each column standardised."""
    points = np.column_stack([bundle.items.alpha, bundle.items.beta])
    spread = points.std(axis=0)
    return (points - points.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def coverage_order(embedding: np.ndarray, candidates: np.ndarray, count: int) -> list[int]:
    """`count` of the candidate item positions, greedily, each the one that most lowers the summed
    distance of every item to its nearest chosen one."""
    distance = np.linalg.norm(embedding[:, None, :] - embedding[None, candidates, :], axis=2)  # items x candidates
    nearest = np.full(len(embedding), np.inf)
    chosen: list[int] = []
    for _ in range(count):
        totals = np.minimum(nearest[:, None], distance).sum(axis=0)
        totals[chosen] = np.inf
        best = int(np.argmin(totals))
        chosen.append(best)
        nearest = np.minimum(nearest, distance[:, best])
    return chosen


def cover_weights(embedding: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The share of all items nearest each anchor (ties to the first): weights summing to 1."""
    distance = np.linalg.norm(embedding[:, None, :] - embedding[None, positions, :], axis=2)
    counts = np.bincount(distance.argmin(axis=1), minlength=len(positions)).astype(np.float64)
    return counts / counts.sum()


def with_rungs(bundle: Bundle, anchors: Anchors, sizes: list[int]) -> Anchors:
    """`anchors` reordered so that its first k items, for each k in `sizes`, make a rung (own weights
    and calibration); the full set is the last rung and keeps what it had."""
    from .estimation import calibrate

    sizes = sorted(set(int(k) for k in sizes))
    if not sizes or sizes[0] < 1 or sizes[-1] >= anchors.size:
        raise UserError(f"rungs {sizes}: each a number of anchors from 1 to {anchors.size - 1} (the full "
                        f"{anchors.size} anchors are the last rung)", param="rungs")
    embedding = item_embedding(bundle)
    positions = bundle.columns(anchors.doc_ids)
    first = coverage_order(embedding, positions, sizes[-1])
    order = first + [i for i in range(anchors.size) if i not in set(first)]
    doc_ids = [anchors.doc_ids[i] for i in order]
    rungs = []
    for k in sizes:
        rung = Anchors(anchors.method, anchors.seed, doc_ids[:k], cover_weights(embedding, positions[order[:k]]),
                       0.0, 0.0)
        rungs.append(calibrate(bundle, rung))
    return Anchors(anchors.method, anchors.seed, doc_ids, anchors.weights[order], anchors.lambda_gpirt,
                   anchors.delta_gmpirt, anchors.calibration, rungs)
