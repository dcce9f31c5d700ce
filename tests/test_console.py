"""merge3_plugin.console: while a long job runs, other libraries' output goes to a log file and ours to
the terminal; everything is put back afterwards (issue #14's review: no handler left on a closed file)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_library_output_goes_to_the_log_and_ours_to_the_terminal(tmp_path):
    script = textwrap.dedent(f"""
        import logging, os, sys, warnings
        from merge3_plugin.console import libraries_to_log
        with libraries_to_log({str(tmp_path / "job.log")!r}) as terminal:
            print("library print")
            os.write(2, b"C-level write\\n")
            warnings.warn("library warning")
            late = logging.getLogger("made-inside")
            late.addHandler(logging.StreamHandler(sys.stderr))
            late.warning("warning inside")
            terminal.write("our bar\\n")
        late.warning("warning after")
        print("after")
        with libraries_to_log({str(tmp_path / "empty.log")!r}):
            pass
        """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    log = (tmp_path / "job.log").read_text()
    for said in ("library print", "C-level write", "library warning", "warning inside"):
        assert said in log and said not in run.stdout + run.stderr
    assert run.stderr.splitlines() == ["our bar", "warning after"] and run.stdout == "after\n"
    assert "Logging error" not in run.stderr and not (tmp_path / "empty.log").exists()
