"""The `merge3` command line: one subcommand per job, user errors without tracebacks."""

from __future__ import annotations

import argparse
import sys

from .errors import UserError
from .irt_commands import add_parsers
from .plugins import KINDS, plugin_manager, registry


def _plugins(args: argparse.Namespace) -> int:
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

    add_parsers(sub)
    # `merge3 zoo` (the toy world) and `merge3 tasks` (the lm-eval room) are plugins: see hookspecs
    plugin_manager().hook.merge3_add_commands(subparsers=sub)

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
        print(f"merge3: error: {err.as_flag()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("merge3: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
