"""merge3 task YAMLs for lm-eval: where they live and how a user's bundle becomes one."""

from __future__ import annotations

import os
import re
import sysconfig
from pathlib import Path

import yaml

import merge3_lm_eval_tasks
from merge3_plugin.bundle import Bundle
from merge3_plugin.errors import UserError
from merge3_plugin.files import write_atomic
from merge3_plugin.plugins import unknown_name

from .compat import load_yaml

CLASS_REF = "merge3_lm_eval_tasks.task.Merge3Task"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def shipped_tasks_dir() -> Path:
    return Path(__file__).resolve().parent / "tasks"


def configs_dir() -> Path:
    return Path(__file__).resolve().parent / "configs"


def check_tasks(paths: list[Path]) -> list[str]:
    """Validate merge3 task YAMLs (files or folders) offline; returns the task names, raises on the first bad one."""
    from lm_eval.tasks import TaskManager

    from .task import Merge3ConfigError, check_task_yaml

    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*.yaml")))]
    if not files:
        raise UserError(f"no task YAML under {', '.join(map(str, paths))}")
    known = set(TaskManager(include_defaults=True).all_tasks)  # lm-eval's index, no dataset loaded
    shipped = shipped_task_names()
    names: dict[str, Path] = {}
    for f in files:
        try:
            name = check_task_yaml(f, known)["task"]
        except Merge3ConfigError as err:
            raise UserError(str(err)) from None
        if name in names:
            raise UserError(f"{f}: field 'task': {name!r} is also the name of {names[name]}; lm-eval would keep "
                            "only one of them")
        if name in shipped and shipped[name].resolve() != f.resolve():
            raise UserError(f"{f}: field 'task': {name!r} is the name of a task merge3 ships ({shipped[name]}); "
                            "wherever the start-up hook is active one would silently replace the other: rename it")
        names[name] = f
    return list(names)


def shipped_task_names() -> dict[str, Path]:
    """Task name -> file, for every task YAML merge3 ships (the toy tasks and the ready configs)."""
    found = {}
    for folder in (shipped_tasks_dir(), configs_dir()):
        for f in sorted(folder.rglob("*.yaml")):
            try:
                data = yaml.load(f.read_text(encoding="utf-8"), Loader=_IgnoreTags)
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and isinstance(data.get("task"), str):
                found[data["task"]] = f
    return found


class _IgnoreTags(yaml.SafeLoader):
    """A safe loader that reads lm-eval's `!function` tags as plain strings (we only want names here)."""


_IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)


def user_tasks_dir() -> Path:
    """$MERGE3_TASKS_PATH, or ~/.cache/merge3/tasks: merge3 tasks found without --include_path."""
    env = os.environ.get("MERGE3_TASKS_PATH")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "merge3" / "tasks"


def task_yaml(name: str, bundle_path: Path, base_yaml: Path | None, base_task: str | None,
              endpoint_samples: list[Path] | None = None, num_fewshot: int | None = None) -> str:
    metadata: dict = {"merge3_bundle": str(bundle_path)}
    if base_yaml is not None:
        metadata["merge3_base_yaml"] = str(base_yaml)
    else:
        metadata["merge3_base_task"] = base_task
    if endpoint_samples:
        metadata["merge3_endpoint_samples"] = [str(p) for p in endpoint_samples]
    shots = {} if num_fewshot is None else {"num_fewshot": int(num_fewshot)}  # else the base task's
    body = yaml.safe_dump({"task": name, "tag": ["merge3"], **shots, "metadata": metadata}, sort_keys=False)
    # lm-eval resolves `!function` tags; safe_dump cannot write one, so the class line is added as text
    return f"# written by `merge3 tasks build`; see merge3_lm_eval_tasks/task.py\nclass: !function {CLASS_REF}\n{body}"


def build_task(bundle_path: Path, out_dir: Path, base_yaml: Path | None = None, base_task: str | None = None,
               name: str | None = None, endpoint_samples: list[Path] | None = None, force: bool = False,
               known_tasks: set[str] | None = None, num_fewshot: int | None = None) -> Path:
    """A merge3 task YAML in `out_dir` for the bundle; `known_tasks`: lm-eval's task names, if the caller
    has them (else lm-eval's own index is built to check `base_task`, about 20 s)."""
    bundle_path = bundle_path.expanduser().resolve()
    bundle = Bundle.load(bundle_path)
    bundle.require_anchors(bundle_path)
    if (base_yaml is None) == (base_task is None):
        raise UserError("give exactly one of base_yaml (the base task's lm-eval YAML) and base_task (a built-in's name)")
    if num_fewshot is not None and int(num_fewshot) < 0:
        raise UserError("a number of shots, 0 or more", param="num_fewshot", value=num_fewshot)
    if base_yaml is not None:
        base_yaml = base_yaml.expanduser().resolve()
        if not base_yaml.is_file():
            raise UserError("no such file", param="base_yaml", value=base_yaml)
    name = name or f"merge3_{bundle.task}"
    if not _NAME.match(name) or not name.startswith("merge3_"):
        raise UserError("a task name starting with merge3_ (letters, digits, _ . -)", param="name", value=repr(name))
    shipped = shipped_task_names()
    if name in shipped:
        raise UserError(f"merge3 ships a task of this name ({shipped[name]}); wherever the start-up hook is active "
                        "one would silently replace the other: choose another --name", param="name", value=repr(name))
    if base_task is not None:
        from lm_eval.tasks import TaskManager

        known = known_tasks if known_tasks is not None else set(TaskManager(include_defaults=True).all_tasks)
        if base_task not in known:
            raise UserError(unknown_name("lm-eval task", base_task, known), param="base_task", value=None)
    out = out_dir.expanduser() / f"{name}.yaml"
    if out.exists() and not force:
        raise UserError(f"{out}: exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, task_yaml(name, bundle_path, base_yaml, base_task, endpoint_samples, num_fewshot))
    return out


def lock_anchors(task_yaml_path: Path, previous: str | None = None) -> str | None:
    """For a task on an imported (content-keyed) bundle: load the base task's documents and match the
    anchors now, writing the bundle's lock file. A refusal (anchors that match nothing) removes the YAML,
    or puts back `previous` (the text it replaced), and raises; a dataset that cannot be loaded here
    leaves matching to the first lm-eval run (a note)."""
    from .task import Merge3ConfigError, Merge3Task

    cfg = load_yaml(task_yaml_path, resolve_func=False)
    bundle = Bundle.load(Path(cfg["metadata"]["merge3_bundle"]))
    if not bundle.content_keyed:
        return None
    try:
        task = Merge3Task(config={k: cfg[k] for k in ("task", "metadata", "num_fewshot") if k in cfg})
        n = len(task.eval_docs)
    except Merge3ConfigError as err:
        if previous is None:
            task_yaml_path.unlink()
        else:
            write_atomic(task_yaml_path, previous)
        raise UserError(str(err)) from None
    except Exception as err:  # noqa: BLE001 (offline, no dataset: datasets raises many kinds)
        return (f"note: the anchors are not matched yet (the base task's documents could not be loaded here: "
                f"{type(err).__name__}); the first lm-eval run of {cfg['task']} matches and locks them")
    from merge3_plugin.anchor_lock import lock_path

    return f"matched the {n} anchors by content; locked in {lock_path(Path(cfg['metadata']['merge3_bundle']))}"


PTH_NAME = "merge3-lm-eval.pth"


def hook_target() -> Path:
    return Path(sysconfig.get_paths()["purelib"]) / PTH_NAME


def hook_install() -> Path:
    """Put the start-up hook where Python reads .pth files. A wheel install does this by itself; an
    editable install (`pip install -e .`) cannot ship a .pth file, so developers run this once."""
    target = hook_target()
    source = Path(__file__).resolve().parents[1] / "lm_eval_tasks" / PTH_NAME
    if not source.is_file():  # installed from a wheel: the package folder has it

        source = Path(merge3_lm_eval_tasks.__file__).resolve().parent / PTH_NAME
    try:
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot write {target}: {err.strerror}") from None
    return target


def hook_remove() -> Path | None:
    target = hook_target()
    if target.exists():
        target.unlink()
        return target
    return None
