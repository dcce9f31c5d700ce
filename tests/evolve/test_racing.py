"""Racing (evolve.racing, issue #14): a generation's new candidates go through the anchor rungs of their fitness
task (5 -> 10 -> 20 anchors, from `merge3 extract --rungs`) by successive halving, on the micro toy world."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml


@pytest.fixture(scope="module")
def configs(micro_zoo, micro_tasks, tmp_path_factory):
    """The same TA search twice, with and without racing, on merge3 tasks whose 20 anchors have rungs 5 and 10."""

    from .evolve_helpers import write_ta_config

    root = tmp_path_factory.mktemp("racing")
    micro_tasks(root / "tasks", rungs=[5, 10])
    evolve = {"fitness": [{"task": "merge3_toy_math_l2", "metric": "exact_match", "estimator": "gpirt"}],
              "granularity": 2, "algorithm": {"name": "ga", "pop_size": 6}, "budget": {"evaluations": 12}}
    plain = write_ta_config(root / "plain.yaml", micro_zoo.root / "models", root / "tasks", evolve)
    raced = write_ta_config(root / "raced.yaml", micro_zoo.root / "models", root / "tasks",
                            {**evolve, "racing": {"eta": 2}})
    return root, plain, raced


def _run(config, out):
    run = subprocess.run([sys.executable, "-m", "mergekit_ext.cli", str(config), "--out", str(out), "--quiet"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    return history, json.loads((out / "summary.json").read_text())


def test_candidates_race_through_the_rungs_for_fewer_items(configs, tmp_path):
    _, plain, raced = configs
    history, summary = _run(raced, tmp_path / "raced")
    full, full_summary = _run(plain, tmp_path / "plain")
    # each generation of 6: all on 5 anchors, the best 3 on 10, the best 2 of those on all 20
    for generation in (history[:6], history[6:]):
        assert sorted(r["anchors"] for r in generation) == [5, 5, 5, 10, 20, 20]
    assert {r["anchors"]: r["items"] for r in history} == {5: 5, 10: 15, 20: 35}
    assert summary["items_evaluated"]["candidates"] == 2 * (6 * 5 + 3 * 10 + 2 * 20) == 200
    assert full_summary["items_evaluated"]["candidates"] == 240
    # the same first generation in both runs (same seed): on all anchors a raced candidate scores as unraced
    plain_scores = {r["config_hash"]: r["objectives"] for r in full}
    for record in history[:6]:
        if record["anchors"] == 20:
            assert record["objectives"] == plain_scores[record["config_hash"]]
    # best.yaml is the best of the candidates scored on every anchor, never a low-rung estimate
    finalists = [r for r in history if r["anchors"] == 20]
    assert summary["best_objectives"] == max(r["objectives"] for r in finalists)
    assert summary["racing"]["candidates_per_rung"] == {"5": 6, "10": 2, "20": 4}
    best = yaml.safe_load((tmp_path / "raced" / "best.yaml").read_text())
    assert best["merge_method"] == "task_arithmetic"


def test_racing_needs_rungs_one_objective_and_the_serial_backend(micro_tasks, configs, micro_zoo, tmp_path):
    from merge3_plugin.errors import UserError
    from mergekit_ext.config import load_config
    from mergekit_ext.scoring.fitness import check_fitness_tasks, task_manager

    root, _, raced = configs
    data = yaml.safe_load(raced.read_text())
    micro_tasks(tmp_path / "tasks")  # anchors without rungs
    data["evolve"]["include_path"] = [str(tmp_path / "tasks")]
    (tmp_path / "no-rungs.yaml").write_text(yaml.safe_dump(data))
    config = load_config(tmp_path / "no-rungs.yaml")
    with pytest.raises(UserError, match="field 'evolve.racing': the bundle of merge3_toy_math_l2 has no rungs"):
        check_fitness_tasks(config, task_manager(config))
    for edit, words in (({"objectives": "multi"}, "racing: promotes by one fitness value"),
                        ({"eval": {"backend": "ray"}}, "racing: runs on the serial backend")):
        bad = yaml.safe_load(raced.read_text())
        bad["evolve"].update(edit)
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(UserError, match=words):
            load_config(tmp_path / "bad.yaml")


def test_a_lone_candidate_goes_straight_to_every_anchor_and_ties_keep_the_order(monkeypatch):
    """racing.race with a stand-in engine (its fitness: the merged candidate's number, on any rung)."""
    from types import SimpleNamespace

    from mergekit_ext.algorithms.racing import race
    from mergekit_ext.scoring.candidate import Job

    class Live:
        def __init__(self):
            self.value, self.calls = None, []

        def merge_into(self, model, candidate):
            self.value = candidate["value"]
            return 0.0

    merger = Live()

    def fitness(limit=None):
        merger.calls.append((merger.value, limit))
        return SimpleNamespace(objectives=[merger.value], details={}, seconds=0.0, items=limit or 20)

    engine = SimpleNamespace(merger=merger, model=None, fitness=fitness)
    monkeypatch.setattr("mergekit_ext.scoring.candidate.probe_logits", lambda model: None)  # no real model here
    lone = race(engine, [Job(0, "a", {"value": 0.5})], [5, 10, 20], eta=2)
    assert merger.calls == [(0.5, None)] and lone[0].record["anchors"] == 20 and lone[0].record["items"] == 20
    jobs = [Job(i, str(i), {"value": v}) for i, v in enumerate([0.1, 0.3, 0.3, 0.2])]
    raced = race(engine, jobs, [5, 10, 20], eta=2)
    # 4 on 5 anchors, the best 2 (the tied 0.3s) on 10, the first of the tie alone on all 20
    assert [raced[i].record["anchors"] for i in range(4)] == [5, 20, 10, 5]
    assert [raced[i].record["items"] for i in range(4)] == [5, 35, 15, 5]
