"""Every example config runs as it is through the command line once its placeholders are filled in
(ZOO: a built zoo; TASKS: `merge3 tasks path`), as its own header says. A dry run reads the models'
configs and the task index, never a model's weights: the zoo here is the tiny random Llamas beside
the toy tasks' data, laid out as `merge3 zoo build` lays out a zoo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_an_example_config_passes_the_dry_run_once_filled_in(tiny_world, untrained_toy_tasks, tmp_path, name):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "models").symlink_to(tiny_world.root / "models")
    (zoo / "tasks").symlink_to(untrained_toy_tasks / "data")
    shipped = subprocess.run([sys.executable, "-m", "merge3_plugin.cli", "tasks", "path"], capture_output=True,
                             text=True, check=True).stdout.strip()
    text = (EXAMPLES / name).read_text().replace("ZOO/", f"{zoo}/").replace("TASKS", shipped)
    assert "ZOO/" not in text and "TASKS" not in text
    config = tmp_path / name
    config.write_text(text)
    run = subprocess.run([sys.executable, "-m", "mergekit_ext.cli", str(config), "--dry-run"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert "gene" in run.stdout.lower()  # it listed the genes and their ranges
