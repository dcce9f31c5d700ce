"""Writes docs/reference.md from the code: every `evolve:` field and every command-line option.

    python docs/generate_reference.py           # rewrite docs/reference.md
    python docs/generate_reference.py --check   # exit 1 if docs/reference.md is stale

The `evolve:` fields come from the pydantic models in `mergekit_ext/config.py` (`model_fields`); the
options are the `--help` text (`format_help()`) of every `merge3` and `mergekit-evolve-lite` parser.
Subcommands are found while `build_parser()` adds them, through argparse's public `add_subparsers()`
and `add_parser()`. `merge3` is built with merge3's own plugins only (the built-ins and the entry
points of the merge3 distribution), so another installed plugin does not change the file.

`tests/test_docs.py` checks that the committed file equals what this script writes now.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import typing
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
HELP_COLUMNS = 100  # argparse wraps help text to the terminal width; fix it

# Descriptions for fields that have none in mergekit_ext/config.py. Used only where the model gives
# none; a key here for a field that has its own description, or for no field, is an error.
DESCRIPTIONS: dict[str, str] = {}  # every field now says what it is in mergekit_ext/config.py

# What a model that allows extra keys does with them.
EXTRA_KEYS = {
    "AlgorithmSpec": "Any other key is an option of the algorithm, passed to pymoo; options the algorithm "
                     "does not take are refused before the run.",
    "EvalSpec": "Any other key is passed to lm-eval's HF model as a model argument.",
}


# -- the evolve: section ------------------------------------------------------------------------------
def _models():
    from mergekit_ext.config import EvolveSpec

    return EvolveSpec


def _type_name(annotation) -> str:
    from pydantic import BaseModel

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if annotation is typing.Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if origin is typing.Literal:
        return " | ".join(repr(a).replace("'", '"') for a in args)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return " | ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"mapping {_type_name(args[0])} -> {_type_name(args[1])}"
    if origin is tuple:
        return f"[{', '.join(_type_name(a) for a in args)}]"
    return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
        getattr(annotation, "__name__", ""), str(annotation))


def _nested_models(annotation) -> list:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested_models(arg)]


def _yaml_value(value) -> str:
    import yaml
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        value = value.model_dump()
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
    return str(value)


def _default(field) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return f"`{_yaml_value(field.default_factory())}`"
    return f"`{_yaml_value(field.default)}`"


def _constraints(field) -> list[str]:
    out = []
    for item in field.metadata:
        for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(item, attr, None) is not None:
                out.append(f"{word} {getattr(item, attr)}")
        if getattr(item, "min_length", None) is not None:
            out.append(f"at least {item.min_length} entry" + ("" if item.min_length == 1 else "s"))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _description(model, name: str, field) -> str:
    key = f"{model.__name__}.{name}"
    if field.description and key in DESCRIPTIONS:
        raise SystemExit(f"generate_reference.py: {key} now has a description in the code; remove it from DESCRIPTIONS")
    text = field.description or DESCRIPTIONS.get(key)
    if not text:
        raise SystemExit(f"generate_reference.py: {key} has no description: add one (in the code, or in DESCRIPTIONS)")
    return text


def _fields_section() -> list[str]:
    """One table per model, walked from EvolveSpec in field order; a model met again is referred back."""
    queue = [("evolve", _models())]
    first_path: dict = {}
    lines: list[str] = []
    known: set[str] = set()
    while queue:
        path, model = queue.pop(0)
        if model in first_path:
            lines += [f"### `{path}`", "", f"The same fields as `{first_path[model]}`.", ""]
            continue
        first_path[model] = path
        lines += [f"### `{path}`", ""]
        doc = model.__dict__.get("__doc__")
        if doc:
            lines += [" ".join(doc.split()), ""]
        lines += ["| field | type | default | description |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            known.add(f"{model.__name__}.{name}")
            kind = _type_name(field.annotation)
            limits = _constraints(field)
            if limits:
                kind += f" ({', '.join(limits)})"
            lines.append(f"| `{name}` | {_cell(kind)} | {_cell(_default(field))} | "
                         f"{_cell(_description(model, name, field))} |")
            is_list = typing.get_origin(field.annotation) is list
            for nested in _nested_models(field.annotation):
                queue.append((f"{path}.{name}" + ("[]" if is_list else ""), nested))
        if model.__name__ in EXTRA_KEYS:
            lines += ["", EXTRA_KEYS[model.__name__]]
        lines.append("")
    stale = set(DESCRIPTIONS) - known
    if stale:
        raise SystemExit(f"generate_reference.py: DESCRIPTIONS names no field: {', '.join(sorted(stale))}")
    return lines


# -- the command lines --------------------------------------------------------------------------------
def _own_plugin_manager():
    """merge3's built-ins and the plugins the merge3 distribution itself declares (zoo, tasks, the
    evolve room), without any other installed plugin."""
    from importlib.metadata import entry_points

    from merge3_plugin.plugins import ENTRY_POINT_GROUP, new_plugin_manager

    pm = new_plugin_manager(load_entry_points=False)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.dist is not None and ep.dist.name == "merge3":
            pm.register(ep.load(), name=ep.name)
    return pm


def _parsers(build) -> list[argparse.ArgumentParser]:
    """`build()`'s parser and every subcommand's, depth first in the order they were added."""
    children: dict[int, list[argparse.ArgumentParser]] = {}
    original = argparse.ArgumentParser.add_subparsers

    def add_subparsers(parser, **kwargs):
        action = original(parser, **kwargs)
        add_parser = action.add_parser

        def recording_add_parser(name, **options):
            child = add_parser(name, **options)
            children.setdefault(id(parser), []).append(child)
            return child

        action.add_parser = recording_add_parser
        return action

    with mock.patch.object(argparse.ArgumentParser, "add_subparsers", add_subparsers):
        root = build()

    out = []

    def walk(parser):
        out.append(parser)
        for child in children.get(id(parser), []):
            walk(child)

    walk(root)
    return out


@contextlib.contextmanager
def _plain_help():
    """Help text as a 100-column terminal without colour shows it."""
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR", "PYTHON_COLORS")}
    os.environ.update(COLUMNS=str(HELP_COLUMNS), NO_COLOR="1", PYTHON_COLORS="0")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _commands_section() -> list[str]:
    import merge3_plugin.plugins
    from merge3_plugin.cli import build_parser as merge3_parser
    from mergekit_ext.cli import build_parser as evolve_parser

    pm = _own_plugin_manager()
    lines = []
    with _plain_help(), mock.patch.object(merge3_plugin.plugins, "plugin_manager", lambda: pm):
        for build in (merge3_parser, evolve_parser):
            for parser in _parsers(build):
                lines += [f"### `{parser.prog}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    return lines


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def render() -> str:
    lines = [
        "<!-- Generated by docs/generate_reference.py from the code; do not edit by hand. "
        "Rewrite it with: python docs/generate_reference.py -->",
        "",
        "# Reference",
        "",
        "Every field of the `evolve:` section and every command-line option, generated from the code "
        f"(the pydantic models of `mergekit_ext/config.py`; the `--help` of each command, as Python "
        f"{python_version()} prints it). [Back to the docs](README.md).",
        "",
        "## The `evolve:` section",
        "",
        "Add it to a mergekit YAML and run `mergekit-evolve-lite` on the file ([evolve.md](evolve.md) shows a "
        "whole config). Unknown keys are refused, except where a table says otherwise.",
        "",
        *_fields_section(),
        "## Commands",
        "",
        "`merge3 zoo ...` and `merge3 tasks ...` are added by plugins of the merge3 distribution itself, "
        "through the `merge3_add_commands` hook ([plugins.md](plugins.md)).",
        "",
        *_commands_section(),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/reference.md from the code.")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/reference.md is stale; write nothing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
        if current != text:
            print(f"{REFERENCE.relative_to(ROOT)} is stale: run python docs/generate_reference.py", file=sys.stderr)
            return 1
        print(f"{REFERENCE.relative_to(ROOT)} is up to date")
        return 0
    REFERENCE.write_text(text, encoding="utf-8")
    print(f"wrote {REFERENCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run from a source tree, too
    sys.exit(main())
