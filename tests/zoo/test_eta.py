"""The zoo build's forecast: jobs weighed by their work, each kind timed as it goes."""

from __future__ import annotations

import pytest

from merge3_zoo.eta import PRIOR_SECONDS_PER_UNIT, BuildClock, format_left, job_units


def test_units_are_samples_items_and_models():
    assert job_units("train", ({"steps": 300},) + (None,) * 3 + (64,), 200, 4) == 300 * 64
    assert job_units("eval", ("m",), 200, 4) == 800
    assert job_units("merge", ({"weights": {"a": 1, "b": 1}},), 200, 4) == 2


def test_time_left_comes_from_the_kinds_measured_so_far():
    units = {"base": 1000.0, "expert": 500.0, "eval:base": 800.0, "eval:expert": 800.0}
    kinds = {"base": "train", "expert": "train", "eval:base": "eval", "eval:expert": "eval"}
    clock = BuildClock(units, kinds, workers=2, now=0.0)
    # before any job is done: the priors as they are
    prior = (1500 * PRIOR_SECONDS_PER_UNIT["train"] + 1600 * PRIOR_SECONDS_PER_UNIT["eval"]) / 2
    assert clock.seconds_left(now=0.0) == pytest.approx(prior)
    clock.finished("base", 100.0, now=50.0)  # 0.1 s a sample; evaluations not timed yet: scaled by the prior ratio
    eval_rate = 0.1 * PRIOR_SECONDS_PER_UNIT["eval"] / PRIOR_SECONDS_PER_UNIT["train"]
    assert clock.seconds_left(now=50.0) == pytest.approx((500 * 0.1 + 1600 * eval_rate) / 2)
    clock.finished("eval:base", 8.0, now=60.0)  # now measured: 0.01 s an item
    assert clock.seconds_left(now=60.0) == pytest.approx((500 * 0.1 + 800 * 0.01) / 2)
    assert format_left(125.4) == "~2:05 left"


def test_the_forecast_counts_down_while_a_job_runs_and_never_reaches_zero_before_the_end():
    clock = BuildClock({"base": 1e6}, {"base": "train"}, workers=1, now=0.0)  # minutes of training
    start = clock.seconds_left(now=0.0)
    assert clock.seconds_left(now=10.0) == pytest.approx(start - 10.0)
    assert clock.seconds_left(now=start + 100.0) == 1.0  # late, but not done: a second, never zero
    clock.finished("base", start + 100.0, now=start + 100.0)
    assert clock.seconds_left(now=start + 100.0) == 0.0


def test_without_priors_there_is_no_forecast_until_a_job_is_done():
    """A world on a pre-trained base: the priors (measured on tiny models trained from scratch) would say
    seconds for a build of minutes; it says it is timing the first job instead."""
    clock = BuildClock({"expert": 1000.0, "eval:expert": 800.0}, {"expert": "train", "eval:expert": "eval"},
                       workers=1, now=0.0, priors=False)
    assert clock.seconds_left(now=30.0) is None and format_left(None) == "timing the first job"
    clock.finished("expert", 100.0, now=100.0)
    eval_rate = 0.1 * PRIOR_SECONDS_PER_UNIT["eval"] / PRIOR_SECONDS_PER_UNIT["train"]
    assert clock.seconds_left(now=100.0) == pytest.approx(800 * eval_rate)
