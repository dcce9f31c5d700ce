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


# Generic text: sentences of pseudo-words, so that the base model learns a "language" that is not
# any skill and the skills stay a small share of its pre-training.
_LEXICON_RNG = random.Random(20261122)
LEXICON = ["".join(_LEXICON_RNG.choice(LETTERS) for _ in range(_LEXICON_RNG.randint(2, 6))) for _ in range(300)]


def text_item(rng: random.Random, level: int) -> Item:
    words = rng.choices(LEXICON, k=2 + level)
    return Item(" ".join(words[:-1]) + " ", words[-1], -1)


SkillFn = Callable[[random.Random, int], Item]

SKILLS: dict[str, SkillFn] = {
    "math": math_item,
    "lang": lang_item,
    "rev": rev_item,
    "math_l2": math_l2_item,
    "text": text_item,  # training only: not a task
}
N_LEVELS = 5


def sample(skill: str, rng: random.Random, max_level: int = N_LEVELS - 1) -> Item:
    return SKILLS[skill](rng, rng.randint(0, max_level))
