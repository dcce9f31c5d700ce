"""Benchmark: one candidate of an evolutionary merge, in memory (mergekit-evolve-lite) vs the usual way.

    python benchmarks/evolve_loop.py [--preset default|smol] [--anchors 50] [--candidates 3] [--methods ...]
                                     [--task toy_math_l2] [--device cpu|cuda]

The usual way (Mergenetic, most scripts): `mergekit-yaml` writes the merge to disk, then the
`lm_eval` CLI scores it. Ours: mergekit's planner merges into a live model, lm-eval's `evaluate`
scores it with tasks built once. Same candidates, same merge3 task (toy_math_l2 restricted to
--anchors anchors, gp-IRT), side by side in one run; prints per-candidate seconds and the ratio.
Then the in-memory merge alone for each of --methods (same genes), as a share of the evaluation,
and (--scale) the same for random-weight Llamas of other sizes: how the share moves with size.
`--preset smol` times all this on a real pre-trained model (SmolLM2-135M, bfloat16). With `--device cuda`
the live model, the inputs and the merge sit on the GPU; the table adds what a merge on the CPU would
pay to move each candidate to the GPU (transfer) and the GPU's peak memory.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default", help="toy world preset (default: the default world)")
    parser.add_argument("--anchors", type=int, default=50, help="anchors of the fitness task (shipped tasks: 50)")
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--methods", nargs="*", default=["task_arithmetic", "linear", "ties", "dare_ties", "della",
                                                         "breadcrumbs"], help="merge methods timed in memory")
    parser.add_argument("--repeats", type=int, default=10, help="merges per method")
    parser.add_argument("--task", default="toy_math_l2", help="the toy task behind the merge3 fitness task")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where the live model and the merge sit")
    parser.add_argument("--scale", nargs="*", default=["256x8", "512x16"], metavar="WIDTHxDEPTH",
                        help="also time a TA merge against the same evaluation on random-weight Llamas this size")
    args = parser.parse_args()

    from merge3_zoo.build import build_zoo
    from merge3_zoo.recipe import PRESETS
    from merge3_zoo.toy_tasks import regenerate
    from mergekit_ext.config import load_config
    from mergekit_ext.engine import build_engine
    from mergekit_ext.spaces.genes import space_for
    from mergekit_ext.merging.inmemory import InMemoryMerger

    zoo = build_zoo(args.preset, progress=False).zoo
    work = Path(tempfile.mkdtemp(prefix="merge3-evolve-bench-"))
    regenerate(work / "tasks", size=args.anchors, preset=args.preset)
    models = zoo.root / "models"
    config_path = work / "evolve.yaml"
    dtype = PRESETS[args.preset].dtype
    config_path.write_text(yaml.safe_dump({
        "merge_method": "task_arithmetic", "base_model": str(models / "base"), "dtype": dtype,
        "models": [{"model": str(models / "expert-math"), "parameters": {"weight": 0.5}},
                   {"model": str(models / "expert-lang"), "parameters": {"weight": 0.5}}],
        "evolve": {"search": {"weight": [0.0, 1.5]}, "granularity": 2,
                   "fitness": [{"task": f"merge3_{args.task}", "metric": _metric(args.task), "estimator": "gpirt"}],
                   "budget": {"evaluations": 10}, "include_path": [str(work / "tasks")], "include_defaults": False,
                   "eval": {"device": args.device, "batch_size": 32}}}))
    config = load_config(config_path)
    space = space_for(config)
    rng = np.random.default_rng(0)
    candidates = [space.to_config(rng.random(space.dims)) for _ in range(args.candidates)]

    start = time.perf_counter()
    engine = build_engine(config)  # what the search itself loads
    model, merger, fitness = engine.model, engine.merger, engine.fitness
    setup = time.perf_counter() - start
    import torch

    gpu = args.device.startswith("cuda")
    if gpu:
        torch.cuda.reset_peak_memory_stats(args.device)
    ours = []
    for candidate in candidates:
        t0 = time.perf_counter()
        merge_s = merger.merge_into(model, candidate)
        if gpu:
            torch.cuda.synchronize(args.device)
            merge_s = time.perf_counter() - t0
        score = fitness()
        ours.append((merge_s, score.seconds, time.perf_counter() - t0, score.objectives[0]))
    if gpu:
        peak = torch.cuda.max_memory_allocated(args.device)
        transfer = _transfer_seconds(model, args.device)

    usual = []
    for i, candidate in enumerate(candidates):
        cfg = work / f"c{i}.yaml"
        cfg.write_text(yaml.safe_dump(candidate))
        t0 = time.perf_counter()
        subprocess.run([_tool("mergekit-yaml"), str(cfg), str(work / f"m{i}"), "--no-copy-tokenizer"], check=True,
                       capture_output=True)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            src = models / "base" / name
            if src.exists():
                (work / f"m{i}" / name).write_bytes(src.read_bytes())
        t1 = time.perf_counter()
        subprocess.run([_tool("lm_eval"), "--model", "hf", "--model_args", f"pretrained={work / f'm{i}'}", "--include_path",
                        str(work / "tasks"), "--tasks", f"merge3_{args.task}", "--batch_size", "32", "--device", args.device],
                       check=True, capture_output=True)
        usual.append((t1 - t0, time.perf_counter() - t1, time.perf_counter() - t0))

    print(f"{'per candidate (s)':<34}{'merge':>8}{'eval':>8}{'total':>8}")
    print(f"{'in memory (mergekit-evolve-lite)':<34}{np.mean([o[0] for o in ours]):>8.3f}"
          f"{np.mean([o[1] for o in ours]):>8.3f}{np.mean([o[2] for o in ours]):>8.3f}")
    print(f"{'mergekit-yaml to disk + lm_eval CLI':<34}{np.mean([u[0] for u in usual]):>8.3f}"
          f"{np.mean([u[1] for u in usual]):>8.3f}{np.mean([u[2] for u in usual]):>8.3f}")
    ratio = np.mean([u[2] for u in usual]) / np.mean([o[2] for o in ours])
    share = np.mean([o[0] for o in ours]) / np.mean([o[1] for o in ours])
    if gpu:
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        print(f"{'(a CPU merge would add: transfer)':<34}{transfer:>8.3f}  to copy the merged model to {args.device}")
        print(f"GPU peak {peak / 2**20:.0f} MiB = {peak / weights:.1f}x one model's weights "
              f"({merger.placement.describe()})")
    print(f"\nratio usual / in memory: {ratio:.0f}x; in memory {60 / np.mean([o[2] for o in ours]):.0f} candidates/min "
          f"(one-off set-up {setup:.1f} s); merge time = {share:.0%} of eval time (target <= 5%)")

    eval_s = float(np.mean([o[1] for o in ours]))
    print(f"\n{args.preset} world ({dtype}, {args.device}), {args.anchors} anchors of {args.task}: "
          f"eval {eval_s:.3f} s per candidate")
    print("merge per candidate, median of --repeats, the sparsify cache off (mergekit sorts every task vector per "
          "candidate) and on (sorted once per run):")
    print(f"{'method (in memory)':<20}{'off s':>8}{'on s':>8}{'off/on':>8}{'off % eval':>12}{'on % eval':>11}"
          f"{'first s':>9}{'cache MiB':>11}")
    genes = rng.random(space.dims)
    for method in args.methods:
        merge = _with_method(space.to_config(genes), method)
        row = {}
        for cache in (False, True):  # side by side, the same candidates in the same process
            merger = InMemoryMerger(merge, device=args.device, random_seed=0, cache_ranks=cache)
            t0 = time.perf_counter()
            merger.merge_into(model, merge)  # reads the inputs (and, cache on, sorts)
            first = time.perf_counter() - t0
            # each repeat a new candidate: the densities move, as they do in a search
            times = [_timed_merge(merger, model, _with_method(space.to_config(genes), method, density=d), args.device)
                     for d in np.linspace(0.3, 0.7, args.repeats)]
            cached = merger.ranks.used_bytes / 2 ** 20 if merger.ranks is not None else 0.0
            row[cache] = (float(np.median(times)), first, cached)
            del merger  # its inputs and ranks go before the next merger measures its room
            gc.collect()
            if gpu:
                torch.cuda.empty_cache()
        (off, _, _), (on, first, cached) = row[False], row[True]
        print(f"{method:<20}{off:>8.3f}{on:>8.3f}{off / on:>7.1f}x{off / eval_s:>12.1%}{on / eval_s:>11.1%}"
              f"{first:>9.2f}{cached:>11.1f}")

    if args.scale:
        print("\nlarger models (random weights, same tokenizer and task; task_arithmetic):")
        print(f"{'model':<22}{'params':>9}{'merge s':>9}{'eval s':>9}{'merge/eval':>12}")
        for size in args.scale:
            width, depth = (int(v) for v in size.lower().split("x"))
            params, merge_s, eval_s = _scaled(models / "base", work / f"scale{size}", width, depth, fitness, args.device)
            print(f"{size + ' (width x depth)':<22}{params / 1e6:>8.1f}M{merge_s:>9.3f}{eval_s:>9.3f}{merge_s / eval_s:>12.1%}")


def _metric(task: str) -> str:
    from merge3_zoo.tasks import TASKS

    return next(t.metric for t in TASKS if t.name == task)


def _timed_merge(merger, model, merge: dict, device: str) -> float:
    """One merge into the live model, waiting for the GPU's queue (its kernels run asynchronously)."""
    import torch

    t0 = time.perf_counter()
    merger.merge_into(model, merge)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def _transfer_seconds(model, device: str, repeats: int = 3) -> float:
    """What a merge on the CPU would add per candidate on a GPU: the merged weights copied across (from
    pinned memory, the best case)."""
    import torch

    host = [p.detach().to("cpu").pin_memory() for p in model.parameters()]
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for p, h in zip(model.parameters(), host):
            p.data.copy_(h, non_blocking=True)
        torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _scaled(template: Path, work: Path, width: int, depth: int, fitness, device: str = "cpu") -> tuple[int, float, float]:
    """A TA merge of two random Llamas of this size into a third, and the same task's evaluation."""
    import torch
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergekit_ext.merging.inmemory import InMemoryMerger

    config = AutoModelForCausalLM.from_pretrained(template).config
    heads = max(4, width // 64)
    config.update({"hidden_size": width, "intermediate_size": 3 * width, "num_hidden_layers": depth,
                   "num_attention_heads": heads, "num_key_value_heads": heads})
    tokenizer = AutoTokenizer.from_pretrained(template)
    torch.manual_seed(0)
    for name in ("base", "a", "b"):
        AutoModelForCausalLM.from_config(config).save_pretrained(work / name)
        tokenizer.save_pretrained(work / name)
    merge = {"merge_method": "task_arithmetic", "base_model": str(work / "base"), "dtype": "float32",
             "models": [{"model": str(work / "a"), "parameters": {"weight": [0.5, 0.7]}},
                        {"model": str(work / "b"), "parameters": {"weight": 0.5}}]}
    model = AutoModelForCausalLM.from_pretrained(work / "base", dtype=torch.float32).to(device)
    merger = InMemoryMerger(merge, device=device)
    merger.merge_into(model, merge)
    merge_s = float(np.median([_timed_merge(merger, model, merge, device) for _ in range(5)]))
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=32, device=device)
    task_dict = next(iter(fitness.tasks.values()))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        evaluate(lm, task_dict, verbosity="ERROR")
        times.append(time.perf_counter() - t0)
    return sum(p.numel() for p in model.parameters()), merge_s, float(np.median(times))


def _tool(name: str) -> str:
    """A console script of this environment (also when its bin/ is not on PATH)."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def _with_method(config: dict, method: str, density: float = 0.5) -> dict:
    """The same weights under another method (`density` and epsilon 0.1 where the method takes them;
    slerp: the two experts at t = 0.5)."""
    if method == "slerp":
        first = config["models"][0]["model"]
        return {"merge_method": "slerp", "base_model": first, "dtype": config["dtype"], "parameters": {"t": 0.5},
                "models": [{"model": entry["model"]} for entry in config["models"]]}
    out = {**config, "merge_method": method, "models": []}
    for entry in config["models"]:
        params = dict(entry["parameters"])
        if method in ("ties", "dare_ties", "dare_linear", "della", "breadcrumbs"):
            params["density"] = density
        if method == "della":
            params["epsilon"] = 0.1
        out["models"].append({**entry, "parameters": params})
    if method == "linear":
        out.pop("base_model", None)
    return out


if __name__ == "__main__":
    main()
