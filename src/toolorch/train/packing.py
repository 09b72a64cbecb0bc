"""Packing short sequences into fixed-length rows, and the masked token loss over them.

Several chats share one row; each keeps its own position ids (restarting at 0) and
attends only to itself through a block-diagonal causal mask, so a packed batch gives
the same per-token losses as the chats one by one (tested).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import modeling_utils

from toolorch.train.chat import IGNORE


@dataclass
class Sample:
    """One sequence: ids [L], trained mask [L], per-token weight [L] (advantage in GRPO, 1 in SFT)."""

    ids: list[int]
    trained: list[bool]
    weight: list[float] | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def truncate(sample: Sample, max_len: int) -> Sample:
    if len(sample) <= max_len:
        return sample
    w = sample.weight[:max_len] if sample.weight is not None else None
    return Sample(sample.ids[:max_len], sample.trained[:max_len], w, sample.extra)


def pack(samples: list[Sample], max_len: int) -> list[list[Sample]]:
    """First-fit in the given order (deterministic); over-long samples are truncated."""
    rows: list[list[Sample]] = []
    room: list[int] = []
    for s in samples:
        s = truncate(s, max_len)
        for r, free in enumerate(room):
            if len(s) <= free:
                rows[r].append(s)
                room[r] -= len(s)
                break
        else:
            rows.append([s])
            room.append(max_len - len(s))
    return rows


def collate(rows: list[list[Sample]], pad_id: int, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Tensors for a batch of packed rows, L = the longest row.

    input_ids [B, L], labels [B, L] (IGNORE where not trained), weights [B, L],
    position_ids [B, L] (restart per sequence), attention_mask [B, 1, L, L] additive
    (0 = attend, dtype min = blocked), block-diagonal and causal. Padding attends to
    itself only, so no softmax row is empty.
    """
    length = max(sum(len(s) for s in row) for row in rows)
    b = len(rows)
    ids = torch.full((b, length), pad_id, dtype=torch.long)
    labels = torch.full((b, length), IGNORE, dtype=torch.long)
    weights = torch.zeros((b, length), dtype=torch.float32)
    pos = torch.zeros((b, length), dtype=torch.long)
    seq = torch.full((b, length), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        at = 0
        for k, s in enumerate(row):
            n = len(s)
            ids[i, at:at + n] = torch.tensor(s.ids)
            lab = torch.tensor(s.ids)
            lab[~torch.tensor(s.trained, dtype=torch.bool)] = IGNORE
            lab[0] = IGNORE  # the first token has no in-sequence context to be predicted from
            labels[i, at:at + n] = lab
            weights[i, at:at + n] = torch.tensor(s.weight if s.weight is not None else [1.0] * n)
            pos[i, at:at + n] = torch.arange(n)
            seq[i, at:at + n] = k
            at += n
        pos[i, at:] = torch.arange(length - at)
    same = seq[:, :, None] == seq[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    diag = torch.eye(length, dtype=torch.bool)
    allowed = (same & causal & (seq[:, :, None] >= 0)) | diag
    mask = torch.zeros((b, 1, length, length), dtype=dtype)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    return {"input_ids": ids, "labels": labels, "weights": weights, "position_ids": pos, "attention_mask": mask}


# transformers releases that take a boolean [B, L] `logits_to_keep` (and have this helper) project
# only those positions; older ones compute every position's logits and we select afterwards
_LOGITS_AT_MASK = hasattr(modeling_utils, "slice_logits_to_keep")


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def token_logprobs(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                   temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probabilities of each label under `model`.

    Returns (logp [B, L-1], entropy [B, L-1], trained [B, L-1] bool), aligned so that
    position t scores token t+1; untrained positions hold 0. Only the positions that
    predict a trained token go through the LM head and the log-softmax (prompts and
    tool outputs are most of a row, and the vocabulary projection is the widest matmul).
    """
    labels = batch["labels"][:, 1:]
    trained = labels != IGNORE
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
              "position_ids": batch["position_ids"], "use_cache": False}
    if _LOGITS_AT_MASK:
        keep = torch.zeros_like(batch["labels"], dtype=torch.bool)
        keep[:, :-1] = trained
        logits = model(**inputs, logits_to_keep=keep).logits
        logits = logits.reshape(-1, logits.shape[-1])  # [N, V], row-major order of `keep`
    else:
        logits = model(**inputs).logits[:, :-1][trained]
    logits = logits.float() / temperature
    logp_all = F.log_softmax(logits, dim=-1)
    picked = logp_all.gather(-1, labels[trained][:, None]).squeeze(-1)
    entropy_picked = -(logp_all.exp() * logp_all).sum(-1)
    logp = torch.zeros(trained.shape, dtype=picked.dtype, device=picked.device).masked_scatter(trained, picked)
    entropy = torch.zeros(trained.shape, dtype=picked.dtype, device=picked.device).masked_scatter(trained, entropy_picked)
    return logp, entropy, trained


def nll_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood over trained tokens, and their count."""
    logp, _, trained = token_logprobs(model, batch)
    return -logp.sum(), int(trained.sum())
