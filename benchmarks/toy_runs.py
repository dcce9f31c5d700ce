"""What the search benchmarks on the toy world share: merge3 tasks with rungs, evolve configs written and
run (a finished run reused, an interrupted one resumed), and the judge of a merge's true accuracy on a
task's held-out test items (the test split without any anchor: no search sees them)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import yaml


def prepare_tasks(zoo, preset: str, out: Path, anchors: int, rungs: list[int]) -> Path:
    """merge3 tasks of every toy task with `anchors` anchors and `rungs`, plus `<task>_val` (the plain
    task on its validation split) for every toy task; fitted once into `out`."""
    from merge3_zoo.toy_tasks import regenerate

    tasks = out / f"tasks-{anchors}-{'-'.join(map(str, rungs))}"
    if not all((tasks / f"merge3_{t['name']}.yaml").exists() for t in zoo.tasks):
        regenerate(tasks, size=anchors, preset=preset, rungs=rungs)
    for task in zoo.tasks:
        name = task["name"]
        (tasks / f"{name}_val.yaml").write_text(yaml.safe_dump(
            {"include": str(zoo.tasks_dir / f"{name}.yaml"), "task": f"{name}_val", "tag": [],
             "test_split": "validation"}, sort_keys=False))
    return tasks


def anchors_of(tasks: Path, task: str) -> set[int]:
    from merge3_plugin.bundle import Bundle

    return set(Bundle.load(tasks / "bundles" / f"{task}.json").anchors.doc_ids)


def ta_merge(zoo, weights=(0.5, 0.5), method: str = "task_arithmetic") -> dict:
    models = zoo.root / "models"
    return {"merge_method": method, "base_model": str(models / "base"),
            "models": [{"model": str(models / "expert-math"), "parameters": {"weight": weights[0]}},
                       {"model": str(models / "expert-lang"), "parameters": {"weight": weights[1]}}],
            "dtype": "float32"}


def write_config(path: Path, merge: dict, tasks: Path, evolve: dict) -> Path:
    config = {**merge, "evolve": {"include_path": [str(tasks)], "include_defaults": False, **evolve}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def evolve(config: Path, run_dir: Path) -> dict:
    """`mergekit-evolve-lite config --out run_dir --save-model`; its summary.json (a finished run is not run
    again). The best merge is judged from run_dir/best_model, as mergekit would build it from best.yaml."""
    summary = run_dir / "summary.json"
    if not summary.exists():
        command = [sys.executable, "-m", "mergekit_ext.cli", str(config), "--out", str(run_dir), "--quiet",
                   "--save-model"]
        if (run_dir / "history.jsonl").exists():
            command.append("--resume")
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{config}: mergekit-evolve-lite failed ({done.returncode}):\n{done.stderr[-2000:]}")
        print(f"  {run_dir.name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return json.loads(summary.read_text())


def mean_se(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


class Judge:
    """True accuracy of a model (a folder, a live model, or a plain merge config merged in memory) on a
    toy task's test items that are not `anchors`."""

    def __init__(self, zoo, task: str, anchors: set[int], split: str = "test"):
        from merge3_zoo.quickeval import task_docs

        docs, items = task_docs(zoo, task, split)
        kept = [i for i in range(len(items)) if i not in anchors]
        self.docs, self.items = [docs[i] for i in kept], [items[i] for i in kept]
        self.size = len(kept)
        self.zoo = zoo

    def merge(self, config: dict) -> float:
        """A plain mergekit config (one merge method over a base), merged in memory."""
        import torch
        from transformers import AutoModelForCausalLM

        from mergekit_ext.merging.inmemory import InMemoryMerger

        merge = {k: v for k, v in config.items() if k != "evolve"}
        model = AutoModelForCausalLM.from_pretrained(merge["base_model"], dtype=torch.float32)
        InMemoryMerger(merge).merge_into(model, merge)
        return self.model(model)

    def model(self, model) -> float:
        from merge3_zoo.quickeval import CharCodec, exact_match, multiple_choice

        if isinstance(model, (str, Path)):
            import torch
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
        codec = CharCodec()
        if "choices" in self.docs[0]:
            scores = multiple_choice(model, codec, self.items, [d["choices"] for d in self.docs],
                                     [d["label"] for d in self.docs])
        else:
            scores = exact_match(model, codec, self.items)
        return sum(scores) / len(scores)
