"""The zoo build's time left: jobs weighed by their work, each kind timed as it goes.

Counting jobs gives a poor forecast (a base's training takes minutes, an evaluation seconds: the
first build of the micro world showed 1:05:35 left for a build of 3:45). Here a job's work is its
training samples, evaluated items or merged models; the seconds per unit of each kind come from the
jobs of that kind already done, and until one is done, from another kind's rate times the ratio
measured on the micro world (PRIOR_SECONDS_PER_UNIT); before any job is done, from those priors as
they are (a 2-core machine's speed). The work left is spread over the workers, and the forecast counts
down between jobs (`seconds_left(now)`), so the bar moves while a long first job runs.
"""

from __future__ import annotations

import time

# seconds per unit on the micro world's portable build (2 cores, 2026-12-05): train 410 s for 2200
# steps of 64 samples, eval 31 s for 21 models x 4 tasks x 200 items, merge 0.6 s for 5 merges of ~2.4 models
PRIOR_SECONDS_PER_UNIT = {"train": 0.0029, "eval": 0.0018, "merge": 0.05}
# As the forecast before the first job is done (2026-12-06, an AMD EPYC on MKL's COMPATIBLE branch):
# 3:40 for a micro build of 3:59, 9:08 for a default build of 6:55 (`merge3 zoo build`, quiet machine).


def job_units(kind: str, args: tuple, n_items: int, n_tasks: int) -> float:
    """A job's work: training samples (steps x batch), items evaluated, or models merged."""
    if kind == "train":
        run, batch_size = args[0], args[4]
        return float(run["steps"] * batch_size)
    if kind == "eval":
        return float(n_items * n_tasks)
    return float(len(args[0]["weights"]))


class BuildClock:
    def __init__(self, units: dict[str, float], kinds: dict[str, str], workers: int, now: float | None = None,
                 priors: bool = True):
        """`priors`: whether PRIOR_SECONDS_PER_UNIT describes these jobs (worlds trained from scratch, the size
        of those it was measured on); if not (a pre-trained base, hundreds of times slower per sample), there
        is no forecast until a job is done."""
        self.priors = priors
        self.units = dict(units)  # job key -> its work, for the jobs still to do
        self.kinds = kinds
        self.workers = max(1, workers)
        self.seconds: dict[str, float] = {}  # per kind: worker seconds spent on finished jobs
        self.done_units: dict[str, float] = {}
        self.last_change = time.monotonic() if now is None else now  # when a job last finished (or the start)

    def finished(self, key: str, seconds: float, now: float | None = None) -> None:
        self.last_change = time.monotonic() if now is None else now
        kind = self.kinds[key]
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds
        self.done_units[kind] = self.done_units.get(kind, 0.0) + self.units.pop(key, 0.0)

    def rate(self, kind: str) -> float:
        """Seconds per unit of `kind`: measured, else scaled from a measured kind, else the prior."""
        if self.done_units.get(kind):
            return self.seconds[kind] / self.done_units[kind]
        for other, units in self.done_units.items():
            if units:
                return self.seconds[other] / units * PRIOR_SECONDS_PER_UNIT[kind] / PRIOR_SECONDS_PER_UNIT[other]
        return PRIOR_SECONDS_PER_UNIT[kind]

    def seconds_left(self, now: float | None = None) -> float | None:
        """Wall seconds left: the work left at the rates known when a job last finished, less the time
        since (never below a second's worth while jobs remain); None while nothing is known (no priors,
        no job done)."""
        if self.units and not self.priors and not any(self.done_units.values()):
            return None
        work = sum(units * self.rate(self.kinds[key]) for key, units in self.units.items()) / self.workers
        since = (time.monotonic() if now is None else now) - self.last_change
        return max(work - since, 1.0 if self.units else 0.0)


def format_left(seconds: float | None) -> str:
    if seconds is None:
        return "timing the first job"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"~{minutes}:{secs:02d} left"
