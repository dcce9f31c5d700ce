"""The house's two promises, checked on the source: arrows between rooms point one way, and every
private upstream API is reached through the compat module of the room that owns that library.

Static (AST) checks, so that imports inside functions count too; they read the files, import nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# room folder -> top-level modules it must never import (lazily or not)
FORBIDDEN = {
    "merge3_plugin": {"merge3_zoo", "merge3_lm_eval_tasks", "mergekit_ext", "lm_eval", "mergekit", "pymoo"},
    "lm_eval_tasks": {"merge3_zoo", "mergekit_ext", "mergekit", "pymoo"},
    "mergekit_ext": {"merge3_zoo"},
}
ROOMS = ("merge3_plugin", "lm_eval_tasks", "mergekit_ext", "merge3_zoo")


def _sources(room: str) -> list[Path]:
    return sorted((REPO / room).rglob("*.py"))


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_no_room_imports_a_room_below_it(room):
    wrong = [f"{path.relative_to(REPO)}:{line}: imports {module}"
             for path in _sources(room)
             for line, module in _imports(ast.parse(path.read_text()))
             if module.split(".")[0] in FORBIDDEN[room]]
    assert not wrong, "\n".join(wrong)


def _private_uses(path: Path, root: Path = REPO) -> list[str]:
    """`x._name` on anything but self/cls, and imports from or of `_private` upstream modules."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                out.append(f"{path.relative_to(root)}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom):  # upstream (level 0) or one of our modules (relative)
            parts = (node.module or "").split(".") + [alias.name for alias in node.names]
            if any(p.startswith("_") and not p.startswith("__") for p in parts):
                out.append(f"{path.relative_to(root)}:{node.lineno}: from {'.' * node.level}{node.module or ''} import ...")
    return out


def test_private_apis_are_used_only_in_compat_modules():
    """Upstream privates only in a compat.py; ours never across modules (a public name says it is shared)."""
    # the rooms, and what runs on them: benchmarks, examples, the docs generator
    wrong = [use for room in (*ROOMS, "benchmarks", "examples", "docs") for path in _sources(room)
             if path.name != "compat.py" for use in _private_uses(path)]
    assert not wrong, "private attribute access outside a compat.py:\n" + "\n".join(wrong)


def test_the_scans_see_what_they_look_for(tmp_path):
    """The checks above would catch a violation, so their passing means something."""
    bad = tmp_path / "bad.py"
    bad.write_text("from __future__ import annotations\n\n"
                   "def f(task):\n    from lm_eval.tasks._yaml_loader import load_yaml\n"
                   "    import mergekit.plan\n    from .bundle import _sha256\n    return self._ok, task._bundle\n")
    assert _private_uses(bad, tmp_path) == ["bad.py:4: from lm_eval.tasks._yaml_loader import ...",
                                            "bad.py:6: from .bundle import ...", "bad.py:7: ._bundle"]
    assert [m for _, m in _imports(ast.parse(bad.read_text()))] == ["__future__", "lm_eval.tasks._yaml_loader",
                                                                     "mergekit.plan"]
