"""merge3 tasks on an imported tinyBenchmarks bundle (issue #15), on small local datasets with each
benchmark's fields: anchors found by content among lm-eval's documents and locked on first load,
refusals when they cannot be, the protocol warning, and the ready configs' switch to the bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from merge3_plugin import tinybenchmarks as tb
from merge3_plugin.anchor_lock import lock_path
from merge3_plugin.estimation import estimate
from tests.method.test_cli import merge3
from tests.tinybenchmarks_reference import (
    benchmark_doc,
    lm_eval_docs,
    local_position,
    synthetic_tinybenchmarks,
    write_pkl,
    write_tiny_datasets,
)

ARC_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: multiple_choice
test_split: test
num_fewshot: {shots}
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
doc_to_choice: "{{{{choices.text}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: 1.0
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-tasks")
    data = synthetic_tinybenchmarks(seed=4, dims=2)
    pkl = write_pkl(data, root / "tinyBenchmarks.pkl")
    cache = root / "cache"
    tb.import_tinybenchmarks(pkl, cache / "tinybenchmarks", write_tiny_datasets(data, root / "datasets"),
                             allow_unpinned=True)
    docs = lm_eval_docs("arc", seed=9)
    (root / "arc.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "arc.yaml").write_text(ARC_YAML.format(name="synth_arc", data=root / "arc.jsonl", shots=25))
    (root / "arc0.yaml").write_text(ARC_YAML.format(name="synth_arc0", data=root / "arc.jsonl", shots=0))
    return root, data, docs, cache


def _task(metadata: dict, name: str = "merge3_synth_arc"):
    from merge3_lm_eval_tasks.task import Merge3Task

    return Merge3Task(config={"task": name, "metadata": metadata})


def _bundle_copy(world, tmp_path):
    """The imported arc bundle copied where a test may lock it."""
    bundle_path = tmp_path / "arc.json"
    bundle_path.write_bytes((world[3] / "tinybenchmarks" / "arc.json").read_bytes())
    return bundle_path


def _build_my_arc(world, bundle_path, tmp_path):
    """`merge3 tasks build` of merge3_my_arc on the synthetic arc task: matches and locks the anchors."""
    return merge3("tasks", "build", "--bundle", str(bundle_path), "--base-yaml", str(world[0] / "arc.yaml"),
                  "--name", "merge3_my_arc", "--out", str(tmp_path / "tasks"))


def _pinned(world, bundle_path) -> list[str]:
    """The anchors' doc_hashes the lock pinned in the synthetic arc task, in anchor order."""
    lock = json.loads(lock_path(bundle_path).read_text())
    return [row["doc_hash"] for row in lock["tasks"][str(world[0] / "arc.yaml")]["anchors"]]


def test_anchors_are_matched_locked_and_estimated(world, tmp_path, capsys):
    root, data, docs, cache = world
    bundle_path = tmp_path / "arc.json"
    bundle_path.write_bytes((cache / "tinybenchmarks" / "arc.json").read_bytes())
    task = _task({"merge3_base_yaml": str(root / "arc.yaml"), "merge3_bundle": str(bundle_path)})
    anchors = list(task.eval_docs)
    expected = [benchmark_doc("arc", p) for p in local_position(data, "arc")]
    assert [d["id"] for d in anchors] == [d["id"] for d in expected]
    lock = json.loads(lock_path(bundle_path).read_text())
    assert list(lock["tasks"]) == [str(root / "arc.yaml")]
    assert [docs[r["doc_id"]]["id"] for r in lock["tasks"][str(root / "arc.yaml")]["anchors"]] == [d["id"] for d in expected]
    assert "warning" not in capsys.readouterr().err  # 25-shot, as the parameters assume
    # the metric: (anchor position, score) pairs, in any order, give merge3's estimate
    rng = np.random.default_rng(0)
    scores = (rng.random(100) < 0.6).astype(float)
    items = [(task.anchor_key(d), s) for d, s in zip(anchors, scores)]
    value = task.aggregation()["acc_norm_gpirt"](list(reversed(items)))
    assert value == pytest.approx(estimate(task.bundle, scores[None])["gpirt"][0], abs=1e-12)
    # a second load reads the lock; a changed anchor document is refused
    assert [d["id"] for d in _task({"merge3_base_yaml": str(root / "arc.yaml"),
                                    "merge3_bundle": str(bundle_path)}).eval_docs] == [d["id"] for d in expected]
    entry = lock["tasks"][str(root / "arc.yaml")]
    entry["anchors"][0]["doc_hash"] = "0" * 64
    lock_path(bundle_path).write_text(json.dumps(lock))
    from merge3_lm_eval_tasks.task import Merge3ConfigError

    with pytest.raises(Merge3ConfigError, match="merge3_synth_arc: .*anchor 0 .* gone or changed"):
        _ = _task({"merge3_base_yaml": str(root / "arc.yaml"), "merge3_bundle": str(bundle_path)}).eval_docs


def test_another_protocol_is_warned_about(world, tmp_path, capsys):
    root, _, _, cache = world
    bundle_path = tmp_path / "arc.json"
    bundle_path.write_bytes((cache / "tinybenchmarks" / "arc.json").read_bytes())
    task = _task({"merge3_base_yaml": str(root / "arc0.yaml"), "merge3_bundle": str(bundle_path)})
    err = capsys.readouterr().err
    assert "runs 0-shot" in err and "25-shot acc_norm" in err and "Open LLM Leaderboard v1" in err
    task.set_config("num_fewshot", 25)
    assert "warning" not in capsys.readouterr().err


def test_a_dataset_without_the_key_fields_is_refused(world, tmp_path):
    """An mgsm/m_mmlu-like translation: no source id, so no mapping (and never by position)."""
    root, _, _, cache = world
    (tmp_path / "tr.jsonl").write_text("".join(json.dumps({"question": f"Frage {i}", "choices": {"text": ["a"], "label": ["A"]},
                                                           "answerKey": "A"}) + "\n" for i in range(1172)))
    (tmp_path / "tr.yaml").write_text(ARC_YAML.format(name="synth_tr", data=tmp_path / "tr.jsonl", shots=25))
    from merge3_lm_eval_tasks.task import Merge3ConfigError

    with pytest.raises(Merge3ConfigError, match="no field 'id'.*never by position"):
        _ = _task({"merge3_base_yaml": str(tmp_path / "tr.yaml"),
                   "merge3_bundle": str(cache / "tinybenchmarks" / "arc.json")}).eval_docs


def test_tasks_build_matches_and_locks_now(world, tmp_path):
    bundle_path = _bundle_copy(world, tmp_path)
    run = _build_my_arc(world, bundle_path, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "matched the 100 anchors by content" in run.stdout and lock_path(bundle_path).exists()


def test_tasks_build_num_fewshot_runs_the_task_as_the_parameters_assume(world, tmp_path, capsys):
    """A 0-shot base task, built --num-fewshot 25 (the leaderboard's shots of the imported parameters): the
    YAML says 25, the task runs 25-shot and does not warn; without it, the base's 0 shots and the warning."""
    import yaml
    from merge3_lm_eval_tasks.task import Merge3Task

    root, _, _, cache = world
    bundle_path = tmp_path / "arc.json"
    bundle_path.write_bytes((cache / "tinybenchmarks" / "arc.json").read_bytes())
    run = merge3("tasks", "build", "--bundle", str(bundle_path), "--base-yaml", str(root / "arc0.yaml"),
                 "--name", "merge3_arc25", "--num-fewshot", "25", "--out", str(tmp_path / "tasks"))
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "tasks" / "merge3_arc25.yaml").read_text()
    cfg = yaml.safe_load(text.split("\n", 2)[2])  # after the comment and the `class: !function` line
    assert cfg["num_fewshot"] == 25
    capsys.readouterr()
    assert Merge3Task(config=cfg).config.num_fewshot == 25
    assert "warning" not in capsys.readouterr().err
    plain = _task({"merge3_base_yaml": str(root / "arc0.yaml"), "merge3_bundle": str(bundle_path)})
    assert plain.config.num_fewshot == 0 and "runs 0-shot" in capsys.readouterr().err
    bad = merge3("tasks", "build", "--bundle", str(bundle_path), "--base-yaml", str(root / "arc0.yaml"),
                 "--name", "merge3_arc_bad", "--num-fewshot", "-1", "--out", str(tmp_path / "tasks"))
    assert bad.returncode == 2 and "--num-fewshot -1: a number of shots" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "tasks" / "merge3_arc_bad.yaml").exists()


def test_estimate_reads_an_imported_bundles_task_logs_through_its_lock(world, tmp_path):
    """`merge3 estimate` on logs of the merge3 task of an imported bundle: each logged document is the anchor
    whose doc_hash the lock pinned (its own doc_id in the log means nothing), so the estimates equal merge3's
    on the same answers in anchor order; a document the lock does not know is refused, naming the file."""
    from merge3_plugin.bundle import Bundle

    bundle_path = _bundle_copy(world, tmp_path)
    no_lock = merge3("estimate", "--bundle", str(bundle_path), "--samples", str(tmp_path))
    assert no_lock.returncode == 2 and "have not been matched" in no_lock.stderr
    build = _build_my_arc(world, bundle_path, tmp_path)
    assert build.returncode == 0, build.stderr
    bundle = Bundle.load(bundle_path)
    hashes = _pinned(world, bundle_path)
    scores = (np.random.default_rng(1).random(100) < 0.55).astype(float)
    log = tmp_path / "logs" / "model-a" / "samples_merge3_my_arc_2026-12-06T10-00-00.jsonl"
    log.parent.mkdir(parents=True)
    order = np.random.default_rng(2).permutation(100)  # logged in another order, numbered from 0
    log.write_text("".join(json.dumps({"doc_id": int(i), "doc_hash": hashes[k], "filter": bundle.filter,
                                       bundle.metric: float(scores[k])}) + "\n" for i, k in enumerate(order)))
    run = merge3("estimate", "--bundle", str(bundle_path), "--samples", str(tmp_path / "logs"),
                 "--task", "merge3_my_arc", "--json")
    assert run.returncode == 0, run.stderr
    (record,) = json.loads(run.stdout)
    expected = estimate(bundle, scores[None])
    assert record["n_anchors"] == 100
    assert record["estimates"] == pytest.approx({k: float(v[0]) for k, v in expected.items()}, abs=1e-9)
    log.write_text(log.read_text().replace(hashes[order[0]], "f" * 64))
    stranger = merge3("estimate", "--bundle", str(bundle_path), "--samples", str(tmp_path / "logs"),
                      "--task", "merge3_my_arc")
    assert stranger.returncode == 2 and "none of the anchors" in stranger.stderr and str(log) in stranger.stderr


def test_ready_configs_switch_to_the_imported_bundle(world, monkeypatch, tmp_path):
    from merge3_lm_eval_tasks.task import with_tinybenchmarks

    root, _, _, cache = world
    meta = {"merge3_base_yaml": str(root / "arc0.yaml"), "merge3_random_anchors": {"size": 100, "seed": 0},
            "merge3_tinybenchmarks": "arc"}
    monkeypatch.setenv("MERGE3_CACHE", str(tmp_path / "empty"))
    assert with_tinybenchmarks("t", meta) == meta  # not imported yet: random anchors
    monkeypatch.setenv("MERGE3_CACHE", str(cache))
    switched = with_tinybenchmarks("t", meta)
    assert "merge3_random_anchors" not in switched and switched["merge3_bundle"].endswith("tinybenchmarks/arc.json")
    task = _task(meta, name="merge3_ready_arc")
    assert task.config.num_fewshot == 25 and task.bundle.content_keyed  # the leaderboard's shots


def test_the_ready_configs_name_their_benchmark_and_its_metric():
    """Six benchmarks and okapi's ARC translations use the imported bundles; m_mmlu and mgsm (no source id) do
    not. Each bundle's metric is one its base task computes."""
    import yaml
    from lm_eval.tasks import TaskManager
    from merge3_lm_eval_tasks.compat import load_yaml
    from merge3_lm_eval_tasks.task import base_config
    from merge3_lm_eval_tasks.task_files import configs_dir

    index = TaskManager().task_index
    uses = {}
    for f in sorted(configs_dir().glob("merge3_*.yaml")):
        meta = yaml.safe_load(f.read_text().replace("!function ", ""))["metadata"]
        if "merge3_tinybenchmarks" in meta:
            uses[f.stem] = meta["merge3_tinybenchmarks"]
            base = (load_yaml(index[meta["merge3_base_task"]].yaml_path, resolve_func=False)
                    if "merge3_base_task" in meta else base_config(f.stem, meta))
            metrics = [m["metric"] for m in base["metric_list"]]
            assert tb.BENCHMARKS[meta["merge3_tinybenchmarks"]].metric in metrics, f.stem
    assert uses == {"merge3_arc_challenge": "arc", "merge3_gsm8k": "gsm8k", "merge3_hellaswag": "hellaswag",
                    "merge3_mmlu": "mmlu", "merge3_truthfulqa_mc2": "truthfulqa", "merge3_winogrande": "winogrande",
                    **{f"merge3_arc_{lang}": "arc" for lang in ("de", "es", "fr", "it", "nl")}}


def test_a_refused_rebuild_keeps_the_task_it_would_have_replaced(world, tmp_path):
    """`tasks build --force` onto a base task whose documents cannot hold the anchors: refused (exit 2, no
    traceback), and the YAML that was there before is put back, not deleted."""
    root, _, _, cache = world
    bundle_path = tmp_path / "arc.json"
    bundle_path.write_bytes((cache / "tinybenchmarks" / "arc.json").read_bytes())
    args = ["tasks", "build", "--bundle", str(bundle_path), "--name", "merge3_my_arc", "--out", str(tmp_path / "tasks")]
    assert merge3(*args, "--base-yaml", str(root / "arc.yaml")).returncode == 0
    yaml_path = tmp_path / "tasks" / "merge3_my_arc.yaml"
    before = yaml_path.read_text()
    (tmp_path / "tr.jsonl").write_text("".join(json.dumps({"question": f"Frage {i}", "choices": {"text": ["a"], "label": ["A"]},
                                                           "answerKey": "A"}) + "\n" for i in range(1172)))
    (tmp_path / "tr.yaml").write_text(ARC_YAML.format(name="synth_tr2", data=tmp_path / "tr.jsonl", shots=25))
    run = merge3(*args, "--base-yaml", str(tmp_path / "tr.yaml"), "--force")
    assert run.returncode == 2 and "no field 'id'" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert yaml_path.read_text() == before
    fresh = ["tasks", "build", "--bundle", str(bundle_path), "--name", "merge3_new_arc", "--out", str(tmp_path / "tasks")]
    assert merge3(*fresh, "--base-yaml", str(tmp_path / "tr.yaml")).returncode == 2
    assert not (tmp_path / "tasks" / "merge3_new_arc.yaml").exists()


def test_report_scores_an_imported_bundle_on_full_logs_through_its_lock(world, tmp_path):
    """`merge3 report` on full logs of the base task: each model's mean over every document is the truth, its
    estimates read the anchors the lock pinned (by doc_hash, whatever the log's order); the table has them."""
    from merge3_lm_eval_tasks.compat import doc_hash

    from merge3_plugin.bundle import Bundle

    docs = world[2]
    bundle_path = _bundle_copy(world, tmp_path)
    build = _build_my_arc(world, bundle_path, tmp_path)
    assert build.returncode == 0, build.stderr
    bundle = Bundle.load(bundle_path)
    pinned = _pinned(world, bundle_path)
    hashes = [doc_hash(d) for d in docs]
    assert set(pinned) <= set(hashes)
    rng = np.random.default_rng(3)
    skill = {f"model-{k}": 0.3 + 0.15 * k for k in range(4)}
    scores = {name: (rng.random(len(docs)) < p).astype(float) for name, p in skill.items()}
    for name, row in scores.items():
        log = tmp_path / "logs" / name / "samples_synth_arc_2026-12-06T10-00-00.jsonl"
        log.parent.mkdir(parents=True)
        order = rng.permutation(len(docs))
        log.write_text("".join(json.dumps({"doc_id": int(i), "doc_hash": hashes[i], "filter": bundle.filter,
                                           bundle.metric: float(row[i])}) + "\n" for i in order))
    no_task = merge3("report", "--bundle", str(bundle_path), "--samples", str(tmp_path / "logs"))
    assert no_task.returncode == 2 and "--task" in no_task.stderr
    run = merge3("report", "--bundle", str(bundle_path), "--samples", str(tmp_path / "logs"), "--task", "synth_arc",
                 "--plot", str(tmp_path / "cal.png"))
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "cal.png").exists()
    anchored = np.stack([scores[n][[hashes.index(h) for h in pinned]] for n in sorted(scores)])
    truth = np.array([scores[n].mean() for n in sorted(scores)])
    expected = estimate(bundle, anchored)
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines() if line.split()}
    assert {"anchor", "pirt", "gpirt"} <= set(rows) & set(expected)
    for name in set(rows) & set(expected):  # models, MAE against each model's mean over every document
        assert rows[name][1] == "4" and float(rows[name][2]) == pytest.approx(np.abs(expected[name] - truth).mean(),
                                                                              abs=6e-4)
    assert "4 held-out models, 100 anchors" in run.stdout and "random-subset mean" in run.stdout
