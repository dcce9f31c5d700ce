"""Contracts of the private mergekit and torch APIs merge3 relies on (mergekit_ext/merging/compat.py).

Cheap on purpose: tiny random Llamas; each test checks one promise on the installed mergekit / torch,
so that an upgrade which breaks one fails here, naming it, instead of deep inside a search.
"""

from __future__ import annotations

import pytest


def _plan(tiny_world, weight: float = 0.5):
    from mergekit.architecture import get_architecture_info
    from mergekit.config import MergeConfiguration
    from mergekit.options import MergeOptions

    from mergekit_ext.merging.compat import plan_merge

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

    from mergekit_ext.merging.compat import gather_key
    from mergekit_ext.merging.inmemory import _input_tasks

    first = _input_tasks([task for _, task in _plan(tiny_world, 0.3)])
    second = _input_tasks([task for _, task in _plan(tiny_world, 0.7)])
    assert first and all(isinstance(t, GatherTensors) for t in first)
    assert {gather_key(t) for t in first} == {gather_key(t) for t in second}
    if first[0] == second[0]:  # mergekit made equality structural: gather_key is no longer needed
        pytest.fail("mergekit's GatherTensors now compare equal across plans; simplify compat.gather_key")


def test_model_configs_are_read_once_and_the_method_restored(tiny_world, monkeypatch):
    from mergekit.common import ModelReference

    from mergekit_ext.merging.compat import model_configs_memoised

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

    from mergekit_ext.merging.compat import tensor_versions

    values = {"a": torch.zeros(3), "b": torch.ones(2)}
    before = tensor_versions(values)
    values["a"].add_(1.0)
    after = tensor_versions(values)
    assert after[0] > before[0] and after[1] == before[1]


def test_tokenizer_files_are_copied_byte_for_byte_from_the_donor(tiny_world, tmp_path):
    from mergekit_ext.merging.compat import copy_tokenizer

    donor = tiny_world.model_path("base")
    files = {"tokenizer_config.json": '{"model_max_length": 64}\n', "tokenizer.json": '{"version": "1.0"}\n'}
    for name, text in files.items():
        (tmp_path / "donor").mkdir(exist_ok=True)
        (tmp_path / "donor" / name).write_text(text)
    # a donor folder with the tiny model's config and the tokenizer files above
    (tmp_path / "donor" / "config.json").write_bytes((donor / "config.json").read_bytes())
    (tmp_path / "out").mkdir()
    copy_tokenizer({"merge_method": "passthrough", "dtype": "float32",
                    "models": [{"model": str(tmp_path / "donor")}]}, str(tmp_path / "out"))
    assert {name: (tmp_path / "out" / name).read_text() for name in files} == files



def test_weight_names_are_the_planners_names_for_before_each_layer_and_after(tiny_world):
    from mergekit.common import ModelReference

    from mergekit_ext.merging.compat import weight_names

    planned = _plan(tiny_world)
    arch_info = _arch_info(tiny_world)
    before, layer, after = weight_names(arch_info, ModelReference.model_validate(
        str(tiny_world.model_path("base"))).config())
    names = [w.name for w, _ in planned]
    assert names == before + [n for i in range(4) for n in layer(i)] + after
    assert all(".layers.2." in n for n in layer(2)) and before and after


def _arch_info(tiny_world):
    from mergekit.architecture import get_architecture_info
    from mergekit.config import MergeConfiguration
    from mergekit.options import MergeOptions

    config = MergeConfiguration.model_validate({"merge_method": "linear", "dtype": "float32", "models": [
        {"model": str(tiny_world.model_path("base")), "parameters": {"weight": 1.0}}]})
    return get_architecture_info(config, MergeOptions())


def test_set_depth_runs_the_first_layers_of_the_pool_as_a_model_built_that_deep(tiny_world):
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    from mergekit_ext.merging.compat import set_depth

    deep = AutoModelForCausalLM.from_pretrained(tiny_world.model_path("base"), dtype=torch.float32).eval()
    pool = list(deep.get_decoder().layers)
    set_depth(deep, 2, pool)
    shape = copy.deepcopy(deep.config)
    assert shape.num_hidden_layers == 2 and len(deep.get_decoder().layers) == 2
    shallow = AutoModelForCausalLM.from_config(shape, dtype=torch.float32).eval()
    shallow.load_state_dict(deep.state_dict())  # strict: the same names, only 2 layers
    tokens = torch.tensor([[3, 1, 4, 1, 5, 9]])
    with torch.no_grad():
        assert torch.equal(deep(tokens).logits, shallow(tokens).logits)
        assert torch.equal(deep.generate(tokens, max_new_tokens=3, do_sample=False),
                           shallow.generate(tokens, max_new_tokens=3, do_sample=False))
    set_depth(deep, 4, pool)
    assert deep.config.num_hidden_layers == 4 and len(deep.state_dict()) > len(shallow.state_dict())
    with pytest.raises(RuntimeError, match="does not fit"):
        set_depth(deep, 5, pool)


def test_sparsify_hooked_names_each_task_vector_by_its_inputs_once_in_order_and_restores_mergekit(tiny_world):
    """merge_group sparsifies each non-base input once, in order, through its module's `sparsify`: the hook
    hands each call the key of its task vector ((input tensor, model), (base tensor, base)) and mergekit's
    answer stays the answer; afterwards mergekit's own functions are back."""
    import torch
    from mergekit.merge_methods import generalized_task_arithmetic as gta
    from mergekit.merge_methods.task_adapter import ExecuteMergeMethodTask
    from mergekit.sparsify import sparsify

    from mergekit_ext.merging.compat import sparsify_hooked
    from mergekit_ext.merging.inmemory import InMemoryMerger

    m = tiny_world.root / "models"
    config = {"merge_method": "ties", "base_model": str(m / "base"), "dtype": "float32",
              "models": [{"model": str(m / "expert-math"), "parameters": {"weight": 0.5, "density": 0.3}},
                         {"model": str(m / "expert-lang"), "parameters": {"weight": 0.5, "density": 0.7}}]}
    plain = InMemoryMerger(config, cache_ranks=False)
    expected = plain.merge(config)
    seen = []

    def recording(key, tensor, **kwargs):
        seen.append((key, kwargs["density"]))
        return sparsify(tensor, **kwargs)

    original = (gta.sparsify, gta.GeneralizedTaskArithmeticMerge.merge_group, ExecuteMergeMethodTask.execute)
    with sparsify_hooked(recording):
        state = plain.merge(config)
    assert (gta.sparsify, gta.GeneralizedTaskArithmeticMerge.merge_group, ExecuteMergeMethodTask.execute) == original
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    name = "model.layers.0.mlp.up_proj.weight"

    def model(reference):
        return str(reference.model.path).split("/")[-1]

    for_name = [((tensor, model(ref)), (base_tensor, model(base)), density)
                for ((tensor, ref), (base_tensor, base)), density in seen if tensor == name]
    assert for_name == [((name, "expert-math"), (name, "base"), 0.3), ((name, "expert-lang"), (name, "base"), 0.7)]
    assert len(seen) == 2 * len({key[0][0] for key, _ in seen})  # every weight: each expert once


def test_sparsification_of_names_what_each_method_does_to_its_task_vectors():
    from mergekit.sparsify import SparsificationMethod

    from mergekit_ext.merging.compat import sparsification_of

    assert {name: sparsification_of(name) for name in ("ties", "dare_ties", "breadcrumbs_ties", "della_linear",
                                                       "task_arithmetic", "slerp", "no_such_method")} == {
        "ties": SparsificationMethod.magnitude, "dare_ties": SparsificationMethod.random,
        "breadcrumbs_ties": SparsificationMethod.magnitude_outliers,
        "della_linear": SparsificationMethod.della_magprune,
        "task_arithmetic": None, "slerp": None, "no_such_method": None}


def test_sparsify_hooked_restores_mergekit_when_the_merge_fails():
    import pytest
    from mergekit.merge_methods import generalized_task_arithmetic as gta
    from mergekit.merge_methods.task_adapter import ExecuteMergeMethodTask

    from mergekit_ext.merging.compat import sparsify_hooked

    original = (gta.sparsify, gta.GeneralizedTaskArithmeticMerge.merge_group, ExecuteMergeMethodTask.execute)
    with pytest.raises(RuntimeError, match="boom"):
        with sparsify_hooked(lambda *a, **k: None):
            raise RuntimeError("boom")
    assert (gta.sparsify, gta.GeneralizedTaskArithmeticMerge.merge_group, ExecuteMergeMethodTask.execute) == original
