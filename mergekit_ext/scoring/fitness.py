"""Fitness of the live merged model: lm-eval on merge3 tasks, in memory, with tasks built once.

One `HFLM` wraps the one live model for the whole run; the tasks (datasets, anchors, bundles) are
built once and handed to lm-eval's `evaluate` directly (no task index, no environment report per
candidate). For the merged-model estimators (mpirt, gmpirt) the endpoints' abilities are measured
once, on the same anchors, before the search starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from merge3_lm_eval_tasks import api as lm_eval_api
from merge3_plugin.crashpoints import crash_point
from merge3_plugin.errors import UserError
from merge3_plugin.plugins import endpoint_estimators, unknown_name

from ..config import EvolveConfig, FitnessSpec, is_adaptive, is_graded
from .adaptive_fitness import AdaptiveScorer, graded_response, of_filter


@dataclass
class Score:
    objectives: list[float]  # one per objective, higher is better
    details: dict  # every reported metric per task
    seconds: float
    items: int = 0  # documents evaluated (the budget in items, beside the budget in candidates)


def needs_endpoints(specs: list[FitnessSpec]) -> bool:
    """Whether any fitness entry uses the merge's endpoints' abilities: mp-IRT and gmp-IRT, and an
    adaptive test that starts from them (adaptive.prior: endpoints, the default)."""
    needed = endpoint_estimators()
    return any(spec.estimator in needed or starts_at_endpoints(spec) for spec in specs)


def starts_at_endpoints(spec: FitnessSpec) -> bool:
    return is_adaptive(spec) and (spec.adaptive is None or spec.adaptive.prior == "endpoints")


def endpoints_for(config: EvolveConfig, specs: list[FitnessSpec]) -> dict:
    """The endpoints' model folders when `specs` need them (their abilities are measured), else none."""
    return endpoint_paths(config) if needs_endpoints(specs) else {}


def task_config(spec: FitnessSpec, manager) -> dict:
    """The YAML config of a task by name, as lm-eval's index knows it (for merge3 tasks: our metadata)."""
    raw = lm_eval_api.task_config(manager, spec.task)
    if raw is None:
        raise UserError(f"fitness task {spec.task!r}: lm-eval has no such task (see `lm_eval ls tasks`; build one "
                        "with `merge3 tasks build`)")
    return raw


def task_manager(config: EvolveConfig):
    """lm-eval's task index for a run: the user's extra folders, lm-eval's own tasks unless
    `include_defaults: false`, and (through the start-up hook) merge3's."""
    return lm_eval_api.task_manager(config.evolve.include_path, config.evolve.include_defaults)


def check_fitness_tasks(config: EvolveConfig, manager) -> None:
    """Every fitness task names a task lm-eval knows: found before any model is loaded."""
    racing_rungs: dict = {}
    for where, spec in config.evolve.fitness_entries():
        if spec.task not in manager.task_index:
            known = manager.all_tasks
            if spec.task.startswith("merge3_"):  # suggest among merge3 tasks, not lm-eval's thousands
                known = [name for name in known if name.startswith("merge3_")]
            hint = "" if config.evolve.include_defaults else " (include_defaults: false hides lm-eval's own tasks)"
            raise UserError(f"{config.path}: field '{where}.task': {unknown_name('task', spec.task, known)}"
                            f"{hint}; build a merge3 task with `merge3 tasks build`")
        if config.evolve.racing and spec in config.evolve.fitness:
            rungs = rung_sizes(config, spec, manager, where)
            if racing_rungs.setdefault("sizes", rungs) != rungs:
                raise UserError(f"{config.path}: field '{where}.task': racing needs one ladder of rungs for every "
                                f"fitness task; {spec.task} has {rungs}, the first {racing_rungs['sizes']}")
        if is_adaptive(spec):
            check_adaptive_task(config, spec, manager, where)
        elif needs_endpoints([spec]) and not lm_eval_api.is_merge3_task(task_config(spec, manager)):
            raise UserError(f"{config.path}: field '{where}.estimator': {spec.estimator} estimates from the merge's "
                            f"endpoints, measured on a merge3 task's anchors, but {spec.task!r} is a plain lm-eval "
                            "task (no bundle); use a merge3_* task, or estimator: null (the plain metric)")


def hidden_items(config: EvolveConfig) -> dict | None:
    """The never-worse duel's held-out sample per task ({items, seed}), which adaptive tests must not ask."""
    keep = config.evolve.keep
    return None if keep is None else {"items": keep.holdout_items, "seed": keep.seed}


def check_adaptive_task(config: EvolveConfig, spec: FitnessSpec, manager, where: str) -> None:
    """An adaptive entry's task has IRT parameters for every item of its split, and at least `items` of them
    outside the never-worse duel's held-out sample."""
    raw = task_config(spec, manager)
    if not lm_eval_api.is_merge3_task(raw):
        raise UserError(f"{config.path}: field '{where}.task': estimator {spec.estimator} chooses items by their IRT "
                        f"parameters, but {spec.task!r} is a plain lm-eval task (no bundle); use a merge3_* task")
    try:
        bundle = lm_eval_api.split_bundle(spec.task, raw, graded=is_graded(spec))
    except lm_eval_api.Merge3ConfigError as err:
        raise UserError(f"{config.path}: field '{where}.estimator': {err}") from None
    if spec.metric != bundle.metric:
        raise UserError(f"{config.path}: field '{where}.metric': the bundle of {spec.task} models {bundle.metric!r}, "
                        f"which an adaptive test estimates; metric is {spec.metric!r}")
    n_items = bundle.n_items
    if spec.items > n_items:
        raise UserError(f"{config.path}: field '{where}.items': {spec.items} items per candidate, but the split of "
                        f"{spec.task} has only {n_items}")
    hidden = hidden_items(config)
    if hidden is not None:  # the duel's held-out sample is never asked (at most the documents outside the anchors)
        held = min(hidden["items"], n_items - bundle.anchors.size)
        if spec.items > n_items - held:
            raise UserError(f"{config.path}: field '{where}.items': {spec.items} items per candidate, but only "
                            f"{n_items - held} of {spec.task}'s {n_items} are left outside the never-worse duel's "
                            f"{held} held-out items (keep_config.holdout_items)")


def rung_sizes(config: EvolveConfig, spec: FitnessSpec, manager, where: str = "evolve.fitness") -> list[int]:
    """The anchor rungs of a fitness task's bundle (`merge3 extract --rungs`), smallest first, then all of
    its anchors: what racing evaluates in turn."""
    raw = task_config(spec, manager)
    if not lm_eval_api.is_merge3_task(raw):
        raise UserError(f"{config.path}: field '{where}.task': racing runs through a merge3 task's anchor rungs; "
                        f"{spec.task} is a plain lm-eval task")
    try:
        rungs = lm_eval_api.anchor_rungs(spec.task, raw)
    except lm_eval_api.Merge3ConfigError as err:
        raise UserError(f"{config.path}: field '{where}.task': {err}") from None
    if not rungs:
        raise UserError(f"{config.path}: field 'evolve.racing': the bundle of {spec.task} has no rungs; extract its "
                        "anchors with `merge3 extract --rungs 5,10 ...` (or drop racing)")
    return rungs


class Fitness:
    def __init__(self, config: EvolveConfig, model: torch.nn.Module, tokenizer, endpoints: dict[str, Path],
                 specs: list[FitnessSpec] | None = None, share: "Fitness | None" = None, manager=None):
        """`specs`: the fitness entries to score (default: evolve.fitness); `share`: another Fitness over
        the same model whose lm-eval model and task index this one reuses (the select stage's);
        `manager`: a task index already built for this config (`task_manager`)."""
        self.config = config
        self.model = model
        eval_spec = config.evolve.eval
        extra = eval_spec.model_extra or {}
        self.lm = share.lm if share else lm_eval_api.wrap_live_model(model, tokenizer, eval_spec.batch_size,
                                                                      eval_spec.device, **extra)
        self.manager = share.manager if share else manager or task_manager(config)
        self.specs = specs or config.evolve.fitness
        self.endpoint_items = 0  # documents evaluated to measure the endpoints' abilities (mp/gmp-IRT, adaptive)
        self._endpoint_theta: dict[tuple[str, bool], list] = {}  # per (task, graded scale), measured once
        self.tasks = {}  # fixed anchors: lm-eval's task dict per task
        self.adaptive = {}  # adaptive entries: their scorer per (task, estimator)
        for spec in self.specs:
            raw = task_config(spec, self.manager)
            if is_adaptive(spec):
                if (spec.task, spec.estimator) not in self.adaptive:
                    theta = (self._endpoint_thetas(raw, endpoints, is_graded(spec)) if starts_at_endpoints(spec)
                             else None)
                    self.adaptive[spec.task, spec.estimator] = AdaptiveScorer(self.lm, self.manager, raw, spec, theta,
                                                                              hidden_items(config))
                continue
            if spec.task in self.tasks:
                continue
            if needs_endpoints([spec]):
                meta = {**(raw.get("metadata") or {}), "merge3_endpoint_theta": self._endpoint_thetas(raw, endpoints)}
                raw = {**raw, "metadata": meta}
            self.tasks[spec.task] = lm_eval_api.build_tasks(self.manager, raw)

    def _endpoint_thetas(self, raw: dict, endpoints: dict[str, Path], graded: bool = False) -> list:
        """Measure each endpoint's ability once per task, on its anchors, with the live model (each
        endpoint's weights streamed into it in turn; the search's first merge overwrites them). `graded`:
        on the bundle's graded scale, from the probability of the right choice (adaptive tests)."""
        from merge3_plugin.irt import fit_ability

        if not lm_eval_api.is_merge3_task(raw):
            raise UserError(f"fitness task {raw.get('task')!r}: mpirt/gmpirt need a merge3 task (with a bundle)")
        key = (raw["task"], graded)
        if key in self._endpoint_theta:
            return self._endpoint_theta[key]
        plain, task_dict = lm_eval_api.measuring_task(self.manager, raw)  # built once: measures every endpoint
        bundle = plain.bundle
        items, (mean, cov) = (bundle.graded.items, bundle.graded_prior()) if graded else (bundle.items,
                                                                                          bundle.ability_prior())
        thetas = []
        for folder in endpoints.values():
            load_weights(self.model, folder)
            scores = self._anchor_scores(task_dict, plain, graded)
            self.endpoint_items += len(scores)
            full = np.full((1, bundle.n_items), np.nan)
            full[0, bundle.columns(list(scores))] = list(scores.values())
            thetas.append(fit_ability(items, full, prior_mean=mean, prior_cov=cov)[0].tolist())
        self._endpoint_theta[key] = thetas
        return thetas

    def _anchor_scores(self, task_dict, plain, graded: bool = False) -> dict[int, float]:
        """Each anchor's score (`graded`: its graded response) in one lm-eval run of the live model."""
        out = lm_eval_api.evaluate_tasks(self.lm, task_dict, log_samples=True)
        (samples,) = out["samples"].values()
        metric = plain.bundle.metric
        samples = of_filter(samples, plain.bundle.filter)
        keys = [plain.anchor_key(s["doc"]) for s in samples]
        return {key: graded_response(s) if graded else float(s[metric])
                for key, s in zip(keys, samples, strict=True) if key is not None}

    def __call__(self, limit: int | None = None) -> Score:
        """Score the live model; `limit`: only the first `limit` anchors of each task (a racing rung,
        estimated with that rung's weights and calibration)."""
        start = time.perf_counter()
        details = {}
        items = 0
        crash_point("eval")
        for name, task_dict in self.tasks.items():
            out = lm_eval_api.evaluate_tasks(self.lm, task_dict, limit=limit)
            items += sum(int(count.get("effective", 0)) for count in (out.get("n-samples") or {}).values())
            details[name] = {k: v for k, v in out["results"][name].items()
                             if isinstance(v, float) and "stderr" not in k}
        for (name, estimator), scorer in self.adaptive.items():
            value, asked = scorer()
            items += len(asked["asked"])
            task = details.setdefault(name, {})
            task[f"{scorer.bundle.metric}_{estimator}"] = value
            task.setdefault("adaptive", {})[estimator] = asked  # the documents asked, in order, and their scores
        values = []
        for spec in self.specs:
            key = f"{spec.metric}_{spec.estimator}" if spec.estimator else spec.metric
            found = [v for k, v in details[spec.task].items() if k.split(",")[0] == key]
            if not found:
                raise UserError(f"fitness: task {spec.task} reports no {key!r}; it reports "
                                f"{sorted({k.split(',')[0] for k in details[spec.task]})}")
            values.append(found[0])
        if self.config.evolve.objectives == "single":
            weights = np.array([s.weight for s in self.specs])
            values = [float(np.dot(weights, values) / weights.sum())]
        return Score(values, details, time.perf_counter() - start, items)


def endpoint_paths(config: EvolveConfig) -> dict[str, Path]:
    """The merge's endpoints by name (its models, and the base of a merge that has one), each checked
    to hold .safetensors weights. Nothing is loaded here: measuring an endpoint streams its weights
    into the live model one tensor at a time (`load_weights`), so at most one tensor is in memory."""
    paths = [str(m["model"]) for m in config.merge.get("models") or []]
    if config.merge.get("base_model") and str(config.merge["base_model"]) not in paths:
        paths.append(str(config.merge["base_model"]))
    found = {}
    for path in paths:
        folder = Path(path).expanduser()
        if not any(folder.glob("*.safetensors")):
            raise UserError(f"{path}: no .safetensors weights to measure this endpoint's ability")
        found[folder.name] = folder
    return found


def load_weights(model: torch.nn.Module, folder: Path) -> None:
    """Copy a model folder's .safetensors weights into `model`, one tensor at a time (never a whole
    shard in memory: an endpoint of a 7B merge is streamed from disk into the live model, wherever it is)."""
    from safetensors import safe_open

    targets = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for file in sorted(folder.glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as shard:
                for name in shard.keys():
                    target = targets.get(name)
                    if target is None:
                        continue  # e.g. an output matrix the (tied) live model does not keep apart
                    value = shard.get_tensor(name)
                    if value.shape != target.shape:
                        raise UserError(f"{file}: tensor {name} is {tuple(value.shape)}, the live model's "
                                        f"{tuple(target.shape)}: the endpoint is another architecture")
                    target.copy_(value)
