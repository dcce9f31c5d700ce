"""`merge3 zoo build`, `merge3 fit` and `merge3 tasks build` killed with SIGKILL (issue #13): a file is
always its old or its new version, and running the command again gives the unbroken result. The kills
come from crash points (merge3_plugin/crashpoints.py), in a separate process that the test starts."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

# the tiny preset of test_zoo_resume.py, registered in a child process that builds it
TINY_BUILD = textwrap.dedent("""\
    import sys
    from merge3_zoo import recipe
    from merge3_zoo.build import build_zoo
    recipe.PRESETS["tiny"] = recipe.make_preset(
        "tiny", shape=recipe.ModelShape(hidden=16, layers=2, heads=2, intermediate=32), n_test=20,
        base_mix=recipe.BASE_MIX, base_steps=30, base_checkpoints=(10,), expert_steps=10, expert_checkpoints=(),
        expert_lr=5e-4, replay=0.3, alt_runs=0, variants=0, scale_grid=(0.5, 1.0), pairs=recipe.PAIRS[:1],
        extra_merges=(), heldout=("base-s10",), thresholds=recipe.Thresholds())
    if __name__ == "__main__":  # the workers are spawned: they import this file again
        build_zoo("tiny", out=sys.argv[1], workers=2, progress=False)
    """)


def child(args: list[str], crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MERGE3_CRASH_AT"}
    if crash_at:
        env["MERGE3_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900, env=env)


def _without_timing(path) -> str:
    """A bundle's text but for how long its fit took (the one field that differs run to run)."""
    import re

    return re.sub(r'"fit_seconds": [0-9.]+', '"fit_seconds": T', path.read_text())


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _world(root) -> dict:
    """What a zoo is: every model's weights and accuracies, every task's items (not its timings)."""
    manifest = json.loads((root / "zoo.json").read_text())
    return {"models": {m["name"]: (digest(root / m["path"] / "model.safetensors"), m["accuracy"])
                       for m in manifest["models"]},
            "tasks": {f.relative_to(root).as_posix(): digest(f) for f in sorted((root / "tasks").rglob("*.jsonl"))},
            "recipe": manifest["recipe_hash"], "lineage": manifest["lineage"]}


@pytest.mark.parametrize("crash_at", ["write:accuracy.json:2", "write:zoo.json:1"])
def test_a_killed_zoo_build_resumes_to_the_same_world(tmp_path, crash_at):
    script = tmp_path / "build_tiny.py"
    script.write_text(TINY_BUILD)
    unbroken = child([str(script), str(tmp_path / "unbroken")])
    assert unbroken.returncode == 0, unbroken.stderr[-2000:]
    killed = child([str(script), str(tmp_path / "zoo")], crash_at=crash_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    for f in (tmp_path / "zoo").rglob("*.json"):
        json.loads(f.read_text())  # whole: the old version or the new one
    again = child([str(script), str(tmp_path / "zoo")])
    assert again.returncode == 0, again.stderr[-2000:]
    assert _world(tmp_path / "zoo") == _world(tmp_path / "unbroken")
    assert not (tmp_path / "zoo" / ".merge3-build-in-progress").exists()
    assert not list((tmp_path / "zoo").rglob("*.tmp"))


def test_a_killed_fit_and_tasks_build_leave_the_old_file_and_rerun_to_the_same(micro_zoo, tmp_path):
    fit = ["-m", "merge3_plugin.cli", "fit", "--samples", str(micro_zoo.responses_dir), "--task", "toy_rev",
           "--metric", "acc", "--out", str(tmp_path / "fit.json")]
    first = child(fit)
    assert first.returncode == 0, first.stderr[-2000:]
    unbroken = _without_timing(tmp_path / "fit.json")
    (tmp_path / "fit.json").write_text('{"an older": "bundle"}')
    killed = child(fit + ["--force"], crash_at="write:fit.json:1")
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "fit.json").read_text() == '{"an older": "bundle"}'  # the old version, whole
    assert child(fit + ["--force"]).returncode == 0
    assert _without_timing(tmp_path / "fit.json") == unbroken

    extract = child(["-m", "merge3_plugin.cli", "extract", "--bundle", str(tmp_path / "fit.json"), "--size", "10",
                     "--out", str(tmp_path / "anchored.json")])
    assert extract.returncode == 0, extract.stderr[-2000:]
    build = ["-m", "merge3_plugin.cli", "tasks", "build", "--bundle", str(tmp_path / "anchored.json"),
             "--base-yaml", str(micro_zoo.tasks_dir / "toy_rev.yaml"), "--name", "merge3_my_rev",
             "--out", str(tmp_path / "tasks")]
    killed = child(build, crash_at="write:merge3_my_rev.yaml:1")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "tasks" / "merge3_my_rev.yaml").exists()  # no half task for lm-eval to trip on
    assert child(build).returncode == 0
    text = (tmp_path / "tasks" / "merge3_my_rev.yaml").read_text()
    assert "task: merge3_my_rev" in text and str(tmp_path / "anchored.json") in text
