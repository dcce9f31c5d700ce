"""Never worse than your config (issue #23, part 3): the first generation is drawn around your config,
your config is scored and kept, and an evolved merge replaces it only when it wins a duel on items the
search never saw by more than two standard errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from mergekit_ext.config import FitnessSpec
from mergekit_ext.select.never_worse import Challenger, decide, paired_difference

from .evolve_helpers import write_ta_config

SPECS = [FitnessSpec(task="a", metric="acc", weight=1.0), FitnessSpec(task="b", metric="acc", weight=3.0)]


def _record(key: str, a: list[float], b: list[float]) -> dict:
    from mergekit_ext.select.never_worse import fold

    per_item = {"a": {"acc": a}, "b": {"acc": b}}
    return {"config_hash": key, "objectives": [fold(per_item, SPECS)], "details": {"per_item": per_item},
            "items": len(a) + len(b)}


def test_the_paired_difference_is_weighted_as_the_fitness_and_its_error_shrinks_with_pairing():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, size=(2, 400)).astype(float)
    better = base.copy()
    better[1, :40] = 1.0  # task b: 40 items more right (some were right already)
    diff, se = paired_difference({"a": {"acc": list(better[0])}, "b": {"acc": list(better[1])}},
                                 {"a": {"acc": list(base[0])}, "b": {"acc": list(base[1])}}, SPECS)
    gained = (better[1] - base[1]).mean()
    assert diff == pytest.approx(0.75 * gained) and 0 < se < diff / 2
    # unpaired, the same two models' scores would have an error near sqrt(2 p (1-p) / n) per task, far larger
    assert se < 0.75 * np.sqrt(2 * 0.25 / 400) / 2


def test_a_challenger_must_win_by_two_standard_errors_or_your_config_is_kept():
    rng = np.random.default_rng(1)
    mine = rng.integers(0, 2, size=(2, 200)).astype(float)
    clear = mine.copy()
    clear[:, :60] = 1.0
    slight = mine.copy()
    slight[1, np.flatnonzero(mine[1] == 0)[:3]] = 1.0  # 3 items of 200 more right: within the noise
    records = {"mine": _record("mine", *mine), "clear": _record("clear", *clear), "slight": _record("slight", *slight)}
    won = decide(SPECS, records, "mine", [Challenger([], {}, "slight"), Challenger([], {}, "clear")])
    assert won["chosen"] == "evolved" and won["challenger"] == "clear" and won["difference"] > 2 * won["se"]
    kept = decide(SPECS, records, "mine", [Challenger([], {}, "slight")])
    assert kept["chosen"] == "your config" and 0 < kept["difference"] <= 2 * kept["se"]
    assert "not more than 2 standard errors" in kept["why"]
    records["mine"] = {"config_hash": "mine", "failed": "NaN logits"}
    assert decide(SPECS, records, "mine", [Challenger([], {}, "slight")])["chosen"] == "evolved"


def test_the_first_generation_holds_your_config_and_the_rest_lies_within_the_trust_region():
    from pymoo.core.problem import Problem

    from mergekit_ext.algorithms.warm_start import WarmStartSampling

    rows = np.array([[0.2, 0.9, 0.5], [1.0, 0.0, 0.5]])
    drawn = WarmStartSampling(rows, radius=0.1).do(Problem(n_var=3, xl=0.0, xu=1.0), 40,
                                                   random_state=np.random.default_rng(0)).get("X")
    assert np.array_equal(drawn[:2], rows)
    rest = drawn[2:]
    assert np.all(np.abs(rest - rows[0]) <= 0.1 + 1e-12) and np.all((rest >= 0) & (rest <= 1))
    assert rest[:, 1].max() <= 1.0 and rest[:, 1].max() > 0.95  # clipped at the box, not pushed off it
    assert len({tuple(r) for r in rest}) == len(rest)
    uniform = WarmStartSampling(rows).do(Problem(n_var=3, xl=0.0, xu=1.0), 200,
                                         random_state=np.random.default_rng(0)).get("X")[2:]
    assert np.abs(uniform - rows[0]).max() > 0.5  # init: warm draws over the whole box


def test_init_defaults_to_your_config_where_the_space_and_algorithm_allow_it(tiny_world, tmp_path):
    from merge3_plugin.errors import UserError
    from mergekit_ext.config import effective_init, load_config

    def config(**evolve):
        return load_config(write_ta_config(tmp_path / "c.yaml", tiny_world.root / "models", tmp_path, {
            "fitness": [{"task": "t", "metric": "acc"}], "budget": {"evaluations": 2}, **evolve}))

    assert effective_init(config().evolve) == "config"
    assert effective_init(config(warm_start=True).evolve) == "warm"
    assert effective_init(config(init="uniform").evolve) == "uniform"
    assert effective_init(config(space="depth", algorithm={"name": "ga"}).evolve) == "config"
    with pytest.raises(UserError, match=r"c.yaml: field 'evolve': warm_start: true is init: warm; it contradicts "
                                        r"init: uniform"):
        config(warm_start=True, init="uniform")
    with pytest.raises(UserError, match=r"field 'evolve.keep_config.holdout_items'"):
        config(keep_config={"holdout_items": 3})


def test_held_out_items_lie_outside_the_anchors_and_are_drawn_by_seed(micro_zoo, micro_tasks, tmp_path):
    from merge3_lm_eval_tasks.compat import load_yaml
    from merge3_lm_eval_tasks.held_out import HeldOutTask
    from merge3_lm_eval_tasks.task import Merge3Task

    micro_tasks(tmp_path / "tasks")
    raw = load_yaml(tmp_path / "tasks" / "merge3_toy_math.yaml", resolve_func=True)
    cfg = {k: v for k, v in raw.items() if k not in ("class", "tag")}
    anchors = {d["prompt"] for d in Merge3Task(config=cfg).eval_docs}

    def held(items, seed):
        meta = {**cfg["metadata"], "merge3_held_out": {"items": items, "seed": seed}}
        return [d["prompt"] for d in HeldOutTask(config={**cfg, "metadata": meta}).eval_docs]

    first, again, other = held(50, 0), held(50, 0), held(50, 1)
    assert len(anchors) == 20 and len(first) == 50 == len(set(first)) and not anchors & set(first)
    assert first == again and first != other
    everything = held(10_000, 0)  # more than there are: every document outside the anchors
    assert len(everything) == 200 - 20 and not anchors & set(everything)


@pytest.mark.slow
@pytest.mark.parametrize("seed, start, task", [(0, 0.5, "toy_math_l2"), (1, 0.5, "toy_math_l2"),
                                               (2, 0.5, "toy_math_l2"), (0, 0.0, "toy_math")])
def test_best_yaml_is_never_truly_worse_than_your_config(micro_zoo, micro_tasks, tmp_path, seed, start, task):
    """The defaults on the micro world's cross-lingual target, from a TA config with both weights at
    `start`: whatever the search finds, best.yaml's true accuracy on the validation split (items neither
    the anchors nor the duel's held-out items come from) is not below your config's by more than 2
    paired standard errors; where the duel kept your config, best.yaml is your config. From weights 0
    (the base alone) on toy_math, where the math expert gains at least 0.2 over the base (the micro
    world's own build check), an evolved merge must win the duel. (On the cross-lingual target the
    experts gain only a few points over the base: a duel on 180 items may or may not see that.)"""
    import torch
    from transformers import AutoModelForCausalLM

    from merge3_zoo.quickeval import exact_match, task_docs
    from merge3_zoo.tokenizer import CharCodec
    from mergekit_ext.merging.inmemory import InMemoryMerger
    from mergekit_ext.search import config_hash

    micro_tasks(tmp_path / "tasks")
    path = write_ta_config(tmp_path / "evolve.yaml", micro_zoo.root / "models", tmp_path / "tasks", {
        "fitness": [{"task": f"merge3_{task}", "metric": "exact_match", "estimator": "gpirt"}],
        "algorithm": {"name": "ga", "pop_size": 6}, "budget": {"evaluations": 18}, "seed": seed,
        "granularity": 2})
    config = yaml.safe_load(path.read_text())
    del config["evolve"]["keep_config"]  # the defaults, as a user runs them
    for model in config["models"]:
        model["parameters"]["weight"] = start
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run = subprocess.run([sys.executable, "-m", "mergekit_ext.cli", str(path), "--out", str(tmp_path / "out"),
                          "--quiet"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    yours = {k: v for k, v in config.items() if k != "evolve"}
    history = [json.loads(line) for line in (tmp_path / "out" / "history.jsonl").read_text().splitlines()]
    # the first generation: your config's genes (weights 0.5 of [0, 1.5]), each expert alone, the rest
    # within 0.1 of your config
    assert np.allclose(history[0]["genes"], [start / 1.5] * 4)
    assert all(np.abs(np.array(r["genes"]) - start / 1.5).max() <= 0.1 + 1e-9 for r in history[3:6])
    if start == 0.0:  # from the base alone the search must find better and win the duel
        assert not summary["best_is_your_config"], summary["never_worse"]
    if summary["best_is_your_config"]:
        assert config_hash(best) == config_hash(yours)
        return
    live = AutoModelForCausalLM.from_pretrained(micro_zoo.model_path("base"), dtype=torch.float32)
    merger = InMemoryMerger(yours)
    items = task_docs(micro_zoo, task, "validation")[1]

    def truth(merge_config) -> np.ndarray:
        merger.merge_into(live, merge_config)
        return np.array(exact_match(live, CharCodec(), items), dtype=float)

    d = truth(best) - truth(yours)
    assert d.mean() >= -2 * d.std(ddof=1) / np.sqrt(len(d)), (
        f"best.yaml {d.mean():+.3f} against your config on {len(d)} validation items; duel {summary['never_worse']}")
