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


def _tasks_path(args: argparse.Namespace) -> int:
    from .task_files import shipped_tasks_dir, user_tasks_dir

    from .task_files import configs_dir

    print(user_tasks_dir() if args.user else configs_dir() if args.configs else shipped_tasks_dir())
    return 0


def _tasks_check(args: argparse.Namespace) -> int:
    from .task_files import check_tasks

    names = check_tasks(args.paths)
    print(f"{len(names)} merge3 task(s) valid: {', '.join(names)}")
    return 0


def _tasks_build(args: argparse.Namespace) -> int:
    from .task_files import build_task, user_tasks_dir

    out = build_task(args.bundle, args.out or user_tasks_dir(), base_yaml=args.base_yaml, base_task=args.base_task,
                     name=args.name, endpoint_samples=args.endpoint_samples, force=args.force)
    print(f"wrote {out}")
    print(f"run: lm_eval --include_path {out.parent} --tasks {out.stem} --model hf --model_args pretrained=...")
    return 0


def _tasks_hook(args: argparse.Namespace) -> int:
    import os
    import sys

    from .task_files import hook_install, hook_remove, hook_target

    if args.action == "install":
        print(f"installed {hook_install()}: a plain `lm_eval --tasks 'merge3_*'` now finds merge3 tasks")
    elif args.action == "remove":
        removed = hook_remove()
        print(f"removed {removed}" if removed else f"no hook at {hook_target()}")
    else:
        off = os.environ.get("MERGE3_LM_EVAL_HOOK", "1").lower() in ("0", "false", "no", "off")
        active = any(type(f).__name__ == "Merge3LmEvalHook" for f in sys.meta_path)
        print(f"hook file: {hook_target()} ({'present' if hook_target().exists() else 'absent'}); "
              f"active in this interpreter: {'yes' if active else 'no'}"
              + ("; turned off by MERGE3_LM_EVAL_HOOK" if off else ""))
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
    build.add_argument("--preset", default="default", help="micro (what the tests use, ~5 min), default (~8 min) or compose (world v2 candidate of issue #10, 8 layers, ~20 min); default: default")
    build.add_argument(
        "--out", type=Path, default=None,
        help="where to write the zoo (default: ~/.cache/merge3/zoo/<recipe hash>, or $MERGE3_CACHE/zoo/...)",
    )
    build.add_argument("--seed", type=int, default=0, help="seed of everything random in the recipe (default 0)")
    build.add_argument("--workers", type=int, default=None, help="parallel worker processes (default: CPU cores, at most 4)")
    build.add_argument("--force", action="store_true", help="rebuild even if a finished build is cached (never deletes --out)")
    build.set_defaults(func=_zoo_build)
    path = zoo_sub.add_parser("path", help="print the folder of a built zoo (for scripts: Z=$(merge3 zoo path))")
    path.add_argument("--preset", default="default", help="micro, default or compose (default: default)")
    path.add_argument("--seed", type=int, default=0, help="the seed it was built with (default 0)")
    path.set_defaults(func=_zoo_path)

    from .irt_commands import add_parsers

    add_parsers(sub)

    tasks = sub.add_parser("tasks", help="merge3 tasks for lm-eval: where they are, and new ones from your bundles")
    tasks_sub = tasks.add_subparsers(dest="tasks_command", metavar="TASKS_COMMAND")
    tpath = tasks_sub.add_parser("path", help="print the folder of the shipped merge3 tasks (for lm_eval --include_path)")
    tpath.add_argument("--user", action="store_true",
                       help="print the user task folder instead ($MERGE3_TASKS_PATH or ~/.cache/merge3/tasks)")
    tpath.add_argument("--configs", action="store_true",
                       help="print the folder of ready configs for popular benchmarks (random anchors until you fit)")
    tpath.set_defaults(func=_tasks_path)
    tcheck = tasks_sub.add_parser("check", help="validate merge3 task YAMLs offline (shape, bundle, base task exists)")
    tcheck.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="YAML files or folders")
    tcheck.set_defaults(func=_tasks_check)
    tbuild = tasks_sub.add_parser(
        "build", help="write a merge3 task YAML for a bundle with anchors",
        description=("Writes <out>/merge3_<task>.yaml: the base task (its prompt, few-shot pool, filters and metrics) "
                     "restricted to the bundle's anchors, reporting the IRT estimates as extra metrics "
                     "(e.g. acc_gpirt). Default folder: the user task folder, found by lm-eval without flags."))
    tbuild.add_argument("--bundle", type=Path, required=True, help="a bundle with anchors (merge3 extract)")
    tbuild.add_argument("--base-yaml", type=Path, default=None, help="the base task's lm-eval YAML")
    tbuild.add_argument("--base-task", default=None, help="or the name of a built-in lm-eval task")
    tbuild.add_argument("--name", default=None, help="task name (default merge3_<base task>)")
    tbuild.add_argument("--endpoint-samples", nargs="*", type=Path, default=None, metavar="PATH",
                        help="lm-eval logs of the endpoints of the merges you will evaluate (adds mp-IRT, gmp-IRT)")
    tbuild.add_argument("--out", type=Path, default=None, help="folder to write into (default: the user task folder)")
    tbuild.add_argument("--force", action="store_true", help="replace an existing YAML of that name")
    tbuild.set_defaults(func=_tasks_build)
    thook = tasks_sub.add_parser(
        "hook", help="the start-up hook that lets a plain `lm_eval --tasks 'merge3_*'` find merge3 tasks",
        description=("A wheel install ships merge3-lm-eval.pth, which wraps lm-eval's TaskManager lazily (only when "
                     "lm-eval is imported) to add the shipped tasks and the user task folder. Editable installs "
                     "cannot ship .pth files: run `merge3 tasks hook install` once. MERGE3_LM_EVAL_HOOK=0 turns it off."))
    thook.add_argument("action", choices=("install", "remove", "status"), nargs="?", default="status")
    thook.set_defaults(func=_tasks_hook)

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
