"""The adaptive estimator in the evolve loop (issue #26): each candidate is asked its items in rounds,
chosen from its answers so far and scored by lm-eval on those documents only; the history keeps what was
asked, in order, so a candidate's test replays from its record. On the micro toy world."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from merge3_plugin.adaptive import AdaptivePolicy, replay, run_adaptive
from merge3_plugin.bundle import Bundle
from mergekit_ext import cli as evolve_cli

from .evolve_helpers import write_ta_config

ADAPTIVE = {"task": "merge3_toy_math", "metric": "exact_match", "estimator": "adaptive", "items": 10}


@pytest.fixture(scope="module")
def tasks(micro_zoo, micro_tasks, tmp_path_factory):
    return micro_tasks(tmp_path_factory.mktemp("adaptive") / "tasks")


def _run(micro_zoo, tasks, tmp_path, fitness: dict) -> tuple[list[dict], dict]:
    config = write_ta_config(tmp_path / "config.yaml", micro_zoo.root / "models", tasks,
                             {"fitness": [fitness], "algorithm": {"name": "ga", "pop_size": 3},
                              "budget": {"evaluations": 6}})
    assert evolve_cli.main([str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    history = [json.loads(line) for line in (tmp_path / "out" / "history.jsonl").read_text().splitlines()]
    return history, json.loads((tmp_path / "out" / "summary.json").read_text())


def test_each_candidate_is_asked_in_rounds_and_its_record_replays_the_test(micro_zoo, tasks, tmp_path):
    history, summary = _run(micro_zoo, tasks, tmp_path, ADAPTIVE)
    bundle = Bundle.load(tasks / "bundles" / "toy_math.json")
    mean, cov = bundle.ability_prior()
    assert summary["items_evaluated"]["candidates"] == 10 * len(history)
    assert summary["items_evaluated"]["endpoints"] > 0  # the merge's test starts from its endpoints' ability
    priors = set()
    for record in history:
        test = record["details"]["merge3_toy_math"]["adaptive"]["adaptive"]
        assert record["items"] == 10 and test["rounds"] == [5, 10]
        assert len(set(test["asked"])) == 10 and set(test["scores"]) <= {0.0, 1.0}
        priors.add(tuple(test["prior"]))
        # the record alone replays the test: the same items in the same order, the same estimate
        columns = bundle.columns(test["asked"])
        answers = np.full((1, bundle.n_items), np.nan)
        answers[0, columns] = test["scores"]
        again = run_adaptive(bundle.items, replay(answers), 1, AdaptivePolicy(max_items=10), np.array(test["prior"]),
                             cov, item_weights=bundle.item_weights)
        assert again.asked[0] == columns.tolist()
        assert record["objectives"] == [pytest.approx(float(again.estimate[0]), abs=1e-12)]
    assert len(priors) == 1 and not np.allclose(next(iter(priors)), mean)  # the endpoints', not the population's
    # different merges answer differently, so they are asked different items after the first round
    assert len({tuple(r["details"]["merge3_toy_math"]["adaptive"]["adaptive"]["asked"]) for r in history}) > 1


def test_a_target_standard_error_stops_a_test_early(micro_zoo, tasks, tmp_path):
    fitness = {**ADAPTIVE, "estimator": "adaptive-accuracy", "adaptive": {"target_se": 0.45, "prior": "population"}}
    history, summary = _run(micro_zoo, tasks, tmp_path, fitness)
    assert summary["items_evaluated"]["endpoints"] == 0  # the population's prior: nothing measured
    for record in history:
        test = record["details"]["merge3_toy_math"]["adaptive"]["adaptive-accuracy"]
        assert test["rounds"] == [5] and record["items"] == 5 and test["se"] < 0.45


def test_the_documents_asked_are_scored_as_lm_eval_scores_them_all(micro_zoo, tasks):
    """The scores a test records are the plain metric of exactly the documents it names (the item <->
    document mapping), checked against one lm-eval run over the whole split."""
    from merge3_lm_eval_tasks import api as lm_eval_api
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergekit_ext.config import FitnessSpec
    from mergekit_ext.scoring.adaptive_fitness import AdaptiveScorer

    torch.set_num_threads(1)
    folder = micro_zoo.root / "models" / "expert-math"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    lm = lm_eval_api.wrap_live_model(model, AutoTokenizer.from_pretrained(folder), 32, "cpu")
    manager = lm_eval_api.task_manager(str(tasks), include_defaults=False)
    raw = lm_eval_api.task_config(manager, "merge3_toy_math")
    scorer = AdaptiveScorer(lm, manager, raw, FitnessSpec(**{**ADAPTIVE, "items": 15}), None)
    estimate, test = scorer()
    everything = lm_eval_api.evaluate_tasks(lm, scorer.task_dict, log_samples=True)
    # lm-eval's own numbering of the whole split (doc_id: the document's position), not the mapping under test
    truth = {int(sample["doc_id"]): float(sample["exact_match"]) for sample in everything["samples"]["merge3_toy_math"]}
    assert len(truth) == scorer.bundle.n_items
    assert test["scores"] == [truth[doc] for doc in test["asked"]]
    assert len(test["asked"]) == 15 and test["rounds"] == [5, 10, 15]
    assert 0.0 <= estimate <= 1.0 and test["se"] > 0


def test_the_never_worse_duels_held_out_items_are_never_asked(micro_zoo, tasks, tmp_path, capsys):
    """With keep_config on, the duel judges on documents outside the anchors that the search never saw;
    adaptive tests, which may ask any document, are kept off that sample."""
    from merge3_lm_eval_tasks.api import held_out_ids

    config = write_ta_config(tmp_path / "config.yaml", micro_zoo.root / "models", tasks,
                             {"fitness": [ADAPTIVE], "algorithm": {"name": "ga", "pop_size": 3},
                              "budget": {"evaluations": 6}, "keep_config": {"holdout_items": 150, "challengers": 2}})
    assert evolve_cli.main([str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    bundle = Bundle.load(tasks / "bundles" / "toy_math.json")
    held = set(held_out_ids(bundle.n_items, bundle.anchors.doc_ids, 150, 0))
    assert len(held) == 150
    history = [json.loads(line) for line in (tmp_path / "out" / "history.jsonl").read_text().splitlines()]
    asked = {doc for r in history for doc in r["details"]["merge3_toy_math"]["adaptive"]["adaptive"]["asked"]}
    assert asked and not asked & held
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["items_evaluated"]["held_out"] > 0  # the duel ran, on those 150 documents
    # more items than the split leaves outside the duel's sample: refused before any model loads
    config.write_text(config.read_text().replace("holdout_items: 150", "holdout_items: 180").replace(
        "items: 10", "items: 25"))
    capsys.readouterr()
    assert evolve_cli.main([str(config), "--out", str(tmp_path / "out2"), "--dry-run"]) == 2
    said = capsys.readouterr().err
    assert "field 'evolve.fitness.0.items'" in said and "only 20 of merge3_toy_math's 200" in said, said
