"""A fast in-process scorer used while designing recipes (lm-eval stays the judge of record)."""

from __future__ import annotations

import json
from collections import defaultdict

import torch

from .skills import Item
from .tokenizer import CharCodec


@torch.no_grad()
def greedy_answers(model, codec: CharCodec, items: list[Item]) -> list[str]:
    """Greedy decoding up to the newline, batched by prompt length (no padding needed)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[len(item.prompt)].append(i)
    answers = [""] * len(items)
    newline = codec.index["\n"]
    for idx in groups.values():
        ids = torch.tensor([codec.encode(items[i].prompt) for i in idx])
        steps = max(len(items[i].answer) for i in idx) + 1
        out = ids
        for _ in range(steps):
            nxt = model(input_ids=out).logits[:, -1].argmax(-1, keepdim=True)
            out = torch.cat([out, nxt], dim=1)
        gen = out[:, ids.shape[1] :].tolist()
        for row, i in enumerate(idx):
            seq = gen[row]
            answers[i] = codec.decode(seq[: seq.index(newline)] if newline in seq else seq)
    return answers


def exact_match(model, codec: CharCodec, items: list[Item]) -> list[int]:
    return [int(answer == item.answer) for answer, item in zip(greedy_answers(model, codec, items), items)]


@torch.no_grad()
def multiple_choice(model, codec: CharCodec, items: list[Item], choices: list[list[str]], labels: list[int]) -> list[int]:
    scores = []
    for item, opts, label in zip(items, choices, labels):
        p = codec.encode(item.prompt)
        seqs = [p + codec.encode(o) for o in opts]
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [codec.pad_id] * (width - len(s)) for s in seqs])
        logp = model(input_ids=ids).logits.log_softmax(-1)
        totals = []
        for r, (s, o) in enumerate(zip(seqs, opts)):
            tgt = torch.tensor(s[len(p):])
            totals.append(float(logp[r, len(p) - 1 : len(s) - 1].gather(-1, tgt[:, None]).sum()))
        scores.append(int(max(range(len(opts)), key=totals.__getitem__) == label))
    return scores


def task_docs(zoo, task: str, split: str = "test") -> tuple[list[dict], list[Item]]:
    """A toy task's documents of one split, and the same as Items."""
    docs = [json.loads(line) for line in (zoo.tasks_dir / task / f"{split}.jsonl").read_text().splitlines()]
    return docs, [Item(d["prompt"], d["answer"], d["level"]) for d in docs]


def score_model(model, zoo, task: str) -> float:
    """Accuracy of a live model on all test items of a toy task (equal to lm-eval's, see the zoo tests)."""
    docs, items = task_docs(zoo, task)
    codec = CharCodec()
    if "choices" in docs[0]:
        scores = multiple_choice(model, codec, items, [d["choices"] for d in docs], [d["label"] for d in docs])
    else:
        scores = exact_match(model, codec, items)
    return sum(scores) / len(scores)
