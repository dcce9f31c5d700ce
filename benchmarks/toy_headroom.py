"""How much room does the toy world's cross-lingual target leave for merges? (issue #5's "worth having")

    python benchmarks/toy_headroom.py [--preset default] [--steps 150] [--only grid,swap,climb,stack,errors]

Every number is true accuracy on all test items of toy_math_l2, for merges of the math and the
language expert (task arithmetic on the base):
- grid:   the uniform TA grid of scales, 0.1 steps near the optimum;
- swap:   whole parameter sets (attention / MLP / the rest) weighted differently, 125 combinations;
- climb:  an oracle hill-climb *on the test items* over 18 genes (4 layers x attention/MLP plus the
          rest, per expert), from the best grid point: an upper bound for any honest search there;
- stack:  layer stacking (passthrough-like frankenmerges of the two experts' layers);
- errors: where answers go wrong: the translated question ("3+4+7=") and the sum after it.
Prints one table per part.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=150, help="hill-climb steps")
    parser.add_argument("--only", default="grid,swap,climb,stack,errors")
    args = parser.parse_args()
    parts = set(args.only.split(","))

    import torch
    from transformers import AutoModelForCausalLM

    from merge3_zoo.build import build_zoo
    from merge3_zoo.quickeval import exact_match, greedy_answers
    from merge3_zoo.skills import Item
    from merge3_zoo.tokenizer import CharCodec
    from mergekit_ext.merging.inmemory import InMemoryMerger

    torch.set_num_threads(1)
    zoo = build_zoo(args.preset, progress=False).zoo
    codec = CharCodec()
    docs = [json.loads(line) for line in (zoo.tasks_dir / "toy_math_l2" / "test.jsonl").read_text().splitlines()]
    test = [Item(d["prompt"], d["answer"], d["level"]) for d in docs]
    models = zoo.root / "models"
    template = {"merge_method": "task_arithmetic", "base_model": str(models / "base"), "dtype": "float32",
                "models": [{"model": str(models / "expert-math"), "parameters": {"weight": 0.5}},
                           {"model": str(models / "expert-lang"), "parameters": {"weight": 0.5}}]}
    merger = InMemoryMerger(template)
    live = AutoModelForCausalLM.from_pretrained(models / "base", dtype=torch.float32)

    def accuracy(model) -> float:
        return float(np.mean(exact_match(model, codec, test)))

    def ta(weight_math, weight_lang) -> float:
        config = copy.deepcopy(template)
        config["models"][0]["parameters"]["weight"] = weight_math
        config["models"][1]["parameters"]["weight"] = weight_lang
        merger.merge_into(live, config)
        return accuracy(live)

    experts = {name: zoo.model(name)["accuracy"]["toy_math_l2"] for name in ("expert-math", "expert-lang")}
    print(f"experts: math {experts['expert-math']:.3f}, language {experts['expert-lang']:.3f}")
    best = (0.7, 0.3)
    if "grid" in parts:
        scores = {(a, b): ta(a, b) for a, b in itertools.product([0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
                                                                 [0.2, 0.3, 0.4, 0.5, 0.6])}
        best = max(scores, key=scores.get)
        print(f"\ngrid (math x language scales, 0.1 steps): best {scores[best]:.3f} at {best}; "
              f"median {np.median(list(scores.values())):.3f}")
    if "swap" in parts:
        options = [(1.0, 0.0), (0.0, 1.0), best, (0.5, 0.5), (1.0, 1.0)]
        results = []
        for attn, mlp, rest in itertools.product(options, repeat=3):
            results.append((ta(*[[{"filter": "self_attn", "value": attn[i]}, {"filter": "mlp", "value": mlp[i]},
                                  {"value": rest[i]}] for i in range(2)]), (attn, mlp, rest)))
        results.sort(reverse=True)
        print("\nswap (attention, MLP, rest) -> (math, language) weights; top 3 of 125:")
        for score, combo in results[:3]:
            print(f"  {score:.3f}  {combo}")
    if "climb" in parts:
        rng = np.random.default_rng(1)

        def weights(x):
            return [[{"filter": "self_attn", "value": [round(float(v), 3) for v in x[9 * i:9 * i + 4]]},
                     {"filter": "mlp", "value": [round(float(v), 3) for v in x[9 * i + 4:9 * i + 8]]},
                     {"value": round(float(x[9 * i + 8]), 3)}] for i in range(2)]
        x = np.array([best[0]] * 9 + [best[1]] * 9)
        start = fx = ta(*weights(x))
        for _ in range(args.steps):
            y = x.copy()
            genes = rng.choice(18, 3, replace=False)
            y[genes] = np.clip(y[genes] + rng.normal(0, 0.15, 3), 0.0, 1.5)
            fy = ta(*weights(y))
            if fy >= fx:
                x, fx = y, fy
        print(f"\nclimb (oracle, on the test items, {args.steps} steps over 18 genes): {start:.3f} -> {fx:.3f}")
    experts_models = {name: AutoModelForCausalLM.from_pretrained(models / name, dtype=torch.float32)
                      for name in ("expert-math", "expert-lang")}
    if "stack" in parts:
        print("\nstack (layers in order; M = math expert, L = language expert; embeddings and head: M):")
        math_m, lang_m = experts_models["expert-math"], experts_models["expert-lang"]
        for plan in ("M0 M1 M2 M3", "L0 M0 M1 M2 M3", "L0 L1 M0 M1 M2 M3", "L0 M1 M2 M3", "L0 L1 M2 M3",
                     "M0 M1 L2 L3", "M0 L1 M2 M3", "M0 M1 M2 M3 L3"):
            layers = [(math_m if token[0] == "M" else lang_m, int(token[1:])) for token in plan.split()]
            config = copy.deepcopy(math_m.config)
            config.num_hidden_layers = len(layers)
            stacked = AutoModelForCausalLM.from_config(config)
            stacked.model.embed_tokens.load_state_dict(math_m.model.embed_tokens.state_dict())
            stacked.model.norm.load_state_dict(math_m.model.norm.state_dict())
            stacked.lm_head.load_state_dict(math_m.lm_head.state_dict())
            for i, (source, index) in enumerate(layers):
                stacked.model.layers[i].load_state_dict(source.model.layers[index].state_dict())
            stacked.eval()
            print(f"  {plan:<20}{accuracy(stacked):.3f}")
    if "errors" in parts:
        print(f"\nerrors: {'model':<22}{'accuracy':>9}{'translation right':>19}{'sum right | translation':>25}")
        merged = {"TA best grid point": best, "TA 0.5/0.5": (0.5, 0.5)}
        for name, model in [*experts_models.items(), *[(k, None) for k in merged]]:
            if model is None:
                config = copy.deepcopy(template)
                config["models"][0]["parameters"]["weight"], config["models"][1]["parameters"]["weight"] = merged[name]
                merger.merge_into(live, config)
                model = live
            answers = greedy_answers(model, codec, test)
            translated = [a.split("=")[0] == item.answer.split("=")[0] for a, item in zip(answers, test)]
            right = [a == item.answer for a, item in zip(answers, test)]
            print(f"        {name:<22}{np.mean(right):>9.3f}{np.mean(translated):>19.3f}"
                  f"{sum(right) / max(1, sum(translated)):>25.3f}")


if __name__ == "__main__":
    main()
