"""Quick probe of a toy-world design: does the cross-lingual target compose? (issue #10)

    python benchmarks/world_probe.py [--preset compose] [--out DIR] [--items 200]

Trains only a preset's base and its math and language experts (in this process, about 7 minutes
for compose on 2 cores; cached in --out), then prints a markdown table of their accuracies on
math, translation and the target, and of task-arithmetic merges on a uniform grid and layer
swaps (the language expert's outer layers around the math expert's middle ones). Scored by the
in-process scorer on fresh items (not the zoo's test split). Use it to try a recipe before a build.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="compose")
    parser.add_argument("--out", type=Path, default=Path("/tmp/merge3-world-probe"))
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()

    import torch
    from transformers import LlamaForCausalLM

    from merge3_zoo import workers
    from merge3_zoo.quickeval import exact_match
    from merge3_zoo.recipe import PRESETS
    from merge3_zoo.skills import SKILLS
    from merge3_zoo.tokenizer import CharCodec

    torch.set_num_threads(1)
    preset = PRESETS[args.preset]
    out = args.out / f"{preset.name}-{preset.recipe_hash(0)}"
    out.mkdir(parents=True, exist_ok=True)
    runs = {run.name: run for run in preset.runs}
    for name in ("base", "expert-math", "expert-lang"):
        if not workers.is_done(out / name):
            start = time.perf_counter()
            workers.train_job(asdict(runs[name]), asdict(preset.shape), 0, str(out), preset.batch_size)
            print(f"trained {name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    codec = CharCodec()
    skill = {k: preset.dialect.get(k, k) for k in ("math", "lang", "math_l2")}
    rng = random.Random(123)
    items = {k: [SKILLS[s](rng, rng.randrange(5)) for _ in range(args.items)] for k, s in skill.items()}
    models = {name: LlamaForCausalLM.from_pretrained(out / name, dtype=torch.float32)
              for name in ("base", "expert-math", "expert-lang")}

    def scores(model) -> str:
        return " | ".join(f"{sum(exact_match(model, codec, v)) / len(v):.3f}" for v in items.values())

    print(f"| model ({args.preset}) | math | lang | target |\n| --- | --- | --- | --- |")
    for name, model in models.items():
        print(f"| {name} | {scores(model)} |")
    base, math, lang = (models[n].state_dict() for n in ("base", "expert-math", "expert-lang"))
    layers = preset.shape.layers

    def layer_of(key: str) -> int:
        if ".layers." in key:
            return int(key.split(".layers.")[1].split(".")[0])
        return -1 if "embed" in key else layers

    live = models["base"]

    def merged(wm, wl):
        live.load_state_dict({k: base[k] + wm(layer_of(k)) * (math[k] - base[k]) + wl(layer_of(k)) * (lang[k] - base[k])
                              for k in base})
        return live

    for a, b in itertools.product([0.5, 1.0], [0.5, 1.0]):
        print(f"| TA math {a} + lang {b} | {scores(merged(lambda l: a, lambda l: b))} |")
    for bottom, top in ((1, 1), (2, 1), (2, 2), (3, 2)):
        def outer(l, bottom=bottom, top=top):
            return l < bottom or l >= layers - top
        print(f"| swap: lang layers <{bottom} and >={layers - top}, math between | "
              f"{scores(merged(lambda l: 0.0 if outer(l) else 1.0, lambda l: 1.0 if outer(l) else 0.0))} |")


if __name__ == "__main__":
    main()
