"""lm-eval logs read against a bundle: the items checked by doc_hash, endpoints' abilities fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .bundle import Bundle
from .errors import UserError
from .irt import fit_ability
from .responses import ResponseMatrix, load_responses


def responses_for_bundle(bundle: Bundle, paths: list[Path]) -> ResponseMatrix:
    """Samples of the bundle's task, checked item by item against the bundle's doc hashes."""
    matrix = load_responses(paths, bundle.task, bundle.metric, bundle.filter)
    known = dict(zip(bundle.doc_ids, bundle.doc_hashes))
    for doc_id, doc_hash in zip(matrix.doc_ids, matrix.doc_hashes):
        if doc_id not in known:
            raise UserError(f"doc_id {doc_id} of {bundle.task} in {', '.join(matrix.sources.values())} is not in "
                            "the bundle (another dataset?)")
        if known[doc_id] != doc_hash:
            raise UserError(f"doc_id {doc_id} of {bundle.task}: the samples ({', '.join(matrix.sources.values())}) "
                            "and the bundle disagree on the document (another task version or order)")
    return matrix


def endpoint_abilities(bundle: Bundle, paths: list[Path]) -> tuple[list[str], np.ndarray]:
    """(model names, abilities) of the models in `paths`, fit on every bundle item their logs hold."""
    return abilities_of(bundle, responses_for_bundle(bundle, paths))


def abilities_of(bundle: Bundle, matrix: ResponseMatrix) -> tuple[list[str], np.ndarray]:
    """(model names, abilities) of a checked response matrix, under the population's prior."""
    full = np.full((len(matrix.models), bundle.n_items), np.nan)
    full[:, bundle.columns(matrix.doc_ids)] = matrix.scores
    mean, cov = bundle.ability_prior()
    return matrix.models, fit_ability(bundle.items, full, prior_mean=mean, prior_cov=cov)
