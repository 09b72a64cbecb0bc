"""Batched sampling that prefills each distinct prompt once and decodes its samples from a shared KV cache.

    new_ids = sample_shared(model, prompts, SamplingSettings(64, 1.0, eos_id, pad_id), seed=0)

A GRPO group is G copies of one prompt. `model.generate` would prefill every copy; here the
distinct prompts are prefilled once (left-padded, one forward), the cache rows are then
repeated to one per sample (`Cache.reorder_cache`), and every step decodes one token for all
samples. Rows that have ended leave the batch, so late steps run on the live rows only.

Sampling: logits / temperature, softmax, one multinomial draw per row from a generator seeded
with `seed` (temperature 0: argmax). Greedy decoding gives the same tokens as `model.generate`
on the unshared batch (tested); a sampled draw has the same distribution, not the same ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class SamplingSettings:
    max_new_tokens: int
    temperature: float  # 0: greedy
    eos: int
    pad: int
    min_new_tokens: int = 0  # eos is masked out before this many tokens


def distinct(prompts: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """(the distinct prompts in first-seen order, for each prompt the index of its distinct one)."""
    index: dict[tuple[int, ...], int] = {}
    rows = [index.setdefault(tuple(p), len(index)) for p in prompts]
    return [list(p) for p in index], rows


def left_padded(prompts: list[list[int]], pad: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """ids [U, W] and attention mask [U, W], each prompt at the right end of its row."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def next_tokens(logits: torch.Tensor, step: int, settings: SamplingSettings,
                generator: torch.Generator) -> torch.Tensor:
    logits = logits.float()
    if step < settings.min_new_tokens:
        logits[:, settings.eos] = float("-inf")
    if settings.temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / settings.temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample_shared(model: Any, prompts: list[list[int]], settings: SamplingSettings, seed: int) -> list[list[int]]:
    """prompts: B lists of ids -> B lists of new ids (up to and including eos, at most max_new_tokens)."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    unique, row_of = distinct(prompts)
    ids, mask = left_padded(unique, settings.pad, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    expand = torch.tensor(row_of, device=device)
    cache = out.past_key_values
    cache.reorder_cache(expand)  # one cache row per sample, shared prompt computed once
    logits = out.logits[:, -1][expand]
    mask = mask[expand]
    position = positions[expand, -1]
    generator = torch.Generator(device=device).manual_seed(seed)
    live = torch.arange(len(prompts), device=device)  # sample index of each batch row
    new: list[list[int]] = [[] for _ in prompts]
    for step in range(settings.max_new_tokens):
        token = next_tokens(logits, step, settings, generator)
        ended = token == settings.eos
        for row, t in zip(live.tolist(), token.tolist()):
            new[row].append(t)
        if step + 1 == settings.max_new_tokens or bool(ended.all()):
            break
        if bool(ended.any()):  # drop finished rows from the batch and the cache
            keep = (~ended).nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            live, token, mask, position = live[keep], token[keep], mask[keep], position[keep]
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=-1)
        position = position + 1
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=position[:, None],
                    past_key_values=cache, use_cache=True)
        cache, logits = out.past_key_values, out.logits[:, -1]
    return new
