"""The `mergekit-evolve-lite` input: a plain mergekit config plus an `evolve:` section, validated up front.

mergekit silently ignores a misspelled parameter; we do not. Every error names the file and the
field. The mergekit part is checked by mergekit itself (`MergeConfiguration`), then against the
merge method's declared parameters (`MergeMethodSpec`), so a new mergekit method works unchanged.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from merge3_plugin.errors import UserError
from merge3_plugin.plugins import adaptive_estimators, registry, unknown_name

# Known value ranges of mergekit's float parameters; others may take any range the user gives.
PARAMETER_BOUNDS = {
    "density": (0.0, 1.0),
    "t": (0.0, 1.0),
    "gamma": (0.0, 1.0),
    "epsilon": (0.0, 0.5),
    "lambda": (0.0, 10.0),
    "weight": (-10.0, 10.0),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdaptiveSpec(_Strict):
    """How an adaptive estimator asks a candidate its `items` (merge3_plugin/adaptive.py)."""

    first: int = Field(5, ge=1, description="items of the first round, chosen at the prior ability")
    per_round: int = Field(5, ge=1, description="items of every later round, chosen at the ability so far")
    target_se: float | None = Field(None, gt=0, lt=0.5, description=(
        "stop a candidate's test early once its estimate's standard error is below this"))
    graded: bool = Field(False, description=(
        "measure the ability from graded responses (the probability of the right choice) instead of right/wrong; "
        "a multiple-choice task whose bundle was fit with `merge3 fit --graded`"))
    prior: Literal["endpoints", "population"] = Field("endpoints", description=(
        "where a candidate's test starts: its endpoints' mean ability (measured once on the task's anchors "
        "before the search) or the population's (the bundle's prior; nothing measured)"))


class FitnessSpec(_Strict):
    task: str = Field(description="an lm-eval task, usually a merge3_* task")
    metric: str = Field("acc", description="the task's metric, e.g. acc or exact_match")
    estimator: str | None = Field("gpirt", description=(
        "merge3 estimator (`merge3 plugins` lists them: anchor, pirt, gpirt, mpirt, gmpirt on the task's fixed "
        "anchors; adaptive, adaptive-accuracy asking each candidate `items` chosen as it goes), or null to use the "
        "metric as lm-eval reports it"))
    weight: float = Field(1.0, description="weight when several entries are folded into one objective")
    items: int | None = Field(None, ge=1, description=(
        "adaptive estimators only (estimator: adaptive): the items each candidate is asked, chosen as it goes "
        "from the whole split of the task's bundle"))
    adaptive: AdaptiveSpec | None = Field(None, description="adaptive estimators only: how the items are asked")


class AlgorithmSpec(BaseModel):
    model_config = ConfigDict(extra="allow")  # everything else goes to the pymoo algorithm as is
    name: str = Field("ga", description=(
        'an algorithm of `merge3 plugins` (ga, de, cmaes, pso, nelder-mead, pattern-search, nsga2, nsga3, '
        "moead, sms-emoa, parego, tpe (Optuna; with racing its Hyperband pruner), or a plugin's)"))


class BudgetSpec(_Strict):
    evaluations: int | None = Field(None, ge=1, description='stop after this many candidates')
    generations: int | None = Field(None, ge=1, description='stop after this many generations')
    time: float | None = Field(None, gt=0, description="seconds")
    items: int | None = Field(None, ge=1, description=(
        "stop once the candidates have cost this many items (documents evaluated, every rung of a race "
        "counted; the generation under way is finished)"))

    @model_validator(mode="after")
    def _some_limit(self):
        if self.evaluations is None and self.generations is None and self.time is None and self.items is None:
            raise ValueError("give at least one of evaluations, generations, time, items")
        return self


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="allow")  # passed through to lm-eval's model
    device: str = Field("cpu", description=(
        "cpu, cuda, cuda:1, mps: the live model sits there, in the merge's dtype"))
    batch_size: int = Field(32, ge=1, description="lm-eval's batch size")
    backend: str = Field("serial", description=(
        "where candidates are scored: serial (one after another in this process) or ray (a generation's "
        "candidates in parallel on Ray workers; pip install 'merge3[ray]')"))
    workers: int | None = Field(None, ge=1, description=(
        "ray: how many workers (each loads the inputs once); default one per GPU with device cuda, else one "
        "per 4 CPU cores. serial: 1"))
    address: str | None = Field(None, description=(
        "ray: the cluster to join (ray.init's address: 'auto', 'ray://head:10001'); default a local Ray "
        "instance, or the cluster in RAY_ADDRESS"))


class SelectSpec(_Strict):
    """Multi-fidelity: the search ranks candidates on a few anchors; the best `top` are scored again on
    more items before one is chosen, which undoes most of the winner's curse of a noisy fitness."""

    top: int = Field(8, ge=1, description="distinct candidates scored again: the best by the search's fitness "
                                          "(several objectives: the Pareto points)")
    fitness: list[FitnessSpec] = Field(min_length=1, description="the higher-fidelity fitness (more anchors, a "
                                       "validation split, the full task); same shape as evolve.fitness")


class KeepConfigSpec(_Strict):
    """Never hand back less than your config: it is scored first, and at the end the best candidates
    (the `challengers`) and your config are scored again on `holdout_items` items per fitness task that
    the search never saw (the merge3 task's documents outside its anchors). An evolved merge replaces
    your config only when it wins that duel by more than two standard errors of the paired difference."""

    holdout_items: int = Field(200, ge=10, description="items per fitness task in the duel (fewer where the "
                                                       "task has fewer documents outside its anchors)")
    challengers: int = Field(4, ge=1, description="distinct candidates that meet your config in the duel: the "
                                                  "best by the search's fitness (or the select stage's)")
    seed: int = Field(0, description="which documents outside the anchors are drawn")


class RacingSpec(_Strict):
    """Multi-fidelity inside the loop: each generation's new candidates race through the rungs of their
    fitness tasks' anchors (`merge3 extract --rungs`): all on the smallest rung, the best 1/eta on the
    next, ..., the survivors on every anchor (successive halving). Each keeps the IRT estimate of the
    highest rung it reached. With `algorithm: tpe` Optuna's Hyperband pruner decides instead, one
    candidate at a time (the paper's model-based loop)."""

    eta: int = Field(3, ge=2, description="the share promoted from one rung to the next is 1/eta")


class EvolveSpec(_Strict):
    space: str = Field("params", description="search space plugin: params (the numbers of the mergekit config), "
                                             "depth (stacks of whole layers: slots, or dis with space_options.mode) "
                                             "or lfs (a merge method per layer group)")
    space_options: dict[str, Any] = Field(default_factory=dict, description="options of the search space")
    search: dict[str, tuple[float, float]] = Field(default_factory=dict, description=(
        "parameter -> [low, high]; only the merge method's float parameters; per-model ones (weight, density)"
        ' get one gene per model, shared ones (t, lambda) one'))
    granularity: Literal["global", "per_layer"] | int = Field("global", description=(
        'global (one value), N (N values spread over the depth: a mergekit gradient) or per_layer (one value '
        'per layer)'))
    filters: list[str] = Field(default_factory=list, description=(
        'substrings of tensor names (self_attn, mlp): separate genes for each, plus one for the rest'))
    fitness: list[FitnessSpec] = Field(min_length=1, description=(
        'what a candidate is scored on; several entries are folded by weight, or with objectives: multi each '
        'is an objective'))
    objectives: Literal["single", "multi"] = Field(
        "single", description="single: fitness entries folded by weight; multi: one objective each")
    algorithm: AlgorithmSpec = Field(default_factory=AlgorithmSpec, description=(
        'the optimisation algorithm and its options'))
    budget: BudgetSpec = Field(description='when to stop; the first limit reached stops the run')
    seed: int = Field(0, description=(
        "pymoo's seed, and the seed of random merge methods (dare_*, della: mergekit-yaml --random-seed)"))
    warm_start: bool = Field(False, description=(
        "the first generation holds your config's own values and the endpoints (each model alone: weight 1 "
        "for it and 0 for the others; t at both ends), the rest drawn at random (cmaes, nelder-mead and "
        "pattern-search start from the best of those first points)"))
    init: Literal["config", "warm", "uniform"] | None = Field(None, description=(
        "the first generation: config (your config's values and the endpoints, the rest drawn within "
        "trust_radius of your config), warm (the same rows, the rest uniform over the ranges: warm_start), "
        "uniform (pymoo's own draw over the ranges). Default: config where the space and algorithm allow it, "
        "else uniform"))
    trust_radius: float = Field(0.1, gt=0.0, le=1.0, description=(
        "init: config: how far from your config the first generation is drawn, as a share of each range"))
    keep_config: KeepConfigSpec | None = Field(default_factory=KeepConfigSpec, description=(
        "score your config first and hand it back unless an evolved merge beats it on held-out items by more "
        "than 2 standard errors (see KeepConfigSpec); false: best.yaml is the search's best, as scored"))
    eval: EvalSpec = Field(default_factory=EvalSpec, description=(
        "how candidates are evaluated (lm-eval's HF model)"))
    include_path: list[str] = Field(default_factory=list, description="extra folders of task YAMLs")
    include_defaults: bool = Field(True, description="also index lm-eval's built-in tasks (~20 s once)")
    select: SelectSpec | None = Field(None, description="re-score the best candidates with more items")
    racing: RacingSpec | None = Field(None, description=(
        "race each generation's candidates through the fitness tasks' anchor rungs (successive halving; "
        "bundles from merge3 extract --rungs); single objective, serial backend"))

    @field_validator("search")
    @classmethod
    def _ranges(cls, search):
        for name, (low, high) in search.items():
            if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
                raise ValueError(f"{name}: range [{low}, {high}] must be two finite numbers, low < high")
        return search

    def fitness_entries(self):
        """(field path, spec) of every fitness entry, the select stage's too: what name checks walk."""
        groups = [("evolve.fitness", self.fitness)]
        if self.select is not None:
            groups.append(("evolve.select.fitness", self.select.fitness))
        for where, specs in groups:
            for i, spec in enumerate(specs):
                yield f"{where}.{i}", spec

    @field_validator("keep_config", mode="before")
    @classmethod
    def _keep_switch(cls, value):
        """true: the defaults; false (or null): off."""
        if value is True:
            return {}
        return None if value is False else value

    @property
    def keep(self) -> KeepConfigSpec | None:
        """The never-worse duel's settings, or None when keep_config is off."""
        return self.keep_config

    @model_validator(mode="after")
    def _one_init(self):
        if self.warm_start and self.init not in (None, "warm"):
            raise ValueError(f"warm_start: true is init: warm; it contradicts init: {self.init} (keep one)")
        return self

    @model_validator(mode="after")
    def _racing_fits(self):
        if self.racing and self.objectives == "multi":
            raise ValueError("racing: promotes by one fitness value; use objectives: single (or drop racing)")
        if self.racing and self.eval.backend != "serial":
            raise ValueError(f"racing: runs on the serial backend for now, not {self.eval.backend}")
        return self

    @model_validator(mode="after")
    def _select_matches_objectives(self):
        if self.select and self.objectives == "multi" and len(self.select.fitness) != len(self.fitness):
            raise ValueError(f"select.fitness: with objectives: multi, give one entry per objective "
                             f"({len(self.fitness)}), in the same order as fitness")
        return self

    @field_validator("granularity")
    @classmethod
    def _groups(cls, value):
        if isinstance(value, int) and value < 1:
            raise ValueError("a number of layer groups must be >= 1")
        return value


class EvolveConfig:
    """A validated input file: `merge` (the plain mergekit config) and `evolve` (the search)."""

    def __init__(self, path: Path, merge: dict, evolve: EvolveSpec, num_layers: int):
        self.path = path
        self.merge = merge
        self.evolve = evolve
        self.num_layers = num_layers

    @property
    def method(self) -> str:
        return self.merge["merge_method"]


def load_config(path: Path | str) -> EvolveConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mergekit config (a mapping) with an evolve: section")
    if "evolve" not in data:
        raise UserError(f"{path}: field 'evolve' is missing (what to search: see `mergekit-evolve-lite --help`)")
    merge = {k: v for k, v in data.items() if k != "evolve"}
    try:
        evolve = EvolveSpec.model_validate(data["evolve"])
    except ValidationError as err:
        raise UserError(_format(path, "evolve", err)) from None
    _check_mergekit(path, merge)
    _check_compatible_models(path, merge, evolve)
    _check_search(path, merge, evolve)
    _check_algorithm(path, evolve)
    _check_space(path, evolve)
    _check_estimators(path, evolve)
    _check_device(path, evolve)
    _check_backend(path, evolve)
    _check_warm_start(path, evolve)
    return EvolveConfig(path, merge, evolve, _num_layers(path, merge))


def _format(path: Path, prefix: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        field = ".".join([prefix, *(str(x) for x in e["loc"])])
        message = e["msg"].replace("Value error, ", "")
        if e["type"] == "extra_forbidden":
            message = "is not a known field"
        lines.append(f"{path}: field '{field}': {message}")
    return "\n".join(lines)


def _check_mergekit(path: Path, merge: dict) -> None:
    from mergekit.config import MergeConfiguration
    from mergekit.merge_methods import registry

    try:
        MergeConfiguration.model_validate(copy.deepcopy(merge))
    except ValidationError as err:
        raise UserError(_format(path, "", err).replace("field '.", "field '")) from None
    method = merge.get("merge_method")
    try:
        spec = registry.get(method).spec
    except RuntimeError:
        known = ", ".join(sorted(m.spec.name for m in registry.registered_methods()))
        raise UserError(f"{path}: field 'merge_method': unknown method {method!r}; mergekit has {known}") from None
    names = {p.name for p in spec.parameters}
    for where, params in _parameter_blocks(merge):
        for key in params or {}:
            if key not in names:
                raise UserError(f"{path}: field '{where}.{key}': {method} takes no parameter {key!r} "
                                f"(mergekit would ignore it silently); it takes {', '.join(sorted(names))}")
    for where, model in _model_paths(merge):
        if not (Path(model).expanduser() / "config.json").is_file():
            raise UserError(f"{path}: field '{where}': {model} is not a local model folder (no config.json)")


# config.json fields that must agree for tensors to merge one to one (a depth search stacks whole
# layers, so there the depth may differ)
SHAPE_FIELDS = ("model_type", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
                "vocab_size")


def _check_compatible_models(path: Path, merge: dict, evolve: "EvolveSpec") -> None:
    """The models are one architecture of one shape (found from their config.json, before any loads):
    otherwise mergekit fails on the first candidate, deep in a traceback, or merges nonsense."""
    stacks = evolve.space == "depth" or (evolve.space == "params" and merge.get("merge_method") == "passthrough")
    fields = SHAPE_FIELDS + (() if stacks else ("num_hidden_layers",))
    first = None
    for where, model in _model_paths(merge):
        config = json.loads((Path(model).expanduser() / "config.json").read_text())
        config.setdefault("num_key_value_heads", config.get("num_attention_heads"))  # absent: one per head
        shape = {"architectures": config.get("architectures"), **{f: config.get(f) for f in fields}}
        if first is None:
            first = (where, shape)
            continue
        for field, value in shape.items():
            if value != first[1][field]:
                raise UserError(f"{path}: field '{where}': {model} has {field} {value!r}, but {first[0]} has "
                                f"{first[1][field]!r}: models of different architectures, shapes or vocabularies "
                                "cannot be merged tensor by tensor")


def _parameter_blocks(merge: dict):
    yield "parameters", merge.get("parameters")
    for i, entry in enumerate(merge.get("models") or []):
        yield f"models[{i}].parameters", entry.get("parameters")


def _model_paths(merge: dict):
    if merge.get("base_model"):
        yield "base_model", str(merge["base_model"])
    for i, entry in enumerate(merge.get("models") or []):
        yield f"models[{i}].model", str(entry["model"])


def searchable(method: str) -> dict[str, str]:
    """The method's float parameters and their scope: 'shared' (one value), else one per model."""
    from mergekit.merge_methods import registry

    return {p.name: p.scope.value for p in registry.get(method).spec.parameters if p.value_type is float}


def _check_search(path: Path, merge: dict, evolve: EvolveSpec) -> None:
    method = merge["merge_method"]
    allowed = searchable(method)
    for name, (low, high) in evolve.search.items():
        if name not in allowed:
            raise UserError(f"{path}: field 'evolve.search.{name}': {method} has no number parameter {name!r}; "
                            f"searchable: {', '.join(sorted(allowed)) or 'none'}")
        bounds = PARAMETER_BOUNDS.get(name)
        if bounds and (low < bounds[0] or high > bounds[1]):
            raise UserError(f"{path}: field 'evolve.search.{name}': range [{low}, {high}] leaves what {name} "
                            f"allows, [{bounds[0]}, {bounds[1]}]")


def _check_device(path: Path, evolve: EvolveSpec) -> None:
    import torch

    device = evolve.eval.device
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise UserError(f"{path}: field 'evolve.eval.device': {device!r} is not a torch device (cpu, cuda, cuda:1, "
                        "mps)") from None
    # on Ray the GPUs are the workers' (a cluster's head often has none); the backend checks they exist
    if kind == "cuda" and not torch.cuda.is_available() and evolve.eval.backend != "ray":
        raise UserError(f"{path}: field 'evolve.eval.device': {device} asked for, but this torch sees no CUDA GPU "
                        f"(torch {torch.__version__}); use device: cpu or install a CUDA build of torch")


def _check_backend(path: Path, evolve: EvolveSpec) -> None:
    spec = evolve.eval
    available = registry("eval_backend")
    if spec.backend not in available:
        raise UserError(f"{path}: field 'evolve.eval.backend': {unknown_name('eval backend', spec.backend, available)}")
    if spec.backend == "serial" and (spec.workers or 1) > 1:
        raise UserError(f"{path}: field 'evolve.eval.workers': {spec.workers} workers need a parallel backend "
                        "(backend: ray); the serial backend scores one candidate at a time")
    if spec.backend == "serial" and spec.address:
        raise UserError(f"{path}: field 'evolve.eval.address': a Ray cluster address needs backend: ray")
    if spec.backend == "ray":
        if importlib.util.find_spec("ray") is None:
            raise UserError(f"{path}: field 'evolve.eval.backend': ray is not installed here; "
                            "pip install 'merge3[ray]' (or backend: serial)")


def _init_blocker(evolve: EvolveSpec) -> str | None:
    """Why the first generation cannot start from your config (None when it can)."""
    space = registry("search_space").get(evolve.space)
    if space is not None and not hasattr(space, "warm_start"):
        return f"the {evolve.space} space has no config values or endpoints to begin from"
    factory = registry("algorithm").get(evolve.algorithm.name)
    if factory is not None and hasattr(factory, "accepts") and not {"sampling", "x0"} & factory.accepts():
        return f"algorithm {evolve.algorithm.name} takes neither a first population (sampling) nor a start point (x0)"
    return None


def effective_init(evolve: EvolveSpec) -> str:
    """What evolve.init means for this config: as given, `warm` for warm_start: true, and by default
    `config` where the space and algorithm can start from your config, else `uniform`."""
    if evolve.init is not None:
        return evolve.init
    if evolve.warm_start:
        return "warm"
    return "uniform" if _init_blocker(evolve) else "config"


def _check_warm_start(path: Path, evolve: EvolveSpec) -> None:
    field = "evolve.warm_start" if evolve.warm_start else "evolve.init"
    if effective_init(evolve) == "uniform" or evolve.init is None and not evolve.warm_start:
        return
    why = _init_blocker(evolve)
    if why:
        raise UserError(f"{path}: field '{field}': {why}; use init: uniform")


def _check_space(path: Path, evolve: EvolveSpec) -> None:
    available = registry("search_space")
    if evolve.space not in available:
        raise UserError(f"{path}: field 'evolve.space': {unknown_name('search space', evolve.space, available)}")


def _check_estimators(path: Path, evolve: EvolveSpec) -> None:
    """Every fitness entry's estimator is a registered one, and an adaptive one has its `items` (found
    here, before any model loads; the items are checked against the task's split with the task index)."""
    available = registry("estimator")
    adaptive_seen: dict[tuple[str, str], FitnessSpec] = {}
    for where, spec in evolve.fitness_entries():
        adaptive = is_adaptive(spec)
        if adaptive and adaptive_seen.setdefault((spec.task, spec.estimator), spec) != spec:
            raise UserError(f"{path}: field '{where}': another entry runs {spec.estimator} on {spec.task} with other "
                            "settings; one adaptive test per task and estimator")
        if spec.estimator is not None and spec.estimator not in available:
            raise UserError(f"{path}: field '{where}.estimator': "
                            f"{unknown_name('estimator', spec.estimator, available)} (or null: the plain metric)")
        if adaptive and spec.items is None:
            raise UserError(f"{path}: field '{where}.items': estimator {spec.estimator} asks each candidate a "
                            "number of items as it goes; say how many (e.g. items: 10)")
        for field in ("items", "adaptive"):
            if not adaptive and getattr(spec, field) is not None:
                raise UserError(f"{path}: field '{where}.{field}': only an adaptive estimator (adaptive, "
                                f"adaptive-accuracy) takes it; estimator {spec.estimator} reads the task's fixed "
                                "anchors")
        if adaptive and evolve.racing and spec in evolve.fitness:
            raise UserError(f"{path}: field '{where}.estimator': racing promotes over fixed anchor rungs; an "
                            "adaptive estimator chooses each candidate's items (drop racing, or use gpirt)")
        if adaptive and spec.adaptive is not None and spec.adaptive.first > spec.items:
            raise UserError(f"{path}: field '{where}.adaptive.first': {spec.adaptive.first} first items, but "
                            f"items is {spec.items}")


def is_adaptive(spec: FitnessSpec) -> bool:
    """Whether a fitness entry's estimator chooses items as it goes (contracts.AdaptiveEstimator)."""
    return spec.estimator is not None and spec.estimator in adaptive_estimators()


def is_graded(spec: FitnessSpec) -> bool:
    """Whether an adaptive entry measures the ability from graded responses (adaptive: {graded: true})."""
    return spec.adaptive is not None and spec.adaptive.graded


def _check_algorithm(path: Path, evolve: EvolveSpec) -> None:
    from merge3_plugin.contracts import AlgorithmFactory

    available = registry("algorithm")
    name = evolve.algorithm.name
    if name not in available:
        raise UserError(f"{path}: field 'evolve.algorithm.name': {unknown_name('algorithm', name, available)}")
    factory = available[name]
    if not isinstance(factory, AlgorithmFactory):  # a plain function from a third party: nothing declared
        return
    known = factory.accepts() | {"n_obj"}  # pymoo ignores unknown options silently; we do not
    for key in evolve.algorithm.model_extra or {}:
        if key not in known:
            raise UserError(f"{path}: field 'evolve.algorithm.{key}': {name} takes no option {key!r} (pymoo would "
                            f"ignore it silently); it takes {', '.join(sorted(known - {'n_obj'}))}")
    if not factory.multi_objective and evolve.objectives == "multi" and len(evolve.fitness) > 1:
        raise UserError(f"{path}: field 'evolve.algorithm.name': {name} optimises one objective, but objectives: "
                        f"multi asks for {len(evolve.fitness)}; use nsga2, nsga3, moead, sms-emoa or parego, or "
                        "objectives: single (a weighted sum)")


def model_depth(model: str) -> int | None:
    """The number of layers a local model's config.json declares (None if it names none)."""
    config = json.loads((Path(model).expanduser() / "config.json").read_text())
    layers = config.get("num_hidden_layers") or config.get("n_layer") or config.get("num_layers")
    return layers if isinstance(layers, int) else None


def _num_layers(path: Path, merge: dict) -> int:
    where, model = next(_model_paths(merge))
    layers = model_depth(model)
    if layers is None:
        raise UserError(f"{path}: field '{where}': cannot tell the number of layers of {model}")
    return layers
