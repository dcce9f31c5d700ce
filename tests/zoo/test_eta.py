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
    clock = BuildClock(units, kinds, workers=2)
    assert clock.seconds_left() is None and format_left(None).startswith("left")
    clock.finished("base", 100.0)  # 0.1 s a sample; evaluations not timed yet: scaled by the prior ratio
    eval_rate = 0.1 * PRIOR_SECONDS_PER_UNIT["eval"] / PRIOR_SECONDS_PER_UNIT["train"]
    assert clock.seconds_left() == pytest.approx((500 * 0.1 + 1600 * eval_rate) / 2)
    clock.finished("eval:base", 8.0)  # now measured: 0.01 s an item
    assert clock.seconds_left() == pytest.approx((500 * 0.1 + 800 * 0.01) / 2)
    assert format_left(125.4) == "~2:05 left"
