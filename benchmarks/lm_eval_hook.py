"""Benchmark: what the lm-eval start-up hook costs an interpreter that never imports lm-eval.

    merge3 tasks hook install   # (editable installs; a wheel install has it already)
    python benchmarks/lm_eval_hook.py

Starts `python -c pass` many times with the hook on and off (MERGE3_LM_EVAL_HOOK=0), interleaved,
and reports the median wall time of each and their difference (budget: 5 ms), plus the hook's
own import time from `python -X importtime`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

RUNS = 40


def start(env: dict) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - t


def main() -> None:
    on = {**os.environ, "MERGE3_LM_EVAL_HOOK": "1"}
    off = {**os.environ, "MERGE3_LM_EVAL_HOOK": "0"}
    probe = subprocess.run([sys.executable, "-c",
                            "import sys; print(any(type(f).__name__ == 'Merge3LmEvalHook' for f in sys.meta_path))"],
                           env=on, capture_output=True, text=True).stdout.strip()
    if probe != "True":
        sys.exit("the hook is not installed in this interpreter: run `merge3 tasks hook install` first")
    times = {"on": [], "off": []}
    for _ in range(RUNS):
        times["on"].append(start(on))
        times["off"].append(start(off))
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    trace = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], env=on, capture_output=True,
                           text=True).stderr
    own = sum(int(line.split("|")[0].split(":")[1]) for line in trace.splitlines()
              if "merge3_lm_eval_tasks" in line)
    print(f"{'interpreter start (python -c pass)':<40}{'median ms':>10}")
    print(f"{'hook off (MERGE3_LM_EVAL_HOOK=0)':<40}{med['off']:>10.1f}")
    print(f"{'hook on':<40}{med['on']:>10.1f}")
    diff = med["on"] - med["off"]
    print(f"{'difference':<40}{diff:>10.1f}   (budget 5 ms: {'ok' if diff <= 5 else 'OVER'})")
    print(f"{'merge3_lm_eval_tasks imports (self, us)':<40}{own:>10}   (python -X importtime)")


if __name__ == "__main__":
    main()
