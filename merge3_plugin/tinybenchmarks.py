"""`merge3 import-tinybenchmarks`: tinyBenchmarks' pre-fitted IRT parameters as merge3 bundles.

tinyBenchmarks (Maia Polo et al. 2024, MIT) fitted IRT on about 300 Open LLM Leaderboard models and
ships the result as `tinyBenchmarks/tinyBenchmarks.pkl`: a dict with `lb` (one joint model over the
leaderboard's six benchmarks) and `mmlu` (MMLU alone), each holding `seen_examples` (100 anchors per
benchmark), `examples_weights`, `irt_parameters` {A (1, D, N), B (1, 1, N)}, `optimal_lambdas`,
`scenarios_position` and `subscenarios_position`. The import

1. checks the file against the pinned release: its git blob id (sha1 of "blob <size>\\0" + bytes,
   which fixes the size too), as upstream's repository records it; another file is refused unless
   `allow_unpinned`, and read only through the allow-list unpickler (safe_pickle.py) either way;
2. validates every count, shape and range below, naming the field;
3. writes one bundle (our JSON format) per benchmark: the benchmark's columns of A and B in the
   leaderboard's row order, its 100 anchors with their weights and content keys (from the
   tinyBenchmarks datasets, row k = anchor k), lambda* as gp-IRT's weight, MMLU's subject of every
   item and upstream's subject balance weights, the source file's sha256 and size, and the
   evaluation protocol the parameters assume.

Upstream's arithmetic (`tinyBenchmarks.evaluate`) is kept exactly: its item curve sums
`A_d theta_d - B` over the D dimensions, so merge3's beta is the sum of B over those dimensions
(D * B for the (1, 1, N) shape); p-IRT weighs items by the subject balance weights.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Anchors, Bundle
from .content_keys import MissingField, family
from .errors import UserError
from .files import check_writable
from .local_datasets import find, read_rows
from .safe_pickle import load_arrays

UPSTREAM_COMMIT = "e9a8b1031b0340571beb6c9ca3a27891be09a8fd"
UPSTREAM_URL = f"https://github.com/felipemaiapolo/tinyBenchmarks/raw/{UPSTREAM_COMMIT}/tinyBenchmarks/tinyBenchmarks.pkl"
# git blob id of tinyBenchmarks/tinyBenchmarks.pkl at UPSTREAM_COMMIT (last changed in 74577e0, 2024-02-19)
PINNED_BLOB = "eb2a0276bafbfc02dbf46c459a1142ff9baeb8a6"
EARLIER_BLOBS = {"0f5b67d2c4a725f9854fbe530f4abb93d8eca83d": "the release before 74577e0 (2024-02-17)"}
MAX_BYTES = 64 * 2 ** 20  # the real file is about 5.2 MB; anything far larger is not it
N_ANCHORS = 100


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of the file, the tinyBenchmarks dataset of its anchors, and the protocol assumed."""
    name: str  # the scenario's name in the file
    model: str  # "lb" or "mmlu": the file's key whose parameters are used
    n_items: int
    dataset: str  # tinyBenchmarks/<dataset> on the Hugging Face hub
    config: str | None
    split: str
    key_family: str  # content_keys.KEYS
    task: str  # the lm-eval task the parameters describe
    num_fewshot: int
    metric: str  # lm-eval's per-sample metric name
    leaderboard_metric: str
    filter: str = "none"

    def protocol(self) -> dict:
        return {"suite": "Open LLM Leaderboard v1 (lm-eval harness, 2023-24)", "task": self.task,
                "num_fewshot": self.num_fewshot, "metric": self.metric, "leaderboard_metric": self.leaderboard_metric}


BENCHMARKS = {b.name: b for b in (
    Benchmark("arc", "lb", 1172, "tinyAI2_arc", "ARC-Challenge", "test", "arc", "arc_challenge", 25, "acc_norm",
              "acc_norm"),
    Benchmark("gsm8k", "lb", 1319, "tinyGSM8k", "main", "test", "gsm8k", "gsm8k", 5, "exact_match", "exact match",
              filter="strict-match"),
    Benchmark("hellaswag", "lb", 10042, "tinyHellaswag", None, "validation", "hellaswag", "hellaswag", 10,
              "acc_norm", "acc_norm"),
    Benchmark("mmlu", "mmlu", 14042, "tinyMMLU", "all", "test", "mmlu", "mmlu", 5, "acc",
              "acc, averaged over the 57 subjects"),
    Benchmark("truthfulqa", "lb", 817, "tinyTruthfulQA", "multiple_choice", "validation", "truthfulqa",
              "truthfulqa_mc2", 0, "acc", "mc2"),
    Benchmark("winogrande", "lb", 1267, "tinyWinogrande", "winogrande_xl", "validation", "winogrande", "winogrande",
              5, "acc", "acc"),
)}
LB_TOTAL = 28659  # the lb model's items when it holds all six benchmarks


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Source:
    path: Path
    size: int
    sha256: str
    git_blob: str
    pinned: bool

    def record(self, bench: Benchmark) -> dict:
        return {"name": "tinyBenchmarks", "license": "MIT", "file": self.path.name, "size": self.size,
                "sha256": self.sha256, "git_blob": self.git_blob, "pinned_release": self.pinned,
                "upstream": UPSTREAM_URL, "model": bench.model, "scenario": bench.name,
                "dataset": f"tinyBenchmarks/{bench.dataset}" + (f" ({bench.config})" if bench.config else "")}


def read_file(path: Path, allow_unpinned: bool = False) -> tuple[Source, Any]:
    """The file checked against the pinned release, then unpickled through the allow-list."""
    if not path.is_file():
        raise UserError(f"{path}: no such file (download tinyBenchmarks.pkl first; see docs/tinybenchmarks.md)")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise UserError(f"{path}: {size} bytes; tinyBenchmarks.pkl is about 5.2 MB (refusing files over {MAX_BYTES})")
    data = path.read_bytes()
    blob = git_blob_id(data)
    source = Source(path, size, hashlib.sha256(data).hexdigest(), blob, blob == PINNED_BLOB)
    if not source.pinned and not allow_unpinned:
        which = EARLIER_BLOBS.get(blob, "not a release merge3 knows")
        raise UserError(f"{path}: git blob id {blob} (size {size}) is {which}; merge3 pins {PINNED_BLOB} "
                        f"(tinyBenchmarks at {UPSTREAM_COMMIT[:7]}). Download that file, or pass --allow-unpinned "
                        "to import this one anyway (still read safely and validated)")
    return source, load_arrays(path, data)


# -- validation ----------------------------------------------------------------------------------
@dataclass
class Scenario:
    """One benchmark's part of a validated model: local positions are 0..N-1 in the file's order."""
    alpha: np.ndarray  # N x D
    beta: np.ndarray  # N
    anchors: np.ndarray  # 100 local positions
    weights: np.ndarray  # 100, sum 1
    lam: float
    balance: np.ndarray  # N: upstream's balance weights (1 except across MMLU's subjects)
    groups: list[str]  # subscenario names
    group_of: np.ndarray  # N: index into groups


class _Checker:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, field: str, what: str) -> UserError:
        return UserError(f"{self.path}: field '{field}' {what}")

    def get(self, node: Any, key: str, field: str) -> Any:
        if not isinstance(node, dict):
            raise self.fail(field.rsplit(".", 1)[0] if "." in field else field, "must be a dict")
        if key not in node:
            raise self.fail(field, "is missing")
        return node[key]

    def indices(self, value: Any, field: str, bound: int, length: int | None = None) -> np.ndarray:
        arr = np.asarray(value) if isinstance(value, (list, tuple, np.ndarray)) else None
        if arr is None or arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise self.fail(field, "must be a 1-d list or array of integers")
        if length is not None and arr.size != length:
            raise self.fail(field, f"has {arr.size} entries, expected {length}")
        if arr.size and (arr.min() < 0 or arr.max() >= bound):
            raise self.fail(field, f"holds positions outside 0..{bound - 1}")
        if len(np.unique(arr)) != arr.size:
            raise self.fail(field, "repeats positions")
        return arr.astype(np.int64)

    def floats(self, value: Any, field: str, shape: tuple) -> np.ndarray:
        if not isinstance(value, (np.ndarray, list)):
            raise self.fail(field, f"must be an array of numbers, got {type(value).__name__}")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise self.fail(field, "must be an array of numbers") from None
        if arr.shape != shape:
            raise self.fail(field, f"has shape {arr.shape}, expected {shape}")
        if not np.isfinite(arr).all():
            raise self.fail(field, "holds NaN or infinite values")
        return arr

    def number(self, value: Any, field: str, low: float, high: float) -> float:
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(()).item()
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise self.fail(field, f"is {value!r}; expected a number in [{low}, {high}]")
        return float(value)


def validate(path: Path, data: Any, model: str, wanted: dict[str, int]) -> dict[str, Scenario]:
    """The scenarios `wanted` ({name: items}) of model `model` ('lb' or 'mmlu'), every field checked."""
    c = _Checker(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: not tinyBenchmarks' parameter file (a {type(data).__name__}, expected a dict)")
    root = c.get(data, model, model)
    positions = c.get(root, "scenarios_position", f"{model}.scenarios_position")
    if not isinstance(positions, dict) or not positions:
        raise c.fail(f"{model}.scenarios_position", "must be a non-empty dict")
    missing = [s for s in wanted if s not in positions]
    if missing:
        raise c.fail(f"{model}.scenarios_position", f"lacks {', '.join(missing)} (has {', '.join(map(str, positions))})")
    n_total = sum(np.asarray(p).size for p in positions.values())
    scen_pos = {s: c.indices(p, f"{model}.scenarios_position.{s}", n_total, wanted.get(s)) for s, p in positions.items()}
    if model == "lb" and set(positions) >= set(BENCHMARKS) and n_total != LB_TOTAL:
        raise c.fail("lb.scenarios_position", f"covers {n_total} items, expected {LB_TOTAL}")
    covered = np.concatenate(list(scen_pos.values()))
    if len(np.unique(covered)) != n_total:
        raise c.fail(f"{model}.scenarios_position", f"does not split the {n_total} items into disjoint scenarios")
    irt = c.get(root, "irt_parameters", f"{model}.irt_parameters")
    a_raw = c.get(irt, "A", f"{model}.irt_parameters.A")
    a_shape = getattr(a_raw, "shape", ())
    if len(a_shape) != 3 or a_shape[0] != 1 or a_shape[2] != n_total or not 1 <= a_shape[1] <= 15:
        raise c.fail(f"{model}.irt_parameters.A", f"has shape {a_shape}, expected (1, D, {n_total}) with D in 1..15")
    dims = a_shape[1]
    A = c.floats(a_raw, f"{model}.irt_parameters.A", (1, dims, n_total))[0].T  # N x D
    b_raw = c.get(irt, "B", f"{model}.irt_parameters.B")
    b_shape = getattr(b_raw, "shape", ())
    if b_shape not in ((1, 1, n_total), (1, dims, n_total)):
        raise c.fail(f"{model}.irt_parameters.B", f"has shape {b_shape}, expected (1, 1, {n_total})")
    B = c.floats(b_raw, f"{model}.irt_parameters.B", b_shape)
    # upstream's item curve: sum over d of (A_d theta_d - B_d), B broadcast over d: beta = that sum of B
    beta = np.broadcast_to(B, (1, dims, n_total))[0].sum(axis=0)
    order = list(positions)
    seen = c.indices(c.get(root, "seen_examples", f"{model}.seen_examples"), f"{model}.seen_examples", n_total,
                     N_ANCHORS * len(order))
    weights = c.get(root, "examples_weights", f"{model}.examples_weights")
    lambdas = c.get(root, "optimal_lambdas", f"{model}.optimal_lambdas")
    subs = c.get(root, "subscenarios_position", f"{model}.subscenarios_position")
    out = {}
    for name in wanted:
        k = order.index(name)
        local = {int(g): j for j, g in enumerate(scen_pos[name])}
        anchor_global = seen[N_ANCHORS * k:N_ANCHORS * (k + 1)]
        outside = [int(g) for g in anchor_global if int(g) not in local]
        if outside:
            raise c.fail(f"{model}.seen_examples", f"anchors {N_ANCHORS * k}..{N_ANCHORS * (k + 1) - 1} should be "
                                                   f"items of {name}; {outside[:5]} are not")
        w = c.floats(c.get(weights, name, f"{model}.examples_weights.{name}"), f"{model}.examples_weights.{name}",
                     (N_ANCHORS,))
        if np.any(w < 0) or not math.isclose(w.sum(), 1.0, abs_tol=1e-3):
            raise c.fail(f"{model}.examples_weights.{name}", f"must be non-negative and sum to 1 (sum {w.sum():.6g})")
        lam = c.number(c.get(lambdas, name, f"{model}.optimal_lambdas.{name}"), f"{model}.optimal_lambdas.{name}", 0, 1)
        groups, group_of, balance = _subscenarios(c, c.get(subs, name, f"{model}.subscenarios_position.{name}"),
                                                  f"{model}.subscenarios_position.{name}", local, n_total)
        cols = scen_pos[name]
        out[name] = Scenario(A[cols], beta[cols], np.array([local[int(g)] for g in anchor_global]), w / w.sum(), lam,
                             balance, groups, group_of)
    return out


def _subscenarios(c: _Checker, subs: Any, field: str, local: dict[int, int], n_total: int):
    """(names, subscenario index of each item, upstream's balance weight of each item)."""
    if not isinstance(subs, dict) or not subs:
        raise c.fail(field, "must be a non-empty dict of subscenario -> positions")
    n = len(local)
    group_of = np.full(n, -1)
    names = [str(s) for s in subs]
    balance = np.ones(n)
    for j, (name, pos) in enumerate(subs.items()):
        idx = c.indices(pos, f"{field}.{name}", n_total)
        foreign = [int(g) for g in idx if int(g) not in local]
        if foreign or idx.size == 0:
            raise c.fail(f"{field}.{name}", "must list positions of the scenario's own items" +
                         (f" ({foreign[:5]} are not)" if foreign else ""))
        cols = [local[int(g)] for g in idx]
        if np.any(group_of[cols] >= 0):
            raise c.fail(field, f"subscenario {name!r} overlaps another")
        group_of[cols] = j
        balance[cols] = n / (len(subs) * idx.size)  # upstream: N_sce / (n_sub * n_i)
    if np.any(group_of < 0):
        raise c.fail(field, f"leaves {int((group_of < 0).sum())} of the scenario's items in no subscenario")
    return names, group_of, balance


def subject_name(subscenario: str) -> str:
    """'harness_hendrycksTest_abstract_algebra_5' or 'hendrycksTest-abstract_algebra' -> 'abstract_algebra'."""
    m = re.match(r"^(?:harness[|_])?(?:hendrycksTest[-_|])?(.+?)(?:[|_]\d+)?$", subscenario)
    return m.group(1) if m else subscenario


# -- bundles -------------------------------------------------------------------------------------
def to_bundle(bench: Benchmark, scen: Scenario, source: Source, content_keys: dict | None) -> Bundle:
    """`content_keys`: {"keys": [...], "tiebreak": [...] (where the family has one)}, from anchor_keys()."""
    n, dims = scen.alpha.shape
    anchors = Anchors(method="tinybenchmarks", seed=0, doc_ids=[int(p) for p in scen.anchors], weights=scen.weights,
                      lambda_gpirt=scen.lam, delta_gmpirt=scen.lam,
                      calibration={"source": "tinyBenchmarks' optimal_lambdas (fit on leaderboard models); "
                                             "delta = lambda* (no merges to learn it on)"},
                      content_keys=None if content_keys is None else {"family": bench.key_family, **content_keys})
    uniform = bool(np.allclose(scen.balance, 1.0))
    groups = None
    if len(scen.groups) > 1:
        groups = {"names": [subject_name(g) if bench.name == "mmlu" else g for g in scen.groups],
                  "of_item": [int(g) for g in scen.group_of]}
    return Bundle(
        task=bench.task, task_version=None, metric=bench.metric, filter=bench.filter,
        doc_ids=list(range(n)), doc_hashes=[], items=_items(scen.alpha, scen.beta), backend="tinybenchmarks",
        models=[], splits=[], theta=np.zeros((0, dims)), scores=None,
        diagnostics={"note": "imported from tinyBenchmarks; items in the Open LLM Leaderboard's details row order "
                             "(not lm-eval doc_ids); abilities are fit by MAP under N(0, I)"},
        anchors=anchors, item_order="open-llm-leaderboard", item_weights=None if uniform else scen.balance,
        item_groups=groups, source=source.record(bench), protocol=bench.protocol())


def _items(alpha: np.ndarray, beta: np.ndarray):
    from .irt import ItemParams

    return ItemParams(np.ascontiguousarray(alpha, dtype=np.float64), np.ascontiguousarray(beta, dtype=np.float64))


def bundles_from(path: Path, data: Any, source: Source, keys: dict[str, dict] | None = None) -> dict[str, Bundle]:
    """One bundle per benchmark from a loaded (not yet validated) file."""
    by_model: dict[str, dict[str, int]] = {}
    for b in BENCHMARKS.values():
        by_model.setdefault(b.model, {})[b.name] = b.n_items
    scenarios = {}
    for model, wanted in by_model.items():
        scenarios.update(validate(path, data, model, wanted))
    return {name: to_bundle(b, scenarios[name], source, None if keys is None else keys[name])
            for name, b in BENCHMARKS.items()}


def anchor_keys(datasets_dir: Path) -> dict[str, dict]:
    """Each benchmark's 100 anchor content keys ({"keys": [...]}, plus "tiebreak" where its family has
    one), from the tinyBenchmarks datasets under `datasets_dir`."""
    if not datasets_dir.is_dir():
        raise UserError("no such folder", param="datasets", value=datasets_dir)
    out = {}
    for name, b in BENCHMARKS.items():
        where = find(datasets_dir, b.dataset)
        rows = read_rows(where, b.split, b.config)
        if len(rows) != N_ANCHORS:
            raise UserError(f"{where}: {len(rows)} rows of split {b.split!r}, expected the {N_ANCHORS} anchors of "
                            f"tinyBenchmarks/{b.dataset}")
        try:
            keys = [family(b.key_family).key(r) for r in rows]
        except MissingField as err:
            raise UserError(f"{where}: rows have no field {err.field!r} (the {b.key_family} content key needs "
                            f"{', '.join(family(b.key_family).fields)})") from None
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise UserError(f"{where}: rows {[i for i, k in enumerate(keys) if k == dup]} have the same content key "
                            f"{dup!r:.120}; is this tinyBenchmarks/{b.dataset}?")
        out[name] = {"keys": keys}
        fam = family(b.key_family)
        if fam.tiebreak:
            out[name]["tiebreak"] = [fam.tiebreak_key(r) for r in rows]
    return out


def import_tinybenchmarks(pkl: Path, out_dir: Path, datasets_dir: Path, allow_unpinned: bool = False,
                          force: bool = False) -> dict[str, Path]:
    """Check, read, validate, write `out_dir/<benchmark>.json`; {benchmark: bundle path}."""
    check_writable(out_dir)
    source, data = read_file(pkl, allow_unpinned)
    bundles = bundles_from(pkl, data, source, anchor_keys(datasets_dir))
    targets = {name: out_dir / f"{name}.json" for name in bundles}
    for name, target in targets.items():
        _refuse_other_source(target, source, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, bundle in bundles.items():
        bundle.save(targets[name])
    return targets


def _refuse_other_source(target: Path, source: Source, force: bool) -> None:
    """A bundle already there, imported from another file: its locks and users rely on it."""
    if not target.exists() or force:
        return
    try:
        old = Bundle.load(target).source.get("sha256")
    except UserError:
        old = None
    if old != source.sha256:
        raise UserError(f"{target}: exists, imported from another file (sha256 {old}); pass --force to replace it "
                        "(and delete its .lock.json, whose anchors may then differ)")
