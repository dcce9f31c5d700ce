"""lm-eval logs read against a bundle: the items checked by doc_hash, endpoints' abilities fit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .bundle import Bundle
from .errors import UserError
from .irt import fit_ability
from .responses import NoSamples, ResponseMatrix, load_responses


def responses_for_bundle(bundle: Bundle, paths: list[Path], merge3_task: str | None = None) -> ResponseMatrix:
    """Samples of the bundle's task, checked item by item against the bundle's doc hashes. Logs of
    its merge3 task (`merge3_task`, by default `merge3_<task>`: the anchors only, numbered from 0)
    count too, their items matched to the bundle's by doc_hash; a model with both keeps the full
    task's answers."""
    if bundle.content_keyed:
        raise UserError(f"the {bundle.task} bundle is imported ({bundle.item_order} item order, anchors matched by "
                        "content): reading lm-eval logs against it is not supported yet; its estimates are the "
                        f"metrics of its merge3 task (lm_eval --tasks merge3_{bundle.task} ...)")
    reduced = merge3_task or f"merge3_{bundle.task}"
    found = []
    for task in (bundle.task, reduced):
        try:
            matrix = load_responses(paths, task, bundle.metric, bundle.filter,
                                    others_ok=(reduced,) if task == bundle.task else (bundle.task,))
        except NoSamples:
            continue
        found.append(matrix if task == bundle.task else _numbered_as_in(bundle, matrix))
    if not found:
        raise UserError(f"no samples_{bundle.task}_<date>.jsonl nor samples_{reduced}_<date>.jsonl under "
                        f"{', '.join(map(str, paths))} (run lm_eval with --log_samples --output_path; a merge3 "
                        "task of another name: --task NAME)")
    matrix = found[0] if len(found) == 1 else _combined(*found)
    known = dict(zip(bundle.doc_ids, bundle.doc_hashes))
    for doc_id, doc_hash in zip(matrix.doc_ids, matrix.doc_hashes):
        if doc_id not in known:
            raise UserError(f"doc_id {doc_id} of {bundle.task} in {', '.join(matrix.sources.values())} is not in "
                            "the bundle (another dataset?)")
        if known[doc_id] != doc_hash:
            raise UserError(f"doc_id {doc_id} of {bundle.task}: the samples ({', '.join(matrix.sources.values())}) "
                            "and the bundle disagree on the document (another task version or order)")
    return matrix


def _numbered_as_in(bundle: Bundle, matrix: ResponseMatrix) -> ResponseMatrix:
    """A merge3 task's responses with the bundle's doc ids (found by doc_hash) instead of anchor positions."""
    doc_id_of = dict(zip(bundle.doc_hashes, bundle.doc_ids))
    unknown = [h for h in matrix.doc_hashes if h not in doc_id_of]
    if unknown:
        raise UserError(f"{', '.join(matrix.sources.values())}: {len(unknown)} document(s) of {matrix.task} are not "
                        f"items of the {bundle.task} bundle (a merge3 task of another bundle?)")
    ids = [doc_id_of[h] for h in matrix.doc_hashes]
    order = np.argsort(ids, kind="stable")
    return replace(matrix, task=bundle.task, doc_ids=[ids[j] for j in order],
                   doc_hashes=[matrix.doc_hashes[j] for j in order], scores=matrix.scores[:, order])


def _combined(full: ResponseMatrix, reduced: ResponseMatrix) -> ResponseMatrix:
    """One matrix over both logs' models and items; where a model answered an item in both, the
    full task's answer stands."""
    models = sorted(set(full.models) | set(reduced.models))
    hash_of = dict(zip(reduced.doc_ids, reduced.doc_hashes)) | dict(zip(full.doc_ids, full.doc_hashes))
    doc_ids = sorted(hash_of)
    column = {d: j for j, d in enumerate(doc_ids)}
    scores = np.full((len(models), len(doc_ids)), np.nan)
    for matrix in (reduced, full):  # full last: it overwrites
        rows = [models.index(m) for m in matrix.models]
        cols = [column[d] for d in matrix.doc_ids]
        answered = ~np.isnan(matrix.scores)
        block = scores[np.ix_(rows, cols)]
        scores[np.ix_(rows, cols)] = np.where(answered, matrix.scores, block)
    sources = {m: "; ".join(x.sources[m] for x in (full, reduced) if m in x.sources) for m in models}
    return replace(full, models=models, doc_ids=doc_ids, doc_hashes=[hash_of[d] for d in doc_ids], scores=scores,
                   sources=sources)


def endpoint_abilities(bundle: Bundle, paths: list[Path]) -> tuple[list[str], np.ndarray]:
    """(model names, abilities) of the models in `paths`, fit on every bundle item their logs hold."""
    return abilities_of(bundle, responses_for_bundle(bundle, paths))


def abilities_of(bundle: Bundle, matrix: ResponseMatrix) -> tuple[list[str], np.ndarray]:
    """(model names, abilities) of a checked response matrix, under the population's prior."""
    full = np.full((len(matrix.models), bundle.n_items), np.nan)
    full[:, bundle.columns(matrix.doc_ids)] = matrix.scores
    mean, cov = bundle.ability_prior()
    return matrix.models, fit_ability(bundle.items, full, prior_mean=mean, prior_cov=cov)
