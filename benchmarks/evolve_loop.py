"""Benchmark: one candidate of an evolutionary merge, in memory (mergekit-evolve-lite) vs the usual way.

    python benchmarks/evolve_loop.py [--preset default] [--anchors 50] [--candidates 3] [--methods ...]

The usual way (Mergenetic, most scripts): `mergekit-yaml` writes the merge to disk, then the
`lm_eval` CLI scores it. Ours: mergekit's planner merges into a live model, lm-eval's `evaluate`
scores it with tasks built once. Same candidates, same merge3 task (toy_math_l2 restricted to
--anchors anchors, gp-IRT), side by side in one run; prints per-candidate seconds and the ratio.
Then the in-memory merge alone for each of --methods (same genes), as a share of the evaluation,
and (--scale) the same for random-weight Llamas of other sizes: how the share moves with size.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--scale", nargs="*", default=["256x8", "512x16"], metavar="WIDTHxDEPTH",
                        help="also time a TA merge against the same evaluation on random-weight Llamas this size")
    args = parser.parse_args()

    from merge3_zoo.build import build_zoo
    from merge3_zoo.toy_tasks import regenerate
    from mergekit_ext.config import load_config
    from mergekit_ext.engine import build_engine
    from mergekit_ext.genes import space_for
    from mergekit_ext.inmemory import InMemoryMerger

    zoo = build_zoo(args.preset, progress=False).zoo
    work = Path(tempfile.mkdtemp(prefix="merge3-evolve-bench-"))
    regenerate(work / "tasks", size=args.anchors, preset=args.preset)
    models = zoo.root / "models"
    config_path = work / "evolve.yaml"
    config_path.write_text(yaml.safe_dump({
        "merge_method": "task_arithmetic", "base_model": str(models / "base"), "dtype": "float32",
        "models": [{"model": str(models / "expert-math"), "parameters": {"weight": 0.5}},
                   {"model": str(models / "expert-lang"), "parameters": {"weight": 0.5}}],
        "evolve": {"search": {"weight": [0.0, 1.5]}, "granularity": 2,
                   "fitness": [{"task": "merge3_toy_math_l2", "metric": "exact_match", "estimator": "gpirt"}],
                   "budget": {"evaluations": 10}, "include_path": [str(work / "tasks")], "include_defaults": False}}))
    config = load_config(config_path)
    space = space_for(config)
    rng = np.random.default_rng(0)
    candidates = [space.to_config(rng.random(space.dims)) for _ in range(args.candidates)]

    start = time.perf_counter()
    engine = build_engine(config)  # what the search itself loads
    model, merger, fitness = engine.model, engine.merger, engine.fitness
    setup = time.perf_counter() - start
    ours = []
    for candidate in candidates:
        t0 = time.perf_counter()
        merge_s = merger.merge_into(model, candidate)
        score = fitness()
        ours.append((merge_s, score.seconds, time.perf_counter() - t0, score.objectives[0]))

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
                        str(work / "tasks"), "--tasks", "merge3_toy_math_l2", "--batch_size", "32", "--device", "cpu"],
                       check=True, capture_output=True)
        usual.append((t1 - t0, time.perf_counter() - t1, time.perf_counter() - t0))

    print(f"{'per candidate (s)':<34}{'merge':>8}{'eval':>8}{'total':>8}")
    print(f"{'in memory (mergekit-evolve-lite)':<34}{np.mean([o[0] for o in ours]):>8.3f}"
          f"{np.mean([o[1] for o in ours]):>8.3f}{np.mean([o[2] for o in ours]):>8.3f}")
    print(f"{'mergekit-yaml to disk + lm_eval CLI':<34}{np.mean([u[0] for u in usual]):>8.3f}"
          f"{np.mean([u[1] for u in usual]):>8.3f}{np.mean([u[2] for u in usual]):>8.3f}")
    ratio = np.mean([u[2] for u in usual]) / np.mean([o[2] for o in ours])
    share = np.mean([o[0] for o in ours]) / np.mean([o[1] for o in ours])
    print(f"\nratio usual / in memory: {ratio:.0f}x; in memory {60 / np.mean([o[2] for o in ours]):.0f} candidates/min "
          f"(one-off set-up {setup:.1f} s); merge time = {share:.0%} of eval time (target <= 5%)")

    eval_s = float(np.mean([o[1] for o in ours]))
    print(f"\n{args.preset} world, {args.anchors} anchors: eval {eval_s:.3f} s per candidate")
    print(f"{'method (in memory)':<20}{'merge s':>9}{'% of eval':>11}{'first merge s':>15}")
    genes = rng.random(space.dims)
    for method in args.methods:
        merge = _with_method(space.to_config(genes), method)
        merger = InMemoryMerger(merge, random_seed=0)
        t0 = time.perf_counter()
        merger.merge_into(model, merge)  # reads the inputs
        first = time.perf_counter() - t0
        times = [merger.merge_into(model, merge) for _ in range(args.repeats)]
        print(f"{method:<20}{np.median(times):>9.4f}{np.median(times) / eval_s:>11.1%}{first:>15.3f}")

    if args.scale:
        print("\nlarger models (random weights, same tokenizer and task; task_arithmetic):")
        print(f"{'model':<22}{'params':>9}{'merge s':>9}{'eval s':>9}{'merge/eval':>12}")
        for size in args.scale:
            width, depth = (int(v) for v in size.lower().split("x"))
            params, merge_s, eval_s = _scaled(models / "base", work / f"scale{size}", width, depth, fitness)
            print(f"{size + ' (width x depth)':<22}{params / 1e6:>8.1f}M{merge_s:>9.3f}{eval_s:>9.3f}{merge_s / eval_s:>12.1%}")


def _scaled(template: Path, work: Path, width: int, depth: int, fitness) -> tuple[int, float, float]:
    """A TA merge of two random Llamas of this size into a third, and the same task's evaluation."""
    import torch
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergekit_ext.inmemory import InMemoryMerger

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
    model = AutoModelForCausalLM.from_pretrained(work / "base", dtype=torch.float32)
    merger = InMemoryMerger(merge)
    merger.merge_into(model, merge)
    merge_s = float(np.median([merger.merge_into(model, merge) for _ in range(5)]))
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=32, device="cpu")
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


def _with_method(config: dict, method: str) -> dict:
    """The same weights under another method (density 0.5 and epsilon 0.1 where the method takes them;
    slerp: the two experts at t = 0.5)."""
    if method == "slerp":
        first = config["models"][0]["model"]
        return {"merge_method": "slerp", "base_model": first, "dtype": config["dtype"], "parameters": {"t": 0.5},
                "models": [{"model": entry["model"]} for entry in config["models"]]}
    out = {**config, "merge_method": method, "models": []}
    for entry in config["models"]:
        params = dict(entry["parameters"])
        if method in ("ties", "dare_ties", "dare_linear", "della", "breadcrumbs"):
            params["density"] = 0.5
        if method == "della":
            params["epsilon"] = 0.1
        out["models"].append({**entry, "parameters": params})
    if method == "linear":
        out.pop("base_model", None)
    return out


if __name__ == "__main__":
    main()
