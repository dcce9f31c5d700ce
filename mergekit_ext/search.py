"""The search: a pymoo Problem over genes, merged in memory, scored by Fitness; resumable by replay.

Every evaluated candidate is appended to history.jsonl at once (config hash, genes, objectives,
details, merge and eval seconds). `--resume` replays the run from the start with the same seed,
answering candidates already in the history from it (no merge, no evaluation): the algorithm makes
the same decisions, so the result equals an uninterrupted run's. No pickle anywhere.
"""

from __future__ import annotations

import copy
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
    def __init__(self, config: EvolveConfig, out: Path, resume: bool = False, progress=None):
        self.config = config
        self.space = space_for(config)
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.history = History(out / "history.jsonl", resume)
        self.selection = History(out / "selection.jsonl", resume)  # the select stage's scores
        self._select_fitness = None
        self.progress = progress
        self.replayed = 0
        self.evaluated = 0
        self._engine = None

    def _engine_parts(self):
        if self._engine is None:
            import torch
            from mergekit.common import dtype_from_name
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from .fitness import Fitness
            from .inmemory import InMemoryMerger

            merge = self.config.merge
            first = str(merge.get("base_model") or merge["models"][0]["model"])
            # the live model holds what mergekit-yaml would write: the merge's dtype, on the eval device
            # (lm-eval's HFLM evaluates a model object where it lies)
            dtype = dtype_from_name(merge.get("out_dtype") or merge.get("dtype")) or torch.float32
            device = self.config.evolve.eval.device
            model = AutoModelForCausalLM.from_pretrained(first, dtype=dtype)
            depth = getattr(self.space, "num_layers", None)  # a space whose candidates have another depth
            if depth and depth != model.config.num_hidden_layers:
                shape = copy.deepcopy(model.config)
                shape.num_hidden_layers = depth
                model = AutoModelForCausalLM.from_config(shape, dtype=dtype)  # every weight comes from the merge
            model = model.to(device).eval()
            tokenizer = AutoTokenizer.from_pretrained(first)
            # dare_*/della draw random masks: seeded per candidate, as `mergekit-yaml --random-seed` does
            merger = InMemoryMerger(merge, device=device, random_seed=self.config.evolve.seed)
            fitness = Fitness(self.config, model, tokenizer, self._endpoints(self.config.evolve.fitness))
            self._engine = (model, merger, fitness)
        return self._engine

    def _endpoints(self, specs) -> dict:
        from .fitness import MERGED_ESTIMATORS, endpoint_states

        return endpoint_states(self.config) if any(s.estimator in MERGED_ESTIMATORS for s in specs) else {}

    def rescore(self, x: np.ndarray) -> dict:
        """Score a candidate with the select stage's higher-fidelity fitness (kept in selection.jsonl)."""
        from .fitness import Fitness

        candidate = self.space.to_config(x)
        key = config_hash(candidate)
        if key in self.selection.records:
            return self.selection.records[key]
        model, _, fitness = self._engine_parts()
        if self._select_fitness is None:
            specs = self.config.evolve.select.fitness
            self._select_fitness = Fitness(self.config, model, None, self._endpoints(specs), specs=specs, share=fitness)
        record = self._merge_and_score(candidate, key, x, self._select_fitness)
        self.selection.add(record)
        return record

    def _merge_and_score(self, candidate: dict, key: str, x: np.ndarray, fitness) -> dict:
        """Merge one candidate into the live model and score it: its record for a history file."""
        model, merger, _ = self._engine_parts()
        merge_seconds = merger.merge_into(model, candidate)
        score = fitness()
        return {"config_hash": key, "genes": [float(v) for v in x], "objectives": score.objectives,
                "details": score.details, "merge_seconds": round(merge_seconds, 4),
                "eval_seconds": round(score.seconds, 4)}

    def evaluate(self, x: np.ndarray) -> list[float]:
        candidate = self.space.to_config(x)
        key = config_hash(candidate)
        if key in self.history.records:
            self.replayed += 1
            objectives = self.history.records[key]["objectives"]
        else:
            n = len(self.history.order)
            record = self._merge_and_score(candidate, key, x, self._engine_parts()[2])
            objectives = record["objectives"]
            self.history.add({"n": n, **record, "time": time.time()})
            self.evaluated += 1
        if self.progress is not None:
            self.progress(objectives)
        return objectives
