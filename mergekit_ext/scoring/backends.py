"""The built-in eval backends (see `hookspecs.merge3_eval_backends`): `serial` scores candidates one after
another in this process; `ray` (mergekit_ext/scoring/ray_backend.py, `pip install 'merge3[ray]'`) on Ray workers."""

from __future__ import annotations

from typing import Callable

from .candidate import Job, Scored, score_candidate
from .ray_backend import RayBackend


class SerialBackend:
    """One candidate after another on the search's own engine (the live model in this process)."""

    def __init__(self, search):
        self.search = search

    def score(self, jobs: list[Job], stage: str, done: Callable[[Job, Scored], None]) -> None:
        engine = self.search.engine
        for job in jobs:
            done(job, score_candidate(engine, job, engine.fitness_for(stage)))

    def close(self) -> None:
        pass


def ray_backend(search):
    return RayBackend(search.config, depth=getattr(search.space, "num_layers", None))
