"""Merge a candidate config into a live model, in memory: no files per candidate.

mergekit's own planner builds the task graph (so every method, gradient and filter means exactly
what it means to `mergekit-yaml`), and its Executor computes the tensors; instead of the disk
writer, the results are cast as `SaveTensor` would cast them and copied into one model object.
(mergekit has no public in-memory planning in 0.1.5: the private calls live in `compat.py`.)
Input tensors are read once and kept where the merge runs when they fit (see `InputPlacement`), else
read per candidate through mergekit's lazy loaders; each input's config.json is read once.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from merge3_plugin.crashpoints import crash_point

from .compat import (gather_key, model_configs_memoised, plan_merge, set_depth, sparsification_of, sparsify_hooked,
                     tensor_versions, weight_names)
from .recipe import is_recipe, stacked_parts
from .sparsify_cache import RULES, SparsifyCache

# mergekit methods that draw random masks (torch's global generator, seeded by --random-seed)
RANDOM_METHODS = ("dare_ties", "dare_linear", "della", "della_linear")


class InMemoryMerger:
    def __init__(self, template: dict, device: str = "cpu", cache_inputs: bool | None = None,
                 random_seed: int | None = None, cache_ranks: bool = True):
        """`device`: where the merge runs and its results land (the live model's device).
        `cache_inputs`: keep the inputs' tensors between candidates (default: when they fit, see
        `InputPlacement.choose`); they then live on the device itself, or in pinned CPU memory when
        the device has no room for them.
        `cache_ranks`: keep each task vector's magnitude ranks for TIES, breadcrumbs and DELLA in half the
        room the inputs leave (sparsify_cache.py); False sorts them per candidate, as mergekit does."""
        from mergekit.architecture import get_architecture_info
        from mergekit.config import MergeConfiguration
        from mergekit.io.tasks import LoaderCache
        from mergekit.options import MergeOptions

        self.device = torch.device(device)
        self.options = MergeOptions(device=str(self.device), copy_tokenizer=False, lazy_unpickle=False, quiet=True)
        config = MergeConfiguration.model_validate(template)
        self.arch_info = get_architecture_info(config, self.options)
        self.random_seed = random_seed  # for dare_*/della: the same masks as `mergekit-yaml --random-seed`
        self._config_cache: dict = {}
        self._first_model = config.referenced_models()[0]
        self._names = None  # compat.weight_names of the inputs' architecture, for recipes
        self._layer_pools: dict = {}  # id(live model) -> every layer it was built with (compat.set_depth)
        self.placement = InputPlacement.choose(config, self.device, cache_inputs)
        if not self.placement.cached:
            _log.warning("merge inputs: %s", self.placement.describe())
        self.cache_inputs = self.placement.cached
        # None: mergekit sorts per candidate (asked for, or no room left beside the inputs)
        self.ranks = SparsifyCache(self.placement.cache_bytes) if cache_ranks and self.placement.cache_bytes else None
        self._inputs: dict = {}  # GatherTensors key -> {model: tensor}, filled on first use
        self._input_versions: dict = {}  # GatherTensors key -> torch version counters when read
        self.loader_cache = LoaderCache()
        self.loader_cache.setup(options=self.options)
        for model in config.referenced_models():
            self.loader_cache.get(model)

    def merge(self, candidate: dict | list) -> dict[str, torch.Tensor]:
        """The merged state dict of a candidate (names as mergekit writes them)."""
        return dict(self._tensors(candidate))

    def _tensors(self, candidate: dict | list):
        return self.recipe_tensors(candidate) if is_recipe(candidate) else self.merged_tensors(candidate)

    def merged_tensors(self, config_dict: dict, only: dict[str, str] | None = None):
        """(name, tensor) for each merged tensor, as mergekit's executor finishes it; the caller
        decides where each goes (a dict, or straight into a live model: no second full copy).
        `only`: merge just these tensors (mergekit's name -> the name to give it); the rest of the
        config's tensors are not computed."""
        from mergekit.common import dtype_from_name
        from mergekit.config import MergeConfiguration

        config = MergeConfiguration.model_validate(config_dict)
        # planning reads each input's config.json about 7 times per candidate (half of its time on toy
        # models); the inputs do not change during a run, so each is read once
        with model_configs_memoised(self._config_cache):
            planned = plan_merge(config, self.arch_info, self.options)
        if only is not None:
            planned = [(weight, task) for weight, task in planned if weight.name in only]
        by_task = {task: weight for weight, task in planned}
        executor = self._executor(list(by_task))
        if self.random_seed is not None:  # as run_merge does before executing (masks drawn in task order)
            import transformers

            transformers.trainer_utils.set_seed(self.random_seed)
        # only methods that rank task vectors by magnitude go through the sparsify cache (the hook costs
        # the others a little on small models)
        ranks = self.ranks if sparsification_of(config.merge_method) in RULES else None
        for task, value in _hooked(executor.run(quiet=True), ranks):
            weight = by_task[task]
            if value is None:
                continue  # an optional tensor that no input has
            dtype = weight.force_dtype or config.out_dtype
            name = weight.name if only is None else only[weight.name]
            yield name, value.to(dtype=dtype_from_name(dtype)) if dtype else value
        self._check_inputs_untouched()

    def _check_inputs_untouched(self) -> None:
        """Stop if a merge method wrote into its input tensors: every later candidate would start from
        spoiled inputs (mergekit's loaders hand out the same storage again, so re-reading cannot help)."""
        touched = [key for key, values in self._inputs.items() if tensor_versions(values) != self._input_versions[key]]
        if touched:
            names = sorted({info.name for key in touched for _, info in key[0]})
            raise RuntimeError(f"the merge method changed its input tensors in place ({', '.join(names[:3])}...): "
                               "candidates merged in memory would be wrong; fix the method to return new tensors")

    def _executor(self, targets: list):
        """mergekit's Executor over the candidate's tasks, its input tensors handed in as cached values.

        The inputs (`GatherTensors` tasks: the same tensors of the same models for every candidate) are
        read once through mergekit itself and kept, and each candidate's graph starts from them, which
        halves its size and skips the loads. mergekit's methods leave their inputs alone (tested for all
        ten numeric ones); one that writes into them is caught by torch's version counters."""
        from mergekit.graph import Executor, TaskUniverse

        # results stay on the merge's device: each is copied into the live model there (no round trip)
        device = self.device
        if not self.cache_inputs:
            return Executor(targets=targets, math_device=device, storage_device=device)
        gathers = _input_tasks(targets)
        missing = [t for t in gathers if gather_key(t) not in self._inputs]
        if missing:
            for task, value in Executor(targets=missing, storage_device=self.placement.device).run(quiet=True):
                if self.placement.pinned:  # page-locked: each tensor's copy to the GPU runs at full speed
                    value = {model: tensor.pin_memory() for model, tensor in value.items()}
                self._inputs[gather_key(task)] = value
                self._input_versions[gather_key(task)] = tensor_versions(value)
        universe = TaskUniverse()
        cached = {}
        for task in gathers:  # added first and not recursively: their loads never enter the graph
            handle = universe.add_task(task, recursive=False)
            cached[handle] = dict(self._inputs[gather_key(task)])
        handles = [universe.add_task(t) for t in targets]
        return Executor(targets=handles, math_device=device, storage_device=device, cached_values=cached)

    def merge_into(self, model: torch.nn.Module, candidate: dict | list) -> float:
        """Merge a candidate (a mergekit config, or a recipe of several: see recipe.py) into `model` in
        place, each tensor copied into its parameter as soon as it is merged (so the merge never holds a
        whole second model); returns the seconds spent."""
        start = time.perf_counter()
        depth = output_depth(candidate)
        if depth is not None:  # a stack of layers: the live model runs as many as the candidate has
            set_depth(model, depth, self._layer_pools.setdefault(id(model), list(model.get_decoder().layers)))
        targets = model.state_dict(keep_vars=True)
        written = set()
        storage: dict[int, str] = {}  # data_ptr -> the name first written there (tied tensors share one)
        with torch.no_grad():
            for name, value in self._tensors(candidate):
                target = targets.get(name)
                if target is None:
                    raise RuntimeError(f"merged tensors do not fit the model: unexpected {name}")
                if target.shape != value.shape:
                    raise RuntimeError(f"merged tensors do not fit the model: {name} is {tuple(value.shape)}, "
                                       f"the model's {tuple(target.shape)}")
                tied = storage.get(target.data_ptr())
                if tied is not None and tied != name:
                    if not torch.equal(target, value.to(target.dtype)):
                        # in a file the two would differ, and transformers would then load them untied
                        raise RuntimeError(f"{name} and {tied} are one tied tensor in the live model, but this "
                                           "candidate merges them differently (they come from different stages or "
                                           "slices): untie them (tie_word_embeddings: false) in the inputs' config")
                    written.add(name)
                    continue
                target.copy_(value)
                storage[target.data_ptr()] = name
                written.add(name)
                if len(written) == 3:
                    crash_point("merge")  # the live model holds part of this candidate, part of the last
        # tied embeddings are legitimately absent from the merge's output
        missing = [k for k in targets if k not in written and not k.endswith("lm_head.weight")]
        if missing:
            raise RuntimeError(f"merged tensors do not fit the model: missing {missing[:3]}")
        return time.perf_counter() - start


    def recipe_tensors(self, recipe: list[dict]):
        """(name, tensor) of a recipe whose final config stacks its stages' layers (recipe.py): each stage
        merges only the tensors the final model takes from it, renamed to their place there, then cast
        as mergekit-multi's files would be: saved at the stage's out_dtype (else as merged), loaded at the
        final config's dtype, saved at its out_dtype."""
        from mergekit.common import dtype_from_name

        parts, final = stacked_parts(recipe)
        if self._names is None:
            with model_configs_memoised(self._config_cache):
                self._names = weight_names(self.arch_info, self._first_model.config())
        before, layer, after = self._names
        load = dtype_from_name(final.get("dtype")) if final.get("dtype") else None
        save = dtype_from_name(final.get("out_dtype")) if final.get("out_dtype") else None
        for part in parts:
            only = {}
            for i in range(part.stop - part.start):
                only.update(zip(layer(part.start + i), layer(part.offset + i), strict=True))
            if part.embeddings:
                only.update((name, name) for name in before)
            if part.head:
                only.update((name, name) for name in after)
            for name, value in self.merged_tensors(part.stage, only):
                value = value.to(dtype=load) if load is not None else value
                yield name, value.to(dtype=save) if save is not None else value


def _hooked(results, ranks: SparsifyCache | None):
    """The executor's results, mergekit's sparsification answered from `ranks` while it computes each
    (the hook is off whenever the caller has the result)."""
    if ranks is None:
        yield from results
        return
    while True:
        with sparsify_hooked(ranks.sparsify):
            item = next(results, None)
        if item is None:
            return
        yield item


def output_depth(candidate: dict | list) -> int | None:
    """How many layers a candidate stacks (its final config's slices), or None when it takes the inputs'."""
    final = stacked_parts(candidate)[1] if is_recipe(candidate) else candidate
    slices = final.get("slices")
    if not slices:
        return None
    return sum(int(s["sources"][0]["layer_range"][1]) - int(s["sources"][0]["layer_range"][0]) for s in slices)


def _input_tasks(targets: list) -> list:
    """The `GatherTensors` tasks (the inputs' tensors) that the merge tasks depend on."""
    from mergekit.io.tasks import GatherTensors

    found, seen, stack = [], set(), list(targets)
    while stack:
        task = stack.pop()
        if task in seen:
            continue
        seen.add(task)
        if isinstance(task, GatherTensors):
            found.append(task)
        else:
            stack.extend(task.arguments().values())
    return found


_log = logging.getLogger(__name__)
GIB = 1024 ** 3


@dataclass(frozen=True)
class InputPlacement:
    """Where the merge's input tensors are kept between candidates, and why.

    - on the merge device (a GPU) when they fit beside the live model with a fifth of the GPU left for
      the evaluation: every candidate's merge then reads and writes GPU memory only;
    - else in pinned CPU memory, each tensor copied to the GPU when a merge needs it;
    - on a CPU, in memory when they take at most a quarter of it (the page cache would keep them anyway);
    - else not kept: read from disk per candidate by mergekit's lazy loader (slow; said once).

    Half of what the inputs leave of that room is the sparsify cache's (`cache_bytes`): on the device with
    them, on a CPU in host memory; none when the inputs themselves did not fit where the merge runs. The
    other half stays for the merge's own working set (a task vector's sort alone takes 12 bytes a weight).
    """

    cached: bool
    device: str  # where cached inputs live
    pinned: bool
    input_bytes: int
    room_bytes: int  # the room they were measured against
    cache_bytes: int = 0  # what is left of it for the sparsify cache (sparsify_cache.py)

    @classmethod
    def choose(cls, config, device: torch.device, cache_inputs: bool | None = None) -> "InputPlacement":
        size = input_bytes(config)
        host = _host_memory()
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            room = free - total // 5
            if cache_inputs is not False and size <= room:
                return cls(True, str(device), False, size, room, (room - size) // 2)
            host_ok = size <= host // 2 if cache_inputs is None else cache_inputs
            return cls(host_ok, "cpu", host_ok, size, host // 2 if cache_inputs is None else room)
        host_ok = size <= host // 4 if cache_inputs is None else cache_inputs
        return cls(host_ok, "cpu", False, size, host // 4, max(0, host // 4 - size) // 2 if host_ok else 0)

    def describe(self) -> str:
        size = f"{self.input_bytes / GIB:.2f} GiB"
        if not self.cached:
            return (f"the inputs ({size}) do not fit in the memory set aside for them ({self.room_bytes / GIB:.1f} GiB): "
                    "each candidate reads them from disk through mergekit's lazy loader (slower, little memory)")
        where = "pinned CPU memory (the GPU has no room for them)" if self.pinned else self.device
        return f"the inputs ({size}) are held in {where}"


def input_bytes(config) -> int:
    """The size on disk of every input model's weights (what caching them all takes)."""
    total = 0
    for model in config.referenced_models():
        folder = Path(str(model.model.path))
        total += sum(f.stat().st_size for f in folder.glob("*.safetensors")) + sum(
            f.stat().st_size for f in folder.glob("*.bin"))
    return total


def _host_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
