"""The "merging matters" table: is this a world where merge recipes make a difference?

Three checks, with thresholds from the recipe (issue #2):
1. every expert beats the base on its own skill by a wide margin;
2. for each pair of experts, the best task-arithmetic merge on the scale grid beats the base on
   both skills and keeps a good share of each expert's gain;
3. on the cross-lingual target, a simple merge of the math and language experts beats both.
"""

from __future__ import annotations

from dataclasses import asdict

from .recipe import Preset


def merging_table(preset: Preset, accuracy: dict[str, dict[str, float]]) -> dict:
    th = preset.thresholds
    base = accuracy["base"]
    experts = []
    for name, task in preset.experts.items():
        gain = accuracy[name][task] - base[task]
        experts.append({"expert": name, "task": task, "base": base[task], "expert_acc": accuracy[name][task],
                        "gain": gain, "passed": gain >= th.expert_gain})
    pairs = []
    for a, b in preset.expert_pairs:
        ta, tb = preset.experts[a], preset.experts[b]
        gain_a = accuracy[a][ta] - base[ta]
        gain_b = accuracy[b][tb] - base[tb]
        best = None
        for merge in preset.merges:
            if merge.method != "task_arithmetic" or set(merge.weights) != {a, b}:
                continue
            acc = accuracy[merge.name]
            kept = min((acc[ta] - base[ta]) / gain_a if gain_a > 0 else 0.0,
                       (acc[tb] - base[tb]) / gain_b if gain_b > 0 else 0.0)
            if best is None or kept > best["kept"]:
                best = {"merge": merge.name, "scales": dict(merge.weights), ta: acc[ta], tb: acc[tb], "kept": kept}
        passed = (best is not None and best[ta] > base[ta] and best[tb] > base[tb] and best["kept"] >= th.kept_gain)
        pairs.append({"pair": [a, b], "tasks": [ta, tb], "base": [base[ta], base[tb]],
                      "experts": [accuracy[a][ta], accuracy[b][tb]], "best": best, "passed": passed})
    task, math_expert, lang_expert = preset.target
    candidates = [m for m in preset.merges if set(m.weights) == {math_expert, lang_expert}]
    best_merge = max(candidates, key=lambda m: accuracy[m.name][task])
    best_expert = max(accuracy[math_expert][task], accuracy[lang_expert][task])
    crosslingual = {
        "task": task,
        "base": base[task],
        math_expert: accuracy[math_expert][task],
        lang_expert: accuracy[lang_expert][task],
        "best_merge": best_merge.name,
        "best_merge_acc": accuracy[best_merge.name][task],
        "margin": accuracy[best_merge.name][task] - best_expert,
        "passed": accuracy[best_merge.name][task] - best_expert > th.crosslingual_margin,
    }
    return {"thresholds": asdict(th), "experts": experts, "pairs": pairs,
            "crosslingual": crosslingual,
            "passed": all(r["passed"] for r in experts) and all(r["passed"] for r in pairs)
            and crosslingual["passed"]}


def format_table(table: dict) -> str:
    th = table["thresholds"]
    ok = {True: "ok", False: "FAIL"}
    lines = [f"Merging matters (thresholds: expert gain >= {th['expert_gain']:.2f}, pair merge keeps >= "
             f"{th['kept_gain']:.0%} of each gain, cross-lingual merge beats both experts by > "
             f"{th['crosslingual_margin']:+.2f})", ""]
    lines.append(f"{'expert':<14}{'task':<13}{'base':>6}{'expert':>8}{'gain':>7}  check")
    for r in table["experts"]:
        lines.append(f"{r['expert']:<14}{r['task']:<13}{r['base']:>6.3f}{r['expert_acc']:>8.3f}"
                     f"{r['gain']:>+7.3f}  {ok[r['passed']]}")
    lines.append("")
    lines.append(f"{'pair (best task-arithmetic merge)':<44}{'task':<13}{'base':>6}{'expert':>8}{'merge':>7}  check")
    for r in table["pairs"]:
        best = r["best"] or {}
        for i, task in enumerate(r["tasks"]):
            label = f"{r['pair'][0]} + {r['pair'][1]}" if i == 0 else f"  {best.get('merge', '-')}"
            check = f"{ok[r['passed']]} (keeps {best.get('kept', 0):.0%})" if i == 0 else ""
            lines.append(f"{label:<44}{task:<13}{r['base'][i]:>6.3f}{r['experts'][i]:>8.3f}"
                         f"{best.get(task, float('nan')):>7.3f}  {check}")
    c = table["crosslingual"]
    experts = [k for k in c if k.startswith("expert-")]
    lines.append("")
    lines.append(f"cross-lingual target {c['task']}: base {c['base']:.3f}, "
                 + ", ".join(f"{e} {c[e]:.3f}" for e in experts)
                 + f", best merge {c['best_merge']} {c['best_merge_acc']:.3f} ({c['margin']:+.3f})  "
                 + ok[c["passed"]])
    return "\n".join(lines)
