"""Chats to token ids with a loss mask: only what the assistant wrote is trained.

The tokenizer's own chat template is the single source of the format, and `render` is
the one call into it: training (SFT, GRPO rollouts), eval (HFPolicy, the route probe)
and serving (the same messages and tools, sent to vLLM by OpenAIPolicy) all render a
chat as `render(tokenizer, messages, tools)`, so the orchestrator reads the same tokens
everywhere. `tools` are the episode's OpenAI function schemas (prompts.tool_schemas);
the template decides what to do with them (see modeling.CHAT_TEMPLATE).

Each message's tokens are the template's rendering of `messages[:i+1]` minus that of
`messages[:i]`; an assistant message is split further into its header (what the
generation prompt adds, e.g. `<|im_start|>assistant\\n`, masked) and its body (content
and end-of-turn token, trained). System, user and tool messages are masked. The same
rule is used when rollouts are tokenized, so SFT and GRPO train on identical token layouts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IGNORE = -100

Tools = list[dict[str, Any]] | None  # OpenAI function schemas, as a chat template's `tools=` takes them


class TemplateError(ValueError):
    """A chat template whose renderings are not prefixes of each other."""


def render(tokenizer: Any, messages: list[dict[str, Any]], tools: Tools = None,
           generation_prompt: bool = False) -> str:
    if not messages and not generation_prompt:
        return ""
    return tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                         add_generation_prompt=generation_prompt)


def encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def prompt_ids(tokenizer: Any, messages: list[dict[str, Any]], tools: Tools = None) -> list[int]:
    """The ids a model reads before writing its next turn."""
    return encode(tokenizer, render(tokenizer, messages, tools, generation_prompt=True))


def suffix(longer: str, prefix: str) -> str:
    if not longer.startswith(prefix):
        raise TemplateError("chat template renders a chat's prefix differently from the chat itself; "
                            "it cannot be split per message for loss masking")
    return longer[len(prefix):]


def tokenize_chat(tokenizer: Any, messages: list[dict[str, Any]], tools: Tools = None) -> tuple[list[int], list[bool]]:
    """Token ids of a whole chat and a mask that is True on assistant-written tokens.

    Returns (ids, trained), both of length L.
    """
    ids: list[int] = []
    trained: list[bool] = []
    before = ""
    for i, message in enumerate(messages):
        after = render(tokenizer, messages[: i + 1], tools)
        if message["role"] == "assistant":
            header = suffix(render(tokenizer, messages[:i], tools, generation_prompt=True), before)
            head_ids = encode(tokenizer, header)
            body_ids = encode(tokenizer, suffix(after, before + header))
            ids += head_ids + body_ids
            trained += [False] * len(head_ids) + [True] * len(body_ids)
        else:
            seg = encode(tokenizer, suffix(after, before))
            ids += seg
            trained += [False] * len(seg)
        before = after
    return ids, trained


def chat_texts(messages_list: list[list[dict[str, Any]]], tokenizer: Any | None = None) -> list[str]:
    """Plain renderings of chats (ChatML when no tokenizer is given): tokenizer training text."""
    if tokenizer is not None:
        return [render(tokenizer, m) for m in messages_list]
    return ["".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs) for msgs in messages_list]


def common_prefix(a: list[int], b: list[int], limit: int) -> int:
    n = 0
    for x, y in zip(a[:limit], b[:limit]):
        if x != y:
            break
        n += 1
    return n


@dataclass
class Sample:
    """One sequence: ids [L], trained mask [L], per-token weight [L] (advantage in GRPO, 1 in SFT)."""

    ids: list[int]
    trained: list[bool]
    weight: list[float] | None = None
    extra: dict = field(default_factory=dict)
    # > 0: the tail of a chat whose first `after` tokens are the head of its row (the row's
    # first sequence, see pack_shared): it attends to them and its positions continue theirs
    after: int = 0

    def __len__(self) -> int:
        return len(self.ids)
