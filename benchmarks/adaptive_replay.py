"""Benchmark: adaptive item selection against fixed anchors, replayed on full logs (issue #26).

    python benchmarks/adaptive_replay.py                   # default toy world + synthetic 2PL
    python benchmarks/adaptive_replay.py --only synthetic
    python benchmarks/adaptive_replay.py --plot docs/img/adaptive_replay.png

No new evaluation: every held-out model answered every item, so an adaptive test is replayed by
looking its answers up. The protocol is benchmarks/irt_estimate.py's: toy world leave-models-out
(5 folds; each fold's bundle fit without its models; experts and base always in), synthetic 2PL data
(200 fit models, 100 test models, 400 items, d = 2). For each n, on the same held-out models:

- random mean: the plain mean of n random items (20 draws);
- gp-IRT: fixed anchor-irt anchors of size n (3 extraction seeds), the best fixed-anchor estimator;
- adaptive: merge3_plugin.adaptive (5 items at the prior ability, then rounds of 5 by information at the
  MAP ability), one test per model run to the largest n, read after the round that reached each n;
  merges of experts start from their endpoints' mean ability (gmp-IRT's information), the others
  from the population's;
- adaptive, accuracy: the same, each item the one that most cuts the predicted accuracy's variance.

Issue #26's targets at n = 20: adaptive MAE <= 0.7x gp-IRT's and <= 0.5x the random mean's, Spearman
>= 0.95; the error-vs-n curve is plotted with --plot.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from irt_estimate import METRIC, SYNTHETIC, random_baseline, synthetic_split  # noqa: E402

from merge3_plugin.adaptive import AdaptivePolicy, replay, run_adaptive  # noqa: E402
from merge3_plugin.estimation import estimate, pirt_of  # noqa: E402
from merge3_plugin.extraction import extract  # noqa: E402
from merge3_plugin.fitting import fit_bundle  # noqa: E402
from merge3_plugin.graded import fit_graded  # noqa: E402
from merge3_plugin.irt import fit_ability  # noqa: E402
from merge3_plugin.responses import GRADED, load_responses  # noqa: E402

SIZES = [5, 10, 20, 50, 100]
SEEDS = 3
# the adaptive ways measured: the rule (most information about the ability: D-optimal), and the
# items that most cut the variance of the predicted accuracy itself (c-optimal; the same rule when d = 1)
ADAPTIVE = {"adaptive": "information", "adaptive, accuracy": "accuracy"}
# multiple-choice tasks also: the ability from graded responses (the probability of the right choice), on
# fixed anchors (graded on its own) and in both adaptive ways (graded combined with adaptive selection)
GRADED_WAYS = ["fixed anchors, graded", "adaptive, graded", "adaptive, graded, accuracy"]


class Curve:
    """Per n: |errors| of each way, and (estimate, truth) pairs of the adaptive way for Spearman."""

    def __init__(self):
        self.err: dict[tuple[int, str], list[float]] = {}
        self.pairs: dict[int, list[tuple[float, float]]] = {}

    def add(self, n: int, way: str, est: np.ndarray, truth: np.ndarray) -> None:
        self.err.setdefault((n, way), []).extend(np.abs(est - truth).tolist())
        self.pairs.setdefault((n, way), []).extend(zip(est.tolist(), truth.tolist()))

    def mae(self, n: int, way: str) -> float:
        return float(np.mean(self.err[(n, way)]))

    def spearman(self, n: int, way: str) -> float:
        return float(spearmanr(*zip(*self.pairs[(n, way)])).statistic)


def adaptive_tests(bundle, answers: np.ndarray, prior_mean: np.ndarray, policy: AdaptivePolicy,
                   graded: np.ndarray | None = None):
    """Adaptive tests of models whose answers to every item of the bundle are known (models x N); with
    `graded` (their graded responses), on the bundle's graded channel."""
    _, cov = bundle.ability_prior() if graded is None else bundle.graded_prior()
    return run_adaptive(bundle.items, replay(answers, graded), len(answers), policy, prior_mean, cov,
                        item_weights=bundle.item_weights, graded=None if graded is None else bundle.graded)


def measure(curve: Curve, bundle, answers: np.ndarray, truth: np.ndarray, columns_of, prior_mean, ends=None,
            rng=None, graded: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """One group of held-out models: every way at every n, into `curve`. `graded`: the models' graded
    responses (models x N) and their prior mean on the graded scale, for a multiple-choice task."""
    runs = {way: adaptive_tests(bundle, answers, prior_mean, AdaptivePolicy(max_items=max(SIZES), criterion=criterion))
            for way, criterion in ADAPTIVE.items()}
    if graded is not None:
        for way, criterion in ADAPTIVE.items():
            runs[f"{way}, graded".replace("adaptive, accuracy, graded", "adaptive, graded, accuracy")] = adaptive_tests(
                bundle, answers, graded[1], AdaptivePolicy(max_items=max(SIZES), criterion=criterion), graded[0])
    for n in SIZES:
        curve.err.setdefault((n, "random mean"), []).extend(random_baseline(answers, n, rng).tolist())  # |errors|
        for way, run in runs.items():
            curve.add(n, way, run.estimate_at(n), truth)
        for seed in range(SEEDS):
            anchored = extract(bundle, n, "anchor-irt", seed=seed)
            cols = columns_of(anchored.anchors.doc_ids)
            values = estimate(anchored, answers[:, cols], ends)
            curve.add(n, "fixed anchors", values["gmpirt" if ends is not None else "gpirt"], truth)
            if graded is not None:  # graded on its own: the same anchors, the ability from graded responses
                curve.add(n, "fixed anchors, graded", graded_pirt(bundle, answers, graded, cols), truth)


def graded_pirt(bundle, answers: np.ndarray, graded: tuple[np.ndarray, np.ndarray], cols: np.ndarray) -> np.ndarray:
    """p-IRT on fixed anchors with the ability measured from their graded responses (graded channel)."""
    responses = np.full_like(answers, np.nan)
    responses[:, cols] = graded[0][:, cols]
    observed = np.full_like(answers, np.nan)
    observed[:, cols] = answers[:, cols]
    _, cov = bundle.graded_prior()
    theta = fit_ability(bundle.graded.items, responses, prior_mean=graded[1], prior_cov=cov)
    return np.clip(pirt_of(bundle.graded.predict.prob(theta), observed, bundle.item_weights), 0, 1)


def toy_world(preset: str, folds: int, tasks: list[str] | None) -> dict[str, Curve]:
    from merge3_zoo.build import build_zoo

    zoo = build_zoo(preset, progress=True).zoo
    lineage = zoo.lineage()
    fixed = set(zoo.names("expert")) | set(zoo.names("base"))
    merges_of_experts = {m for m, ends in lineage.items() if set(ends) <= fixed}
    curves = {}
    for task in tasks or [t["name"] for t in zoo.tasks]:
        started = time.perf_counter()
        matrix = load_responses([zoo.responses_dir], task, METRIC.get(task, "exact_match"))
        graded = graded_matrix(zoo, task, matrix)
        truth = matrix.accuracy()
        movable = [m for m in matrix.models if m not in fixed]
        order = np.random.default_rng(0).permutation(len(movable))
        curve = curves[task] = Curve()
        for fold in range(folds):
            held = [movable[i] for i in order[fold::folds]]
            bundle = fit_bundle(matrix, dims="auto", holdout=held, lineage=lineage)
            if graded is not None:
                bundle = fit_graded(bundle, graded)
            position = {d: j for j, d in enumerate(matrix.doc_ids)}

            def columns_of(doc_ids):
                return np.array([position[d] for d in doc_ids])

            rng = np.random.default_rng(fold)
            plain = [matrix.models.index(m) for m in held if m not in merges_of_experts]
            merged = [m for m in held if m in merges_of_experts]
            if plain:
                rows = np.array(plain)
                on_graded = None if graded is None else (graded.scores[rows], bundle.graded_prior()[0])
                measure(curve, bundle, matrix.scores[rows], truth[rows], columns_of, bundle.ability_prior()[0], rng=rng,
                        graded=on_graded)
            for count in sorted({len(lineage[m]) for m in merged}):  # merges of as many endpoints together
                group = [m for m in merged if len(lineage[m]) == count]
                rows = np.array([matrix.models.index(m) for m in group])
                ends = np.stack([np.stack([bundle.theta[bundle.models.index(e)] for e in lineage[m]]) for m in group])
                on_graded = None if graded is None else (graded.scores[rows], np.stack(
                    [np.mean([bundle.graded.theta[bundle.models.index(e)] for e in lineage[m]], axis=0) for m in group]))
                measure(curve, bundle, matrix.scores[rows], truth[rows], columns_of, ends.mean(axis=1), ends, rng,
                        graded=on_graded)
        print(f"\n== {task} ({preset} world): {len(movable)} held-out models x {len(matrix.doc_ids)} items, "
              f"{folds} folds, {time.perf_counter() - started:.0f} s")
        print_curve(curve)
    return curves


def graded_matrix(zoo, task: str, matrix):
    """The task's graded responses (the probability of the right choice), in `matrix`'s rows and columns;
    None for a task whose logs are not multiple-choice."""
    from merge3_plugin.errors import UserError

    try:
        graded = load_responses([zoo.responses_dir], task, GRADED)
    except UserError:
        return None
    assert graded.models == matrix.models and graded.doc_ids == matrix.doc_ids
    return graded


def synthetic() -> Curve:
    started = time.perf_counter()
    n_fit, n_test, n_items, dims = SYNTHETIC.values()
    bundle, _, test = synthetic_split()
    curve = Curve()
    measure(curve, bundle, test, test.mean(axis=1), np.array, bundle.ability_prior()[0], rng=np.random.default_rng(0))
    print(f"\n== synthetic 2PL: {n_fit} fit models, {n_test} test models, {n_items} items, d = {dims} "
          f"({time.perf_counter() - started:.0f} s)")
    print_curve(curve)
    return curve


def print_curve(curve: Curve) -> None:
    ways = [way for way in (*ADAPTIVE, *GRADED_WAYS) if (SIZES[0], way) in curve.err]
    print(f"{'n':>4}{'random mean':>13}{'fixed anchors':>15}" + "".join(
        f"{way:>23}{'/ fixed':>9}{'/ random':>10}{'Spearman':>10}" for way in ways))
    for n in SIZES:
        rand, fixed = curve.mae(n, "random mean"), curve.mae(n, "fixed anchors")
        row = f"{n:>4}{rand:>13.4f}{fixed:>15.4f}"
        for way in ways:
            ada = curve.mae(n, way)
            row += f"{ada:>23.4f}{ada / fixed:>9.2f}{ada / rand:>10.2f}{curve.spearman(n, way):>10.3f}"
        print(row)
    if 20 in SIZES:
        print("  targets at n = 20: adaptive / fixed <= 0.70, adaptive / random <= 0.50, Spearman >= 0.95")


def plot(curves: dict[str, Curve], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 3.2), sharey=True, squeeze=False)
    for ax, (name, curve) in zip(axes[0], curves.items()):
        for way, style in (("random mean", ":"), ("fixed anchors", "--"), ("adaptive", "-"), ("adaptive, accuracy", "-."),
                           ("fixed anchors, graded", (0, (5, 1))), ("adaptive, graded", (0, (3, 1, 1, 1))),
                           ("adaptive, graded, accuracy", (0, (1, 1)))):
            if (SIZES[0], way) not in curve.err:
                continue
            ax.plot(SIZES, [curve.mae(n, way) for n in SIZES], linestyle=style, marker="o", ms=3, label=way)
        ax.set_xscale("log")
        ax.set_xticks(SIZES, [str(n) for n in SIZES])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("items per model")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean |estimate - true accuracy|")
    axes[0][0].legend(fontsize=7)
    for ax in axes[0][1:]:
        if len(ax.get_lines()) > len(axes[0][0].get_lines()):  # the graded ways: a legend of their own
            ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"\nplot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default", help="toy-world preset (default: default)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", choices=("toy", "synthetic"), default=None)
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--sizes", nargs="*", type=int, default=SIZES)
    parser.add_argument("--plot", type=Path, default=None, help="write the error-vs-n curves here (PNG)")
    args = parser.parse_args()
    SIZES[:] = sorted(args.sizes)
    curves = {}
    if args.only != "toy":
        curves["synthetic 2PL"] = synthetic()
    if args.only != "synthetic":
        curves.update(toy_world(args.preset, args.folds, args.tasks))
    if args.plot:
        plot(curves, args.plot)


if __name__ == "__main__":
    main()
