"""What do the portable float paths cost, and do they make training machine-independent? (issue #25)

    python benchmarks/portable_floats.py [--steps 60] [--preset micro]

Each row trains the preset's base shape from scratch for `--steps` steps on its base mixture (one
torch thread, fixed seed) in a fresh process, and prints the wall time and the sha256 of the weights:
- this CPU's own paths (what torch picks here), and the same with MKL and ATen limited to AVX2 (what
  an AVX2-only CPU runs): two hashes where the machine matters;
- the portable paths (merge3_zoo/numerics.py: ATen's AVX2 kernels, MKL_CBWR=COMPATIBLE) with and
  without that AVX2 limit, and on a CPU that is not Intel's also with MKL told it runs on one: one hash;
- MKL's AVX2 branch (MKL_CBWR=AVX2, the zoo's portable paths until 2026-12-06): the same on Intel CPUs
  with or without AVX-512, but MKL takes another code path on AMD's (its vendor check), so two hashes
  there; the row "MKL told Intel" shows it (an LD_PRELOAD shim whose mkl_serv_intel_cpu_true says yes,
  built with the machine's C compiler; skipped without one);
- the scalar paths (ATen's plain kernels, MKL_CBWR=COMPATIBLE), which also agree everywhere, for their cost.
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
MKL_AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
SHIM = "int mkl_serv_intel_cpu_true(void) { return 1; }\n"


def cpuinfo() -> str:
    """/proc/cpuinfo ("" where there is none)."""
    path = Path("/proc/cpuinfo")
    return path.read_text() if path.exists() else ""


def intel_shim() -> str | None:
    """A shared library that tells MKL it runs on an Intel CPU (None: this is one, the CPU is unknown,
    or there is no C compiler)."""
    import shutil
    import tempfile

    if "GenuineIntel" in cpuinfo() or not cpuinfo():
        return None
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="mkl-shim-"))
    (folder / "shim.c").write_text(SHIM)
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(folder / "shim.so"), str(folder / "shim.c")], check=True)
    return str(folder / "shim.so")


def child(preset_name: str, steps: int, portable: bool) -> None:
    if portable:  # the zoo's own switch, as its workers take it
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
    parser.add_argument("--child", choices=["own", "portable"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.preset, args.steps, args.child == "portable")
    base_env = {k: v for k, v in os.environ.items() if k not in AVX2_LIMIT and k != "MKL_CBWR"}
    shim = intel_shim()
    told_intel = {"LD_PRELOAD": shim} if shim else None
    variants = [("this CPU's own", "own", {}), ("own, AVX2 limit", "own", AVX2_LIMIT),
                ("portable", "portable", {}), ("portable, AVX2 limit", "portable", AVX2_LIMIT),
                ("portable, MKL told Intel", "portable", told_intel),
                ("MKL's AVX2 branch (before)", "own", MKL_AVX2_ENV),
                ("MKL's AVX2 branch, MKL told Intel", "own", {**MKL_AVX2_ENV, **told_intel} if shim else None),
                ("scalar", "own", SCALAR_ENV), ("scalar, AVX2 limit", "own", {**SCALAR_ENV, "MKL_ENABLE_INSTRUCTIONS": "AVX2"})]
    rows = []
    for label, paths, extra in variants:
        if extra is None:
            continue  # an Intel CPU, or no C compiler for the shim
        out = subprocess.run([sys.executable, __file__, "--child", paths, "--steps", str(args.steps),
                              "--preset", args.preset], env={**base_env, **extra}, capture_output=True, text=True,
                             check=True)
        rows.append((label, json.loads(out.stdout.strip().splitlines()[-1])))
    own = rows[0][1]["seconds"]
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo().splitlines() if line.startswith("model name")),
               "?")
    print(f"{args.preset} base shape, {args.steps} training steps, one thread, {cpu}\n")
    print(f"| paths | ATen kernels | seconds | x own | weights sha256 |")
    print("| --- | --- | ---: | ---: | --- |")
    for label, row in rows:
        print(f"| {label} | {row['aten_cpu_capability']} | {row['seconds']:.1f} | {row['seconds'] / own:.2f} | "
              f"{row['sha256'][:16]} |")


if __name__ == "__main__":
    main()
