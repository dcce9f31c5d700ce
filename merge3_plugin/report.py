"""How good are the estimates? Errors of every estimator against held-out models' true accuracy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from .errors import UserError


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


@dataclass
class HeldOutReport:
    """Every estimator's error on models the bundle never saw (and on merges among them, whose
    endpoints are known), beside the plain mean of as many random items."""

    task: str
    n_items: int
    anchors: int
    method: str
    names: list[str]  # the held-out models
    truth: np.ndarray  # their full-test accuracy
    estimates: dict[str, np.ndarray]
    random_mae: float
    merged: list[ErrorRow] = field(default_factory=list)
    n_merged: int = 0
    left_out: list[str] = field(default_factory=list)  # in the samples, but fit or calibrated on

    def title(self, short: bool = False) -> str:
        if short:
            return f"{self.task}: {self.anchors} anchors ({self.method}), {len(self.names)} held-out models"
        return (f"{self.task}: {len(self.names)} held-out models, {self.anchors} anchors ({self.method}) "
                f"of {self.n_items} items")

    def format(self) -> str:
        lines = [format_rows(error_rows(self.truth, self.estimates), self.title()),
                 f"{'random-subset mean':<22}{len(self.names):>7}{self.random_mae:>8.3f}   (mean of {self.anchors} "
                 "random items, averaged over 50 draws: the baseline)"]
        if self.merged:
            lines += ["", format_rows(self.merged, f"held-out merges with known endpoints ({self.n_merged})")]
        return "\n".join(lines)


def held_out_report(bundle, matrix, lineage: dict[str, list[str]]) -> HeldOutReport:
    """Score every estimator on the held-out models of `matrix` (a ResponseMatrix read against the
    bundle) that answered (nearly) every item; merges in `lineage` are also scored from their
    endpoints' abilities."""
    from .bundle_responses import abilities_of
    from .estimation import anchor_scores_of, estimate, group_by_endpoint_count

    anchors = bundle.require_anchors()
    fitted = set(bundle.models)  # training items and calibration (validation) both flatter
    coverage = (~np.isnan(matrix.scores)).sum(axis=1) / bundle.n_items
    rows = [i for i, m in enumerate(matrix.models) if m not in fitted and coverage[i] >= 0.99]
    left_out = sorted(set(matrix.models) & fitted)
    if not rows:
        raise UserError("no held-out model with full responses in the samples: report needs models that were not "
                        "in the fit (use `merge3 fit --holdout ...`) and answered every item"
                        + (f" ({len(left_out)} of the models given were fit or calibrated on)" if left_out else ""))
    names = [matrix.models[i] for i in rows]
    full = np.full((len(rows), bundle.n_items), np.nan)
    full[:, bundle.columns(matrix.doc_ids)] = matrix.scores[rows]
    truth = np.nanmean(full, axis=1)
    estimates = estimate(bundle, anchor_scores_of(bundle, bundle.doc_ids, full))
    draws = random_subset_baseline(full, anchors.size)
    report = HeldOutReport(bundle.task, bundle.n_items, anchors.size, anchors.method, names, truth, estimates,
                           float(np.mean(np.abs(draws - truth[None, :]))),
                           left_out=left_out)
    merges = [(k, name) for k, name in enumerate(names) if name in lineage]
    if merges:
        known = dict(zip(bundle.models, bundle.theta))
        known.update(zip(*abilities_of(bundle, matrix)))  # endpoints among the samples, already read
        usable = [(k, name) for k, name in merges if all(e in known for e in lineage[name])]
        merged_est: dict[str, list] = {}
        merged_truth: list[float] = []
        for group in group_by_endpoint_count(usable, lambda merge: len(lineage[merge[1]])):
            idx = np.array([k for k, _ in group])
            ends = np.stack([np.stack([known[e] for e in lineage[name]]) for _, name in group])
            est = estimate(bundle, anchor_scores_of(bundle, bundle.doc_ids, full[idx]), ends)
            for key, values in est.items():
                merged_est.setdefault(key, []).extend(values.tolist())
            merged_truth.extend(truth[idx].tolist())
        if merged_truth:
            report.merged = error_rows(np.array(merged_truth), {k: np.array(v) for k, v in merged_est.items()})
            report.n_merged = len(merged_truth)
    return report


def imported_report(bundle, matrix, anchor_scores: np.ndarray) -> HeldOutReport:
    """Every estimator on full logs of an imported bundle's base task: the truth is each model's mean over
    every document it answered, the estimates read only its anchors (found through the lock). The
    bundle has no population of its own, so every model is held out; merges are not scored (their
    endpoints' abilities would need the population's items)."""
    from .estimation import estimate

    anchors = bundle.require_anchors()
    answered = ~np.isnan(anchor_scores)
    rows = [i for i in range(len(matrix.models)) if answered[i].all()]
    if not rows:
        raise UserError("no model in the samples answered every anchor; report needs full logs of the task")
    truth = np.nanmean(matrix.scores[rows], axis=1)
    estimates = estimate(bundle, anchor_scores[rows])
    draws = random_subset_baseline(matrix.scores[rows], anchors.size)
    return HeldOutReport(bundle.task, matrix.scores.shape[1], anchors.size, anchors.method,
                         [matrix.models[i] for i in rows], truth, estimates,
                         float(np.mean(np.abs(draws - truth[None, :]))))


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
