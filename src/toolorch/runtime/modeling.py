"""Tiny orchestrator models built from code: a BPE tokenizer trained on our own text and a
random-init Qwen2 causal LM. Nothing is downloaded; the result is a normal HF folder that
transformers, vLLM and the trainer all load.

    build_tiny_model(out_dir, corpus_texts, seed=0)
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

# ChatML, the format of Qwen models: vLLM's hermes parser and our trainer both expect it.
# Every path passes the episode's tool schemas as `tools=` (chat.render); this template
# deliberately ignores them. The system prompt (prompts.system_prompt) already lists each
# tool with what a schema cannot carry - its price, latency and the user's allowed models -
# and the tiny model has only ever read that list. Rendering the schemas again would roughly
# double a 4096-position model's prompts and change its token ids, hence its trained weights
# and committed metrics, for no information it lacks. Templates that do render `tools`
# (Qwen's own) get them in training, eval and serving alike.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Frequent markup as single (non-special) tokens: they survive decode(skip_special_tokens=True).
MARKUP_TOKENS = ["<tool_call>", "</tool_call>", "<answer>", "</answer>", "<think>", "</think>",
                 '{"name": "', '", "arguments": {']


class TinyModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 4096


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE over `texts` (every byte is covered, so no input is unknown)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.add_tokens(MARKUP_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | Path, texts: Iterable[str], spec: TinyModelSpec | None = None,
                     seed: int = 0) -> Path:
    """Write tokenizer + random-init Qwen2 weights to `out_dir`; returns it."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    spec = spec or TinyModelSpec()
    out = Path(out_dir)
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads, max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def model_device(model: Any) -> Any:
    return next(model.parameters()).device


def precision_context(precision: str, device: Any) -> Any:
    """bf16 autocast (the weights stay float32: the optimizer updates fp32 masters), or nothing."""
    import torch

    if precision == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision: {precision!r} is neither 'fp32' nor 'bf16'")
    return contextlib.nullcontext()


@contextlib.contextmanager
def attention_implementation(model: Any, name: str) -> Iterator[None]:
    """Run `model` with another attn_implementation for a while (decoding with a KV cache goes
    through sdpa even when training runs flex_attention with its block masks)."""
    before = model.config._attn_implementation
    if before != name:
        model.set_attn_implementation(name)
    try:
        yield
    finally:
        if before != name:
            model.set_attn_implementation(before)
