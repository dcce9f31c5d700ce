"""Probe one design of the evidence world (issue #23, parts 1 and 2): is there room to win?

    python benchmarks/evidence_probe.py [--hidden 96 --layers 6 --base-steps 1500 ...] [--out DIR]

MERGE3's multi-task setting on the toy skills: a base pre-trained mostly on pseudo-text with a little
of each skill at the easiest levels (weak on every target), and one expert per skill (math, lang,
rev) fine-tuned from it. The target is the mean accuracy over the three tasks. Prints one markdown
table, every choice made on the fitness items and every reported number on the disjoint test items:
the base and each expert; the best uniform merge (one TA weight for all experts at 0.1 steps, and
TIES at weights x densities {0.3, 0.5, 0.7}); a per-layer TA search (a seeded (1+1) evolution
strategy over one weight per expert and layer group, `--budget` candidates, started at the chosen
uniform merge). Targets: per-layer >= best expert + 0.10 and >= best uniform + 0.05 (on test).
Models are trained on the portable float paths, one thread per process, two processes at once, and
cached in --out by the design's settings.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TASKS = ["math", "lang", "rev"]  # --skills replaces these (names of merge3_zoo.skills.SKILLS)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=96)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--base-steps", type=int, default=1500)
    parser.add_argument("--base-share", type=float, default=0.04, help="share of each skill in the base's data")
    parser.add_argument("--base-level", type=int, default=0, help="hardest level of each skill the base sees")
    parser.add_argument("--expert-steps", type=int, default=400)
    parser.add_argument("--expert-lr", type=float, default=5e-4)
    parser.add_argument("--replay", type=float, default=0.5, help="share of the base's data in an expert's")
    parser.add_argument("--trainable-layers", type=int, default=0, help="experts fine-tune the last N layers (0: all)")
    parser.add_argument("--items-fit", type=int, default=300, help="fitness items per task (choices)")
    parser.add_argument("--items-test", type=int, default=500, help="test items per task (truth)")
    parser.add_argument("--budget", type=int, default=120, help="per-layer search candidates")
    parser.add_argument("--groups", type=int, default=0, help="layer groups of the search (0: one per layer)")
    parser.add_argument("--skills", default="math,lang,rev", help="one expert per skill (merge3_zoo.skills names)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/merge3-evidence-probe"))
    args = parser.parse_args()
    TASKS[:] = args.skills.split(",")
    return args


def design(args) -> dict:
    keys = ("hidden", "layers", "base_steps", "base_share", "base_level", "expert_steps", "expert_lr", "replay",
            "trainable_layers")
    out = {k: getattr(args, k) for k in keys}
    if args.skills != "math,lang,rev":  # designs before --skills keep their cache folder
        out["skills"] = args.skills
    return out


def runs(args) -> list:
    from merge3_zoo.recipe import Run

    base_mix = {"text": 1.0 - 3 * args.base_share, **{t: args.base_share for t in TASKS}}
    levels = {t: args.base_level for t in TASKS}
    out = [Run("base", "base", base_mix, args.base_steps, 3e-3, 1, None, levels)]
    for i, task in enumerate(TASKS):
        mix = {k: v * args.replay for k, v in base_mix.items()}
        mix[task] += 1.0 - args.replay
        # the expert sees its own skill at every level and the others as the base saw them
        out.append(Run(f"expert-{task}", "expert", mix, args.expert_steps, args.expert_lr, 10 + i, "base",
                       {t: v for t, v in levels.items() if t != task}, (), trainable_layers=args.trainable_layers))
    return out


def train_all(args, folder: Path) -> None:
    from merge3_zoo import workers
    from merge3_zoo.recipe import ModelShape

    shape = asdict(ModelShape(hidden=args.hidden, layers=args.layers, heads=4, intermediate=3 * args.hidden))
    todo = [r for r in runs(args) if not workers.is_done(folder / r.name)]
    if not todo:
        return
    log = str(folder / "train.log")
    with workers.worker_pool(2, str(folder / "hf"), log) as pool:
        base = [r for r in todo if r.name == "base"]
        for r in base:
            start = time.perf_counter()
            pool.submit(workers.train_job, asdict(r), shape, 0, str(folder), 64).result()
            print(f"trained base in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        start = time.perf_counter()
        jobs = [pool.submit(workers.train_job, asdict(r), shape, 0, str(folder), 64) for r in todo if r.name != "base"]
        for job in jobs:
            job.result()
        if jobs:
            print(f"trained {len(jobs)} experts in {time.perf_counter() - start:.0f} s", file=sys.stderr)


def main() -> None:
    args = parse()
    from merge3_zoo.numerics import use_portable_floats

    use_portable_floats()
    import numpy as np
    import torch
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as transformers_logging

    from merge3_zoo.quickeval import exact_match
    from merge3_zoo.skills import SKILLS
    from merge3_zoo.tokenizer import CharCodec

    torch.set_num_threads(1)
    transformers_logging.disable_progress_bar()
    settings = design(args)
    name = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    folder = args.out / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "design.json").write_text(json.dumps(settings, indent=1))
    started = time.perf_counter()
    train_all(args, folder)
    trained = time.perf_counter() - started

    codec = CharCodec()
    rng = random.Random(123)
    levels = 5
    fit = {t: [SKILLS[t](rng, rng.randrange(levels)) for _ in range(args.items_fit)] for t in TASKS}
    test = {t: [SKILLS[t](rng, rng.randrange(levels)) for _ in range(args.items_test)] for t in TASKS}
    names = ["base"] + [f"expert-{t}" for t in TASKS]
    states = {n: LlamaForCausalLM.from_pretrained(folder / n, dtype=torch.float32).state_dict() for n in names}
    live = LlamaForCausalLM.from_pretrained(folder / "base", dtype=torch.float32).eval()
    base = states["base"]
    vectors = [{k: states[f"expert-{t}"][k] - base[k] for k in base} for t in TASKS]

    def layer_of(key: str) -> int:
        if ".layers." in key:
            return int(key.split(".layers.")[1].split(".")[0])
        return -1 if "embed" in key else args.layers

    groups = args.groups or args.layers
    group_of = {k: (0 if layer_of(k) < 0 else min(groups - 1, layer_of(k) * groups // args.layers)
                    if layer_of(k) < args.layers else groups - 1) for k in base}

    def scores(items) -> np.ndarray:
        return np.array([np.mean(exact_match(live, codec, items[t])) for t in TASKS])

    def load(state) -> None:
        live.load_state_dict(state)

    def ta(weights: np.ndarray) -> dict:  # weights[expert, group]
        return {k: base[k] + sum(weights[e, group_of[k]] * vectors[e][k] for e in range(len(TASKS))) for k in base}

    def ties(weight: float, density: float) -> dict:
        out = {}
        for k in base:
            trimmed = []
            for v in vectors:
                flat = v[k].abs().flatten()
                keep = max(1, int(round(density * flat.numel())))
                threshold = flat.kthvalue(flat.numel() - keep + 1).values if keep < flat.numel() else flat.min()
                trimmed.append(torch.where(v[k].abs() >= threshold, v[k], torch.zeros_like(v[k])))
            stacked = torch.stack(trimmed)
            sign = torch.sign(stacked.sum(0))
            agree = (torch.sign(stacked) == sign) & (stacked != 0)
            total = (stacked * agree).sum(0) / agree.sum(0).clamp(min=1)
            out[k] = base[k] + weight * total
        return out

    rows = []
    for n in names:
        load(states[n])
        rows.append((n, scores(fit), scores(test)))
    uniform = []
    for w in np.round(np.arange(0.1, 1.51, 0.1), 2):
        load(ta(np.full((len(TASKS), groups), w)))
        uniform.append((f"TA all at {w:g}", w, scores(fit), None))
    for w, d in itertools.product((0.5, 0.75, 1.0, 1.25), (0.3, 0.5, 0.7)):
        load(ties(w, d))
        uniform.append((f"TIES weight {w:g} density {d:g}", None, scores(fit), (w, d)))
    chosen = max(uniform, key=lambda u: u[2].mean())
    load(ta(np.full((len(TASKS), groups), chosen[1])) if chosen[1] is not None else ties(*chosen[3]))
    chosen_test = scores(test)

    # (1+1)-ES over per-expert, per-group TA weights, from the best uniform TA point, on fitness items only
    search_rng = np.random.default_rng(0)
    start_w = max((u for u in uniform if u[1] is not None), key=lambda u: u[2].mean())
    x = np.full((len(TASKS), groups), start_w[1])
    fx = start_w[2].mean()
    for step in range(args.budget):
        y = x.copy()
        for _ in range(2):
            e, g = search_rng.integers(len(TASKS)), search_rng.integers(groups)
            y[e, g] = float(np.clip(y[e, g] + search_rng.normal(0, 0.3), 0.0, 2.0))
        load(ta(y))
        fy = scores(fit).mean()
        if fy >= fx:
            x, fx = y, fy
        if (step + 1) % 20 == 0:
            print(f"search {step + 1}/{args.budget}: best fitness {fx:.3f}", file=sys.stderr)
    load(ta(x))
    search_test = scores(test)

    best_expert = max(rows[1:], key=lambda r: r[1].mean())  # chosen on the fitness items
    print(f"\nevidence probe {name}: {json.dumps(settings)}; trained in {trained:.0f} s, "
          f"{args.items_fit} fitness / {args.items_test} test items per task\n")
    print(f"| model | {' | '.join(TASKS)} | mean (fitness) | mean (test) |\n| --- | --- | --- | --- | --- | --- |")
    for n, f, t in rows:
        print(f"| {n} | {t[0]:.3f} | {t[1]:.3f} | {t[2]:.3f} | {f.mean():.3f} | {t.mean():.3f} |")
    print(f"| best uniform: {chosen[0]} | {chosen_test[0]:.3f} | {chosen_test[1]:.3f} | {chosen_test[2]:.3f} | "
          f"{chosen[2].mean():.3f} | {chosen_test.mean():.3f} |")
    print(f"| per-layer TA search ({args.budget} candidates, {groups} groups) | {search_test[0]:.3f} | "
          f"{search_test[1]:.3f} | {search_test[2]:.3f} | {fx:.3f} | {search_test.mean():.3f} |")
    gain_expert = search_test.mean() - rows[names.index(best_expert[0])][2].mean()
    gain_uniform = search_test.mean() - chosen_test.mean()
    print(f"\nper-layer - best expert ({best_expert[0]}): {gain_expert:+.3f} (target >= +0.10); "
          f"per-layer - best uniform: {gain_uniform:+.3f} (target >= +0.05)")
    print("per-layer weights (expert x group):\n" + "\n".join(
        f"  {t}: {np.round(x[i], 2).tolist()}" for i, t in enumerate(TASKS)))
    print(f"total {time.perf_counter() - started:.0f} s; models in {folder}")


if __name__ == "__main__":
    main()
