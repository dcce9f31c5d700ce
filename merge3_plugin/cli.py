"""The `merge3` command line: one subcommand per job, user errors without tracebacks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UserError


def _zoo_build(args: argparse.Namespace) -> int:
    from .zoo.build import build_zoo
    from .zoo.recipe import PRESETS

    if args.preset not in PRESETS:  # argparse choices would list them too, but name the flag
        raise UserError(f"--preset: unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    result = build_zoo(args.preset, out=args.out, seed=args.seed, workers=args.workers, force=args.force)
    print(result.summary())
    return 0


def _zoo_path(args: argparse.Namespace) -> int:
    from .zoo.build import cached_zoo_path

    print(cached_zoo_path(args.preset, args.seed))
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from .plugins import KINDS, plugin_manager, registry

    pm = plugin_manager()
    for kind in KINDS:
        names = sorted(registry(kind, pm))
        print(f"{kind:>13}: {', '.join(names) if names else '(none yet)'}")
    print("\nplugins loaded:", ", ".join(name for name, _ in pm.list_name_plugin()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="merge3",
        description="Cheap evolutionary model merging: extract anchor items, estimate accuracy with IRT, evolve merges.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    zoo = sub.add_parser("zoo", help="the built-in toy world of tiny models (build it, then use it)")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    build = zoo_sub.add_parser(
        "build",
        help="train, merge and evaluate the toy world (cached by a hash of its recipe)",
        description=(
            "Builds the toy world: a base model, one expert per skill, a population of models with a wide "
            "spread of abilities, lm-eval tasks for every skill, every model's lm-eval sample logs and a "
            "zoo.json manifest. The same preset and seed give the same weights, byte for byte; a finished "
            "build is reused from the cache. Ends with the table that shows merging matters in this world."
        ),
    )
    build.add_argument("--preset", default="default", help="micro (what the tests use, ~5 min) or default (~8 min); default: default")
    build.add_argument(
        "--out", type=Path, default=None,
        help="where to write the zoo (default: ~/.cache/merge3/zoo/<recipe hash>, or $MERGE3_CACHE/zoo/...)",
    )
    build.add_argument("--seed", type=int, default=0, help="seed of everything random in the recipe (default 0)")
    build.add_argument("--workers", type=int, default=None, help="parallel worker processes (default: CPU cores, at most 4)")
    build.add_argument("--force", action="store_true", help="rebuild even if a finished build is cached (never deletes --out)")
    build.set_defaults(func=_zoo_build)
    path = zoo_sub.add_parser("path", help="print the folder of a built zoo (for scripts: Z=$(merge3 zoo path))")
    path.add_argument("--preset", default="default", help="micro or default (default: default)")
    path.add_argument("--seed", type=int, default=0, help="the seed it was built with (default 0)")
    path.set_defaults(func=_zoo_path)

    from .irt_commands import add_parsers

    add_parsers(sub)

    plugins = sub.add_parser("plugins", help="list the registered plugins (built-in and third-party)")
    plugins.set_defaults(func=_plugins)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UserError as err:
        print(f"merge3: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("merge3: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
