"""The depth space: which layer of which model fills each layer slot of the merged model.

After the depth-wise integration search (DIS) of "Fine, I'll Merge It Myself" and the data-flow
space of Sakana's evolutionary model merge: instead of mixing weights, a candidate stacks whole
layers taken from the input models, in any order, repeats allowed. One gene per slot, in [0, 1],
binned onto the (model, layer) sources. A candidate is a plain mergekit `passthrough` config with
one slice per slot, so `mergekit-yaml` builds the same model (bit-identical in memory; tested).

    merge_method: passthrough
    models: [{model: /m/expert-math}, {model: /m/expert-lang}]
    dtype: float32
    evolve:
      space: depth
      space_options: {slots: 6}     # layers of the merged model (default: the inputs' depth)
      fitness: [...]

Embeddings, final norm and head come from the model of the first slice, as mergekit does it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from merge3_plugin.errors import UserError

from .config import EvolveConfig, model_depth


class DepthSpace:
    def __init__(self, config: EvolveConfig):
        self.config = config
        evolve = config.evolve
        where = f"{config.path}: field 'evolve"
        options = dict(evolve.space_options)
        slots = options.pop("slots", config.num_layers)
        if options:
            raise UserError(f"{where}.space_options': the depth space takes only slots; not {', '.join(options)}")
        if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
            raise UserError(f"{where}.space_options.slots': a number of layers >= 1, not {slots!r}")
        if evolve.search:
            raise UserError(f"{where}.search': the depth space picks layers and searches no parameters; remove it")
        from merge3_plugin.plugins import endpoint_estimators

        needed = endpoint_estimators()
        merged = [s.estimator for s in evolve.fitness if s.estimator in needed]
        if merged:
            raise UserError(f"{where}.fitness': {merged[0]} estimates a weight merge from its endpoints; a stack of "
                            "layers has none: use gpirt, pirt or anchor")
        paths = [str(m["model"]) for m in config.merge.get("models") or []]
        base = config.merge.get("base_model")
        if base and str(base) not in paths:
            paths.append(str(base))
        depths = {path: model_depth(path) for path in paths}
        unknown = [path for path, depth in depths.items() if depth is None]
        if unknown:
            raise UserError(f"{config.path}: cannot tell the number of layers of {unknown[0]}")
        self.sources = [(path, layer) for path in paths for layer in range(depths[path])]
        self.slots = slots
        self.num_layers = slots  # depth of every candidate: the live model is built this deep

    @property
    def dims(self) -> int:
        return self.slots

    def choices(self, x) -> list[tuple[str, int]]:
        x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
        if x.shape != (self.dims,):
            raise ValueError(f"expected {self.dims} genes, got shape {x.shape}")
        index = np.minimum((x * len(self.sources)).astype(int), len(self.sources) - 1)
        return [self.sources[i] for i in index]

    def to_config(self, x) -> dict:
        slices = [{"sources": [{"model": path, "layer_range": [layer, layer + 1]}]} for path, layer in self.choices(x)]
        return {"merge_method": "passthrough", "dtype": self.config.merge.get("dtype", "float32"), "slices": slices}

    def describe(self) -> str:
        names = {path: Path(path).name for path, _ in self.sources}
        lines = [f"{self.dims} genes: one per layer slot of the merged model ({self.slots} layers); each picks one of "
                 f"{len(self.sources)} source layers (its gene in [0, 1] binned onto them, in this order):"]
        lines += [f"  {i:>3}  {names[path]}.layers[{layer}]" for i, (path, layer) in enumerate(self.sources)]
        return "\n".join(lines)

