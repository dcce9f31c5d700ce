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
    "mergekit_ext": {"merge3_zoo", "lm_eval"},
    "merge3_zoo": {"lm_eval"},
}
# the lm-eval room's one door: other rooms import merge3_lm_eval_tasks.api and nothing else of it
LM_EVAL_DOOR = "merge3_lm_eval_tasks.api"
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


@pytest.mark.parametrize("room", ["merge3_plugin", "mergekit_ext", "merge3_zoo", "examples"])
def test_the_lm_eval_room_is_entered_through_its_one_door(room):
    wrong = []
    for path in _sources(room):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module] if node.module != "merge3_lm_eval_tasks" else \
                    [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            wrong += [f"{path.relative_to(REPO)}:{node.lineno}: imports {m}" for m in modules
                      if m.split(".")[0] == "merge3_lm_eval_tasks" and m != LM_EVAL_DOOR]
    assert not wrong, "\n".join(wrong)


# the evolve room's sub-rooms, in the order of its pipeline; config, engine, search, run and cli sit on top
EVOLVE_SUBROOMS = ("spaces", "algorithms", "merging", "scoring", "select")


def _module_graph(package: Path, name: str) -> dict[str, set[str]]:
    """{module: modules of `name` it imports (relative imports resolved, lazy ones too)}."""
    graph = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_init else parts)
        here = parts[:-1]  # the package the file lives in
        deps = set()
        tree = ast.parse(path.read_text())
        type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                     and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in type_only:  # `if TYPE_CHECKING:` imports are for annotations, never run
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                deps.add(target)
        graph[module] = {d for d in deps if d.split(".")[0] == name and d != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                found.append(stack[stack.index(dep):] + [dep])
            elif dep not in state and dep in graph:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


@pytest.mark.parametrize("room", ["merge3_plugin", "lm_eval_tasks", "mergekit_ext", "merge3_zoo",
                                  *(f"mergekit_ext/{sub}" for sub in EVOLVE_SUBROOMS)])
def test_no_import_circle_inside_a_room(room):
    package = REPO / room
    name = "merge3_lm_eval_tasks" if room == "lm_eval_tasks" else room.replace("/", ".")
    graph = _module_graph(package, room.split("/")[0])
    if "/" in room:  # a sub-room: only the arrows between its own modules
        graph = {m: {d for d in deps if d.startswith(name)} for m, deps in graph.items() if m.startswith(name)}
    assert (REPO / room).is_dir(), room
    cycles = _cycles(graph)
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_evolve_room_shows_its_pipeline():
    """config -> space -> algorithm -> merge -> score -> select, then the run and its command line."""
    folders = {p.name for p in (REPO / "mergekit_ext").iterdir() if (p / "__init__.py").exists()}
    assert folders == set(EVOLVE_SUBROOMS)
    top = {p.stem for p in (REPO / "mergekit_ext").glob("*.py")} - {"__init__"}
    assert top == {"config", "engine", "search", "run", "cli"}


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


# Imports sit at a module's top, so that its dependencies show there. An import may wait inside a
# function only for a library whose start-up cost would slow every command that does not need it
# (`--help`, a refused config), measured 2026-12-06 on 2 cores with `python -c "import X"`:
# mergekit.merge 5.7 s, torch 1.6 s, lm_eval.tasks 1.6 s, girth 0.9 s, transformers 0.9 s, pymoo 0.5 s,
# sklearn.cluster 1.7 s, scipy.optimize 0.4 s (mergekit-evolve-lite --help takes 0.05 s, merge3 --help 0.2 s) - or for one of
# our modules that imports such a library at its top. Optional dependencies (ImportError handled) wait too.
DEFERRED_LIBRARIES = {"torch", "transformers", "lm_eval", "mergekit", "pymoo", "girth", "scipy", "ray",
                      "datasets", "safetensors", "accelerate", "matplotlib", "gguf", "optuna", "pyarrow",
                      "tokenizers", "sklearn"}
# modules whose imports all wait, with the reason
DEFERRING_MODULES = {
    "merge3_lm_eval_tasks.startup": "it runs inside lm-eval's own `import lm_eval.tasks` (the .pth hook)",
}
PACKAGES = {"lm_eval_tasks": "merge3_lm_eval_tasks"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    parts[0] = PACKAGES.get(parts[0], parts[0])
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(module: str, is_package: bool, node: ast.AST) -> list[str]:
    """The modules an import statement loads (for `from m import x`: m, and m.x where x is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")[:len(module.split(".")) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def _deferred_imports(paths: list[Path]) -> tuple[dict, list]:
    """({module: modules it imports at its top}, [(module, line, targets) of each import inside a function,
    not counting optional ones])."""
    top, deferred = {}, []
    for path in paths:
        module, tree = _module_name(path), ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        inside = {}
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                optional = {id(n) for block in ast.walk(func) if isinstance(block, ast.Try)
                            and any("ImportError" in ast.unparse(h.type or ast.Name("")) for h in block.handlers)
                            for n in ast.walk(block)}
                for node in ast.walk(func):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        inside[id(node)] = id(node) in optional
        top[module] = set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = _targets(module, is_package, node)
            if id(node) not in inside:
                top[module].update(targets)
            elif not inside[id(node)]:
                deferred.append((module, node.lineno, targets))
    return top, deferred


def _slow_to_import(top: dict, module: str, seen: frozenset = frozenset()) -> bool:
    if module.split(".")[0] in DEFERRED_LIBRARIES:
        return True
    if module not in top or module in seen:
        return False
    parent = module.rsplit(".", 1)[0]  # importing a module runs its package's __init__ first
    return any(_slow_to_import(top, m, seen | {module}) for m in top[module] | ({parent} if parent in top else set()))


def test_imports_sit_at_the_top_unless_they_are_slow_to_load():
    top, deferred = _deferred_imports([p for room in ROOMS for p in _sources(room)])
    wrong = [f"{module}:{line}: imports {', '.join(targets)} inside a function"
             for module, line, targets in deferred
             if module not in DEFERRING_MODULES and not any(_slow_to_import(top, t) for t in targets)]
    assert not wrong, "move these to the module's top (or say why not in DEFERRING_MODULES):\n" + "\n".join(wrong)


def test_the_deferred_import_check_sees_a_light_import_in_a_function(tmp_path):
    (tmp_path / "pkg").mkdir()
    light, slow = tmp_path / "pkg" / "light.py", tmp_path / "pkg" / "slow.py"
    slow.write_text("import torch\n")
    light.write_text("import os\n\ndef f():\n    import json\n    from . import slow\n    import mergekit.merge\n"
                     "    try:\n        import gguf\n    except ImportError:\n        pass\n")
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        top, deferred = _deferred_imports([light, slow])
    finally:
        REPO = saved
    assert [(m, line) for m, line, _ in deferred] == [("pkg.light", 4), ("pkg.light", 5), ("pkg.light", 6)]
    assert [any(_slow_to_import(top, t) for t in targets) for _, _, targets in deferred] == [False, True, True]
