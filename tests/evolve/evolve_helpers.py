"""The shipped examples as test configs: their ZOO/ and TASKS placeholders filled in, as their headers say."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_config(name: str, zoo, tasks_dir: Path, out: Path, edits: dict[str, str] | None = None) -> Path:
    """Write examples/<name> with the zoo's paths and `tasks_dir` filled in (and `edits`: text -> text,
    each of which must occur) to out/<name>."""
    text = (EXAMPLES / name).read_text().replace("ZOO/", f"{zoo.root}/").replace("TASKS", str(tasks_dir))
    for old, new in (edits or {}).items():
        assert old in text, f"{name} no longer contains {old!r}"
        text = text.replace(old, new)
    path = out / name
    path.write_text(text)
    return path


def write_ta_config(path: Path, models: Path, tasks_dir: Path, evolve: dict, dtype: str = "float32",
                    eval_spec: dict | None = None) -> Path:
    """An evolve config around a task-arithmetic merge of a world's two experts over its base (weights
    0.5), searching their weights in [0, 1.5], on the merge3 tasks in `tasks_dir`; `evolve` adds to
    (or replaces in) its evolve section: fitness, algorithm, budget, select... These configs test the
    search's mechanics, so the never-worse duel is off (keep_config: false) unless `evolve` sets it."""
    import yaml

    config = {
        "merge_method": "task_arithmetic", "base_model": str(models / "base"),
        "models": [{"model": str(models / "expert-math"), "parameters": {"weight": 0.5}},
                   {"model": str(models / "expert-lang"), "parameters": {"weight": 0.5}}],
        "dtype": dtype,
        "evolve": {"search": {"weight": [0.0, 1.5]}, "seed": 0, "include_path": [str(tasks_dir)],
                   "include_defaults": False, "keep_config": False, **evolve},
    }
    if eval_spec:
        config["evolve"]["eval"] = eval_spec
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
