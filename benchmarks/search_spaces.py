"""The richer search spaces on a toy world (issue #14): LFS, DIS and a two-skill Pareto front.

    python benchmarks/search_spaces.py [--preset default] [--items 2400] [--seeds 0 1 2] [--out DIR]

Single objective, the world's cross-lingual target scored by merge3's gp-IRT estimate (45 anchors),
pymoo's GA (population 12), the same budget in items for every space; each run's best merge
(`--save-model`, what mergekit builds from best.yaml) judged on the target's held-out test items:

  - task arithmetic, one weight per expert and layer (the parameter space)
  - TIES, weight and density per expert and layer (single-method per-layer TIES)
  - LFS: a merge method per layer group (linear, task arithmetic, TIES, slerp) and its values
  - DIS: per layer position a subset of the experts' layer i, their order, a scale (depth cap +25%)

Then two objectives (math and language, gp-IRT each, NSGA-II, twice the items): the hypervolume of the
evolved Pareto points on held-out truth, against the front of the uniform task-arithmetic grid
{0, 0.25, ..., 1.5}^2 chosen on the validation items (49 merges, 100 validation items per skill).
Prints markdown tables; runs are kept in --out and reused.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SPACES = {
    "ta": "task arithmetic per layer (parameter space)",
    "ties": "TIES per layer (weight, density)",
    "lfs": "LFS: a method per layer group",
    "dis": "DIS: layer subsets, order, scale",
}
GRID = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]


def space_config(space: str, zoo) -> tuple[dict, dict]:
    """(the mergekit part, the evolve part) of one space's run."""
    from toy_runs import ta_merge

    if space == "ta":
        return ta_merge(zoo), {"search": {"weight": [0.0, 1.5]}, "granularity": "per_layer"}
    if space == "ties":
        merge = ta_merge(zoo, method="ties")
        for model in merge["models"]:
            model["parameters"]["density"] = 0.5
        return merge, {"search": {"weight": [0.0, 1.5], "density": [0.1, 1.0]}, "granularity": "per_layer"}
    if space == "lfs":
        return ta_merge(zoo, (1.0, 1.0)), {"space": "lfs"}
    merge = ta_merge(zoo)
    merge["merge_method"] = "passthrough"
    merge["models"] = [{"model": m["model"]} for m in merge["models"]]
    return merge, {"space": "depth", "space_options": {"mode": "dis"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--items", type=int, default=2400, help="budget per single-objective run, in items")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--anchors", type=int, default=45)
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    parser.add_argument("--out", type=Path, default=Path("runs/search_spaces"))
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from merge3_zoo.build import build_zoo
    from mergekit_ext.select.pareto import hypervolume
    from toy_runs import Judge, anchors_of, evolve, mean_se, prepare_tasks, ta_merge, write_config

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    zoo = build_zoo(args.preset).zoo
    target = zoo.data["recipe"]["target"][0]
    out = args.out / args.preset
    tasks = prepare_tasks(zoo, args.preset, out, args.anchors, [5, 15])
    judge = Judge(zoo, target, anchors_of(tasks, target))
    fitness = [{"task": f"merge3_{target}", "metric": "exact_match", "estimator": "gpirt"}]

    rows = {}
    for space in args.spaces:
        for seed in args.seeds:
            run_dir = out / f"{space}-seed{seed}"
            merge, evolve_part = space_config(space, zoo)
            config = write_config(run_dir / "config.yaml", merge, tasks, {
                **evolve_part, "fitness": fitness, "algorithm": {"name": "ga", "pop_size": 12},
                "budget": {"items": args.items}, "seed": seed})
            summary = evolve(config, run_dir)
            rows.setdefault(space, []).append((judge.model(run_dir / "best_model"), summary["best_objectives"][0],
                                               summary["items_evaluated"]["total"], summary["evaluations"]))
            print(f"  {space} seed {seed}: true {rows[space][-1][0]:.3f}", file=sys.stderr)

    print(f"\n{args.preset} world, target {target}: true accuracy of each run's best merge on {judge.size} held-out "
          f"test items; gp-IRT fitness on {args.anchors} anchors, GA, budget {args.items} items, seeds {args.seeds}\n")
    print("| space | true accuracy (mean ± SE) | its estimate | items | candidates |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| expert-math | {judge.model(zoo.model_path('expert-math')):.3f} | | | |")
    print(f"| task arithmetic 0.5/0.5 | {judge.merge(ta_merge(zoo)):.3f} | | | |")
    for space, results in rows.items():
        mean, se = mean_se([r[0] for r in results])
        print(f"| {SPACES[space]} | {mean:.3f} ± {se:.3f} | {np.mean([r[1] for r in results]):.3f} | "
              f"{np.mean([r[2] for r in results]):.0f} | {np.mean([r[3] for r in results]):.0f} |")

    # two skills: the evolved Pareto points against the validation-chosen grid, both judged on held-out truth
    skills = ["toy_math", "toy_lang"]
    truth = {s: Judge(zoo, s, anchors_of(tasks, s)) for s in skills}
    validation = {s: Judge(zoo, s, set(), split="validation") for s in skills}
    hv = []
    for seed in args.seeds:
        run_dir = out / f"pareto-seed{seed}"
        config = write_config(run_dir / "config.yaml", ta_merge(zoo), tasks, {
            "search": {"weight": [0.0, 1.5]}, "granularity": "per_layer", "objectives": "multi",
            "fitness": [{"task": f"merge3_{s}", "metric": "exact_match", "estimator": "gpirt"} for s in skills],
            "algorithm": {"name": "nsga2", "pop_size": 12}, "budget": {"items": 2 * args.items}, "seed": seed})
        summary = evolve(config, run_dir)
        points = [yaml.safe_load(p.read_text()) for p in sorted((run_dir / "pareto").glob("point*.yaml"))]
        front = np.array([[truth[s].merge(p) for s in skills] for p in points])
        hv.append((hypervolume(front), len(points), summary["items_evaluated"]["total"], summary["hypervolume"]))
        print(f"  pareto seed {seed}: hypervolume on truth {hv[-1][0]:.4f}", file=sys.stderr)
    grid = [ta_merge(zoo, w) for w in itertools.product(GRID, GRID)]
    chosen = np.array([[validation[s].merge(g) for s in skills] for g in grid])
    keep = [i for i in range(len(grid)) if not any((chosen[j] >= chosen[i]).all() and (chosen[j] > chosen[i]).any()
                                                    for j in range(len(grid)))]
    grid_truth = np.array([[truth[s].merge(grid[i]) for s in skills] for i in keep])
    mean, se = mean_se([h[0] for h in hv])
    print(f"\ntwo objectives ({', '.join(skills)}): hypervolume of the chosen merges' true accuracies on held-out "
          "test items (origin reference)\n")
    print("| front | hypervolume on truth | points | items |")
    print("| --- | --- | --- | --- |")
    print(f"| NSGA-II, per-layer TA, gp-IRT (mean ± SE over seeds) | {mean:.4f} ± {se:.4f} | "
          f"{np.mean([h[1] for h in hv]):.1f} | {np.mean([h[2] for h in hv]):.0f} |")
    print(f"| uniform TA grid {len(GRID)}x{len(GRID)}, front chosen on validation | {hypervolume(grid_truth):.4f} | "
          f"{len(keep)} | {len(grid) * sum(v.size for v in validation.values())} |")


if __name__ == "__main__":
    main()
