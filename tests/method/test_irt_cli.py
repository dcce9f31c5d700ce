"""`merge3 fit / extract / estimate / report` on the micro toy world's real lm-eval logs (issue #3)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy.stats import spearmanr

from merge3_plugin.bundle import Bundle
from merge3_plugin.estimation import estimate
from merge3_plugin.extraction import extract
from merge3_plugin.fitting import fit_bundle
from merge3_plugin.responses import find_sample_files, load_responses
from tests.method.test_cli import merge3

HELDOUT = ("base-s350", "ta-math0.5-rev1", "variant1", "base-s650")


@pytest.fixture(scope="module")
def fitted(micro_zoo, tmp_path_factory):
    """toy_math fitted by the CLI with four models held out, then 20 anchors extracted."""
    out = tmp_path_factory.mktemp("irt")
    fit = merge3("fit", "--samples", str(micro_zoo.responses_dir), "--task", "toy_math", "--metric", "exact_match",
                 "--holdout", *HELDOUT, "--lineage", str(micro_zoo.root / "zoo.json"), "--out", str(out / "fit.json"))
    assert fit.returncode == 0, fit.stderr
    ext = merge3("extract", "--bundle", str(out / "fit.json"), "--size", "20", "--method", "anchor-irt",
                 "--seed", "1", "--out", str(out / "anchored.json"))
    assert ext.returncode == 0, ext.stderr
    assert "lambda* =" in ext.stdout and "delta" in ext.stdout
    return out, fit.stdout


def test_fit_writes_a_bundle_of_the_training_population(micro_zoo, fitted):
    out, stdout = fitted
    bundle = Bundle.load(out / "fit.json")
    assert bundle.task == "toy_math" and bundle.metric == "exact_match" and bundle.n_items == 200
    assert set(bundle.models) == set(micro_zoo.names()) - set(HELDOUT)
    assert bundle.splits.count("validation") >= 2 and bundle.anchors is None
    assert 1 <= bundle.dims <= 8 and str(bundle.dims) in stdout
    assert bundle.lineage["ta-math0.5-lang0.5"] == ["expert-math", "expert-lang", "base"]
    assert bundle.task_version is not None  # read from lm-eval's results file beside the samples


def test_estimate_reads_the_anchors_from_real_logs(micro_zoo, fitted):
    out, _ = fitted
    responses = micro_zoo.responses_dir
    run = merge3("estimate", "--bundle", str(out / "anchored.json"), "--samples", str(responses / "ta-math0.5-rev1"),
                 str(responses / "base-s350"), "--endpoints", str(responses / "expert-math"),
                 str(responses / "expert-rev"), str(responses / "base"), "--json")
    assert run.returncode == 0, run.stderr
    records = {r["model"]: r for r in json.loads(run.stdout)}
    assert set(records) == {"ta-math0.5-rev1", "base-s350"}
    anchors = Bundle.load(out / "anchored.json").anchors
    for name, record in records.items():
        assert record["task"] == "toy_math" and record["n_anchors"] == 20
        assert set(record["estimates"]) == {"anchor", "pirt", "gpirt", "mpirt", "gmpirt"}
        assert all(0.0 <= v <= 1.0 for v in record["estimates"].values())
        # the anchor estimate is the weighted mean of this model's logged answers on the anchors
        path = find_sample_files([responses / name], "toy_math")[0].path
        logged = {r["doc_id"]: r["exact_match"] for r in map(json.loads, path.read_text().splitlines())}
        expected = float(np.dot(anchors.weights, [logged[d] for d in anchors.doc_ids]))
        assert record["estimates"]["anchor"] == pytest.approx(expected)
    table = merge3("estimate", "--bundle", str(out / "anchored.json"), "--samples", str(responses / "base-s350"))
    assert table.returncode == 0 and "gpirt" in table.stdout and "mpirt" not in table.stdout


def test_estimate_adaptive_replays_a_test_on_full_logs_without_anchors(micro_zoo, fitted):
    """`--adaptive N` on the fit bundle (no anchors): each held-out model is asked N distinct items of the
    task, chosen among those its log holds; its estimate sits beside the mean of all it answered."""
    out, _ = fitted
    responses = micro_zoo.responses_dir
    run = merge3("estimate", "--bundle", str(out / "fit.json"), "--adaptive", "20", "--json",
                 "--samples", *(str(responses / name) for name in HELDOUT))
    assert run.returncode == 0, run.stderr
    records = {r["model"]: r for r in json.loads(run.stdout)}
    assert set(records) == set(HELDOUT)
    bundle = Bundle.load(out / "fit.json")
    truth = load_responses([responses], "toy_math", "exact_match")
    for name, r in records.items():
        assert r["items_asked"] == 20 == len(set(r["asked"])) and set(r["asked"]) <= set(bundle.doc_ids)
        assert 0 <= r["adaptive"] <= 1 and 0 < r["se"] < 0.5 and r["items_logged"] == 200
        assert r["mean_of_logged"] == pytest.approx(truth.accuracy()[truth.models.index(name)])
    table = merge3("estimate", "--bundle", str(out / "fit.json"), "--adaptive", "10", "--samples",
                   str(responses / "ta-math0.5-rev1"), "--endpoints", str(responses / "expert-math"),
                   str(responses / "expert-rev"), str(responses / "base"))
    assert table.returncode == 0, table.stderr
    assert "starting from endpoints base, expert-math, expert-rev" in table.stdout and "ta-math0.5-rev1" in table.stdout
    too_many = merge3("estimate", "--bundle", str(out / "fit.json"), "--adaptive", "201", "--samples",
                      str(responses / "base-s350"))
    assert too_many.returncode == 2 and "--adaptive 201 (toy_math): 201 items asked for, but the split has only 200" \
        in too_many.stderr and "Traceback" not in too_many.stderr


def test_report_prints_the_error_table_and_draws_the_calibration_plot(micro_zoo, fitted, tmp_path):
    out, _ = fitted
    plot = tmp_path / "calibration.png"
    run = merge3("report", "--bundle", str(out / "anchored.json"), "--samples", str(micro_zoo.responses_dir),
                 "--lineage", str(micro_zoo.root / "zoo.json"), "--plot", str(plot))
    assert run.returncode == 0, run.stderr
    assert "4 held-out models" in run.stdout and "random-subset mean" in run.stdout
    assert "held-out merges with known endpoints (1)" in run.stdout and "gmpirt" in run.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_user_errors_name_the_problem_and_touch_nothing(micro_zoo, fitted, tmp_path):
    out, _ = fitted
    before = (out / "anchored.json").read_bytes()
    cases = [
        (["extract", "--bundle", str(out / "fit.json"), "--size", "20", "--out", str(out / "anchored.json")],
         "exists; pass --force"),
        (["extract", "--bundle", str(out / "fit.json"), "--size", "20", "--method", "kmedoids",
          "--out", str(tmp_path / "x.json")], "unknown extractor 'kmedoids'; available: anchor-correctness"),
        (["extract", "--bundle", str(out / "fit.json"), "--size", "900", "--out", str(tmp_path / "x.json")],
         "--size: 900 anchors asked of toy_math, which has 200 items"),
        (["estimate", "--bundle", str(out / "fit.json"), "--samples", str(micro_zoo.responses_dir / "base")],
         "has no anchors yet"),
        (["fit", "--samples", str(micro_zoo.responses_dir), "--task", "toy_math", "--metric", "exact_match",
          "--dims", "x", "--out", str(tmp_path / "x.json")], "--dims"),
        (["fit", "--samples", str(micro_zoo.responses_dir), "--task", "toy_math", "--metric", "exact_match",
          "--backend", "stan", "--out", str(tmp_path / "x.json")], "--backend: unknown backend 'stan'"),
        (["fit", "--samples", str(micro_zoo.responses_dir), "--task", "toy_math", "--metric", "exact_match",
          "--out", str(out / "anchored.json")], "exists; pass --force"),
    ]
    for args, message in cases:
        run = merge3(*args)
        assert run.returncode == 2, (args, run.stderr)
        assert message in run.stderr and "Traceback" not in run.stderr, (message, run.stderr)
    assert (out / "anchored.json").read_bytes() == before
    assert not (tmp_path / "x.json").exists()

    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(before.decode()[:500])
    run = merge3("estimate", "--bundle", str(corrupt), "--samples", str(micro_zoo.responses_dir / "base"))
    assert run.returncode == 2 and str(corrupt) in run.stderr and "invalid JSON" in run.stderr


def test_logs_of_another_document_order_are_refused_at_estimation(micro_zoo, fitted, tmp_path):
    out, _ = fitted
    shutil.copytree(micro_zoo.responses_dir / "base-s350", tmp_path / "base-s350")
    victim = find_sample_files([tmp_path], "toy_math")[0].path
    rows = [json.loads(line) for line in victim.read_text().splitlines()]
    anchor = Bundle.load(out / "anchored.json").anchors.doc_ids[0]
    rows[anchor]["doc_hash"] = "0" * 64
    victim.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = merge3("estimate", "--bundle", str(out / "anchored.json"), "--samples", str(tmp_path))
    assert run.returncode == 2
    assert f"doc_id {anchor} of toy_math" in run.stderr and "disagree" in run.stderr and str(victim) in run.stderr


def test_girth_backend_through_the_command(micro_zoo, tmp_path):
    run = merge3("fit", "--samples", str(micro_zoo.responses_dir), "--task", "toy_rev", "--metric", "acc",
                 "--backend", "girth", "--out", str(tmp_path / "rev.json"))
    assert run.returncode == 0, run.stderr
    bundle = Bundle.load(tmp_path / "rev.json")
    assert bundle.backend == "girth" and bundle.dims == 1 and np.isfinite(bundle.items.beta).all()


def test_estimates_rank_held_out_toy_models(micro_zoo):
    """Leave-models-out on the micro world (200 items, 17 movable models, 3 folds, 20 anchors): IRT
    fitted on real lm-eval logs, anchors extracted, held-out models estimated; the estimates rank them.

    Whether gp-IRT beats the random subset is a claim about skill that this world is too small to
    carry: on three builds of it (three float paths) gp-IRT's error ran 0.7x, 0.86x and 0.96x the
    random subset's (0.82x over 6 anchor seeds; per task 1.07x on toy_math, 0.60x on toy_math_l2).
    It is checked where it is powered: on synthetic 2PL data in test_estimation.py
    (test_gpirt_beats_the_random_subset_mean_and_ranks_models), and in benchmarks/irt_estimate.py."""
    keep = set(micro_zoo.names("expert", "base"))
    errors = {"gpirt": [], "random": []}
    rhos = []
    for task, metric in (("toy_math", "exact_match"), ("toy_math_l2", "exact_match")):
        matrix = load_responses([micro_zoo.responses_dir], task, metric)
        truth = matrix.accuracy()
        movable = [m for m in matrix.models if m not in keep]
        for fold in range(3):
            held = movable[fold::3]
            bundle = fit_bundle(matrix, dims="auto", holdout=held)
            rows = np.array([matrix.models.index(m) for m in held])
            for seed in range(3):
                anchored = extract(bundle, 20, "anchor-correctness", seed=seed)
                cols = bundle.columns(anchored.anchors.doc_ids)
                est = estimate(anchored, matrix.scores[np.ix_(rows, cols)], names=["gpirt"])["gpirt"]
                errors["gpirt"].extend(np.abs(est - truth[rows]))
                draw = np.random.default_rng(seed).choice(200, 20, replace=False)
                errors["random"].extend(np.abs(matrix.scores[np.ix_(rows, draw)].mean(axis=1) - truth[rows]))
                rhos.append(spearmanr(est, truth[rows]).statistic)
    assert np.isfinite(errors["gpirt"]).all() and np.max(errors["gpirt"]) < 0.5
    assert np.mean(rhos) >= 0.7  # ranks within folds of ~6 models


def test_zoo_path_prints_the_built_world_for_scripts(micro_zoo):
    run = merge3("zoo", "path", "--preset", "micro")
    assert run.returncode == 0 and run.stdout.strip() == str(micro_zoo.root)
    missing = merge3("zoo", "path", "--preset", "micro", "--seed", "99")
    assert missing.returncode == 2 and "merge3 zoo build --preset micro" in missing.stderr
