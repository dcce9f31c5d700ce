"""mergekit-evolve-lite end to end on the micro toy world (issue #5): outputs, resume, --save-model, select."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml


@pytest.fixture(scope="module")
def setup(micro_zoo, micro_tasks, tmp_path_factory):
    """merge3 toy tasks fit on the micro world (20 anchors) and an evolve config around a TA merge."""

    root = tmp_path_factory.mktemp("evolve")
    micro_tasks(root / "tasks")
    models = micro_zoo.root / "models"
    config = root / "evolve.yaml"
    config.write_text(textwrap.dedent(f"""\
        merge_method: task_arithmetic
        base_model: {models / 'base'}
        models:
          - model: {models / 'expert-math'}
            parameters: {{weight: 0.5}}
          - model: {models / 'expert-lang'}
            parameters: {{weight: 0.5}}
        dtype: float32
        evolve:
          search:
            weight: [0.0, 1.5]
          granularity: 2
          fitness:
            - {{task: merge3_toy_math_l2, metric: exact_match, estimator: gmpirt}}
          algorithm: {{name: ga, pop_size: 6}}
          budget: {{evaluations: 12}}
          keep_config: {{holdout_items: 30, challengers: 2}}
          seed: 0
          include_path: [{root / 'tasks'}]
          include_defaults: false
        """))
    return root, config


def evolve(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mergekit_ext.cli", *map(str, args), "--quiet"], capture_output=True,
                          text=True, timeout=600)


def test_a_run_writes_its_outputs_and_resume_replays_to_the_same_result(setup, tmp_path):
    root, config = setup
    full = evolve(config, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr[-3000:]
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["evaluations"] == 12 and summary["genes"] == 4
    assert 0 < summary["best_objectives"][0] <= 1
    history = [json.loads(line) for line in (tmp_path / "full" / "history.jsonl").read_text().splitlines()]
    assert len(history) == 12 and all(0 <= r["objectives"][0] <= 1 for r in history)
    assert {"merge_seconds", "eval_seconds", "config_hash", "genes", "details"} <= set(history[0])
    # never worse than your config: it was scored, met the 2 best candidates on 30 held-out items, and
    # best.yaml is the one the duel chose
    duel = summary["never_worse"]
    mine = json.loads((tmp_path / "full" / "your_config.jsonl").read_text())
    held = [json.loads(line) for line in (tmp_path / "full" / "held_out.jsonl").read_text().splitlines()]
    assert summary["your_config_objectives"] == mine["objectives"] and len(held) == 3
    assert all(r["items"] == 30 and len(r["details"]["per_item"]["merge3_toy_math_l2"]["exact_match"]) == 30
               for r in held)
    assert summary["best_is_your_config"] == (duel["chosen"] == "your config")
    if summary["best_is_your_config"]:
        assert summary["best_objectives"] == mine["objectives"] and "best.yaml is your config" in full.stdout
    else:
        assert duel["difference"] > 2 * duel["se"] and "beats your config by" in full.stdout
        assert summary["best_objectives"] == [r for r in history if r["config_hash"] == duel["challenger"]][0][
            "objectives"]
    for name in ("best.yaml", "checkpoint.json", "fitness.png"):
        assert (tmp_path / "full" / name).exists()
    best = yaml.safe_load((tmp_path / "full" / "best.yaml").read_text())
    assert best["merge_method"] == "task_arithmetic" and "evolve" not in best

    # interrupted after 7 candidates (the 8th line cut short), then resumed
    (tmp_path / "cut").mkdir()
    lines = (tmp_path / "full" / "history.jsonl").read_text().splitlines()
    (tmp_path / "cut" / "history.jsonl").write_text("\n".join(lines[:7]) + "\n" + lines[7][:40])
    refused = evolve(config, "--out", tmp_path / "cut")
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = evolve(config, "--out", tmp_path / "cut", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert again["replayed_from_history"] >= 7 and again["evaluated_this_run"] <= 5
    assert again["best_objectives"] == summary["best_objectives"]
    assert again["best_config_hash"] == summary["best_config_hash"]

    # resumed again (the first resume dropped the cut line before appending), now with --save-model: the
    # winner as a model folder lm-eval and transformers load, with the winner's weights
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergekit_ext.merging.inmemory import InMemoryMerger

    assert not (tmp_path / "cut" / "best_model").exists()
    saved = evolve(config, "--out", tmp_path / "cut", "--resume", "--save-model")
    assert saved.returncode == 0, saved.stderr[-3000:]
    folder = tmp_path / "cut" / "best_model"
    AutoModelForCausalLM.from_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder).encode("3+4=")
    expected = InMemoryMerger(best).merge(best)
    written = load_file(folder / "model.safetensors")
    assert [k for k in expected if not torch.equal(written[k], expected[k])] == []


def test_dry_run_lists_genes_and_bad_input_exits_2(setup, tmp_path):
    root, config = setup
    dry = evolve(config, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("4 genes") and "expert-lang.weight@1" in dry.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("weight: [0.0, 1.5]", "wieght: [0.0, 1.5]"))
    run = evolve(bad, "--out", tmp_path / "o")
    assert run.returncode == 2 and "evolve.search.wieght" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "o").exists()
    # a fitness task that does not exist: found by --dry-run, and by a run before any model loads (#12)
    missing = tmp_path / "missing.yaml"
    missing.write_text(config.read_text().replace("task: merge3_toy_math_l2", "task: merge3_toy_math_l3"))
    for args in (["--dry-run"], ["--out", tmp_path / "o2"]):
        run = evolve(missing, *args)
        assert run.returncode == 2 and "'evolve.fitness.0.task': unknown task 'merge3_toy_math_l3'" in run.stderr
        assert "did you mean 'merge3_toy_math_l2'" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize("algorithm", ["nsga3", "parego"])
def test_several_objectives_give_a_pareto_front(setup, tmp_path, algorithm):
    root, config = setup
    multi = tmp_path / "multi.yaml"
    text = config.read_text().replace(
        "    - {task: merge3_toy_math_l2, metric: exact_match, estimator: gmpirt}\n",
        "    - {task: merge3_toy_math, metric: exact_match, estimator: gpirt}\n"
        "    - {task: merge3_toy_lang, metric: exact_match, estimator: gpirt}\n"
        "  objectives: multi\n").replace("name: ga, pop_size: 6", f"name: {algorithm}, pop_size: 6")
    multi.write_text(text)
    run = evolve(multi, "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    points = sorted((tmp_path / "out" / "pareto").glob("point*.yaml"))
    assert summary["pareto_points"] == len(points) >= 1 and len(summary["best_objectives"]) == 2
    assert (tmp_path / "out" / "pareto.png").exists()
    history_text = (tmp_path / "out" / "history.jsonl").read_text()
    lines = [json.loads(line) for line in history_text.splitlines()]
    candidates = [r for r in lines if r.get("kind") != "generation"]
    assert all(len(r["objectives"]) == 2 for r in candidates)
    # the hypervolume after every generation: in history.jsonl, summary.json, and never falling (an
    # elitist front only grows); the last equals the final front's
    generations = [r for r in lines if r.get("kind") == "generation"]
    assert [g["generation"] for g in generations] == list(range(1, len(generations) + 1)) and generations
    hv = summary["hypervolume_per_generation"]
    assert hv == [g["hypervolume"] for g in generations] and hv == sorted(hv) and 0 < hv[-1] <= 1
    assert summary["hypervolume"] == pytest.approx(hv[-1])
    # best.yaml is the Pareto point with the highest mean, pareto/point000.yaml, and the closing line
    # names each objective
    assert (tmp_path / "out" / "best.yaml").read_text() == points[0].read_text()
    assert "highest mean" in summary["best_rule"]
    said = run.stdout.splitlines()[0]
    assert said.startswith("best.yaml: merge3_toy_math exact_match (gpirt) ") and "merge3_toy_lang" in said
    assert "hypervolume" in said
    # a resumed finished run replays every generation without writing its line again
    again = evolve(multi, "--out", tmp_path / "out", "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "out" / "history.jsonl").read_text() == history_text


def test_select_stage_rescores_the_best_candidates_and_chooses_on_the_new_scores(setup, micro_zoo, tmp_path):
    """Multi-fidelity: the top 3 distinct candidates of the search are scored again on every test item of
    toy_math_l2 (the plain lm-eval task); best.yaml is the best of them there, and a resumed run
    reuses those scores."""
    from mergekit_ext.search import config_hash

    root, config = setup
    selecting = tmp_path / "select.yaml"
    selecting.write_text(config.read_text().replace("keep_config: {holdout_items: 30, challengers: 2}",
                                                    "keep_config: false").replace(
        "  include_path: [", "  select:\n    top: 3\n    fitness:\n"
        "      - {task: toy_math_l2, metric: exact_match, estimator: null}\n"
        f"  include_path: [{micro_zoo.tasks_dir}, "))
    run = evolve(selecting, "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    rescored = [json.loads(line) for line in (out / "selection.jsonl").read_text().splitlines()]
    by_search = sorted({r["config_hash"]: r["objectives"][0] for r in history}.items(), key=lambda kv: -kv[1])
    assert [r["config_hash"] for r in rescored] == [h for h, _ in by_search[:3]]
    winner = max(rescored, key=lambda r: r["objectives"][0])
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert config_hash(best) == winner["config_hash"] == summary["best_config_hash"]
    assert summary["best_selected_objectives"] == winner["objectives"]
    # the full task's accuracy is a multiple of 1/200 (the micro world's test items), unlike the estimate
    assert all(abs(r["objectives"][0] * 200 - round(r["objectives"][0] * 200)) < 1e-9 for r in rescored)

    again = evolve(selecting, "--out", out, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len((out / "selection.jsonl").read_text().splitlines()) == 3
    assert json.loads((out / "summary.json").read_text())["best_config_hash"] == summary["best_config_hash"]


def test_the_evaluation_budget_is_exact(setup, tmp_path):
    """budget: {evaluations: 7} with a population of 6: the second generation is cut short after one
    candidate; never more candidates than asked (issue #12: 6 ran 8)."""
    root, config = setup
    cut = tmp_path / "evolve.yaml"
    cut.write_text(config.read_text().replace("budget: {evaluations: 12}", "budget: {evaluations: 7}"))
    run = evolve(cut, "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    history = (tmp_path / "out" / "history.jsonl").read_text().splitlines()
    assert summary["candidates_this_run"] == 7 and len(history) == summary["evaluated_this_run"] <= 7
    assert "7 candidates" in run.stdout and 0 < summary["best_objectives"][0] <= 1


def test_a_depth_search_runs_end_to_end(setup, micro_zoo, tmp_path):
    """`space: depth` through the CLI (examples/depth_stack.yaml, smaller): 5 layer slots (the live model
    is built 5 deep), best.yaml a passthrough stack that mergekit-yaml runs, the saved model 5 layers deep."""
    from .evolve_helpers import example_config

    root, config = setup
    path = example_config("depth_stack.yaml", micro_zoo, root / "tasks", tmp_path, {
        "slots: 6": "slots: 5", "pop_size: 16": "pop_size: 4", "evaluations: 96": "evaluations: 8"})
    dry = evolve(path, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("5 genes: one per layer slot"), dry.stdout + dry.stderr
    run = evolve(path, "--out", tmp_path / "out", "--save-model")
    assert run.returncode == 0, run.stderr[-3000:]
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert best["merge_method"] == "passthrough" and len(best["slices"]) == 5
    saved = json.loads((tmp_path / "out" / "best_model" / "config.json").read_text())
    assert saved["num_hidden_layers"] == 5
    # the tokenizer files copied as mergekit-yaml copies them, byte for byte (issue #12)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "out" / "best_model" / name).read_bytes() == (micro_zoo.model_path("base") / name).read_bytes()
    history = [json.loads(line) for line in (tmp_path / "out" / "history.jsonl").read_text().splitlines()]
    # binned genes often land on the same stack: such duplicates are answered from the history
    assert 4 <= len(history) <= 8 and len({r["config_hash"] for r in history}) == len(history)
    assert all(0 <= r["objectives"][0] <= 1 for r in history)
    # one count (issue #12): 8 candidates asked, each evaluated now or a repeat; none "from history"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    checkpoint = json.loads((tmp_path / "out" / "checkpoint.json").read_text())
    assert summary["candidates_this_run"] == checkpoint["candidates"] == 8
    assert summary["evaluated_this_run"] == len(history) and summary["replayed_from_history"] == 0
    assert summary["evaluated_this_run"] + summary["repeated_this_run"] == 8


def test_a_layer_fusion_search_runs_end_to_end_with_one_bar_on_the_console(setup, micro_zoo, tmp_path):
    """`space: lfs` through the CLI (examples/layer_fusion.yaml, smaller; issue #14): best.yaml is a recipe
    whose own header command (stock mergekit-multi) rebuilds --save-model's weights bit for bit; the warm
    start's rows are scored first; the console shows merge3's bar only, the libraries' output is in evolve.log."""
    from safetensors.torch import load_file

    from .evolve_helpers import example_config

    root, _ = setup
    path = example_config("layer_fusion.yaml", micro_zoo, root / "tasks", tmp_path, {
        "pop_size: 16": "pop_size: 6", "budget: {evaluations: 96}": "budget: {evaluations: 8}\n  keep_config: false"})
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "mergekit_ext.cli", str(path), "--out", str(out), "--save-model"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    shown = [part for part in run.stderr.replace("\r", "\n").split("\n") if part.strip()]
    assert shown and all(part.startswith("evolve:") for part in shown), shown[:5]
    assert (out / "evolve.log").stat().st_size > 0 and "best.yaml: merge3_toy_math_l2" in run.stdout

    text = (out / "best.yaml").read_text()
    docs = list(yaml.safe_load_all(text))
    assert [d.get("name") for d in docs] == ["lfs-group0", "lfs-group1", "lfs-group2", "lfs-group3", None]
    command = text.splitlines()[0].split("`")[1].replace("THIS.yaml", str(out / "best.yaml"))
    assert command.startswith("mergekit-multi ")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reproduce"].startswith("mergekit-multi ")
    script = str(Path(sys.executable).with_name("mergekit-multi"))
    rebuilt = subprocess.run([script, *command.split()[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    ours = load_file(out / "best_model" / "model.safetensors")
    theirs = load_file(tmp_path / "merged" / "model.safetensors")
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k].view(torch.int32), theirs[k].view(torch.int32)) for k in ours)

    from mergekit_ext.config import load_config
    from mergekit_ext.spaces.lfs import LayerFusionSpace

    rows = LayerFusionSpace(load_config(path)).warm_start()
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert np.allclose([r["genes"] for r in history[:len(rows)]], rows)
    # the budget in items: 20 anchors per candidate, and 20 for each of the 3 endpoints' abilities (gmp-IRT)
    assert {r["items"] for r in history} == {20}
    assert summary["items_evaluated"] == {"candidates": 20 * len(history), "select": 0, "your_config": 0,
                                          "held_out": 0, "endpoints": 60, "total": 20 * len(history) + 60}
    assert f"{20 * len(history) + 60} items evaluated" in run.stdout


def test_a_dis_search_runs_end_to_end_and_mergekit_yaml_rebuilds_its_best(setup, micro_zoo, tmp_path):
    """`space: depth` with `mode: dis` through the CLI (issue #14): candidates 4 or 5 layers deep on one live
    model; best.yaml (a passthrough stack) rebuilt by stock mergekit-yaml equals --save-model's weights."""
    from safetensors.torch import load_file

    from .evolve_helpers import example_config

    root, _ = setup
    path = example_config("depth_stack.yaml", micro_zoo, root / "tasks", tmp_path, {
        "space_options: {slots: 6}": "space_options: {mode: dis}\n  warm_start: true",
        "merge_method: passthrough": f"merge_method: passthrough\nbase_model: {micro_zoo.root / 'models' / 'base'}",
        "pop_size: 16": "pop_size: 6", "evaluations: 96": "evaluations: 8"})
    out = tmp_path / "out"
    run = evolve(path, "--out", out, "--save-model")
    assert run.returncode == 0, run.stderr[-3000:]
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(history) >= 4 and all(0 <= r["objectives"][0] <= 1 for r in history)
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["merge_method"] == "passthrough" and 4 <= len(best["slices"]) <= 5
    script = str(Path(sys.executable).with_name("mergekit-yaml"))
    rebuilt = subprocess.run([script, str(out / "best.yaml"), str(tmp_path / "merged")], capture_output=True,
                             text=True, timeout=600)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    ours, theirs = load_file(out / "best_model" / "model.safetensors"), load_file(tmp_path / "merged" / "model.safetensors")
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    saved = json.loads((out / "best_model" / "config.json").read_text())
    assert saved["num_hidden_layers"] == len(best["slices"])
