"""Multi-fidelity search on a toy world's target at a fixed budget of items (issue #14).

    python benchmarks/multi_fidelity.py [--preset default] [--items 2400] [--seeds 0 1 2] [--out DIR]

Every arm searches the per-layer task-arithmetic weights of the world's two experts (one gene per
expert and layer) for its cross-lingual target, with `mergekit-evolve-lite` and the same budget in
items evaluated (`budget: {items: N}`), and is judged by the true accuracy of its best.yaml on the
target's held-out test items (the test split without any anchor; no arm sees them):

  (a) GA on the full validation split (the plain accuracy on every validation item)
  (b) GA on merge3's gp-IRT estimate from all anchors
  (c) GA with racing: each generation's candidates by successive halving over the anchor rungs
  (c') the paper's loop: Optuna TPE with a Hyperband intensifier over the same IRT rungs
  (d) the paper's loop on plain prefixes: the same rungs scored by their plain mean (no IRT)

The anchors (`--anchors`, default 45) are extracted with rungs (`--rungs`, default 5 15: eta 3).
Prints a markdown table: mean and standard error over the seeds of the true accuracy, with items
evaluated, candidates scored and wall seconds, after reference rows (both experts, the 0.5/0.5 and
1/1 task-arithmetic recipes). Runs are kept in --out; a finished run is reused, an interrupted one
resumed. One run at a time (2 cores: measure on a quiet machine).
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
    "a": "GA, full validation split (plain)",
    "b": "GA, merge3 gp-IRT, all anchors",
    "c": "GA + racing over IRT rungs",
    "c'": "TPE + Hyperband over IRT rungs",
    "d": "TPE + Hyperband over plain prefixes",
}


def arm_evolve(arm: str, target: str, items: int, seed: int, eta: int) -> dict:
    """The evolve section of one arm."""
    irt = {"task": f"merge3_{target}", "metric": "exact_match", "estimator": "gpirt"}
    ga = {"name": "ga", "pop_size": 12}
    tpe = {"name": "tpe", "n_startup_trials": 10}
    evolve = {"granularity": "per_layer", "budget": {"items": items}, "seed": seed}
    if arm == "a":
        return {**evolve, "algorithm": ga, "fitness": [{"task": f"{target}_val", "metric": "exact_match",
                                                        "estimator": None}]}
    if arm == "b":
        return {**evolve, "algorithm": ga, "fitness": [irt]}
    if arm == "c":
        return {**evolve, "algorithm": ga, "fitness": [irt], "racing": {"eta": eta}}
    if arm == "c'":
        return {**evolve, "algorithm": tpe, "fitness": [irt], "racing": {"eta": eta}}
    return {**evolve, "algorithm": tpe, "fitness": [{**irt, "estimator": None}], "racing": {"eta": eta}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--preset", default="default", help="toy world (default: default; micro for a quick look)")
    parser.add_argument("--items", type=int, default=2400, help="the budget of every arm, in items (default 2400)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--anchors", type=int, default=45)
    parser.add_argument("--rungs", type=int, nargs="+", default=[5, 15])
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out", type=Path, default=Path("runs/multi_fidelity"))
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from merge3_zoo.build import build_zoo
    from toy_runs import Judge, anchors_of, evolve, mean_se, prepare_tasks, ta_merge, write_config

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()  # the judge loads the experts: no loading bars in the table
    zoo = build_zoo(args.preset).zoo
    target = zoo.data["recipe"]["target"][0]
    out = args.out / args.preset
    tasks = prepare_tasks(zoo, args.preset, out, args.anchors, args.rungs)
    anchors = anchors_of(tasks, target)
    judge = Judge(zoo, target, anchors)
    merge = {**ta_merge(zoo), "evolve": {"search": {"weight": [0.0, 1.5]}}}

    rows = {}
    for arm in args.arms:
        for seed in args.seeds:
            run_dir = out / f"arm-{arm.replace(chr(39), 'p')}-seed{seed}"
            evolve_section = {**merge["evolve"], **arm_evolve(arm, target, args.items, seed, args.eta)}
            config = write_config(run_dir / "config.yaml", ta_merge(zoo), tasks, evolve_section)
            summary = evolve(config, run_dir)
            best = yaml.safe_load((run_dir / "best.yaml").read_text())
            rows.setdefault(arm, []).append({"true": judge.merge(best), "items": summary["items_evaluated"]["total"],
                                             "candidates": summary["evaluations"],
                                             "wall": summary["wall_seconds"]})
            print(f"  {arm} seed {seed}: true {rows[arm][-1]['true']:.3f}, {rows[arm][-1]['items']} items, "
                  f"{rows[arm][-1]['candidates']} candidates", file=sys.stderr)

    print(f"\n{args.preset} world, target {target}: true accuracy on its {judge.size} held-out test items "
          f"(the test split without the {len(anchors)} anchors); budget {args.items} items per run, "
          f"seeds {args.seeds}, rungs {args.rungs} + all {args.anchors} anchors, eta {args.eta}\n")
    print("| run | true accuracy (mean ± SE) | items evaluated | candidates scored | wall s |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("expert-math", "expert-lang"):
        print(f"| {name} | {judge.model(zoo.model_path(name)):.3f} | | | |")
    for weights in ((0.5, 0.5), (1.0, 1.0)):
        print(f"| task arithmetic {weights[0]}/{weights[1]} | {judge.merge(ta_merge(zoo, weights)):.3f} | | | |")
    for arm, results in rows.items():
        mean, se = mean_se([r["true"] for r in results])
        avg = {k: sum(r[k] for r in results) / len(results) for k in ("items", "candidates", "wall")}
        print(f"| ({arm}) {ARMS[arm]} | {mean:.3f} ± {se:.3f} | {avg['items']:.0f} | {avg['candidates']:.0f} | "
              f"{avg['wall']:.0f} |")


if __name__ == "__main__":
    main()
