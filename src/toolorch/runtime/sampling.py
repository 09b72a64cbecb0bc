"""Batched sampling that prefills each distinct prompt once and decodes its samples from a shared KV cache.

    new_ids = sample_shared(model, prompts, SamplingSettings(64, 1.0, eos_id, pad_id), seed=0)

A GRPO group is G copies of one prompt. `model.generate` would prefill every copy; here the
distinct prompts are prefilled once (left-padded, one forward), the cache rows are then
repeated to one per sample (`Cache.reorder_cache`), and every step decodes one token for all
samples. Rows that have ended leave the batch, so late steps run on the live rows only.

Turn after turn (`KVStore`): when a row ends, the keys and values of its tokens are kept,
keyed by those tokens. The episode's next prompt is that conversation plus the tool's reply
and the template's glue, so the next call prefills only the new tail of each prompt on top
of the kept cache. A store holds one call's rows and must be cleared when the weights change.

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


Layers = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values) [kv_heads, n, head_dim]


class KVStore:
    """The cache of each conversation of the last call, keyed by its tokens."""

    def __init__(self) -> None:
        self.entries: dict[tuple[int, ...], Layers] = {}

    def clear(self) -> None:
        self.entries = {}

    def longest_prefix(self, prompt: list[int]) -> tuple[int, Layers | None]:
        """(n, layers) of the longest kept conversation that is a proper prefix of `prompt`."""
        for n in sorted({len(k) for k in self.entries}, reverse=True):
            if n < len(prompt) and (hit := self.entries.get(tuple(prompt[:n]))) is not None:
                return n, hit
        return 0, None


def cached_prefill(model: Any, unique: list[list[int]], store: KVStore | None, pad: int, device: Any) -> tuple:
    """Prefill the distinct prompts on top of what `store` kept: (model output, mask, positions)."""
    from transformers import DynamicCache

    kept = [store.longest_prefix(p) if store else (0, None) for p in unique]
    ids, new_mask = left_padded([p[n:] for p, (n, _) in zip(unique, kept)], pad, device)
    width = max(n for n, _ in kept)
    lengths = torch.tensor([n for n, _ in kept], device=device)
    old_mask = (torch.arange(width, device=device)[None] >= width - lengths[:, None]).long()
    mask = torch.cat([old_mask, new_mask], dim=-1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, width:]
    layers = None
    if width:
        first = next(hit for _, hit in kept if hit is not None)
        layers = []
        for layer, (k0, v0) in enumerate(first):
            k = k0.new_zeros((len(unique), k0.shape[0], width, k0.shape[2]))
            v = v0.new_zeros((len(unique), v0.shape[0], width, v0.shape[2]))
            for row, (n, hit) in enumerate(kept):
                if n:
                    k[row, :, width - n:] = hit[layer][0]
                    v[row, :, width - n:] = hit[layer][1]
            layers.append((k, v))
    cache = DynamicCache(ddp_cache_data=layers, config=model.config) if layers else DynamicCache(config=model.config)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    return out, mask, positions


def keep_rows(entries: dict[tuple[int, ...], Layers], cache: Any, mask: torch.Tensor, rows: list[int],
              tokens: list[list[int]]) -> None:
    """Copy the cache of batch rows `rows` (holding `tokens`) out, keyed by those tokens."""
    for row, ids in zip(rows, tokens):
        valid = mask[row].bool()
        entries[tuple(ids)] = [(layer.keys[row][:, valid], layer.values[row][:, valid]) for layer in cache.layers]


@torch.no_grad()
def sample_shared(model: Any, prompts: list[list[int]], settings: SamplingSettings, seed: int,
                  store: KVStore | None = None) -> list[list[int]]:
    """prompts: B lists of ids -> B lists of new ids (up to and including eos, at most max_new_tokens).
    With `store`: start from the caches it kept, and leave each row's cache in it for the next turn."""
    device = next(model.parameters()).device
    unique, row_of = distinct(prompts)
    out, mask, positions = cached_prefill(model, unique, store, settings.pad, device)
    kept: dict[tuple[int, ...], Layers] = {}
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
        last = step + 1 == settings.max_new_tokens or bool(ended.all())
        if store is not None and (last or bool(ended.any())):  # the cache holds prompt + new[:-1]
            done = range(len(live)) if last else ended.nonzero().squeeze(-1).tolist()
            samples = [int(live[r]) for r in done]
            keep_rows(kept, cache, mask, list(done), [prompts[i] + new[i][:-1] for i in samples])
        if last:
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
    if store is not None:
        store.entries = kept
    return new
