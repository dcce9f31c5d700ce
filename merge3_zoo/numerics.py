"""Float paths that every x86 CPU with AVX2 shares, so that a preset and a seed give the same weights anywhere.

torch picks its CPU kernels by the instructions the processor has (ATen's AVX2 or AVX-512 kernels,
MKL's code paths), and a sum taken in another order rounds otherwise: a 30-step AdamW run of a
4-layer Llama gave other weights with AVX-512 than with AVX2 (shared field notes). ATen's AVX2
kernels are the same code on every x86 CPU with AVX2. MKL is not: it also checks the CPU's vendor,
and its AVX2 reproducibility branch (MKL_CBWR=AVX2, what the zoo used until 2026-12-06) gave one set
of weights on an Intel Xeon and another on an AMD EPYC, which matched the Xeon's only when MKL was
told it ran on an Intel CPU (benchmarks/portable_floats.py shows it). Its COMPATIBLE branch (SSE2
without the approximate rcpps/rsqrtps, which vendors implement differently) gives the same bytes on
both, told or not. So the zoo trains and evaluates on ATen's AVX2 kernels and MKL's COMPATIBLE
branch, with one thread: a world is the same on any x86 CPU with AVX2 (Intel since 2013, AMD since
2015). A CPU without AVX2 is told so. Both switches are read once, when torch (and its MKL) load:
they must be in the environment before `import torch`, which is why the zoo's training and
evaluation run in worker processes that call `use_portable_floats()` first.

The cost is speed: about 1.8x the CPU's own paths for the micro world's training on 2026-12-06 (an
AMD EPYC; benchmarks/portable_floats.py measures it), against 0.9x for MKL's AVX2 branch.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

# ATen: its AVX2 kernels even where AVX-512 ones exist; MKL: conditional numerical reproducibility on
# its COMPATIBLE branch, the one that does not depend on the CPU's vendor (ATen's scalar kernels with it
# also agree everywhere, a little slower).
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}


def use_portable_floats() -> None:
    """Put PORTABLE_ENV in this process's environment, over whatever was there (a machine's own
    setting would make its worlds differ). Takes effect only if torch is not loaded yet: a process
    whose torch already runs on other paths is refused."""
    if "torch" in sys.modules and not is_portable():
        raise RuntimeError("use_portable_floats(): torch was imported before the portable float paths were set")
    os.environ.update(PORTABLE_ENV)


@contextmanager
def portable_children():
    """PORTABLE_ENV in the environment that child processes started inside this block inherit (a
    spawned child may load torch before any code of ours runs in it: importing the parent's main
    module); the parent's environment is restored afterwards."""
    saved = {k: os.environ.get(k) for k in PORTABLE_ENV}
    os.environ.update(PORTABLE_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def float_paths() -> dict:
    """What this process computes with (for zoo.json): ATen's kernel level, MKL's path, torch's threads."""
    import torch

    return {"aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkl_cbwr": os.environ.get("MKL_CBWR"), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__}


def cpu_has_avx2() -> bool:
    """Whether this CPU runs the portable paths (AVX2). Read from /proc/cpuinfo where there is one, so
    that asking does not load torch; elsewhere (macOS, Windows) assumed, and the workers check."""
    try:
        with open("/proc/cpuinfo") as info:
            return any(line.startswith("flags") and " avx2" in line for line in info)
    except OSError:
        return True


def is_portable() -> bool:
    """True when this process's torch runs on the portable paths (set before torch was imported)."""
    paths = float_paths()
    return (paths["aten_cpu_capability"] == PORTABLE_ENV["ATEN_CPU_CAPABILITY"].upper()
            and paths["mkl_cbwr"] == PORTABLE_ENV["MKL_CBWR"])
