"""The IRT engine on synthetic data with known parameters (issue #3, first piece)."""

from __future__ import annotations

import numpy as np

from merge3_plugin.irt import fit_ability, fit_items
from merge3_plugin.irt import simulate as synthetic


def test_difficulties_are_recovered_in_two_dimensions():
    truth, _, y = synthetic(200, 1000, 2)
    items, thetas = fit_items(y, dims=2, seed=0)
    assert np.corrcoef(items.beta, truth.beta)[0, 1] >= 0.95
    assert thetas.shape == (200, 2) and np.isfinite(thetas).all()


def test_unidimensional_fit_agrees_with_girth():
    import girth

    truth, theta, y = synthetic(150, 300, 1, seed=1)
    items, thetas = fit_items(y, dims=1, seed=0)
    # girth: items x models, ints, and difficulties b with P = sigmoid(a (theta - b))
    reference = girth.twopl_jml(y.T.astype(int))
    girth_beta = reference["Discrimination"] * reference["Difficulty"]
    assert np.corrcoef(items.beta, girth_beta)[0, 1] >= 0.95
    assert np.corrcoef(thetas[:, 0], theta[:, 0])[0, 1] >= 0.9


def test_fit_is_deterministic_and_tolerates_missing_cells():
    _, _, y = synthetic(60, 120, 2, seed=2)
    y[np.random.default_rng(0).random(y.shape) < 0.2] = np.nan
    a, ta = fit_items(y, dims=2, seed=3)
    b, tb = fit_items(y, dims=2, seed=3)
    assert np.array_equal(a.alpha, b.alpha) and np.array_equal(a.beta, b.beta) and np.array_equal(ta, tb)
    assert np.isfinite(a.alpha).all() and np.isfinite(ta).all()


def test_ability_is_finite_for_all_correct_and_all_wrong():
    truth, theta, _ = synthetic(10, 50, 2, seed=4)
    patterns = np.full((3, 50), np.nan)
    patterns[0, :20] = 1.0  # all correct on 20 anchors
    patterns[1, :20] = 0.0  # all wrong
    patterns[2] = (truth.prob(np.array([1.5, 1.5])) > 0.5).astype(float)
    abilities = fit_ability(truth, patterns)
    assert np.isfinite(abilities).all()
    assert abilities[0].sum() > abilities[1].sum()  # more right answers, higher ability
    assert abilities[2].sum() > 0  # a strong model's pattern reads as above-average ability
