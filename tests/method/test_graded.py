"""Graded responses (issue #26): the probability of the right choice, read from real multiple-choice logs of
the micro toy world (toy_rev), fit as a bundle's graded channel, and used by an adaptive test in the loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from merge3_plugin.adaptive import AdaptivePolicy, replay, run_adaptive
from merge3_plugin.bundle import Bundle
from merge3_plugin.responses import GRADED, choice_probability, load_responses
from tests.method.test_cli import merge3


def test_the_graded_response_is_the_softmax_of_the_choices_at_the_target():
    record = {"filtered_resps": [["-1.0", "False"], ["-2.0", "False"], ["-3.0", "True"]], "target": "1"}
    expected = math.exp(-2) / (math.exp(-1) + math.exp(-2) + math.exp(-3))
    assert choice_probability(record) == pytest.approx(expected)
    assert choice_probability({**record, "filtered_resps": [(-1.0, False), (-2.0, False), (-3.0, True)],
                               "target": 1}) == pytest.approx(expected)  # lm-eval's in-memory samples
    # a target given as the answer's text: the choice whose continuation it is (a log's and lm-eval's in-memory form)
    logged = {**record, "target": "Paris", "arguments": {f"gen_args_{k}": {"arg_0": "Q:", "arg_1": f" {c}"}
                                                         for k, c in enumerate(["Rome", "Paris", "Oslo"])}}
    assert choice_probability(logged) == pytest.approx(expected)
    assert choice_probability({**logged, "arguments": [("Q:", " Rome"), ("Q:", " Paris"), ("Q:", " Oslo")]}) == \
        pytest.approx(expected)
    for not_choice in ({"filtered_resps": ["12"], "target": "12"}, {"filtered_resps": ["answer"], "target": "x"},
                       {**record, "target": "3"}, {**record, "target": "the first"}, {"target": "1"},
                       {**logged, "target": "Berlin"}):
        assert choice_probability(not_choice) is None


@pytest.fixture(scope="module")
def graded_bundle(micro_zoo, tmp_path_factory):
    out = tmp_path_factory.mktemp("graded")
    fit = merge3("fit", "--samples", str(micro_zoo.responses_dir), "--task", "toy_rev", "--metric", "acc", "--graded",
                 "--lineage", str(micro_zoo.root / "zoo.json"), "--out", str(out / "fit.json"))
    assert fit.returncode == 0, fit.stderr
    ext = merge3("extract", "--bundle", str(out / "fit.json"), "--size", "20", "--out", str(out / "anchored.json"))
    assert ext.returncode == 0, ext.stderr
    return out


def test_fit_graded_reads_the_logs_probabilities_and_keeps_them_through_extract(micro_zoo, graded_bundle):
    binary = load_responses([micro_zoo.responses_dir], "toy_rev", "acc")
    graded = load_responses([micro_zoo.responses_dir], "toy_rev", GRADED)
    assert graded.models == binary.models and graded.doc_ids == binary.doc_ids
    # a right answer is the choice with the most probability: never below 1/6 (six choices), and a wrong one
    # leaves the right choice below the best one's (so never above 1/2)
    assert (graded.scores[binary.scores == 1] >= 1 / 6 - 1e-9).all()
    assert (graded.scores[binary.scores == 0] <= 0.5 + 1e-9).all()
    bundle = Bundle.load(graded_bundle / "anchored.json")
    channel = bundle.require_graded()
    assert channel.items.alpha.shape == channel.predict.alpha.shape == (bundle.n_items, bundle.dims)
    assert channel.theta.shape == (len(bundle.models), bundle.dims)
    # the graded abilities order the population as its accuracy does
    rows = [binary.models.index(m) for m in bundle.models]
    rank = np.corrcoef(channel.theta @ channel.predict.alpha.mean(axis=0), binary.accuracy()[rows])[0, 1]
    assert rank > 0.8
    # a graded adaptive test replayed on a model's logs: its estimate near the model's accuracy
    model = binary.models.index("expert-rev")
    mean, cov = bundle.graded_prior()
    run = run_adaptive(bundle.items, replay(binary.scores[[model]], graded.scores[[model]]), 1,
                       AdaptivePolicy(max_items=30), mean, cov, graded=channel)
    assert len(run.asked[0]) == 30
    assert abs(run.estimate[0] - binary.accuracy()[model]) < 0.1


def test_graded_responses_of_a_generation_task_are_refused_by_name(micro_zoo, tmp_path):
    run = merge3("fit", "--samples", str(micro_zoo.responses_dir), "--task", "toy_math", "--metric", "exact_match",
                 "--graded", "--out", str(tmp_path / "fit.json"))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "samples_toy_math" in run.stderr and "not a multiple-choice log" in run.stderr
    assert not (tmp_path / "fit.json").exists()


def test_a_graded_adaptive_search_records_each_items_graded_response(micro_zoo, graded_bundle, tmp_path):
    from mergekit_ext import cli as evolve_cli
    from tests.evolve.evolve_helpers import write_ta_config

    tasks = tmp_path / "tasks"
    built = merge3("tasks", "build", "--bundle", str(graded_bundle / "anchored.json"), "--base-yaml",
                   str(micro_zoo.tasks_dir / "toy_rev.yaml"), "--name", "merge3_rev_graded", "--out", str(tasks))
    assert built.returncode == 0, built.stderr
    fitness = {"task": "merge3_rev_graded", "metric": "acc", "estimator": "adaptive", "items": 10,
               "adaptive": {"graded": True}}
    config = write_ta_config(tmp_path / "config.yaml", micro_zoo.root / "models", tasks,
                             {"fitness": [fitness], "algorithm": {"name": "ga", "pop_size": 3},
                              "budget": {"evaluations": 3}})
    assert evolve_cli.main([str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    bundle = Bundle.load(graded_bundle / "anchored.json")
    binary = load_responses([micro_zoo.responses_dir], "toy_rev", "acc")
    for line in (tmp_path / "out" / "history.jsonl").read_text().splitlines():
        record = json.loads(line)
        test = record["details"]["merge3_rev_graded"]["adaptive"]["adaptive"]
        assert len(test["graded"]) == len(test["scores"]) == 10
        for score, graded in zip(test["scores"], test["graded"]):
            assert 0 < graded < 1 and (graded >= 1 / 6 - 1e-9 if score == 1 else graded <= 0.5 + 1e-9)
        # the test replays from the record on the graded channel, from the endpoints' graded ability
        columns = bundle.columns(test["asked"])
        answers, responses = (np.full((1, bundle.n_items), np.nan) for _ in range(2))
        answers[0, columns], responses[0, columns] = test["scores"], test["graded"]
        again = run_adaptive(bundle.items, replay(answers, responses), 1, AdaptivePolicy(max_items=10),
                             np.array(test["prior"]), bundle.graded_prior()[1], graded=bundle.graded)
        assert again.asked[0] == columns.tolist()
        assert record["objectives"][0] == pytest.approx(float(again.estimate[0]), abs=1e-12)
    assert binary.doc_ids == bundle.doc_ids


def test_estimate_adaptive_graded_replays_tests_on_the_logs(micro_zoo, graded_bundle):
    binary = load_responses([micro_zoo.responses_dir], "toy_rev", "acc")
    run = merge3("estimate", "--bundle", str(graded_bundle / "anchored.json"), "--samples", str(micro_zoo.responses_dir),
                 "--task", "toy_rev", "--adaptive", "20", "--graded", "--json")
    assert run.returncode == 0, run.stderr
    records = json.loads(run.stdout)
    assert len(records) == len(binary.models) and all(r["graded"] and r["items_asked"] == 20 for r in records)
    errors = [abs(r["adaptive"] - r["mean_of_logged"]) for r in records]
    assert np.mean(errors) < 0.1
    alone = merge3("estimate", "--bundle", str(graded_bundle / "anchored.json"), "--samples",
                   str(micro_zoo.responses_dir), "--graded")
    assert alone.returncode == 2 and "add --adaptive N" in alone.stderr
