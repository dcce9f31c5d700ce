"""`mergekit-evolve-lite CONFIG --out DIR`: evolve the numbers of a mergekit config, merged in memory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from merge3_plugin.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mergekit-evolve-lite",
        description=("Evolves the parameters named in the `evolve:` section of a mergekit config with a pymoo "
                     "algorithm, scoring each candidate on lm-eval tasks (merge3_* tasks give IRT-estimated "
                     "accuracy from a few anchor items). Candidates are merged into one model in memory; nothing "
                     "is written per candidate. Interrupted runs continue with --resume."),
        epilog="Outputs in --out: best.yaml (for mergekit-yaml), history.jsonl, summary.json, fitness.png, "
               "checkpoint.json, pareto/ (several objectives), selection.jsonl (evolve.select), best_model/ "
               "(--save-model). Every field of the evolve: section is described in the README "
               "(mergekit-evolve-lite) and checked before anything runs; --dry-run shows the genes.")
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
        from .config import load_config
        from .genes import space_for

        config = load_config(args.config)
        space = space_for(config)
        if args.dry_run:
            print(space.describe())
            return 0
        if args.out is None:
            raise UserError("--out DIR is required (where the run writes its history, best.yaml, ...)")
        if args.out.exists() and not args.out.is_dir():
            raise UserError(f"--out {args.out}: is a file")
        from .run import run

        summary = run(config, args.out, resume=args.resume, save_model=args.save_model, progress=not args.quiet)
        chosen = (f" (select stage: {summary['best_selected_objectives']})"
                  if "best_selected_objectives" in summary else "")
        print(f"best {summary['best_objectives']}{chosen} after {summary['evaluations']} evaluations "
              f"({summary['evaluated_this_run']} now, {summary['replayed_from_history']} from history); "
              f"{args.out / 'best.yaml'}")
        return 0
    except UserError as err:
        print(f"mergekit-evolve-lite: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mergekit-evolve-lite: interrupted; continue with --resume --out {args.out}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
