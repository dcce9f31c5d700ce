"""Every use of a private or fragile mergekit (and torch, transformers) API, in one place.

mergekit 0.1.5 has no public way to plan a merge in memory (`MergePlanner.plan_in_memory()` is
broken there), to read a plan's (weight, task) pairs, to build the output model's config, or to
memoise the inputs' config.json. Each of those is one small function here, and
`tests/evolve/test_compat.py` checks the contract of each on the installed versions, so an upgrade that
breaks one fails there, loudly, instead of deep inside a search.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any


def plan_merge(config, arch_info, options) -> list[tuple[Any, Any]]:
    """(WeightInfo, Task) for every output tensor of a merge, as `mergekit-yaml` would plan them."""
    from mergekit.merge import _model_out_config
    from mergekit.plan import MergePlanner

    planner = MergePlanner(config, arch_info, options=options,
                           out_model_config=_model_out_config(config, arch_info))
    planner._plan()  # plan_in_memory() is broken in mergekit 0.1.5; _plan() fills _tensors
    return list(planner._tensors)


@contextlib.contextmanager
def model_configs_memoised(cache: dict) -> Iterator[None]:
    """While inside, `ModelReference.config(...)` reads each model's config.json once into `cache`
    (and hands out copies: callers set attributes on it). mergekit has no hook for this, so the
    method is swapped class-wide and restored on exit; do not plan merges on other threads meanwhile."""
    from mergekit.common import ModelReference

    original: Callable = ModelReference.config

    def cached(reference, trust_remote_code: bool = False):
        key = (str(reference), trust_remote_code)
        if key not in cache:
            cache[key] = original(reference, trust_remote_code=trust_remote_code)
        return copy.deepcopy(cache[key])

    ModelReference.config = cached
    try:
        yield
    finally:
        ModelReference.config = original


def gather_key(task) -> tuple:
    """What a `GatherTensors` task reads, as a hashable value. Its own equality is by identity
    (mergekit's ImmutableMap defines no __eq__), so equal tasks of two candidates never compare
    equal; this key does."""
    return (tuple((str(model), info) for model, info in task.weight_info.items()), task.dtype, task.device)


def tensor_versions(values: dict) -> list[int]:
    """torch's in-place version counter of each tensor (bumped by every in-place operation)."""
    return [tensor._version for tensor in values.values()]


def copy_tokenizer(merge: dict, out: str) -> None:
    """The tokenizer files of the merge's donor model, copied into `out` exactly as `mergekit-yaml`
    copies them (its private `_copy_tokenizer`): byte for byte where the donor has them, so a model
    saved by one transformers version loads in another."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import _copy_tokenizer
    from mergekit.options import MergeOptions

    _copy_tokenizer(MergeConfiguration.model_validate(copy.deepcopy(merge)), out, options=MergeOptions())


def weight_names(arch_info, model_config) -> tuple[list[str], Callable[[int], list[str]], list[str]]:
    """The output tensor names mergekit's planner gives one model: (before the layers, those of layer i,
    after the layers), each list in the planner's order. Models of one module only (language models;
    mergekit itself refuses slices on several modules)."""
    from mergekit.architecture.base import ConfiguredModelArchitecture

    if len(arch_info.modules) != 1:
        raise ValueError(f"layer stacking needs a model of one module; this one has {', '.join(arch_info.modules)}")
    module = ConfiguredModelArchitecture(info=arch_info, config=model_config).get_module(next(iter(arch_info.modules)))
    return ([w.name for w in module.pre_weights()], lambda i: [w.name for w in module.layer_weights(i)],
            [w.name for w in module.post_weights()])


def set_depth(model, depth: int, pool: list) -> None:
    """Make a transformers decoder-only model run the first `depth` of the layers in `pool` (all it was
    built with): its layer list and config.num_hidden_layers (and layer_types, where the config lists
    one) change; the weights stay where they are. transformers has no API for this."""
    import torch

    decoder = model.get_decoder()
    if len(decoder.layers) == depth:
        return
    if depth > len(pool):
        raise RuntimeError(f"a candidate {depth} layers deep does not fit the live model's {len(pool)} layers")
    decoder.layers = torch.nn.ModuleList(pool[:depth])
    for config in {id(c): c for c in (model.config, decoder.config)}.values():
        types = getattr(config, "layer_types", None)
        if isinstance(types, list):
            if len(set(types)) > 1:
                raise RuntimeError("layers of several types (e.g. sliding and full attention) cannot be restacked")
            config.layer_types = types[:1] * depth
        config.num_hidden_layers = depth


@contextlib.contextmanager
def sparsify_hooked(sparsify: Callable[..., Any]) -> Iterator[None]:
    """While inside, mergekit's task-arithmetic family (ties, breadcrumbs, della, dare_*, ...) calls
    `sparsify(key, tensor, density=, method=, gamma=, epsilon=, rescale_norm=)` in place of
    `mergekit.sparsify.sparsify`, where `key` = ((input tensor's name, its model), (the base's tensor
    name, the base model)) names the task vector being sparsified: the same key is the same task vector,
    whatever output it goes to (stacked slices put other layers under one name). Task vectors read
    through a tokenizer's vocabulary alignment have no such name and get mergekit's own sparsify.

    mergekit has no hook for this: the module's own `sparsify` name is swapped, `ExecuteMergeMethodTask.execute`
    wrapped to learn the inputs' tensor names, and `GeneralizedTaskArithmeticMerge.merge_group` to learn
    which group it merges (it sparsifies each non-base input once, in order); all restored on exit.
    Single-threaded: do not merge on other threads meanwhile."""
    from mergekit.io.tasks import GatherTensors
    from mergekit.merge_methods import generalized_task_arithmetic as gta
    from mergekit.merge_methods.task_adapter import ExecuteMergeMethodTask

    original_sparsify = gta.sparsify
    original_merge_group = gta.GeneralizedTaskArithmeticMerge.merge_group
    original_execute = ExecuteMergeMethodTask.execute
    sources: dict = {}  # model -> the name of its tensor in the merge task being executed
    pending: list = []  # the keys of the group being merged, in the order merge_group sparsifies them

    def execute(self, tensors, **kwargs):
        sources.clear()
        if isinstance(self.gather_tensors, GatherTensors):
            sources.update((model, info.name) for model, info in self.gather_tensors.weight_info.items())
        try:
            return original_execute(self, tensors, **kwargs)
        finally:
            sources.clear()

    def merge_group(self, group, /, **parameters):
        base, inputs = group.base, [entry.id for entry in group.non_base]
        if base is not None and all(model in sources for model in (base.id, *inputs)):
            pending[:] = [((sources[model], model), (sources[base.id], base.id)) for model in inputs]
        try:
            return original_merge_group(self, group, **parameters)
        finally:
            pending.clear()

    def hooked(tensor, density, method, **kwargs):
        if not pending:  # called from elsewhere, or a task vector without a name: mergekit's own
            return original_sparsify(tensor, density=density, method=method, **kwargs)
        return sparsify(pending.pop(0), tensor, density=density, method=method, **kwargs)

    gta.sparsify = hooked
    gta.GeneralizedTaskArithmeticMerge.merge_group = merge_group
    ExecuteMergeMethodTask.execute = execute
    try:
        yield
    finally:
        gta.sparsify = original_sparsify
        gta.GeneralizedTaskArithmeticMerge.merge_group = original_merge_group
        ExecuteMergeMethodTask.execute = original_execute


def sparsification_of(method_name: str):
    """The `SparsificationMethod` a mergekit merge method applies to its task vectors (ties: magnitude,
    breadcrumbs: magnitude_outliers, ...), or None (no sparsification, or not of the task-arithmetic family)."""
    from mergekit import merge_methods
    from mergekit.merge_methods.generalized_task_arithmetic import GeneralizedTaskArithmeticMerge

    try:
        method = merge_methods.get(method_name)
    except (KeyError, ValueError, RuntimeError):
        return None
    return method.sparsification_method if isinstance(method, GeneralizedTaskArithmeticMerge) else None
