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

from merge3_plugin.errors import UserError
from merge3_plugin.files import write_atomic

from .config import EvolveConfig
from .genes import space_for


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


class History:
    def __init__(self, path: Path, resume: bool):
        self.path = path
        self.records: dict[str, dict] = {}
        self.order: list[dict] = []
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
                self.records[record["config_hash"]] = record
                self.order.append(record)

    def add(self, record: dict) -> None:
        self.records[record["config_hash"]] = record
        self.order.append(record)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


class MergeSearch:
    def __init__(self, config: EvolveConfig, out: Path, resume: bool = False, progress=None, manager=None):
        """`manager`: lm-eval's task index, if the caller built it already (to check task names early)."""
        self.config = config
        self.manager = manager
        self.space = space_for(config)
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.history = History(out / "history.jsonl", resume)
        self.selection = History(out / "selection.jsonl", resume)  # the select stage's scores
        self._select_fitness = None
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
        self._engine = None

    @property
    def engine(self):
        """The live model, merger and fitness, built on first use (loading models takes seconds)."""
        if self._engine is None:
            from .engine import build_engine

            self._engine = build_engine(self.config, depth=getattr(self.space, "num_layers", None),
                                        manager=self.manager)
        return self._engine

    def rescore(self, x: np.ndarray) -> dict:
        """Score a candidate with the select stage's higher-fidelity fitness (kept in selection.jsonl)."""
        from .engine import endpoints_for
        from .fitness import Fitness

        candidate = self.space.to_config(x)
        key = config_hash(candidate)
        if key in self.selection.records:
            return self.selection.records[key]
        engine = self.engine
        if self._select_fitness is None:
            specs = self.config.evolve.select.fitness
            self._select_fitness = Fitness(self.config, engine.model, None, endpoints_for(self.config, specs),
                                           specs=specs, share=engine.fitness)
        record = self._merge_and_score(candidate, key, x, self._select_fitness)
        self.selection.add(record)
        return record

    def _merge_and_score(self, candidate: dict, key: str, x: np.ndarray, fitness) -> dict:
        """Merge one candidate into the live model and score it: its record for a history file."""
        engine = self.engine
        merge_seconds = engine.merger.merge_into(engine.model, candidate)
        score = fitness()
        return {"config_hash": key, "genes": [float(v) for v in x], "objectives": score.objectives,
                "details": score.details, "merge_seconds": round(merge_seconds, 4),
                "eval_seconds": round(score.seconds, 4)}

    def exhausted(self) -> bool:
        """The evaluation budget is spent: the rest of a generation is not evaluated."""
        return self.budget is not None and self.asked >= self.budget

    def evaluate(self, x: np.ndarray) -> list[float] | None:
        """The candidate's objectives (higher is better), or None past the evaluation budget."""
        if self.exhausted():
            return None
        self.asked += 1
        candidate = self.space.to_config(x)
        key = config_hash(candidate)
        if key in self._asked_keys:
            self.repeated += 1
            objectives = self.history.records[key]["objectives"]
        elif key in self.history.records:
            self.replayed += 1
            objectives = self.history.records[key]["objectives"]
        else:
            n = len(self.history.order)
            record = self._merge_and_score(candidate, key, x, self.engine.fitness)
            objectives = record["objectives"]
            self.history.add({"n": n, **record, "time": time.time()})
            self.evaluated += 1
        self._asked_keys.add(key)
        if self.progress is not None:
            self.progress(objectives)
        return objectives
