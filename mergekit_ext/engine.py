"""The evolve engine: one live model, the in-memory merger that writes candidates into it, and the
fitness that scores it. Built in one place for the search, `--save-model` and the benchmarks."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from .config import EvolveConfig
from .scoring.fitness import endpoints_for


@dataclass
class Engine:
    model: Any  # a transformers model on the eval device, holding the last merged candidate
    tokenizer: Any
    merger: Any  # InMemoryMerger
    fitness: Any  # Fitness over `model`
    config: Any = None  # the EvolveConfig it was built for
    _select: Any = None
    _held_out: Any = None

    def fitness_for(self, stage: str):
        """The fitness of a stage: `search` and `incumbent` (evolve.fitness), `select` (evolve.select.fitness)
        or `held_out` (the never-worse duel: never_worse.py); the last two built on first use, sharing the
        search fitness's lm-eval model."""
        if stage in ("search", "incumbent"):
            return self.fitness
        if stage == "held_out":
            if self._held_out is None:
                from .select.never_worse import HeldOutFitness

                self._held_out = HeldOutFitness(self.config, self.fitness)
            return self._held_out
        if self._select is None:
            from .scoring.fitness import Fitness

            specs = self.config.evolve.select.fitness
            self._select = Fitness(self.config, self.model, None, endpoints_for(self.config, specs), specs=specs,
                                   share=self.fitness)
        return self._select


def build_engine(config: EvolveConfig, depth: int | None = None, manager=None) -> Engine:
    """Load the live model, the merger and the fitness of `config`. `depth`: the layer count of the
    candidates when the search space changes it (the depth space), else the first model's;
    `manager`: lm-eval's task index, if already built (`fitness.task_manager`)."""
    import torch
    from mergekit.common import dtype_from_name
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .scoring.fitness import Fitness
    from .merging.inmemory import InMemoryMerger

    merge = config.merge
    first = str(merge.get("base_model") or merge["models"][0]["model"])
    # the live model holds what mergekit-yaml would write: the merge's dtype, on the eval device
    # (lm-eval's HFLM evaluates a model object where it lies)
    dtype = dtype_from_name(merge.get("out_dtype") or merge.get("dtype")) or torch.float32
    device = config.evolve.eval.device
    model = AutoModelForCausalLM.from_pretrained(first, dtype=dtype)
    if depth and depth != model.config.num_hidden_layers:
        shape = copy.deepcopy(model.config)
        shape.num_hidden_layers = depth
        model = AutoModelForCausalLM.from_config(shape, dtype=dtype)  # every weight comes from the merge
    model = model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(first)
    # dare_*/della draw random masks: seeded per candidate, as `mergekit-yaml --random-seed` does
    merger = InMemoryMerger(merge, device=device, random_seed=config.evolve.seed)
    fitness = Fitness(config, model, tokenizer, endpoints_for(config, config.evolve.fitness), manager=manager)
    return Engine(model, tokenizer, merger, fitness, config)
