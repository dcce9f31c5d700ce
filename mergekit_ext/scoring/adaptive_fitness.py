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

from ..config import AdaptiveSpec, FitnessSpec


def policy_of(spec: FitnessSpec) -> AdaptivePolicy:
    """The adaptive policy a fitness entry asks for: its items, rounds and stopping rule, and the
    registered estimator's criterion."""
    how = spec.adaptive or AdaptiveSpec()
    criterion = adaptive_estimators()[spec.estimator].criterion
    return AdaptivePolicy(max_items=spec.items, first=min(how.first, spec.items), per_round=how.per_round,
                          target_se=how.target_se, criterion=criterion)


class AdaptiveScorer:
    """Runs `spec`'s adaptive test on whatever the live model `lm` holds now."""

    def __init__(self, lm, manager, raw: dict, spec: FitnessSpec, endpoint_theta: list | None):
        self.lm, self.spec = lm, spec
        self.task, self.task_dict = lm_eval_api.split_task(manager, raw)
        self.bundle = self.task.bundle
        self.policy = policy_of(spec)
        self.policy.check(self.bundle.n_items, f"fitness task {spec.task}: items")
        self.graded = self.bundle.graded if spec.adaptive is not None and spec.adaptive.graded else None
        mean, self.prior_cov = self.bundle.graded_prior() if self.graded else self.bundle.ability_prior()
        # a merge's ability lies near its endpoints': its test starts from their mean (the prior's spread kept)
        self.prior_mean = np.asarray(endpoint_theta, dtype=np.float64).mean(axis=0) if endpoint_theta else mean

    def __call__(self) -> tuple[float, dict]:
        """The estimate, and what the record keeps: the documents asked in order, their scores, the
        estimate's standard error, the items asked per round and the prior ability the test started
        from (with the bundle, enough to replay the test: `adaptive.run_adaptive` with `replay`)."""
        self._graded_of = {}
        run = run_adaptive(self.bundle.items, self._answer, 1, self.policy, self.prior_mean, self.prior_cov,
                           item_weights=self.bundle.item_weights, graded=self.graded)
        asked = run.asked[0]
        graded = {"graded": [self._graded_of[c] for c in asked]} if self.graded else {}
        return float(run.estimate[0]), {
            "asked": self.task.positions(asked), "scores": [float(s) for s in run.observed[0, asked]], **graded,
            "se": round(float(run.se[0]), 6), "rounds": [r["n"][0] for r in run.rounds],
            "prior": self.prior_mean.tolist()}

    def _answer(self, requests: list[list[int]]) -> list[list[float]]:
        (columns,) = requests
        if not columns:
            return [[]]
        name = self.task.config.task
        out = lm_eval_api.evaluate_tasks(self.lm, self.task_dict, log_samples=True,
                                         samples={name: sorted(self.task.positions(columns))})
        metric = self.bundle.metric
        found: dict[int, float] = {}
        for sample in out["samples"][name]:
            for column in self.task.columns_of(sample["doc"]):
                found[column] = float(sample[metric])
                if self.graded:
                    self._graded_of[column] = graded_response(sample)
        missing = [c for c in columns if c not in found]
        if missing:  # lm-eval scored other documents than asked: a changed selection rule upstream
            raise UserError(f"fitness task {name}: lm-eval did not score documents "
                            f"{self.task.positions(missing)[:5]} it was asked for")
        if self.graded:
            return [[(found[c], self._graded_of[c]) for c in columns]]
        return [[found[c] for c in columns]]


def graded_response(sample: dict) -> float:
    """The probability of the right choice in one of lm-eval's samples of a multiple-choice task."""
    value = choice_probability(sample)
    if value is None:  # checked before the search (a multiple_choice base task): lm-eval changed its samples
        raise UserError(f"lm-eval's sample of document {sample.get('doc_id')} has no per-choice log-likelihoods "
                        "to read a graded response from")
    return value
