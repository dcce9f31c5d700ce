"""Several objectives: the hypervolume of a front, which Pareto point becomes best.yaml, and the plots.

Objectives are accuracies (higher is better, in [0, 1]), so the hypervolume is measured against the
origin: the share of [0, 1]^m that the front dominates (1.0 would be every objective perfect)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

BEST_RULE = "the Pareto point with the highest mean of its objectives"


def hypervolume(front: np.ndarray) -> float:
    """The hypervolume of `front` (rows: points, columns: objectives to maximise) above the origin."""
    from pymoo.indicators.hv import HV

    front = np.atleast_2d(np.asarray(front, dtype=float))
    front = front[np.isfinite(front).all(axis=1) & (front >= 0).all(axis=1)]
    if not len(front):
        return 0.0
    return float(HV(ref_point=np.zeros(front.shape[1]))(-front))


def archive_front(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The non-dominated genes and objectives among `records` (every candidate scored so far). The
    front of an archive only grows, whatever the algorithm keeps: NSGA-III's survivors, for one, may
    drop a point of the front, and a hypervolume taken on them can fall from one generation to the next."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    X = np.array([r["genes"] for r in records], dtype=float)
    F = np.array([r["objectives"] for r in records], dtype=float)
    front = NonDominatedSorting().do(-F, only_non_dominated_front=True)
    return X[front], F[front]


def best_first(F: np.ndarray) -> np.ndarray:
    """The order in which Pareto points are written (pareto/point000.yaml first): BEST_RULE, ties
    kept in the algorithm's order."""
    return np.argsort(-np.asarray(F, dtype=float).mean(axis=1), kind="stable")


def plot_front(values: np.ndarray, front: np.ndarray, names: list[str], out: Path) -> None:
    """pareto.png: two objectives as a scatter (candidates, front, best.yaml marked); three or more as
    parallel coordinates (each front point a line, best.yaml in bold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if values.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
        ax.plot(values[:, 0], values[:, 1], ".", alpha=0.4, label="candidates")
        ax.plot(front[:, 0], front[:, 1], "o", label="Pareto front")
        ax.plot(front[0, 0], front[0, 1], "r*", markersize=14, label="best.yaml (highest mean)")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
    else:
        fig, ax = plt.subplots(figsize=(1.6 * values.shape[1] + 2, 4), dpi=110)
        axes = np.arange(values.shape[1])
        for row in front[1:]:
            ax.plot(axes, row, "-o", color="tab:blue", alpha=0.5)
        ax.plot(axes, front[0], "-o", color="red", linewidth=2.5, label="best.yaml (highest mean)")
        ax.plot([], [], "-o", color="tab:blue", alpha=0.5, label="other Pareto points")
        ax.set_xticks(axes, names, rotation=15, fontsize=8)
        ax.set_ylabel("objective (estimated accuracy)")
    save_figure(fig, ax, out / "pareto.png")


def save_figure(fig, ax, path: Path) -> None:
    """The house finish of a plot: a light grid, a small legend, written and closed."""
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
