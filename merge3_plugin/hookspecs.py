"""Hook specifications: the five kinds of plugin merge3 looks up by name, and its command line.

Every plugin-kind hook returns a mapping ``{name: implementation}``. Built-ins answer these hooks exactly like
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

    Each is called as ``extractor(bundle, size, rng)`` (a fitted ``merge3_plugin.bundle.Bundle``,
    the number of anchors, a ``numpy.random.Generator``) and returns ``(positions, weights)``:
    ``size`` distinct item positions and non-negative weights that sum to 1. It should use only
    the bundle's training models; the validation models calibrate the estimators afterwards.
    """


@hookspec
def merge3_estimators() -> Mapping[str, Callable[..., Any]]:
    """Performance estimators by name (e.g. ``anchor``, ``gpirt``, ``gmpirt``).

    Each is called as ``estimator(state)`` with a ``merge3_plugin.estimation.Estimation`` (a batch
    of models' anchor scores, with lazily computed anchor mean, ability, merge weights) and returns
    one full-benchmark estimate per model, or None where it does not apply. Results are clipped to
    [0, 1] by the caller.
    """


@hookspec
def merge3_search_spaces() -> Mapping[str, Callable[..., Any]]:
    """Merge search spaces by name (``params``: the numbers of a mergekit config; ``depth``: stacks of
    layers, slots or DIS; ``lfs``: a merge method per layer group).

    Each is called as ``space(config)`` with a validated ``mergekit_ext.config.EvolveConfig`` and
    returns an object with ``dims`` (the number of genes, each in [0, 1]), ``to_config(x)`` (a plain
    mergekit config for genes ``x``, which the in-memory merger and `mergekit-yaml` run, or a recipe:
    a list of configs for `mergekit-multi` whose last stacks named stages, see mergekit_ext/merging/recipe.py)
    and ``describe() -> str`` (what `--dry-run` prints); optionally ``warm_start()`` (first-generation
    rows). ``evolve.space`` picks one by name.
    """


@hookspec
def merge3_algorithms() -> Mapping[str, Callable[..., Any]]:
    """Optimisation algorithms by name; each is a factory ``(**options) -> pymoo Algorithm``."""


@hookspec
def merge3_eval_backends() -> Mapping[str, Callable[..., Any]]:
    """Where a search's candidates are scored, by name (``serial``: one after another in this process;
    ``ray``: in parallel on Ray workers). ``evolve.eval.backend`` picks one.

    Each is a factory ``backend(search)`` called with the ``mergekit_ext.search.MergeSearch`` (its
    ``config``, ``space``, and ``engine`` for scoring in this process). It returns an object with
    ``score(jobs, stage, done)``, which scores every ``mergekit_ext.scoring.candidate.Job`` (``stage``:
    ``search`` or ``select``, the fitness to use) with ``mergekit_ext.scoring.candidate.score_candidate`` or its
    equal and calls ``done(job, scored)`` in this thread as each finishes, in any order; and
    ``close()``. The driver keeps the history, so a backend needs to write nothing.
    """


@hookspec
def merge3_add_commands(subparsers: Any) -> None:
    """Add subcommands to the `merge3` command line.

    Called with what ``argparse.ArgumentParser.add_subparsers()`` returned; an implementation adds
    its parsers with ``subparsers.add_parser(...)`` and sets ``func`` (``args -> exit code``) on
    each with ``set_defaults``. A ``merge3_plugin.errors.UserError`` raised by ``func`` is printed
    without a traceback. The lm-eval room (`merge3 tasks`) and the toy world (`merge3 zoo`) come in
    this way, so the core imports neither.
    """
