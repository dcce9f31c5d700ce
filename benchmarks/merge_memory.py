"""How much memory does merging in memory take, against the size of one model? (issue #12)

    python benchmarks/merge_memory.py [--preset micro] [--scale 256x8 512x16] [--candidates 5]

For each case (the toy world's base and two experts; random-weight Llamas of the given widths and
depths), a fresh process loads the live model, builds the in-memory merger, merges `--candidates`
task-arithmetic candidates into the live model, and reports its peak resident memory above what the
imports alone took, as a multiple of one model's weights. Issue #12's budget is the live model plus
the inputs plus one tensor's working set: about 4x one model's weights for a base and two experts
(cached inputs), plus a small constant. CPU only here; the GPU rows need a GPU machine.
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


def measure(models: str, candidates: int, way: str) -> dict:
    """In this (fresh) process: peak RSS of loading the live model and merging `candidates` times,
    `way` = "stream" (merge_into: each tensor copied into the model as it is merged, what the search
    does) or "dict" (the whole merged state dict built, then loaded: how it was before issue #12)."""
    import importlib

    import torch
    from transformers import AutoModelForCausalLM

    from mergekit_ext.inmemory import InMemoryMerger

    for module in ("mergekit.graph", "mergekit.io.tasks", "mergekit.plan", "mergekit.merge"):
        importlib.import_module(module)  # everything the merge imports, before the baseline
    torch.set_num_threads(1)
    root = Path(models)
    before = _reset_peak()  # what the imports hold; the peak counts from here
    weights = sum(f.stat().st_size for f in (root / "base").glob("*.safetensors"))
    live = AutoModelForCausalLM.from_pretrained(root / "base", dtype=torch.float32)
    def candidate(weight: float) -> dict:
        return {"merge_method": "task_arithmetic", "base_model": str(root / "base"), "dtype": "float32",
                "models": [{"model": str(root / "expert-math"), "parameters": {"weight": weight}},
                           {"model": str(root / "expert-lang"), "parameters": {"weight": 1 - weight}}]}

    merger = InMemoryMerger(candidate(0.5))  # built once, as a search builds it
    times = []
    for k in range(candidates):
        config = candidate(0.3 + 0.1 * k)
        start = time.perf_counter()
        if way == "stream":
            merger.merge_into(live, config)
        else:
            live.load_state_dict(merger.merge(config), strict=False)
        times.append(time.perf_counter() - start)
    peak = _status("VmHWM")
    return {"weights": weights, "peak": peak - before,
            "merge_s": sorted(times)[len(times) // 2]}


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
    parser.add_argument("--preset", default="micro", help="toy world whose base and experts are measured (default micro)")
    parser.add_argument("--scale", nargs="*", default=["256x8", "512x16"], metavar="WIDTHxDEPTH",
                        help="random-weight Llamas of these shapes too")
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--way", default="stream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # the measuring process
        print(json.dumps(measure(args.child, args.candidates, args.way)))
        return

    from merge3_zoo.build import build_zoo

    cases = [(f"toy world ({args.preset})", build_zoo(args.preset, progress=False).zoo.root / "models")]
    work = Path(tempfile.mkdtemp(prefix="merge3-memory-"))
    for shape in args.scale:
        width, depth = (int(v) for v in shape.lower().split("x"))
        cases.append((f"random Llama {width}x{depth}", random_world(work / shape, width, depth)))

    print("| models | merged tensors go | one model's weights (MB) | peak above imports (MB) | peak / weights "
          "| merge s per candidate |")
    print("| --- | --- | --- | --- | --- | --- |")
    ways = {"stream": "into the live model, one by one", "dict": "into a full state dict, then loaded"}
    for label, models in cases:
        for way, said in ways.items():  # side by side, each in a fresh process
            run = subprocess.run([sys.executable, __file__, "--child", str(models), "--candidates",
                                  str(args.candidates), "--way", way], capture_output=True, text=True, check=True)
            r = json.loads(run.stdout.strip().splitlines()[-1])
            mb = 1024 * 1024
            print(f"| {label} | {said} | {r['weights'] / mb:.1f} | {r['peak'] / mb:.1f} "
                  f"| {r['peak'] / r['weights']:.1f}x | {r['merge_s']:.3f} |")
    print(f"\nCPU, float32, task_arithmetic of a base and two experts, {args.candidates} candidates, median merge "
          "time; peak = the process's peak resident memory (VmHWM, reset after the imports) minus what the imports hold.")


if __name__ == "__main__":
    main()
