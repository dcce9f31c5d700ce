"""How much memory does merging in memory take, against the size of one model? (issue #12)

    python benchmarks/merge_memory.py [--presets micro smol] [--scale 256x8 512x16] [--candidates 5]
                                      [--methods task_arithmetic ties] [--device cuda]

For each case (a world's base and two experts: the micro toy world, the smol world of a real
pre-trained model, SmolLM2-135M; random-weight Llamas of the given widths and depths), a fresh process
loads the live model, builds the in-memory merger, merges `--candidates` task-arithmetic candidates
into the live model, and reports its peak memory above what the imports alone took, as a multiple of
one model's weights (in the world's own dtype). Issue #12's budget is the live model plus the inputs
plus one tensor's working set: about 4x one model's weights for a base and two experts (cached
inputs), plus a small constant; TIES adds its sparsify cache, each expert's magnitude ranks (issue #24:
measured with the cache on and off). With --device cuda the live model and the inputs sit on the GPU and
the GPU's peak (torch.cuda.max_memory_allocated) is reported beside the host's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(models: str, candidates: int, way: str, device: str = "cpu", method: str = "task_arithmetic") -> dict:
    """In this (fresh) process: peak RSS of loading the live model and merging `candidates` times,
    `way` = "stream" (merge_into: each tensor copied into the model as it is merged, what the search
    does), "stream, no cache" (the same, the sparsify cache off: mergekit sorts per candidate) or "dict"
    (the whole merged state dict built, then loaded: how it was before issue #12)."""
    import importlib

    import torch
    from transformers import AutoModelForCausalLM

    from mergekit_ext.merging.inmemory import InMemoryMerger

    for module in ("mergekit.graph", "mergekit.io.tasks", "mergekit.plan", "mergekit.merge"):
        importlib.import_module(module)  # everything the merge imports, before the baseline
    torch.set_num_threads(1)
    root = Path(models)
    dtype = json.loads((root / "base" / "config.json").read_text()).get("dtype", "float32")
    if device.startswith("cuda"):
        torch.zeros(1, device=device)  # the CUDA context, before the baseline
        torch.cuda.reset_peak_memory_stats(device)
    before = _reset_peak()  # what the imports hold; the peak counts from here
    weights = sum(f.stat().st_size for f in (root / "base").glob("*.safetensors"))
    live = AutoModelForCausalLM.from_pretrained(root / "base", dtype=getattr(torch, dtype)).to(device)

    def candidate(weight: float) -> dict:
        extra = {"density": weight} if method != "task_arithmetic" else {}
        return {"merge_method": method, "base_model": str(root / "base"), "dtype": dtype,
                "models": [{"model": str(root / "expert-math"), "parameters": {"weight": weight, **extra}},
                           {"model": str(root / "expert-lang"), "parameters": {"weight": 1 - weight, **extra}}]}

    # built once, as a search builds it
    merger = InMemoryMerger(candidate(0.5), device=device, cache_ranks=way != "stream, no cache")
    times = []
    for k in range(candidates):
        config = candidate(0.3 + 0.1 * k)
        start = time.perf_counter()
        if way.startswith("stream"):
            merger.merge_into(live, config)
        else:
            live.load_state_dict(merger.merge(config), strict=False)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    peak = _status("VmHWM")
    gpu_peak = torch.cuda.max_memory_allocated(device) if device.startswith("cuda") else 0
    cache = merger.ranks.used_bytes if merger.ranks is not None else 0
    return {"weights": weights, "peak": peak - before, "gpu_peak": gpu_peak, "dtype": dtype, "cache": cache,
            "placement": merger.placement.describe(), "merge_s": sorted(times)[len(times) // 2]}


def _status(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> int:
    """Reset the peak resident memory (VmHWM) to the current one; returns the current one."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def random_world(folder: Path, width: int, depth: int) -> Path:
    """A base and two experts (base plus noise) of random Llama weights, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=1024, hidden_size=width, intermediate_size=3 * width, num_hidden_layers=depth,
                         num_attention_heads=max(1, width // 64), num_key_value_heads=max(1, width // 128),
                         max_position_embeddings=256)
    torch.manual_seed(0)
    base = LlamaForCausalLM(config)
    base.save_pretrained(folder / "base")
    for k, name in enumerate(("expert-math", "expert-lang")):
        torch.manual_seed(k + 1)
        with torch.no_grad():
            for p in base.parameters():
                p.add_(0.01 * torch.randn_like(p))
        base.save_pretrained(folder / name)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="*", default=["micro", "smol"],
                        help="worlds whose base and experts are measured (default: micro smol; smol needs merge3[smol])")
    parser.add_argument("--scale", nargs="*", default=["256x8", "512x16"], metavar="WIDTHxDEPTH",
                        help="random-weight Llamas of these shapes too")
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="where the live model and the merge sit: cpu, cuda (default cpu)")
    parser.add_argument("--methods", nargs="*", default=["task_arithmetic", "ties"],
                        help="merge methods measured (ties: with the sparsify cache on and off)")
    parser.add_argument("--method", default="task_arithmetic", help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--way", default="stream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # the measuring process
        print(json.dumps(measure(args.child, args.candidates, args.way, args.device, args.method)))
        return

    from merge3_zoo.build import build_zoo

    cases = [(f"{preset} world", build_zoo(preset).zoo.root / "models") for preset in args.presets]
    work = Path(tempfile.mkdtemp(prefix="merge3-memory-"))
    for shape in args.scale:
        width, depth = (int(v) for v in shape.lower().split("x"))
        cases.append((f"random Llama {width}x{depth}", random_world(work / shape, width, depth)))

    gpu = args.device.startswith("cuda")
    print(f"| models | dtype | method | merged tensors go | one model's weights (MB) | host peak above imports (MB) "
          f"| host peak / weights | sparsify cache (MB) |{' GPU peak (MB) | GPU peak / weights |' if gpu else ''} "
          "merge s per candidate |")
    print("| --- " * (11 if gpu else 9) + "|")
    ways = {"stream": "into the live model, one by one", "stream, no cache": "the same, sparsify cache off",
            "dict": "into a full state dict, then loaded"}
    placements: set[str] = set()
    for label, models in cases:
        for method in args.methods:
            # side by side, each in a fresh process; the cache matters only where the method sorts
            for way in [w for w in ways if method != "task_arithmetic" or w != "stream, no cache"]:
                run = subprocess.run([sys.executable, __file__, "--child", str(models), "--candidates",
                                      str(args.candidates), "--way", way, "--device", args.device, "--method", method],
                                     capture_output=True, text=True, check=True)
                r = json.loads(run.stdout.strip().splitlines()[-1])
                mb = 1024 * 1024
                on_gpu = f" {r['gpu_peak'] / mb:.1f} | {r['gpu_peak'] / r['weights']:.1f}x |" if gpu else ""
                print(f"| {label} | {r['dtype']} | {method} | {ways[way]} | {r['weights'] / mb:.1f} | {r['peak'] / mb:.1f} "
                      f"| {r['peak'] / r['weights']:.1f}x | {r['cache'] / mb:.0f} |{on_gpu} {r['merge_s']:.3f} |")
                placements.add(f"{label}: {r['placement']}")
    print(f"\n{args.device}, a base and two experts, {args.candidates} candidates (weights and, for ties, densities "
          "0.3, 0.4, ...), median merge time; host peak = the process's peak resident memory (VmHWM, reset after "
          "the imports) minus what the imports hold; sparsify cache = the ranks kept (sparsify_cache.py)."
          + (" GPU peak = torch.cuda.max_memory_allocated after the CUDA context." if gpu else ""))
    print("\n".join(sorted(placements)))


if __name__ == "__main__":
    main()
