"""Nested anchor rungs (issue #14, multi-fidelity): `merge3 extract --rungs` orders the anchors so that the
first k are an anchor set of their own (weights, lambda*, delta), saved in the bundle, and estimation uses a
rung when exactly its anchors were answered."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from merge3_plugin.bundle import Bundle
from merge3_plugin.errors import UserError
from merge3_plugin.estimation import estimate
from merge3_plugin.extraction import extract
from merge3_plugin.fitting import fit_bundle
from tests.irt_helpers import synthetic_matrix


@pytest.fixture(scope="module")
def population():
    """300 models x 400 items, d = 1: 200 to fit on, 100 held out to estimate."""
    matrix, _, _ = synthetic_matrix(300, 400, 1, seed=4)
    fit = replace(matrix, models=matrix.models[:200], scores=matrix.scores[:200])
    return fit_bundle(fit, dims=1), matrix.scores[200:]


def test_rungs_are_prefixes_with_their_own_weights_and_calibration(population):
    bundle, _ = population
    plain = extract(bundle, 30, "anchor-irt", seed=0).anchors
    nested = extract(bundle, 30, "anchor-irt", seed=0, rungs=[5, 10]).anchors
    assert sorted(nested.doc_ids) == sorted(plain.doc_ids)  # the same anchors, reordered
    weight_of = dict(zip(plain.doc_ids, plain.weights, strict=True))
    assert nested.weights.tolist() == [weight_of[d] for d in nested.doc_ids]
    assert (nested.lambda_gpirt, nested.delta_gmpirt) == (plain.lambda_gpirt, plain.delta_gmpirt)
    assert [r.size for r in nested.rungs] == [5, 10]
    for rung in nested.rungs:
        assert rung.doc_ids == nested.doc_ids[:rung.size] and rung.weights.sum() == pytest.approx(1.0)
        assert rung.calibration["validation_models"] > 0 and 0 <= rung.lambda_gpirt <= 1
    with pytest.raises(UserError, match="rungs"):
        extract(bundle, 30, "anchor-irt", rungs=[5, 30])


def test_a_rung_is_a_better_anchor_set_than_the_same_number_of_unordered_anchors(population):
    """gp-IRT on held-out models from 5 anchors: the coverage-ordered rung (its own weights and lambda*)
    against the first 5 anchors of the plain extraction (the full set's weights renormalised), over
    extractions with 5 seeds."""
    bundle, held_out = population
    truth = held_out.mean(axis=1)
    errors = {"rung": [], "prefix": []}
    for seed in range(5):
        for kind, rungs in (("rung", [5]), ("prefix", None)):
            anchors = extract(bundle, 30, "anchor-irt", seed=seed, rungs=rungs).anchors
            scores = np.full((len(held_out), anchors.size), np.nan)
            scores[:, :5] = held_out[:, bundle.columns(anchors.doc_ids[:5])]
            got = estimate(bundle.with_anchors(anchors), scores, names=["gpirt"])["gpirt"]
            errors[kind].append(float(np.mean(np.abs(got - truth))))
    rung, prefix = np.mean(errors["rung"]), np.mean(errors["prefix"])
    assert rung < prefix, errors


def test_estimation_uses_the_rung_only_when_exactly_its_anchors_were_answered(population):
    bundle, held_out = population
    anchored = extract(bundle, 20, "anchor-irt", seed=1, rungs=[8])
    anchors = anchored.anchors
    rung = anchors.rungs[0]
    scores = held_out[:3][:, anchored.columns(anchors.doc_ids)]
    first8 = np.where(np.arange(20) < 8, scores, np.nan)
    on_rung = estimate(anchored, first8, names=["gpirt", "anchor"])
    direct = estimate(anchored, scores[:, :8], names=["gpirt", "anchor"], anchors=rung)
    assert all(np.allclose(on_rung[k], direct[k]) for k in on_rung)
    other = np.where(np.arange(20) < 9, scores, np.nan)  # 9 answered: no rung of 9, the full set's weights
    full = estimate(anchored, other, names=["anchor"])["anchor"]
    w = anchors.weights[:9] / anchors.weights[:9].sum()
    assert np.allclose(full, scores[:, :9] @ w)


def test_rungs_survive_saving_and_bad_rungs_are_refused_naming_the_field(population, tmp_path):
    import json

    bundle, _ = population
    anchored = extract(bundle, 20, "anchor-irt", seed=0, rungs=[4, 8])
    path = anchored.slim().save(tmp_path / "b.json")
    again = Bundle.load(path).anchors
    assert [r.size for r in again.rungs] == [4, 8] and again.doc_ids == anchored.anchors.doc_ids
    assert np.allclose(again.rungs[1].weights, anchored.anchors.rungs[1].weights)
    assert again.rungs[0].lambda_gpirt == anchored.anchors.rungs[0].lambda_gpirt
    data = json.loads(path.read_text())
    data["anchors"]["rungs"][1]["size"] = 20
    data["anchors"]["rungs"][1]["weights"] = [1 / 20] * 20
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"anchors.rungs.1.size"):
        Bundle.load(path)
