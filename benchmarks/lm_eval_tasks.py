"""Benchmark: a merge3 task against its full base task, same model, same process, side by side.

    python benchmarks/lm_eval_tasks.py            # default toy world, shipped merge3_toy_* tasks

For each toy task: lm-eval wall time and number of requests of the full task (500 items) and of
merge3_<task> (the shipped 50 anchors), their ratio, and how far the merge3 estimate lands from the
full-task accuracy, on a few models (held-out ones: the shipped bundles were fit without them).
The hook's start-up cost is measured by benchmarks/lm_eval_hook.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = ("base-s700", "variant2", "ta-math0.75-rev0.75", "ta-lang1-rev0.5", "expert-lang-s300")


def main() -> None:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from merge3_lm_eval_tasks.task_files import shipped_tasks_dir
    from merge3_zoo.build import build_zoo

    zoo = build_zoo("default").zoo
    manager = TaskManager(include_path=[str(zoo.tasks_dir), str(shipped_tasks_dir())], include_defaults=False)
    print(f"{'task':<13}{'model':<22}{'full s':>8}{'m3 s':>7}{'speed-up':>9}{'requests':>10}"
          f"{'full acc':>9}{'gpirt':>7}{'|err|':>7}")
    totals = [0.0, 0.0]
    for task in [t["name"] for t in zoo.tasks]:
        metric = f"{zoo.tasks[[t['name'] for t in zoo.tasks].index(task)]['metric']},none"
        for model_name in MODELS:
            lm = HFLM(pretrained=str(zoo.model_path(model_name)), batch_size=32, device="cpu")
            timings, results = [], []
            for name in (task, f"merge3_{task}"):
                start = time.perf_counter()
                out = lm_eval.simple_evaluate(model=lm, tasks=[name], task_manager=manager, verbosity="ERROR")
                timings.append(time.perf_counter() - start)
                results.append(out["results"][name])
            full, m3 = results
            base_metric = metric.split(",")[0]
            est = m3[f"{base_metric}_gpirt,none"]
            totals[0] += timings[0]
            totals[1] += timings[1]
            print(f"{task:<13}{model_name:<22}{timings[0]:>8.2f}{timings[1]:>7.2f}{timings[0] / timings[1]:>8.1f}x"
                  f"{full['sample_len']:>5}/{m3['sample_len']:<4}{full[metric]:>9.3f}{est:>7.3f}"
                  f"{abs(est - full[metric]):>7.3f}")
    print(f"\nall tasks and models: full {totals[0]:.1f} s, merge3 {totals[1]:.1f} s, "
          f"{totals[0] / totals[1]:.1f}x less wall time for 10x fewer requests")


if __name__ == "__main__":
    main()
