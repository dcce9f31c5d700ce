"""lm-eval `--log_samples` output -> a response matrix (models x items), checked item by item.

lm-eval writes `<output>/<model>/samples_<task>_<date>.jsonl`, one record per (document, filter)
with `doc_id`, `doc_hash` and one key per metric. Items are keyed by (task, doc_id); every model's
`doc_hash` for an item must agree, so logs of another task version or document order are refused
with the files named. Scores may be 0/1 or graded in [0, 1]; a missing cell is NaN.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError

# The date lm-eval appends (datetime.isoformat with ":" replaced by "-") ends the name, so a task
# name is matched whole: "samples_toy_math_*" must not catch "samples_toy_math_l2_...".
_SAMPLES = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?)\.jsonl$")


class NoSamples(UserError):
    """No sample file of the task under the paths given (callers that accept several tasks catch it)."""


@dataclass(frozen=True)
class SampleFile:
    path: Path
    model: str  # the folder lm-eval named after the model
    task: str
    date: str


def parse_sample_file(path: Path) -> SampleFile | None:
    match = _SAMPLES.match(path.name)
    if not match:
        return None
    return SampleFile(path, path.parent.name, match["task"], match["date"])


def find_sample_files(paths: list[Path | str], task: str, others_ok: tuple[str, ...] = ()) -> list[SampleFile]:
    """Sample files of `task` under `paths` (files or folders, searched recursively); for a model
    with several runs of the task, the newest run wins (lm-eval never overwrites, it adds files).
    A file named on its own must be of `task` (or of a task in `others_ok`, which the caller reads
    separately): it is refused, never skipped in silence."""
    newest: dict[str, SampleFile] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"{path}: no such file or folder")
        candidates = [path] if path.is_file() else sorted(path.rglob("samples_*.jsonl"))
        for candidate in candidates:
            sample = parse_sample_file(candidate)
            if sample is None:
                if path.is_file():
                    raise UserError(f"{path}: not an lm-eval samples file (expected samples_<task>_<date>.jsonl)")
                continue
            if sample.task != task:
                if path.is_file() and sample.task not in others_ok:
                    raise UserError(f"{path}: samples of task {sample.task!r}, not of {task!r}")
                continue
            kept = newest.get(sample.model)
            if kept is None or sample.date > kept.date:
                newest[sample.model] = sample
    if not newest:
        raise NoSamples(f"no samples_{task}_<date>.jsonl under {', '.join(map(str, paths))} "
                        "(run lm_eval with --log_samples --output_path)")
    return [newest[m] for m in sorted(newest)]


@dataclass
class ResponseMatrix:
    task: str
    metric: str
    filter: str
    models: list[str]
    doc_ids: list[int]
    doc_hashes: list[str]
    scores: np.ndarray  # float, models x items, NaN where a model did not answer an item
    sources: dict[str, str] = field(default_factory=dict)  # model -> file

    @property
    def item_keys(self) -> list[tuple[str, int]]:
        return [(self.task, d) for d in self.doc_ids]

    def accuracy(self) -> np.ndarray:
        return np.nanmean(self.scores, axis=1)


# The pseudo-metric of graded responses: read from a multiple-choice log's log-likelihoods (graded.py).
GRADED = "choice_prob"


def choice_probability(record: dict) -> float | None:
    """The probability of the right choice in one logged multiple-choice sample: the softmax of its
    choices' log-likelihoods (`filtered_resps`, one [log-likelihood, is-greedy] per choice) at the right
    choice. None where the sample is not one (a generation task's, or no single right choice found)."""
    try:
        ll = np.array([float(r[0]) for r in record.get("filtered_resps")], dtype=np.float64)
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    index = _right_choice(record)
    if len(ll) < 2 or index is None or not 0 <= index < len(ll) or not np.isfinite(ll).all():
        return None
    p = np.exp(ll - ll.max())
    return float(p[index] / p.sum())


def _right_choice(record: dict) -> int | None:
    """The target's choice index: the target itself where it is one (lm-eval turns a digit target into an
    index), else the one choice whose continuation is the target's text (a task whose doc_to_target
    gives the answer's text). Continuations are lm-eval's request arguments: {"gen_args_k": {"arg_1": ...}}
    in a log file, [(context, continuation), ...] in memory."""
    target = record.get("target")
    try:
        return int(target)
    except (TypeError, ValueError):
        pass
    if not isinstance(target, str):
        return None
    arguments = record.get("arguments")
    pairs = list(arguments.values()) if isinstance(arguments, dict) else list(arguments or [])
    continuations = [a.get("arg_1") if isinstance(a, dict) else (a[1] if len(a) > 1 else None) for a in pairs]
    found = [k for k, c in enumerate(continuations) if isinstance(c, str) and c.strip() == target.strip()]
    return found[0] if len(found) == 1 else None


def _read_records(sample: SampleFile, metric: str, filter_name: str | None) -> tuple[dict[int, tuple[str, float]], str]:
    rows: dict[int, tuple[str, float]] = {}
    filters_seen: set[str] = set()
    with open(sample.path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{sample.path}:{line_no}: not valid JSON ({err.msg})") from None
            for key in ("doc_id", "doc_hash"):
                if key not in record:
                    raise UserError(f"{sample.path}:{line_no}: field {key!r} is missing")
            current = record.get("filter", "none")
            filters_seen.add(current)
            if filter_name is not None and current != filter_name:
                continue
            if metric == GRADED:
                value = choice_probability(record)
                if value is None:
                    raise UserError(f"{sample.path}:{line_no}: no graded response: graded responses are the "
                                    "probability of the right choice, and this is not a multiple-choice log "
                                    "(one log-likelihood per choice, and a target that is a choice index or the "
                                    "text of one choice)")
            elif metric not in record:
                found = sorted(k for k in record.get("metrics", []) if k in record)
                raise UserError(f"{sample.path}:{line_no}: no metric {metric!r}; this log has {found or 'none'}")
            else:
                value = float(record[metric])
            if not 0.0 <= value <= 1.0:
                raise UserError(f"{sample.path}:{line_no}: {metric} = {value} is not a score in [0, 1]")
            rows[int(record["doc_id"])] = (record["doc_hash"], value)
    if filter_name is None and len(filters_seen) > 1:
        raise UserError(f"{sample.path}: several filters ({', '.join(sorted(filters_seen))}); choose one")
    return rows, filter_name or next(iter(filters_seen), "none")


def load_responses(paths: list[Path | str], task: str, metric: str, filter_name: str | None = None,
                   others_ok: tuple[str, ...] = ()) -> ResponseMatrix:
    """The response matrix of `task` from the sample files under `paths` (see find_sample_files)."""
    files = find_sample_files(paths, task, others_ok)
    per_model: dict[str, dict[int, tuple[str, float]]] = {}
    used_filter = filter_name
    for sample in files:
        per_model[sample.model], used_filter = _read_records(sample, metric, filter_name)
    hashes: dict[int, tuple[str, str]] = {}  # doc_id -> (doc_hash, the file it was first seen in)
    for sample in files:
        for doc_id, (doc_hash, _) in per_model[sample.model].items():
            seen = hashes.setdefault(doc_id, (doc_hash, str(sample.path)))
            if seen[0] != doc_hash:
                raise UserError(f"doc_id {doc_id} of {task} differs between {seen[1]} and {sample.path} "
                                "(another task version or document order); refit on logs of one version")
    doc_ids = sorted(hashes)
    column = {d: j for j, d in enumerate(doc_ids)}
    scores = np.full((len(files), len(doc_ids)), np.nan)
    for i, sample in enumerate(files):
        for doc_id, (_, value) in per_model[sample.model].items():
            scores[i, column[doc_id]] = value
    return ResponseMatrix(task, metric, used_filter or "none", [s.model for s in files], doc_ids,
                          [hashes[d][0] for d in doc_ids], scores, {s.model: str(s.path) for s in files})


def task_version(paths: list[Path | str], task: str) -> str | None:
    """The task's version from lm-eval's results_<date>.json beside the samples (None if absent)."""
    for sample in find_sample_files(paths, task):
        for results in sorted(sample.path.parent.glob("results_*.json"), reverse=True):
            try:
                version = json.loads(results.read_text(encoding="utf-8")).get("versions", {}).get(task)
            except (OSError, json.JSONDecodeError, AttributeError):
                continue
            if version is not None:
                return str(version)
    return None
