"""Evaluates zoo models with lm-eval exactly as a user would, writing real `--log_samples` output."""

from __future__ import annotations

from pathlib import Path

_TASK_MANAGERS: dict[str, object] = {}


def _task_manager(tasks_dir: Path):
    from lm_eval.tasks import TaskManager

    key = str(tasks_dir)
    if key not in _TASK_MANAGERS:
        # include_defaults=False: the built-in index costs ~20 s per process and is not needed here
        _TASK_MANAGERS[key] = TaskManager(include_path=key, include_defaults=False)
    return _TASK_MANAGERS[key]


def evaluate_model(
    name: str, model_dir: Path, tasks_dir: Path, task_names: list[str], out_dir: Path, batch_size: int = 64
) -> dict[str, dict]:
    """Runs lm-eval on one model; writes out_dir/<name>/samples_<task>_<date>.jsonl and results.

    Returns {task: {metric: value}}.
    """
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    from merge3_lm_eval_tasks.compat import cache_env_info

    torch.set_num_threads(1)
    cache_env_info()  # about 1 s per results file otherwise
    tracker = EvaluationTracker(output_path=str(out_dir))
    results = simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model_dir), "dtype": "float32", "device": "cpu"},
        tasks=task_names,
        batch_size=batch_size,
        log_samples=True,
        task_manager=_task_manager(tasks_dir),
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
