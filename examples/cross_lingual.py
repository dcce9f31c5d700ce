"""Run examples/cross_lingual.yaml on the default toy world and check the winner on every test item.

    python examples/cross_lingual.py [--evaluations N] [--out DIR]

Prints the evolved merge's true accuracy on all 500 toy_math_l2 items next to both experts and the
best task-arithmetic merge on a uniform grid of scales (0, 0.25, ..., 1.5 for each expert): the
winner of the search alone (50-anchor estimate) and the winner after the select stage (the 8 best
scored again on the 100 validation items). `--no-select` runs the search alone.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evaluations", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/cross_lingual"))
    parser.add_argument("--grid", type=float, nargs="*", default=[0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5])
    parser.add_argument("--anchors", type=int, default=None,
                        help="refit the toy bundles with this many anchors (default: the shipped 50)")
    parser.add_argument("--no-select", action="store_true", help="drop the select stage (search fitness only)")
    parser.add_argument("--preset", default="default",
                        help="toy world: default, or compose (world v2 candidate, issue #10; its merge3 tasks are "
                             "fitted into --out on the first run)")
    parser.add_argument("--granularity", default=None,
                        help="override evolve.granularity: global, per_layer or a number of layer groups")
    args = parser.parse_args()

    # the world and this example on float paths every x86 CPU with AVX2 shares, one thread: the same table on any such machine
    from merge3_zoo.numerics import use_portable_floats

    use_portable_floats()
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM

    from merge3_lm_eval_tasks.task_files import shipped_tasks_dir
    from merge3_zoo.build import build_zoo
    from merge3_zoo.quickeval import score_model
    from mergekit_ext.config import load_config
    from mergekit_ext.genes import space_for
    from mergekit_ext.inmemory import InMemoryMerger
    from mergekit_ext.run import run

    zoo = build_zoo(args.preset).zoo
    text = (HERE / "cross_lingual.yaml").read_text().replace("ZOO/", f"{zoo.root}/")
    data = yaml.safe_load(text)
    tasks_dir = shipped_tasks_dir()
    if args.anchors or args.preset != "default":
        from merge3_zoo.toy_tasks import SIZE, regenerate

        tasks_dir = args.out / f"tasks-{args.preset}-{args.anchors or SIZE}"
        if not (tasks_dir / "merge3_toy_math_l2.yaml").exists():
            regenerate(tasks_dir, size=args.anchors or SIZE, preset=args.preset)
    args.out.mkdir(parents=True, exist_ok=True)
    val_dir = args.out / "val_task"  # toy_math_l2 on its validation split: the select stage's fitness
    val_dir.mkdir(exist_ok=True)
    (val_dir / "toy_math_l2_val.yaml").write_text(yaml.safe_dump(
        {"include": str(zoo.tasks_dir / "toy_math_l2.yaml"), "task": "toy_math_l2_val", "tag": [],
         "test_split": "validation"}, sort_keys=False))
    data["evolve"]["include_path"] = [str(tasks_dir), str(val_dir)]
    if args.no_select:
        data["evolve"].pop("select")
    if args.granularity:
        data["evolve"]["granularity"] = int(args.granularity) if args.granularity.isdigit() else args.granularity
    if args.evaluations:
        data["evolve"]["budget"] = {"evaluations": args.evaluations}
    config_path = args.out / "config.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(config_path)
    resume = (args.out / "history.jsonl").exists()
    summary = run(config, args.out, resume=resume)

    merger = InMemoryMerger(config.merge)
    model = AutoModelForCausalLM.from_pretrained(zoo.model_path("base"), dtype=torch.float32)

    def truth(merge_config: dict) -> float:
        merger.merge_into(model, merge_config)
        return score_model(model, zoo, "toy_math_l2")

    best = yaml.safe_load((args.out / "best.yaml").read_text())
    history = [json.loads(line) for line in (args.out / "history.jsonl").read_text().splitlines()]
    top = max(history, key=lambda r: r["objectives"][0])
    search_best = space_for(config).to_config(np.array(top["genes"]))
    rows = [("evolved: best by the search's estimate", top["objectives"][0], truth(search_best))]
    if "best_selected_objectives" in summary:
        rows.append(("evolved: chosen by the select stage", summary["best_objectives"][0], truth(best)))
    for name in ("expert-math", "expert-lang"):
        rows.append((name, None, zoo.model(name)["accuracy"]["toy_math_l2"]))
    grid_best = (None, -1.0)
    for a, b in itertools.product(args.grid, args.grid):
        candidate = {**config.merge, "models": [
            {"model": config.merge["models"][0]["model"], "parameters": {"weight": a}},
            {"model": config.merge["models"][1]["model"], "parameters": {"weight": b}}]}
        acc = truth(candidate)
        if acc > grid_best[1]:
            grid_best = ((a, b), acc)
    rows.append((f"best grid TA merge {grid_best[0]}", None, grid_best[1]))
    print(f"\n{'model':<42}{'estimate':>10}{'true (500 items)':>18}")
    for name, est, acc in rows:
        print(f"{name:<42}{'' if est is None else f'{est:.3f}':>10}{acc:>18.3f}")
    print(f"\n{summary['candidates_this_run']} candidates asked, {summary['evaluated_this_run']} evaluated by this run "
          f"({summary['evaluations']} distinct in its history), {summary['wall_seconds']:.0f} s; "
          f"merge {summary['mean_merge_seconds']:.3f} s, eval {summary['mean_eval_seconds']:.3f} s per candidate")
    print(f"the run's files (best.yaml, history.jsonl, summary.json, plots, evolve.log): {args.out.resolve()}")


if __name__ == "__main__":
    main()
