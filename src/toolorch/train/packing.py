"""Packing short sequences into fixed-length rows, and the masked token loss over them.

Several chats share one row (`pack`); each keeps its own position ids (restarting at 0)
and attends only to itself through a block-diagonal causal mask, so a packed batch gives
the same per-token losses as the chats one by one (tested).

`pack_shared` builds rows for chats that begin with the same prompt (a GRPO rollout
group: G samples of one prompt). The common prompt is written once at the head of the row and
each chat keeps only its own tail, which attends to that head and continues its
positions. An orchestrator's prompt is most of its tokens (the tool list, ~600 tokens,
against a ~20-token tool call), so a row of G tails costs about one chat instead of G;
the losses are the same as one by one (tested).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import modeling_utils

from toolorch.runtime.chat import IGNORE, Sample, common_prefix


def truncate(sample: Sample, max_len: int) -> Sample:
    if len(sample) <= max_len:
        return sample
    w = sample.weight[:max_len] if sample.weight is not None else None
    return Sample(sample.ids[:max_len], sample.trained[:max_len], w, sample.extra)


def pack(samples: list[Sample], max_len: int, row_len: int | None = None) -> list[list[Sample]]:
    """First-fit in the given order (deterministic) into rows of `row_len` tokens (default
    `max_len`); samples are cut to `max_len`, and one longer than `row_len` takes a row alone.
    A row's attention costs its length squared, so a small `row_len` with a larger `max_len`
    trains the few long chats without making every row long."""
    row_len = max_len if row_len is None else row_len
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
            room.append(max(0, row_len - len(s)))
    return rows


def untrained_head(s: Sample) -> int:
    """How many leading tokens can be shared: none trained, and the token after them not
    trained either (a tail's first token is not predicted in its row), one left over."""
    first_trained = next((i for i, t in enumerate(s.trained) if t), len(s))
    return max(0, min(first_trained - 1, len(s) - 1))


def shared_row(members: list[Sample], head: int) -> list[Sample]:
    if len(members) == 1 or head == 0:
        return members
    first = members[0]
    row = [Sample(first.ids[:head], [False] * head, [0.0] * head)]
    for s in members:
        w = s.weight[head:] if s.weight is not None else None
        row.append(Sample(s.ids[head:], s.trained[head:], w, s.extra, after=head))
    return row


def pack_shared(samples: list[Sample], max_len: int, row_len: int | None = None) -> list[list[Sample]]:
    """Rows of chats that share their common untrained prompt once (see the module doc).

    Chats (cut to `max_len`) are taken in order of their token ids (the same prompts side
    by side; a deterministic order) and added to the current row while its length - the
    shared head plus every chat's tail - stays within `row_len` (default `max_len`) and
    sharing saves tokens; a chat longer than `row_len` gets a row of its own. A head never
    holds a trained token, so every trained token is scored once, as in separate rows."""
    row_len = max_len if row_len is None else row_len
    rows: list[list[Sample]] = []
    members: list[Sample] = []
    head = 0
    for s in sorted((truncate(x, max_len) for x in samples), key=lambda x: x.ids):
        if members:
            h = common_prefix(members[0].ids, s.ids, min(head, untrained_head(s)))
            fits = h + sum(len(m) - h for m in members) + len(s) - h <= row_len
            # a shorter head lengthens every tail already in the row: worth it only while
            # that costs less than the h tokens `s` saves
            if fits and (head - h) * (len(members) - 1) < h:
                members.append(s)
                head = h
                continue
            rows.append(shared_row(members, head))
        members, head = [s], untrained_head(s)
    if members:
        rows.append(shared_row(members, head))
    return rows


def collate(rows: list[list[Sample]], pad_id: int, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Tensors for a batch of packed rows, L = the longest row.

    input_ids [B, L], labels [B, L] (IGNORE where not trained), weights [B, L],
    position_ids [B, L] (restart per sequence), attention_mask [B, 1, L, L] additive
    (0 = attend, dtype min = blocked), block-diagonal and causal; a tail (`after` > 0)
    also sees the first `after` tokens of its row, and its positions start at `after`.
    Padding attends to itself only, so no softmax row is empty.
    """
    length = max(sum(len(s) for s in row) for row in rows)
    b = len(rows)
    ids = torch.full((b, length), pad_id, dtype=torch.long)
    labels = torch.full((b, length), IGNORE, dtype=torch.long)
    weights = torch.zeros((b, length), dtype=torch.float32)
    pos = torch.zeros((b, length), dtype=torch.long)
    seq = torch.full((b, length), -1, dtype=torch.long)
    reach = torch.zeros((b, length), dtype=torch.long)  # a tail's token sees the row's first `reach` tokens
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
            pos[i, at:at + n] = torch.arange(s.after, s.after + n)
            seq[i, at:at + n] = k
            reach[i, at:at + n] = s.after
            at += n
        pos[i, at:] = torch.arange(length - at)
    same = seq[:, :, None] == seq[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    diag = torch.eye(length, dtype=torch.bool)
    column = torch.arange(length)
    head = (seq[:, None, :] == 0) & (column[None, None, :] < reach[:, :, None])
    allowed = (same & causal & (seq[:, :, None] >= 0)) | head | diag
    mask = torch.zeros((b, 1, length, length), dtype=dtype)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    return {"input_ids": ids, "labels": labels, "weights": weights, "position_ids": pos, "attention_mask": mask}


# transformers releases that take a boolean [B, L] `logits_to_keep` (and have this helper) project
# only those positions; older ones compute every position's logits and we select afterwards
_LOGITS_AT_MASK = hasattr(modeling_utils, "slice_logits_to_keep")


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
