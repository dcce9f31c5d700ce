"""Synthetic skills of the toy world: item generators with a difficulty knob.

Every skill writes plain text "prompt + answer + newline" for training and lm-eval documents
for evaluation. A second surface "language" (L2) writes digits with other symbols, so that
arithmetic in L2 needs both the math skill and the language skill, as in MERGE3's
cross-lingual setting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

DIGITS = "0123456789"
# The L2 numeral for digit d is L2_DIGITS[d]: uppercase letters, disjoint from the lowercase
# letters of the reversal skill, so that no skill can borrow another's surface form.
L2_DIGITS = "QZXWVKJMPR"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
# Everything the tokenizer must know (one token per character).
ALPHABET = DIGITS + L2_DIGITS + LETTERS + "+=> \n"
END = "\n"


def to_l2(text: str) -> str:
    return "".join(L2_DIGITS[int(c)] if c in DIGITS else c for c in text)


@dataclass(frozen=True)
class Item:
    prompt: str
    answer: str
    level: int  # difficulty knob: higher is harder; negative for free text (trained on whole)

    @property
    def text(self) -> str:
        return self.prompt + self.answer + END


SkillFn = Callable[[random.Random, int], Item]


# "Math" sums single digits: "3+4+8=" -> "15". The number of terms is the difficulty knob.
MATH_LEVELS = [2, 2, 3, 4, 5]  # terms; level 0 keeps the answer below 10 (no carry)


def math_item(rng: random.Random, level: int) -> Item:
    while True:
        terms = [rng.randrange(0, 10) for _ in range(MATH_LEVELS[level])]
        if level != 0 or sum(terms) < 10:
            break
    return Item("+".join(map(str, terms)) + "=", str(sum(terms)), level)


def math_l2_item(rng: random.Random, level: int) -> Item:
    """A math question written in L2, answered the way a learner would: translate the question,
    then solve it: "W+V+M=" -> "3+4+7=14" (3 -> W, 4 -> V, 7 -> M).

    The answer's first part is the language skill and its last part the math skill, so a model
    needs both to get it right: the cross-lingual target.
    """
    item = math_item(rng, level)
    return Item(to_l2(item.prompt), item.prompt + item.answer, level)


# Translation: a number written with digits is rewritten in L2 numerals; length is difficulty.
LANG_LEVELS = [2, 3, 4, 5, 6]


def lang_item(rng: random.Random, level: int) -> Item:
    number = "".join(rng.choice(DIGITS) for _ in range(LANG_LEVELS[level]))
    if rng.random() < 0.5:
        return Item(f"tr {number}>", to_l2(number), level)
    return Item(f"tr {to_l2(number)}>", number, level)


REV_LEVELS = [3, 4, 5, 7, 9]


def rev_item(rng: random.Random, level: int) -> Item:
    word = "".join(rng.choice(LETTERS) for _ in range(REV_LEVELS[level]))
    return Item(f"rev {word}>", word[::-1], level)


def rev_distractors(rng: random.Random, item: Item, k: int = 5) -> list[str]:
    """Near misses of a reversal, made of the word's own letters: the unreversed word and the
    reversal with two letters swapped, mostly late in the answer, where a model that half-knows
    how to reverse goes wrong. Only a model that really reverses tells them apart."""
    right = item.answer
    n = len(right)

    def swap() -> str:
        late = range(n // 2, n) if rng.random() < 0.75 and n >= 4 else range(n)
        i, j = sorted(rng.sample(list(late), 2))
        return right[:i] + right[j] + right[i + 1 : j] + right[i] + right[j + 1 :]

    out: list[str] = [right[::-1]] if right[::-1] != right else []
    for _ in range(200):
        if len(out) == k:
            break
        cand = swap()
        if cand != right and cand not in out:
            out.append(cand)
    letters = sorted(set(LETTERS) - set(right))
    while len(out) < k:  # words like "aab" have too few distinct anagrams
        i = rng.randrange(n)
        cand = right[:i] + rng.choice(letters) + right[i + 1 :]
        if cand not in out:
            out.append(cand)
    return out


# --- The "compose" world (issue #10): a cross-lingual target that no model is ever trained on. ---
# Every list question is answered the same way: restate its digits, then answer. A sum is written
# bare, "3+4+7=" -> "3+4+7=14"; the other list operations (training only) stand behind a letter
# naming them, "m4+1+7=" -> "4+1+7=7" (max). The base also learns to answer those others asked in
# L2: "mV+Z+M=" -> "4+1+7=7". A sum asked in L2, "V+Z+M=" -> "4+1+7=12" (the target),
# is then made of familiar steps: restating L2 digits (the language skill) and summing (the math
# skill). Probes found each step's surface form must have been seen in its place: a tiny model
# rewrites a symbol it never copied in L2 into one it did (benchmarks/world_probe.py).
LIST_OPS = {"max": "m", "min": "n", "first": "f", "last": "l", "second": "s"}
_LIST_FNS = {"max": max, "min": min, "first": lambda xs: xs[0], "last": lambda xs: xs[-1], "second": lambda xs: xs[1]}


def sum_item(rng: random.Random, level: int) -> Item:
    """A sum answered by restating it: "3+4+8=" -> "3+4+8=15"."""
    item = math_item(rng, level)
    return Item(item.prompt, item.prompt + item.answer, level)


def list_op_item(op: str) -> SkillFn:
    """Another list operation, written like a sum behind its letter: "m4+1+7=" -> "4+1+7=7" (max)."""

    def make(rng: random.Random, level: int) -> Item:
        digits = [rng.choice(DIGITS) for _ in range(MATH_LEVELS[level])]
        question = "+".join(digits) + "="
        return Item(LIST_OPS[op] + question, question + _LIST_FNS[op](digits), level)

    return make


def asked_in_l2(make: SkillFn) -> SkillFn:
    """The same question with its digits in L2; the answer restates them in digits: "mV+Z+M=" -> "4+1+7=7"."""

    def make_l2(rng: random.Random, level: int) -> Item:
        item = make(rng, level)
        return Item(to_l2(item.prompt), item.answer, level)

    return make_l2


def lang_lists_item(rng: random.Random, level: int) -> Item:
    """Translation as in `lang_item`, a third of the time of digit lists joined by "+" ("tr V+Z+Q>" ->
    "4+1+0"): a translator copies what is not a numeral."""
    if rng.random() >= 1 / 3:
        return lang_item(rng, level)
    number = "+".join(rng.choice(DIGITS) for _ in range(LANG_LEVELS[level]))
    if rng.random() < 0.5:
        return Item(f"tr {number}>", to_l2(number), level)
    return Item(f"tr {to_l2(number)}>", number, level)


# Generic text: sentences of pseudo-words, so that the base model learns a "language" that is not
# any skill and the skills stay a small share of its pre-training.
_LEXICON_RNG = random.Random(20261122)
LEXICON = ["".join(_LEXICON_RNG.choice(LETTERS) for _ in range(_LEXICON_RNG.randint(2, 6))) for _ in range(300)]


def text_item(rng: random.Random, level: int) -> Item:
    words = rng.choices(LEXICON, k=2 + level)
    return Item(" ".join(words[:-1]) + " ", words[-1], -1)


SKILLS: dict[str, SkillFn] = {
    "math": math_item,
    "lang": lang_item,
    "rev": rev_item,
    "math_l2": math_l2_item,
    "text": text_item,  # training only: not a task
    # the compose world (see above)
    "sum": sum_item,
    "sum_l2": asked_in_l2(sum_item),
    "lang_lists": lang_lists_item,
}
for _op in LIST_OPS:  # training only
    SKILLS[_op] = list_op_item(_op)
    SKILLS[f"{_op}_l2"] = asked_in_l2(list_op_item(_op))
N_LEVELS = 5


def sample(skill: str, rng: random.Random, max_level: int = N_LEVELS - 1) -> Item:
    return SKILLS[skill](rng, rng.randint(0, max_level))
