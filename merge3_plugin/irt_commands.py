"""The IRT subcommands of `merge3`: fit, extract, estimate, report. Thin: parse, call, print."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .files import cache_root
from .lineage import load_lineage
from .responses import GRADED, load_responses, task_version


def _refuse_overwrite(out: Path, inputs: list[Path], force: bool) -> None:
    if any(out.resolve() == p.resolve() for p in inputs if p.exists()):
        raise UserError(f"--out {out}: would overwrite an input; choose another file")
    if out.exists() and not force:
        raise UserError(f"--out {out}: exists; pass --force to replace it")
    if out.exists() and out.is_dir():
        raise UserError(f"--out {out}: is a folder; give a file name such as {out / 'bundle.json'}")


def _dims(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer 1..15, got {value!r}") from None


def run_fit(args: argparse.Namespace) -> int:
    from .fitting import fit_bundle

    _refuse_overwrite(args.out, [], args.force)
    matrix = load_responses(args.samples, args.task, args.metric, args.filter)
    graded = load_responses(args.samples, args.task, GRADED, args.filter) if args.graded else None  # before fitting
    lineage = load_lineage(args.lineage) if args.lineage else {}
    print(f"{args.task}: {len(matrix.models)} models x {len(matrix.doc_ids)} items ({args.metric}, "
          f"filter {matrix.filter})", file=sys.stderr)
    bundle = fit_bundle(matrix, dims=args.dims, backend=args.backend, seed=args.seed, holdout=args.holdout,
                        lineage=lineage, task_version=task_version(args.samples, args.task),
                        progress=lambda msg: print(f"  {msg}", file=sys.stderr))
    if graded is not None:
        from .graded import fit_graded

        bundle = fit_graded(bundle, graded, seed=args.seed)
        print("  graded responses (probability of the right choice) fit on the same models", file=sys.stderr)
    bundle.save(args.out)
    d = bundle.diagnostics
    tried = d.get("dims_auto", {}).get("errors")
    print(f"wrote {args.out}: d = {bundle.dims} ({args.backend}), {d['train_models']} training + "
          f"{d['validation_models']} validation models, {len(args.holdout)} held out, {d['fit_seconds']:.1f} s")
    if tried:
        print("  validation log loss by d: " + ", ".join(f"{k}: {v:.4f}" for k, v in tried.items()))
    print(f"next: merge3 extract --bundle {args.out} --size 20 --out ANCHORED.json")
    return 0


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: numbers of anchors separated by commas, e.g. 5,10") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: numbers of anchors >= 1, separated by commas")
    return sizes


def run_extract(args: argparse.Namespace) -> int:
    from .bundle import Bundle
    from .extraction import extract

    _refuse_overwrite(args.out, [args.bundle], args.force)
    bundle = extract(Bundle.load(args.bundle), args.size, args.method, args.seed, rungs=args.rungs)
    bundle.save(args.out)
    a = bundle.anchors
    c = a.calibration
    print(f"wrote {args.out}: {a.size} anchors of {bundle.n_items} ({a.method}, seed {a.seed}); "
          f"lambda* = {a.lambda_gpirt:.3f}, delta = {a.delta_gmpirt:.3f}")
    print(f"  on {c['validation_models']} validation models: anchor MAE {c['anchor_mae']:.3f}, "
          f"p-IRT MAE {c['pirt_mae']:.3f}; delta from {c['delta_source']}")
    for rung in a.rungs:
        r = rung.calibration
        print(f"  rung of the first {rung.size}: lambda* = {rung.lambda_gpirt:.3f}, delta = {rung.delta_gmpirt:.3f}; "
              f"anchor MAE {r['anchor_mae']:.3f}, p-IRT MAE {r['pirt_mae']:.3f}")
    return 0


def run_estimate(args: argparse.Namespace) -> int:
    from .bundle import Bundle
    from .bundle_responses import endpoint_abilities, responses_for_bundle
    from .estimation import anchor_scores_of, estimate

    bundle = Bundle.load(args.bundle)
    if args.graded and not args.adaptive:
        raise UserError("--graded: graded responses are used by adaptive tests; add --adaptive N")
    if args.adaptive:
        return run_adaptive_estimate(args, bundle)
    bundle.require_anchors(args.bundle)
    matrix = responses_for_bundle(bundle, args.samples, args.task, bundle_path=args.bundle)
    anchor = anchor_scores_of(bundle, matrix.doc_ids, matrix.scores)
    keep = ~np.isnan(anchor).all(axis=1)
    for name in np.array(matrix.models)[~keep]:
        print(f"merge3: warning: {name} answered none of the {bundle.anchors.size} anchors; skipped", file=sys.stderr)
    if not keep.any():
        raise UserError(f"no model in {', '.join(map(str, args.samples))} answered any anchor item of the bundle")
    ends = None
    end_names: list[str] = []
    if args.endpoints:
        end_names, theta = endpoint_abilities(bundle, args.endpoints, args.bundle, args.task)
        ends = np.repeat(theta[None], int(keep.sum()), axis=0)
    results = estimate(bundle, anchor[keep], ends)
    records = []
    for row, model in enumerate(np.array(matrix.models)[keep]):
        records.append({"model": str(model), "task": bundle.task, "metric": bundle.metric,
                        "n_anchors": int((~np.isnan(anchor[keep][row])).sum()),
                        "estimates": {k: float(v[row]) for k, v in results.items()},  # registry order
                        **({"endpoints": end_names} if end_names else {})})
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    names = list(records[0]["estimates"])
    print(f"{bundle.task} ({bundle.metric}), {bundle.anchors.size} anchors ({bundle.anchors.method})"
          + (f", endpoints {', '.join(end_names)}" if end_names else ""))
    print(f"{'model':<28}{'anchors':>8}" + "".join(f"{n:>9}" for n in names))
    for r in records:
        print(f"{r['model']:<28}{r['n_anchors']:>8}" + "".join(f"{r['estimates'][n]:>9.3f}" for n in names))
    return 0


def run_adaptive_estimate(args: argparse.Namespace, bundle) -> int:
    """`merge3 estimate --adaptive N`: each model's adaptive test replayed on its logs (the items are chosen
    among those it answered; no anchors needed), its estimate beside the mean of every item it answered."""
    from .adaptive import AdaptivePolicy, replay, run_adaptive
    from .bundle_responses import endpoint_abilities, responses_for_bundle

    policy = AdaptivePolicy(max_items=args.adaptive)
    policy.check(bundle.n_items, f"--adaptive {args.adaptive} ({bundle.task})")
    matrix = responses_for_bundle(bundle, args.samples, args.task)
    answers = np.full((len(matrix.models), bundle.n_items), np.nan)
    answers[:, bundle.columns(matrix.doc_ids)] = matrix.scores
    graded = _graded_answers(bundle, args, matrix) if args.graded else None
    mean, cov = bundle.graded_prior() if args.graded else bundle.ability_prior()
    end_names: list[str] = []
    if args.endpoints:  # a merge: its test starts from its endpoints' mean ability
        if args.graded:
            raise UserError("--endpoints with --graded: the endpoints' graded abilities are not measured here; "
                            "drop one of them")
        end_names, theta = endpoint_abilities(bundle, args.endpoints)
        mean = theta.mean(axis=0)
    run = run_adaptive(bundle.items, replay(answers, graded), len(matrix.models), policy, mean, cov,
                       item_weights=bundle.item_weights, allowed=~np.isnan(answers), graded=bundle.graded if args.graded
                       else None)
    records = [{"model": str(model), "task": bundle.task, "metric": bundle.metric, "items_asked": len(run.asked[m]),
                "asked": [int(bundle.doc_ids[j]) for j in run.asked[m]],
                "adaptive": float(run.estimate[m]), "se": float(run.se[m]), "graded": bool(args.graded),
                "items_logged": int((~np.isnan(answers[m])).sum()), "mean_of_logged": float(np.nanmean(answers[m])),
                **({"endpoints": end_names} if end_names else {})}
               for m, model in enumerate(matrix.models)]
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    print(f"{bundle.task} ({bundle.metric}), adaptive test of up to {policy.max_items} of {bundle.n_items} items"
          + (f", starting from endpoints {', '.join(end_names)}" if end_names else ""))
    print(f"{'model':<28}{'asked':>7}{'adaptive':>10}{'s.e.':>7}{'logged':>8}{'mean of logged':>16}")
    for r in records:
        print(f"{r['model']:<28}{r['items_asked']:>7}{r['adaptive']:>10.3f}{r['se']:>7.3f}{r['items_logged']:>8}"
              f"{r['mean_of_logged']:>16.3f}")
    print("(mean of logged: the plain mean of every item the log holds; with a full log, the true accuracy)")
    return 0


def _graded_answers(bundle, args: argparse.Namespace, matrix) -> np.ndarray:
    """The models' graded responses (models x N, the bundle's columns) from the same logs as `matrix`."""
    from .bundle_responses import responses_for_bundle

    bundle.require_graded(args.bundle)
    graded = responses_for_bundle(replace(bundle, metric=GRADED), args.samples, args.task)
    out = np.full((len(matrix.models), bundle.n_items), np.nan)
    out[:, bundle.columns(graded.doc_ids)] = graded.scores[[graded.models.index(m) for m in matrix.models]]
    return out


def run_report(args: argparse.Namespace) -> int:
    from .bundle import Bundle
    from .bundle_responses import full_logs_through_lock, responses_for_bundle
    from .report import calibration_plot, held_out_report, imported_report

    bundle = Bundle.load(args.bundle)
    bundle.require_anchors(args.bundle)
    if bundle.content_keyed:  # imported: the full logs' mean is the truth, the anchors found through the lock
        if args.lineage:
            raise UserError(f"--lineage: {args.bundle} is imported, with no population to measure endpoints on; "
                            "report scores the plain estimators only (drop --lineage)")
        report = imported_report(bundle, *full_logs_through_lock(bundle, args.bundle, args.samples, args.task))
    else:
        matrix = responses_for_bundle(bundle, args.samples, args.task)
        report = held_out_report(bundle, matrix, load_lineage(args.lineage) if args.lineage else {})
    if report.left_out:
        print(f"left out {len(report.left_out)} model(s) the bundle was fit or calibrated on (their errors would "
              f"flatter): {', '.join(report.left_out[:6])}{' ...' if len(report.left_out) > 6 else ''}", file=sys.stderr)
    print(report.format())
    plot = args.plot or args.bundle.with_name(args.bundle.stem + ".calibration.png")
    calibration_plot(report.truth, report.estimates, plot, report.title(short=True))
    print(f"calibration plot: {plot}")
    return 0


def run_import_tinybenchmarks(args: argparse.Namespace) -> int:
    from .tinybenchmarks import BENCHMARKS, import_tinybenchmarks

    out = args.out or cache_root() / "tinybenchmarks"
    written = import_tinybenchmarks(args.pkl, out, args.datasets, allow_unpinned=args.allow_unpinned, force=args.force)
    for name, path in written.items():
        b = BENCHMARKS[name]
        print(f"wrote {path}: {b.n_items} items, 100 anchors (lm-eval task {b.task}, {b.num_fewshot}-shot {b.metric})")
    print(f"next: lm_eval --tasks merge3_arc_challenge ... (the ready configs find bundles in {out}; "
          "see docs/tinybenchmarks.md)")
    return 0


def add_parsers(sub: Any) -> None:  # what ArgumentParser.add_subparsers() returned
    fit = sub.add_parser(
        "fit", help="fit IRT item parameters on lm-eval sample logs -> a bundle (JSON)",
        description=("Reads lm-eval --log_samples output of many models on one task and fits a multidimensional "
                     "2PL IRT model. 20% of the models (at least 2) are kept for validation: they choose d "
                     "(--dims auto) and later calibrate gp-IRT/gmp-IRT. Models named in --holdout are left out "
                     "entirely, for `merge3 report`."))
    fit.add_argument("--samples", nargs="+", type=Path, required=True, metavar="PATH",
                     help="samples_<task>_<date>.jsonl files or lm-eval --output_path folders (one sub-folder per model)")
    fit.add_argument("--task", required=True, help="the lm-eval task name, e.g. arc_challenge")
    fit.add_argument("--metric", default="acc", help="per-sample metric to model (acc, acc_norm, exact_match, ...; default acc)")
    fit.add_argument("--filter", default=None, help="lm-eval filter name when the task has several (e.g. strict-match)")
    fit.add_argument("--dims", type=_dims, default="auto", help="IRT dimensions 1..15, or auto (chosen on validation models; default)")
    fit.add_argument("--backend", default="torch", help="torch (MAP, any d; default) or girth (twopl_jml, d = 1, 0/1 scores)")
    fit.add_argument("--holdout", nargs="*", default=[], metavar="MODEL", help="models to leave out of the fit (for report)")
    fit.add_argument("--lineage", type=Path, default=None,
                     help="YAML/JSON 'merged: [endpoints]' (or a zoo.json): lets gmp-IRT learn its weight on merges")
    fit.add_argument("--graded", action="store_true",
                     help="multiple-choice tasks: also fit graded responses (the probability of the right choice, "
                          "from the logs' log-likelihoods), for adaptive tests that measure ability from them "
                          "(evolve: adaptive: {graded: true})")
    fit.add_argument("--seed", type=int, default=0, help="seed of the validation split and the fit (default 0)")
    fit.add_argument("--out", type=Path, required=True, help="the bundle to write (JSON)")
    fit.add_argument("--force", action="store_true", help="replace --out if it exists")
    fit.set_defaults(func=run_fit)

    ext = sub.add_parser(
        "extract", help="choose anchor items in a bundle and calibrate the estimators for them",
        description=("Picks --size anchor items with an extractor plugin (built-in: random, stratified, anchor-irt, "
                     "anchor-correctness; see `merge3 plugins`), then learns gp-IRT's lambda* and gmp-IRT's delta "
                     "on the bundle's validation models. Writes a new bundle; the input is never changed."))
    ext.add_argument("--bundle", type=Path, required=True, help="a bundle from `merge3 fit`")
    ext.add_argument("--size", type=int, required=True, help="number of anchor items (e.g. 20..100)")
    ext.add_argument("--method", default="anchor-irt", help="extractor name (default anchor-irt)")
    ext.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    ext.add_argument("--rungs", type=_sizes, default=None, metavar="K1,K2,...",
                     help="nested smaller anchor sets for multi-fidelity search (evolve.racing), e.g. 5,10: the "
                          "anchors are ordered so that the first K of them are a calibrated set of their own")
    ext.add_argument("--out", type=Path, required=True, help="the bundle with anchors to write")
    ext.add_argument("--force", action="store_true", help="replace --out if it exists")
    ext.set_defaults(func=run_extract)

    est = sub.add_parser(
        "estimate", help="estimate full-benchmark accuracy of models from their answers on the anchors",
        description=("For every model in --samples (lm-eval logs that include the bundle's anchors; extra items "
                     "are ignored, missing anchors are tolerated), prints the estimates of every estimator. "
                     "--endpoints adds the merged-model estimators (mp-IRT, gmp-IRT), with the endpoints' "
                     "abilities fit on whatever items their logs hold."))
    est.add_argument("--bundle", type=Path, required=True, help="a bundle with anchors (from `merge3 extract`)")
    est.add_argument("--samples", nargs="+", type=Path, required=True, metavar="PATH", help="the models to estimate")
    est.add_argument("--endpoints", nargs="*", type=Path, default=None, metavar="PATH",
                     help="sample logs of the merged models' endpoints")
    est.add_argument("--task", default=None, metavar="NAME",
                     help="the merge3 task whose logs --samples holds, if not merge3_<bundle's task> (its --name)")
    est.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    est.add_argument("--adaptive", type=int, default=None, metavar="N",
                     help="instead of the anchors: replay an adaptive test of up to N items on each model's logs "
                          "(the next items the most informative at its current ability, among those it answered; "
                          "issue #26); works on logs of the full task, needs no anchors")
    est.add_argument("--graded", action="store_true",
                     help="with --adaptive, on a bundle fit with `merge3 fit --graded`: measure each model's ability "
                          "from its graded responses (the probability of the right choice) instead of right/wrong")
    est.set_defaults(func=run_estimate)

    rep = sub.add_parser(
        "report", help="error table and calibration plot on held-out models with full responses",
        description=("Scores every estimator against the true full-test accuracy of the held-out models in "
                     "--samples (models the items were not fit on, with answers to every item), beside the mean "
                     "of as many random items. Merges named in --lineage are also scored with mp-IRT/gmp-IRT. "
                     "A bundle imported from tinyBenchmarks: --samples holds full logs of the lm-eval task (--task) "
                     "whose documents its lock matched; each model's mean over them is the truth."))
    rep.add_argument("--bundle", type=Path, required=True, help="a bundle with anchors")
    rep.add_argument("--samples", nargs="+", type=Path, required=True, metavar="PATH", help="held-out models' full logs")
    rep.add_argument("--lineage", type=Path, default=None, help="YAML/JSON 'merged: [endpoints]' (or a zoo.json)")
    rep.add_argument("--plot", type=Path, default=None, help="PNG path (default: <bundle>.calibration.png)")
    rep.add_argument("--task", default=None, metavar="NAME",
                     help="the task whose logs to read (default: the bundle's task, or its merge3 task's); for a "
                          "bundle imported from tinyBenchmarks, the lm-eval task of the full logs (e.g. arc_challenge), "
                          "whose documents its lock matched to the anchors")
    rep.set_defaults(func=run_report)

    imp = sub.add_parser(
        "import-tinybenchmarks", help="tinyBenchmarks' pre-fitted IRT parameters -> one bundle per benchmark",
        description=("Checks tinyBenchmarks.pkl against the pinned release (git blob id), reads it with an "
                     "allow-list unpickler (numpy arrays only), validates it and writes a bundle for each of ARC, "
                     "GSM8K, HellaSwag, MMLU, TruthfulQA and Winogrande, its anchors named by content from the "
                     "tinyBenchmarks datasets. See docs/tinybenchmarks.md."))
    imp.add_argument("pkl", type=Path, metavar="PKL", help="tinyBenchmarks/tinyBenchmarks.pkl, downloaded")
    imp.add_argument("--datasets", type=Path, required=True, metavar="DIR",
                     help="folder holding tinyAI2_arc, tinyGSM8k, tinyHellaswag, tinyMMLU, tinyTruthfulQA, "
                          "tinyWinogrande (save_to_disk folders, or folders/files of .parquet/.jsonl/.json)")
    imp.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="folder for the bundles (default: <merge3 cache>/tinybenchmarks, where the ready configs look)")
    imp.add_argument("--allow-unpinned", action="store_true",
                     help="import a file whose git blob id is not the pinned release's (still read safely, validated)")
    imp.add_argument("--force", action="store_true", help="replace bundles imported from another file")
    imp.set_defaults(func=run_import_tinybenchmarks)
