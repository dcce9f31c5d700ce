"""Content keys: how an item is recognised across datasets, by what it says rather than where it sits.

tinyBenchmarks' parameters are in the Open LLM Leaderboard's "details" row order, which is not
lm-eval's doc_id order (nor the order of a translated copy of the dataset). An anchor is therefore
named by a key computed from its content, and found among lm-eval's documents by the same key.

`KEYS` is the one list of key families (a family: the benchmarks whose documents share fields):

    family      fields (tiebreak)             datasets it matches
    arc         id                            ai2_arc, tinyAI2_arc, okapi's m_arc translations (keep `id`)
    hellaswag   ind + ctx                     hellaswag, tinyHellaswag
    winogrande  sentence + option1 + option2  winogrande, tinyWinogrande
    gsm8k       question (answer)             gsm8k, tinyGSM8k
    truthfulqa  question                      truthful_qa, tinyTruthfulQA
    mmlu        subject + question (choices)  cais/mmlu (config all), tinyMMLU

Keys compare text in Unicode NFC with runs of whitespace collapsed and ends stripped; a whole float
compares as the integer (a parquet column of ids read as 4.0 is 4); lists compare item by item. A
document without one of the family's fields cannot be keyed (e.g. a translation that kept no source
id): `MissingField`.

Where a key is shared by several documents (MMLU repeats some questions within a subject, e.g.
"Which of the following is true?", with other choices), the family's `tiebreak` fields (MMLU: the
choices; GSM8K: the answer), recorded per anchor at import, pick the one document whose tiebreak
matches too; if none or several do, the anchor is ambiguous and refused. Nothing is ever decided by
position.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import UserError


class MissingField(KeyError):
    """A document lacks a field its key family needs."""

    def __init__(self, family: str, field: str):
        self.family, self.field = family, field
        super().__init__(field)


@dataclass(frozen=True)
class KeyFamily:
    name: str
    fields: tuple[str, ...]
    description: str
    tiebreak: tuple[str, ...] = ()  # fields that tell apart documents sharing a key

    def key(self, doc: Mapping) -> str:
        return self._join(doc, self.fields)

    def tiebreak_key(self, doc: Mapping) -> str | None:
        """The tiebreak fields' key, or None where the family has none or the document lacks one."""
        if not self.tiebreak:
            return None
        try:
            return self._join(doc, self.tiebreak)
        except MissingField:
            return None

    def _join(self, doc: Mapping, fields: tuple[str, ...]) -> str:
        parts = []
        for field in fields:
            if field not in doc or doc[field] is None:
                raise MissingField(self.name, field)
            parts.append(f"{field}={_text(doc[field])}")
        return "|".join(parts)


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ; ".join(_text(v) for v in value) + "]"
    return " ".join(unicodedata.normalize("NFC", str(value)).split())


KEYS: dict[str, KeyFamily] = {f.name: f for f in (
    KeyFamily("arc", ("id",), "ARC by its question id (kept by okapi's translations)"),
    KeyFamily("hellaswag", ("ind", "ctx"), "HellaSwag by its source index and context"),
    KeyFamily("winogrande", ("sentence", "option1", "option2"), "Winogrande by sentence and options"),
    KeyFamily("gsm8k", ("question",), "GSM8K by question", tiebreak=("answer",)),
    KeyFamily("truthfulqa", ("question",), "TruthfulQA by question"),
    KeyFamily("mmlu", ("subject", "question"), "MMLU by subject and question", tiebreak=("choices",)),
)}


def family(name: str) -> KeyFamily:
    if name not in KEYS:
        raise UserError(f"unknown content key family {name!r}; known: {', '.join(KEYS)}")
    return KEYS[name]


@dataclass
class Match:
    """Where each key was found among the documents: `index[k]` the document of key k, or None;
    `ambiguous`: keys found in more than one document."""
    index: list[int | None]
    ambiguous: dict[str, list[int]]

    @property
    def unmatched(self) -> list[int]:
        return [k for k, i in enumerate(self.index) if i is None]


def match(family_name: str, keys: Sequence[str], docs: Sequence[Mapping],
          tiebreak: Sequence[str | None] | None = None) -> Match:
    """Find each key's document among `docs` (MissingField if the documents cannot be keyed); a key
    found in several documents is settled by the anchor's `tiebreak` key where exactly one agrees."""
    fam = family(family_name)
    wanted: dict[str, list[int]] = {k: [] for k in keys}
    for i, doc in enumerate(docs):
        key = fam.key(doc)
        if key in wanted:
            wanted[key].append(i)
    index: list[int | None] = []
    ambiguous: dict[str, list[int]] = {}
    for j, k in enumerate(keys):
        found = wanted[k]
        if len(found) > 1 and tiebreak is not None and tiebreak[j] is not None:
            agree = [i for i in found if fam.tiebreak_key(docs[i]) == tiebreak[j]]
            found = agree if len(agree) == 1 else found
        index.append(found[0] if len(found) == 1 else None)
        if len(found) > 1:
            ambiguous[k] = found
    taken = [i for i in index if i is not None]
    if len(set(taken)) != len(taken):  # two anchors on one document: the keys do not tell them apart
        for j, i in enumerate(index):
            if i is not None and taken.count(i) > 1:
                ambiguous[keys[j]] = [i]
                index[j] = None
    return Match(index, ambiguous)
