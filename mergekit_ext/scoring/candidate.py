"""Score one candidate on an engine: merge it into the live model, probe it, evaluate it. The same
function runs in the driver (the serial backend) and in every Ray worker, so a candidate's record
does not depend on where it was scored."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .failures import is_candidate_failure, probe_logits, recover


@dataclass
class Job:
    """One candidate to score: `index` is its row in the generation (records are written in that order)."""

    index: int
    key: str  # the config hash
    candidate: dict | list  # the plain mergekit config, or a recipe of several (recipe.py)
    genes: list[float] = field(default_factory=list)


@dataclass
class Scored:
    """A job's record for a history file, and the traceback for failures.log when it failed."""

    record: dict
    traceback: str | None = None


def failed_record(job: Job, reason: str, merge_seconds: float = 0.0, eval_seconds: float = 0.0) -> dict:
    """The record of a candidate that could not be scored: no objectives, and why."""
    return {"config_hash": job.key, "genes": job.genes, "objectives": None, "failed": reason, "details": {},
            "merge_seconds": round(merge_seconds, 4), "eval_seconds": round(eval_seconds, 4)}


def score_candidate(engine, job: Job, fitness, merge: bool = True) -> Scored:
    """Merge `job` into `engine`'s live model and score it with `fitness`. A candidate that fails (see
    failures.py) gets a record too: no objectives, and the reason. `merge=False`: the live model holds
    `job` already (scored again on more anchors), so it is neither merged nor probed again."""
    start = time.perf_counter()
    merge_seconds = None
    try:
        merge_seconds = engine.merger.merge_into(engine.model, job.candidate) if merge else 0.0
        if merge:
            probe_logits(engine.model)
        score = fitness()
    except Exception as err:
        if not is_candidate_failure(err):
            raise
        reason, logged = recover(err, job.key)
        spent = time.perf_counter() - start
        if merge_seconds is None:  # the merge itself failed
            return Scored(failed_record(job, reason, merge_seconds=spent), logged)
        return Scored(failed_record(job, reason, merge_seconds, spent - merge_seconds), logged)
    return Scored({"config_hash": job.key, "genes": job.genes, "objectives": score.objectives,
                   "details": score.details, "merge_seconds": round(merge_seconds, 4),
                   "eval_seconds": round(score.seconds, 4), "items": score.items})
