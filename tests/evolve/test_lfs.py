"""The layer-wise fusion space (space: lfs, issue #14): genes -> a mergekit-multi recipe, merged in memory
bit for bit as stock `mergekit-multi` builds it, on tiny random Llamas (plain and tied embeddings)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml


def _config(world, tmp_path: Path, options: dict | None = None, method: str = "task_arithmetic",
            weights=(1.0, 1.0), parameters: dict | None = None):
    from mergekit_ext.config import load_config

    m = world.root / "models"
    models = [{"model": str(m / "expert-math")}, {"model": str(m / "expert-lang")}]
    for entry, weight in zip(models, weights or (), strict=False):
        entry["parameters"] = {"weight": weight}
    merge = {"merge_method": method, "base_model": str(m / "base"), "dtype": "float32", "models": models,
             "evolve": {"space": "lfs", "space_options": options or {}, "budget": {"evaluations": 4},
                        "fitness": [{"task": "unused", "metric": "acc"}]}}
    if parameters:
        merge["parameters"] = parameters
    path = tmp_path / "lfs.yaml"
    path.write_text(yaml.safe_dump(merge))
    return load_config(path)


def _space(config):
    from mergekit_ext.spaces.lfs import LayerFusionSpace

    return LayerFusionSpace(config)


def _with_methods(space, x: np.ndarray, methods: list[str]) -> np.ndarray:
    """x with group g's method gene set to pick methods[g]."""
    x = x.copy()
    for i, gene in enumerate(space.genes):
        if gene.method is None:
            x[i] = (space.methods.index(methods[gene.group]) + 0.5) / len(space.methods)
    return x


def _live(world):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(world.model_path("base"), dtype=torch.float32)


def _bits(tensors: dict) -> dict:
    """Each tensor as its raw bits (so -0.0 and 0.0, or two NaNs, are told apart)."""
    return {k: v.contiguous().view(torch.int32) for k, v in tensors.items()}


def _same_bits(a: dict, b: dict) -> bool:
    a, b = _bits(a), _bits(b)
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def _mergekit_multi(recipe: list[dict], folder: Path) -> dict:
    """The recipe built by stock mergekit-multi (its console script, as a user runs it)."""
    from safetensors.torch import load_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump_all(recipe, sort_keys=False))
    script = Path(sys.executable).with_name("mergekit-multi")
    run = subprocess.run([str(script), str(folder / "recipe.yaml"), "--intermediate-dir", str(folder / "stages"),
                          "--out-path", str(folder / "merged"), "--no-lazy"], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return load_file(folder / "merged" / "model.safetensors")


def _in_memory(config, world, recipe) -> dict:
    from mergekit_ext.merging.inmemory import InMemoryMerger

    live = _live(world)
    InMemoryMerger(config.merge).merge_into(live, recipe)
    state = live.state_dict()
    if live.config.tie_word_embeddings:
        state.pop("lm_head.weight")  # the same tensor as the embeddings; mergekit writes it once
    return state


def test_the_default_space_has_a_method_gene_and_each_methods_values_per_group_and_set(tiny_world, tmp_path):
    space = _space(_config(tiny_world, tmp_path))
    # 4 groups x (1 method gene + 3 sets x (linear 2 weights + TA lambda + ties trim, lambda + slerp 2 scores))
    assert space.dims == 4 * (1 + 3 * (2 + 1 + 2 + 2))
    assert space.bounds == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert space.describe().startswith(f"{space.dims} genes: 4 layer groups")
    two = _space(_config(tiny_world, tmp_path, {"groups": 2, "methods": ["ties"], "sets": ["mlp"]}))
    assert two.dims == 2 * 2 * 2 and two.bounds == [(0, 2), (2, 4)]  # one method: no method gene


def test_each_method_gene_bin_picks_its_method_and_unpicked_genes_leave_the_recipe_alone(tiny_world, tmp_path):
    from mergekit.config import MergeConfiguration

    from mergekit_ext.search import config_hash

    space = _space(_config(tiny_world, tmp_path))
    x = _with_methods(space, np.random.default_rng(0).random(space.dims), ["linear", "task_arithmetic", "ties", "slerp"])
    recipe = space.to_config(x)
    assert [doc["merge_method"] for doc in recipe] == ["linear", "task_arithmetic", "ties", "slerp", "passthrough"]
    for doc in recipe:  # every document is a valid mergekit config
        MergeConfiguration.model_validate({k: v for k, v in doc.items() if k != "name"})
    changed = x.copy()
    for i, gene in enumerate(space.genes):  # move every gene of a method its group did not pick
        picked = recipe[gene.group]["merge_method"]
        if gene.method is not None and gene.method != picked:
            changed[i] = 1.0 - changed[i]
    assert config_hash(space.to_config(changed)) == config_hash(recipe)
    moved = x.copy()
    moved[next(i for i, g in enumerate(space.genes) if g.group == 2 and g.method == "ties")] += 0.1
    assert config_hash(space.to_config(moved)) != config_hash(recipe)


@pytest.mark.parametrize("world_name", ["tiny_world", "tied_world"])
def test_in_memory_merging_of_a_recipe_is_bit_identical_to_mergekit_multi(world_name, request, tmp_path):
    """Random genes, every method in some group (and in two orders), against stock mergekit-multi's files."""
    world = request.getfixturevalue(world_name)
    config = _config(world, tmp_path, {"groups": 4})
    space = _space(config)
    rng = np.random.default_rng(1)
    for n, methods in enumerate((["linear", "task_arithmetic", "ties", "slerp"], ["slerp", "ties", "linear", "ties"])):
        recipe = space.to_config(_with_methods(space, rng.random(space.dims), methods))
        assert _same_bits(_in_memory(config, world, recipe), _mergekit_multi(recipe, tmp_path / f"multi{n}"))


def test_uneven_groups_stack_in_order(tiny_world, tmp_path):
    """3 groups over 4 layers (2+1+1): each layer of the live model is its group's stage's layer."""
    config = _config(tiny_world, tmp_path, {"groups": 3, "methods": ["linear", "slerp"]})
    space = _space(config)
    assert space.bounds == [(0, 2), (2, 3), (3, 4)]
    recipe = space.to_config(_with_methods(space, np.random.default_rng(2).random(space.dims),
                                            ["linear", "slerp", "linear"]))
    assert [s["sources"][0]["layer_range"] for s in recipe[-1]["slices"]] == [[0, 2], [0, 1], [0, 1]]
    assert _same_bits(_in_memory(config, tiny_world, recipe), _mergekit_multi(recipe, tmp_path / "multi"))


def test_the_warm_start_rows_are_the_users_merge_and_each_model_alone(tiny_world, tmp_path):
    """Row 0 (task_arithmetic everywhere at the config's lambda and weights) merges to exactly what the user's
    own config gives in mergekit; the next rows are each expert alone, then the base alone (lambda 0)."""
    from mergekit_ext.merging.inmemory import InMemoryMerger
    from safetensors.torch import load_file

    config = _config(tiny_world, tmp_path, weights=(0.7, 0.4), parameters={"lambda": 0.8})
    space = _space(config)
    rows = space.warm_start()
    assert rows.shape == (4, space.dims) and np.all((0 <= rows) & (rows <= 1))
    own = _in_memory(config, tiny_world, space.to_config(rows[0]))
    users = {k: v for k, v in config.merge.items()}
    live = _live(tiny_world)
    InMemoryMerger(users).merge_into(live, users)
    assert _same_bits(own, live.state_dict())
    for row, name in zip(rows[1:], ("expert-math", "expert-lang", "base")):
        alone = _in_memory(config, tiny_world, space.to_config(row))
        stored = load_file(tiny_world.model_path(name) / "model.safetensors")
        assert all(torch.equal(alone[k], stored[k]) for k in stored), name


def test_a_recipe_of_another_shape_is_refused_in_memory(tiny_world, tmp_path):
    from mergekit_ext.merging.recipe import stacked_parts

    space = _space(_config(tiny_world, tmp_path))
    recipe = space.to_config(np.full(space.dims, 0.3))
    scaled = [*recipe[:-1], {**recipe[-1], "slices": [{**recipe[-1]["slices"][0], "parameters": {"scale": 2.0}},
                                                      *recipe[-1]["slices"][1:]]}]
    for bad, words in ((recipe[:-1], "passthrough"), (scaled, "unscaled"), ([recipe[0], *recipe], "twice")):
        with pytest.raises(ValueError, match=words):
            stacked_parts(bad)
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize("method, weights, models_parameters, parameters", [
    ("slerp", None, None, {"t": 0.3}),
    ("slerp", None, None, {"t": 0.2}),
    ("ties", (0.7, 0.4), [{"density": 0.4}, {"density": 0.4}], {"lambda": 0.9}),
])
def test_row_0_of_the_warm_start_merges_as_the_users_slerp_and_ties(tiny_world, tmp_path, method, weights,
                                                                     models_parameters, parameters):
    """slerp: the pair and t come from the config's base_model and t; ties: the models' one density."""
    from mergekit_ext.config import load_config
    from mergekit_ext.merging.inmemory import InMemoryMerger

    if method == "slerp":  # the two experts, from expert-lang (no base model of their own)
        config = _config(tiny_world, tmp_path, {"methods": ["linear", "slerp"]}, method=method, weights=None)
        data = yaml.safe_load(config.path.read_text())
        data["base_model"] = str(tiny_world.model_path("expert-lang"))
    else:
        config = _config(tiny_world, tmp_path, method=method, weights=weights)
        data = yaml.safe_load(config.path.read_text())
    data["parameters"] = parameters
    for entry, extra in zip(data["models"], models_parameters or [], strict=False):
        entry["parameters"].update(extra)
    config.path.write_text(yaml.safe_dump(data))
    config = load_config(config.path)
    space = _space(config)
    own = space.to_config(space.warm_start()[0])
    assert {doc["merge_method"] for doc in own[:-1]} == {method}
    users = dict(config.merge)
    live = _live(tiny_world)
    InMemoryMerger(users).merge_into(live, users)
    assert _same_bits(_in_memory(config, tiny_world, own), live.state_dict())


def test_a_gradient_weight_is_refused_and_all_zero_linear_weights_read_as_equal(tiny_world, tmp_path):
    from merge3_plugin.errors import UserError

    with pytest.raises(UserError, match=r"field 'models\[0\].parameters.weight': the lfs space takes"):
        _space(_config(tiny_world, tmp_path, weights=([0.2, 1.0], 1.0)))
    space = _space(_config(tiny_world, tmp_path, {"methods": ["linear"], "groups": 1, "sets": []}))
    recipe = space.to_config(np.zeros(space.dims))
    assert [s["parameters"]["weight"] for s in recipe[0]["slices"][0]["sources"]] == [1.0, 1.0]
    assert all(torch.isfinite(v).all() for v in _in_memory(space.config, tiny_world, recipe).values())


def test_tied_embeddings_that_a_recipe_would_untie_are_refused(tied_world, tmp_path):
    """Inputs whose files hold lm_head.weight beside tied embeddings: the last group's head and the first
    group's embeddings differ, which one tied tensor in the live model cannot hold: a clear error."""
    from safetensors.torch import load_file, save_file

    for name in ("base", "expert-math", "expert-lang"):
        shutil.copytree(tied_world.model_path(name), tmp_path / "models" / name)
        tensors = load_file(tmp_path / "models" / name / "model.safetensors")
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"] + 0.5
        save_file(tensors, tmp_path / "models" / name / "model.safetensors", metadata={"format": "pt"})

    class World:
        root = tmp_path

        @staticmethod
        def model_path(name):
            return tmp_path / "models" / name

    from mergekit_ext.merging.inmemory import InMemoryMerger

    config = _config(World, tmp_path, {"groups": 2, "methods": ["linear", "task_arithmetic"]})
    space = _space(config)
    recipe = space.to_config(_with_methods(space, np.full(space.dims, 0.4), ["linear", "task_arithmetic"]))
    live = _live(tied_world)  # tied (its own files hold no lm_head): one tensor for embeddings and head
    assert live.lm_head.weight.data_ptr() == live.model.embed_tokens.weight.data_ptr()
    with pytest.raises(RuntimeError, match="one tied tensor in the live model"):
        InMemoryMerger(config.merge).merge_into(live, recipe)
