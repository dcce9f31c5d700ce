"""lm-eval logs read against a bundle: the items checked by doc_hash, endpoints' abilities fit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .bundle import Bundle
from .errors import UserError
from .irt import fit_ability
from .responses import NoSamples, ResponseMatrix, load_responses


def responses_for_bundle(bundle: Bundle, paths: list[Path], merge3_task: str | None = None,
                         bundle_path: Path | None = None) -> ResponseMatrix:
    """Samples of the bundle's task, checked item by item against the bundle's doc hashes. Logs of
    its merge3 task (`merge3_task`, by default `merge3_<task>`: the anchors only, numbered from 0)
    count too, their items matched to the bundle's by doc_hash; a model with both keeps the full
    task's answers. An imported bundle (`bundle_path` given): its merge3 task's logs, each anchor found
    by the doc_hash its lock file pinned (anchor_lock.py)."""
    if bundle.content_keyed:
        if bundle_path is None:
            raise UserError(f"the {bundle.task} bundle is imported ({bundle.item_order} item order, anchors matched "
                            "by content): only its anchors can be read from logs, and this command needs every "
                            f"item; its estimates are the metrics of its merge3 task (lm_eval --tasks "
                            f"merge3_{bundle.task} ...), or `merge3 estimate` on that task's logs")
        return _through_lock(bundle, bundle_path, paths, merge3_task or f"merge3_{bundle.task}")
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


def _pinned(bundle: Bundle, bundle_path: Path) -> list[list[str]]:
    """Per base task the bundle's lock holds, its anchors' pinned doc_hashes in anchor order."""
    from . import anchor_lock

    bases = anchor_lock.read(bundle_path)["tasks"]
    pinned = [anchor_lock.locked(bundle, bundle_path, base).doc_hashes for base in bases]
    if not pinned:
        raise UserError(f"{bundle_path}: its anchors have not been matched to any task's documents yet (no entry "
                        f"in {anchor_lock.lock_path(bundle_path)}); run `merge3 tasks build --bundle {bundle_path} "
                        "--base-task TASK` or the merge3 task once, with the dataset available")
    return pinned


def _logs(bundle: Bundle, paths: list[Path], task: str, how: str) -> ResponseMatrix:
    """The logs of `task` under `paths` in the bundle's metric and filter; `how`: how to make them."""
    try:
        return load_responses(paths, task, bundle.metric, bundle.filter)
    except NoSamples:
        raise UserError(f"no samples_{task}_<date>.jsonl under {', '.join(map(str, paths))} ({how})") from None


def full_logs_through_lock(bundle: Bundle, bundle_path: Path, paths: list[Path],
                           task: str | None) -> tuple[ResponseMatrix, np.ndarray]:
    """Full logs of the base task of an imported bundle (every document, lm-eval's order) and, per model,
    its anchors' scores in anchor order, each anchor found by the doc_hash its lock pinned: what `merge3
    report` compares (the plain mean of every document is the truth)."""
    from . import anchor_lock

    if task is None:
        raise UserError(f"{bundle_path}: an imported bundle's items are numbered in another order; name the lm-eval "
                        "task whose full logs --samples holds with --task (e.g. arc_challenge)")
    pinned = _pinned(bundle, bundle_path)
    matrix = _logs(bundle, paths, task, "run lm_eval on the full task with --log_samples --output_path")
    column_of = {h: j for j, h in enumerate(matrix.doc_hashes)}
    # each anchor's column: its document in the first base task the lock holds whose document the logs have
    columns = [next((column_of[hashes[k]] for hashes in pinned if hashes[k] in column_of), None)
               for k in range(bundle.require_anchors().size)]
    if any(c is None for c in columns):
        raise UserError(f"{', '.join(matrix.sources.values())}: the logs of {task} lack documents pinned as anchors in "
                        f"{anchor_lock.lock_path(bundle_path).name} (another task, or another dataset version)")
    return matrix, matrix.scores[:, columns]


def _through_lock(bundle: Bundle, bundle_path: Path, paths: list[Path], task: str) -> ResponseMatrix:
    """The merge3 task's logs of an imported bundle, each document numbered as the bundle's anchor it is:
    by the doc_hash that the bundle's lock pinned for it (for any base task the lock holds)."""
    from . import anchor_lock

    position_of: dict[str, int] = {}
    for hashes in _pinned(bundle, bundle_path):
        for position, doc_hash in zip(bundle.anchors.doc_ids, hashes):
            position_of.setdefault(doc_hash, position)
    matrix = _logs(bundle, paths, task, "run lm_eval on the merge3 task with --log_samples --output_path; a merge3 "
                                        "task of another name: --task NAME")
    unknown = [d for d, h in zip(matrix.doc_ids, matrix.doc_hashes) if h not in position_of]
    if unknown:
        raise UserError(f"{', '.join(matrix.sources.values())}: {len(unknown)} document(s) of {task} (doc_id "
                        f"{unknown[0]}, ...) are none of the anchors {anchor_lock.lock_path(bundle_path).name} pinned "
                        "(another dataset version, or the logs of another bundle's task)")
    return _renumbered(matrix, bundle.task, [position_of[h] for h in matrix.doc_hashes])


def _numbered_as_in(bundle: Bundle, matrix: ResponseMatrix) -> ResponseMatrix:
    """A merge3 task's responses with the bundle's doc ids (found by doc_hash) instead of anchor positions."""
    doc_id_of = dict(zip(bundle.doc_hashes, bundle.doc_ids))
    unknown = [h for h in matrix.doc_hashes if h not in doc_id_of]
    if unknown:
        raise UserError(f"{', '.join(matrix.sources.values())}: {len(unknown)} document(s) of {matrix.task} are not "
                        f"items of the {bundle.task} bundle (a merge3 task of another bundle?)")
    return _renumbered(matrix, bundle.task, [doc_id_of[h] for h in matrix.doc_hashes])


def _renumbered(matrix: ResponseMatrix, task: str, ids: list[int]) -> ResponseMatrix:
    """`matrix` as items of `task` numbered `ids` (one per column), its columns sorted by them."""
    order = np.argsort(ids, kind="stable")
    return replace(matrix, task=task, doc_ids=[ids[j] for j in order],
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


def endpoint_abilities(bundle: Bundle, paths: list[Path], bundle_path: Path | None = None,
                       merge3_task: str | None = None) -> tuple[list[str], np.ndarray]:
    """(model names, abilities) of the models in `paths`, fit on every bundle item their logs hold."""
    return abilities_of(bundle, responses_for_bundle(bundle, paths, merge3_task, bundle_path))


def abilities_of(bundle: Bundle, matrix: ResponseMatrix) -> tuple[list[str], np.ndarray]:
    """(model names, abilities) of a checked response matrix, under the population's prior."""
    full = np.full((len(matrix.models), bundle.n_items), np.nan)
    full[:, bundle.columns(matrix.doc_ids)] = matrix.scores
    mean, cov = bundle.ability_prior()
    return matrix.models, fit_ability(bundle.items, full, prior_mean=mean, prior_cov=cov)
