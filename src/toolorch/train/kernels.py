"""The fast path of a training forward: one packed sequence per micro-batch, FlexAttention
over a document-plus-prefix block mask, bf16 autocast, and log-probs at trained positions only.

    batch = collate_flat(rows, pad_id)                       # [1, T]: every row of the micro-batch end to end
    with precision_context("bf16", device):
        logp, entropy, trained = flat_logprobs(model, batch)   # flex attention, chunked LM head

Layout: every sequence of the micro-batch (a shared prompt's head, each completion tail, each
chat of a `pack` row) gets its own `doc` id; a tail also names its row's head as `parent`. A
query q may read key k when

    (doc[q] == doc[k] and k <= q)  or  parent[q] == doc[k]

which is the dense mask of `packing.collate` (a tail sees its row's whole head, as `after`
says) without its [L, L] tensor: FlexAttention skips the blocks the mask rules out, so cost
grows with the tokens a query reads, not with the square of the micro-batch. The same
`mask_mod` also builds a dense boolean mask (`dense_mask`) for tests and for backends
without FlexAttention.

Log-probs: the decoder's hidden states at the positions that predict a trained token go
through the LM head in chunks, each chunk checkpointed, so the [N, vocab] float32 logits of
the whole micro-batch never exist at once (the widest activation of a small model).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from toolorch.runtime.chat import IGNORE, Sample

FLEX = "toolorch_flex"  # attn_implementation: transformers' flex_attention, in bf16 under autocast
NO_PARENT = -2  # never a doc id (padding is doc -1)
BLOCK = 128  # FlexAttention's block size: sequences are padded to a multiple of it


def collate_flat(rows: list[list[Sample]], pad_id: int, multiple: int = BLOCK) -> dict[str, torch.Tensor]:
    """All rows of a micro-batch as one sequence [1, T] (T padded up to `multiple`).

    input_ids, labels (IGNORE where not trained, and at each sequence's first token),
    weights, position_ids (as in `packing.collate`), doc and parent (see the module doc)."""
    ids: list[int] = []
    labels: list[int] = []
    weights: list[float] = []
    pos: list[int] = []
    doc: list[int] = []
    parent: list[int] = []
    d = -1
    for row in rows:
        head_doc = d + 1
        for s in row:
            d += 1
            n = len(s)
            ids += s.ids
            labels += [IGNORE] + [t if tr else IGNORE for t, tr in zip(s.ids[1:], s.trained[1:])]
            weights += list(s.weight) if s.weight is not None else [1.0] * n
            pos += list(range(s.after, s.after + n))
            doc += [d] * n
            parent += [head_doc if s.after > 0 else NO_PARENT] * n
    total = -(-len(ids) // multiple) * multiple
    pad = total - len(ids)
    ids += [pad_id] * pad
    labels += [IGNORE] * pad
    weights += [0.0] * pad
    pos += list(range(pad))
    doc += [-1] * pad
    parent += [NO_PARENT] * pad

    def row(values: list, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype)[None]

    return {"input_ids": row(ids, torch.long), "labels": row(labels, torch.long), "weights": row(weights, torch.float32),
            "position_ids": row(pos, torch.long), "doc": row(doc, torch.long), "parent": row(parent, torch.long)}


def mask_mod_for(doc: torch.Tensor, parent: torch.Tensor) -> Callable:
    """FlexAttention mask_mod over doc/parent [T] (one packed sequence)."""
    def mask_mod(b: Any, h: Any, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return ((doc[q] == doc[k]) & (k <= q)) | (parent[q] == doc[k])
    return mask_mod


def dense_mask(doc: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """The same rule as a boolean [T, T] (True = attend)."""
    t = torch.arange(doc.shape[-1], device=doc.device)
    return mask_mod_for(doc, parent)(None, None, t[:, None], t[None, :])


def block_mask(batch: dict[str, torch.Tensor]) -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    doc, parent = batch["doc"][0], batch["parent"][0]
    length = doc.shape[0]
    return create_block_mask(mask_mod_for(doc, parent), B=None, H=None, Q_LEN=length, KV_LEN=length,
                             device=doc.device)


def flex_autocast_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: Any, **kwargs: Any) -> Any:
    """transformers' flex_attention with q, k, v in the autocast dtype: autocast does not reach
    FlexAttention, and the rotary embedding returns float32 q and k under it, so without this
    cast attention would run in float32."""
    from transformers.integrations.flex_attention import flex_attention_forward

    kind = query.device.type
    if torch.is_autocast_enabled(kind):
        dtype = torch.get_autocast_dtype(kind)
        query, key, value = (t.to(dtype) for t in (query, key, value))
    return flex_attention_forward(module, query, key, value, attention_mask, **kwargs)


def register_flex() -> None:
    """Make FLEX an attn_implementation transformers models can be loaded with."""
    from transformers import AttentionInterface
    from transformers.masking_utils import (
        ALL_MASK_ATTENTION_FUNCTIONS,
        flex_attention_mask,
    )

    AttentionInterface.register(FLEX, flex_autocast_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(FLEX, flex_attention_mask)


def attention_mask(batch: dict[str, torch.Tensor], attn_implementation: str) -> Any:
    """A BlockMask for FlexAttention; otherwise the dense additive [1, 1, T, T] mask."""
    if "flex" in attn_implementation:
        return block_mask(batch)
    allowed = dense_mask(batch["doc"][0], batch["parent"][0])
    mask = torch.zeros(allowed.shape, dtype=torch.float32, device=allowed.device)
    return mask.masked_fill_(~allowed, torch.finfo(torch.float32).min)[None, None]


def enable_tf32() -> None:
    """Where float32 matmuls remain (fp32 runs, the optimizer), let CUDA use TF32 tensor cores."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def _chunk_logprobs(head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor,
                    temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    logits = head(hidden).float() / temperature
    logp_all = F.log_softmax(logits, dim=-1)
    picked = logp_all.gather(-1, labels[:, None]).squeeze(-1)
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return picked, entropy


def head_logprobs(head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                  chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(label) and entropy for hidden [N, H], labels [N]: the LM head in checkpointed chunks."""
    picked, entropy = [], []
    for start in range(0, max(1, hidden.shape[0]), chunk):  # an empty chunk still joins the graph
        h, y = hidden[start:start + chunk], labels[start:start + chunk]
        if torch.is_grad_enabled() and h.requires_grad:
            p, e = checkpoint(_chunk_logprobs, head, h, y, temperature, use_reentrant=False)
        else:
            p, e = _chunk_logprobs(head, h, y, temperature)
        picked.append(p)
        entropy.append(e)
    return torch.cat(picked), torch.cat(entropy)


def flat_logprobs(model: torch.nn.Module, batch: dict[str, torch.Tensor], temperature: float = 1.0,
                  chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`packing.token_logprobs` for a `collate_flat` batch: (logp, entropy, trained), each [1, T-1]."""
    labels = batch["labels"][:, 1:]
    trained = labels != IGNORE
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False,
              "attention_mask": attention_mask(batch, model.config._attn_implementation)}
    if hasattr(model, "reshard"):  # FSDP2: the root's own forward gathers its embedding and head
        keep = torch.zeros_like(batch["labels"], dtype=torch.bool)
        keep[:, :-1] = trained
        logits = model(**inputs, logits_to_keep=keep).logits
        picked, entropy_picked = head_logprobs(torch.nn.Identity(), logits.reshape(-1, logits.shape[-1]),
                                               labels[trained], temperature, chunk)
    else:
        hidden = model.get_decoder()(**inputs).last_hidden_state[:, :-1]
        picked, entropy_picked = head_logprobs(model.get_output_embeddings(), hidden[trained], labels[trained],
                                               temperature, chunk)
    logp = torch.zeros(trained.shape, dtype=picked.dtype, device=picked.device).masked_scatter(trained, picked)
    entropy = torch.zeros(trained.shape, dtype=picked.dtype, device=picked.device).masked_scatter(
        trained, entropy_picked)
    return logp, entropy, trained


register_flex()
