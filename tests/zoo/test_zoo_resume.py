"""An interrupted build resumes: finished jobs are kept, missing ones are redone, the result is the same."""

from __future__ import annotations

import hashlib
import json

import pytest

from merge3_zoo import recipe
from merge3_zoo.build import IN_PROGRESS, build_zoo
from merge3_zoo.manifest import MANIFEST


@pytest.fixture
def tiny_preset(monkeypatch):
    """A world too small to mean anything, built in seconds: enough to exercise the build machinery."""
    preset = recipe.make_preset(
        "tiny", shape=recipe.ModelShape(hidden=16, layers=2, heads=2, intermediate=32), n_test=20,
        base_mix=recipe.BASE_MIX, base_steps=30, base_checkpoints=(10,), expert_steps=10, expert_checkpoints=(),
        expert_lr=5e-4, replay=0.3, alt_runs=0, variants=0, scale_grid=(0.5, 1.0), pairs=recipe.PAIRS[:1],
        extra_merges=(), heldout=("base-s10",), thresholds=recipe.Thresholds(),
    )
    monkeypatch.setitem(recipe.PRESETS, "tiny", preset)
    return preset


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_interrupted_build_resumes(tiny_preset, tmp_path):
    out = tmp_path / "zoo"
    first = build_zoo("tiny", out=out, workers=2, progress=False).zoo
    weights = {m["name"]: digest(out / m["path"] / "model.safetensors") for m in first.models}
    accuracy = {m["name"]: m["accuracy"] for m in first.models}

    # Interrupt it after the fact: no manifest, one expert and one merge unfinished, one eval lost.
    (out / MANIFEST).unlink()
    (out / IN_PROGRESS).write_text(json.dumps({"recipe_hash": tiny_preset.recipe_hash(0)}))
    (out / "models" / "expert-lang" / ".done").unlink()
    (out / "models" / "ta-math1-lang1" / ".done").unlink()
    (out / "responses" / "base" / ".done").unlink()
    kept = (out / "models" / "expert-math" / "model.safetensors").stat().st_mtime_ns

    again = build_zoo("tiny", out=out, workers=2, progress=False)
    assert not again.cached
    assert (out / "models" / "expert-math" / "model.safetensors").stat().st_mtime_ns == kept  # not redone
    assert not (out / IN_PROGRESS).exists()
    for model in again.zoo.models:
        assert digest(out / model["path"] / "model.safetensors") == weights[model["name"]], model["name"]
        assert model["accuracy"] == accuracy[model["name"]], model["name"]
    assert len(list((out / "responses" / "base").glob("samples_*.jsonl"))) == len(again.zoo.tasks)


def test_an_unfinished_build_of_another_recipe_is_refused(tiny_preset, tmp_path):
    from merge3_plugin.errors import UserError

    out = tmp_path / "zoo"
    out.mkdir()
    (out / IN_PROGRESS).write_text(json.dumps({"recipe_hash": "0123456789abcdef"}))
    with pytest.raises(UserError, match="unfinished build of another recipe"):
        build_zoo("tiny", out=out, progress=False)
