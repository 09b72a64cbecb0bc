"""The flat training layout: its mask is packing.collate's, its log-probs match the row layout's,
FlexAttention and chunked LM-head log-probs change nothing, bf16 autocast stays within bf16 tolerance."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from toolorch.runtime.chat import Sample
from toolorch.train.distributed import Dist
from toolorch.train.flops import ModelShape, row_attention_pairs, train_flops
from toolorch.train.grpo import (
    StepConfig,
    batch_logprobs,
    by_tokens,
    grpo_step,
    micro_batches,
)
from toolorch.train.kernels import (
    FLEX,
    collate_flat,
    dense_mask,
    flat_logprobs,
    head_logprobs,
)
from toolorch.train.packing import collate, pack_shared, token_logprobs

PAD = 0


def _model(attn="sdpa"):
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=301, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=PAD, tie_word_embeddings=True, attn_implementation=attn)
    return Qwen2ForCausalLM(config)


def _groups(n_groups=3, group=4, seed=0):
    """GRPO-like samples: per group one prompt (untrained) and `group` sampled tails (trained)."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for k in range(n_groups):
        prompt = torch.randint(1, 301, (20 + 7 * k,), generator=g).tolist()
        for j in range(group):
            tail = torch.randint(1, 301, (5 + (j * 3) % 7,), generator=g).tolist()
            samples.append(Sample(prompt + tail, [False] * len(prompt) + [True] * len(tail),
                                  [float(j - 1.5)] * (len(prompt) + len(tail))))
    return samples


def _rows():
    return pack_shared(_groups(), 512, 64)  # several rows, each a shared head and its tails


def test_flat_mask_is_the_row_masks_on_the_diagonal():
    rows = _rows()
    assert any(len(r) > 2 for r in rows)
    flat = collate_flat(rows, PAD, multiple=16)
    allowed = dense_mask(flat["doc"][0], flat["parent"][0])
    at = 0
    for row in rows:
        dense = collate([row], PAD)["attention_mask"][0, 0] == 0
        n = sum(len(s) for s in row)
        assert torch.equal(allowed[at:at + n, at:at + n], dense[:n, :n])
        assert not allowed[at:at + n, :at].any() and not allowed[at:at + n, at + n:].any()
        at += n
    assert flat["input_ids"].shape[1] % 16 == 0 and flat["input_ids"].shape[1] >= at


def _row_logp(model, rows):
    """Per trained token, in row order: the row layout's log-probs."""
    out = []
    for row in rows:
        logp, _, trained = token_logprobs(model, collate([row], PAD))
        out.append(logp[trained])
    return torch.cat(out)


def _flat_logp(model, rows, chunk=4096):
    logp, entropy, trained = flat_logprobs(model, collate_flat(rows, PAD), chunk=chunk)
    return logp[trained], entropy[trained]


def test_flat_logprobs_equal_the_row_layout():
    model = _model().eval()
    rows = _rows()
    with torch.no_grad():
        ref = _row_logp(model, rows)
        flat, entropy = _flat_logp(model, rows)
        chunked, entropy_chunked = _flat_logp(model, rows, chunk=7)
    assert ref.numel() == sum(sum(s.trained[1:]) for row in rows for s in row)
    torch.testing.assert_close(flat, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked, flat, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(entropy_chunked, entropy, rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # the first run compiles FlexAttention's CPU kernel (about a minute)
def test_flex_attention_equals_the_dense_mask():
    dense = _model("sdpa").eval()
    flex = _model(FLEX).eval()
    flex.load_state_dict(dense.state_dict())
    rows = _rows()
    batch = collate_flat(rows, PAD)
    with torch.no_grad():
        torch.testing.assert_close(_flat_logp(flex, rows)[0], _flat_logp(dense, rows)[0], rtol=1e-4, atol=1e-4)
        bf16 = StepConfig(layout="flat", precision="bf16")
        a, _, trained = batch_logprobs(dense, batch, bf16)
        b, _, _ = batch_logprobs(flex, batch, bf16)  # q, k, v cast to bf16 for FlexAttention
    assert (a[trained] - b[trained]).abs().max() < 0.05


def test_chunked_head_gives_the_same_gradient():
    head = torch.nn.Linear(16, 50, bias=False)
    hidden = torch.randn(37, 16, requires_grad=True)
    labels = torch.randint(0, 50, (37,))
    grads = []
    for chunk in (37, 5):
        hidden.grad = None
        head_logprobs(head, hidden, labels, chunk=chunk)[0].sum().backward()
        grads.append(hidden.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
    whole = torch.log_softmax(head(hidden), -1).gather(-1, labels[:, None]).squeeze(-1)
    torch.testing.assert_close(head_logprobs(head, hidden, labels, chunk=5)[0], whole)


def test_bf16_autocast_logprobs_within_bf16_tolerance():
    model = _model().eval()
    rows = _rows()
    batch = collate_flat(rows, PAD)
    with torch.no_grad():
        fp32, _, trained = batch_logprobs(model, batch, StepConfig(layout="flat", precision="fp32"))
        bf16, _, _ = batch_logprobs(model, batch, StepConfig(layout="flat", precision="bf16"))
    a, b = fp32[trained], bf16[trained]
    assert b.dtype == torch.float32 and not torch.equal(a, b)  # bf16 matmuls ran, log-softmax in float32
    # bf16 keeps 8 bits of mantissa (relative step 2^-8 = 0.004): a few steps of the logits' scale
    assert (a - b).abs().max() < 0.05 and (a - b).abs().mean() < 0.01


def test_token_budget_micro_batches():
    rows = _rows()
    sizes = [sum(len(s) for s in r) for r in rows]
    groups = by_tokens(rows, 100)
    assert [r for g in groups for r in g] == rows
    for g in groups:
        assert len(g) == 1 or sum(sum(len(s) for s in r) for r in g) <= 100
    assert len(by_tokens(rows, 10**6)) == 1 and len(by_tokens(rows, 1)) == len(sizes)
    assert micro_batches(_groups(), StepConfig(row_len=64, tokens_per_micro=100)) == groups


def test_flat_step_equals_the_row_step():
    """One optimizer step over the same samples: same statistics and same new weights."""
    samples = _groups()
    results = []
    for cfg in (StepConfig(row_len=64, rows_per_micro=2),
                StepConfig(row_len=64, tokens_per_micro=150, layout="flat")):
        model = _model()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        stats = grpo_step(model, None, opt, sched, copy.deepcopy(samples), cfg, PAD, Dist())
        results.append((stats, model.state_dict()))
    (s1, w1), (s2, w2) = results
    assert s1["tokens"] == s2["tokens"] > 0
    for key in ("loss", "entropy", "grad_norm"):
        assert s2[key] == pytest.approx(s1[key], rel=1e-4, abs=1e-6)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)


def test_flops_count_the_pairs_the_mask_allows():
    rows = _rows()
    flat = collate_flat(rows, PAD, multiple=1)  # no padding
    allowed = int(dense_mask(flat["doc"][0], flat["parent"][0]).sum())
    assert sum(row_attention_pairs(r) for r in rows) == allowed
    model = _model()
    shape = ModelShape.of(model)
    assert shape.body_parameters == sum(p.numel() for p in model.parameters()) - 301 * 64  # tied head
    assert shape.layers == 2 and shape.attention_width == 64
    assert train_flops(shape, 10, 0, 0) == 60 * shape.body_parameters


def test_flat_step_without_trained_tokens_changes_nothing():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    prompt_only = [Sample(s.ids, [False] * len(s), s.weight) for s in _groups(1, 2)]
    stats = grpo_step(model, None, opt, sched, prompt_only, StepConfig(layout="flat"), PAD, Dist())
    assert stats["tokens"] == 0 and stats["loss"] == 0.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
