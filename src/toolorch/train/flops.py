"""Model FLOPs of a training step, for TFLOP/s and MFU figures (benchmarks/grpo.py).

    shape = ModelShape.of(model)
    flops = train_flops(shape, positions=..., attention_pairs=..., head_positions=...)

Per position the body's matmuls cost 6 x (parameters outside the embedding) forward and
backward; each attended (query, key) pair costs 12 x layers x heads x head_dim (QK^T and
PV, forward and backward); the LM head, 6 x vocab x hidden, runs only where log-probs are
taken. Counted over the positions a trainer actually runs, this is the hardware's work
(MFU); the norms, rotary and softmax are not counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolorch.runtime.chat import Sample


@dataclass(frozen=True)
class ModelShape:
    body_parameters: int  # everything but the token embedding (and a tied head)
    layers: int
    attention_width: int  # heads x head_dim
    vocab: int
    hidden: int

    @classmethod
    def of(cls, model: Any) -> ModelShape:
        c = model.config
        embedding = model.get_input_embeddings().weight.numel()
        total = sum(p.numel() for p in model.parameters())
        head = model.get_output_embeddings()
        untied = head is not None and head.weight is not model.get_input_embeddings().weight
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        return cls(total - embedding - (head.weight.numel() if untied else 0), c.num_hidden_layers,
                   c.num_attention_heads * head_dim, c.vocab_size, c.hidden_size)


def causal_pairs(n: int) -> int:
    return n * (n + 1) // 2


def row_attention_pairs(row: list[Sample]) -> int:
    """(query, key) pairs a packed row attends: each sequence causally, a tail also its head."""
    head = len(row[0])
    return sum(causal_pairs(len(s)) + (len(s) * head if s.after else 0) for s in row)


def train_flops(shape: ModelShape, positions: int, attention_pairs: int, head_positions: int) -> float:
    return (6.0 * shape.body_parameters * positions + 12.0 * shape.layers * shape.attention_width * attention_pairs
            + 6.0 * shape.vocab * shape.hidden * head_positions)
