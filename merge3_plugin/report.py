"""How good are the estimates? Errors of every estimator against held-out models' true accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr


@dataclass
class ErrorRow:
    estimator: str
    models: int
    mae: float
    max_error: float
    spearman: float


def error_rows(truth: np.ndarray, estimates: dict[str, np.ndarray]) -> list[ErrorRow]:
    rows = []
    for name, values in estimates.items():
        mask = ~np.isnan(values)
        err = np.abs(values[mask] - truth[mask])
        rho = spearmanr(values[mask], truth[mask]).statistic if mask.sum() >= 3 else float("nan")
        rows.append(ErrorRow(name, int(mask.sum()), float(err.mean()), float(err.max()), float(rho)))
    return rows


def format_rows(rows: list[ErrorRow], title: str) -> str:
    lines = [title, f"{'estimator':<22}{'models':>7}{'MAE':>8}{'max err':>9}{'Spearman':>10}"]
    for r in rows:
        rho = "n/a" if np.isnan(r.spearman) else f"{r.spearman:.3f}"  # fewer than 3 models
        lines.append(f"{r.estimator:<22}{r.models:>7}{r.mae:>8.3f}{r.max_error:>9.3f}{rho:>10}")
    return "\n".join(lines)


def random_subset_baseline(scores: np.ndarray, size: int, repeats: int = 50, seed: int = 0) -> np.ndarray:
    """Expected estimate of the plain mean of `size` random items, per model (averaged |error| is
    what `random_subset_error` reports; this returns one draw's estimates for the table)."""
    rng = np.random.default_rng(seed)
    n_items = scores.shape[1]
    draws = [np.nanmean(scores[:, rng.choice(n_items, size=size, replace=False)], axis=1) for _ in range(repeats)]
    return np.stack(draws)  # repeats x models


def calibration_plot(truth: np.ndarray, estimates: dict[str, np.ndarray], out: Path,
                     title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect")
    markers = "o^sDvP*X"
    for k, (name, values) in enumerate(estimates.items()):
        ax.scatter(truth, values, s=22, marker=markers[k % len(markers)], alpha=0.75, label=name)
    lo = float(min(np.nanmin(truth), *(np.nanmin(v) for v in estimates.values()))) - 0.03
    hi = float(max(np.nanmax(truth), *(np.nanmax(v) for v in estimates.values()))) + 0.03
    ax.set_xlim(max(lo, 0), min(hi, 1))
    ax.set_ylim(max(lo, 0), min(hi, 1))
    ax.set_xlabel("true accuracy (all items)")
    ax.set_ylabel("estimate (anchors only)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
