"""The bundle file: a faithful round trip, and clear errors for wrong or corrupt files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from merge3_plugin import bundle as bundle_module
from merge3_plugin.bundle import Bundle
from merge3_plugin.errors import UserError
from merge3_plugin.estimation import estimate
from merge3_plugin.extraction import extract
from merge3_plugin.fitting import fit_bundle
from tests.irt_helpers import synthetic_matrix


@pytest.fixture(scope="module")
def anchored():
    matrix, _, _ = synthetic_matrix(40, 120, 1)
    matrix.scores[3, 5] = np.nan  # a missing cell survives the round trip as null
    return extract(fit_bundle(matrix, dims=1), 15, "anchor-irt", seed=1)


def test_round_trip_is_exact(anchored, tmp_path):
    path = anchored.save(tmp_path / "b.json")
    data = json.loads(path.read_text())
    assert data["format"] == "merge3-irt-bundle" and data["version"] == 1
    assert data["population"]["scores"][3][5] is None
    back = Bundle.load(path)
    assert back.doc_ids == anchored.doc_ids and back.models == anchored.models and back.splits == anchored.splits
    np.testing.assert_array_equal(back.items.alpha, anchored.items.alpha)
    np.testing.assert_array_equal(back.scores, anchored.scores)
    assert back.anchors.doc_ids == anchored.anchors.doc_ids
    assert back.anchors.lambda_gpirt == anchored.anchors.lambda_gpirt
    answers = anchored.scores[:5][:, anchored.anchor_columns()]
    for key, value in estimate(anchored, answers).items():
        np.testing.assert_array_equal(estimate(back, answers)[key], value)


def test_large_populations_go_to_a_sibling_npz(anchored, tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_module, "NPZ_THRESHOLD", 10)
    path = anchored.save(tmp_path / "big.json")
    ref = json.loads(path.read_text())["population"]["scores"]
    assert ref["npz"] == "big.npz" and (tmp_path / "big.npz").exists()
    np.testing.assert_array_equal(Bundle.load(path).scores, anchored.scores)
    with np.load(tmp_path / "big.npz") as npz:  # a corrupted sibling is caught by its hash
        scores = npz["scores"]
    np.savez_compressed(tmp_path / "big.npz", scores=scores * 0)
    with pytest.raises(UserError, match="sha256"):
        Bundle.load(path)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format="something-else"), "not a merge3 bundle"),
    (lambda d: d.update(version=99), "'version' is 99"),
    (lambda d: d["irt"].pop("beta"), "'irt.beta' is missing"),
    (lambda d: d["irt"]["alpha"].pop(), "'irt.alpha' has"),
    (lambda d: d["irt"].update(dims=20), "'irt.dims'"),
    (lambda d: d["population"]["splits"].__setitem__(0, "test"), "'population.splits'"),
    (lambda d: d["population"]["scores"][0].__setitem__(0, 7), "'population.scores'"),
    (lambda d: d["anchors"]["weights"].__setitem__(0, 5.0), "'anchors.weights'"),
    (lambda d: d["anchors"]["doc_ids"].__setitem__(0, 10**6), "'anchors.doc_ids'"),
    (lambda d: d["anchors"].update(lambda_gpirt=1.5), "'anchors.lambda_gpirt'"),
    (lambda d: d["task"].update(name=3), "'task.name' must be a string"),
])
def test_a_wrong_field_is_named(anchored, tmp_path, edit, message):
    data = anchored.to_json()
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=message) as err:
        Bundle.load(path)
    assert str(path) in str(err.value)


def test_corrupt_and_missing_files_are_clear_errors(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "merge3-irt-bundle", "version": 1, "task": {')
    with pytest.raises(UserError, match="invalid JSON"):
        Bundle.load(broken)
    with pytest.raises(UserError, match="no such bundle"):
        Bundle.load(tmp_path / "nope.json")
    binary = tmp_path / "model.safetensors"
    binary.write_bytes(b"\x80\x81\xff" * 10)
    with pytest.raises(UserError, match="not a merge3 bundle"):
        Bundle.load(binary)
