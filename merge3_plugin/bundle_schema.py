"""The bundle file's schema: pydantic models of each section, the checks across sections, and
errors worded "{path}: field 'a.b' <what is wrong>". `Bundle.load` reads files through `read_fields`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .bundle_format import FORMAT, SPLITS, VERSION
from .content_keys import KEYS
from .errors import UserError
from .files import sha256_of
from .irt import ItemParams


def read_fields(path: Path, data: Any) -> dict:
    """A parsed bundle file, every field checked, as the Bundle's fields (its anchors, and their rungs,
    as the Anchors' fields): `Bundle.load` builds the objects. Errors name the file and the field."""
    return _bundle(path, _validate(path, data))


# -- the file's schema ---------------------------------------------------------------------------
# Types, required fields and the rules of one section live in these models; what needs several
# sections at once (array shapes against items, models and dims; anchors among the items) and the
# .npz sibling are checked after validation, in `_bundle`. Unknown keys are ignored, as always.

def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _numbers(ndim: int) -> PlainValidator:
    """A JSON array of numbers, ndim deep; null reads as NaN (a response that is missing)."""
    def convert(value: Any) -> np.ndarray:
        rows = value if ndim == 2 else [value]
        if not (isinstance(value, list) and all(isinstance(r, list) for r in rows)
                and len({len(r) for r in rows}) <= 1):
            raise ValueError(f"must be a {ndim}-d array of numbers")
        try:
            arr = np.array([[_num(x) for x in row] for row in rows], dtype=np.float64)
        except TypeError:
            raise ValueError(f"must be a {ndim}-d array of numbers") from None
        return arr.reshape(len(rows), len(rows[0]) if rows else 0) if ndim == 2 else arr[0]
    return PlainValidator(convert)


def _no_missing(arr: np.ndarray) -> np.ndarray:
    if np.isnan(arr).any():
        raise ValueError("contains null/NaN")
    return arr


_Vector = Annotated[np.ndarray, _numbers(1), AfterValidator(_no_missing)]
_Matrix = Annotated[np.ndarray, _numbers(2), AfterValidator(_no_missing)]
_Responses = Annotated[np.ndarray, _numbers(2)]  # null: that model has no answer on that item


class _Section(BaseModel):
    model_config = ConfigDict(strict=True)  # a JSON string is not a number, nor true an integer


class _Header(_Section):
    """Read first, so that a file of another version reports that alone."""
    format: Literal["merge3-irt-bundle"]
    version: int

    @field_validator("version")
    @classmethod
    def _readable(cls, version: int) -> int:
        if version != VERSION:
            raise ValueError(f"is {version}; this merge3 reads version {VERSION}")
        return version


class _Task(_Section):
    name: str
    version: Annotated[str | None, BeforeValidator(_text)] = None  # lm-eval versions may be numbers
    metric: str
    filter: str
    n_items: int | None = None  # redundant with items.doc_ids; must agree when given


class _Groups(_Section):
    """items.groups: each item's group (MMLU's subject), as an index into names."""
    names: list[str]
    of_item: list[int]


class _Items(_Section):
    # lm-eval (a fit bundle): doc_ids are lm-eval's, with their doc_hashes. open-llm-leaderboard (an
    # imported bundle): doc_ids number the items 0..N-1 in that order and doc_hashes is null.
    order: Literal["lm-eval", "open-llm-leaderboard"] = "lm-eval"
    doc_ids: list[int]
    doc_hashes: list[str] | None = None  # required when order is lm-eval (checked in _bundle)
    weights: _Vector | None = None  # per item (e.g. MMLU's subject balance); absent: all 1
    groups: _Groups | None = None

    @field_validator("doc_ids")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        if len(set(ids)) != len(ids):
            raise ValueError("must be distinct integers")
        if not ids:
            raise ValueError("is empty")
        return ids

    @field_validator("doc_hashes")
    @classmethod
    def _one_per_item(cls, hashes: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if hashes is None:
            return hashes
        n = len(info.data.get("doc_ids", hashes))  # doc_ids absent: already reported
        if len(hashes) != n:
            raise ValueError(f"must be {n} strings, one per doc_id")
        return hashes


class _Irt(_Section):
    model: Literal["2pl"] = "2pl"
    backend: str
    dims: int = Field(ge=1, le=15)
    alpha: _Matrix  # items x dims
    beta: _Vector  # items


class _Graded(_Section):
    """graded: the graded-response channel of a multiple-choice task (graded.py)."""
    response: Literal["choice_prob"] = "choice_prob"
    alpha: _Matrix  # items x dims, measuring the ability from graded responses
    beta: _Vector
    predict_alpha: _Matrix  # items x dims, right/wrong at the graded ability
    predict_beta: _Vector
    theta: _Matrix  # population models x dims, on the graded scale


class _NpzFile(_Section):
    """population.scores of a large population: a sibling .npz, named and hashed."""
    npz: str
    sha256: str | None = None

    @field_validator("npz")
    @classmethod
    def _next_to_bundle(cls, name: str) -> str:
        if Path(name).name != name:
            raise ValueError("must be a file name next to the bundle")
        return name


def _score_form(value: Any) -> str:
    return "npz-file" if isinstance(value, dict) else "inline"


# population.scores takes one of two forms, told apart by type. pydantic puts the form's tag in an
# error's location; the file has no such field, so `_describe` drops it.
_SCORE_FORMS = ("inline", "npz-file")
_Scores = Annotated[Union[Annotated[_Responses, Tag("inline")], Annotated[_NpzFile, Tag("npz-file")]],
                    Discriminator(_score_form)]


class _Population(_Section):
    models: list[str]
    splits: list[str]  # per model
    theta: _Matrix  # models x dims
    scores: _Scores | None = None  # models x items; null in a slim bundle
    lineage: dict[str, list[str]] | None = None  # merged model -> its endpoints

    @field_validator("splits")
    @classmethod
    def _one_per_model(cls, splits: list[str], info: ValidationInfo) -> list[str]:
        m = len(info.data.get("models", splits))
        if len(splits) != m or any(s not in SPLITS for s in splits):
            raise ValueError(f"must be {m} entries, each one of {SPLITS}")
        return splits


class _Rung(_Section):
    size: int = Field(ge=1)
    weights: _Vector
    lambda_gpirt: float = Field(ge=0, le=1)
    delta_gmpirt: float = Field(ge=0, le=1)
    calibration: dict[str, Any] | None = None

    @field_validator("weights")
    @classmethod
    def _a_distribution(cls, weights: np.ndarray, info: ValidationInfo) -> np.ndarray:
        k = info.data.get("size", len(weights))
        if len(weights) != k:
            raise ValueError(f"has {len(weights)} entries, expected {k} (one per anchor of the rung)")
        if np.any(weights < 0) or not math.isclose(weights.sum(), 1.0, rel_tol=1e-6):
            raise ValueError("must be non-negative and sum to 1")
        return weights


class _ContentKeys(_Section):
    family: str  # a content_keys.KEYS name
    keys: list[str]  # one per anchor
    tiebreak: list[str | None] | None = None  # one per anchor: the family's tiebreak fields (content_keys.py)


class _Anchors(_Section):
    method: str
    seed: int
    size: int | None = None  # redundant with doc_ids; must agree when given
    doc_ids: list[int]
    weights: _Vector
    lambda_gpirt: float = Field(ge=0, le=1)
    delta_gmpirt: float = Field(ge=0, le=1)
    calibration: dict[str, Any] | None = None
    rungs: list[_Rung] | None = None
    content_keys: _ContentKeys | None = None

    @field_validator("doc_ids")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        if not ids or len(set(ids)) != len(ids):
            raise ValueError("must be a non-empty list of distinct integers")
        return ids

    @field_validator("weights")
    @classmethod
    def _a_distribution(cls, weights: np.ndarray, info: ValidationInfo) -> np.ndarray:
        k = len(info.data.get("doc_ids", weights))
        if len(weights) != k:
            raise ValueError(f"has {len(weights)} entries, expected {k} (one per anchor)")
        if np.any(weights < 0) or not math.isclose(weights.sum(), 1.0, rel_tol=1e-6):
            raise ValueError("must be non-negative and sum to 1")
        return weights


class _File(_Header):
    task: _Task
    items: _Items
    irt: _Irt
    population: _Population
    diagnostics: dict[str, Any] | None = None
    anchors: _Anchors | None = None
    source: dict[str, Any] | None = None  # imported bundles: the file their parameters came from
    protocol: dict[str, Any] | None = None  # imported bundles: the evaluation protocol assumed
    graded: _Graded | None = None  # `merge3 fit --graded`: graded responses of a multiple-choice task


# -- loading -------------------------------------------------------------------------------------
def _validate(path: Path, data: Any) -> _File:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not a merge3 bundle (field 'format' should be {FORMAT!r})")
    try:
        _Header.model_validate(data)  # another version: say that alone, not every field it lacks
        return _File.model_validate(data)
    except ValidationError as err:
        raise UserError(_describe(path, err)) from None


def _bundle(path: Path, f: _File) -> dict:
    """The Bundle's fields, once the sections agree with each other: arrays sized by items, models and dims."""
    pop = f.population
    n, m, dims = len(f.items.doc_ids), len(pop.models), f.irt.dims
    if f.task.n_items is not None and f.task.n_items != n:
        raise _field_error(path, "task.n_items", f"is {f.task.n_items}, but items.doc_ids has {n}")
    _check_items(path, f.items)
    return dict(
        task=f.task.name, task_version=f.task.version, metric=f.task.metric, filter=f.task.filter,
        doc_ids=f.items.doc_ids, doc_hashes=f.items.doc_hashes or [],
        items=ItemParams(_shaped(path, "irt.alpha", f.irt.alpha, (n, dims)),
                         _shaped(path, "irt.beta", f.irt.beta, (n,))),
        backend=f.irt.backend, models=pop.models, splits=pop.splits,
        theta=_shaped(path, "population.theta", pop.theta, (m, dims)),
        scores=_scores(path, pop.scores, (m, n)),
        lineage=pop.lineage or {}, diagnostics=f.diagnostics or {},
        anchors=None if f.anchors is None else _anchors(path, f.anchors, set(f.items.doc_ids)),
        item_order=f.items.order, item_weights=f.items.weights,
        item_groups=None if f.items.groups is None else f.items.groups.model_dump(),
        source=f.source or {}, protocol=f.protocol or {},
        graded=None if f.graded is None else _graded(path, f.graded, n, m, dims),
    )


def _graded(path: Path, g: _Graded, n: int, m: int, dims: int) -> dict:
    return {"alpha": _shaped(path, "graded.alpha", g.alpha, (n, dims)), "beta": _shaped(path, "graded.beta", g.beta, (n,)),
            "predict_alpha": _shaped(path, "graded.predict_alpha", g.predict_alpha, (n, dims)),
            "predict_beta": _shaped(path, "graded.predict_beta", g.predict_beta, (n,)),
            "theta": _shaped(path, "graded.theta", g.theta, (m, dims))}


def _check_items(path: Path, items: _Items) -> None:
    """What the items section's fields imply for each other: hashes where lm-eval numbers the items,
    one weight and one group per item."""
    n = len(items.doc_ids)
    if items.order == "lm-eval" and items.doc_hashes is None:
        raise _field_error(path, "items.doc_hashes", "is missing (one per doc_id)")
    if items.order != "lm-eval" and items.doc_ids != list(range(n)):
        raise _field_error(path, "items.doc_ids", f"must be 0..{n - 1}: positions in the {items.order} order")
    if items.weights is not None:
        _shaped(path, "items.weights", items.weights, (n,))
        if np.any(items.weights < 0):
            raise _field_error(path, "items.weights", "must be non-negative")
    if items.groups is not None:
        g = items.groups
        if len(g.of_item) != n or any(not 0 <= i < len(g.names) for i in g.of_item):
            raise _field_error(path, "items.groups.of_item", f"must be {n} indices into items.groups.names")


def _shaped(path: Path, name: str, arr: np.ndarray, want: tuple[int, ...]) -> np.ndarray:
    """arr, if its shape is the one the other sections imply."""
    if arr.size == 0 and math.prod(want) == 0:  # an empty list has no rows to count columns in
        return arr.reshape(want)
    for axis, (have, expected) in enumerate(zip(arr.shape, want)):
        if have != expected:
            raise _field_error(path, name, f"has {have} entries along axis {axis}, expected {expected}")
    return arr


def _scores(path: Path, raw: np.ndarray | _NpzFile | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The response matrix, inline or from the .npz sibling; None in a slim bundle."""
    if raw is None:
        return None
    if isinstance(raw, _NpzFile):
        scores = _load_npz(path, raw)
        if scores.shape != shape:
            raise _field_error(path, "population.scores", f"in the .npz has shape {scores.shape}, expected {shape}")
    else:
        scores = _shaped(path, "population.scores", raw, shape)
    seen = scores[~np.isnan(scores)]
    if np.any((seen < 0) | (seen > 1)):
        raise _field_error(path, "population.scores", "must hold scores in [0, 1] or null")
    return scores


def _anchors(path: Path, a: _Anchors, known: set[int]) -> dict:
    unknown = sorted(set(a.doc_ids) - known)
    if unknown:
        raise _field_error(path, "anchors.doc_ids", f"names items that are not in items.doc_ids: {unknown[:5]}")
    if a.size is not None and a.size != len(a.doc_ids):
        raise _field_error(path, "anchors.size", f"is {a.size}, but anchors.doc_ids has {len(a.doc_ids)}")
    rungs = []
    for i, r in enumerate(a.rungs or []):
        if r.size >= len(a.doc_ids) or (rungs and r.size <= len(rungs[-1]["doc_ids"])):
            raise _field_error(path, f"anchors.rungs.{i}.size", f"is {r.size}: rungs grow, smallest first, and stay "
                                                                f"below the {len(a.doc_ids)} anchors")
        rungs.append(dict(method=a.method, seed=a.seed, doc_ids=a.doc_ids[:r.size], weights=r.weights,
                          lambda_gpirt=r.lambda_gpirt, delta_gmpirt=r.delta_gmpirt,
                          calibration=r.calibration or {}))
    keys = None
    if a.content_keys is not None:
        if a.content_keys.family not in KEYS:
            raise _field_error(path, "anchors.content_keys.family", f"is {a.content_keys.family!r}; expected one of "
                                                                    f"{', '.join(KEYS)}")
        for name in ("keys", "tiebreak"):
            given = getattr(a.content_keys, name)
            if given is not None and len(given) != len(a.doc_ids):
                raise _field_error(path, f"anchors.content_keys.{name}", f"has {len(given)} entries, expected "
                                                                         f"{len(a.doc_ids)} (one per anchor)")
        keys = a.content_keys.model_dump(exclude_none=True)
    return dict(method=a.method, seed=a.seed, doc_ids=a.doc_ids, weights=a.weights,
                lambda_gpirt=a.lambda_gpirt, delta_gmpirt=a.delta_gmpirt, calibration=a.calibration or {},
                rungs=rungs, content_keys=keys)


def _load_npz(path: Path, ref: _NpzFile) -> np.ndarray:
    sibling = path.parent / ref.npz
    if not sibling.is_file():
        raise _field_error(path, "population.scores.npz", f"names {sibling}, which does not exist")
    if ref.sha256 is not None and sha256_of(sibling) != ref.sha256:
        raise _field_error(path, "population.scores.sha256", f"does not match {sibling} (file changed or corrupt)")
    try:
        with np.load(sibling, allow_pickle=False) as npz:
            return np.asarray(npz["scores"], dtype=np.float64)
    except (ValueError, KeyError, OSError) as err:
        raise UserError(f"{sibling}: cannot read the response matrix ({err})") from None


# -- errors --------------------------------------------------------------------------------------
_TYPE_NAMES = {"string_type": "a string", "int_type": "an integer", "float_type": "a number",
               "list_type": "a list", "dict_type": "an object", "model_type": "an object"}
_EXPECTED = {"greater_than_equal": "at least {ge}", "less_than_equal": "at most {le}", "literal_error": "{expected}"}
_MAX_ERRORS = 10  # a wrong array can fail in every cell; the first few say enough


def _field_error(path: Path, name: str, what: str) -> UserError:
    return UserError(f"{path}: field '{name}' {what}")


def _describe(path: Path, err: ValidationError) -> str:
    """pydantic's errors as lines "{path}: field 'a.b' <what is wrong>", in the words of this file."""
    errors = err.errors()
    lines = [str(_field_error(path, _field_name(e["loc"]), _what(e))) for e in errors[:_MAX_ERRORS]]
    if len(errors) > _MAX_ERRORS:
        lines.append(f"{path}: and {len(errors) - _MAX_ERRORS} more errors")
    return "\n".join(lines)


def _field_name(loc: tuple) -> str:
    return ".".join(str(part) for part in loc if part not in _SCORE_FORMS)


def _what(e: dict) -> str:
    kind, value = e["type"], e.get("input")
    if kind == "missing" or (value is None and e["loc"] and isinstance(e["loc"][-1], str)):
        return "is missing"  # null where a value is required counts as absent, as it always has
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}, got {_shown(value)}"
    if kind == "value_error":  # our validators' own words
        return e["msg"].removeprefix("Value error, ")
    if kind in _EXPECTED:
        return f"is {_shown(value)}; expected {_EXPECTED[kind].format(**e['ctx'])}"
    return f"is {_shown(value)}; {e['msg'].replace('Input should be', 'expected')}"


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."



def _num(x: Any) -> float:
    if x is None:
        return math.nan
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(x)
    return float(x)

