"""merge3 tasks inside lm-eval (issue #4, first piece): real lm-eval runs on the micro toy world."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from merge3_plugin.estimation import estimate
from merge3_plugin.extraction import extract
from merge3_plugin.fitting import fit_bundle
from merge3_plugin.responses import load_responses
from tests.method.test_cli import merge3

MERGED = "ta-math0.5-rev1"  # held out of the micro world's fit; its endpoints are below
ENDPOINTS = ("expert-math", "expert-rev", "base")


@pytest.fixture(scope="module")
def tasks(micro_zoo, tmp_path_factory):
    """A toy_math bundle (20 anchors) and two merge3 tasks built from it by the CLI."""
    root = tmp_path_factory.mktemp("merge3-tasks")
    matrix = load_responses([micro_zoo.responses_dir], "toy_math", "exact_match")
    bundle = extract(fit_bundle(matrix, dims=2, holdout=["base-s350", MERGED]), 20, "anchor-irt", seed=0)
    bundle.save(root / "toy_math20.json")
    base_yaml = micro_zoo.tasks_dir / "toy_math.yaml"
    # (the default name, merge3_toy_math, is a shipped task's: refused as a shadow, so it is named)
    built = merge3("tasks", "build", "--bundle", str(root / "toy_math20.json"), "--base-yaml", str(base_yaml),
                   "--name", "merge3_my_math", "--out", str(root / "tasks"))
    assert built.returncode == 0, built.stderr
    merged = merge3("tasks", "build", "--bundle", str(root / "toy_math20.json"), "--base-yaml", str(base_yaml),
                    "--name", "merge3_toy_math_merged", "--out", str(root / "tasks"), "--endpoint-samples",
                    *[str(micro_zoo.responses_dir / e) for e in ENDPOINTS])
    assert merged.returncode == 0, merged.stderr
    return root, bundle


def evaluate(micro_zoo, root, task, model, **kw):
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(root / "tasks"), include_defaults=False)
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={micro_zoo.model_path(model)}",
                                  tasks=[task], task_manager=manager, batch_size=32, device="cpu", **kw)
    return out["results"][task]


def evaluated_test_docs(micro_zoo, root, task, model, base_task="toy_math"):
    """lm-eval's results and the positions in the base task's test file of the documents it scored
    (found by content in lm-eval's own samples, not by redoing the task's choice)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(root), include_defaults=False)
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={micro_zoo.model_path(model)}",
                                  tasks=[task], task_manager=manager, batch_size=32, device="cpu", log_samples=True)
    lines = (micro_zoo.tasks_dir / base_task / "test.jsonl").read_text().splitlines()
    position = {}
    for i, line in enumerate(lines):
        doc = json.loads(line)
        position.setdefault((doc["prompt"], doc["answer"]), i)
    return out["results"][task], sorted(position[(s["doc"]["prompt"], s["doc"]["answer"])] for s in out["samples"][task])


def test_estimates_appear_in_lm_evals_results_and_equal_merge3_estimate(micro_zoo, tasks):
    root, bundle = tasks
    results = evaluate(micro_zoo, root, "merge3_toy_math_merged", MERGED)
    assert results["sample_len"] == 20
    cli = merge3("estimate", "--bundle", str(root / "toy_math20.json"), "--samples",
                 str(micro_zoo.responses_dir / MERGED), "--endpoints",
                 *[str(micro_zoo.responses_dir / e) for e in ENDPOINTS], "--json")
    assert cli.returncode == 0, cli.stderr
    expected = json.loads(cli.stdout)[0]["estimates"]
    assert set(expected) == {"anchor", "pirt", "gpirt", "mpirt", "gmpirt"}
    for name, value in expected.items():
        assert results[f"exact_match_{name},none"] == pytest.approx(value, abs=1e-6), name
    # the base metric is lm-eval's own, on the anchors
    logged = load_responses([micro_zoo.responses_dir / MERGED], "toy_math", "exact_match")
    anchor_scores = logged.scores[0, bundle.anchor_columns()]
    assert results["exact_match,none"] == pytest.approx(anchor_scores.mean())


def test_limit_only_drops_anchors_and_order_does_not_matter(micro_zoo, tasks):
    root, bundle = tasks
    results = evaluate(micro_zoo, root, "merge3_my_math", "base-s350", limit=7)
    assert results["sample_len"] == 7
    logged = load_responses([micro_zoo.responses_dir / "base-s350"], "toy_math", "exact_match")
    row = logged.scores[:, bundle.anchor_columns()].copy()
    row[:, 7:] = np.nan  # --limit 7 runs the first 7 anchors
    expected = estimate(bundle, row)
    assert {k.split(",")[0] for k in results if k.startswith("exact_match_") and "stderr" not in k} == {
        "exact_match_anchor", "exact_match_pirt", "exact_match_gpirt"}
    for name, value in expected.items():
        assert results[f"exact_match_{name},none"] == pytest.approx(value[0], abs=1e-6)
    # the aggregation itself: a shuffled list of (item key, score) pairs gives the same estimate
    from merge3_lm_eval_tasks.task import _aggregate

    pairs = [(d, float(s)) for d, s in zip(bundle.anchors.doc_ids, logged.scores[0, bundle.anchor_columns()])]
    shuffled = [pairs[i] for i in np.random.default_rng(0).permutation(len(pairs))]
    assert _aggregate(bundle, "gpirt", None, pairs) == _aggregate(bundle, "gpirt", None, shuffled)


def test_a_broken_or_foreign_bundle_fails_at_task_load(micro_zoo, tasks, tmp_path):
    from merge3_lm_eval_tasks.task import Merge3ConfigError, Merge3Task

    root, bundle = tasks
    base_yaml = str(micro_zoo.tasks_dir / "toy_math.yaml")

    def load(metadata):
        return Merge3Task(config={"task": "merge3_x", "metadata": metadata})

    with pytest.raises(Merge3ConfigError, match="merge3_x: metadata.merge3_bundle: .*no such bundle"):
        load({"merge3_bundle": str(tmp_path / "none.json"), "merge3_base_yaml": base_yaml})
    with pytest.raises(Merge3ConfigError, match="merge3_base_yaml: no such file"):
        load({"merge3_bundle": str(root / "toy_math20.json"), "merge3_base_yaml": str(tmp_path / "x.yaml")})
    # a bundle of another task (same size, other documents) is caught by lm-eval's own doc hash
    lang = load_responses([micro_zoo.responses_dir], "toy_lang", "exact_match")
    extract(fit_bundle(lang, dims=1), 10, "random").save(tmp_path / "lang.json")
    with pytest.raises(Merge3ConfigError, match="differs from the one the bundle was fit on"):
        load({"merge3_bundle": str(tmp_path / "lang.json"), "merge3_base_yaml": base_yaml})
    # a bundle of a longer dataset: its anchors point past the end of this one
    from tests.irt_helpers import synthetic_matrix

    longer, _, _ = synthetic_matrix(12, 400, 1)
    anchored_long = extract(fit_bundle(longer, dims=1), 30, "stratified")
    assert max(anchored_long.anchors.doc_ids) >= 200
    anchored_long.save(tmp_path / "long.json")
    with pytest.raises(Merge3ConfigError, match=r"lie outside the dataset \(200 documents\)"):
        load({"merge3_bundle": str(tmp_path / "long.json"), "merge3_base_yaml": base_yaml})
    unanchored = tmp_path / "fit.json"
    fit_bundle(lang, dims=1).save(unanchored)
    with pytest.raises(Merge3ConfigError, match="no anchors yet"):
        load({"merge3_bundle": str(unanchored), "merge3_base_yaml": base_yaml})


def test_tasks_build_refuses_bad_names_and_overwrites(tasks, micro_zoo):
    root, _ = tasks
    args = ["tasks", "build", "--bundle", str(root / "toy_math20.json"), "--out", str(root / "tasks"),
            "--name", "merge3_my_math"]
    base = ["--base-yaml", str(micro_zoo.tasks_dir / "toy_math.yaml")]
    for extra, message in ((base, "exists; pass --force"), (base + ["--name", "arc_easy"], "starting with merge3_"),
                           (base + ["--name", "merge3_toy_math"], "merge3 ships a task of this name"),
                           ([], "--base-yaml PATH"), (base + ["--base-task", "x"], "--base-yaml PATH")):
        run = merge3(*args, *extra)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
    assert merge3("tasks", "path").stdout.strip().endswith("tasks")


@pytest.mark.slow
def test_lm_eval_cli_runs_merge3_tasks_by_glob(micro_zoo, tasks, tmp_path):
    root, _ = tasks
    run = subprocess.run([sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
                          f"pretrained={micro_zoo.model_path('variant1')}", "--include_path", str(root / "tasks"),
                          "--tasks", "merge3_*", "--batch_size", "32", "--device", "cpu", "--output_path",
                          str(tmp_path / "out"), "--log_samples"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())["results"]
    assert {"merge3_my_math", "merge3_toy_math_merged"} <= set(results)
    assert "exact_match_gpirt,none" in results["merge3_my_math"]
    assert "exact_match_gmpirt,none" in results["merge3_toy_math_merged"]
    assert "exact_match_gpirt" in run.stdout  # lm-eval's printed table
    # merge3 estimate reads the merge3 task's own logs for its bundle (issue #12: it refused them);
    # its estimate equals the one lm-eval reported
    cli = merge3("estimate", "--bundle", str(root / "toy_math20.json"), "--samples", str(tmp_path / "out"), "--json",
                 "--task", "merge3_my_math")
    assert cli.returncode == 0, cli.stderr
    (record,) = json.loads(cli.stdout)
    assert record["n_anchors"] == 20
    assert record["estimates"]["gpirt"] == pytest.approx(results["merge3_my_math"]["exact_match_gpirt,none"], abs=1e-9)
    other = next((tmp_path / "out").rglob("samples_merge3_toy_math_merged_*.jsonl"))
    named = merge3("estimate", "--bundle", str(root / "toy_math20.json"), "--samples", str(other))
    assert named.returncode == 2 and "samples of task 'merge3_toy_math_merged', not of 'toy_math'" in named.stderr


def test_random_anchor_mode_runs_without_a_bundle(micro_zoo, tmp_path):
    """The benchmark configs' mode: seeded random anchors, the base metric as the plain anchor mean."""
    from merge3_lm_eval_tasks.task import Merge3ConfigError, Merge3Task

    folder = tmp_path / "tasks"
    folder.mkdir()
    for name, seed in (("merge3_rnd", 3), ("merge3_rnd_again", 3), ("merge3_rnd_other", 4)):
        (folder / f"{name}.yaml").write_text(
            f"class: !function merge3_lm_eval_tasks.task.Merge3Task\ntask: {name}\ntag: [merge3]\nmetadata:\n"
            f"  merge3_base_yaml: {micro_zoo.tasks_dir / 'toy_math.yaml'}\n"
            f"  merge3_random_anchors: {{size: 12, seed: {seed}}}\n")
    results, chosen = evaluated_test_docs(micro_zoo, folder, "merge3_rnd", "expert-math")
    logged = load_responses([micro_zoo.responses_dir / "expert-math"], "toy_math", "exact_match")
    columns = [list(logged.doc_ids).index(d) for d in chosen]
    assert results["sample_len"] == 12 and len(set(chosen)) == 12
    assert results["exact_match,none"] == pytest.approx(logged.scores[0, columns].mean())
    assert not any("gpirt" in k for k in results)
    assert evaluated_test_docs(micro_zoo, folder, "merge3_rnd_again", "expert-math")[1] == chosen  # seeded
    assert evaluated_test_docs(micro_zoo, folder, "merge3_rnd_other", "expert-math")[1] != chosen
    with pytest.raises(Merge3ConfigError, match="merge3_random_anchors must be"):
        Merge3Task(config={"task": "merge3_x", "metadata": {"merge3_random_anchors": {"size": "ten"},
                                                             "merge3_base_yaml": str(micro_zoo.tasks_dir / "toy_math.yaml")}})


def test_benchmark_configs_and_shipped_tasks_validate_offline(tmp_path):
    from merge3_lm_eval_tasks.task_files import configs_dir, shipped_tasks_dir

    run = merge3("tasks", "check", str(configs_dir()), str(shipped_tasks_dir()))
    assert run.returncode == 0, run.stderr
    for name in ("merge3_arc_challenge", "merge3_gsm8k", "merge3_hellaswag", "merge3_m_mmlu_en", "merge3_winogrande",
                 "merge3_truthfulqa_mc2", "merge3_arc_it", "merge3_m_mmlu_nl", "merge3_mgsm_direct_de",
                 "merge3_toy_math_l2"):
        assert name in run.stdout
    bad = tmp_path / "merge3_bad.yaml"
    bad.write_text("class: !function merge3_lm_eval_tasks.task.Merge3Task\ntask: merge3_bad\nmetadata:\n"
                   "  merge3_base_task: no_such_task_anywhere\n  merge3_random_anchors: {size: 5}\n")
    run = merge3("tasks", "check", str(bad))
    assert run.returncode == 2 and "no_such_task_anywhere" in run.stderr and str(bad) in run.stderr
