"""The toy world's lm-eval tasks: local JSONL splits plus one declarative YAML per task."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import yaml

from .skills import N_LEVELS, Item, rev_distractors, sample

TAG = "toy_world"  # lets `lm_eval --tasks toy_world` run them all; no built-in uses it


@dataclass(frozen=True)
class TaskSpec:
    name: str
    skill: str
    output_type: str  # "generate_until" | "multiple_choice"

    @property
    def metric(self) -> str:
        return "exact_match" if self.output_type == "generate_until" else "acc"


TASKS = (
    TaskSpec("toy_math", "math", "generate_until"),
    TaskSpec("toy_lang", "lang", "generate_until"),
    TaskSpec("toy_rev", "rev", "multiple_choice"),
    TaskSpec("toy_math_l2", "math_l2", "generate_until"),
)
TASKS_BY_SKILL = {t.skill: t for t in TASKS}


def _unique_items(skill: str, rng: random.Random, n: int, seen: set[str]) -> list[Item]:
    """n items spread evenly over the difficulty levels, no prompt repeated across splits."""
    items: list[Item] = []
    for i in range(n):
        level = i % N_LEVELS
        for _ in range(200):
            item = sample(skill, rng, max_level=level)
            if item.level == level and item.prompt not in seen:
                break
            # the easiest levels have few distinct items: fall back to a harder one
            level = min(level + 1, N_LEVELS - 1)
        seen.add(item.prompt)
        items.append(item)
    return items


def _doc(spec: TaskSpec, item: Item, rng: random.Random) -> dict:
    doc = {"prompt": item.prompt, "answer": item.answer, "level": item.level}
    if spec.output_type == "multiple_choice":
        choices = [item.answer] + rev_distractors(rng, item)
        rng.shuffle(choices)
        doc["choices"] = choices
        doc["label"] = choices.index(item.answer)
    return doc


def _yaml(spec: TaskSpec, data_dir: Path) -> dict:
    files = {split: str((data_dir / f"{split}.jsonl").resolve()) for split in ("train", "validation", "test")}
    config = {
        "task": spec.name,
        "tag": [TAG],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": files},
        "training_split": "train",
        "validation_split": "validation",
        "test_split": "test",
        # Plain field names, not Jinja templates: lm-eval reads them straight from the document
        # (templates are re-rendered per document and dominate the cost of evaluating tiny models).
        "doc_to_text": "prompt",
        "target_delimiter": "",
        "metadata": {"version": 1.0},
    }
    if spec.output_type == "generate_until":
        config.update(
            output_type="generate_until",
            doc_to_target="answer",
            generation_kwargs={"until": ["\n"], "max_gen_toks": 20, "do_sample": False},
            metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        )
    else:
        config.update(
            output_type="multiple_choice",
            doc_to_choice="choices",
            doc_to_target="label",
            metric_list=[{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        )
    return config


def write_val_task(yaml_path: Path) -> None:
    """<task>_val.yaml beside <task>.yaml: the same task on its validation split, for a select stage's
    fitness (untagged: `--tasks toy_world` runs the test splits only). Zoos built before it existed get
    it when they are next opened (build.py)."""
    name = yaml_path.stem
    target = yaml_path.with_name(f"{name}_val.yaml")
    if not target.exists():
        target.write_text(yaml.safe_dump({"include": str(yaml_path.resolve()), "task": f"{name}_val", "tag": [],
                                          "test_split": "validation"}, sort_keys=False))


def write_tasks(root: Path, seed: int, n_test: int, n_val: int, n_train: int,
                dialect: dict[str, str] | None = None) -> dict[str, dict]:
    """Writes root/<task>/{train,validation,test}.jsonl, root/<task>.yaml and root/<task>_val.yaml (the
    validation split); returns manifest rows.
    `dialect` names another skill behind a task's own (a preset's, see recipe.Preset)."""
    rows = {}
    for index, spec in enumerate(TASKS):
        if dialect and spec.skill in dialect:
            spec = TaskSpec(spec.name, dialect[spec.skill], spec.output_type)
        rng = random.Random(f"{seed}/{spec.name}")
        seen: set[str] = set()
        splits = {
            "test": _unique_items(spec.skill, rng, n_test, seen),
            "validation": _unique_items(spec.skill, rng, n_val, seen),
            "train": _unique_items(spec.skill, rng, n_train, seen),
        }
        data_dir = root / spec.name
        data_dir.mkdir(parents=True, exist_ok=True)
        for split, items in splits.items():
            with open(data_dir / f"{split}.jsonl", "w", encoding="utf-8") as f:
                for item in items:
                    f.write(json.dumps(_doc(spec, item, rng)) + "\n")
        yaml_path = root / f"{spec.name}.yaml"
        yaml_path.write_text(yaml.safe_dump(_yaml(spec, data_dir), sort_keys=False))
        write_val_task(yaml_path)
        rows[spec.name] = {
            "name": spec.name,
            "skill": spec.skill,
            "yaml": str(yaml_path.resolve()),
            "output_type": spec.output_type,
            "metric": spec.metric,
            "n_items": len(splits["test"]),
        }
    return rows
