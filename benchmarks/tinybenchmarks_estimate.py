"""Benchmark: estimates from an imported tinyBenchmarks bundle against the plain anchor mean.

    python benchmarks/tinybenchmarks_estimate.py                 # 3 seeds, 200 models per benchmark
    python benchmarks/tinybenchmarks_estimate.py --seeds 5 --models 100 --dims 5

Synthetic data (the real file cannot be downloaded here): a parameter file of tinyBenchmarks.pkl's
structure and counts (N = 28659 items in `lb`, 14042 in `mmlu`) with random 2PL parameters, imported
by merge3's own code (validation, conversion, bundles); its 100 anchors per benchmark are random items
with equal weights, lambda* is the file's (random in [0.1, 0.9]). Synthetic "models" are drawn from the
IRT model itself (theta ~ N(0, I), every item answered), so this measures the estimators' arithmetic
and noise, not the fit of real leaderboard models. Truth: the full-benchmark accuracy (for MMLU the
mean over subjects, as the leaderboard and tinyBenchmarks' balance weights have it). Error: mean
absolute error over models. `upstream gp-IRT` is tinyBenchmarks' evaluate() (plain MLE ability) on
the first --upstream models.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from merge3_plugin import tinybenchmarks as tb  # noqa: E402
from merge3_plugin.estimation import estimate  # noqa: E402
from tests.tinybenchmarks_reference import evaluate, synthetic_tinybenchmarks  # noqa: E402


def run_seed(seed: int, n_models: int, dims: int, n_upstream: int) -> dict[str, dict[str, list[float]]]:
    data = synthetic_tinybenchmarks(seed=seed, dims=dims, uniform_weights=True)
    source = tb.Source(Path("synthetic.pkl"), 0, "0" * 64, "0" * 40, False)
    bundles = tb.bundles_from(Path("synthetic.pkl"), data, source)
    rng = np.random.default_rng(1000 + seed)
    out = {}
    for name, bundle in bundles.items():
        theta = rng.normal(0.0, 1.0, (n_models, dims))
        y = (rng.random((n_models, bundle.n_items)) < bundle.items.prob(theta)).astype(float)
        w = bundle.item_weights if bundle.item_weights is not None else np.ones(bundle.n_items)
        truth = (y * w).mean(axis=1)
        cols = bundle.anchor_columns()
        anchor_y = y[:, cols]
        est = estimate(bundle, anchor_y, names=["pirt", "gpirt"])
        errors = {"plain anchor mean": np.abs(anchor_y.mean(axis=1) - truth),
                  "p-IRT": np.abs(est["pirt"] - truth), "gp-IRT": np.abs(est["gpirt"] - truth)}
        k = min(n_upstream, n_models)
        upstream = [evaluate(anchor_y[i], name, data)[name]["gpirt"] for i in range(k)]
        errors["upstream gp-IRT"] = np.abs(np.clip(upstream, 0, 1) - truth[:k])
        errors["gp-IRT (same models)"] = errors["gp-IRT"][:k]
        out[name] = {key: v.tolist() for key, v in errors.items()}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--dims", type=int, default=3)
    parser.add_argument("--upstream", type=int, default=30, help="models also estimated by upstream's evaluate()")
    args = parser.parse_args()
    start = time.time()
    results: dict[str, dict[str, list[float]]] = {}
    for seed in range(args.seeds):
        for name, errors in run_seed(seed, args.models, args.dims, args.upstream).items():
            for key, values in errors.items():
                results.setdefault(name, {}).setdefault(key, []).extend(values)
    columns = ["plain anchor mean", "p-IRT", "gp-IRT", "p / plain", "gp / plain", "gp-IRT (same models)", "upstream gp-IRT"]
    print(f"synthetic tinyBenchmarks-shaped parameters, d = {args.dims}, 100 anchors, {args.seeds} seeds x "
          f"{args.models} models (upstream: first {args.upstream}); mean absolute error\n")
    print("| benchmark | N | " + " | ".join(columns) + " |")
    print("| --- | --- |" + " --- |" * len(columns))
    for name, errors in results.items():
        mean = {k: float(np.mean(v)) for k, v in errors.items()}
        mean["p / plain"] = mean["p-IRT"] / mean["plain anchor mean"]
        mean["gp / plain"] = mean["gp-IRT"] / mean["plain anchor mean"]
        print(f"| {name} | {tb.BENCHMARKS[name].n_items} | " + " | ".join(
            f"{mean[c]:.2f}x" if "/" in c else f"{mean[c]:.4f}" for c in columns) + " |")
    print(f"\n{time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
