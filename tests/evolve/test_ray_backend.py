"""The ray eval backend (issue #13) on a local Ray instance with 2 CPU workers: a generation's candidates
are scored in parallel and the run equals the serial backend's with the same seed; a worker that dies is
replaced and its candidate sent once more; a candidate that kills every worker scoring it is recorded as
failed and the run goes on. Workers are killed with SIGKILL at crash points (merge3_plugin/crashpoints.py)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray", reason="the ray backend's tests need ray: pip install 'merge3[ray]'")

from .evolve_helpers import write_ta_config  # noqa: E402

# each run starts Ray and two workers that load the models (about 20 s); one pytest-xdist worker runs them
# all (--dist loadgroup), so that two local Ray instances never start at once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

TIMINGS = ("merge_seconds", "eval_seconds", "time")


def _history(out) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS}
            for line in (out / "history.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def setup(micro_zoo, micro_tasks, tmp_path_factory):
    """Two generations of four (so each has two candidates per worker) and the serial run's outputs. The
    fitness folds a fixed-anchor estimate and an adaptive test (which each worker runs on its own)."""
    from mergekit_ext.config import load_config
    from mergekit_ext.run import run

    root = tmp_path_factory.mktemp("ray")
    micro_tasks(root / "tasks")
    evolve = {"fitness": [{"task": "merge3_toy_math_l2", "metric": "exact_match", "estimator": "gpirt"},
                          {"task": "merge3_toy_math", "metric": "exact_match", "estimator": "adaptive", "items": 10}],
              "algorithm": {"name": "ga", "pop_size": 4}, "budget": {"evaluations": 8}}
    serial = write_ta_config(root / "serial.yaml", micro_zoo.root / "models", root / "tasks", evolve)
    parallel = write_ta_config(root / "ray.yaml", micro_zoo.root / "models", root / "tasks", evolve,
                               eval_spec={"backend": "ray", "workers": 2})
    summary = run(load_config(serial), root / "serial", progress=False)
    return parallel, root / "serial", summary


def _run_ray(setup, out):
    from mergekit_ext.config import load_config
    from mergekit_ext.run import run

    return run(load_config(setup[0]), out, progress=False)


def test_two_ray_workers_give_the_serial_results(setup, tmp_path):
    _, serial, serial_summary = setup
    summary = _run_ray(setup, tmp_path / "out")
    assert _history(tmp_path / "out") == _history(serial)  # the same candidates, in the same order
    best = [(folder / "best.yaml").read_text().split("\n", 1)[1] for folder in (tmp_path / "out", serial)]
    assert best[0] == best[1]  # below the header line, which names the config file
    for key in ("best_objectives", "best_config_hash", "evaluations", "failed", "candidates_this_run"):
        assert summary[key] == serial_summary[key], key
    assert not (tmp_path / "out" / "failures.log").exists()


def test_a_dead_worker_is_replaced_and_its_candidate_retried(setup, tmp_path, monkeypatch):
    _, serial, serial_summary = setup
    first = _history(serial)[0]["config_hash"]  # sent first, to the first worker started
    monkeypatch.setenv("MERGE3_CRASH_AT", f"candidate:{first}:life1:1")  # that worker dies on it
    summary = _run_ray(setup, tmp_path / "out")
    assert _history(tmp_path / "out") == _history(serial)
    assert summary["best_objectives"] == serial_summary["best_objectives"] and summary["failed"] == 0


def test_a_candidate_that_kills_every_worker_is_recorded_as_failed(setup, tmp_path, monkeypatch):
    _, serial, _ = setup
    poison = _history(serial)[1]["config_hash"]
    monkeypatch.setenv("MERGE3_CRASH_AT", f"candidate:{poison}:1")  # every worker dies the first time it sees it
    summary = _run_ray(setup, tmp_path / "out")
    history = _history(tmp_path / "out")
    assert [r["config_hash"] for r in history[:2]] == [r["config_hash"] for r in _history(serial)[:2]]
    assert history[1]["objectives"] is None and "worker died twice" in history[1]["failed"]
    assert history[0] == _history(serial)[0]  # the other candidates of its generation are scored as before
    assert summary["evaluations"] == 8 and summary["failed"] == 1
    assert f"candidate {poison}" in (tmp_path / "out" / "failures.log").read_text()


def test_more_workers_than_the_cluster_has_is_a_clear_error(setup, tmp_path):
    """Found when Ray starts, before any worker loads a model; Ray is shut down again."""
    import os

    import ray
    import yaml

    from mergekit_ext import cli

    config = yaml.safe_load(setup[0].read_text())
    config["evolve"]["eval"]["workers"] = (os.cpu_count() or 1) + 3
    path = tmp_path / "too-many.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli.main([str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert not ray.is_initialized()
    assert not (tmp_path / "out" / "history.jsonl").exists()
