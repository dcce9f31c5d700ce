"""Contracts of the private, deprecated or copied lm-eval APIs merge3 relies on (lm_eval_tasks/compat.py).

Cheap on purpose: each checks one promise on the installed lm-eval, so that an upgrade which breaks
one fails here, naming it, instead of deep inside a search.
"""

from __future__ import annotations

import json


def test_load_yaml_resolves_includes(tmp_path):
    from merge3_lm_eval_tasks.compat import load_yaml

    (tmp_path / "base.yaml").write_text("output_type: generate_until\nmetric_list:\n  - metric: exact_match\n")
    (tmp_path / "task.yaml").write_text("include: base.yaml\ntask: demo\n")
    config = load_yaml(tmp_path / "task.yaml", resolve_func=False)
    assert config["task"] == "demo" and config["output_type"] == "generate_until"


def test_doc_hash_is_the_one_lm_eval_writes_in_its_sample_logs(micro_zoo):
    from merge3_lm_eval_tasks.compat import doc_hash

    log = next((micro_zoo.responses_dir / "base").glob("samples_toy_math_*.jsonl"))
    rows = [json.loads(line) for line in log.read_text().splitlines()[:20]]
    assert rows and all(doc_hash(row["doc"]) == row["doc_hash"] for row in rows)


def test_task_loading_and_the_public_metric_hooks(micro_zoo):
    """TaskManager.load() (not the deprecated get_task_dict) gives the tasks; a ConfigurableTask's public
    aggregation() / higher_is_better() name its metrics (Merge3Task extends both)."""
    from lm_eval.tasks import TaskManager

    from merge3_lm_eval_tasks.compat import load_tasks

    assert hasattr(TaskManager, "load"), "lm-eval lost TaskManager.load(); compat falls back to get_task_dict"
    manager = TaskManager(include_path=str(micro_zoo.tasks_dir), include_defaults=False)
    loaded = load_tasks(manager, ["toy_math"])
    task = loaded["tasks"]["toy_math"]
    assert "exact_match" in task.aggregation() and task.higher_is_better()["exact_match"] is True


def test_env_info_is_collected_once_and_still_reported():
    import lm_eval.evaluator as evaluator

    from merge3_lm_eval_tasks.compat import cache_env_info

    assert callable(evaluator.add_env_info), "lm_eval.evaluator.add_env_info is gone"
    original = evaluator.add_env_info
    try:
        cache_env_info()
        first, second = {}, {}
        evaluator.add_env_info(first)
        evaluator.add_env_info(second)
        assert first and first == second and "pretty_env_info" in first
    finally:
        evaluator.add_env_info = original




def test_the_shared_merge3_tag_is_not_reported_as_an_override(tmp_path, caplog, monkeypatch):
    """Two task folders with tasks tagged `merge3` (the shipped ones and the user's): lm-eval's index
    logs an override warning for the tag; merge3's filter drops that one line and no other."""
    import logging

    from lm_eval.tasks import TaskManager

    from merge3_lm_eval_tasks.compat import quiet_shared_tag_notice

    # The start-up hook (installed in a developer's venv) may have put the filter in place already;
    # lm-eval's own behaviour is checked without it, and the logger is left as it was found.
    index_log = logging.getLogger("lm_eval.tasks._index")
    monkeypatch.setattr(index_log, "filters", [])

    for folder, name in (("a", "demo_one"), ("b", "demo_two")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{name}.yaml").write_text(
            f"task: {name}\ntag: [merge3, demo_tag]\ndataset_path: json\noutput_type: generate_until\n"
            "doc_to_text: q\ndoc_to_target: a\n")
    paths = [str(tmp_path / "a"), str(tmp_path / "b")]
    with caplog.at_level(logging.WARNING, logger="lm_eval.tasks._index"):
        TaskManager(include_path=paths, include_defaults=False)
    said = [r.getMessage() for r in caplog.records if "overrides existing task" in r.getMessage()]
    assert any("'merge3'" in m for m in said), "lm-eval no longer warns about shared tags: drop the filter"
    quiet_shared_tag_notice()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lm_eval.tasks._index"):
        TaskManager(include_path=paths, include_defaults=False)
    said = [r.getMessage() for r in caplog.records if "overrides existing task" in r.getMessage()]
    assert not any("'merge3'" in m for m in said) and any("'demo_tag'" in m for m in said)


def test_every_evaluation_draws_the_shots_lm_eval_draws(micro_zoo, micro_tasks, tmp_path):
    """A bare `evaluate` leaves a task's few-shot sampler unseeded; `api.evaluate_tasks` seeds it as
    `lm_eval`/`simple_evaluate` do (lm_eval.defaults.DEFAULT_OTHER_SEED), so each candidate of a search is
    asked with the same shots, and with the ones `lm_eval --tasks ...` uses."""
    import torch
    from lm_eval.api.task import Task
    from lm_eval.defaults import DEFAULT_OTHER_SEED
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from merge3_lm_eval_tasks import api

    assert hasattr(Task, "set_fewshot_seed") and isinstance(DEFAULT_OTHER_SEED, int)
    tasks = micro_tasks(tmp_path / "tasks")
    folder = micro_zoo.root / "models" / "expert-math"
    torch.set_num_threads(1)
    lm = api.wrap_live_model(AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder), 32,
                             "cpu")
    manager = api.task_manager(str(tasks), include_defaults=False)
    task_dict = api.build_tasks(manager, {**api.task_config(manager, "merge3_toy_math"), "num_fewshot": 3})

    def prompts() -> list[str]:
        samples = api.evaluate_tasks(lm, task_dict, log_samples=True)["samples"]["merge3_toy_math"]
        return [s["arguments"][0][0] for s in sorted(samples, key=lambda s: s["doc_id"])]

    first, second = prompts(), prompts()
    assert first == second and first[0].count("\n\n") == 3  # three shots, the same ones both times
    (task,) = task_dict["tasks"].values()
    task.set_fewshot_seed(seed=DEFAULT_OTHER_SEED)
    assert first[0].startswith(task.fewshot_context(task.eval_docs[0], num_fewshot=3)[:20])
