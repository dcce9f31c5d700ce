"""Candidates that fail (issue #13): a merge that raises, NaN weights, an evaluation out of memory (CPU or
CUDA). Each is injected into a real run on the micro toy world; the run records it and goes on, and the
next candidate scores as it does in a run without the failure (the live model is whole again). When
most of a generation fails, the run stops with a report (exit 3), and --resume evaluates them again."""

from __future__ import annotations

import json

import pytest
import torch

from mergekit_ext.scoring.fitness import Fitness
from mergekit_ext.merging.inmemory import InMemoryMerger

from .evolve_helpers import write_ta_config


@pytest.fixture(scope="module")
def setup(micro_zoo, micro_tasks, tmp_path_factory):
    """A six-candidate GA run (two generations of three) and its history without failures."""
    from mergekit_ext.config import load_config
    from mergekit_ext.run import run

    root = tmp_path_factory.mktemp("failing")
    micro_tasks(root / "tasks")
    path = write_ta_config(root / "evolve.yaml", micro_zoo.root / "models", root / "tasks", {
        "fitness": [{"task": "merge3_toy_math_l2", "metric": "exact_match", "estimator": "gpirt"}],
        "algorithm": {"name": "ga", "pop_size": 3}, "budget": {"evaluations": 6}})
    run(load_config(path), root / "clean", progress=False)
    return path, _history(root / "clean")


def _history(out) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


def _fail_merge(model):
    """Half a merge, then an error: the live model is left with some weights written and some not."""
    with torch.no_grad():
        next(model.parameters()).fill_(7.0)
    raise RuntimeError("the merge method broke on this candidate")


def _nan_weights(model):
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")


INJECTED = {  # kind -> (where, what it does on the chosen call, the reason the history must give)
    "merge raises": ("merge", lambda model: _fail_merge(model), "RuntimeError: the merge method broke"),
    "NaN weights": ("after merge", _nan_weights, "logits are NaN or Inf"),
    "CPU out of memory": ("eval", lambda model: (_ for _ in ()).throw(MemoryError()), "out of memory (MemoryError"),
    "CUDA out of memory": ("eval", lambda model: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB")), "out of memory (OutOfMemoryError: CUDA out of memory"),
}


def _inject(monkeypatch, kind: str, calls: set[int]):
    """Make the merge or the evaluation of the candidates numbered `calls` (0-based) fail as `kind` does."""
    where, action, _ = INJECTED[kind]
    counter = {"merge": 0, "eval": 0}
    merge_into, score = InMemoryMerger.merge_into, Fitness.__call__

    def merge(self, model, config):
        n = counter["merge"]
        counter["merge"] += 1
        if where == "merge" and n in calls:
            action(model)
        seconds = merge_into(self, model, config)
        if where == "after merge" and n in calls:
            action(model)
        return seconds

    def evaluate(self):
        n = counter["eval"]
        counter["eval"] += 1
        if where == "eval" and n in calls:
            action(self.model)
        return score(self)

    monkeypatch.setattr(InMemoryMerger, "merge_into", merge)
    monkeypatch.setattr(Fitness, "__call__", evaluate)


@pytest.mark.parametrize("kind", list(INJECTED))
def test_a_failing_candidate_is_recorded_and_the_run_goes_on(setup, tmp_path, monkeypatch, kind):
    from mergekit_ext.config import load_config
    from mergekit_ext.run import run

    path, clean = setup
    _inject(monkeypatch, kind, calls={1})
    summary = run(load_config(path), tmp_path / "out", progress=False)
    history = _history(tmp_path / "out")
    assert len(history) == 6 and summary["evaluations"] == 6
    failed = history[1]
    assert failed["objectives"] is None and INJECTED[kind][2] in failed["failed"]
    assert summary["failed"] == 1 and summary["failed_reasons"] == [failed["failed"]]
    assert f"candidate {failed['config_hash']}" in (tmp_path / "out" / "failures.log").read_text()
    # the first generation is asked for before any result is known: the same candidates as the clean run;
    # the ones after the failure score exactly as there, so the live model was whole again
    assert [r["config_hash"] for r in history[:3]] == [r["config_hash"] for r in clean[:3]]
    assert history[0]["objectives"] == clean[0]["objectives"] and history[2]["objectives"] == clean[2]["objectives"]
    assert summary["best_objectives"][0] >= 0 and (tmp_path / "out" / "best.yaml").exists()


def test_when_most_of_a_generation_fails_the_run_stops_with_a_report_and_resume_retries(setup, tmp_path,
                                                                                       monkeypatch, capsys):
    from mergekit_ext.cli import main

    path, clean = setup
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        _inject(patch, "NaN weights", calls={0, 2})
        code = main([str(path), "--out", str(out), "--quiet"])
    said = capsys.readouterr().err
    assert code == 3 and "Traceback" not in said
    assert "stopped: 2 of 3 candidates of generation 1 failed (the merged model's logits are NaN or Inf" in said
    assert "--resume" in said and not (out / "best.yaml").exists()
    assert [r.get("failed") is not None for r in _history(out)] == [True, False, True]
    checkpoint = json.loads((out / "checkpoint.json").read_text())
    assert checkpoint["generation"] == 1 and checkpoint["failed_now"] == 2

    assert main([str(path), "--out", str(out), "--resume", "--quiet"]) == 0  # the cause is gone: evaluated again
    history = _history(out)
    retried = [r for r in history[3:] if r["config_hash"] in {history[0]["config_hash"], history[2]["config_hash"]}]
    assert len(retried) == 2 and all(r["objectives"] is not None for r in retried)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 0 and summary["evaluations"] == 6
    assert summary["best_objectives"] == json.loads((setup[0].parent / "clean" / "summary.json").read_text())[
        "best_objectives"]
