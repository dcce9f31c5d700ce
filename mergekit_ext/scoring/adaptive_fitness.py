"""One fitness entry's adaptive test of the live model (issue #26): the candidate is merged once, then
asked its items in rounds, each round's documents chosen from its answers so far and scored through
lm-eval on those documents only. The record keeps the items asked, in order, with their scores, so a
candidate's estimate can be recomputed (and audited) from its history line alone."""

from __future__ import annotations

import numpy as np

from merge3_lm_eval_tasks import api as lm_eval_api
from merge3_plugin.adaptive import AdaptivePolicy, run_adaptive
from merge3_plugin.errors import UserError
from merge3_plugin.plugins import adaptive_estimators
from merge3_plugin.responses import choice_probability

from ..config import AdaptiveSpec, FitnessSpec, is_graded


def policy_of(spec: FitnessSpec) -> AdaptivePolicy:
    """The adaptive policy a fitness entry asks for: its items, rounds and stopping rule, and the
    registered estimator's criterion."""
    how = spec.adaptive or AdaptiveSpec()
    criterion = adaptive_estimators()[spec.estimator].criterion
    return AdaptivePolicy(max_items=spec.items, first=min(how.first, spec.items), per_round=how.per_round,
                          target_se=how.target_se, criterion=criterion)


class AdaptiveScorer:
    """Runs `spec`'s adaptive test on whatever the live model `lm` holds now."""

    def __init__(self, lm, manager, raw: dict, spec: FitnessSpec, endpoint_theta: list | None,
                 hidden: dict | None = None):
        """`hidden` ({items, seed}): the never-worse duel's held-out sample of this task, which no test asks."""
        self.lm, self.spec = lm, spec
        self.task, self.task_dict = lm_eval_api.split_task(manager, raw)
        self.bundle = self.task.bundle
        try:
            self.task.eval_docs  # noqa: B018  (the split, checked against the bundle now, not at the first candidate)
        except lm_eval_api.Merge3ConfigError as err:
            raise UserError(f"fitness task {spec.task}: {err}") from None
        self.policy = policy_of(spec)
        self.hidden = hidden
        self.allowed = None if hidden is None else askable(self.bundle, hidden)[None]
        pool = self.bundle.n_items if self.allowed is None else int(self.allowed.sum())
        self.policy.check(pool, f"fitness task {spec.task}: items (the split less the never-worse duel's "
                                "held-out items)")
        self.graded = self.bundle.graded if is_graded(spec) else None
        mean, self.prior_cov = self.bundle.graded_prior() if self.graded else self.bundle.ability_prior()
        # a merge's ability lies near its endpoints': its test starts from their mean (the prior's spread kept)
        self.prior_mean = np.asarray(endpoint_theta, dtype=np.float64).mean(axis=0) if endpoint_theta else mean

    def __call__(self) -> tuple[float, dict]:
        """The estimate, and what the record keeps: the documents asked in order, their scores, the
        estimate's standard error, the items asked per round and the prior ability the test started
        from (with the bundle, enough to replay the test: `adaptive.run_adaptive` with `replay`)."""
        self._graded_of = {}
        run = run_adaptive(self.bundle.items, self._answer, 1, self.policy, self.prior_mean, self.prior_cov,
                           item_weights=self.bundle.item_weights, allowed=self.allowed, graded=self.graded)
        asked = run.asked[0]
        graded = {"graded": [self._graded_of[c] for c in asked]} if self.graded else {}
        return float(run.estimate[0]), {
            "asked": self.task.positions(asked), "scores": [float(s) for s in run.observed[0, asked]], **graded,
            "se": round(float(run.se[0]), 6), "rounds": [r["n"][0] for r in run.rounds],
            "prior": self.prior_mean.tolist(), **({"not_asked": self.hidden} if self.hidden else {})}

    def _answer(self, requests: list[list[int]]) -> list[list[float]]:
        (columns,) = requests
        if not columns:
            return [[]]
        name = self.task.config.task
        out = lm_eval_api.evaluate_tasks(self.lm, self.task_dict, log_samples=True,
                                         samples={name: sorted(self.task.positions(columns))})
        metric = self.bundle.metric
        found: dict[int, float] = {}
        for sample in of_filter(out["samples"][name], self.bundle.filter):
            for column in self.task.columns_of(sample["doc"]):
                found[column] = float(sample[metric])
                if self.graded:
                    self._graded_of[column] = graded_response(sample)
        if set(found) != set(columns):  # lm-eval scored other documents than asked: a changed selection rule
            raise UserError(f"fitness task {name}: lm-eval scored {len(found)} documents when asked for "
                            f"{len(columns)} ({sorted(self.task.positions(columns))[:5]} ...)")
        if self.graded:
            return [[(found[c], self._graded_of[c]) for c in columns]]
        return [[found[c] for c in columns]]


def of_filter(samples: list[dict], name: str | None) -> list[dict]:
    """The logged samples of one lm-eval filter (a task with several logs each document once per filter)."""
    return [s for s in samples if not name or s.get("filter", name) == name]


def askable(bundle, hidden: dict) -> np.ndarray:
    """Per item of the split, whether an adaptive test may ask it: all but the never-worse duel's held-out
    sample ({items, seed}, drawn among the documents outside the anchors as the duel draws them), so the
    duel stays on documents the search never saw."""
    held = set(lm_eval_api.held_out_ids(bundle.n_items, bundle.require_anchors().doc_ids, hidden["items"],
                                        hidden["seed"]))
    return np.array([doc_id not in held for doc_id in bundle.doc_ids])


def graded_response(sample: dict) -> float:
    """The probability of the right choice in one of lm-eval's samples of a multiple-choice task."""
    value = choice_probability(sample)
    if value is None:  # checked before the search (a multiple_choice base task): lm-eval changed its samples
        raise UserError(f"lm-eval's sample of document {sample.get('doc_id')} has no per-choice log-likelihoods "
                        "to read a graded response from")
    return value
