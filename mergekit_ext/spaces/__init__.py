"""mergekit-evolve-lite's search spaces and eval backends, registered through merge3's hooks.

Registered by the `merge3` entry point in pyproject.toml, exactly as a third-party plugin would
register its own: `evolve.space` picks one by name. `params`: the numbers of the mergekit config
(per layer group and parameter set); `depth`: which layer of which model fills each layer slot;
`lfs`: a merge method per layer group, with its hyperparameters per parameter set.
`evolve.eval.backend` picks where candidates are scored: `serial` (this process) or `ray` (workers).
"""

from __future__ import annotations

from merge3_plugin.hookspecs import hookimpl

from ..scoring.backends import SerialBackend, ray_backend
from .depth import DepthSpace
from .genes import GeneSpace
from .lfs import LayerFusionSpace


@hookimpl
def merge3_search_spaces():
    return {"params": GeneSpace, "depth": DepthSpace, "lfs": LayerFusionSpace}


@hookimpl
def merge3_eval_backends():
    return {"serial": SerialBackend, "ray": ray_backend}
