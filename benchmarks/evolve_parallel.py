"""Benchmark: candidates per minute on the serial backend and on Ray with 1, 2, ... workers (issue #13).

    python benchmarks/evolve_parallel.py [--preset micro] [--task toy_math_l2] [--candidates 32]
                                         [--generation 8] [--workers 1 2] [--device cpu|cuda]

The same candidates (random genes, seeded) are scored by each backend in turn, a generation at a time,
through MergeSearch as mergekit-evolve-lite does, side by side in one run. Printed per backend:
start-up (loading the models; for Ray also starting it and its workers), candidates per minute once
started, the speed-up over one Ray worker, and the driver's overhead per candidate: wall time per
candidate minus the time the scoring itself took (merge + evaluation, as the workers measured it),
with one worker, where nothing runs side by side. Each CPU worker gets (cores // workers) torch threads;
the serial backend runs with the same threads as one Ray worker. `--device cuda` puts one worker on each
GPU (--workers up to the number of GPUs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="micro", help="toy world preset (built and cached on first use)")
    parser.add_argument("--task", default="toy_math_l2", help="fitness task: a world task (all its test items) "
                                                              "or merge3_<task> (its anchors)")
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--generation", type=int, default=8, help="candidates scored side by side (pop_size)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="Ray worker counts to time")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import logging

    import torch
    import transformers

    from merge3_zoo.build import build_zoo

    transformers.logging.set_verbosity_error()  # the table, not the libraries' notices
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    from merge3_zoo.recipe import PRESETS

    zoo = build_zoo(args.preset, progress=False).zoo
    work = Path(tempfile.mkdtemp(prefix="merge3-parallel-bench-"))
    cores = os.cpu_count() or 1
    rng = np.random.default_rng(0)
    rows = []
    backends = [("serial", 1)] + [("ray", n) for n in args.workers]
    genes = None
    for backend, workers in backends:
        threads = 1 if args.device.startswith("cuda") else max(1, cores // (workers if backend == "ray" else 1))
        torch.set_num_threads(max(1, cores // args.workers[0]) if backend == "serial" else 1)
        config = _write_config(work / f"{backend}{workers}.yaml", zoo, args, backend, workers,
                               PRESETS[args.preset].dtype)
        if genes is None:
            genes = rng.random((args.candidates, _dims(config)))
        rows.append(_time_backend(config, work / f"{backend}{workers}", genes, args.generation) +
                    (backend, workers, threads if backend == "ray" else torch.get_num_threads()))
    shutil.rmtree(work, ignore_errors=True)
    _print(rows, args)


def _write_config(path: Path, zoo, args, backend: str, workers: int, dtype: str) -> Path:
    models = zoo.root / "models"
    metric = "acc" if "rev" in args.task else "exact_match"
    fitness = {"task": args.task, "metric": metric, "estimator": "gpirt" if args.task.startswith("merge3_") else None}
    include = [str(zoo.tasks_dir)]
    if args.task.startswith("merge3_"):
        from merge3_zoo.toy_tasks import regenerate

        regenerate(path.parent / "tasks", preset=args.preset)
        include.append(str(path.parent / "tasks"))
    eval_spec = {"device": args.device, "batch_size": 32}
    if backend == "ray":
        eval_spec.update(backend="ray", workers=workers)
    path.write_text(yaml.safe_dump({
        "merge_method": "task_arithmetic", "base_model": str(models / "base"), "dtype": dtype,
        "models": [{"model": str(models / "expert-math"), "parameters": {"weight": 0.5}},
                   {"model": str(models / "expert-lang"), "parameters": {"weight": 0.5}}],
        "evolve": {"search": {"weight": [0.0, 1.5]}, "granularity": 2, "fitness": [fitness],
                   "budget": {"evaluations": args.candidates}, "include_path": include,
                   "include_defaults": False, "eval": eval_spec}}))
    return path


def _dims(path: Path) -> int:
    from mergekit_ext.config import load_config
    from mergekit_ext.spaces.genes import space_for

    return space_for(load_config(path)).dims


def _time_backend(path: Path, out: Path, genes: np.ndarray, generation: int) -> tuple:
    """(start-up s, scoring wall s, mean merge+eval s per candidate as the scorer measured it, n)."""
    from mergekit_ext.config import load_config
    from mergekit_ext.search import MergeSearch

    search = MergeSearch(load_config(path), out)
    try:
        start = time.perf_counter()
        if search.config.evolve.eval.backend == "serial":
            search.engine  # what the serial backend scores on: the models, loaded here
        search.backend
        started = time.perf_counter()
        for i in range(0, len(genes), generation):
            search.evaluate(genes[i:i + generation])
        wall = time.perf_counter() - started
    finally:
        search.close()
    records = search.succeeded()
    scoring = float(np.mean([r["merge_seconds"] + r["eval_seconds"] for r in records]))
    return started - start, wall, scoring, len(search.history.order)


def _print(rows: list[tuple], args) -> None:
    one = next((r for r in rows if r[4] == "ray" and r[5] == 1), None)
    print(f"\n{args.candidates} candidates of the {args.preset} world, fitness {args.task}, generations of "
          f"{args.generation}, device {args.device}, {os.cpu_count()} cores\n")
    print("| backend | workers | torch threads each | start-up (s) | candidates/min | vs 1 Ray worker "
          "| scoring s/cand (in the scorer) | driver overhead s/cand |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for startup, wall, scoring, n, backend, workers, threads in rows:
        per = wall / n
        ratio = f"{(one[1] / one[3]) / per:.2f}x" if one else "-"
        overhead = f"{per - scoring:.4f}" if workers == 1 else "-"
        print(f"| {backend} | {workers} | {threads} | {startup:.1f} | {60 / per:.1f} | {ratio} | {scoring:.3f} "
              f"| {overhead} |")


if __name__ == "__main__":
    main()
