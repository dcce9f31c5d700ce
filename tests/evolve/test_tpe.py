"""`algorithm: tpe` (issue #14, the paper's own loop): Optuna's TPE proposals and, with evolve.racing, its
Hyperband pruner stopping candidates on the anchor rungs. On pymoo problems here (fast, exact), and end to
end on the micro toy world (a resumed run replays the climbs and decides as the unbroken run)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from pymoo.core.problem import Problem

pytest.importorskip("optuna", reason="algorithm: tpe runs on Optuna (a dependency of merge3)")

RUNGS = [5, 15, 45]


class Bowl(Problem):
    """Accuracy-like objective in [0, 1], best at x = 0.7 in every gene (negated: pymoo minimises)."""

    def __init__(self, n_var: int = 4):
        super().__init__(n_var=n_var, n_obj=1, xl=0.0, xu=1.0)

    def _evaluate(self, X, out, *args, **kwargs):
        out["F"] = -accuracy(X)[:, None]


def accuracy(X: np.ndarray) -> np.ndarray:
    return 1.0 - np.mean((np.atleast_2d(X) - 0.7) ** 2, axis=1)


class NoisyRungs(Problem):
    """Bowl's accuracy measured on 5, 15 or 45 items: the smaller the rung, the noisier the estimate. Each
    row climbs the rungs as MergeSearch._climb does, while the algorithm's intensifier says go on."""

    def __init__(self, n_var: int = 4, seed: int = 0):
        super().__init__(n_var=n_var, n_obj=1, xl=0.0, xu=1.0, requires_kwargs=True)  # pymoo passes `algorithm`
        self.rng = np.random.default_rng(seed)
        self.items = 0
        self.reached: list[int] = []

    def _evaluate(self, X, out, *args, algorithm=None, **kwargs):
        values = []
        for row, x in enumerate(X):
            true = accuracy(x)[0]
            for anchors in RUNGS:
                estimate = true + self.rng.normal(0, 0.3 / np.sqrt(anchors))
                self.items += anchors
                if anchors == RUNGS[-1] or not algorithm.report(row, anchors, estimate):
                    break
            self.reached.append(anchors)
            values.append(-estimate)
        out["F"] = np.array(values)[:, None]


def _tpe(**options):
    from mergekit_ext.algorithms import TPEFactory

    return TPEFactory()(**options)


def test_tpe_proposals_beat_random_search_on_a_bowl():
    from pymoo.algorithms.soo.nonconvex.random_search import RandomSearch
    from pymoo.optimize import minimize

    tpe, rnd = [], []
    for seed in range(3):
        tpe.append(-minimize(Bowl(), _tpe(n_startup_trials=8), ("n_eval", 40), seed=seed).F[0])
        rnd.append(-minimize(Bowl(), RandomSearch(n_points_per_iteration=8), ("n_eval", 40), seed=seed).F[0])
    assert np.mean(tpe) > np.mean(rnd)


def test_a_generation_holds_pop_size_trials_and_warm_start_rows_come_first():
    from pymoo.optimize import minimize

    from mergekit_ext.algorithms.warm_start import WarmStartSampling

    rows = np.array([[0.7, 0.7, 0.7, 0.7], [0.0, 1.0, 0.0, 1.0]])
    result = minimize(Bowl(), _tpe(pop_size=3, sampling=WarmStartSampling(rows)), ("n_gen", 2), seed=0,
                      save_history=True)
    first = result.history[0].pop.get("X")
    assert len(first) == 3 and np.array_equal(first[:2], rows)
    assert result.F[0] == pytest.approx(-1.0)  # the warm row at the optimum is kept as the best
    assert len(result.algorithm.study.trials) == 6


def _climbing_run(seed: int):
    from pymoo.optimize import minimize

    problem = NoisyRungs(seed=seed)
    algorithm = _tpe(n_startup_trials=8)
    algorithm.use_rungs(RUNGS, eta=3)
    result = minimize(problem, algorithm, ("n_eval", 60), seed=seed)
    return problem, result


def test_hyperband_stops_candidates_on_low_rungs_and_tpe_learns_from_them():
    import optuna

    problem, result = _climbing_run(seed=0)
    states = [t.state for t in result.algorithm.study.trials]
    pruned, complete = states.count(optuna.trial.TrialState.PRUNED), states.count(optuna.trial.TrialState.COMPLETE)
    assert pruned + complete == 60 and pruned >= 15 and complete >= 5
    # a stopped candidate cost fewer items than one scored on every rung: the run as a whole is cheaper
    assert problem.items < 60 * sum(RUNGS) * 0.75
    assert [RUNGS[-1] if s == optuna.trial.TrialState.COMPLETE else None for s in states] == \
        [r if r == RUNGS[-1] else None for r in problem.reached]
    # the pruner saw each rung a trial passed below the last (whose estimate is the trial's value)
    for trial, reached in zip(result.algorithm.study.trials, problem.reached):
        assert sorted(trial.intermediate_values) == [r for r in RUNGS[:-1] if r <= reached]


def test_the_same_seed_gives_the_same_proposals_and_decisions():
    first, second = _climbing_run(seed=3), _climbing_run(seed=3)
    assert first[0].reached == second[0].reached
    assert np.array_equal(first[1].X, second[1].X)


def test_climb_merges_once_and_stops_where_told(monkeypatch):
    """racing.climb with a stand-in engine (its fitness: the merged candidate's number plus the rung)."""
    from types import SimpleNamespace

    from mergekit_ext.algorithms.racing import climb
    from mergekit_ext.scoring.candidate import Job

    merges, evaluations = [], []

    def merge_into(model, candidate):
        merges.append(candidate["value"])
        return 0.25

    def fitness(limit=None):
        evaluations.append(limit)
        return SimpleNamespace(objectives=[merges[-1] + (limit or 20) / 100], details={}, seconds=0.5,
                               items=limit or 20)

    engine = SimpleNamespace(merger=SimpleNamespace(merge_into=merge_into), model=None, fitness=fitness)
    monkeypatch.setattr("mergekit_ext.scoring.candidate.probe_logits", lambda model: None)  # no real model here
    told = []
    stopped = climb(engine, Job(0, "a", {"value": 0.5}), [5, 10, 20],
                    lambda anchors, estimate: told.append((anchors, estimate)) or anchors < 10)
    assert merges == [0.5] and evaluations == [5, 10] and told == [(5, 0.55), (10, 0.6)]
    assert stopped.record["anchors"] == 10 and stopped.record["climb"] == [[5, 0.55], [10, 0.6]]
    assert stopped.record["items"] == 15 and stopped.record["objectives"] == [0.6]
    assert stopped.record["merge_seconds"] == 0.25 and stopped.record["eval_seconds"] == 1.0
    merges.clear(), evaluations.clear()
    full = climb(engine, Job(1, "b", {"value": 0.1}), [5, 10, 20], lambda anchors, estimate: True)
    assert merges == [0.1] and evaluations == [5, 10, None] and full.record["anchors"] == 20
    assert full.record["objectives"] == [pytest.approx(0.3)] and full.record["items"] == 35


# -- end to end on the micro toy world ----------------------------------------------------------------

@pytest.fixture(scope="module")
def tpe_config(micro_zoo, micro_tasks, tmp_path_factory):

    from .evolve_helpers import write_ta_config

    root = tmp_path_factory.mktemp("tpe")
    micro_tasks(root / "tasks", rungs=[5, 10])
    evolve = {"fitness": [{"task": "merge3_toy_math_l2", "metric": "exact_match", "estimator": "gpirt"}],
              "granularity": 2, "algorithm": {"name": "tpe", "n_startup_trials": 4}, "racing": {"eta": 2},
              "budget": {"evaluations": 10}}
    return write_ta_config(root / "tpe.yaml", micro_zoo.root / "models", root / "tasks", evolve)


def _evolve(config, out, *extra):
    run = subprocess.run([sys.executable, "-m", "mergekit_ext.cli", str(config), "--out", str(out), "--quiet",
                          *extra], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_tpe_with_hyperband_on_the_toy_world_resumes_as_the_unbroken_run(tpe_config, tmp_path):
    unbroken = _evolve(tpe_config, tmp_path / "unbroken")
    summary = json.loads((tmp_path / "unbroken" / "summary.json").read_text())
    assert len(unbroken) == 10
    for record in unbroken:  # every rung passed is in the record, the last one is its estimate
        assert [anchors for anchors, _ in record["climb"]] == [5, 10, 20][:len(record["climb"])]
        assert record["anchors"] == record["climb"][-1][0] and record["objectives"] == [record["climb"][-1][1]]
        assert record["items"] == sum(anchors for anchors, _ in record["climb"])
    reached = [r["anchors"] for r in unbroken]
    assert 5 in reached and 20 in reached  # some stopped early, some scored on every anchor
    assert summary["items_evaluated"]["candidates"] == sum(r["items"] for r in unbroken) < 10 * 35
    assert summary["racing"]["intensifier"].startswith("optuna HyperbandPruner")
    finalists = [r for r in unbroken if r["anchors"] == 20]
    assert summary["best_objectives"] == max(r["objectives"] for r in finalists)

    # the same search stopped after 6 candidates, then resumed with the budget of 10
    short = yaml.safe_load(tpe_config.read_text())
    short["evolve"]["budget"] = {"evaluations": 6}
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(short))
    _evolve(tmp_path / "short.yaml", tmp_path / "resumed")
    resumed = _evolve(tpe_config, tmp_path / "resumed", "--resume")

    def same(records):
        return [(r["config_hash"], r["climb"], r["anchors"]) for r in records]

    assert same(resumed) == same(unbroken)


class _Asker(Problem):
    def __init__(self):
        super().__init__(n_var=2, n_obj=1, xl=0.0, xu=1.0, requires_kwargs=True)
        self.seen = []

    def _evaluate(self, X, out, *args, algorithm=None, **kwargs):
        self.seen.append(algorithm)
        out["F"] = X[:, :1]


def test_contract_pymoo_hands_the_asking_algorithm_to_the_problem():
    """MergeProblem(requires_kwargs=True) finds its intensifier (the live algorithm, which pymoo's minimize
    deep-copies) in `_evaluate`'s `algorithm` keyword: an upgrade of pymoo that drops it fails here."""
    from pymoo.algorithms.soo.nonconvex.ga import GA
    from pymoo.optimize import minimize

    problem = _Asker()
    result = minimize(problem, GA(pop_size=4), ("n_gen", 2), seed=0)
    assert len(problem.seen) == 2 and all(seen is result.algorithm for seen in problem.seen)


@pytest.mark.slow
def test_a_budget_in_items_stops_the_run_once_the_candidates_cost_that_many(tpe_config, tmp_path):
    data = yaml.safe_load(tpe_config.read_text())
    data["evolve"]["budget"] = {"items": 60}
    (tmp_path / "items.yaml").write_text(yaml.safe_dump(data))
    history = _evolve(tmp_path / "items.yaml", tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    spent = [r["items"] for r in history]
    assert sum(spent[:-1]) < 60 <= sum(spent)  # one candidate per generation: it stops at the first past 60
    assert summary["items_evaluated"]["candidates"] == sum(spent)
