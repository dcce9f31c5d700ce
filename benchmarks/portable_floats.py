"""What do the portable float paths cost, and do they make training machine-independent? (issue #25)

    python benchmarks/portable_floats.py [--steps 60] [--preset micro]

Each row trains the preset's base shape from scratch for `--steps` steps on its base mixture (one
torch thread, fixed seed) in a fresh process, and prints the wall time and the sha256 of the weights:
- this CPU's own paths (what torch picks here), and the same with MKL and ATen limited to AVX2 (what
  an AVX2-only CPU runs): two hashes where the machine matters;
- the portable paths (merge3_zoo/numerics.py: ATen's AVX2 kernels, MKL_CBWR=AVX2) with and without
  that AVX2 limit: one hash;
- the scalar paths (ATen's plain kernels, MKL_CBWR=COMPATIBLE; the zoo's first portable paths), which
  also agree everywhere, for their cost.
The time ratio portable / own is the training cost of machine-independent worlds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

AVX2_LIMIT = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
SCALAR_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}


def child(preset_name: str, steps: int, portable: bool) -> None:
    if portable:
        from merge3_zoo.numerics import use_portable_floats

        use_portable_floats()
    import torch

    torch.set_num_threads(1)
    from merge3_zoo.numerics import float_paths
    from merge3_zoo.recipe import PRESETS
    from merge3_zoo.tokenizer import codec_for
    from merge3_zoo.training import new_model, train

    preset = PRESETS[preset_name]
    base = next(run for run in preset.runs if run.role == "base")
    codec = codec_for(None)
    model = new_model(preset.shape, codec, seed=base.seed)
    start = time.perf_counter()
    train(model, codec, base.mixture, steps, base.lr, base.seed, batch_size=preset.batch_size,
          max_levels=base.max_levels)
    seconds = time.perf_counter() - start
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    print(json.dumps({"seconds": seconds, "sha256": digest.hexdigest(), **float_paths()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--preset", default="micro")
    parser.add_argument("--child", choices=["own", "portable", "scalar"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.preset, args.steps, args.child == "portable")
    base_env = {k: v for k, v in os.environ.items() if k not in AVX2_LIMIT and k != "MKL_CBWR"}
    rows = []
    for label, paths, limit in (("this CPU's own", "own", False), ("own, AVX2 limit", "own", True),
                                ("portable", "portable", False), ("portable, AVX2 limit", "portable", True),
                                ("scalar", "scalar", False), ("scalar, AVX2 limit", "scalar", True)):
        env = {**base_env, **(AVX2_LIMIT if limit else {}), **(SCALAR_ENV if paths == "scalar" else {})}
        out = subprocess.run([sys.executable, __file__, "--child", paths, "--steps", str(args.steps),
                              "--preset", args.preset], env=env, capture_output=True, text=True, check=True)
        rows.append((label, json.loads(out.stdout.strip().splitlines()[-1])))
    own = rows[0][1]["seconds"]
    print(f"{args.preset} base shape, {args.steps} training steps, one thread\n")
    print(f"| paths | ATen kernels | seconds | x own | weights sha256 |")
    print("| --- | --- | ---: | ---: | --- |")
    for label, row in rows:
        print(f"| {label} | {row['aten_cpu_capability']} | {row['seconds']:.1f} | {row['seconds'] / own:.2f} | "
              f"{row['sha256'][:16]} |")


if __name__ == "__main__":
    main()
