"""Hook specifications: the four places where merge3 can be extended.

Every hook returns a mapping ``{name: implementation}``. Built-ins answer these hooks exactly like
third-party plugins do (see ``merge3_plugin.builtin``); third parties are found through the
``merge3`` entry-point group:

    [project.entry-points.merge3]
    my_plugin = "my_package.merge3_plugin"

What an implementation must be is written on each hook; later components rely on it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import pluggy

PROJECT = "merge3"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def merge3_anchor_extractors() -> Mapping[str, Callable[..., Any]]:
    """Anchor-item extraction strategies by name (e.g. ``random``, ``anchor-irt``).

    Each is called with the fitted bundle, the number of anchors and a seed, and returns the
    chosen item indices with their weights.
    """


@hookspec
def merge3_estimators() -> Mapping[str, Callable[..., Any]]:
    """Performance estimators by name (e.g. ``anchor``, ``gpirt``, ``gmpirt``).

    Each turns a model's scores on the anchor items into an estimate of full-benchmark accuracy.
    """


@hookspec
def merge3_search_spaces() -> Mapping[str, Callable[..., Any]]:
    """Merge search spaces by name (e.g. per-layer parameters of a mergekit config, LFS, DIS).

    Each maps a gene vector to a mergekit configuration and declares the genes' bounds.
    """


@hookspec
def merge3_algorithms() -> Mapping[str, Callable[..., Any]]:
    """Optimisation algorithms by name; each is a factory ``(**options) -> pymoo Algorithm``."""
