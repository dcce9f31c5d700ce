"""Run an evolve config to the end: pymoo drives, MergeSearch evaluates, outputs are written as we go.

Outputs in --out: history.jsonl (every candidate), checkpoint.json (after every generation),
best.yaml (a plain mergekit config, or a mergekit-multi recipe: recipe.py), pareto/ (one config per Pareto point, several objectives),
summary.json, fitness.png (and pareto.png), and with --save-model the best merged model (the
tokenizer is the base's; mergekit-multi copies a stage's, with the same weights).
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from merge3_plugin.files import write_atomic
from merge3_plugin.plugins import lookup

from .config import EvolveConfig, KeepConfigSpec
from .merging.compat import copy_tokenizer
from .merging.inmemory import RANDOM_METHODS
from .merging.recipe import is_recipe, recipe_command
from .scoring.failures import GenerationFailed
from .search import MergeSearch, config_hash
from .select.pareto import BEST_RULE, archive_front, best_first, hypervolume, plot_front, save_figure


def _termination(budget):
    from pymoo.termination import get_termination
    from pymoo.termination.collection import TerminationCollection

    parts = []
    if budget.evaluations:
        parts.append(get_termination("n_eval", budget.evaluations))
    if budget.generations:
        parts.append(get_termination("n_gen", budget.generations))
    if budget.time:
        parts.append(get_termination("time", float(budget.time)))
    if budget.items:
        from .algorithms.problem import ItemBudget

        parts.append(ItemBudget(budget.items))
    return parts[0] if len(parts) == 1 else TerminationCollection(*parts)


def run(config: EvolveConfig, out: Path, resume: bool = False, save_model: bool = False, progress: bool = True,
        manager=None, console=None) -> dict:
    """The whole run; `manager`: lm-eval's task index if the caller built it (and checked names on it);
    `console`: where the progress bars go (default sys.stderr)."""
    from pymoo.optimize import minimize

    from .algorithms.problem import CheckpointCallback, MergeProblem

    evolve = config.evolve
    n_obj = len(evolve.fitness) if evolve.objectives == "multi" else 1
    total = evolve.budget.evaluations
    pop_size = (evolve.algorithm.model_extra or {}).get("pop_size")
    if total is None and evolve.budget.generations and pop_size:
        total = evolve.budget.generations * int(pop_size)  # about: for the progress bar's ETA
    bar = tqdm(total=total, desc="evolve", unit="cand", disable=not progress, file=console)
    best = [-np.inf]

    def tick(objectives):
        if objectives is None:  # a failed candidate
            bar.set_postfix(best=f"{best[0]:.4f}", failed=search.failed)
        elif n_obj == 1:
            best[0] = max(best[0], objectives[0])
            bar.set_postfix(best=f"{best[0]:.4f}")
        bar.update(1)

    search = MergeSearch(config, out, resume=resume, progress=tick, manager=manager)

    options = evolve.algorithm.model_extra or {}
    factory = lookup("algorithm", evolve.algorithm.name)
    if "n_obj" in inspect.signature(factory).parameters:  # e.g. reference directions for NSGA-III
        options = {**options, "n_obj": n_obj}
    from .algorithms.warm_start import with_init

    options = with_init(config, factory, dict(options), search.space)
    algorithm = factory(**options)
    if evolve.racing and hasattr(algorithm, "use_rungs"):  # its own intensifier decides the promotions
        algorithm.use_rungs(search.rungs, evolve.racing.eta)
    started = time.time()
    keep = _keeps_config(config, search, n_obj)
    try:
        if keep:
            mine = search.score_incumbent()
            if not mine.get("failed"):
                bar.set_postfix(your_config=f"{mine['objectives'][0]:.4f}")
        result = minimize(MergeProblem(search, n_obj), algorithm, _termination(evolve.budget), seed=evolve.seed,
                          callback=CheckpointCallback(search, out / "checkpoint.json"), verbose=False)
        X, F = np.atleast_2d(result.X), -np.atleast_2d(result.F)
        if n_obj > 1:  # the front of every candidate scored, not only of those the algorithm kept

            X, F = archive_front(search.succeeded())
        if evolve.racing:  # the best of those scored on every anchor, not a lucky low-rung estimate
            winner = max(search.finalists(), key=lambda r: r["objectives"][0])
            X, F = np.array([winner["genes"]]), np.array([winner["objectives"]])
        selection = _select(config, search, X, F, progress, console) if evolve.select else None
        if selection:
            X, F = selection.pop("X"), selection.pop("F")
        duel = _duel(config, search, X, bool(selection), progress, console) if keep else None
    finally:
        bar.close()
        search.close()  # the backend's workers (Ray actors) go, also on an error
    if not selection and F.shape[1] > 1:
        order = best_first(F)
        X, F = X[order], F[order]
        # genes that differ only where the space ignores them are one merge: one Pareto point each
        hashes = [config_hash(search.space.to_config(x)) for x in X]
        first = [i for i, h in enumerate(hashes) if h not in hashes[:i]]
        X, F = X[first], F[first]
    return _write_outputs(config, search, X, F, selection, out, started, save_model, duel)


def _keeps_config(config: EvolveConfig, search: MergeSearch, n_obj: int) -> bool:
    """Whether this run scores your config and holds the duel (keep_config on, one objective, and your
    config merges into this space's model); why not, where the user asked for it, goes to the log."""
    from .select.never_worse import incumbent_blocker

    if config.evolve.keep is None:
        return False
    why = "with several objectives your config is not kept (the front is)" if n_obj > 1 else \
        incumbent_blocker(config, search.space)
    if why and config.evolve.keep_config != KeepConfigSpec():  # options given: say why it is off
        logging.getLogger("mergekit_ext").warning("keep_config: off for this run: %s", why)
    return why is None


def _challengers(config: EvolveConfig, search: MergeSearch, X: np.ndarray, selected: bool):
    """The candidates that meet your config: the select stage's order where there was one, else the
    best distinct finalists by the search's fitness; your config itself is no challenger."""
    from .select.never_worse import Challenger

    mine = config_hash(config.merge)
    rows = X if selected else [r["genes"] for r in sorted(search.finalists(), key=lambda r: -r["objectives"][0])]
    found: dict[str, Challenger] = {}
    for genes in rows:
        candidate = search.space.to_config(np.asarray(genes))
        key = config_hash(candidate)
        if key != mine and key not in found:
            found[key] = Challenger([float(v) for v in genes], candidate, key)
        if len(found) == config.evolve.keep.challengers:
            break
    return list(found.values())


def _duel(config: EvolveConfig, search: MergeSearch, X: np.ndarray, selected: bool, progress: bool,
          console=None) -> dict:
    """Never worse than your config: see never_worse.py. Returns the decision (kept in summary.json)."""
    from .select.never_worse import RULE, decide, held_out_blocker

    mine = search.incumbent.records[config_hash(config.merge)]
    challengers = _challengers(config, search, X, selected)
    decision = {"rule": RULE, "your_config_search": mine.get("objectives"), "config_hash": mine["config_hash"]}
    if mine.get("failed"):
        return {**decision, "chosen": "evolved", "why": f"your config failed to merge or score ({mine['failed']})"}
    if not challengers:
        return {**decision, "chosen": "your config", "why": "the search found nothing but your config"}
    blocker = held_out_blocker(config, search.manager or search.engine.fitness.manager)
    if blocker:  # no unseen items: the search's own scores decide (the winner's curse stays)
        best = max(challengers, key=lambda c: search.history.records[c.key]["objectives"][0])
        won = search.history.records[best.key]["objectives"][0] > mine["objectives"][0]
        return {**decision, "chosen": "evolved" if won else "your config", "challenger": best.key,
                "why": f"no held-out items ({blocker}): decided on the search's fitness"}
    pairs = [([], config.merge)] + [(c.genes, c.candidate) for c in challengers]
    with tqdm(total=len(pairs), desc="your config vs best", unit="cand", disable=not progress, file=console) as bar:
        records = search.score_held_out(pairs, tick=lambda: bar.update(1))
    return {**decision, **decide(config.evolve.fitness, records, mine["config_hash"], challengers)}


def _select(config: EvolveConfig, search: MergeSearch, X: np.ndarray, F: np.ndarray, progress: bool,
            console=None) -> dict:
    """Multi-fidelity: score the best candidates again with evolve.select.fitness, choose on that.

    One objective: the `top` distinct candidates of the whole history by search fitness. Several: the
    Pareto points (at most `top`), and the front is taken again on the new scores."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    top = config.evolve.select.top
    if F.shape[1] == 1:
        picks, seen = [], set()
        for record in sorted(search.finalists(), key=lambda r: -r["objectives"][0]):
            if record["config_hash"] not in seen and len(picks) < top:
                seen.add(record["config_hash"])
                picks.append(record)
        candidates = np.array([r["genes"] for r in picks])
        searched = np.array([r["objectives"] for r in picks])
    else:
        candidates, searched = X[:top], F[:top]
    with tqdm(total=len(candidates), desc="select", unit="cand", disable=not progress, file=console) as bar:
        records = search.rescore(candidates, tick=lambda: bar.update(1))
    kept = [i for i, r in enumerate(records) if not r.get("failed")]  # a failed re-score is not chosen
    if not kept:
        raise GenerationFailed(f"every candidate of the select stage failed ({records[0]['failed']}); "
                               f"see {search.selection.path}")
    records, candidates, searched = [records[i] for i in kept], candidates[kept], searched[kept]
    G = np.array([r["objectives"] for r in records])
    if G.shape[1] == 1:
        order = np.argsort(-G[:, 0], kind="stable")
    else:
        front = NonDominatedSorting().do(-G, only_non_dominated_front=True)
        order = np.array(sorted(front, key=lambda i: -G[i].sum()))
    rows = [{"config_hash": r["config_hash"], "search": s.tolist(), "selected": r["objectives"]}
            for r, s in zip(records, searched)]
    return {"X": candidates[order], "F": searched[order], "G": G[order].tolist(), "candidates": rows,
            "fitness": [spec.model_dump() for spec in config.evolve.select.fitness]}


def _write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=1) + "\n")


def _write_yaml(path: Path, candidate: dict | list, header: str = "") -> None:
    """A candidate as mergekit reads it: one config, or a recipe's configs as the documents of one file."""
    if is_recipe(candidate):
        write_atomic(path, header + yaml.safe_dump_all(candidate, sort_keys=False))
    else:
        write_atomic(path, header + yaml.safe_dump(candidate, sort_keys=False))


def reproduce_command(config: EvolveConfig, yaml_name: str, candidate: dict | list | None = None) -> str:
    """The line that rebuilds a candidate exactly: mergekit-yaml for one config, mergekit-multi for a
    recipe (random methods need the run's seed)."""
    if is_recipe(candidate):
        return recipe_command(yaml_name)
    seed = f" --random-seed {config.evolve.seed}" if config.method in RANDOM_METHODS else ""
    return f"mergekit-yaml {yaml_name} ./merged{seed}"


def _best(config: EvolveConfig, search: MergeSearch, X: np.ndarray, F: np.ndarray, duel: dict | None):
    """best.yaml's config and its search objectives: the search's best, or what the duel chose."""
    if duel and duel["chosen"] == "your config":
        return config.merge, np.array(duel["your_config_search"])
    if duel and duel.get("challenger"):
        record = search.history.records[duel["challenger"]]
        return search.space.to_config(np.asarray(record["genes"])), np.array(record["objectives"])
    return search.space.to_config(X[0]), F[0]


def _write_outputs(config: EvolveConfig, search: MergeSearch, X: np.ndarray, F: np.ndarray, selection: dict | None,
                   out: Path, started: float, save_model: bool, duel: dict | None = None):
    best_config, best_objectives = _best(config, search, X, F, duel)
    command = reproduce_command(config, "THIS.yaml", best_config)
    header = f"# mergekit-evolve-lite {config.path.name}: rebuild with `{command}`\n"
    _write_yaml(out / "best.yaml", best_config, header)
    if F.shape[1] > 1:
        shutil.rmtree(out / "pareto", ignore_errors=True)  # a resumed run may end with fewer points
        (out / "pareto").mkdir()
        for i, x in enumerate(X):
            _write_yaml(out / "pareto" / f"point{i:03d}.yaml", search.space.to_config(x), header)
    records = search.succeeded()
    merge_s = [r["merge_seconds"] for r in records]
    eval_s = [r["eval_seconds"] for r in records]
    failed = [r for r in search.history.records.values() if r.get("failed")]  # still failed at its latest try
    summary = {
        "config": str(config.path), "genes": search.space.dims, "evaluations": len(search.history.records),
        "failed": len(failed), "failed_reasons": sorted({r["failed"] for r in failed}),
        "candidates_this_run": search.asked, "evaluated_this_run": search.evaluated,
        "replayed_from_history": search.replayed, "repeated_this_run": search.repeated,
        "objective_names": objective_names(config), "best_objectives": best_objectives.tolist(),
        "best_config_hash": config_hash(best_config),
        "reproduce": reproduce_command(config, str(out / "best.yaml"), best_config),
        "pareto_points": int(len(X)), "wall_seconds": round(time.time() - started, 2),
        "items_evaluated": items_evaluated(search),
        "mean_merge_seconds": float(np.mean(merge_s)) if merge_s else None,
        "mean_eval_seconds": float(np.mean(eval_s)) if eval_s else None,
    }
    if F.shape[1] > 1:
        summary["best_rule"] = BEST_RULE
        summary["hypervolume"] = hypervolume(F)
        summary["hypervolume_per_generation"] = [g["hypervolume"] for g in search.history.generations]
    if duel:
        summary["best_is_your_config"] = duel["chosen"] == "your config"
        summary["your_config_objectives"] = duel["your_config_search"]
        summary["never_worse"] = duel
    if config.evolve.racing:
        reached = [r.get("anchors") for r in records]
        summary["racing"] = {"eta": config.evolve.racing.eta, "best_rule": "the best of those scored on every anchor",
                             "intensifier": ("optuna HyperbandPruner, one candidate at a time" if search.own_intensifier
                                             else "successive halving of each generation"),
                             "candidates_per_rung": {str(k): reached.count(k) for k in sorted(set(reached))}}
    if selection:
        summary["best_selected_objectives"] = selection["G"][0]
        summary["select_objective_names"] = objective_names(config, select=True)
        summary["selection"] = {k: selection[k] for k in ("fitness", "candidates")}
    _write_json(out / "summary.json", summary)
    _plots(records, F, out, selection, objective_names(config), duel and duel["your_config_search"])
    if save_model:
        _save_model(search, best_config, out / "best_model")
    return summary


def _save_model(search: MergeSearch, best_config: dict, folder: Path) -> None:
    """The best merge as an HF model folder with its tokenizer (what mergekit-yaml would write, plus
    the tokenizer lm-eval needs), written beside and then renamed into place."""
    engine = search.engine
    engine.merger.merge_into(engine.model, best_config)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    engine.model.save_pretrained(tmp)
    # the donor's tokenizer files as mergekit-yaml copies them (re-saving them through the installed
    # transformers would write a format older versions cannot read)
    copy_tokenizer(search.config.merge, str(tmp))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def items_evaluated(search: MergeSearch) -> dict:
    """The run's cost in documents evaluated: every distinct candidate in history.jsonl (this run and
    those before it), the select stage's re-scores, and the endpoints' abilities (mp/gmp-IRT) where the
    driver measured them this run (Ray workers measure their own; those are not counted)."""
    counts = {"candidates": sum(r.get("items", 0) for r in search.history.records.values()),
              "select": sum(r.get("items", 0) for r in search.selection.records.values()),
              "your_config": sum(r.get("items", 0) for r in search.incumbent.records.values()),
              "held_out": sum(r.get("items", 0) for r in search.held_out.records.values())}
    engine = search.built_engine
    counts["endpoints"] = engine.fitness.endpoint_items if engine is not None else 0
    counts["total"] = sum(counts.values())
    return counts


def objective_names(config: EvolveConfig, select: bool = False) -> list[str]:
    """What each objective is, for plot axes and the closing line: the task and metric (and estimator)
    of its fitness entry (`select`: of the select stage's entries)."""
    def name(spec) -> str:
        return f"{spec.task} {spec.metric}" + (f" ({spec.estimator})" if spec.estimator else "")

    fitness = config.evolve.select.fitness if select else config.evolve.fitness
    if config.evolve.objectives == "multi":
        return [name(spec) for spec in fitness]
    return [name(fitness[0]) if len(fitness) == 1 else "weighted fitness"]


def _plots(records: list[dict], front: np.ndarray, out: Path, selection: dict | None = None,
           names: list[str] | None = None, yours: list[float] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        return
    values = np.array([r["objectives"] for r in records])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for j in range(values.shape[1]):
        label = names[j] if names else f"objective {j}"
        ax.plot(values[:, j], ".", alpha=0.35, label=f"{label}: each candidate")
        ax.plot(np.maximum.accumulate(values[:, j]), "-", label=f"{label}: best so far")
    if selection and values.shape[1] == 1:  # where the re-scored candidates were found, and their new scores
        index = {r["config_hash"]: i for i, r in enumerate(records)}
        xs = [index[c["config_hash"]] for c in selection["candidates"]]
        ax.plot(xs, [c["selected"][0] for c in selection["candidates"]], "kx", label="select: higher-fidelity score")
    if yours and values.shape[1] == 1:
        ax.axhline(yours[0], color="grey", linestyle="--", label="your config")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("fitness (estimated accuracy)")
    save_figure(fig, ax, out / "fitness.png")
    if values.shape[1] >= 2:

        plot_front(values, front, names or [f"objective {j}" for j in range(values.shape[1])], out)
