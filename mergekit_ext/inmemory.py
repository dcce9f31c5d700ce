"""Merge a candidate config into a live model, in memory: no files per candidate.

mergekit's own planner builds the task graph (so every method, gradient and filter means exactly
what it means to `mergekit-yaml`), and its Executor computes the tensors; instead of the disk
writer, the results are cast as `SaveTensor` would cast them and copied into one model object.
(mergekit has no public in-memory planning in 0.1.5: the private calls live in `compat.py`.)
Input tensors are read once: kept in memory when they fit (see `cache_inputs`), else through loaders
kept for the merger's life; each input's config.json is read once.
"""

from __future__ import annotations

import time

import torch

from .compat import gather_key, model_configs_memoised, plan_merge, tensor_versions

# mergekit methods that draw random masks (torch's global generator, seeded by --random-seed)
RANDOM_METHODS = ("dare_ties", "dare_linear", "della", "della_linear")


class InMemoryMerger:
    def __init__(self, template: dict, device: str = "cpu", cache_inputs: bool | None = None,
                 random_seed: int | None = None):
        """`cache_inputs`: keep the inputs' tensors in memory between candidates; by default when their
        files take at most a quarter of the machine's memory (tiny models: the per-candidate graph
        and loads are most of the merge time; 7B models: the page cache does this job)."""
        from mergekit.architecture import get_architecture_info
        from mergekit.config import MergeConfiguration
        from mergekit.io.tasks import LoaderCache
        from mergekit.options import MergeOptions

        self.options = MergeOptions(device=device, copy_tokenizer=False, lazy_unpickle=False, quiet=True)
        config = MergeConfiguration.model_validate(template)
        self.arch_info = get_architecture_info(config, self.options)
        self.random_seed = random_seed  # for dare_*/della: the same masks as `mergekit-yaml --random-seed`
        self._config_cache: dict = {}
        self.cache_inputs = _fits_in_memory(config) if cache_inputs is None else cache_inputs
        self._inputs: dict = {}  # GatherTensors key -> {model: tensor}, filled on first use
        self._input_versions: dict = {}  # GatherTensors key -> torch version counters when read
        self.loader_cache = LoaderCache()
        self.loader_cache.setup(options=self.options)
        for model in config.referenced_models():
            self.loader_cache.get(model)

    def merge(self, config_dict: dict) -> dict[str, torch.Tensor]:
        """The merged state dict for a plain mergekit config (names as mergekit writes them)."""
        return dict(self.merged_tensors(config_dict))

    def merged_tensors(self, config_dict: dict):
        """(name, tensor) for each merged tensor, as mergekit's executor finishes it; the caller
        decides where each goes (a dict, or straight into a live model: no second full copy)."""
        from mergekit.common import dtype_from_name
        from mergekit.config import MergeConfiguration

        config = MergeConfiguration.model_validate(config_dict)
        # planning reads each input's config.json about 7 times per candidate (half of its time on toy
        # models); the inputs do not change during a run, so each is read once
        with model_configs_memoised(self._config_cache):
            planned = plan_merge(config, self.arch_info, self.options)
        by_task = {task: weight for weight, task in planned}
        executor = self._executor(list(by_task))
        if self.random_seed is not None:  # as run_merge does before executing (masks drawn in task order)
            import transformers

            transformers.trainer_utils.set_seed(self.random_seed)
        for task, value in executor.run(quiet=True):
            weight = by_task[task]
            if value is None:
                continue  # an optional tensor that no input has
            dtype = weight.force_dtype or config.out_dtype
            yield weight.name, value.to(dtype=dtype_from_name(dtype)) if dtype else value
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

        if not self.cache_inputs:
            return Executor(targets=targets, math_device=self.options.device, storage_device="cpu")
        gathers = _input_tasks(targets)
        missing = [t for t in gathers if gather_key(t) not in self._inputs]
        if missing:
            for task, value in Executor(targets=missing, storage_device="cpu").run(quiet=True):
                self._inputs[gather_key(task)] = value
                self._input_versions[gather_key(task)] = tensor_versions(value)
        universe = TaskUniverse()
        cached = {}
        for task in gathers:  # added first and not recursively: their loads never enter the graph
            handle = universe.add_task(task, recursive=False)
            cached[handle] = dict(self._inputs[gather_key(task)])
        handles = [universe.add_task(t) for t in targets]
        return Executor(targets=handles, math_device=self.options.device, storage_device="cpu",
                        cached_values=cached)

    def merge_into(self, model: torch.nn.Module, config_dict: dict) -> float:
        """Merge into `model` in place, each tensor copied into its parameter as soon as it is
        merged (so the merge never holds a whole second model); returns the seconds spent."""
        start = time.perf_counter()
        targets = model.state_dict(keep_vars=True)
        written = set()
        with torch.no_grad():
            for name, value in self.merged_tensors(config_dict):
                target = targets.get(name)
                if target is None:
                    raise RuntimeError(f"merged tensors do not fit the model: unexpected {name}")
                if target.shape != value.shape:
                    raise RuntimeError(f"merged tensors do not fit the model: {name} is {tuple(value.shape)}, "
                                       f"the model's {tuple(target.shape)}")
                target.copy_(value)
                written.add(name)
        # tied embeddings are legitimately absent from the merge's output
        missing = [k for k in targets if k not in written and not k.endswith("lm_head.weight")]
        if missing:
            raise RuntimeError(f"merged tensors do not fit the model: missing {missing[:3]}")
        return time.perf_counter() - start


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


def _fits_in_memory(config) -> bool:
    import os
    from pathlib import Path

    total = 0
    for model in config.referenced_models():
        folder = Path(str(model.model.path))
        total += sum(f.stat().st_size for f in folder.glob("*.safetensors")) + sum(
            f.stat().st_size for f in folder.glob("*.bin"))
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return False
    return total <= memory // 4
