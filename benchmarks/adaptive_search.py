"""The adaptive estimator in the search (issue #26): does a search on half the items per candidate choose
as good a merge as fixed 20-anchor gp-IRT?

    python benchmarks/adaptive_search.py [--preset default] [--task T] [--candidates 96] [--seeds 0 1 2]

Every arm runs `mergekit-evolve-lite` on the same search (GA, the per-layer task-arithmetic weights of the
world's two target experts, the same number of candidates and seeds) with one fitness on the task
(default: the world's target) and differs only in how a candidate is scored:

  fixed     gp-IRT on 20 anchor-irt anchors (the same 20 documents for every candidate)
  adaptive  the adaptive test (Fisher information at the current ability), `--items` per candidate
            (default 10: half the fixed arm's), starting from the endpoints' mean ability
  adaptive-accuracy  the same, choosing the items that most cut the predicted accuracy's variance
  adaptive-graded    multiple-choice tasks: adaptive, the ability measured from graded responses (the
            probability of the right choice; the toy tasks' bundles carry a graded channel)

The chosen merge (best.yaml) is judged by its true accuracy on the task's validation split: no arm asks
any of those documents (the bundle, its anchors and every adaptive test live on the test split), so no
arm's winner's curse reaches the judge. Prints a markdown table: mean and standard error over seeds of
the true accuracy, the per-seed differences to the fixed arm, items and lm-eval seconds per candidate, and wall seconds
(time them on a quiet machine: one run at a time).
Runs are kept in --out; a finished run is reused, an interrupted one resumed. One run at a time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ARMS = {
    "fixed": "gp-IRT, 20 fixed anchors",
    "adaptive": "adaptive (information)",
    "adaptive-accuracy": "adaptive (accuracy)",
    "adaptive-graded": "adaptive (information), graded responses",
}


def fitness(arm: str, task: str, metric: str, items: int) -> dict:
    entry = {"task": f"merge3_{task}", "metric": metric}
    if arm == "fixed":
        return {**entry, "estimator": "gpirt"}
    if arm == "adaptive-graded":
        return {**entry, "estimator": "adaptive", "items": items, "adaptive": {"graded": True}}
    return {**entry, "estimator": arm, "items": items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--preset", default="default", help="toy world (default: default; micro for a quick look)")
    parser.add_argument("--task", default=None, help="the fitness task (default: the world's target)")
    parser.add_argument("--candidates", type=int, default=96, help="candidates per run (default 96: 8 generations)")
    parser.add_argument("--items", type=int, default=10, help="adaptive items per candidate (default 10)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS),
                        help="default: all (adaptive-graded only on a multiple-choice task)")
    parser.add_argument("--out", type=Path, default=Path("runs/adaptive_search"))
    args = parser.parse_args()

    import torch
    from toy_runs import Judge, evolve, mean_se, prepare_tasks, ta_merge, write_config
    from transformers.utils import logging as hf_logging

    from merge3_zoo.build import build_zoo

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    zoo = build_zoo(args.preset).zoo
    recipe_target, expert_a, expert_b = zoo.data["recipe"]["target"]
    task = args.task or recipe_target
    metric = next(t["metric"] for t in zoo.tasks if t["name"] == task)
    out = args.out / args.preset
    tasks = prepare_tasks(zoo, args.preset, out, 20, [])
    judge = Judge(zoo, task, set(), split="validation")
    merge = ta_merge(zoo)
    assert [m["model"].rsplit("/", 1)[-1] for m in merge["models"]] == [expert_a, expert_b], "ta_merge's experts"

    output_type = next(t["output_type"] for t in zoo.tasks if t["name"] == task)
    arms = [a for a in args.arms if a != "adaptive-graded" or output_type == "multiple_choice"]
    rows: dict[str, list[dict]] = {}
    for arm in arms:
        for seed in args.seeds:
            run_dir = out / f"{task}-{arm}-seed{seed}"
            evolve_section = {"search": {"weight": [0.0, 1.5]}, "granularity": "per_layer", "seed": seed,
                              "algorithm": {"name": "ga", "pop_size": 12}, "keep_config": False,
                              "budget": {"evaluations": args.candidates},
                              "fitness": [fitness(arm, task, metric, args.items)]}
            config = write_config(run_dir / "config.yaml", merge, tasks, evolve_section)
            summary = evolve(config, run_dir)
            best = yaml.safe_load((run_dir / "best.yaml").read_text())
            searched = summary["items_evaluated"]
            rows.setdefault(arm, []).append({
                "seed": seed, "true": judge.merge(best), "wall": summary["wall_seconds"],
                "eval": summary["mean_eval_seconds"],
                "per_candidate": searched["candidates"] / max(summary["evaluations"], 1),
                "fitness": summary["best_objectives"][0]})
            print(f"  {arm} seed {seed}: true {rows[arm][-1]['true']:.3f}, "
                  f"{rows[arm][-1]['per_candidate']:.1f} items per candidate", file=sys.stderr)

    print(f"\n{args.preset} world, fitness task {task} ({metric}); true accuracy on its {judge.size} validation "
          f"items (no arm asks them); GA pop 12, {args.candidates} candidates per run, seeds {args.seeds}\n")
    print("| arm | true accuracy (mean ± SE) | minus fixed, per seed | items per candidate | eval s per candidate "
          "| wall s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in (expert_a, expert_b):
        print(f"| {name} | {judge.model(zoo.model_path(name)):.3f} | | | | |")
    print(f"| task arithmetic 0.5/0.5 (the config) | {judge.merge(merge):.3f} | | | | |")
    fixed = {r["seed"]: r["true"] for r in rows.get("fixed", [])}
    for arm, results in rows.items():
        mean, se = mean_se([r["true"] for r in results])
        diffs = [r["true"] - fixed[r["seed"]] for r in results if r["seed"] in fixed] if arm != "fixed" else []
        diff = ", ".join(f"{d:+.3f}" for d in diffs)
        if diffs:
            dm, dse = mean_se(diffs)
            diff += f" (mean {dm:+.3f} ± {dse:.3f})"
        per = sum(r["per_candidate"] for r in results) / len(results)
        wall = sum(r["wall"] for r in results) / len(results)
        seconds = sum(r["eval"] for r in results) / len(results)
        print(f"| {ARMS[arm]} | {mean:.3f} ± {se:.3f} | {diff} | {per:.1f} | {seconds:.3f} | {wall:.0f} |")


if __name__ == "__main__":
    main()
