"""The README opens with the two commands a newcomer runs; CI runs the second one verbatim."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def first_code_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no bash code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_the_two_commands():
    lines = first_code_block()
    commands = [line for line in lines if not line.startswith("#")]
    assert len(commands) == 2
    install_and_run, install_and_test = commands
    for command in commands:
        assert "pip install torch==2.13.0" in command  # CPU torch before the project
        assert "python3 -m venv" in command
    assert "merge3 zoo build" in install_and_run and install_and_run.endswith("python examples/cross_lingual.py")
    # installed as users install it (not -e), so that lm-eval's start-up hook (.pth) is in place
    assert "pip install . &&" in install_and_run
    assert (ROOT / "examples" / "cross_lingual.py").exists()
    # the whole suite (no -m/-k selection); --durations lists the slowest tests in CI's log
    assert re.search(r"python -m pytest -q( --durations=\d+)?$", install_and_test), install_and_test
    assert "'.[test]'" in install_and_test


def test_ci_runs_the_readme_test_command():
    """.ci/run finds the same line this test reads (grep after the '# 2.' comment)."""
    out = subprocess.run(["bash", "-c", "grep -A1 -m1 '^# 2\\. ' README.md | tail -n 1"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == first_code_block()[3]
    assert "grep -A1 -m1 '^# 2\\. ' README.md" in (ROOT / ".ci" / "run").read_text()
