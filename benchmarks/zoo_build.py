"""Benchmark: build the toy world from scratch, then again from the cache; print the tables.

    python benchmarks/zoo_build.py [--preset default|micro] [--seed 0] [--workers N]

Job seconds are summed over worker processes (they overlap); `wall` is the build's elapsed time.
Budgets (issue #2): micro <= 90 s, default <= 600 s on 2 cores, cache hit < 5 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from merge3_zoo.build import build_zoo  # noqa: E402
from merge3_zoo.matters import format_table  # noqa: E402

BUDGET_S = {"micro": 90, "default": 600}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="merge3-zoo-bench-") as tmp:
        out = Path(tmp) / "zoo"
        start = time.perf_counter()
        first = build_zoo(args.preset, out=out, seed=args.seed, workers=args.workers)
        total = time.perf_counter() - start
        start = time.perf_counter()
        again = build_zoo(args.preset, out=out, seed=args.seed)
        cached = time.perf_counter() - start
        assert again.cached
        t = first.zoo.data["timings_s"]
        n_models = len(first.zoo.models)
        print(f"\nzoo build --preset {args.preset} --seed {args.seed}: {n_models} models, "
              f"{len(first.zoo.tasks)} tasks x {first.zoo.tasks[0]['n_items']} items")
        print(f"{'phase':<34}{'seconds':>10}")
        for key, label in (("train", "training (job-seconds)"), ("merge", "mergekit merges (job-seconds)"),
                           ("eval", "lm-eval evaluations (job-seconds)"), ("wall", "jobs, wall clock")):
            print(f"{label:<34}{t.get(key, 0.0):>10.1f}")
        budget = BUDGET_S.get(args.preset)
        verdict = f" (budget {budget} s: {'ok' if budget and total <= budget else 'OVER'})" if budget else ""
        print(f"{'whole build, wall clock':<34}{total:>10.1f}{verdict}")
        print(f"{'rebuild from cache':<34}{cached:>10.2f} (budget 5 s: {'ok' if cached < 5 else 'OVER'})")
        print()
        print(format_table(first.zoo.data["merging_matters"]))


if __name__ == "__main__":
    main()
