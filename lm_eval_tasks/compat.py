"""Every use of a private, deprecated or copied lm-eval API, in one place.

lm-eval (checked on 0.4.13) has no public way to read a task YAML with its includes resolved, to
compute the `doc_hash` its sample logs carry, to keep its environment report from being collected for
every results file, or to seed a task's few-shot draws as `simple_evaluate` does. Each is one small
function here; `tests/lm_eval/test_compat.py` checks each contract on the installed version, so an
upgrade that breaks one fails there, loudly.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any


def load_yaml(path: Path | str, resolve_func: bool = True) -> dict:
    """A task YAML as lm-eval reads it: includes merged, `!function` tags resolved (or kept as text)."""
    from lm_eval.tasks._yaml_loader import load_yaml as _load_yaml

    return _load_yaml(path, resolve_func=resolve_func)


def doc_hash(doc: Any) -> str:
    """The `doc_hash` of a document in lm-eval's sample logs: sha256 of its indented JSON (the recipe
    of lm_eval/evaluator.py, which exposes no function for it)."""
    from lm_eval.utils import handle_non_serializable, hash_string

    return hash_string(json.dumps(doc, indent=2, default=handle_non_serializable, ensure_ascii=False))


def load_tasks(manager, specs: list) -> dict:
    """The task dict `lm_eval.evaluator.evaluate` takes, for task names, configs or Task objects:
    `TaskManager.load()` where it exists (0.4.10+), else the older, now deprecated `get_task_dict`."""
    if hasattr(manager, "load"):
        return manager.load(specs)
    from lm_eval.tasks import get_task_dict

    return get_task_dict(specs, manager)


def seed_fewshot(task_dict: dict) -> None:
    """Give every task of `task_dict` the few-shot seed `lm_eval` (the CLI, `simple_evaluate`) gives it,
    before each `evaluate`: a bare `evaluate` leaves the sampler unseeded, so a k-shot task would draw
    other shots for every candidate (noise in the fitness, another result on --resume) and other shots
    than `lm_eval --tasks ...` shows for the same model."""
    from lm_eval.api.task import Task

    try:
        from lm_eval.defaults import DEFAULT_OTHER_SEED as seed
    except ImportError:  # before lm-eval had a defaults module: the same number, its --fewshot_random_seed
        seed = 1234
    stack = [task_dict]
    while stack:  # TaskManager.load(): {"tasks": {name: Task}, "groups": ...}; get_task_dict(): nested dicts
        node = stack.pop()
        for value in node.values():
            if isinstance(value, Task):
                value.set_fewshot_seed(seed=seed)
            elif isinstance(value, dict):
                stack.append(value)


def cache_env_info() -> None:
    """lm-eval collects torch's environment report (about 1 s) for every results file; within one
    process it cannot change, so collect it once and reuse it (patches `lm_eval.evaluator`)."""
    import lm_eval.evaluator as evaluator

    if getattr(evaluator.add_env_info, "merge3_cached", False):
        return
    original, cache = evaluator.add_env_info, {}

    def add_env_info(storage: dict) -> None:
        if not cache:
            original(cache)
        storage.update(cache)

    add_env_info.merge3_cached = True
    evaluator.add_env_info = add_env_info


# The tag every merge3 task carries (`lm_eval --tasks merge3` runs them all).
MERGE3_TAG = "merge3"


class _SharedTagNotice:
    """A logging filter: drops lm-eval's "Task 'merge3' from None overrides existing task from None",
    which its task index logs whenever two folders (the shipped tasks and the user's) both hold tasks
    tagged `merge3`. Tags from several folders merge as intended; nothing is overridden."""

    def filter(self, record) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Task '%s' from %s overrides") and record.args
                    and record.args[0] == MERGE3_TAG)


def quiet_shared_tag_notice() -> None:
    """Install the filter on the logger of lm-eval's task index (`lm_eval.tasks._index`), once."""
    index_log = logging.getLogger("lm_eval.tasks._index")
    if not any(isinstance(f, _SharedTagNotice) for f in index_log.filters):
        index_log.addFilter(_SharedTagNotice())
