"""The layer-wise fusion space (LFS) of "Fine, I'll Merge It Myself": a merge method per layer group.

The layers split into G contiguous groups (`groups`, default 4). Each group picks its merge method
among `methods` (default linear, task_arithmetic, ties, slerp), and that method's hyperparameters
separately for each parameter set (`sets`, default self_attn and mlp, plus one for the rest):

    linear            a weight per model in [0, 1] (mergekit renormalises them)
    task_arithmetic   lambda in [0, 1] (each model's weight: the config's own, default 1)
    ties              trim rate in [0, 0.99] (density = 1 - trim) and lambda in [0, 1]
    slerp             a score per model in [0, 4]: the group's two best models (scores summed over the
                      sets) are interpolated, t = softmax of their two scores in each set

(The paper picks SLERP's pair per parameter set; one mergekit slice has one base model, so the pair
is picked per group here, and t per set.) Every gene lives in [0, 1]; the method gene is binned onto
the methods. Genes of methods a group did not pick do not reach the candidate's config, so two
candidates that differ only there have one config hash and are scored once.

One mergekit config has one method, so a candidate is a recipe (recipe.py): one stage per group,
merging that group's layers, and a passthrough that stacks them, built exactly by `mergekit-multi`.
The embeddings come from the first group's stage and the final norm and head from the last one's, as
mergekit takes them for stacked slices.

    merge_method: task_arithmetic     # your own method and values: the warm start's first row
    base_model: /m/base
    models: [{model: /m/expert-math}, {model: /m/expert-lang}]
    evolve:
      space: lfs
      space_options: {groups: 4, methods: [linear, task_arithmetic, ties, slerp], sets: [self_attn, mlp]}
      fitness: [...]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from merge3_plugin.errors import UserError

from ..config import EvolveConfig
from .genes import REST, filtered_value

METHODS = ("linear", "task_arithmetic", "ties", "slerp")
NEEDS_BASE = ("task_arithmetic", "ties")
SLERP_SCORE_MAX = 4.0  # so t = softmax of two scores spans [0.018, 0.982]
# per method: (hyperparameter, per model?, low, high), each one gene per parameter set
HYPERPARAMETERS = {
    "linear": [("weight", True, 0.0, 1.0)],
    "task_arithmetic": [("lambda", False, 0.0, 1.0)],
    "ties": [("trim", False, 0.0, 0.99), ("lambda", False, 0.0, 1.0)],
    "slerp": [("score", True, 0.0, SLERP_SCORE_MAX)],
}
OPTIONS = ("groups", "methods", "sets")


@dataclass(frozen=True)
class LfsGene:
    group: int
    method: str | None  # None: the gene that picks the group's method
    param: str = ""
    set: str = ""  # a parameter set (filter substring, or REST)
    model: int | None = None  # index into the pool, for per-model hyperparameters
    low: float = 0.0
    high: float = 1.0

    def label(self, names: list[str]) -> str:
        if self.method is None:
            return f"group{self.group}.method"
        who = f".{names[self.model]}" if self.model is not None else ""
        where = "rest" if self.set == REST else self.set
        return f"group{self.group}.{self.method}.{self.param}{who}[{where}]"


class LayerFusionSpace:
    def __init__(self, config: EvolveConfig):
        self.config = config
        groups, methods, sets = _checked_options(config)
        self.pool, self.weights, self.base = _checked_models(config, methods)
        self.methods = list(methods)
        self.sets = [*sets, REST]
        self.dtype = config.merge.get("dtype") or "float32"
        self.num_layers = config.num_layers
        self.bounds = [(int(c[0]), int(c[-1]) + 1) for c in np.array_split(np.arange(config.num_layers), groups)]
        self.names = [Path(p.rstrip("/")).name for p in self.pool]
        genes = []
        for group in range(groups):
            if len(self.methods) > 1:
                genes.append(LfsGene(group, None))
            for method in self.methods:
                for param, per_model, low, high in HYPERPARAMETERS[method]:
                    for flt in self.sets:
                        for model in (range(len(self.pool)) if per_model else [None]):
                            genes.append(LfsGene(group, method, param, flt, model, low, high))
        self.genes = genes

    @property
    def dims(self) -> int:
        return len(self.genes)

    def method_of(self, x: np.ndarray, group: int) -> str:
        if len(self.methods) == 1:
            return self.methods[0]
        i = next(i for i, g in enumerate(self.genes) if g.group == group and g.method is None)
        return self.methods[min(int(x[i] * len(self.methods)), len(self.methods) - 1)]

    def to_config(self, x) -> list[dict]:
        """The recipe (recipe.py) for genes x in [0, 1]: a stage per layer group, then the stack."""
        x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
        if x.shape != (self.dims,):
            raise ValueError(f"expected {self.dims} genes, got shape {x.shape}")
        values = {}
        for gene, value in zip(self.genes, x, strict=True):
            values[(gene.group, gene.method, gene.param, gene.set, gene.model)] = gene.low + value * (gene.high - gene.low)
        stages, slices = [], []
        for group, (start, stop) in enumerate(self.bounds):
            method = self.method_of(x, group)
            get = lambda param, flt, model=None: values[(group, method, param, flt, model)]  # noqa: E731
            stage = self._stage(method, start, stop, get)
            stages.append({"name": f"lfs-group{group}", **stage})
            slices.append({"sources": [{"model": f"lfs-group{group}", "layer_range": [0, stop - start]}]})
        final = {"merge_method": "passthrough", "dtype": self.dtype, "slices": slices}
        if self.config.merge.get("out_dtype"):
            final["out_dtype"] = self.config.merge["out_dtype"]
        return [*stages, final]

    def _stage(self, method: str, start: int, stop: int, get) -> dict:
        def per_set(param, model=None, transform=lambda v: v):
            by_set = {flt: [round(float(transform(get(param, flt, model))), 6)] for flt in self.sets}
            return filtered_value(by_set, self.sets)

        def source(path, parameters=None):
            entry = {"model": path, "layer_range": [start, stop]}
            if parameters:
                entry["parameters"] = parameters
            return entry

        # out_dtype: the stage's file holds what the in-memory merge hands on (recipe.py)
        stage = {"merge_method": method, "dtype": self.dtype, "out_dtype": self.dtype}
        if method == "linear":
            weights = [{flt: round(float(get("weight", flt, i)), 6) for flt in self.sets} for i in range(len(self.pool))]
            for flt in self.sets:  # all zero would be 0/0 (NaN) in mergekit: read them as equal weights
                if all(w[flt] == 0.0 for w in weights):
                    for w in weights:
                        w[flt] = 1.0
            sources = [source(p, {"weight": filtered_value({f: [w[f]] for f in self.sets}, self.sets)})
                       for p, w in zip(self.pool, weights, strict=True)]
        elif method == "slerp":
            totals = [sum(get("score", flt, i) for flt in self.sets) for i in range(len(self.pool))]
            first, second = sorted(range(len(self.pool)), key=lambda i: (-totals[i], i))[:2]
            t = {flt: [round(_softmax_second(get("score", flt, first), get("score", flt, second)), 6)]
                 for flt in self.sets}
            sources = [source(self.pool[first]), source(self.pool[second])]
            stage["base_model"] = self.pool[first]
            stage["parameters"] = {"t": filtered_value(t, self.sets)}
        else:  # task arithmetic, ties: deltas from the base model, each model at its own weight
            sources = []
            for i, path in enumerate(self.pool):
                if path == self.base:
                    continue
                parameters = {"weight": self.weights[i]}
                if method == "ties":
                    parameters["density"] = per_set("trim", transform=lambda trim: 1.0 - trim)
                sources.append(source(path, parameters))
            sources.append(source(self.base))  # as mergekit's planner adds it: last, no parameters
            stage["base_model"] = self.base
            stage["parameters"] = {"lambda": per_set("lambda")}
        stage["slices"] = [{"sources": sources}]
        return stage

    def warm_start(self) -> np.ndarray:
        """First-generation rows: the config's own method and values in every group (where its method is
        one of the space's; else mid-range genes), then each model alone (linear, its weight 1 and the
        others' 0) and the base alone (lambda 0), where those methods are in the space. Row 0 merges as
        the config does where its values fit the space: plain numbers inside the ranges, one density for
        every model, and for slerp t from the base model (t > 0.5 is written from the other end)."""
        own = np.full(self.dims, 0.5)
        own_method = self.config.method if self.config.method in self.methods else None
        given = self.config.merge.get("parameters") or {}
        densities = {_plain((m.get("parameters") or {}).get("density", given.get("density", 1.0)), -1.0)
                     for m in self.config.merge["models"] if str(m["model"]) != self.base}
        density = densities.pop() if len(densities) == 1 and -1.0 not in densities else None
        scores = self._slerp_scores(_plain(given.get("t"), 0.5))
        for i, gene in enumerate(self.genes):
            if gene.method is None:
                if own_method is not None:
                    own[i] = _bin_centre(self.methods.index(own_method), len(self.methods))
            elif gene.param == "lambda":
                own[i] = _unit(gene, _plain(given.get("lambda"), 1.0))  # mergekit's default lambda is 1
            elif gene.param == "trim":
                own[i] = _unit(gene, 1.0 - density) if density is not None else 0.5
            elif gene.param == "weight":
                own[i] = _unit(gene, self.weights[gene.model])
            elif gene.param == "score":
                own[i] = _unit(gene, scores[gene.model])
        rows = [own]
        if "linear" in self.methods:
            for model in range(len(self.pool)):
                rows.append(self._everywhere(own, "linear", lambda g: float(g.model == model)))
        if self.base is not None and self.base not in self.pool:
            for method in ("task_arithmetic", "ties"):
                if method in self.methods:
                    rows.append(self._everywhere(own, method, lambda g: 0.0 if g.param == "lambda" else None))
                    break
        unique = []
        for row in rows:
            if not any(np.array_equal(row, seen) for seen in unique):
                unique.append(row)
        return np.array(unique)

    def _slerp_scores(self, t: float) -> list[float]:
        """Scores that make SLERP interpolate from the config's base model toward its other model at t:
        the pair scores 1 + log((1 - t) / t) and 1 (the rest 0), swapped when t > 0.5."""
        first = self.pool.index(self.base) if self.base in self.pool else 0
        second = next(i for i in range(len(self.pool)) if i != first)
        if t > 0.5:
            first, second, t = second, first, 1.0 - t
        t = min(max(t, 1e-6), 0.5)
        scores = [0.0] * len(self.pool)
        scores[second] = 1.0
        scores[first] = min(1.0 + math.log((1.0 - t) / t), SLERP_SCORE_MAX)
        return scores

    def _everywhere(self, own: np.ndarray, method: str, value) -> np.ndarray:
        """`own` with every group on `method`, its genes set by value(gene) (None: kept)."""
        row = own.copy()
        for i, gene in enumerate(self.genes):
            if gene.method is None:
                row[i] = _bin_centre(self.methods.index(method), len(self.methods))
            elif gene.method == method and value(gene) is not None:
                row[i] = _unit(gene, value(gene))
        return row

    def describe(self) -> str:
        groups = ", ".join(f"{a}-{b - 1}" for a, b in self.bounds)
        lines = [f"{self.dims} genes: {len(self.bounds)} layer groups (layers {groups}), each a method among "
                 f"{', '.join(self.methods)} and its hyperparameters per parameter set "
                 f"({', '.join('rest' if s == REST else s for s in self.sets)}); a candidate is a mergekit-multi "
                 "recipe (one stage per group, stacked by passthrough)",
                 f"{'#':>4}  {'gene':<52}{'low':>8}{'high':>8}"]
        for i, gene in enumerate(self.genes):
            low, high = (0, len(self.methods)) if gene.method is None else (gene.low, gene.high)
            lines.append(f"{i:>4}  {gene.label(self.names):<52}{low:>8.3g}{high:>8.3g}")
        return "\n".join(lines)


def _checked_options(config: EvolveConfig) -> tuple[int, list[str], list[str]]:
    """space_options (groups, methods, sets), each refused with its field when it makes no sense."""
    evolve = config.evolve
    where = f"{config.path}: field 'evolve"
    options = dict(evolve.space_options)
    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        raise UserError(f"{where}.space_options.{unknown[0]}': the lfs space takes {', '.join(OPTIONS)}")
    if evolve.search:
        raise UserError(f"{where}.search': the lfs space sets its own hyperparameters and ranges "
                        "(docs/evolve.md); remove search")
    if evolve.granularity != "global" or evolve.filters:
        raise UserError(f"{where}.{'filters' if evolve.filters else 'granularity'}': the lfs space groups layers "
                        "with space_options.groups and splits tensors with space_options.sets; remove it")
    groups = options.get("groups", 4)
    if not isinstance(groups, int) or isinstance(groups, bool) or not 1 <= groups <= config.num_layers:
        raise UserError(f"{where}.space_options.groups': a number of layer groups in [1, {config.num_layers}] "
                        f"(the models' depth), not {groups!r}")
    methods = options.get("methods", list(METHODS))
    if not isinstance(methods, list) or not methods:
        raise UserError(f"{where}.space_options.methods': a list of methods among {', '.join(METHODS)}")
    for name in methods:
        if not isinstance(name, str) or name not in METHODS:
            raise UserError(f"{where}.space_options.methods': {name!r} is not one of {', '.join(METHODS)}")
    if len(set(methods)) != len(methods):
        raise UserError(f"{where}.space_options.methods': each method once, not {methods}")
    sets = options.get("sets", ["self_attn", "mlp"])
    if not isinstance(sets, list) or not all(isinstance(s, str) and s for s in sets) or len(set(sets)) != len(sets):
        raise UserError(f"{where}.space_options.sets': a list of distinct tensor-name substrings such as "
                        "self_attn, mlp")
    return groups, list(methods), list(sets)


def _checked_models(config: EvolveConfig, methods: list[str]) -> tuple[list[str], list[float], str | None]:
    """The models merged (paths), each one's plain weight (task arithmetic, TIES), and the base model."""
    merge = config.merge
    if merge.get("slices"):
        raise UserError(f"{config.path}: field 'slices': the lfs space merges the models listed in models:, "
                        "whole; list them there instead")
    pool, weights = [], []
    for i, m in enumerate(merge.get("models") or []):
        weight = (m.get("parameters") or {}).get("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise UserError(f"{config.path}: field 'models[{i}].parameters.weight': the lfs space takes each "
                            "model's task-arithmetic and TIES weight as one plain number (its layer groups are the "
                            f"gradient), not {weight!r}")
        pool.append(str(m["model"]))
        weights.append(float(weight))
    if len(pool) < 2:
        raise UserError(f"{config.path}: field 'models': the lfs space merges at least 2 models")
    base = str(merge["base_model"]) if merge.get("base_model") else None
    needy = [m for m in methods if m in NEEDS_BASE]
    if needy and base is None:
        raise UserError(f"{config.path}: field 'base_model': {needy[0]} (in evolve.space_options.methods) needs a "
                        "base model; add one or leave it out of methods")
    return pool, weights, base


def _softmax_second(first: float, second: float) -> float:
    """SLERP's t toward the second model: its share of the softmax of the two scores."""
    return 1.0 / (1.0 + math.exp(first - second))


def _plain(value, default: float) -> float:
    """A config's number, or `default` where it gives none or a gradient/filter list."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _bin_centre(index: int, bins: int) -> float:
    return (index + 0.5) / bins


def _unit(gene: LfsGene, value: float) -> float:
    if gene.high == gene.low:
        return 0.5
    return float(np.clip((value - gene.low) / (gene.high - gene.low), 0.0, 1.0))
