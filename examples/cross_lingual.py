"""Run examples/cross_lingual.yaml on the default toy world and check the winner on every test item.

    python examples/cross_lingual.py [--evaluations N] [--out DIR]

Prints true accuracies on the toy_math_l2 test items that no choice saw (not the 50 anchors the
search scores on, nor the 200 held-out items of the never-worse duel): your config (TA 0.5/0.5), the
winner of the search alone (50-anchor estimate), the winner after the select stage (the 8 best
scored again on the 100 validation items), best.yaml (your config unless an evolved merge beat it in
the duel), both experts and the best task-arithmetic merge on a uniform grid of scales (0, 0.25, ...,
1.5 for each expert; the grid is chosen on those same items: an oracle, for reference).
`--no-select` runs the search alone.
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
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its "Loading weights" bar, per model this script loads

    from merge3_lm_eval_tasks.api import shipped_tasks_dir
    from merge3_zoo.build import build_zoo
    from merge3_zoo.quickeval import exact_match
    from merge3_zoo.tokenizer import CharCodec
    from mergekit_ext.config import load_config
    from mergekit_ext.spaces.genes import space_for
    from mergekit_ext.merging.inmemory import InMemoryMerger
    from mergekit_ext.run import run

    zoo = build_zoo(args.preset).zoo
    tasks_dir = shipped_tasks_dir()
    text = (HERE / "cross_lingual.yaml").read_text().replace("ZOO/", f"{zoo.root}/")
    data = yaml.safe_load(text.replace("TASKS", str(tasks_dir)))
    if args.anchors or args.preset != "default":
        from merge3_zoo.toy_tasks import SIZE, regenerate

        tasks_dir = args.out / f"tasks-{args.preset}-{args.anchors or SIZE}"
        if not (tasks_dir / "merge3_toy_math_l2.yaml").exists():
            regenerate(tasks_dir, size=args.anchors or SIZE, preset=args.preset)
    args.out.mkdir(parents=True, exist_ok=True)
    # the toy tasks (shipped or refit above), then the zoo's (toy_math_l2_val: the select stage's fitness)
    data["evolve"]["include_path"] = [str(tasks_dir), str(zoo.tasks_dir)]
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
    from merge3_plugin.console import libraries_to_log

    with libraries_to_log(args.out / "evolve.log") as console:  # lm-eval's bars and warnings go to the log
        summary = run(config, args.out, resume=resume, console=console)

    merger = InMemoryMerger(config.merge)
    model = AutoModelForCausalLM.from_pretrained(zoo.model_path("base"), dtype=torch.float32)

    unseen = unseen_items(config, tasks_dir, zoo)
    codec = CharCodec()

    def truth(merge_config: dict) -> float:
        merger.merge_into(model, merge_config)
        return float(np.mean(exact_match(model, codec, unseen)))

    def genes_config(config_hash: str) -> dict:
        record = next(r for r in history if r["config_hash"] == config_hash)
        return space_for(config).to_config(np.array(record["genes"]))

    best = yaml.safe_load((args.out / "best.yaml").read_text())
    history = [json.loads(line) for line in (args.out / "history.jsonl").read_text().splitlines()]
    top = max(history, key=lambda r: r["objectives"][0])
    rows = [("your config (TA 0.5, 0.5)", summary.get("your_config_objectives", [None])[0], truth(config.merge)),
            ("evolved: best by the search's estimate", top["objectives"][0], truth(genes_config(top["config_hash"])))]
    if "selection" in summary:
        chosen = max(summary["selection"]["candidates"], key=lambda c: c["selected"][0])
        rows.append(("evolved: chosen by the select stage", chosen["search"][0], truth(genes_config(chosen["config_hash"]))))
    duel = summary.get("never_worse", {})
    what = "your config" if summary.get("best_is_your_config") else "evolved"
    rows.append((f"best.yaml ({what}; never worse)", summary["best_objectives"][0], truth(best)))
    for name in ("expert-math", "expert-lang"):
        expert = AutoModelForCausalLM.from_pretrained(zoo.model_path(name), dtype=torch.float32)
        rows.append((name, None, float(np.mean(exact_match(expert, codec, unseen)))))
    grid_best = (None, -1.0)
    for a, b in itertools.product(args.grid, args.grid):
        candidate = {**config.merge, "models": [
            {"model": config.merge["models"][0]["model"], "parameters": {"weight": a}},
            {"model": config.merge["models"][1]["model"], "parameters": {"weight": b}}]}
        acc = truth(candidate)
        if acc > grid_best[1]:
            grid_best = ((a, b), acc)
    rows.append((f"oracle grid TA merge {grid_best[0]}", None, grid_best[1]))
    label = f"true ({len(unseen)} unseen)"
    print(f"\n{'model':<42}{'estimate':>10}{label:>20}")
    for name, est, acc in rows:
        print(f"{name:<42}{'' if est is None else f'{est:.3f}':>10}{acc:>20.3f}")
    if "why" in duel:
        print(f"\nnever worse: {duel['why']}")
    print(f"\n{summary['candidates_this_run']} candidates asked, {summary['evaluated_this_run']} evaluated by this run "
          f"({summary['evaluations']} distinct in its history), {summary['wall_seconds']:.0f} s; "
          f"merge {summary['mean_merge_seconds']:.3f} s, eval {summary['mean_eval_seconds']:.3f} s per candidate")
    print(f"the run's files (best.yaml, history.jsonl, summary.json, plots, evolve.log): {args.out.resolve()}")


def unseen_items(config, tasks_dir: Path, zoo) -> list:
    """The target's test items that no choice of the run saw: not its anchors (the search's fitness),
    not the duel's held-out sample (never worse)."""
    from merge3_lm_eval_tasks.api import held_out_ids
    from merge3_plugin.bundle import Bundle
    from merge3_zoo.quickeval import task_docs

    task_yaml = yaml.safe_load((tasks_dir / "merge3_toy_math_l2.yaml").read_text().split("\n", 2)[2])
    bundle_path = Path(task_yaml["metadata"]["merge3_bundle"])
    bundle = Bundle.load(bundle_path if bundle_path.is_absolute() else tasks_dir / bundle_path)
    items = task_docs(zoo, "toy_math_l2")[1]
    anchors = bundle.require_anchors().doc_ids
    seen = set(anchors)
    if config.evolve.keep is not None:
        seen |= set(held_out_ids(len(items), anchors, config.evolve.keep.holdout_items, config.evolve.keep.seed))
    return [item for i, item in enumerate(items) if i not in seen]


if __name__ == "__main__":
    main()
