"""Benchmark: IRT item fit on synthetic data with known parameters; prints a table.

    python benchmarks/irt_fit.py

Budget (issue #3): 1000 items x 200 models, d = 5, at most 30 s on 2 cores. girth's twopl_jml is
timed beside the d = 1 fit as the reference it is checked against.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from merge3_plugin.irt import fit_items, simulate  # noqa: E402


def main() -> None:
    print(f"{'fit':<28}{'items':>6}{'models':>7}{'d':>3}{'seconds':>9}{'corr(beta)':>12}")
    for dims in (1, 2, 5):
        truth, _, y = simulate(200, 1000, dims)
        start = time.perf_counter()
        items, _ = fit_items(y, dims=dims)
        seconds = time.perf_counter() - start
        corr = np.corrcoef(items.beta, truth.beta)[0, 1]
        budget = "  (budget 30 s: " + ("ok)" if seconds <= 30 else "OVER)") if dims == 5 else ""
        print(f"{'merge3 MAP (torch L-BFGS)':<28}{1000:>6}{200:>7}{dims:>3}{seconds:>9.2f}{corr:>12.3f}{budget}")
        if dims == 1:
            import girth

            start = time.perf_counter()
            ref = girth.twopl_jml(y.T.astype(int))
            seconds = time.perf_counter() - start
            corr = np.corrcoef(ref["Discrimination"] * ref["Difficulty"], truth.beta)[0, 1]
            print(f"{'girth twopl_jml':<28}{1000:>6}{200:>7}{1:>3}{seconds:>9.2f}{corr:>12.3f}")


if __name__ == "__main__":
    main()
