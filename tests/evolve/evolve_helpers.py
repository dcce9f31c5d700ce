"""The shipped examples as test configs: their ZOO/ and TASKS placeholders filled in, as their headers say."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_config(name: str, zoo, tasks_dir: Path, out: Path, edits: dict[str, str] | None = None) -> Path:
    """Write examples/<name> with the zoo's paths and `tasks_dir` filled in (and `edits`: text -> text,
    each of which must occur) to out/<name>."""
    text = (EXAMPLES / name).read_text().replace("ZOO/", f"{zoo.root}/").replace("TASKS", str(tasks_dir))
    for old, new in (edits or {}).items():
        assert old in text, f"{name} no longer contains {old!r}"
        text = text.replace(old, new)
    path = out / name
    path.write_text(text)
    return path
