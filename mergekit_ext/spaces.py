"""mergekit-evolve-lite's search spaces, registered through merge3's `merge3_search_spaces` hook.

Registered by the `merge3` entry point in pyproject.toml, exactly as a third-party plugin would
register its own: `evolve.space` picks one by name. `params`: the numbers of the mergekit config
(per layer group and parameter set); `depth`: which layer of which model fills each layer slot.
"""

from __future__ import annotations

from merge3_plugin.hookspecs import hookimpl


@hookimpl
def merge3_search_spaces():
    from .depth import DepthSpace
    from .genes import GeneSpace

    return {"params": GeneSpace, "depth": DepthSpace}
