"""Merge a candidate config into a live model, in memory: no files per candidate.

mergekit's own planner builds the task graph (so every method, gradient and filter means exactly
what it means to `mergekit-yaml`), and its Executor computes the tensors; instead of the disk
writer, the results are cast as `SaveTensor` would cast them and copied into one model object.
(`MergePlanner.plan_in_memory()` is broken in mergekit 0.1.5, hence `_plan()` here.)
Input tensors are read once: the model loaders are warmed and kept for the merger's life.
"""

from __future__ import annotations

import time

import torch


class InMemoryMerger:
    def __init__(self, template: dict, device: str = "cpu"):
        from mergekit.architecture import get_architecture_info
        from mergekit.config import MergeConfiguration
        from mergekit.io.tasks import LoaderCache
        from mergekit.options import MergeOptions

        self.options = MergeOptions(device=device, copy_tokenizer=False, lazy_unpickle=False, quiet=True)
        config = MergeConfiguration.model_validate(template)
        self.arch_info = get_architecture_info(config, self.options)
        self.loader_cache = LoaderCache()
        self.loader_cache.setup(options=self.options)
        for model in config.referenced_models():
            self.loader_cache.get(model)

    def merge(self, config_dict: dict) -> dict[str, torch.Tensor]:
        """The merged state dict for a plain mergekit config (names as mergekit writes them)."""
        from mergekit.common import dtype_from_name
        from mergekit.config import MergeConfiguration
        from mergekit.graph import Executor
        from mergekit.merge import _model_out_config
        from mergekit.plan import MergePlanner

        config = MergeConfiguration.model_validate(config_dict)
        planner = MergePlanner(config, self.arch_info, options=self.options,
                               out_model_config=_model_out_config(config, self.arch_info))
        planner._plan()
        by_task = {task: weight for weight, task in planner._tensors}
        executor = Executor(targets=list(by_task), math_device=self.options.device, storage_device="cpu")
        out = {}
        for task, value in executor.run(quiet=True):
            weight = by_task[task]
            if value is None:
                continue  # an optional tensor that no input has
            dtype = weight.force_dtype or config.out_dtype
            out[weight.name] = value.to(dtype=dtype_from_name(dtype)) if dtype else value
        return out

    def merge_into(self, model: torch.nn.Module, config_dict: dict) -> float:
        """Merge and load into `model` in place; returns the seconds spent."""
        start = time.perf_counter()
        state = self.merge(config_dict)
        missing, unexpected = model.load_state_dict(state, strict=False)
        # tied embeddings are legitimately absent from the merge's output
        missing = [k for k in missing if not k.endswith("lm_head.weight")]
        if missing or unexpected:
            raise RuntimeError(f"merged tensors do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return time.perf_counter() - start
