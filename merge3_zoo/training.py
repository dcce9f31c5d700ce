"""Training of the toy world's tiny Llama models (CPU, deterministic for a seed)."""

from __future__ import annotations

import random

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from .recipe import ModelShape
from .skills import END, N_LEVELS, Item, sample
from .tokenizer import CharCodec


def new_model(shape: ModelShape, codec: CharCodec, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=codec.vocab_size,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=False,
        pad_token_id=codec.pad_id,
        bos_token_id=codec.bos_id,
        eos_token_id=codec.eos_id,
    )
    return LlamaForCausalLM(config)


def _batch(codec, items: list[Item]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded batch; the loss covers answers only (prompts of skills are random noise).
    Prompt and answer are encoded apart, as lm-eval encodes context and continuation (with a
    character codec this is the same as encoding the whole text)."""
    prompts = [codec.encode(item.prompt) for item in items]
    encoded = [p + codec.encode(item.answer + END) for p, item in zip(prompts, items)]
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), codec.pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (item, prompt, e) in enumerate(zip(items, prompts, encoded)):
        ids[row, : len(e)] = torch.tensor(e)
        mask[row, : len(e)] = 1
        start = 0 if item.level < 0 else len(prompt)
        labels[row, start : len(e)] = ids[row, start : len(e)]
    return ids, mask, labels


def _draw(rng: random.Random, skills: list[str], weights: list[float], max_levels: dict[str, int]) -> Item:
    skill = rng.choices(skills, weights)[0]
    return sample(skill, rng, max_levels.get(skill, N_LEVELS - 1))


def train(
    model: LlamaForCausalLM,
    codec: CharCodec,
    mixture: dict[str, float],
    steps: int,
    lr: float,
    seed: int,
    batch_size: int = 64,
    max_levels: dict[str, int] | None = None,
    warmup: int = 20,
    on_step=None,
    trainable_layers: int = 0,
) -> LlamaForCausalLM:
    """Causal-LM training on a skill mixture; the data stream depends only on `seed`.
    `trainable_layers`: train only the last N decoder layers (a short fine-tune of a real model on
    a CPU: backpropagation then stops there), else every weight."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    skills = list(mixture)
    weights = [mixture[s] for s in skills]
    params = list(model.parameters())
    if trainable_layers:
        for p in params:
            p.requires_grad_(False)
        params = [p for layer in model.model.layers[-trainable_layers:] for p in layer.parameters()]
        for p in params:
            p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * max(0.1, 1 - i / max(steps, 1))
    )
    model.train()
    for step in range(steps):
        items = [_draw(rng, skills, weights, max_levels or {}) for _ in range(batch_size)]
        ids, mask, labels = _batch(codec, items)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if on_step is not None:
            on_step(step, loss.item())
    model.eval()
    return model
