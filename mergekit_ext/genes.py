"""Genes <-> mergekit configs: which numbers of a merge config evolution may change, and how.

A searched parameter gets one gene per (model, layer group, parameter set): models only for
per-model parameters (e.g. `weight`, `density`), layer groups from `granularity` (global: 1 value;
N: N values spread over the depth as a mergekit gradient list, which interpolates between them;
per_layer: one value per layer, exact), parameter sets
from `filters` (one value per filter substring such as self_attn or mlp, and one for the rest).
Genes live in [0, 1] for the optimiser; each maps linearly onto its parameter's range.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from merge3_plugin.errors import UserError

from .config import EvolveConfig, searchable

REST = "*"  # the parameter set of tensors no filter matches


@dataclass(frozen=True)
class Gene:
    param: str
    model: int | None  # index into the config's models, None for a shared parameter
    group: int
    filter: str  # a filter substring, or REST
    low: float
    high: float

    def label(self, model_names: list[str]) -> str:
        who = f"{model_names[self.model]}." if self.model is not None else ""
        where = "" if self.filter == REST else f"[{self.filter}]"
        return f"{who}{self.param}{where}@{self.group}"


class GeneSpace:
    def __init__(self, config: EvolveConfig):
        self.config = config
        evolve = config.evolve
        if not evolve.search:
            raise UserError(f"{config.path}: field 'evolve.search': name at least one parameter to search, e.g. "
                            "{weight: [0.0, 1.0]}")
        if evolve.space_options:
            raise UserError(f"{config.path}: field 'evolve.space_options': the params space takes no options "
                            f"(got {', '.join(evolve.space_options)}); granularity and filters shape it")
        if evolve.granularity == "global":
            self.groups = 1
        elif evolve.granularity == "per_layer":
            self.groups = config.num_layers
        else:
            self.groups = min(int(evolve.granularity), config.num_layers)
        self.filters = [*evolve.filters, REST] if evolve.filters else [REST]
        scopes = searchable(config.method)
        models = config.merge.get("models") or []
        base = str(config.merge.get("base_model") or "")
        self.model_names = [str(m["model"]).rstrip("/").rsplit("/", 1)[-1] for m in models]
        genes = []
        for param, (low, high) in evolve.search.items():
            if scopes[param] == "shared":
                owners = [None]
            else:  # per model; a base model listed among the models gets none for non_base parameters
                owners = [i for i, m in enumerate(models)
                          if scopes[param] != "non_base" or str(m["model"]) != base]
            for owner in owners:
                for group in range(self.groups):
                    for flt in self.filters:
                        genes.append(Gene(param, owner, group, flt, float(low), float(high)))
        self.genes = genes

    @property
    def dims(self) -> int:
        return len(self.genes)

    def values(self, x: np.ndarray) -> np.ndarray:
        x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
        if x.shape != (self.dims,):
            raise ValueError(f"expected {self.dims} genes, got shape {x.shape}")
        low = np.array([g.low for g in self.genes])
        high = np.array([g.high for g in self.genes])
        return low + x * (high - low)

    def to_config(self, x: np.ndarray) -> dict:
        """The plain mergekit config (a dict `mergekit-yaml` runs) for genes x in [0, 1]."""
        merge = copy.deepcopy(self.config.merge)
        values = self.values(x)
        slots: dict[tuple[str, int | None], dict[str, list[float]]] = {}
        for gene, value in zip(self.genes, values, strict=True):
            slots.setdefault((gene.param, gene.model), {}).setdefault(gene.filter, [0.0] * self.groups)
            slots[(gene.param, gene.model)][gene.filter][gene.group] = round(float(value), 6)
        for (param, owner), by_filter in slots.items():
            entry = _value(by_filter, self.filters)
            if owner is None:
                merge.setdefault("parameters", {})
                merge["parameters"] = dict(merge["parameters"] or {})
                merge["parameters"][param] = entry
            else:
                model = merge["models"][owner]
                model["parameters"] = dict(model.get("parameters") or {})
                model["parameters"][param] = entry
        return merge

    def describe(self) -> str:
        lines = [f"{self.dims} genes ({len(self.config.evolve.search)} parameter(s) x models x {self.groups} layer "
                 f"group(s) x {len(self.filters)} parameter set(s)); {self.config.num_layers} layers",
                 f"{'#':>4}  {'gene':<44}{'low':>8}{'high':>8}"]
        for i, gene in enumerate(self.genes):
            lines.append(f"{i:>4}  {gene.label(self.model_names):<44}{gene.low:>8.3g}{gene.high:>8.3g}")
        return "\n".join(lines)


def _value(by_filter: dict[str, list[float]], filters: list[str]):
    """mergekit's value syntax: a number, a gradient list over layers, or filter entries (first match wins)."""
    def one(values: list[float]):
        return values[0] if len(values) == 1 else values

    if filters == [REST]:
        return one(by_filter[REST])
    return [{"filter": f, "value": one(by_filter[f])} for f in filters if f != REST] + [{"value": one(by_filter[REST])}]


def space_for(config: EvolveConfig):
    """The search space `evolve.space` names (plugins: the `merge3_search_spaces` hook)."""
    from merge3_plugin.plugins import lookup

    return lookup("search_space", config.evolve.space)(config)
