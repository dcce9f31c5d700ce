"""The lm-eval room's one door: everything the evolve room and the zoo need from lm-eval and from
merge3's tasks. Nothing outside this room imports lm_eval or this room's other modules
(tests/test_architecture.py checks), so an lm-eval upgrade is met here and in compat.py.

lm-eval and the task classes (which subclass lm-eval's) are imported inside the functions: importing
lm-eval costs seconds, and `mergekit-evolve-lite --help` or a config error should not wait for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .compat import cache_env_info, load_tasks, load_yaml, seed_fewshot
from .errors import Merge3ConfigError
from .task_files import CLASS_REF, shipped_tasks_dir

__all__ = ["CLASS_REF", "Merge3ConfigError", "anchor_rungs", "build_tasks", "evaluate_and_log", "evaluate_tasks",
           "held_out_ids", "is_merge3_task", "measuring_task", "shipped_tasks_dir", "split_bundle", "split_task",
           "task_config", "task_manager", "wrap_live_model"]

_PACKAGE = __name__.rsplit(".", 1)[0]  # merge3_lm_eval_tasks


def task_manager(include_path: str | list[str] | None = None, include_defaults: bool = True):
    """lm-eval's task index: the given folders, lm-eval's own tasks unless include_defaults is false,
    and (through the start-up hook) merge3's."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path or None, include_defaults=include_defaults)


def task_config(manager, name: str) -> dict | None:
    """The YAML config of a task by name, as lm-eval's index knows it (None: no such task file)."""
    entry = manager.task_index.get(name)
    if entry is None or getattr(entry, "yaml_path", None) is None:
        return None
    return load_yaml(entry.yaml_path, resolve_func=True)


def is_merge3_task(raw: dict) -> bool:
    """A task config of one of merge3's task classes (anchors and a bundle), not a plain lm-eval task."""
    return _PACKAGE in str(raw.get("class", ""))


def _class_config(raw: dict) -> dict:
    return {k: v for k, v in raw.items() if k not in ("class", "tag", "group")}


def build_tasks(manager, raw: dict, held_out: dict | None = None) -> dict:
    """lm-eval's task dict for one task config, built once for many evaluations. `held_out`
    ({items, seed}): the merge3 task's documents outside its anchors instead (held_out.py)."""
    if held_out is not None:
        from .held_out import HeldOutTask

        cfg = _class_config(raw)
        cfg["metadata"] = {**(cfg.get("metadata") or {}), "merge3_held_out": dict(held_out)}
        return load_tasks(manager, [HeldOutTask(config=cfg)])
    if "class" in raw:
        return load_tasks(manager, [raw["class"](config=_class_config(raw))])
    return load_tasks(manager, [raw["task"]])


def measuring_task(manager, raw: dict):
    """A merge3 task without endpoint abilities, and its task dict: what measures the endpoints'
    abilities on the anchors (`.bundle`, `.anchor_key(doc)`) before a search."""
    from .task import Merge3Task

    task = Merge3Task(config=_class_config(raw))
    return task, load_tasks(manager, [task])


def split_task(manager, raw: dict):
    """A merge3 task over every document of its split (split_task.py) and its task dict: what an adaptive
    test asks a few documents of at a time (`evaluate_tasks(..., samples=...)`)."""
    from .split_task import SplitTask

    task = SplitTask(config=_class_config(raw))
    return task, load_tasks(manager, [task])


def split_bundle(name: str, raw: dict, graded: bool = False):
    """The bundle of a merge3 task whose whole split an adaptive test can ask, checked without loading any
    dataset; Merge3ConfigError when the task has no bundle whose items map to documents, or (`graded`)
    when it is no multiple-choice task with a graded channel."""
    from .split_task import check_split_bundle
    from .task import base_config, load_bundle, random_anchors, with_tinybenchmarks

    metadata = with_tinybenchmarks(name, dict(raw.get("metadata") or {}))
    bundle = None if random_anchors(name, metadata) else load_bundle(name, metadata)
    check_split_bundle(name, bundle)
    if graded:
        kind = base_config(name, metadata).get("output_type", "generate_until")
        if kind != "multiple_choice":
            raise Merge3ConfigError(f"{name}: graded responses are the probability of the right choice, and this "
                                    f"task's base is {kind}, not multiple_choice; drop graded (right/wrong is used)")
        if bundle.graded is None:
            raise Merge3ConfigError(f"{name}: its bundle has no graded responses; refit it with `merge3 fit --graded` "
                                    "(then `merge3 extract`), or drop graded")
    return bundle


def held_out_ids(n_docs: int, anchor_ids, items: int, seed: int) -> list[int]:
    """The documents a held-out task scores: a seeded sample of those outside the anchors (held_out.py)."""
    from .held_out import held_out_ids as ids

    return ids(n_docs, anchor_ids, items, seed)


def anchor_rungs(name: str, raw: dict) -> list[int]:
    """The anchor rungs of a merge3 task's bundle, smallest first, then all of its anchors
    ([] when the bundle has no rungs); Merge3ConfigError when the bundle cannot load."""
    from .task import load_bundle

    anchors = load_bundle(name, raw.get("metadata") or {}).anchors
    if not anchors.rungs:
        return []
    return [rung.size for rung in anchors.rungs] + [anchors.size]


def wrap_live_model(model, tokenizer, batch_size: int | str, device: str, **extra: Any):
    """lm-eval's HF model around a model already in memory (the live merge)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device, **extra)


def evaluate_tasks(lm, task_dict: dict, limit: int | None = None, log_samples: bool = False,
                   samples: dict[str, list[int]] | None = None) -> dict:
    """lm-eval's `evaluate` on prebuilt tasks, quietly (no index, no environment report), each task's
    few-shot draws seeded as `lm_eval` seeds them. `samples`:
    {task name: document positions}, only those documents (lm-eval's own selection, 0.4.9+)."""
    from lm_eval.evaluator import evaluate

    chosen = {} if samples is None else {"samples": samples}  # lm-eval before 0.4.9 has no such argument
    seed_fewshot(task_dict)  # the same shots for every candidate, and the ones `lm_eval` would draw
    return evaluate(lm, task_dict, limit=limit, log_samples=log_samples, verbosity="ERROR", **chosen)


_MANAGERS: dict[str, object] = {}


def evaluate_and_log(name: str, model_dir: Path, tasks_dir: Path, task_names: list[str], out_dir: Path,
                     batch_size: int = 64) -> dict[str, dict]:
    """lm-eval on a saved model exactly as a user runs it, writing real `--log_samples` output to
    out_dir/<name>/ (results and samples_<task>_<date>.jsonl). Returns {task: {metric: value}}."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    key = str(tasks_dir)
    if key not in _MANAGERS:  # include_defaults=False: lm-eval's own index costs ~20 s per process
        _MANAGERS[key] = task_manager(key, include_defaults=False)
    cache_env_info()  # about 1 s per results file otherwise
    tracker = EvaluationTracker(output_path=str(out_dir))
    results = simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model_dir), "dtype": "float32", "device": "cpu"},
        tasks=task_names,
        batch_size=batch_size,
        log_samples=True,
        task_manager=_MANAGERS[key],
        evaluation_tracker=tracker,
        verbosity="ERROR",
        bootstrap_iters=0,
    )
    samples = results.pop("samples")
    # lm-eval names the folder after the sanitized model path; one folder per zoo model reads better
    tracker.general_config_tracker.model_name_sanitized = name
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in task_names:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    return {task: dict(results["results"][task]) for task in task_names}
