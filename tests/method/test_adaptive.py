"""Adaptive item selection (issue #26): the rule that picks items, the test that runs rounds of them,
the estimate it gives, and the errors for a policy the split cannot serve. Synthetic 2PL data with known
parameters: the behaviour, not a world, is under test."""

from __future__ import annotations

import numpy as np
import pytest

from merge3_plugin.adaptive import AdaptivePolicy, choose_items, information, replay, run_adaptive
from merge3_plugin.errors import UserError
from merge3_plugin.estimation import pirt_of
from merge3_plugin.irt import ItemParams, simulate


def test_in_one_dimension_the_next_item_is_the_one_with_the_most_fisher_information():
    rng = np.random.default_rng(0)
    items = ItemParams(rng.uniform(0.3, 2.0, (50, 1)), rng.normal(0, 1.5, 50))
    theta = np.array([0.4])
    asked = np.zeros(50, dtype=bool)
    asked[[3, 7]] = True
    p = items.prob(theta)
    fisher = items.alpha[:, 0] ** 2 * p * (1 - p)
    fisher[asked] = -1
    picked = choose_items(items, theta, asked, information(items, theta, asked, np.eye(1)), k=4)
    assert picked == list(np.argsort(-fisher)[:4])  # the four most informative unasked items, best first


def test_in_two_dimensions_each_pick_most_raises_the_determinant_of_the_information():
    items, _, _ = simulate(5, 60, 2, seed=1)
    theta = np.array([0.3, -0.2])
    asked = np.zeros(60, dtype=bool)
    info = information(items, theta, asked, np.eye(2))
    picked = choose_items(items, theta, asked, info, k=3)
    for j in picked:  # brute force: no other free item would have raised log det more at that point
        logdets = {i: np.linalg.slogdet(information(items, theta, asked | (np.arange(60) == i), np.eye(2)))[1]
                   for i in range(60) if not asked[i]}
        assert logdets[j] == pytest.approx(max(logdets.values()))
        asked[j] = True
    assert len(set(picked)) == 3


def test_an_adaptive_test_asks_rounds_never_repeats_and_replays_identically():
    items, _, answers = simulate(6, 80, 1, seed=2)
    policy = AdaptivePolicy(max_items=17, first=5, per_round=4)
    run = run_adaptive(items, replay(answers), 6, policy, np.zeros(1), np.eye(1))
    assert [record["n"][0] for record in run.rounds] == [5, 9, 13, 17, 17][:len(run.rounds)]
    assert all(len(order) == 17 == len(set(order)) for order in run.asked)
    assert np.array_equal(~np.isnan(run.observed), np.stack([np.isin(np.arange(80), o) for o in run.asked]))
    again = run_adaptive(items, replay(answers), 6, policy, np.zeros(1), np.eye(1))
    assert again.asked == run.asked and np.allclose(again.estimate, run.estimate)
    prob = items.prob(run.theta)
    assert np.allclose(run.estimate, np.clip(pirt_of(prob, run.observed), 0, 1))  # p-IRT over the split


def test_a_model_stops_once_its_estimate_is_precise_enough():
    items, _, answers = simulate(4, 300, 1, seed=3)
    loose = run_adaptive(items, replay(answers), 4, AdaptivePolicy(max_items=100, target_se=0.08),
                         np.zeros(1), np.eye(1))
    assert all(len(order) < 100 for order in loose.asked)
    assert (loose.se < 0.08).all()
    strict = run_adaptive(items, replay(answers), 4, AdaptivePolicy(max_items=100), np.zeros(1), np.eye(1))
    assert all(len(order) == 100 for order in strict.asked) and (strict.se < loose.se).all()


def test_on_known_parameters_twenty_adaptive_items_beat_twenty_random_ones():
    items, _, answers = simulate(80, 400, 1, seed=4)
    truth = answers.mean(axis=1)
    run = run_adaptive(items, replay(answers), 80, AdaptivePolicy(max_items=20), np.zeros(1), np.eye(1))
    rng = np.random.default_rng(0)
    random_err = np.mean([np.abs(answers[:, rng.choice(400, 20, replace=False)].mean(axis=1) - truth).mean()
                          for _ in range(20)])
    assert np.abs(run.estimate - truth).mean() < 0.8 * random_err


def test_only_allowed_items_are_asked():
    items, _, answers = simulate(3, 50, 1, seed=5)
    allowed = np.zeros((3, 50), dtype=bool)
    allowed[:, ::2] = True  # a replay: the logs hold only the even items
    run = run_adaptive(items, replay(answers), 3, AdaptivePolicy(max_items=10), np.zeros(1), np.eye(1),
                       allowed=allowed)
    assert all(all(j % 2 == 0 for j in order) for order in run.asked)
    # a model whose log holds fewer items than the test asks stops there while the others go on
    allowed[0] = False
    allowed[0, :5] = True
    short = run_adaptive(items, replay(answers), 3, AdaptivePolicy(max_items=10), np.zeros(1), np.eye(1),
                         allowed=allowed)
    assert sorted(short.asked[0]) == [0, 1, 2, 3, 4] and [len(order) for order in short.asked[1:]] == [10, 10]
    assert short.rounds[-1]["n"] == [5, 10, 10]


def test_a_merge_starts_where_its_endpoints_are():
    items, _, answers = simulate(2, 120, 1, seed=6)
    low = run_adaptive(items, replay(answers), 2, AdaptivePolicy(max_items=5), np.array([[-2.0], [-2.0]]), np.eye(1))
    high = run_adaptive(items, replay(answers), 2, AdaptivePolicy(max_items=5), np.array([[2.0], [2.0]]), np.eye(1))
    assert low.asked[0] != high.asked[0]  # round 0 is chosen at the prior ability
    assert items.beta[low.asked[0]].mean() < items.beta[high.asked[0]].mean()  # easier items for a weaker prior


@pytest.mark.parametrize("policy,message", [
    (AdaptivePolicy(max_items=51), "only 50"),
    (AdaptivePolicy(max_items=10, per_round=0), "at least 1"),
    (AdaptivePolicy(max_items=10, target_se=0.7), "target_se"),
    (AdaptivePolicy(max_items=10, criterion="fisher"), "criterion"),
])
def test_a_policy_the_split_cannot_serve_is_a_clear_error(policy, message):
    items, _, answers = simulate(2, 50, 1, seed=7)
    with pytest.raises(UserError, match=message):
        run_adaptive(items, replay(answers), 2, policy, np.zeros(1), np.eye(1))


def test_an_answer_missing_a_score_is_refused_rather_than_asked_again():
    items, _, answers = simulate(2, 30, 1, seed=8)
    with pytest.raises(ValueError, match="each must be a number"):
        run_adaptive(items, lambda asked: [[float("nan")] * len(cols) for cols in asked], 2,
                     AdaptivePolicy(max_items=10), np.zeros(1), np.eye(1))
    # on a graded channel each answer is a (score, graded response) pair; a bare score is refused
    from merge3_plugin.bundle import GradedChannel

    with pytest.raises(ValueError, match="each must be a \\(score, graded response\\) pair"):
        run_adaptive(items, replay(answers[:2]), 2, AdaptivePolicy(max_items=10), np.zeros(1), np.eye(1),
                     graded=GradedChannel(items, items, np.zeros((2, 1))))
