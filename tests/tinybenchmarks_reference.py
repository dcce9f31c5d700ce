"""tinyBenchmarks for the tests: upstream's estimator ported line by line, a synthetic parameter file of
the real one's structure, and small datasets that mimic each benchmark's fields.

`evaluate` is tinyBenchmarks/__init__.py at e9a8b10 (MIT, Felipe Maia Polo et al.) with three changes
that leave its arithmetic as it is: the parameter dict is passed in instead of downloaded, an ability
may be passed in (to compare the estimators at the same theta), and membership tests use sets.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

LB_ORDER = ("truthfulqa", "gsm8k", "winogrande", "arc", "hellaswag", "mmlu")
SIZES = {"truthfulqa": 817, "gsm8k": 1319, "winogrande": 1267, "arc": 1172, "hellaswag": 10042, "mmlu": 14042}
DATASETS = {"arc": "tinyAI2_arc", "gsm8k": "tinyGSM8k", "hellaswag": "tinyHellaswag", "mmlu": "tinyMMLU",
            "truthfulqa": "tinyTruthfulQA", "winogrande": "tinyWinogrande"}


# -- upstream, ported ---------------------------------------------------------------------------------
def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def item_curve(theta, a, b):
    z = np.clip(a * theta - b, -30, 30).sum(axis=1)
    return sigmoid(z)


def fit_theta(responses_test, seen_items, A, B, eps=1e-10, optimizer="BFGS"):
    D = A.shape[1]

    def neg_log_like(x):
        P = item_curve(x.reshape(1, D, 1), A[:, :, seen_items], B[:, :, seen_items]).squeeze()
        log_likelihood = np.sum(responses_test[seen_items] * np.log(P + eps)
                                + (1 - responses_test[seen_items]) * np.log(1 - P + eps))
        return -log_likelihood

    return minimize(neg_log_like, np.zeros(D), method=optimizer).x[None, :, None]


def evaluate(y_input, bench, tinyBenchmarks, theta=None):
    number_of_examples = 100
    lb_scenarios = ['truthfulqa', 'gsm8k', 'winogrande', 'arc', 'hellaswag']
    benchs = ['lb', 'mmlu', 'helm_lite', 'alpaca']
    assert len(y_input.shape) == 1
    assert bench in benchs + lb_scenarios
    bench_name = 'lb' if bench in lb_scenarios else bench

    seen_examples = tinyBenchmarks[bench_name]['seen_examples']
    examples_weights = tinyBenchmarks[bench_name]['examples_weights']
    irt_parameters = tinyBenchmarks[bench_name]['irt_parameters']
    A, B = irt_parameters['A'], irt_parameters['B']
    optimal_lambdas = tinyBenchmarks[bench_name]['optimal_lambdas']
    scenarios_position = tinyBenchmarks[bench_name]['scenarios_position']
    subscenarios_position = tinyBenchmarks[bench_name]['subscenarios_position']

    N = np.max([np.max(x) for x in scenarios_position.values()]) + 1
    balance_weights = np.ones(N)
    for scenario in scenarios_position.keys():
        N_sce = len(scenarios_position[scenario])
        n_sub = len(subscenarios_position[scenario])
        for sub in subscenarios_position[scenario].keys():
            n_i = len(subscenarios_position[scenario][sub])
            balance_weights[subscenarios_position[scenario][sub]] = N_sce / (n_sub * n_i)

    if bench not in benchs:
        scenarios = [bench]
        ind_scenario = number_of_examples * ([i for i, s in enumerate(scenarios_position.keys()) if s == bench][0])
        seen_examples = seen_examples[ind_scenario:ind_scenario + number_of_examples]
    else:
        scenarios = list(scenarios_position.keys())

    y = np.zeros(N)
    for i, j in enumerate(seen_examples):
        y[j] = y_input[i]

    if theta is None:
        theta = fit_theta(y, seen_examples, A, B)
    estimates = {}
    seen_set = set(int(s) for s in seen_examples)
    unseen_examples = [i for i in range(N) if i not in seen_set]

    for scenario in scenarios:
        N_sce = len(scenarios_position[scenario])
        members = set(int(s) for s in scenarios_position[scenario])
        seen_examples_sce = [s for s in seen_examples if s in members]
        unseen_examples_sce = [s for s in unseen_examples if s in members]

        data_part_IRTp = ((balance_weights * y)[seen_examples_sce]).mean()
        irt_part = (balance_weights * item_curve(theta.reshape(1, A.shape[1], 1), A, B))[0, [unseen_examples_sce]].mean()
        IRTp_lambd = number_of_examples / N_sce
        IRT = (examples_weights[scenario] * y[seen_examples_sce]).sum()
        IRTp = IRTp_lambd * data_part_IRTp + (1 - IRTp_lambd) * irt_part
        IRTpp = optimal_lambdas[scenario] * IRT + (1 - optimal_lambdas[scenario]) * IRTp
        estimates[scenario] = {'irt': IRT, 'pirt': IRTp, 'gpirt': IRTpp, 'theta': theta}
    return estimates


# -- a synthetic parameter file -----------------------------------------------------------------------
def _model(rng, sizes: dict[str, int], dims: int, uniform_weights: bool = False) -> dict:
    n = sum(sizes.values())
    perm = rng.permutation(n)  # scenarios interleaved: positions need not be contiguous
    positions, start = {}, 0
    for name, size in sizes.items():
        positions[name] = np.sort(perm[start:start + size])
        start += size
    subs = {}
    for name, pos in positions.items():
        if name == "mmlu":  # 57 subjects of uneven sizes, named as the leaderboard's details are
            cuts = np.sort(rng.choice(np.arange(1, len(pos)), 56, replace=False))
            shuffled = rng.permutation(pos)
            subs[name] = {f"harness_hendrycksTest_subject{j:02d}_5": sorted(part.tolist())
                          for j, part in enumerate(np.split(shuffled, cuts))}
        else:
            subs[name] = {f"harness_{name}_0": pos.tolist()}
    seen = np.concatenate([rng.choice(positions[s], 100, replace=False) for s in sizes])
    return {
        "seen_examples": seen.tolist(),
        "examples_weights": {s: np.full(100, 0.01) if uniform_weights else rng.dirichlet(np.ones(100)) for s in sizes},
        "irt_parameters": {"A": np.abs(rng.normal(1.0, 0.4, (1, dims, n))),
                           "B": rng.normal(0.0, 1.0, (1, 1, n)) / dims},
        "optimal_lambdas": {s: float(rng.uniform(0.1, 0.9)) for s in sizes},
        "scenarios_position": {s: positions[s] for s in sizes},
        "subscenarios_position": subs,
    }


def synthetic_tinybenchmarks(seed: int = 0, dims: int = 2, uniform_weights: bool = False) -> dict:
    """The real file's structure and counts (N = 28659 in lb, 14042 in mmlu), random parameters."""
    rng = np.random.default_rng(seed)
    return {"lb": _model(rng, {s: SIZES[s] for s in LB_ORDER}, dims, uniform_weights),
            "mmlu": _model(rng, {"mmlu": SIZES["mmlu"]}, dims, uniform_weights),
            "helm_lite": {"note": "another benchmark's parameters, ignored by merge3"}}


def write_pkl(data: dict, path: Path) -> Path:
    path.write_bytes(pickle.dumps(data, protocol=4))
    return path


# -- documents that mimic each benchmark's fields -----------------------------------------------------
def benchmark_doc(bench: str, p: int) -> dict:
    """The item at leaderboard position p of a synthetic benchmark, with the fields lm-eval's documents have."""
    if bench == "arc":
        return {"id": f"Mercury_{7000000 + p}", "question": f"Which planet is {p}?",
                "choices": {"text": ["a", "b", "c", "d"], "label": ["A", "B", "C", "D"]}, "answerKey": "A"}
    if bench == "hellaswag":
        return {"ind": 4 * p + 1, "activity_label": "Cooking", "ctx_a": f"A cook stirs pot {p}.", "ctx_b": "then",
                "ctx": f"A cook stirs pot {p}. then", "endings": ["w", "x", "y", "z"], "label": str(p % 4)}
    if bench == "winogrande":
        return {"sentence": f"The trophy {p} did not fit in the _ .", "option1": "case", "option2": f"bag{p % 3}",
                "answer": "1"}
    if bench == "gsm8k":
        return {"question": f"Tom has {p} apples and buys 2. How many?", "answer": f"#### {p + 2}"}
    if bench == "truthfulqa":
        return {"question": f"Is claim {p} true?", "mc1_targets": {"choices": ["no", "yes"], "labels": [1, 0]},
                "mc2_targets": {"choices": ["no", "yes"], "labels": [1, 0]}}
    if bench == "mmlu":
        return {"subject": f"subject{p % 57:02d}", "question": f"What is {p % 500}?",
                "choices": ["1", "2", "3", f"{p}"], "answer": 3}
    raise KeyError(bench)


def local_position(data: dict, bench: str) -> list[int]:
    """Leaderboard position (within the benchmark) of each of its 100 anchors, in anchor order."""
    model = "mmlu" if bench == "mmlu" else "lb"
    root = data[model]
    order = list(root["scenarios_position"])
    k = order.index(bench)
    pos = list(np.asarray(root["scenarios_position"][bench]).tolist())
    local = {g: j for j, g in enumerate(pos)}
    return [local[int(g)] for g in root["seen_examples"][100 * k:100 * (k + 1)]]


def write_tiny_datasets(data: dict, folder: Path) -> Path:
    """The six tinyBenchmarks datasets as .jsonl files: row k = anchor k, each benchmark's fields."""
    folder.mkdir(parents=True, exist_ok=True)
    for bench, name in DATASETS.items():
        rows = [benchmark_doc(bench, p) for p in local_position(data, bench)]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def lm_eval_docs(bench: str, seed: int = 0) -> list[dict]:
    """A benchmark's documents in an order of their own (lm-eval's doc_id order is not the leaderboard's)."""
    order = np.random.default_rng(seed).permutation(SIZES[bench])
    return [benchmark_doc(bench, int(p)) for p in order]
