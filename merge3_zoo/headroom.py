"""Room to win: how much better than the experts and the uniform task-arithmetic grid can a search
over per-layer merge weights get on the cross-lingual target? (issue #10)

Every choice is made on the target's validation split; every reported truth is on its test split,
which no choice ever sees. Scoring is the in-process scorer (equal to lm-eval's, see the zoo tests).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .tokenizer import CharCodec

GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


@dataclass
class Room:
    experts: dict[str, float]  # expert -> test accuracy
    grid_chosen: tuple  # scales chosen on validation
    grid_validation: float
    grid_test: float
    grid_oracle: tuple  # (scales, test accuracy): the best grid point judged on the test items themselves
    search_validation: float
    search_test: float
    search_weights: dict[str, list[float]]  # expert -> one weight per layer
    evaluations: int

    @property
    def over_experts(self) -> float:
        return self.search_test - max(self.experts.values())

    @property
    def over_grid(self) -> float:
        return self.search_test - self.grid_test

    def table(self) -> str:
        rows = [(name, "-", "", f"{acc:.3f}") for name, acc in self.experts.items()]
        rows.append((f"uniform TA grid {self.grid_chosen}", "validation", f"{self.grid_validation:.3f}",
                     f"{self.grid_test:.3f}"))
        rows.append((f"per-layer TA search ({self.evaluations} candidates)", "validation",
                     f"{self.search_validation:.3f}", f"{self.search_test:.3f}"))
        rows.append((f"oracle uniform grid {self.grid_oracle[0]} (reference)", "test", "", f"{self.grid_oracle[1]:.3f}"))
        lines = ["| merge | chosen on | validation | test |", "| --- | --- | --- | --- |"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        lines.append("")
        lines.append(f"per-layer search over the best expert: {self.over_experts:+.3f} (target >= +0.10); "
                     f"over the validation-chosen uniform grid: {self.over_grid:+.3f} (target >= +0.05)")
        return "\n".join(lines)


def ta_config(zoo, math_weight, lang_weight, experts=("expert-math", "expert-lang")) -> dict:
    """A plain task-arithmetic mergekit config; a weight may be a number or a per-layer list."""
    def value(w):
        return [round(float(v), 4) for v in w] if isinstance(w, (list, tuple, np.ndarray)) else float(w)

    return {"merge_method": "task_arithmetic", "base_model": str(zoo.model_path("base")), "dtype": "float32",
            "models": [{"model": str(zoo.model_path(experts[0])), "parameters": {"weight": value(math_weight)}},
                       {"model": str(zoo.model_path(experts[1])), "parameters": {"weight": value(lang_weight)}}]}


def measure(zoo, budget: int = 150, seed: int = 0, grid=GRID, progress=None) -> Room:
    """The room-to-win numbers for a built zoo (see the module docstring)."""
    import torch
    from transformers import AutoModelForCausalLM

    from mergekit_ext.merging.inmemory import InMemoryMerger

    from .quickeval import exact_match, task_docs

    task, math_expert, lang_expert = zoo.data["recipe"]["target"]
    codec = CharCodec()
    validation, test = task_docs(zoo, task, "validation")[1], task_docs(zoo, task, "test")[1]
    merger = InMemoryMerger(ta_config(zoo, 0.5, 0.5, (math_expert, lang_expert)))
    live = AutoModelForCausalLM.from_pretrained(zoo.model_path("base"), dtype=torch.float32)
    layers = live.config.num_hidden_layers

    def score(config: dict, items) -> float:
        merger.merge_into(live, config)
        return float(np.mean(exact_match(live, codec, items)))

    def config(wm, wl) -> dict:
        return ta_config(zoo, wm, wl, (math_expert, lang_expert))

    experts = {name: zoo.model(name)["accuracy"][task] for name in (math_expert, lang_expert)}
    grid_points = list(itertools.product(grid, grid))
    on_validation = {p: score(config(*p), validation) for p in grid_points}
    chosen = max(grid_points, key=lambda p: (on_validation[p], -abs(p[0] - p[1])))
    on_test = {p: score(config(*p), test) for p in grid_points}
    oracle = max(grid_points, key=on_test.get)

    # Per-layer search: a seeded (1+1) evolution strategy from the validation-chosen grid point,
    # perturbing a few layer weights at a time; chosen on the validation items only.
    rng = np.random.default_rng(seed)
    x = np.array([chosen[0]] * layers + [chosen[1]] * layers, dtype=float)
    fx = on_validation[chosen]
    for step in range(1, budget + 1):
        y = x.copy()
        genes = rng.choice(2 * layers, size=rng.integers(1, 4), replace=False)
        y[genes] = np.clip(y[genes] + rng.normal(0.0, 0.35, len(genes)), 0.0, max(grid))
        fy = score(config(y[:layers], y[layers:]), validation)
        if fy >= fx:
            x, fx = y, fy
        if progress is not None:
            progress(step, fx)
    best = config(x[:layers], x[layers:])
    return Room(
        experts=experts, grid_chosen=chosen, grid_validation=on_validation[chosen], grid_test=on_test[chosen],
        grid_oracle=(oracle, on_test[oracle]), search_validation=fx, search_test=score(best, test),
        search_weights={math_expert: [round(float(v), 3) for v in x[:layers]],
                        lang_expert: [round(float(v), 3) for v in x[layers:]]},
        evaluations=budget)
