"""The IRT bundle: everything estimation needs about one task, in one versioned JSON file.

Written by `merge3 fit`, completed by `merge3 extract` (anchors and their calibration), read by
`merge3 estimate`, the merge3 lm-eval tasks and mergekit-evolve-lite. Never pickle: JSON, and for
large populations the response matrix in a sibling `.npz` read with `allow_pickle=False`.
Loading validates the file against a declared schema (pydantic models, in bundle_schema.py), then checks
that its sections agree, so a wrong or corrupt file fails with its name and the field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .bundle_format import FORMAT, SPLITS, VERSION  # noqa: F401  (bundle.SPLITS, as before)
from .errors import UserError
from .files import sha256_of, write_atomic
from .irt import ItemParams, population_prior

# Response matrices with more cells than this go to a sibling .npz (JSON would be tens of MB).
NPZ_THRESHOLD = 250_000


@dataclass
class Anchors:
    method: str
    seed: int
    doc_ids: list[int]
    weights: np.ndarray  # sums to 1
    # calibration on the validation models, computed at extraction (see estimation.calibrate)
    lambda_gpirt: float
    delta_gmpirt: float
    calibration: dict[str, Any] = field(default_factory=dict)
    # nested smaller anchor sets for multi-fidelity search (rungs.py): each the first `size` anchors,
    # with its own weights and calibration; smallest first
    rungs: list["Anchors"] = field(default_factory=list)
    # anchors named by content, not position (imported bundles, see content_keys.py):
    # {"family": a content_keys.KEYS name, "keys": one key per anchor, "tiebreak": one per anchor (optional)}
    content_keys: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        return len(self.doc_ids)


@dataclass
class GradedChannel:
    """Graded responses' IRT (graded.py): `items` measure the ability from the probability of the right
    choice, `predict` are the items' right/wrong parameters at that ability; `theta` the population's
    abilities on this scale (models x d), the prior of a new model's."""

    items: ItemParams
    predict: ItemParams
    theta: np.ndarray


@dataclass
class Bundle:
    task: str
    task_version: str | None
    metric: str
    filter: str
    doc_ids: list[int]
    doc_hashes: list[str]
    items: ItemParams
    backend: str
    models: list[str]  # the fit population: train and validation models
    splits: list[str]  # per model: "train" (item fit) or "validation" (calibration)
    theta: np.ndarray  # models x d abilities
    scores: np.ndarray | None  # models x items, NaN missing; None in a slim bundle (estimation only)
    lineage: dict[str, list[str]] = field(default_factory=dict)  # merged model -> its endpoints
    diagnostics: dict[str, Any] = field(default_factory=dict)
    anchors: Anchors | None = None
    # "lm-eval": doc_ids are lm-eval's and doc_hashes its hashes (a fit bundle). Another order (an
    # imported bundle: "open-llm-leaderboard") numbers the items 0..N-1 in that order, has no doc hashes,
    # and reaches lm-eval's documents only through its anchors' content keys and a lock file (anchor_lock.py).
    item_order: str = "lm-eval"
    item_weights: np.ndarray | None = None  # per item, mean 1 (e.g. MMLU's subject balance); None: all 1
    item_groups: dict[str, Any] | None = None  # {"names": [...], "of_item": [index per item]} (MMLU's subjects)
    source: dict[str, Any] = field(default_factory=dict)  # where imported parameters came from (file, hashes)
    protocol: dict[str, Any] = field(default_factory=dict)  # the evaluation protocol the parameters assume
    graded: GradedChannel | None = None  # multiple-choice tasks fit with `merge3 fit --graded`

    def graded_prior(self) -> tuple[np.ndarray, np.ndarray]:
        """The prior for a new model's ability on the graded scale: the training models' (population_prior)."""
        return population_prior(self.require_graded().theta[self.split_index("train")])

    def require_graded(self, path: Path | str | None = None) -> GradedChannel:
        if self.graded is None:
            where = f"{path}: " if path else ""
            raise UserError(f"{where}the bundle of {self.task} has no graded responses; fit it with `merge3 fit "
                            "--graded` on a multiple-choice task's logs")
        return self.graded

    @property
    def content_keyed(self) -> bool:
        return self.item_order != "lm-eval"

    @property
    def n_items(self) -> int:
        return len(self.doc_ids)

    @property
    def dims(self) -> int:
        return self.items.dims

    def split_index(self, split: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.splits) if s == split], dtype=int)

    def ability_prior(self) -> tuple[np.ndarray, np.ndarray]:
        """The prior for a new model's ability: the training models' abilities' mean and shrunk
        covariance (irt.population_prior; on the toy world it cut p-IRT's error at 20 anchors by a
        third to a half against N(0, I)); N(0, I) for a bundle without its population (imported)."""
        train = self.split_index("train")
        if len(train) == 0:
            return np.zeros(self.dims), np.eye(self.dims)
        return population_prior(self.theta[train])

    def columns(self, doc_ids: list[int]) -> np.ndarray:
        """Item positions of doc_ids (all must belong to this bundle's task)."""
        position = {d: j for j, d in enumerate(self.doc_ids)}
        return np.array([position[d] for d in doc_ids], dtype=int)

    def anchor_columns(self) -> np.ndarray:
        return self.columns(self.require_anchors().doc_ids)

    def require_anchors(self, path: Path | str | None = None) -> Anchors:
        if self.anchors is None:
            where = f"{path}: " if path else ""
            raise UserError(f"{where}this bundle has no anchors yet; run `merge3 extract --bundle ... --size N`")
        return self.anchors

    def with_anchors(self, anchors: Anchors) -> "Bundle":
        return replace(self, anchors=anchors)

    def slim(self) -> "Bundle":
        """Without the population's responses: enough to estimate, not to extract again (small files)."""
        return replace(self, scores=None)

    def require_scores(self, path: Path | str | None = None) -> np.ndarray:
        if self.scores is None:
            where = f"{path}: " if path else ""
            raise UserError(f"{where}a slim bundle (no population responses); use the bundle from `merge3 fit`")
        return self.scores

    # -- files -----------------------------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_json()
        sibling = path.with_suffix(".npz")
        if self.scores is not None and self.scores.size > NPZ_THRESHOLD:
            tmp = sibling.with_name(sibling.name + ".tmp.npz")
            np.savez_compressed(tmp, scores=self.scores)
            tmp.replace(sibling)
            data["population"]["scores"] = {"npz": sibling.name, "sha256": sha256_of(sibling)}
        write_atomic(path, _compact_arrays(json.dumps(data, indent=1, allow_nan=False)) + "\n")
        return path

    def to_json(self) -> dict[str, Any]:
        anchors = None
        if self.anchors is not None:
            a = self.anchors
            anchors = {"method": a.method, "seed": a.seed, "size": a.size, "doc_ids": list(a.doc_ids),
                       "weights": _floats(a.weights), "lambda_gpirt": a.lambda_gpirt,
                       "delta_gmpirt": a.delta_gmpirt, "calibration": a.calibration}
            if a.content_keys is not None:
                anchors["content_keys"] = a.content_keys
            if a.rungs:
                anchors["rungs"] = [{"size": r.size, "weights": _floats(r.weights), "lambda_gpirt": r.lambda_gpirt,
                                     "delta_gmpirt": r.delta_gmpirt, "calibration": r.calibration} for r in a.rungs]
        items: dict[str, Any] = {"doc_ids": list(self.doc_ids), "doc_hashes": list(self.doc_hashes)}
        if self.content_keyed:  # optional fields only where used: fit bundles are written as before
            items = {"order": self.item_order, "doc_ids": list(self.doc_ids), "doc_hashes": None}
        if self.item_weights is not None:
            items["weights"] = _floats(self.item_weights)
        if self.item_groups is not None:
            items["groups"] = self.item_groups
        extra = {k: v for k, v in (("source", self.source), ("protocol", self.protocol)) if v}
        if self.graded is not None:
            g = self.graded
            extra["graded"] = {"response": "choice_prob", "alpha": _floats(g.items.alpha), "beta": _floats(g.items.beta),
                               "predict_alpha": _floats(g.predict.alpha), "predict_beta": _floats(g.predict.beta),
                               "theta": _floats(g.theta)}
        return {
            "format": FORMAT,
            "version": VERSION,
            "task": {"name": self.task, "version": self.task_version, "metric": self.metric,
                     "filter": self.filter, "n_items": self.n_items},
            "items": items,
            "irt": {"model": "2pl", "backend": self.backend, "dims": self.dims,
                    "alpha": _floats(self.items.alpha), "beta": _floats(self.items.beta)},
            "population": {"models": list(self.models), "splits": list(self.splits),
                           "theta": _floats(self.theta),
                           "scores": None if self.scores is None else _floats(self.scores),
                           "lineage": self.lineage},
            "diagnostics": self.diagnostics,
            "anchors": anchors,
            **extra,
        }

    @classmethod
    def load(cls, path: Path | str) -> "Bundle":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: no such bundle (create one with `merge3 fit`)") from None
        except IsADirectoryError:
            raise UserError(f"{path}: is a folder, not a bundle file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UserError(f"{path}: not a merge3 bundle (invalid JSON: {err})") from None
        from .bundle_schema import read_fields

        fields = read_fields(path, data)
        anchors = fields.pop("anchors")
        graded = fields.pop("graded")
        if graded is not None:
            fields["graded"] = GradedChannel(ItemParams(graded["alpha"], graded["beta"]),
                                             ItemParams(graded["predict_alpha"], graded["predict_beta"]), graded["theta"])
        if anchors is not None:
            anchors = Anchors(**{**anchors, "rungs": [Anchors(**rung) for rung in anchors["rungs"]]})
        return Bundle(**fields, anchors=anchors)


# -- helpers -------------------------------------------------------------------------------------
def _floats(arr: np.ndarray) -> list:
    """Arrays as JSON lists, NaN -> null, full precision (a reloaded bundle estimates identically)."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        return [None if math.isnan(x) else x for x in arr.tolist()]
    return [_floats(row) for row in arr]


_NUMBER_LIST = re.compile(r"\[\s*((?:-?[0-9.eE+-]+|null)(?:,\s*(?:-?[0-9.eE+-]+|null))*)\s*\]")


def _compact_arrays(text: str) -> str:
    """One line per innermost list of numbers: a readable file a third the size of fully indented JSON."""
    return _NUMBER_LIST.sub(lambda m: "[" + re.sub(r"\s+", "", m.group(1)) + "]", text)



