"""GRPO: group-relative advantages and the clipped, token-level policy loss.

    samples = [with_advantage(r.sample, a) for r, a in zip(group, advantages)]   # weight = advantage per token
    stats = grpo_step(model, ref, optimizer, scheduler, samples, StepConfig(), pad_id, dist)

Each trajectory's advantage sits on every token the policy sampled (tool/observation/
prompt tokens carry no loss). Rollouts that begin with the same prompt (a group) share a
row that holds the prompt once (`packing.pack_shared`; the same log-probs as a row each,
at a fraction of the positions). The loss is the mean over all trained tokens of the
whole step (across micro-batches and ranks):

    ratio = exp(logp - logp_old)
    pg    = -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A)
    kl    = exp(ref - logp) - (ref - logp) - 1        (k3 estimator; skipped when kl_coef = 0)
    loss  = sum((pg + kl_coef * kl) * trained) / trained tokens

With one PPO epoch the old policy is the current one (ratio = 1, its gradient is the
policy gradient), as in ToolOrchestra; `logp_old` exists for more epochs.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from toolorch.runtime.modeling import model_device, precision_context
from toolorch.train.distributed import Dist
from toolorch.train.kernels import collate_flat, flat_logprobs
from toolorch.train.packing import (
    IGNORE,
    Sample,
    collate,
    pack_shared,
    to_device,
    token_logprobs,
    truncate,
)

STAT_KEYS = ("loss", "pg", "kl", "entropy", "clipped", "tokens")


class StepConfig(BaseModel):
    """One policy step's settings (part of `stages.grpo` through train.loop.LoopConfig)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_low: float = Field(0.2, ge=0)
    clip_high: float = Field(0.28, ge=0)
    kl_coef: float = Field(0.0, ge=0)  # > 0 loads a frozen copy of the starting model as the reference
    max_len: int = Field(4096, ge=16)  # tokens per rollout (longer ones are truncated)
    rows_per_micro: int = Field(4, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    # the rollouts' sampling temperature: the update scores their tokens under the distribution they
    # were drawn from (softmax(logits / T)), or the policy gradient is off by the temperature
    temperature: float = Field(1.0, gt=0)
    # A rollout is a long prompt and a short completion, and a group's G rollouts share the
    # prompt: one row holds it once and every completion after it (packing.pack_shared).
    # False: one rollout per row.
    share_prompts: bool = True
    # tokens per shared row. The row's attention mask is dense, so its cost grows with the
    # square of its length: on the tiny profile (2 CPU cores) a step took 1.25 s with
    # 1536-token rows, 1.6 s with 2048, 3.8 s with 4096, and 5.7 s with a row per rollout
    row_len: int = Field(1536, ge=16)
    # > 0: a micro-batch holds rows up to this many tokens (rows_per_micro is then unused)
    tokens_per_micro: int = Field(0, ge=0)
    # rows: a [B, L] batch with a dense [L, L] mask per row (packing.collate). flat: every row of
    # the micro-batch in one sequence, attention through a document+prefix mask (train.kernels;
    # a FlexAttention block mask when the model runs attn_implementation="flex_attention")
    layout: Literal["rows", "flat"] = "rows"
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast over float32 master weights
    logit_chunk: int = Field(4096, ge=1)  # flat layout: LM-head positions per checkpointed chunk


def with_advantage(sample: Sample, advantage: float) -> Sample:
    return Sample(sample.ids, sample.trained, [advantage] * len(sample.ids), sample.extra)


def policy_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], ref_logp: torch.Tensor | None,
                cfg: StepConfig, token_scale: float,
                old_logp: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Scaled loss of one micro-batch and its summed statistics.

    batch: collate() output, weights [B, L] = advantage per token; ref_logp, old_logp [B, L-1].
    token_scale: world_size / trained tokens of the whole step (FSDP averages gradients over ranks).
    """
    logp, entropy, trained = batch_logprobs(model, batch, cfg)
    adv = batch["weights"][:, 1:]
    old = logp.detach() if old_logp is None else old_logp
    ratio = torch.exp(logp - old)
    clipped_ratio = ratio.clamp(1 - cfg.clip_low, 1 + cfg.clip_high)
    pg = -torch.minimum(ratio * adv, clipped_ratio * adv)
    kl = torch.zeros_like(logp)
    if ref_logp is not None and cfg.kl_coef > 0:
        diff = ref_logp - logp
        kl = torch.exp(diff) - diff - 1
    per_token = (pg + cfg.kl_coef * kl) * trained
    loss = per_token.sum() * token_scale  # the graph is taken here; the stats below are detached
    mask = trained.float()
    pg, kl, per_token, entropy = pg.detach(), kl.detach(), per_token.detach(), entropy.detach()
    stats = {
        "loss": float(per_token.sum()), "pg": float((pg * mask).sum()), "kl": float((kl * mask).sum()),
        "entropy": float((entropy * mask).sum()),
        "clipped": float(((ratio.detach() != clipped_ratio.detach()).float() * mask).sum()), "tokens": float(mask.sum()),
    }
    return loss, stats


def batch_logprobs(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                   cfg: StepConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logp, entropy, trained) of a `collate` or `collate_flat` batch, under cfg.precision."""
    with precision_context(cfg.precision, batch["input_ids"].device):
        if "doc" in batch:
            return flat_logprobs(model, batch, temperature=cfg.temperature, chunk=cfg.logit_chunk)
        return token_logprobs(model, batch, temperature=cfg.temperature)


def by_tokens(rows: list[list[Sample]], budget: int) -> list[list[list[Sample]]]:
    """Consecutive rows grouped while their tokens fit `budget` (a longer row is a group alone)."""
    groups: list[list[list[Sample]]] = []
    used = budget
    for row in rows:
        n = sum(len(s) for s in row)
        if used + n > budget:
            groups.append([])
            used = 0
        groups[-1].append(row)
        used += n
    return groups


def micro_batches(samples: list[Sample], cfg: StepConfig) -> list[list[list[Sample]]]:
    if cfg.share_prompts:
        rows = pack_shared(samples, cfg.max_len, cfg.row_len)
    else:
        rows = [[truncate(s, cfg.max_len)] for s in samples]
    if cfg.tokens_per_micro:
        return by_tokens(rows, cfg.tokens_per_micro)
    return [rows[i:i + cfg.rows_per_micro] for i in range(0, len(rows), cfg.rows_per_micro)]


def collate_micro(rows: list[list[Sample]], pad_id: int, cfg: StepConfig) -> dict[str, torch.Tensor]:
    return collate_flat(rows, pad_id) if cfg.layout == "flat" else collate(rows, pad_id)


def trained_tokens(micros: list[list[list[Sample]]]) -> int:
    n = 0
    for rows in micros:
        for row in rows:
            for s in row:
                n += sum(s.trained[1:])  # a sequence's first token is never predicted
    return n


def grpo_step(model: torch.nn.Module, ref_model: torch.nn.Module | None, optimizer: torch.optim.Optimizer,
              scheduler: torch.optim.lr_scheduler.LRScheduler, samples: list[Sample], cfg: StepConfig,
              pad_id: int, dist: Dist) -> dict[str, float]:
    """One optimizer step over this rank's samples; returns statistics summed over ranks
    (`loss`, `pg`, `kl`, `entropy` as per-token means, `clip_fraction`, `tokens`, `grad_norm`)."""
    micros = micro_batches(samples, cfg)
    total_tokens = dist.sum([float(trained_tokens(micros))])[0]
    n_micro = int(dist.max(len(micros)))
    dummy = [[Sample([pad_id, pad_id], [False, False], [0.0, 0.0])]]  # keeps FSDP collectives in step
    micros += [dummy] * (n_micro - len(micros))
    scale = dist.world / max(1.0, total_tokens)
    sums = dict.fromkeys(STAT_KEYS, 0.0)
    model.train()
    device = model_device(model)
    optimizer.zero_grad(set_to_none=True)
    for rows in micros:
        batch = to_device(collate_micro(rows, pad_id, cfg), device)
        ref_logp = None
        if ref_model is not None and cfg.kl_coef > 0:
            with torch.no_grad():
                ref_logp = batch_logprobs(ref_model, batch, cfg)[0]
        loss, stats = policy_loss(model, batch, ref_logp, cfg, scale)
        loss.backward()
        for k in STAT_KEYS:
            sums[k] += stats[k]
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    optimizer.step()
    scheduler.step()
    totals = dict(zip(STAT_KEYS, dist.sum([sums[k] for k in STAT_KEYS])))
    n = max(1.0, totals["tokens"])
    return {"loss": totals["loss"] / n, "pg": totals["pg"] / n, "kl": totals["kl"] / n,
            "entropy": totals["entropy"] / n, "clip_fraction": totals["clipped"] / n,
            "tokens": totals["tokens"], "grad_norm": float(full_value(grad_norm))}


def full_value(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's (FSDP2) global value, or the tensor itself."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


__all__ = ["IGNORE", "StepConfig", "grpo_step", "policy_loss", "with_advantage"]
