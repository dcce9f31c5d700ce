"""The depth space: merged models built from whole layers of the input models, two ways.

`mode: slots` (the default), after the data-flow space of Sakana's evolutionary model merge: each
layer slot of the merged model takes one layer of one input model, in any order, repeats allowed.
One gene per slot, in [0, 1], binned onto the (model, layer) sources.

`mode: dis`, the depth-wise integration search (DIS) of "Fine, I'll Merge It Myself": for each layer
position i, any subset of the models' layer i, stacked in an evolved order, the last one's output
scaled by a factor in [0, 2] (its `scale_filters` tensors: the attention and MLP output projections,
so the layer's contribution to the residual stream is scaled); a position with no layer chosen takes
the base model's layer i. Per position: two genes per model (chosen when >= 0.5; the order key) and
one for the scale. The merged model is at most `max_depth` layers deep (default the base depth plus
25%): over it, the position with the most layers (the last such) gives up its first, until it fits.
Candidates of one run have different depths: the live model holds `max_depth` layers and runs the
first `depth` of them (compat.set_depth).

Either way a candidate is a plain mergekit `passthrough` config with one slice per layer, so
`mergekit-yaml` builds the same model (bit-identical in memory; tested).

    merge_method: passthrough
    base_model: /m/base                 # dis: what empty positions take (default: the first model)
    models: [{model: /m/expert-math}, {model: /m/expert-lang}]
    dtype: float32
    evolve:
      space: depth
      space_options: {slots: 6}                      # slots: layers of the merged model
      # space_options: {mode: dis, max_depth: 5}     # dis

Embeddings come from the model of the first slice, final norm and head from the last one's, as
mergekit does it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from merge3_plugin.errors import UserError
from merge3_plugin.plugins import endpoint_estimators

from ..config import EvolveConfig, model_depth

MODES = ("slots", "dis")
OPTIONS = {"slots": ("mode", "slots"), "dis": ("mode", "max_depth", "scale_filters")}
SCALE_MAX = 2.0


class DepthSpace:
    # never_worse.py: a stack of whole layers is no merge of your config's kind, so your config is not a
    # candidate here (its depth and layout differ); the first generation starts from its models' layers
    keeps_config = False

    def __init__(self, config: EvolveConfig):
        self.config = config
        evolve = config.evolve
        where = f"{config.path}: field 'evolve"
        options = dict(evolve.space_options)
        mode = options.get("mode", "slots")
        if mode not in MODES:
            raise UserError(f"{where}.space_options.mode': slots (one source layer per slot) or dis (per position a "
                            f"subset of the models' layers), not {mode!r}")
        unknown = [k for k in options if k not in OPTIONS[mode]]
        if unknown:
            raise UserError(f"{where}.space_options.{unknown[0]}': the depth space in mode {mode} takes "
                            f"{', '.join(OPTIONS[mode])}")
        if evolve.search:
            raise UserError(f"{where}.search': the depth space picks layers and searches no parameters; remove it")

        needed = endpoint_estimators()
        merged = [s.estimator for s in evolve.fitness if s.estimator in needed]
        if merged:
            raise UserError(f"{where}.fitness': {merged[0]} estimates a weight merge from its endpoints; a stack of "
                            "layers has none: use gpirt, pirt or anchor")
        self.mode = mode
        models = [str(m["model"]) for m in config.merge.get("models") or []]
        base = config.merge.get("base_model")
        paths = models + ([str(base)] if base and str(base) not in models else [])
        depths = {path: model_depth(path) for path in paths}
        unknown = [path for path, depth in depths.items() if depth is None]
        if unknown:
            raise UserError(f"{config.path}: cannot tell the number of layers of {unknown[0]}")
        self.sources = [(path, layer) for path in paths for layer in range(depths[path])]
        if mode == "slots":
            slots = options.get("slots", config.num_layers)
            if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
                raise UserError(f"{where}.space_options.slots': a number of layers >= 1, not {slots!r}")
            self.slots = slots
            self.num_layers = slots  # depth of every candidate: the live model is built this deep
            return
        self.models = models
        self.base = str(base) if base else models[0]
        self.positions = depths[self.base]
        shallow = [p for p in models if depths[p] != self.positions]
        if shallow:
            raise UserError(f"{config.path}: field 'models': dis stacks each position's layer i of every model; "
                            f"{shallow[0]} has {depths[shallow[0]]} layers, the base {self.positions}")
        cap = options.get("max_depth", self.positions + self.positions // 4)
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < self.positions:
            raise UserError(f"{where}.space_options.max_depth': a number of layers >= the base's {self.positions}, "
                            f"not {cap!r}")
        filters = options.get("scale_filters", ["o_proj", "down_proj"])
        if not isinstance(filters, list) or not filters or not all(isinstance(f, str) and f for f in filters):
            raise UserError(f"{where}.space_options.scale_filters': tensor-name substrings, e.g. [o_proj, down_proj]")
        self.max_depth = cap
        self.scale_filters = filters
        self.num_layers = cap  # the deepest candidate: the live model holds this many layers

    @property
    def dims(self) -> int:
        if self.mode == "slots":
            return self.slots
        return self.positions * (2 * len(self.models) + 1)

    # -- slots ---------------------------------------------------------------------------------------
    def choices(self, x) -> list[tuple[str, int]]:
        x = self._genes(x)
        index = np.minimum((x * len(self.sources)).astype(int), len(self.sources) - 1)
        return [self.sources[i] for i in index]

    # -- dis -----------------------------------------------------------------------------------------
    def stacks(self, x) -> list[tuple[list[str], float]]:
        """Per position: the models whose layer i is stacked there, in order, and the last one's scale;
        an empty choice is the base's layer at scale 1; trimmed to max_depth."""
        x = self._genes(x).reshape(self.positions, 2 * len(self.models) + 1)
        m = len(self.models)
        stacks = []
        for row in x:
            chosen = [j for j in range(m) if row[j] >= 0.5]
            chosen.sort(key=lambda j: (row[m + j], j))
            if chosen:
                stacks.append(([self.models[j] for j in chosen], round(float(row[-1]) * SCALE_MAX, 6)))
            else:
                stacks.append(([self.base], 1.0))
        while sum(len(models) for models, _ in stacks) > self.max_depth:
            most = max(len(models) for models, _ in stacks)
            i = max(i for i, (models, _) in enumerate(stacks) if len(models) == most)
            stacks[i] = (stacks[i][0][1:], stacks[i][1])
        return stacks

    def to_config(self, x) -> dict:
        if self.mode == "slots":
            slices = [{"sources": [{"model": path, "layer_range": [layer, layer + 1]}]} for path, layer in self.choices(x)]
        else:
            slices = []
            for i, (models, scale) in enumerate(self.stacks(x)):
                for k, path in enumerate(models):
                    piece = {"sources": [{"model": path, "layer_range": [i, i + 1]}]}
                    if k == len(models) - 1 and scale != 1.0:
                        piece["parameters"] = {"scale": [*({"filter": f, "value": scale} for f in self.scale_filters),
                                                         {"value": 1.0}]}
                    slices.append(piece)
        return {"merge_method": "passthrough", "dtype": self.config.merge.get("dtype", "float32"), "slices": slices}

    def warm_start(self) -> np.ndarray:
        """First-generation rows. slots: each input model's own layers in order (slot k takes its layer k,
        wrapping round when there are more slots than layers); dis: the base alone (no position chooses a
        layer), then each model alone (only it chosen everywhere, scale 1)."""
        if self.mode == "slots":
            rows = []
            for path in dict.fromkeys(path for path, _ in self.sources):
                own = [i for i, (p, _) in enumerate(self.sources) if p == path]
                rows.append([(own[k % len(own)] + 0.5) / len(self.sources) for k in range(self.slots)])
            return np.array(rows)
        m = len(self.models)
        rows = []
        for alone in [None, *range(m)]:
            row = np.zeros((self.positions, 2 * m + 1))
            if alone is not None:
                row[:, alone] = 1.0
            row[:, -1] = 1.0 / SCALE_MAX  # scale 1
            rows.append(row.ravel())
        return np.array(rows)

    def _genes(self, x) -> np.ndarray:
        x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
        if x.shape != (self.dims,):
            raise ValueError(f"expected {self.dims} genes, got shape {x.shape}")
        return x

    def describe(self) -> str:
        if self.mode == "dis":
            names = ", ".join(Path(p).name for p in self.models)
            return (f"{self.dims} genes: per layer position (0-{self.positions - 1}) of {names}: whether each "
                    f"model's layer is stacked there (gene >= 0.5) and its order key, and the scale in [0, "
                    f"{SCALE_MAX:g}] of the last one's {', '.join(self.scale_filters)}; empty positions take "
                    f"{Path(self.base).name}'s layer; at most {self.max_depth} layers")
        names = {path: Path(path).name for path, _ in self.sources}
        lines = [f"{self.dims} genes: one per layer slot of the merged model ({self.slots} layers); each picks one of "
                 f"{len(self.sources)} source layers (its gene in [0, 1] binned onto them, in this order):"]
        lines += [f"  {i:>3}  {names[path]}.layers[{layer}]" for i, (path, layer) in enumerate(self.sources)]
        return "\n".join(lines)
