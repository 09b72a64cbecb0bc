"""Shared-prompt sampling: greedy ids equal model.generate's on the unshared batch, draws follow the softmax."""
from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from toolorch.runtime.sampling import KVStore, SamplingSettings, distinct, sample_shared

PAD = 0


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=PAD, tie_word_embeddings=True)
    return Qwen2ForCausalLM(config).eval()


def _prompts():
    g = torch.Generator().manual_seed(1)
    a, b, c = (torch.randint(1, 97, (n,), generator=g).tolist() for n in (11, 5, 17))
    return [a, a, b, a, c, c, b]  # three groups, interleaved, of different lengths


def _generate(model, prompts, max_new, eos, min_new=0):
    """model.generate on every prompt (no sharing), greedy, cut after eos."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, min_new_tokens=min_new,
                         do_sample=False, pad_token_id=PAD, eos_token_id=eos)[:, width:].tolist()
    return [row[: row.index(eos) + 1] if eos in row else row for row in gen]


def test_distinct_maps_every_prompt_to_its_group():
    unique, rows = distinct(_prompts())
    assert len(unique) == 3 and rows == [0, 0, 1, 0, 2, 2, 1]


def test_greedy_equals_generate_without_sharing(model):
    prompts = _prompts()
    never = 96  # first pass: an eos id to read the greedy continuations off
    free = sample_shared(model, prompts, SamplingSettings(12, 0.0, never, PAD), seed=0)
    assert free == _generate(model, prompts, 12, never)
    eos = free[0][4]  # now an eos that ends some rows early: they leave the batch
    ended = sample_shared(model, prompts, SamplingSettings(12, 0.0, eos, PAD), seed=0)
    assert ended == _generate(model, prompts, 12, eos)
    assert any(len(r) < 12 for r in ended) and any(len(r) == 12 for r in ended)
    forced = sample_shared(model, prompts, SamplingSettings(12, 0.0, eos, PAD, min_new_tokens=12), seed=0)
    assert forced == _generate(model, prompts, 12, eos, min_new=12) and all(len(r) == 12 for r in forced)


def test_draws_follow_the_softmax_and_the_seed(model):
    prompt = _prompts()[0]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([prompt])).logits[0, -1] / 0.7, -1)
    n = 4000
    draws = sample_shared(model, [prompt] * n, SamplingSettings(1, 0.7, 96, PAD), seed=5)
    freq = torch.bincount(torch.tensor([d[0] for d in draws]), minlength=97).float() / n
    assert (freq - probs).abs().max() < 4 * (probs * (1 - probs) / n).sqrt().max() + 1e-3
    again = sample_shared(model, [prompt] * 8, SamplingSettings(6, 0.7, 96, PAD), seed=5)
    assert again == sample_shared(model, [prompt] * 8, SamplingSettings(6, 0.7, 96, PAD), seed=5)
    assert again != sample_shared(model, [prompt] * 8, SamplingSettings(6, 0.7, 96, PAD), seed=6)


def test_next_turn_reuses_the_kept_cache_and_samples_the_same(model):
    """Turn 2 prompts = turn 1 prompt + its sample + a tool reply: with the store only the reply
    is prefilled, and greedy turn-2 samples equal a fresh prefill's."""
    prompts = _prompts()
    eos = 96
    settings = SamplingSettings(6, 0.0, eos, PAD)
    store = KVStore()
    first = sample_shared(model, prompts, settings, seed=0, store=store)
    assert len(store.entries) == len(distinct([p + n[:-1] for p, n in zip(prompts, first)])[0])
    reply = [[50 + i, 60, 70 + i] for i in range(len(prompts))]
    turn2 = [p + n + r for p, n, r in zip(prompts, first, reply)]
    assert all(store.longest_prefix(t)[0] == len(t) - len(r) - 1 for t, r in zip(turn2, reply))
    prefilled = []
    original = model.forward

    def counting(*args, **kwargs):
        prefilled.append(kwargs["input_ids"].shape[1])
        return original(*args, **kwargs)

    model.forward = counting
    try:
        reused = sample_shared(model, turn2, settings, seed=0, store=store)
    finally:
        del model.forward
    assert prefilled[0] == 4  # the reply and the sample's last token, not the conversation
    assert reused == sample_shared(model, turn2, settings, seed=0)  # a fresh prefill of everything
    store.clear()
    assert store.longest_prefix(turn2[0]) == (0, None)
