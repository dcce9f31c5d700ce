"""The `merge3` command line: help, and user errors that say what is wrong without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys



def merge3(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "merge3_plugin.cli", *args], capture_output=True, text=True,
                          env={**os.environ}, timeout=120, **kw)


def test_help_lists_the_commands():
    out = merge3("--help")
    assert out.returncode == 0
    assert "zoo" in out.stdout and "plugins" in out.stdout
    build_help = merge3("zoo", "build", "--help").stdout
    for flag in ("--preset", "--out", "--seed", "--force"):
        assert flag in build_help


def test_bad_preset_is_a_clear_error():
    out = merge3("zoo", "build", "--preset", "huge")
    assert out.returncode == 2
    assert "--preset" in out.stderr and "'huge'" in out.stderr and "micro" in out.stderr
    assert "Traceback" not in out.stderr


def test_out_under_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = merge3("zoo", "build", "--preset", "micro", "--out", str(blocker / "zoo"))
    assert out.returncode == 2
    assert "--out" in out.stderr and "a-file" in out.stderr
    assert "Traceback" not in out.stderr
    assert blocker.read_text() == "not a folder"


def test_unwritable_out_is_a_clear_error(tmp_path):
    # /proc takes no new folders, not even from root (CI runs as root, so chmod alone proves nothing)
    out = merge3("zoo", "build", "--preset", "micro", "--out", "/proc/merge3-zoo")
    assert out.returncode == 2
    assert "--out /proc/merge3-zoo" in out.stderr and "Traceback" not in out.stderr
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            out = merge3("zoo", "build", "--preset", "micro", "--out", str(locked / "zoo"))
        finally:
            locked.chmod(0o700)
        assert out.returncode == 2 and "not writable" in out.stderr and "Traceback" not in out.stderr


def test_a_foreign_non_empty_out_is_never_written_into(tmp_path):
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    out = merge3("zoo", "build", "--preset", "micro", "--out", str(precious))
    assert out.returncode == 2 and "refusing" in out.stderr
    assert sorted(p.name for p in precious.iterdir()) == ["notes.txt"]


def test_plugins_command_lists_builtin_algorithms():
    out = merge3("plugins")
    assert out.returncode == 0
    assert "nsga2" in out.stdout and "algorithm" in out.stdout


def test_library_errors_name_parameters_and_the_cli_names_flags():
    """A library function refuses its own parameter by name; only a command line speaks of flags."""
    from merge3_plugin.errors import UserError

    err = UserError("no samples for model(s) x", param="holdout")
    assert str(err) == "holdout: no samples for model(s) x" and err.as_flag() == "--holdout: no samples for model(s) x"
    valued = UserError("cannot create it", param="out", value="/nowhere")
    assert str(valued) == "out /nowhere: cannot create it" and valued.as_flag() == "--out /nowhere: cannot create it"
    assert UserError("plain").as_flag() == "plain"


def test_help_texts_show_percent_signs_once():
    """argparse doubles nothing in a description: '20%%' there is printed as is."""
    out = merge3("fit", "--help")
    assert "20% of the models" in out.stdout and "%%" not in out.stdout
