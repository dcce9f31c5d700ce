"""`mergekit-evolve-lite CONFIG --out DIR`: evolve the numbers of a mergekit config, merged in memory."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from merge3_plugin.console import libraries_to_log
from merge3_plugin.errors import UserError

from .config import load_config
from .scoring.failures import GenerationFailed
from .search import claim_out
from .spaces.genes import space_for

EPILOG = """\
the evolve: section (add it to the mergekit config you have; docs/evolve.md explains each part):
  evolve:
    search: {weight: [0.0, 1.0], density: [0.1, 1.0]}  # parameter -> range (the method's numbers)
    granularity: global              # global | N layer groups (a gradient) | per_layer
    filters: [self_attn, mlp]        # separate genes per parameter set, plus the rest
    fitness:                         # several: weighted sum, or objectives: multi
      - {task: merge3_arc_challenge, metric: acc, estimator: anchor}  # gpirt/gmpirt with a fitted bundle
    objectives: single               # single | multi (Pareto front)
    algorithm: {name: ga, pop_size: 16}  # `merge3 plugins` lists algorithms; options go to pymoo
    budget: {evaluations: 200}       # and/or generations, time (seconds), items (documents evaluated)
    seed: 0                          # also seeds dare_*/della masks (mergekit-yaml --random-seed)
    eval: {device: cuda, batch_size: 32}  # lm-eval HF model arguments; backend: ray, workers: N to
                                     # score a generation in parallel (pip install 'merge3[ray]')
    select: {top: 8, fitness: [{task: arc_challenge, metric: acc, estimator: null}]}  # optional
    init: config                     # first generation: config (your values, each model alone, the rest
                                     # within trust_radius: 0.1 of your config) | warm | uniform (pymoo's)
    keep_config: true                # your config is scored first and handed back unless an evolved
                                     # merge beats it on held-out items by > 2 s.e.; or {holdout_items:
                                     # 200, challengers: 4, seed: 0}; false: the search's best as scored
    space: params                    # params (the numbers above) | depth (stack whole layers; no search)
                                     # | lfs (a method per layer group: a mergekit-multi recipe; no search)
  Unknown fields, misspelt parameters and algorithm options, out-of-range values and missing models
  are refused before anything runs, naming the file and field (exit 2).

outputs in --out: best.yaml (for mergekit-yaml; with space lfs a recipe for mergekit-multi, the
  command in its header), history.jsonl, summary.json, fitness.png, checkpoint.json (every
  generation), pareto/ + pareto.png (several objectives), selection.jsonl (select stage),
  your_config.jsonl + held_out.jsonl (your config's score, and the duel on held-out items),
  best_model/ (--save-model), failures.log (tracebacks of failed candidates), evolve.log (what
  lm-eval, transformers and mergekit print: their progress bars and warnings).
  Several objectives: best.yaml is the Pareto point with the highest mean (pareto/point000.yaml), and
  the front's hypervolume after each generation is in history.jsonl, checkpoint.json, summary.json.

a candidate whose merge raises, whose weights or logits are NaN/Inf, or whose evaluation runs out of
  memory is recorded as failed (with its reason) and the run goes on; when most of a generation
  fails, the run stops with a report (exit 3); --resume evaluates failed candidates again."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mergekit-evolve-lite",
        description=("Evolves the parameters named in the `evolve:` section of a mergekit config with a pymoo "
                     "algorithm, scoring each candidate on lm-eval tasks (merge3_* tasks give IRT-estimated "
                     "accuracy from a few anchor items). Candidates are merged into one model in memory; nothing "
                     "is written per candidate. Interrupted runs continue with --resume."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG)
    parser.add_argument("config", type=Path, help="a mergekit YAML with an evolve: section")
    parser.add_argument("--out", type=Path, default=None, help="output folder (required unless --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="validate, print the genes and their ranges, stop")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out (same result as unbroken)")
    parser.add_argument("--save-model", action="store_true", help="also write the best merged model")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        space = space_for(config)
        if not args.dry_run:
            if args.out is None:
                raise UserError("--out DIR is required (where the run writes its history, best.yaml, ...)")
            if args.out.exists() and not args.out.is_dir():
                raise UserError(f"--out {args.out}: is a file")

            claim_out(args.out, config, args.resume)  # writable, and not another config's run
        from .scoring.fitness import check_fitness_tasks, task_manager

        manager = task_manager(config)  # the run's own index, built once: task names checked before models load
        check_fitness_tasks(config, manager)
        if args.dry_run:
            print(space.describe())
            return 0

        from .run import run

        args.out.mkdir(parents=True, exist_ok=True)  # claimed above: as the run itself would make it
        with libraries_to_log(args.out / "evolve.log") as console:  # one bar on the console
            ours = logging.StreamHandler(console)  # merge3's own warnings stay on the console
            ours.setLevel(logging.WARNING)
            logging.getLogger("mergekit_ext").addHandler(ours)
            try:
                summary = run(config, args.out, resume=args.resume, save_model=args.save_model,
                              progress=not args.quiet, manager=manager, console=console)
            finally:
                logging.getLogger("mergekit_ext").removeHandler(ours)
        print(closing_line(summary))
        print(f"after {summary['candidates_this_run']} candidates "
              f"({summary['evaluated_this_run']} evaluated now, {summary['replayed_from_history']} from an earlier "
              f"run's history, {summary['repeated_this_run']} repeats answered from memory); "
              f"{summary['evaluations']} distinct in history.jsonl, {items_line(summary['items_evaluated'])}; "
              f"{args.out / 'best.yaml'}")
        return 0
    except UserError as err:
        print(f"mergekit-evolve-lite: error: {err.as_flag()}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a folder that became read-only: the file, not a traceback
        where = err.filename or args.out
        print(f"mergekit-evolve-lite: error: {where}: {err.strerror or err}; what was written before is intact "
              f"(continue with --resume --out {args.out})", file=sys.stderr)
        return 2
    except GenerationFailed as err:
        print(f"mergekit-evolve-lite: stopped: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"mergekit-evolve-lite: interrupted; continue with --resume --out {args.out}", file=sys.stderr)
        return 130


def items_line(items: dict) -> str:
    """The run's cost in documents evaluated, by what they were spent on."""
    parts = [f"{items[k]} {k.replace('_', ' ')}" for k in ("candidates", "your_config", "select", "held_out", "endpoints")
             if items.get(k)]
    return f"{items['total']} items evaluated" + (f" ({', '.join(parts)})" if len(parts) > 1 else "")


def closing_line(summary: dict) -> str:
    """What best.yaml scored, each objective named; with several, how it was chosen and the hypervolume."""
    def named(values, names) -> str:
        return ", ".join(f"{name} {value:.4f}" for name, value in zip(names, values))

    line = f"best.yaml: {named(summary['best_objectives'], summary['objective_names'])}"
    if "best_selected_objectives" in summary:
        line += (f"; re-scored by the select stage: "
                 f"{named(summary['best_selected_objectives'], summary['select_objective_names'])}")
    if "best_rule" in summary:
        line += (f" ({summary['best_rule']}, of {summary['pareto_points']} in pareto/; "
                 f"hypervolume {summary['hypervolume']:.4f})")
    duel = summary.get("never_worse")
    if duel:
        yours = duel.get("your_config_search")
        if summary["best_is_your_config"]:
            line = f"best.yaml is your config ({named(yours, summary['objective_names'])}): {duel['why']}"
        elif "difference" in duel:
            line += (f"\nit beats your config by {duel['difference']:+.4f} +- {duel['se']:.4f} on "
                     f"{duel['held_out_items']} held-out items ({duel['challenger_held_out']:.4f} vs "
                     f"{duel['your_config_held_out']:.4f})")
        else:
            line += f"\nchosen over your config: {duel['why']}"
    return line


if __name__ == "__main__":
    sys.exit(main())
