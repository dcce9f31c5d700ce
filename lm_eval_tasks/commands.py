"""`merge3 tasks ...`: merge3 task YAMLs for lm-eval (where they are, check, build, the start-up hook),
added to the `merge3` command line through the `merge3_add_commands` hook (entry point
`merge3_lm_eval_tasks`), so that the core never imports the lm-eval room."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from merge3_plugin.errors import UserError
from merge3_plugin.hookspecs import hookimpl


def _tasks_path(args: argparse.Namespace) -> int:
    from .task_files import configs_dir, shipped_tasks_dir, user_tasks_dir

    print(user_tasks_dir() if args.user else configs_dir() if args.configs else shipped_tasks_dir())
    return 0


def _tasks_check(args: argparse.Namespace) -> int:
    from .task_files import check_tasks

    names = check_tasks(args.paths)
    print(f"{len(names)} merge3 task(s) valid: {', '.join(names)}")
    return 0


def _tasks_build(args: argparse.Namespace) -> int:
    from .task_files import build_task, user_tasks_dir

    if (args.base_yaml is None) == (args.base_task is None):
        raise UserError("give the base task as --base-yaml PATH (its lm-eval YAML) or --base-task NAME (a built-in)")
    previous = None  # the YAML that --force replaces, put back if the anchors of an imported bundle are refused
    if args.force:
        from merge3_plugin.bundle import Bundle

        name = args.name or f"merge3_{Bundle.load(args.bundle.expanduser().resolve()).task}"
        target = (args.out or user_tasks_dir()).expanduser() / f"{name}.yaml"
        previous = target.read_text(encoding="utf-8") if target.is_file() else None
    out = build_task(args.bundle, args.out or user_tasks_dir(), base_yaml=args.base_yaml, base_task=args.base_task,
                     name=args.name, endpoint_samples=args.endpoint_samples, force=args.force,
                     num_fewshot=args.num_fewshot)
    from .task_files import lock_anchors

    # an imported bundle: its anchors matched by content now, if the dataset is at hand; a refusal puts back
    # the YAML that --force replaced (or removes the new one)
    note = lock_anchors(out, previous)
    print(f"wrote {out}")
    if note:
        print(note)
    print(f"run: lm_eval --include_path {out.parent} --tasks {out.stem} --model hf --model_args pretrained=...")
    return 0


def _tasks_hook(args: argparse.Namespace) -> int:
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


@hookimpl
def merge3_add_commands(subparsers: Any) -> None:
    tasks = subparsers.add_parser("tasks", help="merge3 tasks for lm-eval: where they are, and new ones from your bundles")
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
    tbuild.add_argument("--base-task", default=None, help="or the name of a built-in lm-eval task (checked against lm-eval's index)")
    tbuild.add_argument("--name", default=None, help="task name (default merge3_<bundle's task>); the name of a task merge3 ships is refused")
    tbuild.add_argument("--endpoint-samples", nargs="*", type=Path, default=None, metavar="PATH",
                        help="lm-eval logs of the endpoints of the merges you will evaluate (adds mp-IRT, gmp-IRT)")
    tbuild.add_argument("--num-fewshot", type=int, default=None, metavar="N",
                        help="run the task N-shot (default: the base task's shots); e.g. the leaderboard's shots that "
                             "an imported bundle's parameters assume, which lm-eval's --num_fewshot also sets per run")
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
