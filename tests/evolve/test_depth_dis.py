"""The depth space's DIS mode (space: depth, mode: dis; issue #14): per layer position a subset of the models'
layer i in an evolved order, the last one's output scaled; empty positions take the base's layer; a depth
cap. Candidates of one run differ in depth: the live model runs the first `depth` of its layers, and each
candidate is bit-identical to what stock mergekit-yaml builds from it, and computes the same logits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml


def _config(world, tmp_path: Path, options: dict | None = None):
    from mergekit_ext.config import load_config

    m = world.root / "models"
    merge = {"merge_method": "passthrough", "base_model": str(m / "base"), "dtype": "float32",
             "models": [{"model": str(m / "expert-math")}, {"model": str(m / "expert-lang")}],
             "evolve": {"space": "depth", "space_options": {"mode": "dis", **(options or {})},
                        "budget": {"evaluations": 4}, "fitness": [{"task": "unused", "metric": "acc"}]}}
    path = tmp_path / "dis.yaml"
    path.write_text(yaml.safe_dump(merge))
    return load_config(path)


def _genes(space, per_position: list[tuple[list[float], list[float], float]]) -> np.ndarray:
    """Genes from (chosen flags, order keys, scale gene) per position."""
    return np.concatenate([[*chosen, *order, scale] for chosen, order, scale in per_position])


def test_positions_stack_the_chosen_layers_in_order_and_scale_the_last(tiny_world, tmp_path):
    from mergekit_ext.spaces.genes import space_for

    space = space_for(_config(tiny_world, tmp_path))
    m = tiny_world.root / "models"
    math, lang, base = str(m / "expert-math"), str(m / "expert-lang"), str(m / "base")
    assert space.dims == 4 * 5 and space.max_depth == 5 and space.num_layers == 5  # 4 layers + 25%
    x = _genes(space, [([0.9, 0.1], [0.5, 0.5], 0.5),   # math only, scale 1
                       ([0.2, 0.3], [0.0, 0.0], 0.9),   # nothing: the base's layer, unscaled
                       ([0.6, 0.7], [0.8, 0.2], 0.25),  # lang then math, math scaled 0.5
                       ([0.0, 1.0], [0.0, 0.0], 0.0)])  # lang scaled 0
    assert space.stacks(x) == [([math], 1.0), ([base], 1.0), ([lang, math], 0.5), ([lang], 0.0)]
    slices = space.to_config(x)["slices"]
    assert [(s["sources"][0]["model"], s["sources"][0]["layer_range"]) for s in slices] == [
        (math, [0, 1]), (base, [1, 2]), (lang, [2, 3]), (math, [2, 3]), (lang, [3, 4])]
    assert [("parameters" in s) for s in slices] == [False, False, False, True, True]
    assert slices[3]["parameters"]["scale"] == [{"filter": "o_proj", "value": 0.5},
                                                {"filter": "down_proj", "value": 0.5}, {"value": 1.0}]


def test_over_the_cap_the_fullest_last_position_gives_up_its_first_layer(tiny_world, tmp_path):
    from mergekit_ext.spaces.genes import space_for

    space = space_for(_config(tiny_world, tmp_path, {"max_depth": 6}))
    m = tiny_world.root / "models"
    math, lang = str(m / "expert-math"), str(m / "expert-lang")
    every = [([1.0, 1.0], [0.1, 0.2], 0.5)] * 4  # 8 layers asked for, 6 allowed
    assert [models for models, _ in space.stacks(_genes(space, every))] == [
        [math, lang], [math, lang], [lang], [lang]]


def _live(world, depth: int):
    """A live model as build_engine makes it for a depth search: `depth` layers, all from the merge."""
    import copy

    from transformers import AutoConfig, AutoModelForCausalLM

    shape = copy.deepcopy(AutoConfig.from_pretrained(world.model_path("base")))
    shape.num_hidden_layers = depth
    return AutoModelForCausalLM.from_config(shape, dtype=torch.float32).eval()


def _mergekit_yaml(config: dict, folder: Path):
    from transformers import AutoModelForCausalLM

    folder.mkdir(parents=True)
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    script = Path(sys.executable).with_name("mergekit-yaml")
    run = subprocess.run([str(script), str(folder / "c.yaml"), str(folder / "merged")], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return AutoModelForCausalLM.from_pretrained(folder / "merged", dtype=torch.float32).eval()


def test_candidates_of_several_depths_merge_bit_for_bit_and_give_mergekits_logits(tiny_world, tmp_path):
    from mergekit_ext.spaces.genes import space_for
    from mergekit_ext.merging.inmemory import InMemoryMerger

    config = _config(tiny_world, tmp_path)
    space = space_for(config)
    live = _live(tiny_world, space.num_layers)
    merger = InMemoryMerger(config.merge)
    tokens = torch.tensor([[1, 5, 9, 13, 17, 21, 2, 7]])
    rng = np.random.default_rng(3)
    depths = []
    for n in range(4):  # the same live model for all: deeper and shallower in turn
        candidate = space.to_config(rng.random(space.dims))
        merger.merge_into(live, candidate)
        built = _mergekit_yaml(candidate, tmp_path / f"c{n}")
        ours, theirs = live.state_dict(), built.state_dict()
        assert set(ours) == set(theirs) and live.config.num_hidden_layers == built.config.num_hidden_layers
        assert all(torch.equal(ours[k].view(torch.int32), theirs[k].view(torch.int32)) for k in ours)
        with torch.no_grad():
            assert torch.equal(live(tokens).logits, built(tokens).logits)
            assert torch.equal(live.generate(tokens, max_new_tokens=4, do_sample=False),
                               built.generate(tokens, max_new_tokens=4, do_sample=False))
        depths.append(live.config.num_hidden_layers)
    assert len(set(depths)) > 1, depths  # the draws did change the depth


def test_the_warm_start_rows_are_the_base_then_each_model_alone(tiny_world, tmp_path):
    from safetensors.torch import load_file

    from mergekit_ext.spaces.genes import space_for
    from mergekit_ext.merging.inmemory import InMemoryMerger

    config = _config(tiny_world, tmp_path)
    space = space_for(config)
    live = _live(tiny_world, space.num_layers)
    merger = InMemoryMerger(config.merge)
    for row, name in zip(space.warm_start(), ("base", "expert-math", "expert-lang"), strict=True):
        merger.merge_into(live, space.to_config(row))
        stored = load_file(tiny_world.model_path(name) / "model.safetensors")
        ours = live.state_dict()
        assert set(ours) == set(stored) and all(torch.equal(ours[k], stored[k]) for k in stored), name


@pytest.mark.parametrize("options, words", [
    ({"mode": "stack"}, "'evolve.space_options.mode'"),
    ({"max_depth": 3}, "'evolve.space_options.max_depth': a number of layers >= the base's 4"),
    ({"slots": 5}, "'evolve.space_options.slots': the depth space in mode dis takes"),
    ({"scale_filters": []}, "'evolve.space_options.scale_filters'"),
])
def test_bad_dis_options_name_the_field(tiny_world, tmp_path, options, words):
    from merge3_plugin.errors import UserError
    from mergekit_ext.spaces.genes import space_for

    with pytest.raises(UserError, match=words):
        space_for(_config(tiny_world, tmp_path, options))
