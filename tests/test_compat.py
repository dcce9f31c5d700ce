"""Contracts of the private, deprecated or copied upstream APIs merge3 relies on (the compat modules).

Cheap on purpose: each checks one promise on the installed lm-eval / mergekit / torch, so that an
upgrade which breaks one fails here, naming it, instead of deep inside a search.
"""

from __future__ import annotations

import json

import pytest


# -- lm-eval ------------------------------------------------------------------------------------
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


# -- mergekit and torch -------------------------------------------------------------------------
def _plan(tiny_world, weight: float = 0.5):
    from mergekit.architecture import get_architecture_info
    from mergekit.config import MergeConfiguration
    from mergekit.options import MergeOptions

    from mergekit_ext.compat import plan_merge

    m = tiny_world.root / "models"
    config = MergeConfiguration.model_validate({
        "merge_method": "task_arithmetic", "base_model": str(m / "base"), "dtype": "float32",
        "models": [{"model": str(m / "expert-math"), "parameters": {"weight": weight}},
                   {"model": str(m / "expert-lang"), "parameters": {"weight": 0.5}}]})
    options = MergeOptions(copy_tokenizer=False, lazy_unpickle=False, quiet=True)
    return plan_merge(config, get_architecture_info(config, options), options)


def test_plan_merge_covers_every_weight_of_the_model(tiny_world):
    from safetensors.torch import load_file

    planned = _plan(tiny_world)
    names = {weight.name for weight, _ in planned}
    stored = set(load_file(tiny_world.model_path("base") / "model.safetensors"))
    assert stored - {"lm_head.weight"} <= names and all(hasattr(task, "arguments") for _, task in planned)


def test_gather_keys_of_two_plans_compare_equal_where_mergekit_tasks_do_not(tiny_world):
    from mergekit.io.tasks import GatherTensors

    from mergekit_ext.compat import gather_key
    from mergekit_ext.inmemory import _input_tasks

    first = _input_tasks([task for _, task in _plan(tiny_world, 0.3)])
    second = _input_tasks([task for _, task in _plan(tiny_world, 0.7)])
    assert first and all(isinstance(t, GatherTensors) for t in first)
    assert {gather_key(t) for t in first} == {gather_key(t) for t in second}
    if first[0] == second[0]:  # mergekit made equality structural: gather_key is no longer needed
        pytest.fail("mergekit's GatherTensors now compare equal across plans; simplify compat.gather_key")


def test_model_configs_are_read_once_and_the_method_restored(tiny_world, monkeypatch):
    from mergekit.common import ModelReference

    from mergekit_ext.compat import model_configs_memoised

    original = ModelReference.config
    reads = []
    monkeypatch.setattr(ModelReference, "config", lambda self, trust_remote_code=False: reads.append(1) or
                        original(self, trust_remote_code=trust_remote_code))
    patched = ModelReference.config
    reference = ModelReference.model_validate(str(tiny_world.model_path("base")))
    cache: dict = {}
    with model_configs_memoised(cache):
        first, second = reference.config(), reference.config()
    assert len(reads) == 1 and first.num_hidden_layers == second.num_hidden_layers == 4 and first is not second
    assert ModelReference.config is patched


def test_tensor_versions_count_in_place_writes():
    import torch

    from mergekit_ext.compat import tensor_versions

    values = {"a": torch.zeros(3), "b": torch.ones(2)}
    before = tensor_versions(values)
    values["a"].add_(1.0)
    after = tensor_versions(values)
    assert after[0] > before[0] and after[1] == before[1]


def test_the_shared_merge3_tag_is_not_reported_as_an_override(tmp_path, caplog):
    """Two task folders with tasks tagged `merge3` (the shipped ones and the user's): lm-eval's index
    logs an override warning for the tag; merge3's filter drops that one line and no other."""
    import logging

    from lm_eval.tasks import TaskManager

    from merge3_lm_eval_tasks.compat import quiet_shared_tag_notice

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
