"""Racing a generation's candidates through anchor rungs (`evolve.racing`): successive halving.

Every new candidate of a generation is scored on the smallest rung of its fitness tasks' anchors
(the first k of them: an anchor set of its own, see merge3_plugin/rungs.py), the best 1/eta of them
again on the next rung, and so on; the survivors of the last cut are scored on every anchor. A
candidate keeps the IRT estimate of the highest rung it reached (calibrated for that rung), and its
record says which (`anchors`) and what it cost in all (`items`, seconds summed over its rungs). A
promoted candidate is merged again for each rung: the live model holds one candidate at a time.
A lone new candidate (a generation cut by the budget, one re-scored on resume) goes straight to all
anchors. A resumed run races the generation that was in flight again, without the candidates whose
records were already written: their rungs, and so the rest of the search, may differ from an
unbroken run's.

An algorithm with its own intensifier (`tpe`: Optuna's Hyperband pruner, see tpe.py) decides instead,
one candidate at a time: `climb` takes it up the rungs, merged once, for as long as the intensifier
says go on, and its record keeps the estimate of every rung it passed (`climb`), which a resumed run
tells the intensifier again, so that it makes the same decisions as the unbroken run.
"""

from __future__ import annotations

import functools
import math

from ..scoring.candidate import Job, Scored, score_candidate


def climb(engine, job: Job, limits: list[int], go_on) -> Scored:
    """`job` up the rungs `limits` (anchors per rung, the last all of them), merged once, while
    `go_on(anchors, estimate)` says so. The record keeps the highest rung's estimate, that rung
    (`anchors`), every rung's estimate (`climb`: [[anchors, estimate], ...]) and the cost summed."""
    spent = {"items": 0, "merge_seconds": 0.0, "eval_seconds": 0.0}
    path: list[list] = []
    for level, limit in enumerate(limits):
        last = level == len(limits) - 1
        fitness = functools.partial(engine.fitness, limit=None if last else limit)
        scored = score_candidate(engine, job, fitness, merge=level == 0)
        for key in spent:
            spent[key] += scored.record.get(key, 0)
        if scored.record.get("objectives") is None:  # failed: no rung passed
            break
        path.append([limit, scored.record["objectives"][0]])
        scored.record["anchors"] = limit
        if last or not go_on(limit, scored.record["objectives"][0]):
            break
    scored.record.update({key: round(value, 4) if isinstance(value, float) else value for key, value in spent.items()})
    scored.record["climb"] = path
    return scored


def race(engine, jobs: list[Job], limits: list[int], eta: int) -> dict[int, Scored]:
    """{job index: its final Scored} for `jobs` raced through `limits` (anchors per rung, the last one
    all of them). Failed candidates drop out where they fail; ties keep the generation's order."""
    results: dict[int, Scored] = {}
    spent = {job.index: {"items": 0, "merge_seconds": 0.0, "eval_seconds": 0.0} for job in jobs}
    alive = list(jobs)
    for level, limit in enumerate(limits):
        last = level == len(limits) - 1
        if not last and len(alive) == 1:
            continue  # a lone candidate would be promoted anyway: straight to the last rung
        fitness = functools.partial(engine.fitness, limit=None if last else limit)
        for job in alive:
            scored = score_candidate(engine, job, fitness)
            for key in spent[job.index]:
                spent[job.index][key] += scored.record.get(key, 0)
            scored.record["anchors"] = limit
            results[job.index] = scored
        if last:
            break
        ranked = [job for job in alive if results[job.index].record.get("objectives") is not None]
        ranked.sort(key=lambda job: -results[job.index].record["objectives"][0])
        alive = ranked[:math.ceil(len(alive) / eta)]
        if not alive:
            break
    for index, scored in results.items():
        scored.record.update({key: round(value, 4) if isinstance(value, float) else value
                              for key, value in spent[index].items()})
    return results
