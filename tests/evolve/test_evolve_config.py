"""mergekit-evolve-lite, first piece (issue #5): the config contract and the genes <-> mergekit config map."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import yaml

from pymoo.core.problem import ElementwiseProblem

from merge3_plugin.errors import UserError
from mergekit_ext.config import load_config
from mergekit_ext.spaces.genes import GeneSpace
from mergekit_ext.algorithms.problem import NOT_EVALUATED


def write(tmp_path, tiny_world, evolve: str, method: str = "ties", extra_params: str = "") -> str:
    models = tiny_world.root / "models"
    text = textwrap.dedent(f"""\
        merge_method: {method}
        base_model: {models / 'base'}
        models:
          - model: {models / 'expert-math'}
            parameters: {{weight: 0.5, density: 0.5{extra_params}}}
          - model: {models / 'expert-lang'}
            parameters: {{weight: 0.5, density: 0.5}}
        dtype: float32
        """) + textwrap.indent(textwrap.dedent(evolve), "")
    path = tmp_path / "evolve.yaml"
    path.write_text(text)
    return path


EVOLVE = """\
evolve:
  search:
    weight: [0.0, 1.0]
    density: [0.1, 1.0]
  granularity: 2
  filters: [self_attn, mlp]
  fitness:
    - {task: merge3_toy_math_l2, metric: exact_match, estimator: gmpirt}
  algorithm: {name: ga, pop_size: 12}
  budget: {evaluations: 120}
"""


def test_genes_cover_models_groups_and_parameter_sets(tiny_world, tmp_path):
    space = GeneSpace(load_config(write(tmp_path, tiny_world, EVOLVE)))
    assert space.dims == 2 * 2 * 2 * 3  # parameters x models x layer groups x (self_attn, mlp, rest)
    text = space.describe()
    assert text.startswith("24 genes") and "expert-math.density[self_attn]@1" in text
    config = space.to_config(np.full(space.dims, 0.5))
    params = config["models"][0]["parameters"]
    assert params["weight"] == [{"filter": "self_attn", "value": [0.5, 0.5]}, {"filter": "mlp", "value": [0.5, 0.5]},
                                {"value": [0.5, 0.5]}]
    assert params["density"][0]["value"] == [0.55, 0.55]  # 0.1 + 0.5 * (1.0 - 0.1)
    from mergekit.config import MergeConfiguration

    MergeConfiguration.model_validate(config)  # what mergekit-yaml would read


def test_emitted_configs_mean_what_the_genes_say_in_a_real_merge(tiny_world, tmp_path):
    """Linear merge, filters self_attn / mlp: genes that give self_attn all to expert-math and mlp all to
    expert-lang yield exactly those tensors after a real mergekit merge."""
    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from safetensors.torch import load_file

    evolve = EVOLVE.replace("    density: [0.1, 1.0]\n", "").replace("granularity: 2", "granularity: global")
    path = write(tmp_path, tiny_world, evolve, method="linear")
    text = path.read_text().replace(", density: 0.5", "")
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("base_model")))
    space = GeneSpace(load_config(path))
    assert space.dims == 2 * 3
    # gene order: per model, per filter (self_attn, mlp, rest)
    x = np.array([1.0, 0.0, 0.5, 0.0, 1.0, 0.5])
    run_merge(MergeConfiguration.model_validate(space.to_config(x)), str(tmp_path / "out"),
              options=MergeOptions(copy_tokenizer=False, lazy_unpickle=False))
    merged = load_file(tmp_path / "out" / "model.safetensors")
    math = load_file(tiny_world.model_path("expert-math") / "model.safetensors")
    lang = load_file(tiny_world.model_path("expert-lang") / "model.safetensors")
    attn = next(k for k in merged if "self_attn.q_proj" in k)
    mlp = next(k for k in merged if "mlp.up_proj" in k)
    assert torch.allclose(merged[attn], math[attn]) and not torch.allclose(merged[attn], lang[attn])
    assert torch.allclose(merged[mlp], lang[mlp]) and not torch.allclose(merged[mlp], math[mlp])


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("  search:", "  serch:"), "field 'evolve.serch': is not a known field"),
    (lambda t: t.replace("density: 0.5}", "densty: 0.5}", 1), "'models[0].parameters.densty': ties takes no parameter"),
    (lambda t: t.replace("weight: [0.0, 1.0]", "t: [0.0, 1.0]"), "'evolve.search.t': ties has no number parameter"),
    (lambda t: t.replace("density: [0.1, 1.0]", "density: [0.0, 1.5]"), "leaves what density allows"),
    (lambda t: t.replace("density: [0.1, 1.0]", "density: [0.9, 0.1]"), "low < high"),
    (lambda t: t.replace("expert-lang", "expert-nowhere"), "'models[1].model'"),
    (lambda t: t.replace("name: ga", "name: annealing"), "'evolve.algorithm.name': unknown algorithm 'annealing'"),
    (lambda t: t.replace("estimator: gmpirt", "estimator: gmpirtt"),
     "'evolve.fitness.0.estimator': unknown estimator 'gmpirtt'; available: .*did you mean 'gmpirt'"),
    (lambda t: t.replace("pop_size: 12", "pop_sise: 12"), "'evolve.algorithm.pop_sise': ga takes no option"),
    (lambda t: t.replace("estimator: gmpirt}", "estimator: gmpirt}\n    - {task: merge3_toy_math}\n  objectives: multi"),
     "ga optimises one objective"),
    (lambda t: t.replace("  budget:", "  select: {top: 4, fitness: [{task: a}, {task: b}]}\n  objectives: multi\n  budget:")
     .replace("name: ga", "name: nsga2"), "select.fitness: with objectives: multi, give one entry per objective"),
    (lambda t: t.replace("budget: {evaluations: 120}", "budget: {evaluations: 120}\n  eval: {device: gpu0}"),
     "'evolve.eval.device': 'gpu0' is not a torch device"),
    (lambda t: t.replace("budget: {evaluations: 120}", "budget: {}"), "at least one of evaluations"),
    (lambda t: t.replace("merge_method: ties", "merge_method: tiez"), "merge_method"),
    (lambda t: t[:t.index("evolve:")], "field 'evolve' is missing"),
])
def test_bad_input_names_the_field(tiny_world, tmp_path, edit, message):
    path = write(tmp_path, tiny_world, EVOLVE)
    path.write_text(edit(path.read_text()))
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_shared_parameters_get_one_gene_per_group(tiny_world, tmp_path):
    evolve = EVOLVE.replace("    weight: [0.0, 1.0]\n    density: [0.1, 1.0]\n", "    lambda: [0.5, 1.5]\n")
    evolve = evolve.replace("granularity: 2", "granularity: per_layer").replace("  filters: [self_attn, mlp]\n", "")
    space = GeneSpace(load_config(write(tmp_path, tiny_world, evolve)))
    assert space.dims == 4  # the micro world's 4 layers, one shared lambda each
    config = space.to_config(np.linspace(0, 1, 4))
    assert config["parameters"]["lambda"] == [0.5, pytest.approx(0.833333), pytest.approx(1.166667), 1.5]
    assert yaml.safe_load(yaml.safe_dump(config)) == config


def _config_for(method: str, m) -> dict:
    """A config exercising the method's numeric parameters, with gradients and filters where it takes them."""
    if method == "slerp":
        return {"merge_method": "slerp", "base_model": str(m / "expert-math"), "dtype": "float32",
                "parameters": {"t": [{"filter": "mlp", "value": [0.2, 0.7]}, {"value": 0.4}]},
                "models": [{"model": str(m / "expert-math")}, {"model": str(m / "expert-lang")}]}
    per_model = {"weight": [{"filter": "self_attn", "value": [0.3, 0.9]}, {"value": 0.6}]}
    if method in ("ties", "breadcrumbs", "breadcrumbs_ties", "dare_ties", "dare_linear", "della", "della_linear"):
        per_model["density"] = [0.4, 0.8]
    if method in ("della", "della_linear"):
        per_model["epsilon"] = 0.1
    if method == "model_stock":
        per_model = {}
    config = {"merge_method": method, "dtype": "float32", "parameters": {}, "models": [
        {"model": str(m / "expert-math"), "parameters": per_model},
        {"model": str(m / "expert-lang"), "parameters": {"weight": 0.5, **({"density": 0.6} if "density" in per_model else {})}}]}
    if method not in ("linear", "nuslerp"):
        config["base_model"] = str(m / "base")
    return config


RANDOM_METHODS = ("dare_ties", "dare_linear", "della", "della_linear")
RANKED_METHODS = ("ties", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear")  # the sparsify cache's


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("method", ["ties", "task_arithmetic", "breadcrumbs", "breadcrumbs_ties", "linear", "slerp",
                                    "nuslerp", "model_stock", *RANDOM_METHODS])
def test_in_memory_merge_is_bit_identical_to_mergekit_on_disk(tiny_world, tmp_path, method, dtype):
    """The engine's merge equals `run_merge` (what mergekit-yaml runs) tensor for tensor, in float32 and
    bfloat16 (where magnitudes tie often), for gradients and filters; and loads into a live model. Random
    methods (dare_*, della*) draw their masks from torch's global generator: with the same seed
    (`mergekit-yaml --random-seed`) they match too, also after other candidates (the seed is set per
    merge, as run_merge sets it once). TIES, breadcrumbs and DELLA cut the second candidate's masks from
    the ranks the first one sorted (the sparsify cache), at other densities."""
    import copy

    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from mergekit_ext.merging.inmemory import InMemoryMerger

    config = {**_config_for(method, tiny_world.root / "models"), "dtype": dtype}
    seed = 7 if method in RANDOM_METHODS else None
    merger = InMemoryMerger(config, random_seed=seed)
    # another candidate first: inputs are cached between candidates, and must come back unchanged
    other = copy.deepcopy(config)
    if method == "slerp":
        other["parameters"]["t"] = 0.9
    elif method != "model_stock":
        other["models"][1]["parameters"]["weight"] = 0.2
    if "density" in other["models"][1].get("parameters", {}):
        other["models"][1]["parameters"]["density"] = 0.35
    merger.merge(other)
    state = merger.merge(config)
    if method in RANKED_METHODS:  # the second merge cut its masks from the first one's ranks
        assert merger.ranks.hits > 0 and merger.ranks.fallbacks == 0
    else:
        assert merger.ranks is None or not merger.ranks._entries
    options = MergeOptions(copy_tokenizer=False, lazy_unpickle=False, quiet=True, random_seed=seed)
    run_merge(MergeConfiguration.model_validate(copy.deepcopy(config)), str(tmp_path / "disk"), options=options)
    disk = load_file(tmp_path / "disk" / "model.safetensors")
    assert sorted(disk) == sorted(state)
    assert all(torch.equal(disk[k], state[k]) for k in disk), method
    model = AutoModelForCausalLM.from_pretrained(tiny_world.model_path("base"), dtype=getattr(torch, dtype))
    merger.merge_into(model, config)
    name = next(iter(disk))
    assert torch.equal(model.state_dict()[name], disk[name])


def _sliced(m, start: int, stop: int, density: float) -> dict:
    """TIES over layers start..stop of the base and both experts, stacked as a model of stop - start layers."""
    def source(name, params=None):
        return {"model": str(m / name), "layer_range": [start, stop], **({"parameters": params} if params else {})}

    return {"merge_method": "ties", "base_model": str(m / "base"), "dtype": "float32",
            "slices": [{"sources": [source("base"), source("expert-math", {"weight": 0.6, "density": density}),
                                    source("expert-lang", {"weight": 0.4, "density": density})]}]}


def test_stacked_slices_cut_each_layers_own_ranks(tiny_world, tmp_path, caplog):
    """Two candidates that put other source layers under the same output names (layers 0-1 of the merge from
    the inputs' layers 0-1, then from their layers 2-3): the sparsify cache keys a task vector by the
    tensors it comes from, so the second is ranked on its own, and both merge as mergekit-yaml does."""
    import copy
    import logging

    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from safetensors.torch import load_file

    from mergekit_ext.merging.inmemory import InMemoryMerger

    m = tiny_world.root / "models"
    first, second = _sliced(m, 0, 2, 0.5), _sliced(m, 2, 4, 0.3)
    merger = InMemoryMerger(first)
    with caplog.at_level(logging.WARNING, logger="mergekit_ext.merging.sparsify_cache"):
        merger.merge(first)
        ranked = len(merger.ranks._entries)
        state = merger.merge(second)
    assert "changed" not in caplog.text
    layer_vectors = {key for key in merger.ranks._entries if ".layers." in key[1][0][0]}
    assert len(merger.ranks._entries) > ranked and {key[1][0][0].split(".")[2] for key in layer_vectors} == set("0123")
    options = MergeOptions(copy_tokenizer=False, lazy_unpickle=False, quiet=True)
    run_merge(MergeConfiguration.model_validate(copy.deepcopy(second)), str(tmp_path / "disk"), options=options)
    disk = load_file(tmp_path / "disk" / "model.safetensors")
    assert sorted(disk) == sorted(state) and all(torch.equal(disk[k], state[k]) for k in disk)


def test_tied_embeddings_merge_in_memory_as_on_disk(tied_world, tmp_path):
    """Tied input/output embeddings (no lm_head tensor in the files): the in-memory merge equals
    mergekit-yaml's, and loads into a live tied model whose output layer follows (issue #12)."""
    import copy

    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from mergekit_ext.merging.inmemory import InMemoryMerger

    m = tied_world.root / "models"
    config = {"merge_method": "task_arithmetic", "base_model": str(m / "base"), "dtype": "float32",
              "models": [{"model": str(m / "expert-math"), "parameters": {"weight": 0.7}},
                         {"model": str(m / "expert-lang"), "parameters": {"weight": 0.4}}]}
    assert "lm_head.weight" not in load_file(m / "base" / "model.safetensors")
    state = InMemoryMerger(config).merge(config)
    run_merge(MergeConfiguration.model_validate(copy.deepcopy(config)), str(tmp_path / "disk"),
              options=MergeOptions(copy_tokenizer=False, lazy_unpickle=False, quiet=True))
    disk = load_file(tmp_path / "disk" / "model.safetensors")
    assert sorted(disk) == sorted(state) and all(torch.equal(disk[k], state[k]) for k in disk)
    live = AutoModelForCausalLM.from_pretrained(m / "base", dtype=torch.float32)
    InMemoryMerger(config).merge_into(live, config)
    embed = disk["model.embed_tokens.weight"]
    assert torch.equal(live.model.embed_tokens.weight, embed) and torch.equal(live.lm_head.weight, embed)


def test_a_merge_method_writing_into_its_inputs_is_stopped(tiny_world):
    """Inputs are cached between candidates; if one is changed in place (as a careless custom method
    would), every later candidate would be wrong: the merger stops with a message instead."""
    from mergekit_ext.merging.inmemory import InMemoryMerger

    config = _config_for("task_arithmetic", tiny_world.root / "models")
    merger = InMemoryMerger(config, cache_inputs=True)
    merger.merge(config)
    merger.merge(config)  # untouched inputs: no complaint
    tensor = next(iter(next(iter(merger._inputs.values())).values()))
    original = tensor.clone()
    tensor.add_(1.0)  # what an in-place method would do
    try:
        with pytest.raises(RuntimeError, match="changed its input tensors in place"):
            merger.merge(config)
    finally:  # mergekit's loaders are a per-thread singleton: later tests would read the spoiled tensor
        tensor.copy_(original)


def test_every_builtin_algorithm_builds_for_its_kind_of_problem():
    """Each pymoo algorithm by name, with a population size where it takes one: NSGA-III and MOEA/D get
    reference directions sized to the population (pymoo needs them and has no default)."""
    from pymoo.core.algorithm import Algorithm

    from mergekit_ext.algorithms import PYMOO_ALGORITHMS
    from merge3_plugin.plugins import lookup

    for name, (_, _, multi) in PYMOO_ALGORITHMS.items():
        factory = lookup("algorithm", name)
        options = {"pop_size": 12} if "pop_size" in factory.accepts() else {}
        algorithm = factory(n_obj=2 if multi else 1, **options)
        assert isinstance(algorithm, Algorithm), name
        if hasattr(algorithm, "ref_dirs") and algorithm.ref_dirs is not None:
            assert 6 <= len(algorithm.ref_dirs) <= 13, (name, len(algorithm.ref_dirs))


def test_a_search_space_plugin_is_chosen_by_name(tiny_world, tmp_path, capsys):
    """`evolve.space` names a `merge3_search_spaces` plugin; the built-in `params` space registers the
    same way (an entry point), and an unknown name is refused naming the field."""
    import copy

    from merge3_plugin.hookspecs import hookimpl
    from merge3_plugin.plugins import plugin_manager
    from mergekit_ext.cli import main
    from mergekit_ext.spaces.genes import space_for

    class OneScale:  # one gene: the same weight for every model
        dims = 1

        def __init__(self, config):
            self.config = config

        def to_config(self, x):
            merge = copy.deepcopy(self.config.merge)
            for entry in merge["models"]:
                entry["parameters"]["weight"] = round(float(x[0]), 6)
            return merge

        def describe(self):
            return "1 gene: one weight for every model"

    class Plugin:
        @hookimpl
        def merge3_search_spaces(self):
            return {"one-scale": OneScale}

    assert isinstance(space_for(load_config(write(tmp_path, tiny_world, EVOLVE))), GeneSpace)
    from merge3_lm_eval_tasks.task_files import shipped_tasks_dir

    # the fitness task must exist for --dry-run: index the shipped merge3 tasks only
    path = write(tmp_path, tiny_world, EVOLVE.replace("evolve:\n", "evolve:\n  space: one-scale\n"
                                                      f"  include_path: [{shipped_tasks_dir()}]\n"
                                                      "  include_defaults: false\n"))
    with pytest.raises(UserError, match="'evolve.space': unknown search space 'one-scale'; available: depth, lfs, params"):
        load_config(path)
    plugin_manager().register(Plugin(), name="one-scale-test")
    try:
        space = space_for(load_config(path))
        assert isinstance(space, OneScale)
        assert [m["parameters"]["weight"] for m in space.to_config([0.25])["models"]] == [0.25, 0.25]
        assert main([str(path), "--dry-run"]) == 0 and "one weight for every model" in capsys.readouterr().out
    finally:
        plugin_manager().unregister(name="one-scale-test")


def test_the_help_example_is_a_valid_evolve_section():
    """`mergekit-evolve-lite --help` shows an evolve: section; it must stay what the validator accepts."""
    from mergekit_ext.cli import EPILOG
    from mergekit_ext.config import EvolveSpec

    lines = EPILOG.splitlines()
    start = lines.index("  evolve:")
    block = "\n".join(line for line in lines[start + 1:] if line.startswith("    "))
    spec = EvolveSpec.model_validate(yaml.safe_load(block))
    assert spec.search == {"weight": (0.0, 1.0), "density": (0.1, 1.0)} and spec.select.top == 8



def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="this machine has a CUDA GPU: device: cuda is valid here")
def test_a_gpu_asked_for_on_a_machine_without_one_is_refused(tiny_world, tmp_path):
    path = write(tmp_path, tiny_world, EVOLVE + "  eval: {device: cuda}\n")
    with pytest.raises(UserError, match="'evolve.eval.device': cuda asked for, but this torch sees no CUDA GPU"):
        load_config(path)


def test_the_depth_space_stacks_chosen_layers_exactly_as_mergekit_does(tiny_world, tmp_path):
    """`space: depth`: one gene per layer slot picks a (model, layer); the candidate is a passthrough
    config that mergekit-yaml builds bit for bit the same as the in-memory merge, here 6 layers deep
    from two 4-layer experts, and it loads into a 6-layer live model."""
    import copy

    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from mergekit_ext.spaces.genes import space_for
    from mergekit_ext.merging.inmemory import InMemoryMerger

    from merge3_lm_eval_tasks.task_files import shipped_tasks_dir

    from .evolve_helpers import example_config

    m = tiny_world.root / "models"
    path = example_config("depth_stack.yaml", tiny_world, shipped_tasks_dir(), tmp_path)  # 6 slots, gp-IRT
    config = load_config(path)
    space = space_for(config)
    assert space.dims == 6 and len(space.sources) == 8  # 2 models x 4 layers
    genes = np.array([0.0, 0.99, 0.5, 0.55, 0.2, 0.7])  # bins of 1/8: math 0, lang 3, lang 0, lang 0, math 1, lang 1
    assert [(p.rsplit("/", 1)[-1], layer) for p, layer in space.choices(genes)] == [
        ("expert-math", 0), ("expert-lang", 3), ("expert-lang", 0), ("expert-lang", 0), ("expert-math", 1),
        ("expert-lang", 1)]
    candidate = space.to_config(genes)
    assert candidate["merge_method"] == "passthrough" and len(candidate["slices"]) == 6
    state = InMemoryMerger(config.merge).merge(candidate)
    run_merge(MergeConfiguration.model_validate(copy.deepcopy(candidate)), str(tmp_path / "disk"),
              options=MergeOptions(copy_tokenizer=False, lazy_unpickle=False, quiet=True))
    disk = load_file(tmp_path / "disk" / "model.safetensors")
    assert sorted(disk) == sorted(state) and all(torch.equal(disk[k], state[k]) for k in disk)
    lang = load_file(m / "expert-lang" / "model.safetensors")
    key = "model.layers.{}.mlp.down_proj.weight"
    assert torch.equal(state[key.format(1)], lang[key.format(3)])  # slot 1 holds the language expert's layer 3
    shape = AutoModelForCausalLM.from_pretrained(m / "expert-math").config
    shape.num_hidden_layers = 6
    live = AutoModelForCausalLM.from_config(shape)
    InMemoryMerger(config.merge).merge_into(live, candidate)
    assert torch.equal(live.state_dict()[key.format(5)], lang[key.format(1)])

    path.write_text(path.read_text().replace("estimator: gpirt", "estimator: gmpirt"))
    with pytest.raises(UserError, match="'evolve.fitness': gmpirt estimates a weight merge"):
        space_for(load_config(path))



def test_the_params_space_needs_something_to_search(tiny_world, tmp_path):
    from mergekit_ext.spaces.genes import space_for

    path = write(tmp_path, tiny_world, EVOLVE.replace("    weight: [0.0, 1.0]\n    density: [0.1, 1.0]\n", "    {}\n"))
    with pytest.raises(UserError, match="'evolve.search': name at least one parameter"):
        space_for(load_config(path))


@pytest.mark.parametrize("name", ["cross_lingual.yaml", "pareto_math_lang.yaml", "depth_stack.yaml",
                                  "layer_fusion.yaml"])
def test_the_examples_are_valid_configs(tiny_world, tmp_path, name):
    """Each example, with the toy world's paths filled in as its header says, passes every check and
    has genes (here on tiny random Llamas with the same names and depth)."""
    from merge3_lm_eval_tasks.task_files import shipped_tasks_dir
    from mergekit_ext.spaces.genes import space_for

    from .evolve_helpers import example_config

    from merge3_plugin.contracts import SearchSpace

    space = space_for(load_config(example_config(name, tiny_world, shipped_tasks_dir(), tmp_path)))
    assert space.dims >= 2 and space.describe()
    assert isinstance(space, SearchSpace)  # the contract a search space plugin satisfies


class CutAfterSeven(ElementwiseProblem):
    """A 3-gene problem whose evaluations past the 7th are cut, as MergeProblem cuts them past the budget."""

    def __init__(self, n_obj: int):
        self.calls = 0
        super().__init__(n_var=3, n_obj=n_obj, xl=0.0, xu=1.0)

    def _evaluate(self, x, out, *args, **kwargs):
        self.calls += 1
        real = [-float(np.mean(x)) - 0.1 * j for j in range(self.n_obj)]
        out["F"] = [NOT_EVALUATED] * self.n_obj if self.calls > 7 else real


def test_a_generation_cut_by_the_budget_never_yields_an_unevaluated_winner():
    """Every built-in algorithm, stopped at 7 evaluations with a population of 6: the candidates cut
    from the second generation are never the result, and no NaN or warning arises (MOEA/D multiplies
    objectives by zero weights: an infinite stand-in would give NaN)."""
    import warnings

    from pymoo.optimize import minimize
    from pymoo.termination import get_termination

    from mergekit_ext.algorithms import PYMOO_ALGORITHMS
    from merge3_plugin.plugins import lookup

    for name, (_, _, multi) in PYMOO_ALGORITHMS.items():
        factory = lookup("algorithm", name)
        n_obj = 2 if multi else 1
        options = {"pop_size": 6} if "pop_size" in factory.accepts() else {}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = minimize(CutAfterSeven(n_obj), factory(n_obj=n_obj, **options), get_termination("n_eval", 7),
                              seed=0, verbose=False)
        assert np.all(np.atleast_2d(result.F) <= 0), name


def test_endpoint_weights_stream_into_the_live_model_one_tensor_at_a_time(tiny_world, tmp_path):
    """mp/gmp-IRT measure each endpoint with the live model: its weights are copied in tensor by tensor
    (from a sharded folder here), never held as a second whole model or shard (issue #12); an endpoint
    of another shape is refused by name."""
    import torch
    from transformers import AutoModelForCausalLM

    from mergekit_ext.scoring.fitness import load_weights

    expert = AutoModelForCausalLM.from_pretrained(tiny_world.model_path("expert-math"), dtype=torch.float32)
    expert.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert len(list((tmp_path / "sharded").glob("*.safetensors"))) > 2
    live = AutoModelForCausalLM.from_pretrained(tiny_world.model_path("base"), dtype=torch.float32)
    pointers = {k: v.data_ptr() for k, v in live.state_dict().items()}
    load_weights(live, tmp_path / "sharded")
    want = expert.state_dict()
    assert all(torch.equal(value, want[name]) for name, value in live.state_dict().items())
    assert {k: v.data_ptr() for k, v in live.state_dict().items()} == pointers  # in place

    from merge3_plugin.errors import UserError
    from transformers import LlamaConfig, LlamaForCausalLM

    wider = LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=64, num_hidden_layers=4,
                        num_attention_heads=4, num_key_value_heads=2)
    LlamaForCausalLM(wider).save_pretrained(tmp_path / "wider")
    with pytest.raises(UserError, match="another architecture"):
        load_weights(live, tmp_path / "wider")
