"""The search: a pymoo Problem over genes, merged in memory, scored by Fitness; resumable by replay.

Every evaluated candidate is appended to history.jsonl at once (config hash, genes, objectives,
details, merge and eval seconds). `--resume` replays the run from the start with the same seed,
answering candidates already in the history from it (no merge, no evaluation): the algorithm makes
the same decisions, so the result equals an uninterrupted run's. No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from merge3_plugin.crashpoints import crash_point
from merge3_plugin.errors import UserError
from merge3_plugin.files import check_writable, write_atomic
from merge3_plugin.plugins import lookup

from .algorithms.racing import climb, race
from .config import EvolveConfig
from .scoring.candidate import Job, Scored
from .scoring.failures import GenerationFailed, GenerationWatch
from .spaces.genes import space_for


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


class History:
    def __init__(self, path: Path, resume: bool):
        self.path = path
        self.records: dict[str, dict] = {}
        self.order: list[dict] = []
        self.generations: list[dict] = []  # several objectives: one line per generation (its hypervolume)
        if path.exists():
            if not resume:
                raise UserError(f"{path.parent}: holds a run already; pass --resume to continue it, or choose "
                                "another --out")
            lines = path.read_text().splitlines()
            for line_no, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    if line_no == len(lines):
                        # a line cut short by the interruption: dropped (its candidate is evaluated again),
                        # so that what this run appends does not follow a broken line
                        write_atomic(path, "".join(line + "\n" for line in lines[:-1]))
                        break
                    raise UserError(f"{path}:{line_no}: not valid JSON; the history is damaged") from None
                if record.get("kind") == "generation":
                    self.generations.append(record)
                    continue
                self.records[record["config_hash"]] = record
                self.order.append(record)

    def add(self, record: dict) -> None:
        if record.get("kind") == "generation":
            self.generations.append(record)
        else:
            self.records[record["config_hash"]] = record
            self.order.append(record)
        line = json.dumps(record) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            # a line is appended whole or, if the process dies mid-write, dropped on resume (see __init__)
            f.write(line[: len(line) // 2])
            f.flush()
            crash_point("history")
            f.write(line[len(line) // 2:])
            f.flush()


RUN_FILE = "run.json"  # which config a run in --out belongs to (what --resume checks)


def run_identity(config: EvolveConfig) -> str:
    """What makes two runs the same search: the merge and the evolve section, except what a resumed run
    may change (a larger budget, another device or batch size, a select stage added)."""
    evolve = config.evolve.model_dump(mode="json", exclude={"budget", "eval", "select", "keep_config"})
    for name in ("warm_start", "racing", "init"):  # unset: runs from before the field keep their identity
        if not evolve[name]:
            del evolve[name]
    return config_hash({"merge": config.merge, "evolve": evolve})


def claim_out(out: Path, config: EvolveConfig, resume: bool) -> None:
    """Refuse an --out that cannot be written, or that holds another config's run (before anything loads)."""
    check_writable(out)
    record = out / RUN_FILE
    if record.exists():
        try:
            theirs = json.loads(record.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"{record} is damaged; this folder holds a run merge3 cannot identify", param="out",
                            value=out) from None
        if theirs.get("identity") != run_identity(config):
            raise UserError(f"holds the run of another config ({theirs.get('config')}); its history would mix with "
                            "this one's. Choose another --out (or resume that run with its own config)",
                            param="out", value=out)
    if (out / "history.jsonl").exists() and not resume:
        raise UserError("holds a run already; pass --resume to continue it, or choose another --out",
                        param="out", value=out)


class MergeSearch:
    def __init__(self, config: EvolveConfig, out: Path, resume: bool = False, progress=None, manager=None):
        """`manager`: lm-eval's task index, if the caller built it already (to check task names early)."""
        self.config = config
        self.manager = manager
        self.space = space_for(config)
        self.out = out
        claim_out(out, config, resume)
        out.mkdir(parents=True, exist_ok=True)
        self.history = History(out / "history.jsonl", resume)
        if not (out / RUN_FILE).exists():
            write_atomic(out / RUN_FILE, json.dumps({"config": str(config.path), "identity": run_identity(config)},
                                                    indent=1) + "\n")
        self.selection = History(out / "selection.jsonl", resume)  # the select stage's scores
        self.incumbent = History(out / "your_config.jsonl", resume)  # your config's score (keep_config)
        self.held_out = History(out / "held_out.jsonl", resume)  # the never-worse duel's scores
        self.progress = progress
        # One count of candidates: every one the algorithm asks for is `asked`, and is either
        # evaluated now, replayed from an earlier run's history (--resume), or a repeat of one asked
        # earlier in this run (answered from memory). Past the budget, none is asked at all.
        self.budget = config.evolve.budget.evaluations
        self.asked = 0
        self.evaluated = 0
        self.replayed = 0
        self.repeated = 0
        self._asked_keys: set[str] = set()
        # the items (documents) the distinct candidates asked so far cost, replayed ones included so that a
        # resumed run stops where the unbroken one did (evolve.budget.items)
        self.items_spent = 0
        self.failed = 0  # candidates evaluated now that failed (recorded with their reason)
        self.watch = GenerationWatch()
        self._engine = None
        self._backend = None
        self._rungs: list[int] | None = None  # evolve.racing: anchors per rung, the last all of them
        # evolve.racing with an algorithm that decides promotions itself (tpe: Optuna's Hyperband, its
        # report(row, anchors, estimate) -> go on?) rather than successive halving per generation
        self.own_intensifier = False

    @property
    def engine(self):
        """The live model, merger and fitness, built on first use (loading models takes seconds)."""
        if self._engine is None:
            from .engine import build_engine

            self._engine = build_engine(self.config, depth=getattr(self.space, "num_layers", None),
                                        manager=self.manager)
        return self._engine

    @property
    def built_engine(self):
        """The driver's engine if this run built one (None when every candidate came from the history,
        or workers scored them all), without building it."""
        return self._engine

    @property
    def backend(self):
        """Where candidates are scored (evolve.eval.backend), started on first use."""
        if self._backend is None:
            self._backend = lookup("eval_backend", self.config.evolve.eval.backend)(self)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def _score(self, jobs: list[Job], stage: str, history: History, tick=None) -> None:
        """Score `jobs` on the backend and add their records to `history` in the jobs' order, each as soon
        as it and every job before it are done (a backend may finish them in any order)."""
        if not jobs:  # nothing new (a resumed select stage): no models loaded, no workers started
            return
        finished: dict[int, Scored] = {}
        position = 0

        def done(job: Job, scored: Scored) -> None:
            nonlocal position
            finished[job.index] = scored
            while position < len(jobs) and jobs[position].index in finished:
                self._keep(jobs[position], finished.pop(jobs[position].index), stage, history)
                position += 1
                if tick:
                    tick()

        self.backend.score(jobs, stage, done)
        if position < len(jobs):  # a backend must answer every job
            raise RuntimeError(f"the {self.config.evolve.eval.backend} backend left {len(jobs) - position} "
                               "candidates unscored")

    @property
    def rungs(self) -> list[int]:
        """evolve.racing: anchors per rung of the fitness tasks, the last all of them (read once)."""
        if self._rungs is None:
            from .scoring.fitness import rung_sizes

            self._rungs = rung_sizes(self.config, self.config.evolve.fitness[0],
                                     self.manager or self.engine.fitness.manager)
        return self._rungs

    def _race(self, jobs: list[Job]) -> None:
        """evolve.racing: the generation's new candidates raced through the anchor rungs (racing.py), in this
        process; records kept in the generation's order once the race is run."""
        results = race(self.engine, jobs, self.rungs, self.config.evolve.racing.eta)
        for job in jobs:
            self._keep(job, results[job.index], "search", self.history)

    def _climb(self, keys: list[str | None], jobs: list[Job], intensifier) -> None:
        """evolve.racing with the algorithm's intensifier: the generation's rows in order, each new one
        up the rungs for as long as the intensifier says (racing.climb); each one known from the history
        has its recorded rungs told to the intensifier again, so that it decides as it did then."""
        new = {job.index: job for job in jobs}
        for row, key in enumerate(keys):
            if key is None:  # past the budget
                continue
            if row not in new:
                for anchors, estimate in self.history.records[key].get("climb", []):
                    if anchors != self.rungs[-1]:  # the last rung's estimate is the candidate's value
                        intensifier.report(row, anchors, estimate)
                continue
            job = new[row]
            scored = climb(self.engine, job, self.rungs,
                           lambda anchors, estimate, row=row: intensifier.report(row, anchors, estimate))
            self._keep(job, scored, "search", self.history)

    def _keep(self, job: Job, scored: Scored, stage: str, history: History) -> None:
        if scored.traceback:
            with open(self.out / "failures.log", "a", encoding="utf-8") as f:
                f.write(scored.traceback)
        record = scored.record
        if stage == "search":
            record = {"n": len(history.order), **record, "time": time.time()}
            self.evaluated += 1
            self.failed += bool(record.get("failed"))
        history.add(record)
        if stage == "search" and self.progress is not None:
            self.progress(record["objectives"])

    def score_incumbent(self) -> dict:
        """Your config (the mergekit part, as written) scored with the search's fitness, once per run folder
        (your_config.jsonl); not a candidate of the search, so it counts against no budget."""
        candidate = self.config.merge
        key = config_hash(candidate)
        if key not in self.incumbent.records:
            self._score([Job(0, key, candidate, [])], "incumbent", self.incumbent)
        return self.incumbent.records[key]

    def _score_once(self, pairs, stage: str, history: History, tick=None) -> list[dict]:
        """(genes, candidate) pairs scored at `stage` into `history`, each distinct candidate once; those
        there already, from an interrupted run, are not scored again. `tick()` after each pair. Returns
        one record per pair."""
        jobs, keys = [], []
        for i, (genes, candidate) in enumerate(pairs):
            key = config_hash(candidate)
            keys.append(key)
            if key not in history.records and key not in {job.key for job in jobs}:
                jobs.append(Job(i, key, candidate, [float(v) for v in genes]))
            elif tick:
                tick()
        self._score(jobs, stage, history, tick)
        return [history.records[key] for key in keys]

    def score_held_out(self, pairs: list[tuple[list[float], dict | list]], tick=None) -> dict[str, dict]:
        """The duel: (genes, candidate) pairs scored on the held-out items (held_out.jsonl). Returns
        config hash -> record."""
        return {r["config_hash"]: r for r in self._score_once(pairs, "held_out", self.held_out, tick)}

    def rescore(self, X: np.ndarray, tick=None) -> list[dict]:
        """Score candidates with the select stage's higher-fidelity fitness (kept in selection.jsonl)."""
        return self._score_once([(x, self.space.to_config(x)) for x in X], "select", self.selection, tick)

    def exhausted(self) -> bool:
        """The evaluation budget is spent: the rest of a generation is not evaluated."""
        return self.budget is not None and self.asked >= self.budget

    def evaluate(self, X: np.ndarray, algorithm=None) -> list[list[float] | None]:
        """A generation's objectives (higher is better), one row per candidate; None past the evaluation
        budget, or for a candidate that failed (pymoo then sees the worst value for it). Candidates new
        to the history are scored on the backend, all at once; the rest are answered from it.
        `algorithm`: the pymoo algorithm asking; under evolve.racing one with a `report` method is the
        intensifier that decides how far each candidate climbs the rungs."""
        keys: list[str | None] = []
        first_rows: set[int] = set()  # rows whose candidate this run asks for the first time
        jobs: list[Job] = []
        for i, x in enumerate(np.atleast_2d(X)):
            if self.exhausted():
                keys.append(None)
                continue
            self.asked += 1
            candidate = self.space.to_config(x)
            key = config_hash(candidate)
            known = self.history.records.get(key)
            first = key not in self._asked_keys
            if not first:
                self.repeated += 1
            elif known is not None and not known.get("failed"):
                self.replayed += 1
            else:  # new, or failed in an earlier run (whose cause may be fixed now): evaluated
                jobs.append(Job(i, key, candidate, [float(v) for v in x]))
            self._asked_keys.add(key)
            keys.append(key)
            if first:
                first_rows.add(i)
        if self.config.evolve.racing and callable(getattr(algorithm, "report", None)):
            self.own_intensifier = True
            self._climb(keys, jobs, algorithm)
        elif jobs and self.config.evolve.racing:
            self._race(jobs)
        elif jobs:
            self._score(jobs, "search", self.history)  # the progress bar ticks as each is kept
        scored_now = {job.index for job in jobs}
        answers = []
        for i, key in enumerate(keys):
            record = self.history.records[key] if key is not None else None
            if record is not None:
                self.items_spent += record.get("items", 0) if i in first_rows else 0
                self.watch.record(record.get("failed"))
                if self.progress is not None and i not in scored_now:  # replayed or repeated
                    self.progress(record["objectives"])
            answers.append(None if record is None else record["objectives"])
        return answers

    def finalists(self) -> list[dict]:
        """The candidates best.yaml may come from: every scored one, or with racing those that reached
        the last rung (all anchors), so that no lucky low-rung estimate wins."""
        records = self.succeeded()
        if not self.config.evolve.racing:
            return records
        finalists = [r for r in records if r.get("anchors") == self.rungs[-1]]
        if not finalists:
            raise GenerationFailed(f"no candidate was scored on all {self.rungs[-1]} anchors (each failed or was cut "
                                   "on a lower rung); see failures.log, or race with a smaller eta")
        return finalists

    def succeeded(self) -> list[dict]:
        """The history's candidates that were scored (failed ones have no objectives)."""
        return [r for r in self.history.order if not r.get("failed")]
