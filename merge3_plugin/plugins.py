"""The plugin manager: built-ins and entry-point plugins behind one lookup."""

from __future__ import annotations

import difflib
import functools
import importlib
from typing import Any

import pluggy

from . import hookspecs
from .errors import UserError

ENTRY_POINT_GROUP = "merge3"
BUILTIN_PLUGINS = (
    "merge3_plugin.builtin.estimators",
    "merge3_plugin.builtin.extractors",
)

# kind (as users say it) -> hook name
KINDS = {
    "extractor": "merge3_anchor_extractors",
    "estimator": "merge3_estimators",
    "search_space": "merge3_search_spaces",
    "algorithm": "merge3_algorithms",
    "eval_backend": "merge3_eval_backends",
}


def new_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if load_entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    return new_plugin_manager()


def registry(kind: str, pm: pluggy.PluginManager | None = None) -> dict[str, Any]:
    """All implementations of one kind, by name. Two plugins claiming one name is an error."""
    if kind not in KINDS:
        raise UserError(f"unknown plugin kind {kind!r}; kinds: {', '.join(KINDS)}")
    pm = pm or plugin_manager()
    hook = getattr(pm.hook, KINDS[kind])
    found: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for impl in hook.get_hookimpls():  # registration order: built-ins first, then entry points
        for name, value in (impl.function() or {}).items():
            if name in found:
                raise UserError(
                    f"{kind} {name!r} is provided by two plugins: {owner[name]} and {impl.plugin_name}"
                )
            found[name], owner[name] = value, impl.plugin_name
    return found


def unknown_name(kind: str, name: str, known, limit: int = 20) -> str:
    """The one wording for a name that is not known: what was asked, what exists (the first `limit`
    names), and the nearest, if one is near."""
    known = sorted(known)
    shown = ", ".join(known[:limit]) + (f", ... ({len(known)} in all)" if len(known) > limit else "")
    message = f"unknown {kind.replace('_', ' ')} {name!r}; available: {shown or 'none installed'}"
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    return message + (f"; did you mean {close[0]!r}?" if close else "")


def lookup(kind: str, name: str, pm: pluggy.PluginManager | None = None) -> Any:
    available = registry(kind, pm)
    if name not in available:
        raise UserError(unknown_name(kind, name, available))
    return available[name]


def names(kind: str, pm: pluggy.PluginManager | None = None) -> list[str]:
    """The names of one kind, in registration order (built-ins first): the one list of them."""
    return list(registry(kind, pm))


def endpoint_estimators(pm: pluggy.PluginManager | None = None) -> list[str]:
    """Estimators that need the endpoints of a merge (their `needs_endpoints`; a plain function
    from a third party, which declares nothing, does not)."""
    from .contracts import Estimator

    return [name for name, est in registry("estimator", pm).items()
            if isinstance(est, Estimator) and est.needs_endpoints]


def adaptive_estimators(pm: pluggy.PluginManager | None = None) -> dict[str, Any]:
    """Estimators that choose items as they go (`contracts.AdaptiveEstimator`): run per candidate by the
    evolve loop, never on an lm-eval task's fixed anchors."""
    return {name: est for name, est in registry("estimator", pm).items() if getattr(est, "adaptive", False) is True}
