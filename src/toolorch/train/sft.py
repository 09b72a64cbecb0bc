"""Supervised warm-start: next-token loss on assistant tokens of packed chats.

    rows = pack([Sample(*tokenize_chat(tok, t.messages, t.tools)) for t in trajs], max_len)
    history = train_sft(model, rows, pad_id, SFTLoop(epochs=2, seed=0))
    history = train_sft(shard(model, dist), rows, pad_id, loop, dist=dist)   # FSDP2 over torchrun's ranks

Every rank holds all rows and takes its share of each step's rows (every world-th); the loss
is the mean over the trained tokens of the whole step on all ranks, so N processes take the
steps one process takes (up to summation order).
"""
from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from typing import Callable, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from toolorch.runtime.modeling import model_device
from toolorch.train.distributed import Dist
from toolorch.train.packing import Sample, collate, nll_sum, to_device


class SFTLoop(BaseModel):
    """The SFT loop's settings: `stages.sft` in a profile (the stage adds its own few)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(2, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(5, ge=0)
    rows_per_step: int = Field(4, ge=1)
    rows_per_micro: int = Field(2, ge=1)  # gradient accumulation over micro-batches of this many rows
    max_grad_norm: float = Field(1.0, gt=0)
    # bf16: compute in bf16 on fp32 master weights (FSDP2 MixedPrecisionPolicy across ranks,
    # autocast on one GPU); what an 8B model needs. fp32: the CPU default
    precision: Literal["fp32", "bf16"] = "fp32"
    activation_checkpointing: bool = False  # recompute each layer's activations in backward
    seed: int = 0  # the profile's seed (the stage sets it)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def epoch_order(n_rows: int, seed: int, epoch: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(n_rows, generator=gen).tolist()


def sft_step(model: torch.nn.Module, rows: list[list[Sample]], pad_id: int, rows_per_micro: int,
             dist: Dist = Dist(), autocast: Callable[[], object] = nullcontext) -> tuple[float, int]:
    """Accumulate gradients of the mean token loss over this rank's `rows`; returns (loss, tokens)
    of the whole step over all ranks."""
    micro = [rows[i:i + rows_per_micro] for i in range(0, len(rows), rows_per_micro)]
    # a rank with fewer micro-batches runs loss-free ones, so every FSDP collective is joined
    dummy = [[Sample([pad_id, pad_id], [False, False])]]
    micro += [dummy] * (int(dist.max(len(micro))) - len(micro))
    device = model_device(model)
    batches = [to_device(collate(m, pad_id), device) for m in micro]
    total_tokens = int(dist.sum([float(sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches))])[0])
    loss_value = 0.0
    for batch in batches:
        with autocast():
            nll, _ = nll_sum(model, batch)
        loss = nll / max(1, total_tokens)  # token-level mean over the whole step
        # FSDP averages gradients over ranks: scale back up to the sum of the ranks' shares
        (loss * dist.world if dist.world > 1 else loss).backward()
        loss_value += float(loss.detach())
    return dist.sum([loss_value])[0], total_tokens


def autocast_for(loop: SFTLoop, model: torch.nn.Module, dist: Dist) -> Callable[[], object]:
    """bf16 autocast for one process; under FSDP2 its MixedPrecisionPolicy casts instead."""
    if loop.precision == "fp32" or dist.world > 1:
        return nullcontext
    device_type = model_device(model).type
    return lambda: torch.autocast(device_type, dtype=torch.bfloat16)


def train_sft(model: torch.nn.Module, rows: list[list[Sample]], pad_id: int, loop: SFTLoop,
              log: Callable[[dict], None] | None = None, dist: Dist = Dist()) -> list[dict]:
    """Train in place (`model` sharded over `dist`'s ranks when there are several); returns one
    record per optimizer step (loss, lr, tokens, seconds), the same on every rank."""
    seed_everything(loop.seed)
    steps_per_epoch = max(1, math.ceil(len(rows) / loop.rows_per_step))
    optimizer = torch.optim.AdamW(model.parameters(), lr=loop.lr, weight_decay=loop.weight_decay)
    scheduler = warmup_cosine(optimizer, loop.warmup_steps, steps_per_epoch * loop.epochs)
    autocast = autocast_for(loop, model, dist)
    history: list[dict] = []
    model.train()
    for epoch in range(loop.epochs):
        order = epoch_order(len(rows), loop.seed, epoch)
        for s in range(steps_per_epoch):
            chosen = [rows[i] for i in order[s * loop.rows_per_step:(s + 1) * loop.rows_per_step]]
            if not chosen:
                continue
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss, tokens = sft_step(model, chosen[dist.rank::dist.world], pad_id, loop.rows_per_micro, dist, autocast)
            torch.nn.utils.clip_grad_norm_(model.parameters(), loop.max_grad_norm)
            optimizer.step()
            scheduler.step()
            record = {"step": len(history), "epoch": epoch, "loss": loss, "lr": scheduler.get_last_lr()[0],
                      "tokens": tokens, "seconds": time.perf_counter() - start}
            history.append(record)
            if log:
                log(record)
    model.eval()
    return history
