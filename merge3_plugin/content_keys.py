"""Content keys: how an item is recognised across datasets, by what it says rather than where it sits.

tinyBenchmarks' parameters are in the Open LLM Leaderboard's "details" row order, which is not
lm-eval's doc_id order (nor the order of a translated copy of the dataset). An anchor is therefore
named by a key computed from its content, and found among lm-eval's documents by the same key.

`KEYS` is the one list of key families (a family: the benchmarks whose documents share fields):

    family      fields                      datasets it matches
    arc         id                          ai2_arc, tinyAI2_arc, okapi's m_arc translations (keep `id`)
    hellaswag   ind + ctx                   hellaswag, tinyHellaswag
    winogrande  sentence + option1 + option2  winogrande, tinyWinogrande
    gsm8k       question                    gsm8k, tinyGSM8k
    truthfulqa  question                    truthful_qa, tinyTruthfulQA
    mmlu        subject + question          cais/mmlu (config all), tinyMMLU

Keys compare text with runs of whitespace collapsed and ends stripped. A document without one of
the family's fields cannot be keyed (e.g. a translation that kept no source id): `MissingField`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


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

    def key(self, doc: Mapping) -> str:
        parts = []
        for field in self.fields:
            if field not in doc or doc[field] is None:
                raise MissingField(self.name, field)
            parts.append(f"{field}={_text(doc[field])}")
        return "|".join(parts)


def _text(value) -> str:
    return " ".join(str(value).split())


KEYS: dict[str, KeyFamily] = {f.name: f for f in (
    KeyFamily("arc", ("id",), "ARC by its question id (kept by okapi's translations)"),
    KeyFamily("hellaswag", ("ind", "ctx"), "HellaSwag by its source index and context"),
    KeyFamily("winogrande", ("sentence", "option1", "option2"), "Winogrande by sentence and options"),
    KeyFamily("gsm8k", ("question",), "GSM8K by question"),
    KeyFamily("truthfulqa", ("question",), "TruthfulQA by question"),
    KeyFamily("mmlu", ("subject", "question"), "MMLU by subject and question"),
)}


def family(name: str) -> KeyFamily:
    from .errors import UserError

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


def match(family_name: str, keys: Sequence[str], docs: Sequence[Mapping]) -> Match:
    """Find each key's document among `docs` (MissingField if the documents cannot be keyed)."""
    fam = family(family_name)
    wanted = {k: [] for k in keys}
    for i, doc in enumerate(docs):
        key = fam.key(doc)
        if key in wanted:
            wanted[key].append(i)
    index = [wanted[k][0] if len(wanted[k]) == 1 else None for k in keys]
    ambiguous = {k: v for k, v in wanted.items() if len(v) > 1}
    return Match(index, ambiguous)
