"""`Merge3Task`: any lm-eval task restricted to a bundle's anchor items, with IRT estimates as metrics.

A merge3 task's YAML names its base task and its bundle; everything else (prompt, few-shot pool,
filters, metrics) is the base task's own config, loaded here:

    task: merge3_toy_math
    tag: merge3
    class: !function merge3_lm_eval_tasks.task.Merge3Task
    metadata:
      merge3_base_yaml: /path/to/toy_math.yaml     # or merge3_base_task: arc_challenge (a built-in)
      merge3_bundle: /path/to/toy_math.anchors.json
      # optional, for merged models (mp-IRT, gmp-IRT): the endpoints' abilities or their logs
      merge3_endpoint_theta: [[0.1, -0.3], [0.8, 0.2]]
      merge3_endpoint_samples: [/logs/expert-math, /logs/expert-lang]

A bundle imported from tinyBenchmarks (`merge3 import-tinybenchmarks`) names its anchors by content:
they are matched to the base task's documents on first load and pinned in a lock file beside the
bundle (merge3_plugin/anchor_lock.py). `merge3_tinybenchmarks: arc` (the ready configs) uses the
imported bundle of that benchmark when `merge3 import-tinybenchmarks` has written it, with the
leaderboard's number of shots, and `merge3_random_anchors` until then.

The base metric (e.g. `acc`) is computed on the anchors as usual; `acc_anchor`, `acc_pirt`,
`acc_gpirt` (and `acc_mpirt`, `acc_gmpirt` with endpoints) are added. Their per-document values
are (item key, score) pairs, so the estimate does not depend on document order, `--limit` or
data-parallel ranks. Items are matched to the bundle by lm-eval's own doc_hash, so a dataset of
another version or order is refused when the task loads.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
from lm_eval.api.task import ConfigurableTask

from merge3_plugin.bundle import Bundle
from merge3_plugin.errors import UserError
from merge3_plugin.files import cache_root
from merge3_plugin.plugins import adaptive_estimators, endpoint_estimators, names

from .compat import doc_hash, load_yaml
from .errors import Merge3ConfigError  # noqa: F401  (task.Merge3ConfigError, as before)

SHIPPED_DIR = Path(__file__).resolve().parent / "tasks"

CACHE_VAR = "${MERGE3_CACHE}"


def _resolve(path: str) -> Path:
    """Paths in shipped tasks are relative to the shipped folder, or start with ${MERGE3_CACHE} (the
    shipped toy tasks' base YAMLs, written by `merge3 zoo build`); users' are absolute."""
    if path.startswith(CACHE_VAR):
        return cache_root() / path[len(CACHE_VAR):].lstrip("/")
    resolved = Path(path).expanduser()
    return resolved if resolved.is_absolute() else SHIPPED_DIR / resolved


def _missing_file(task: str, field: str, path: Path) -> Merge3ConfigError:
    hint = ""
    if cache_root() in path.parents:
        hint = " (a file of merge3's cache: the shipped toy tasks need `merge3 zoo build` first)"
    return Merge3ConfigError(f"{task}: metadata.{field}: no such file {path}{hint}")


def base_config(task: str, metadata: dict) -> dict:
    """The base task's full config (its YAML with includes resolved), by path or by name."""
    if metadata.get("merge3_base_yaml"):
        path = _resolve(str(metadata["merge3_base_yaml"]))
        if not path.is_file():
            raise _missing_file(task, "merge3_base_yaml", path)
        cfg = load_yaml(path, resolve_func=True)
    elif metadata.get("merge3_base_task"):
        name = str(metadata["merge3_base_task"])
        from lm_eval.tasks import TaskManager

        entry = TaskManager().task_index.get(name)  # indexes every built-in task: ~20 s
        path = getattr(entry, "yaml_path", None) if entry is not None else None
        if path is None:
            raise Merge3ConfigError(f"{task}: metadata.merge3_base_task: lm-eval has no task {name!r} "
                                    "(see `lm_eval ls tasks`), or it is not defined by a YAML file")
        cfg = load_yaml(path, resolve_func=True)
    else:
        raise Merge3ConfigError(f"{task}: metadata needs merge3_base_yaml (a task YAML) or merge3_base_task (a name)")
    for key in ("tag", "group", "task_list", "class"):
        cfg.pop(key, None)
    return cfg


def random_anchors(name: str, metadata: dict) -> tuple[int, int] | None:
    """metadata.merge3_random_anchors {size, seed}: seeded random anchors for a task with no bundle yet."""
    spec = metadata.get("merge3_random_anchors")
    if spec is None:
        return None
    if metadata.get("merge3_bundle"):
        raise Merge3ConfigError(f"{name}: metadata has both merge3_bundle and merge3_random_anchors; keep one")
    if not isinstance(spec, dict) or not isinstance(spec.get("size"), int) or spec["size"] < 1 \
            or not isinstance(spec.get("seed", 0), int):
        raise Merge3ConfigError(f"{name}: metadata.merge3_random_anchors must be {{size: N >= 1, seed: S}}")
    return spec["size"], spec.get("seed", 0)


def tinybenchmarks_bundle(name: str, metadata: dict) -> Path | None:
    """metadata.merge3_tinybenchmarks: the imported bundle of that benchmark, if it has been imported."""
    bench = metadata.get("merge3_tinybenchmarks")
    if bench is None:
        return None
    from merge3_plugin.tinybenchmarks import BENCHMARKS

    if bench not in BENCHMARKS:
        raise Merge3ConfigError(f"{name}: metadata.merge3_tinybenchmarks is {bench!r}; expected one of "
                                f"{', '.join(BENCHMARKS)}")
    path = cache_root() / "tinybenchmarks" / f"{bench}.json"
    return path if path.is_file() else None


def with_tinybenchmarks(name: str, metadata: dict) -> dict:
    """The metadata with the imported tinyBenchmarks bundle in place of random anchors, once it exists."""
    path = tinybenchmarks_bundle(name, metadata)
    if path is None:
        return metadata
    out = {k: v for k, v in metadata.items() if k != "merge3_random_anchors"}
    out["merge3_bundle"] = str(path)
    out["merge3_protocol_shots"] = True  # run the protocol the parameters assume
    return out


def load_bundle(name: str, metadata: dict) -> Bundle:
    """The bundle that metadata.merge3_bundle names, with anchors; errors name the task and field."""
    if not metadata.get("merge3_bundle"):
        raise Merge3ConfigError(f"{name}: metadata.merge3_bundle is missing (a bundle from `merge3 extract`)")
    path = _resolve(str(metadata["merge3_bundle"]))
    try:
        bundle = Bundle.load(path)
        bundle.require_anchors(path)
    except UserError as err:
        raise Merge3ConfigError(f"{name}: metadata.merge3_bundle: {err}") from None
    return bundle


def check_task_yaml(path: Path, known_tasks: set[str] | None = None) -> dict:
    """Validate a merge3 task YAML without loading any dataset: its shape, its bundle, its base task.
    `known_tasks` (lm-eval's task names) checks merge3_base_task; returns the parsed config."""
    try:
        cfg = load_yaml(path, resolve_func=False)
    except Exception as err:  # lm-eval drops unparsable YAMLs silently: say it loudly here
        raise Merge3ConfigError(f"{path}: not a valid task YAML ({err})") from None
    name = cfg.get("task")
    if not isinstance(name, str) or not name.startswith("merge3_"):
        raise Merge3ConfigError(f"{path}: field 'task' must be a name starting with merge3_")
    if "merge3_lm_eval_tasks.task.Merge3Task" not in str(cfg.get("class", "")):
        raise Merge3ConfigError(f"{path}: field 'class' must be !function merge3_lm_eval_tasks.task.Merge3Task")
    tags = cfg.get("tag") or []
    if any(str(t).startswith("merge3_") for t in ([tags] if isinstance(tags, str) else tags)):
        raise Merge3ConfigError(f"{path}: a tag matching merge3_* would be caught by --tasks 'merge3_*'")
    metadata = with_tinybenchmarks(name, cfg.get("metadata") or {})
    random = random_anchors(name, metadata)
    if random is None:
        load_bundle(name, metadata)
    base = metadata.get("merge3_base_task")
    if base is not None and known_tasks is not None and base not in known_tasks:
        raise Merge3ConfigError(f"{path}: metadata.merge3_base_task {base!r} is not an lm-eval task here")
    if base is None and not metadata.get("merge3_base_yaml"):
        raise Merge3ConfigError(f"{path}: metadata needs merge3_base_task or merge3_base_yaml")
    return cfg


class Merge3Task(ConfigurableTask):
    def __init__(self, data_dir=None, cache_dir=None, download_mode=None, config: dict | None = None):
        config = dict(config or {})
        name = str(config.get("task", "merge3 task"))
        metadata = with_tinybenchmarks(name, dict(config.get("metadata") or {}))
        self._merge3_name = name
        self._random = random_anchors(name, metadata)
        self._bundle = None if self._random else load_bundle(name, metadata)
        self._bundle_path = None if self._bundle is None else _resolve(str(metadata["merge3_bundle"]))
        self._base_name = str(metadata.get("merge3_base_task") or _resolve(str(metadata.get("merge3_base_yaml"))))
        merged = {**base_config(name, metadata), "task": name, "metadata": {**metadata}}
        merged["metadata"].setdefault("version", 1.0 if self._bundle is None else self._bundle.task_version or 1.0)
        if self._bundle is not None and metadata.get("merge3_protocol_shots") and self._bundle.protocol:
            merged["num_fewshot"] = self._bundle.protocol["num_fewshot"]
        if config.get("num_fewshot") is not None:  # the task's own (`merge3 tasks build --num-fewshot N`)
            merged["num_fewshot"] = int(config["num_fewshot"])
        self._endpoint_theta = None if self._bundle is None else self._endpoints(name, metadata)
        self._estimator_names = self._estimators()  # fixed for the task's life; read per document
        self._key_of_hash: dict[str, int] = {}
        super().__init__(data_dir=data_dir, cache_dir=cache_dir, download_mode=download_mode, config=merged)
        if self._bundle is None:  # random anchors, no IRT yet: the base metrics are the plain anchor means
            return
        metric = self._bundle.metric
        base_metrics = super().aggregation()  # the base task's metrics, by name
        if metric not in base_metrics:
            raise Merge3ConfigError(f"{name}: the bundle models metric {metric!r}, which the base task does not "
                                    f"compute (it has {', '.join(base_metrics) or 'none'})")
        self._warn_protocol(self.config.num_fewshot)

    def _warn_protocol(self, shots) -> None:
        """Imported parameters were fit under one protocol (the leaderboard's shots and metric): say so when
        this task runs another (the estimates then describe a model evaluated differently)."""
        protocol = self._bundle.protocol if self._bundle is not None else {}
        if protocol and int(shots or 0) != protocol.get("num_fewshot"):
            print(f"merge3: warning: {self._merge3_name}: runs {int(shots or 0)}-shot, but the parameters of "
                  f"{self._bundle_path.name} assume {protocol.get('suite')}: {protocol['num_fewshot']}-shot "
                  f"{protocol.get('metric')}; the IRT estimates may be biased", file=sys.stderr)

    def set_config(self, key, value, update=False):  # lm_eval --num_fewshot arrives here after __init__
        super().set_config(key, value, update=update)
        if key == "num_fewshot" and self._bundle is not None:
            self._warn_protocol(value)

    # -- public views (the fitness reads them) ---------------------------------------------------
    @property
    def bundle(self) -> Bundle | None:
        """The bundle whose anchors this task asks (None for seeded random anchors)."""
        return self._bundle

    def anchor_key(self, doc) -> int | None:
        """The bundle's doc id of an anchor document (None for a document that is no anchor)."""
        return self._key_of_hash.get(doc_hash(doc))

    # -- set-up ----------------------------------------------------------------------------------
    def _endpoints(self, name: str, metadata: dict) -> np.ndarray | None:
        theta = metadata.get("merge3_endpoint_theta")
        samples = metadata.get("merge3_endpoint_samples")
        if theta is not None:
            arr = np.asarray(theta, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[1] != self._bundle.dims or arr.shape[0] < 1:
                raise Merge3ConfigError(f"{name}: metadata.merge3_endpoint_theta must be a list of abilities, each "
                                        f"of {self._bundle.dims} numbers (the bundle's d)")
            return arr
        if samples:
            from merge3_plugin.bundle_responses import endpoint_abilities

            try:
                return endpoint_abilities(self._bundle, [Path(p) for p in samples])[1]
            except UserError as err:
                raise Merge3ConfigError(f"{name}: metadata.merge3_endpoint_samples: {err}") from None
        return None

    def _estimators(self) -> list[str]:
        if self._bundle is None:
            return []
        # every registered estimator is a metric, a third party's too; those needing endpoints only with them.
        # Adaptive ones choose items as they go, which one lm-eval run cannot: the evolve loop runs them.
        needs_endpoints, adaptive = endpoint_estimators(), adaptive_estimators()
        return [e for e in names("estimator") if e not in adaptive
                and (self._endpoint_theta is not None or e not in needs_endpoints)]

    # -- lm-eval hooks ---------------------------------------------------------------------------
    def aggregation(self) -> dict:
        """The base task's metrics, and one `<metric>_<estimator>` per estimator that applies."""
        out = dict(super().aggregation())
        if self._bundle is not None:
            for estimator in self._estimator_names:
                out[f"{self._bundle.metric}_{estimator}"] = functools.partial(
                    _aggregate, self._bundle, estimator, self._endpoint_theta)
        return out

    def higher_is_better(self) -> dict:
        out = dict(super().higher_is_better())
        if self._bundle is not None:
            out.update({f"{self._bundle.metric}_{estimator}": True for estimator in self._estimator_names})
        return out

    @property
    def eval_docs(self):
        docs = getattr(self, "_merge3_docs", None)
        if docs is None:
            docs = self._merge3_docs = self._anchor_docs(super().eval_docs)
        return docs

    def _anchor_docs(self, docs):
        chosen = self._anchor_ids(docs)
        return docs.select(chosen) if hasattr(docs, "select") else [docs[i] for i in chosen]

    def _anchor_ids(self, docs) -> list[int]:
        """The positions of the anchors among the base task's documents (checked against the bundle)."""
        if self._bundle is None:
            size, seed = self._random
            return sorted(np.random.default_rng(seed).choice(len(docs), size=min(size, len(docs)),
                                                             replace=False).tolist())
        bundle, name = self._bundle, self._merge3_name
        anchors = bundle.anchors
        if bundle.content_keyed:
            return self._content_keyed_ids(docs)
        n_docs = len(docs)
        outside = [d for d in anchors.doc_ids if d >= n_docs]
        if outside:
            raise Merge3ConfigError(f"{name}: anchors {outside[:5]} lie outside the dataset ({n_docs} documents); "
                                    "the bundle belongs to another dataset")
        if n_docs != bundle.n_items:
            raise Merge3ConfigError(f"{name}: the dataset has {n_docs} documents, the bundle {bundle.n_items} items: "
                                    "another version of the task")
        expected = dict(zip(bundle.doc_ids, bundle.doc_hashes, strict=True))
        for doc_id in anchors.doc_ids:
            found = doc_hash(docs[doc_id])
            if found != expected[doc_id]:
                raise Merge3ConfigError(f"{name}: document {doc_id} differs from the one the bundle was fit on "
                                        "(another task version or document order); refit the bundle")
            self._key_of_hash.setdefault(found, doc_id)
        return list(anchors.doc_ids)

    def _content_keyed_ids(self, docs) -> list[int]:
        """An imported bundle's anchors, found by content and pinned in its lock file (anchor_lock.py)."""
        from merge3_plugin.anchor_lock import resolve

        try:
            locked = resolve(self._bundle, self._bundle_path, self._base_name, docs, doc_hash)
        except UserError as err:
            raise Merge3ConfigError(f"{self._merge3_name}: {err}") from None
        for position, found in zip(self._bundle.anchors.doc_ids, locked.doc_hashes):
            self._key_of_hash.setdefault(found, position)
        return list(locked.doc_ids)

    def process_results(self, doc, results):
        out = super().process_results(doc, results)
        if self._bundle is None:
            return out
        metric = self._bundle.metric
        if metric in out:
            key = self._key_of_hash.get(doc_hash(doc))
            for estimator in self._estimator_names:
                out[f"{metric}_{estimator}"] = (key, float(out[metric]))
        return out


def _aggregate(bundle: Bundle, estimator: str, endpoint_theta: np.ndarray | None, items: list) -> float:
    """(item key, score) pairs -> one estimate; order, duplicates across ranks and --limit do not matter."""
    from merge3_plugin.estimation import estimate

    scores: dict[int, list[float]] = {}
    for key, score in items:
        if key is not None:
            scores.setdefault(int(key), []).append(float(score))
    row = np.array([[np.mean(scores[d]) if d in scores else np.nan for d in bundle.anchors.doc_ids]])
    if np.isnan(row).all():
        return float("nan")
    ends = None if endpoint_theta is None else endpoint_theta[None]
    return float(estimate(bundle, row, ends, names=[estimator])[estimator][0])
