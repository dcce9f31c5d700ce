"""`merge3 import-tinybenchmarks` (issue #15): the allow-list unpickler, the pinned release, validation,
and bundles whose estimates are tinyBenchmarks' own arithmetic, on a synthetic file of the real one's
structure (the real file cannot be downloaded here)."""

from __future__ import annotations

import copy
import json
import os
import pickle

import numpy as np
import pytest

from merge3_plugin import tinybenchmarks as tb
from merge3_plugin.bundle import Bundle
from merge3_plugin.errors import UserError
from merge3_plugin.estimation import Estimation, estimate
from merge3_plugin.safe_pickle import load_arrays
from tests.method.test_cli import merge3
from tests.tinybenchmarks_reference import (SIZES, evaluate, item_curve, synthetic_tinybenchmarks, write_pkl,
                                             write_tiny_datasets)


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_tinybenchmarks(seed=0, dims=3)


@pytest.fixture(scope="module")
def imported(synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("tinybenchmarks")
    pkl = write_pkl(synthetic, root / "tinyBenchmarks.pkl")
    datasets = write_tiny_datasets(synthetic, root / "datasets")
    written = tb.import_tinybenchmarks(pkl, root / "bundles", datasets, allow_unpinned=True)
    return root, pkl, {name: Bundle.load(path) for name, path in written.items()}


# -- the unpickler -------------------------------------------------------------------------------------
class _Runs:
    """Unpickling this would call os.system (a shell command that leaves a file behind)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("make", [lambda marker: _Runs(f"touch {marker}"), lambda marker: _Evals(),
                                  lambda marker: {"lb": {"A": np.ones(3), "x": _Runs(f"touch {marker}")}}],
                         ids=["os.system", "builtins.eval", "nested in a dict"])
def test_a_malicious_pickle_is_refused_and_nothing_runs(tmp_path, make):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(make(marker), protocol=4))
    with pytest.raises(UserError, match="refused to unpickle") as err:
        load_arrays(path, path.read_bytes())
    assert str(path) in str(err.value) and ("system" in str(err.value) or "eval" in str(err.value))
    assert not marker.exists()


def test_arrays_dtypes_scalars_and_containers_are_read(tmp_path):
    value = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": [np.float64(0.25), np.float32(1.5)],
             "c": np.array(["x", "y"]), "d": (1, "two", None), "e": np.zeros((1, 2, 3))}
    for protocol in (3, 4, 5):  # protocol 2 spells bytes as _codecs.encode: refused (the file is protocol 4)
        data = pickle.dumps(value, protocol=protocol)
        back = load_arrays(tmp_path / "ok.pkl", data)
        np.testing.assert_array_equal(back["a"], value["a"])
        assert back["b"][0] == 0.25 and back["d"] == (1, "two", None) and back["e"].shape == (1, 2, 3)


def test_a_pickle_written_by_numpy_1_is_read(tmp_path):
    """The real file predates numpy 2: its arrays name numpy.core.multiarray, an alias numpy 2 still has."""
    value = {"A": np.arange(4.0).reshape(1, 2, 2), "l": np.float64(0.5)}
    data = pickle.dumps(value, protocol=3).replace(b"numpy._core.", b"numpy.core.")
    assert b"cnumpy.core.multiarray\n_reconstruct" in data
    back = load_arrays(tmp_path / "old.pkl", data)
    np.testing.assert_array_equal(back["A"], value["A"])
    assert back["l"] == 0.5


def test_a_file_that_is_not_a_pickle(tmp_path):
    with pytest.raises(UserError, match="not a readable pickle"):
        load_arrays(tmp_path / "x.pkl", b"PK\x03\x04 a zip file")


# -- the pinned release -------------------------------------------------------------------------------
def test_the_pin_is_a_git_blob_id():
    assert tb.git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`


def test_an_unpinned_file_is_refused_unless_allowed(synthetic, tmp_path):
    pkl = write_pkl(synthetic, tmp_path / "tinyBenchmarks.pkl")
    with pytest.raises(UserError, match="--allow-unpinned") as err:
        tb.read_file(pkl)
    assert tb.PINNED_BLOB in str(err.value) and str(pkl) in str(err.value)
    source, data = tb.read_file(pkl, allow_unpinned=True)
    assert not source.pinned and source.size == pkl.stat().st_size and set(data) >= {"lb", "mmlu"}


def test_the_pinned_file_needs_no_flag(synthetic, tmp_path, monkeypatch):
    pkl = write_pkl(synthetic, tmp_path / "tinyBenchmarks.pkl")
    monkeypatch.setattr(tb, "PINNED_BLOB", tb.git_blob_id(pkl.read_bytes()))
    source, _ = tb.read_file(pkl)
    assert source.pinned


# -- validation ---------------------------------------------------------------------------------------
def _broken(synthetic, edit):
    data = copy.deepcopy(synthetic)
    edit(data)
    return data


CASES = {
    "no lb": (lambda d: d.pop("lb"), "field 'lb' is missing"),
    "A of another shape": (lambda d: d["lb"]["irt_parameters"].update(A=np.ones((1, 3, 100))),
                           "field 'lb.irt_parameters.A' has shape (1, 3, 100)"),
    "B of another shape": (lambda d: d["mmlu"]["irt_parameters"].update(B=np.ones((2, 14042))),
                           "field 'mmlu.irt_parameters.B'"),
    "NaN in A": (lambda d: d["lb"]["irt_parameters"]["A"].__setitem__((0, 0, 5), np.nan), "NaN"),
    "a benchmark missing": (lambda d: d["lb"]["scenarios_position"].pop("winogrande"),
                            "lacks winogrande"),
    "a benchmark of another size": (lambda d: d["lb"]["scenarios_position"].update(
        arc=d["lb"]["scenarios_position"]["arc"][:-1]), "field 'lb.scenarios_position.arc' has 1171 entries"),
    "99 anchors": (lambda d: d["mmlu"].update(seen_examples=d["mmlu"]["seen_examples"][:99]),
                   "field 'mmlu.seen_examples' has 99 entries, expected 100"),
    "an anchor of another benchmark": (lambda d: d["lb"]["seen_examples"].__setitem__(
        300, int(d["lb"]["scenarios_position"]["truthfulqa"][0])), "should be items of arc"),
    "weights that do not sum to 1": (lambda d: d["lb"]["examples_weights"].update(gsm8k=np.ones(100)),
                                     "'lb.examples_weights.gsm8k' must be non-negative and sum to 1"),
    "lambda above 1": (lambda d: d["lb"]["optimal_lambdas"].update(hellaswag=1.5),
                       "'lb.optimal_lambdas.hellaswag' is 1.5"),
    "overlapping subjects": (lambda d: d["mmlu"]["subscenarios_position"]["mmlu"].update(
        extra=list(d["mmlu"]["scenarios_position"]["mmlu"][:3])), "overlaps another"),
    "not a dict": (lambda d: d.clear() or d.update(lb=[1, 2], mmlu={}), "field 'lb' must be a dict"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validation_names_the_field(synthetic, case):
    edit, words = CASES[case]
    with pytest.raises(UserError) as err:
        tb.bundles_from(tb.Path("t.pkl"), _broken(synthetic, edit), None)
    assert words in str(err.value) and "t.pkl" in str(err.value), str(err.value)


def test_extra_keys_are_ignored(synthetic):
    assert "helm_lite" in synthetic
    assert set(tb.bundles_from(tb.Path("t.pkl"), synthetic, _source())) == set(SIZES)


def _source():
    return tb.Source(tb.Path("tinyBenchmarks.pkl"), 1, "0" * 64, "1" * 40, False)


# -- the bundles --------------------------------------------------------------------------------------
def test_one_bundle_per_benchmark_with_what_estimation_needs(imported, synthetic):
    root, pkl, bundles = imported
    assert set(bundles) == set(SIZES)
    for name, bundle in bundles.items():
        b = tb.BENCHMARKS[name]
        assert bundle.n_items == SIZES[name] and bundle.dims == 3 and bundle.content_keyed
        assert bundle.anchors.size == 100 and np.isclose(bundle.anchors.weights.sum(), 1)
        assert bundle.anchors.content_keys["family"] == b.key_family and len(bundle.anchors.content_keys["keys"]) == 100
        assert bundle.source["sha256"] == tb.hashlib.sha256(pkl.read_bytes()).hexdigest()
        assert bundle.source["size"] == pkl.stat().st_size and bundle.source["pinned_release"] is False
        assert bundle.protocol["num_fewshot"] == b.num_fewshot and bundle.task == b.task
        model = "mmlu" if name == "mmlu" else "lb"
        assert bundle.anchors.lambda_gpirt == pytest.approx(synthetic[model]["optimal_lambdas"][name])
    mmlu = bundles["mmlu"]
    assert len(mmlu.item_groups["names"]) == 57 and mmlu.item_groups["names"][0] == "subject00"
    assert len(mmlu.item_groups["of_item"]) == 14042 and mmlu.item_weights.mean() == pytest.approx(1.0)
    assert bundles["arc"].item_weights is None  # one subscenario: upstream's balance weights are all 1


def test_item_curves_are_upstreams(imported, synthetic):
    """merge3's (alpha, beta) reproduce upstream's item_curve, which sums A_d theta_d - B over d."""
    _, _, bundles = imported
    lb = synthetic["lb"]
    A, B = lb["irt_parameters"]["A"], lb["irt_parameters"]["B"]
    cols = np.asarray(lb["scenarios_position"]["gsm8k"])
    theta = np.array([0.3, -1.2, 0.8])
    upstream = item_curve(theta.reshape(1, 3, 1), A, B)[0, cols]
    np.testing.assert_allclose(bundles["gsm8k"].items.prob(theta), upstream, rtol=1e-12)


@pytest.mark.parametrize("name", ["arc", "mmlu", "truthfulqa"])
def test_estimates_are_upstreams_arithmetic(imported, synthetic, name):
    """Same ability in, same p-IRT and gp-IRT out, to rounding, either way round: merge3's MAP ability in
    upstream's evaluate(), and upstream's MLE ability in merge3's p-IRT."""
    _, _, bundles = imported
    bundle = bundles[name]
    rng = np.random.default_rng(7)
    for _ in range(3):
        y = (rng.random(100) < rng.uniform(0.2, 0.9)).astype(float)
        state = Estimation(bundle, y[None])
        ours = estimate(bundle, y[None])
        ref = evaluate(y, name, synthetic, theta=state.theta.reshape(1, -1, 1))[name]
        assert ours["anchor"][0] == pytest.approx(ref["irt"], abs=1e-12)
        assert ours["pirt"][0] == pytest.approx(ref["pirt"], abs=1e-12)
        assert ours["gpirt"][0] == pytest.approx(ref["gpirt"], abs=1e-12)
        theirs = evaluate(y, name, synthetic)[name]  # upstream's own ability (plain MLE)
        at_theirs = state.pirt_at(theirs["theta"].reshape(1, -1))[0]
        assert at_theirs == pytest.approx(theirs["pirt"], abs=1e-12)
        assert abs(ours["gpirt"][0] - theirs["gpirt"]) < 0.05  # the ability fits differ: MAP vs MLE


def test_the_bundles_round_trip_and_old_bundles_are_unchanged(imported, tmp_path):
    _, _, bundles = imported
    path = bundles["winogrande"].save(tmp_path / "w.json")
    again = Bundle.load(path)
    assert again.to_json() == bundles["winogrande"].to_json()
    data = json.loads(path.read_text())
    assert data["items"]["order"] == "open-llm-leaderboard" and data["items"]["doc_hashes"] is None
    # a fit bundle's file keeps exactly its old fields
    from tests.irt_helpers import synthetic_matrix
    from merge3_plugin.fitting import fit_bundle

    matrix, _, _ = synthetic_matrix(30, 40, 1)
    fit = fit_bundle(matrix, dims=1).to_json()
    assert set(fit["items"]) == {"doc_ids", "doc_hashes"} and "source" not in fit and "protocol" not in fit


def test_a_bundle_from_another_file_is_not_replaced_without_force(synthetic, imported, tmp_path):
    root, pkl, _ = imported
    other = synthetic_tinybenchmarks(seed=1, dims=2)
    pkl2 = write_pkl(other, tmp_path / "other.pkl")
    datasets = write_tiny_datasets(other, tmp_path / "datasets")
    with pytest.raises(UserError, match="imported from another file"):
        tb.import_tinybenchmarks(pkl2, root / "bundles", datasets, allow_unpinned=True)
    tb.import_tinybenchmarks(pkl, root / "bundles", root / "datasets", allow_unpinned=True)  # same file: fine


def test_the_command_line(synthetic, tmp_path):
    pkl = write_pkl(synthetic, tmp_path / "tinyBenchmarks.pkl")
    datasets = write_tiny_datasets(synthetic, tmp_path / "datasets")
    run = merge3("import-tinybenchmarks", str(pkl), "--datasets", str(datasets), "--out", str(tmp_path / "b"))
    assert run.returncode == 2 and "--allow-unpinned" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "b").exists()
    run = merge3("import-tinybenchmarks", str(pkl), "--datasets", str(datasets), "--out", str(tmp_path / "b"),
                 "--allow-unpinned")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(f"{n}.json" for n in SIZES)
