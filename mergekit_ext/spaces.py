"""mergekit-evolve-lite's search spaces, registered through merge3's `merge3_search_spaces` hook.

Registered by the `merge3` entry point in pyproject.toml, exactly as a third-party plugin would
register its own (say, a layer-stacking space): `evolve.space` picks one by name.
"""

from __future__ import annotations

from merge3_plugin.hookspecs import hookimpl


@hookimpl
def merge3_search_spaces():
    from .genes import GeneSpace

    return {"params": GeneSpace}
