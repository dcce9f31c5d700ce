"""Choose anchor items with an extractor plugin, then calibrate the estimators for them."""

from __future__ import annotations

import numpy as np

from .bundle import Anchors, Bundle
from .errors import UserError
from .estimation import calibrate
from .plugins import lookup


def extract(bundle: Bundle, size: int, method: str = "anchor-irt", seed: int = 0,
            rungs: list[int] | None = None) -> Bundle:
    """A copy of `bundle` with `size` anchors chosen by `method` and lambda*/delta learned for them;
    with `rungs` (sizes below `size`), ordered so that the first k of them are a calibrated anchor set
    of their own for each k (rungs.py)."""
    if not 1 <= size <= bundle.n_items:
        raise UserError(f"{size} anchors asked of {bundle.task}, which has {bundle.n_items} items", param="size")
    bundle.require_scores()
    extractor = lookup("extractor", method)
    positions, weights = extractor(bundle, size, np.random.default_rng(seed))
    positions = np.asarray(positions, dtype=int)
    weights = np.asarray(weights, dtype=np.float64)
    if (len(positions) != size or len(set(positions.tolist())) != size or positions.min() < 0
            or positions.max() >= bundle.n_items or weights.shape != (size,) or np.any(weights < 0)
            or not np.isclose(weights.sum(), 1.0)):
        raise UserError(f"extractor {method!r} returned an invalid choice: it must give {size} distinct item "
                        "positions and non-negative weights summing to 1")
    anchors = Anchors(method=method, seed=seed, doc_ids=[bundle.doc_ids[i] for i in positions],
                      weights=weights, lambda_gpirt=0.0, delta_gmpirt=0.0)
    anchors = calibrate(bundle, anchors)
    if rungs:
        from .rungs import with_rungs

        anchors = with_rungs(bundle, anchors, rungs)
    return bundle.with_anchors(anchors)
