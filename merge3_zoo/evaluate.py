"""Evaluates zoo models with lm-eval exactly as a user would, writing real `--log_samples` output
(through the lm-eval room's one door, merge3_lm_eval_tasks.api)."""

from __future__ import annotations

from pathlib import Path

from merge3_lm_eval_tasks import api as lm_eval_api


def evaluate_model(
    name: str, model_dir: Path, tasks_dir: Path, task_names: list[str], out_dir: Path, batch_size: int = 64
) -> dict[str, dict]:
    """Runs lm-eval on one model; writes out_dir/<name>/samples_<task>_<date>.jsonl and results.

    Returns {task: {metric: value}}.
    """
    import torch

    torch.set_num_threads(1)
    return lm_eval_api.evaluate_and_log(name, model_dir, tasks_dir, task_names, out_dir, batch_size)
