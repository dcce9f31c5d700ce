"""`evolve.warm_start` (issue #14): the first generation holds the config's own values and the endpoints
(each model alone; both ends of t), the rest drawn at random; a space or algorithm without a warm start
is refused when the config loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from merge3_plugin.errors import UserError
from mergekit_ext.config import load_config
from mergekit_ext.spaces.genes import space_for

from .evolve_helpers import example_config, write_ta_config
from .test_evolve_config import EVOLVE, write


def test_rows_are_the_config_values_then_each_model_alone(tiny_world, tmp_path):
    # TIES, weight in [0, 1] and density in [0.1, 1], 2 layer groups x 3 parameter sets: the config says
    # weight 0.5 and density 0.5 for both experts
    space = space_for(load_config(write(tmp_path, tiny_world, EVOLVE)))
    rows = space.warm_start()
    assert rows.shape == (3, space.dims)
    own = space.to_config(rows[0])
    for model in own["models"]:
        weights = {v["value"] if not isinstance(v["value"], list) else tuple(v["value"]) for v in
                   model["parameters"]["weight"]}
        densities = {v["value"] if not isinstance(v["value"], list) else tuple(v["value"]) for v in
                     model["parameters"]["density"]}
        assert weights == {(0.5, 0.5)} and densities == {(0.5, 0.5)}
    for i, row in enumerate(rows[1:]):  # model i at weight 1, the other at 0; densities as configured
        merged = space.to_config(row)
        for j, model in enumerate(merged["models"]):
            assert {tuple(v["value"]) for v in model["parameters"]["weight"]} == {(1.0, 1.0) if i == j else (0.0, 0.0)}
            assert {tuple(v["value"]) for v in model["parameters"]["density"]} == {(0.5, 0.5)}


def test_slerp_starts_at_its_t_and_both_ends(tiny_world, tmp_path):
    m = tiny_world.root / "models"
    path = tmp_path / "slerp.yaml"
    path.write_text(yaml.safe_dump({
        "merge_method": "slerp", "base_model": str(m / "expert-math"), "dtype": "float32", "parameters": {"t": 0.3},
        "models": [{"model": str(m / "expert-math")}, {"model": str(m / "expert-lang")}],
        "evolve": {"search": {"t": [0.0, 1.0]}, "fitness": [{"task": "x", "metric": "acc"}],
                   "budget": {"evaluations": 4}, "warm_start": True}}))
    rows = space_for(load_config(path)).warm_start()
    assert rows[:, 0].tolist() == pytest.approx([0.3, 0.0, 1.0])


def test_the_depth_space_starts_from_each_model_and_a_space_without_rows_is_refused(tiny_world, tmp_path):
    """slots: each model's own layers in order (wrapping round past its depth); a plugin space with no
    warm_start() is refused at config load, naming the field."""
    from merge3_lm_eval_tasks.task_files import shipped_tasks_dir
    from merge3_plugin.hookspecs import hookimpl
    from merge3_plugin.plugins import plugin_manager

    path = example_config("depth_stack.yaml", tiny_world, shipped_tasks_dir(), tmp_path)  # 6 slots, 4 layers
    config = yaml.safe_load(path.read_text())
    config["evolve"]["warm_start"] = True
    path.write_text(yaml.safe_dump(config))
    space = space_for(load_config(path))
    layers = [[space.choices(row)[k][1] for k in range(6)] for row in space.warm_start()]
    models = [{path for path, _ in space.choices(row)} for row in space.warm_start()]
    assert layers == [[0, 1, 2, 3, 0, 1]] * 2 and [len(m) for m in models] == [1, 1] and models[0] != models[1]

    class NoRows:
        def __init__(self, config):
            self.dims = 1

    class Plugin:
        @hookimpl
        def merge3_search_spaces(self):
            return {"no-rows": NoRows}

    config["evolve"]["space"] = "no-rows"
    path.write_text(yaml.safe_dump(config))
    plugin_manager().register(Plugin(), name="no-rows-test")
    try:
        with pytest.raises(UserError, match=r"field 'evolve.warm_start': the no-rows space has no config values or endpoints"):
            load_config(path)
    finally:
        plugin_manager().unregister(name="no-rows-test")


def test_a_warm_started_run_scores_the_config_and_the_endpoints_first(micro_zoo, micro_tasks, tmp_path):
    from mergekit_ext.run import run

    micro_tasks(tmp_path / "tasks")
    path = write_ta_config(tmp_path / "evolve.yaml", micro_zoo.root / "models", tmp_path / "tasks", {
        "fitness": [{"task": "merge3_toy_math_l2", "metric": "exact_match", "estimator": "gpirt"}],
        "algorithm": {"name": "ga", "pop_size": 4}, "budget": {"evaluations": 4}, "warm_start": True})
    config = load_config(path)
    run(config, tmp_path / "out", progress=False)
    history = [json.loads(line) for line in (tmp_path / "out" / "history.jsonl").read_text().splitlines()]
    # weights in [0, 1.5]: the config's 0.5/0.5, then each expert alone (1 and 0), then one random
    expected = np.array([[1 / 3, 1 / 3], [2 / 3, 0.0], [0.0, 2 / 3]])
    assert np.allclose([r["genes"] for r in history[:3]], expected)
    assert len(history) == 4 and not any(np.allclose(history[3]["genes"], row, atol=1e-3) for row in expected)
