"""Never hand back less than your config (`evolve.keep_config`, on by default).

Your config (the mergekit part of the file, as you wrote it) is scored before the search starts. At the
end, the best few candidates (the challengers) and your config are scored again on items the search
never saw: for each merge3 fitness task, a seeded sample of its documents outside the anchors
(lm_eval_tasks/held_out.py). The best challenger on those items replaces your config only when its
paired difference is more than two standard errors above zero; otherwise best.yaml is your config.

Why a duel on held-out items: the search picks the best of many noisy anchor estimates, so the winner's
score is biased upward (the winner's curse), and on a good config the search's "best" is often worse.
Pairing the same items removes most of the item-to-item noise from the difference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from merge3_lm_eval_tasks import api as lm_eval_api
from merge3_plugin.errors import UserError

from ..config import EvolveConfig, FitnessSpec
from ..scoring.fitness import Score, task_config

MARGIN_SE = 2.0  # how many standard errors of the paired difference a challenger must win by
RULE = (f"an evolved merge replaces your config only if it beats it on held-out items by more than {MARGIN_SE:g} "
        "standard errors of the paired difference")


def held_out_blocker(config: EvolveConfig, manager) -> str | None:
    """Why the duel cannot be held on held-out items (None when it can): every fitness task must be a
    merge3 task, whose documents outside the anchors the search never sees."""
    for spec in config.evolve.fitness:
        if not lm_eval_api.is_merge3_task(task_config(spec, manager)):
            return f"{spec.task} is a plain lm-eval task (the search sees all its items)"
    return None


def incumbent_blocker(config: EvolveConfig, space) -> str | None:
    """Why your config cannot be scored as a candidate of this search (None when it can)."""
    if not getattr(space, "keeps_config", True):
        return f"the {config.evolve.space} space stacks whole layers; your config is no candidate of it"
    depth = getattr(space, "num_layers", None)
    if depth is not None and depth != config.num_layers:
        return (f"the {config.evolve.space} space builds {depth}-layer merges; your config's models have "
                f"{config.num_layers} layers")
    return None


class HeldOutFitness:
    """The plain metric of each fitness entry's merge3 task on its held-out items, per item (for the
    paired difference) and folded by weight into one objective. Shares the search fitness's lm-eval model."""

    def __init__(self, config: EvolveConfig, share):
        keep = config.evolve.keep
        self.lm, self.manager = share.lm, share.manager
        self.specs: list[FitnessSpec] = list(config.evolve.fitness)
        self.tasks = {}
        for spec in self.specs:
            if spec.task in self.tasks:
                continue
            raw = task_config(spec, self.manager)
            if not lm_eval_api.is_merge3_task(raw):
                raise UserError(f"keep_config: {spec.task} is no merge3 task; it has no held-out items")
            self.tasks[spec.task] = lm_eval_api.build_tasks(
                self.manager, raw, held_out={"items": keep.holdout_items, "seed": keep.seed})

    def __call__(self, limit: int | None = None) -> Score:
        start = time.perf_counter()
        per_item: dict[str, dict[str, list[float]]] = {}
        for name, task_dict in self.tasks.items():
            out = lm_eval_api.evaluate_tasks(self.lm, task_dict, log_samples=True)
            (samples,) = out["samples"].values()
            samples = sorted(samples, key=lambda s: s["doc_id"])
            per_item[name] = {spec.metric: [float(s[spec.metric]) for s in samples]
                              for spec in self.specs if spec.task == name}
        value = fold(per_item, self.specs)
        items = sum(len(next(iter(metrics.values()))) for metrics in per_item.values())
        return Score([value], {"per_item": per_item}, time.perf_counter() - start, items)


def fold(per_item: dict, specs: list[FitnessSpec]) -> float:
    """The weighted mean over fitness entries of each entry's mean over its items."""
    weights = np.array([s.weight for s in specs])
    means = np.array([np.mean(per_item[s.task][s.metric]) for s in specs])
    return float(weights @ means / weights.sum())


def paired_difference(challenger: dict, incumbent: dict, specs: list[FitnessSpec]) -> tuple[float, float]:
    """(difference, standard error) of challenger minus incumbent, folded as `fold` folds: per entry the
    mean and variance of the per-item differences, weighted."""
    weights = np.array([s.weight for s in specs]) / sum(s.weight for s in specs)
    diff, var = 0.0, 0.0
    for w, spec in zip(weights, specs):
        d = np.array(challenger[spec.task][spec.metric]) - np.array(incumbent[spec.task][spec.metric])
        diff += w * d.mean()
        var += w ** 2 * (d.var(ddof=1) / len(d) if len(d) > 1 else 0.0)
    return float(diff), float(np.sqrt(var))


@dataclass
class Challenger:
    genes: list[float]
    candidate: dict | list
    key: str


def decide(specs: list[FitnessSpec], records: dict, incumbent_key: str, challengers: list[Challenger]) -> dict:
    """The duel's outcome from the held-out records (config hash -> record): the best challenger by its
    held-out score, and whether it beats your config by more than MARGIN_SE standard errors."""
    mine = records[incumbent_key]
    if mine.get("failed"):
        return {"chosen": "evolved", "why": f"your config failed on the held-out items ({mine['failed']})"}
    scored = [c for c in challengers if not records[c.key].get("failed")]
    if not scored:
        return {"chosen": "your config", "why": "every challenger failed on the held-out items"}
    best = max(scored, key=lambda c: records[c.key]["objectives"][0])
    diff, se = paired_difference(records[best.key]["details"]["per_item"], mine["details"]["per_item"], specs)
    won = diff - MARGIN_SE * se > 0
    return {"chosen": "evolved" if won else "your config", "challenger": best.key, "difference": diff, "se": se,
            "challenger_held_out": records[best.key]["objectives"][0],
            "your_config_held_out": mine["objectives"][0], "held_out_items": mine.get("items", 0),
            "challengers": [{"config_hash": c.key, "held_out": records[c.key]["objectives"]} for c in challengers],
            "why": (f"the best of {len(challengers)} challengers is {diff:+.4f} +- {se:.4f} against your config on "
                    f"{mine.get('items', 0)} held-out items: " +
                    ("more than" if won else "not more than") + f" {MARGIN_SE:g} standard errors")}
