"""Runs that survive SIGKILL (issue #13): mergekit-evolve-lite killed at chosen points (a merge, an
evaluation, a history line half written, a file's new version written but not yet in place, the select
stage's history), then resumed with --resume. The result equals an uninterrupted run with the same
seed: the same candidates in the same order with the same scores, the same best.yaml and summary (but
for what describes one process: its wall time and its own counts); nothing is evaluated twice but the
one candidate in flight; no file is ever found half-written. The kills come from crash points
(merge3_plugin/crashpoints.py): the process kills itself with SIGKILL where the test says, exactly
as a power cut or the out-of-memory killer would stop it there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from .evolve_helpers import write_ta_config

pytestmark = pytest.mark.slow

# what describes one process, not the run: how long it took and what it did itself
PER_PROCESS = ("wall_seconds", "candidates_this_run", "evaluated_this_run", "replayed_from_history",
               "repeated_this_run", "mean_merge_seconds", "mean_eval_seconds")
KILLS = ["merge:2", "eval:4", "history:3", "history:7", "write:checkpoint.json:1", "write:best.yaml:1",
         "write:summary.json:1"]


@pytest.fixture(scope="module")
def setup(micro_zoo, micro_tasks, tmp_path_factory):
    """Six candidates in two generations, then a select stage re-scoring the best two; run once unbroken.
    The fitness folds a fixed-anchor estimate and an adaptive test (whose items depend on the answers)."""

    root = tmp_path_factory.mktemp("interrupt")
    micro_tasks(root / "tasks")
    config = write_ta_config(root / "evolve.yaml", micro_zoo.root / "models", root / "tasks", {
        "fitness": [{"task": "merge3_toy_math_l2", "metric": "exact_match", "estimator": "gpirt"},
                    {"task": "merge3_toy_math", "metric": "exact_match", "estimator": "adaptive", "items": 10}],
        "algorithm": {"name": "ga", "pop_size": 3}, "budget": {"evaluations": 6},
        "select": {"top": 2, "fitness": [{"task": "merge3_toy_math_l2", "metric": "exact_match", "estimator": "pirt"}]}})
    done = evolve(config, root / "unbroken")
    assert done.returncode == 0, done.stderr[-2000:]
    return config, root / "unbroken"


def evolve(config, out, *extra, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MERGE3_CRASH_AT"}
    if crash_at:
        env["MERGE3_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "mergekit_ext.cli", str(config), "--out", str(out), "--quiet",
                           *extra], capture_output=True, text=True, timeout=600, env=env)


def _lines(path) -> list[tuple]:
    """What a history says happened: each candidate's hash, genes and scores, in order."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["config_hash"], r["genes"], r["objectives"]) for r in rows]


def _summary(out) -> dict:
    data = json.loads((out / "summary.json").read_text().replace(str(out), "OUT"))  # the folders differ
    # the endpoints' abilities are measured by each process that scores candidates (none, if a resumed
    # process has nothing left to score), and counted where measured: a cost of the process, not the run
    items = {k: v for k, v in data["items_evaluated"].items() if k not in ("endpoints", "total")}
    return {**{k: v for k, v in data.items() if k not in PER_PROCESS}, "items_evaluated": items}


@pytest.mark.parametrize("crash_at", KILLS)
def test_a_run_killed_anywhere_resumes_to_the_unbroken_result(setup, tmp_path, crash_at):
    config, unbroken = setup
    out = tmp_path / "out"
    killed = evolve(config, out, crash_at=crash_at)
    assert killed.returncode == -signal.SIGKILL, (crash_at, killed.returncode, killed.stderr[-2000:])

    # what the killed process left: every file whole (the old or the new version), history lines whole
    # but perhaps the last one (dropped on resume), no output of a finished run unless it was finished
    for name in ("checkpoint.json", "summary.json", "run.json"):
        if (out / name).exists():
            json.loads((out / name).read_text())
    if (out / "best.yaml").exists():
        assert yaml.safe_load((out / "best.yaml").read_text())["merge_method"] == "task_arithmetic"
    history = (out / "history.jsonl").read_text().splitlines() if (out / "history.jsonl").exists() else []
    for line in history[:-1]:
        json.loads(line)
    cut = bool(history) and not (out / "history.jsonl").read_text().endswith("\n")

    resumed = evolve(config, out, "--resume")
    assert resumed.returncode == 0, (crash_at, resumed.stderr[-2000:])
    assert _lines(out / "history.jsonl") == _lines(unbroken / "history.jsonl"), crash_at
    assert _lines(out / "selection.jsonl") == _lines(unbroken / "selection.jsonl"), crash_at
    assert (out / "best.yaml").read_bytes() == (unbroken / "best.yaml").read_bytes()
    assert _summary(out) == _summary(unbroken)
    # nothing evaluated twice but the candidate in flight: the resumed process evaluated what the killed
    # one had not finished (a history line cut short counts as not finished)
    summary = json.loads((out / "summary.json").read_text())
    finished_before = len(history) - cut
    assert summary["evaluated_this_run"] == 6 - min(finished_before, 6), (crash_at, summary)
    assert not list(out.glob("*.tmp"))
