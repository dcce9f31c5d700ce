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
from merge3_plugin.plugins import lookup

from ..config import EvolveConfig, searchable

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
            entry = filtered_value(by_filter, self.filters)
            if owner is None:
                merge.setdefault("parameters", {})
                merge["parameters"] = dict(merge["parameters"] or {})
                merge["parameters"][param] = entry
            else:
                model = merge["models"][owner]
                model["parameters"] = dict(model.get("parameters") or {})
                model["parameters"][param] = entry
        return merge

    def warm_start(self) -> np.ndarray:
        """Genes for the first generation (`evolve.warm_start`), rows in [0, 1]: first the config's own
        values (a searched parameter given as a plain number keeps it, clipped into its range; others
        start mid-range), then the endpoints: each model alone (its `weight` at 1, the others' at 0) and,
        for a shared `t`, both ends. Duplicates are dropped."""
        own = np.array([self._gene_of(gene, self._given(gene)) for gene in self.genes])
        rows = [own]
        weights = [i for i, g in enumerate(self.genes) if g.param == "weight" and g.model is not None]
        for model in sorted({self.genes[i].model for i in weights}):
            row = own.copy()
            for i in weights:
                row[i] = self._gene_of(self.genes[i], 1.0 if self.genes[i].model == model else 0.0)
            rows.append(row)
        shared_t = [i for i, g in enumerate(self.genes) if g.param == "t" and g.model is None]
        for end in (0.0, 1.0):
            if shared_t:
                row = own.copy()
                row[shared_t] = [self._gene_of(self.genes[i], end) for i in shared_t]
                rows.append(row)
        unique = []
        for row in rows:
            if not any(np.array_equal(row, seen) for seen in unique):
                unique.append(row)
        return np.array(unique)

    def _given(self, gene: Gene) -> float | None:
        """The number the config gives this gene's parameter (per model, else merge-wide), if a plain one."""
        merge = self.config.merge
        places = [merge["models"][gene.model].get("parameters") or {}] if gene.model is not None else []
        places.append(merge.get("parameters") or {})
        for params in places:
            value = params.get(gene.param)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if value is not None:
                return None  # a gradient or filter list: no single number to start from
        return None

    @staticmethod
    def _gene_of(gene: Gene, value: float | None) -> float:
        if value is None or gene.high == gene.low:
            return 0.5
        return float(np.clip((value - gene.low) / (gene.high - gene.low), 0.0, 1.0))

    def describe(self) -> str:
        lines = [f"{self.dims} genes ({len(self.config.evolve.search)} parameter(s) x models x {self.groups} layer "
                 f"group(s) x {len(self.filters)} parameter set(s)); {self.config.num_layers} layers",
                 f"{'#':>4}  {'gene':<44}{'low':>8}{'high':>8}"]
        for i, gene in enumerate(self.genes):
            lines.append(f"{i:>4}  {gene.label(self.model_names):<44}{gene.low:>8.3g}{gene.high:>8.3g}")
        return "\n".join(lines)


def filtered_value(by_filter: dict[str, list[float]], filters: list[str]):
    """mergekit's value syntax: a number, a gradient list over layers, or filter entries (first match wins)."""
    def one(values: list[float]):
        return values[0] if len(values) == 1 else values

    if filters == [REST]:
        return one(by_filter[REST])
    return [{"filter": f, "value": one(by_filter[f])} for f in filters if f != REST] + [{"value": one(by_filter[REST])}]


def space_for(config: EvolveConfig):
    """The search space `evolve.space` names (plugins: the `merge3_search_spaces` hook)."""
    return lookup("search_space", config.evolve.space)(config)
