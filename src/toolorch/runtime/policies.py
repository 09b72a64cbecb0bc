"""Policies: what writes the assistant turns. Learned (HF, OpenAI-compatible) and scripted.

A policy sees only the chat so far, never the task's gold answer. Scripted
policies that follow a plan (the pass@k teacher, the oracle) are built per task
by their owner, who decides what they may know.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from toolorch.core.records import ToolCall
from toolorch.runtime.chat import Tools, prompt_ids
from toolorch.runtime.endpoint_gate import EndpointGate
from toolorch.runtime.experts import approx_tokens
from toolorch.runtime.openai_chat import complete, make_client, valid_unicode
from toolorch.runtime.parsing import hermes_text, render_call

POLICY_KEY_ENV = "TOOLORCH_POLICY_API_KEY"  # the key of an `openai:` policy's endpoint, if it needs one


@dataclass(frozen=True)
class Generation:
    text: str
    tokens_in: int
    tokens_out: int


class Policy(Protocol):
    """Writes the next assistant turn of a chat; `tools` are the episode's tool schemas (the
    chat template's `tools=`): a model reads them as its template renders them, a script ignores them."""

    name: str

    def generate(self, messages: list[dict[str, Any]], tools: Tools = None) -> Generation: ...


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(approx_tokens(m["content"]) + 4 for m in messages)


def question_of(messages: list[dict[str, Any]]) -> str:
    return next(m["content"] for m in messages if m["role"] == "user")


def last_observation(messages: list[dict[str, Any]]) -> str | None:
    return next((m["content"] for m in reversed(messages) if m["role"] == "tool"), None)


_ANSWER_PREFIX = re.compile(r"^\s*(final\s+)?answer\s*:\s*", re.IGNORECASE)


def answer_from_observation(text: str | None) -> str:
    """What a scripted policy answers after a tool: the value, minus an 'Answer:' prefix."""
    return _ANSWER_PREFIX.sub("", text or "").strip() or "unknown"


class PlanPolicy:
    """Emits a fixed list of calls, then answers with the last observation.

    A string argument equal to "$prev" is replaced by the previous observation, so
    multi-hop plans (look up an id, then use it) run without knowing the values.
    """

    def __init__(self, calls: list[ToolCall], name: str = "plan",
                 answer: Callable[[str | None], str] = answer_from_observation):
        self.name = name
        self.calls = calls
        self.answer = answer

    def generate(self, messages: list[dict[str, Any]], tools: Tools = None) -> Generation:
        step = sum(1 for m in messages if m["role"] == "assistant")
        prev = last_observation(messages)
        if step < len(self.calls):
            call = self.calls[step]
            args = {k: (prev if v == "$prev" else v) for k, v in call.arguments.items()}
            text = render_call(ToolCall(name=call.name, arguments=args))
        else:
            text = f"<answer>{self.answer(prev)}</answer>"
        return Generation(text, prompt_tokens(messages), approx_tokens(text))


class AskToolPolicy:
    """Passes the user's question to one tool and answers with its reply (e.g. `only:<expert>`)."""

    def __init__(self, tool: str, name: str | None = None):
        self.tool = tool
        self.name = name or f"ask:{tool}"

    def generate(self, messages: list[dict[str, Any]], tools: Tools = None) -> Generation:
        if not any(m["role"] == "assistant" for m in messages):
            arg = "query" if self.tool == "search" else "question"
            text = render_call(ToolCall(name=self.tool, arguments={arg: question_of(messages)}))
        else:
            text = f"<answer>{answer_from_observation(last_observation(messages))}</answer>"
        return Generation(text, prompt_tokens(messages), approx_tokens(text))


class HFPolicy:
    """A local transformers causal LM with a chat template; sampling is seeded."""

    def __init__(self, model_dir: str | Path, max_new_tokens: int = 128, temperature: float = 0.0,
                 seed: int = 0, name: str | None = None, model: Any = None, tokenizer: Any = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name or f"hf:{Path(model_dir).name}"
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_dir)
        self.model = model or AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        self.calls = 0

    def generate(self, messages: list[dict[str, Any]], tools: Tools = None) -> Generation:
        import torch

        ids = torch.tensor([prompt_ids(self.tokenizer, messages, tools)])
        torch.manual_seed(self.seed + self.calls)  # reproducible, yet different at each turn
        self.calls += 1
        sample = self.temperature > 0
        with torch.no_grad():
            out = self.model.generate(
                ids, max_new_tokens=self.max_new_tokens, do_sample=sample,
                temperature=self.temperature if sample else None, top_k=None, top_p=None,
                pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
            )
        new = out[0, ids.shape[1]:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return Generation(text, int(ids.shape[1]), int(new.shape[0]))


def wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat as OpenAIPolicy sends it: each message's role and content as the episode holds
    them - tool results as `tool` turns, the policy's own turns as the text it wrote - so that
    the server's chat template renders the tokens training rendered (chat.tokenize_chat)."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def openai_spec(spec: str) -> tuple[str, str]:
    """`openai:<base_url>#<model>` -> (base_url, model); the model is `orchestrator` when omitted."""
    url, _, model = spec.removeprefix("openai:").partition("#")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"policy '{spec}': expected openai:<http(s) base URL>#<model>")
    return url, model or "orchestrator"


class OpenAIPolicy:
    """A policy served behind an OpenAI-compatible endpoint: vLLM serving a checkpoint with
    `--enable-auto-tool-choice --tool-call-parser hermes` (scripts/serve-orchestrator.sh).

    It sends `wire_messages(messages)` and the episode's tool schemas as `tools=`, which the
    server passes to the checkpoint's chat template as training did. The server's parsed
    `tool_calls` come back as canonical `<tool_call>` text (parsing.hermes_text), so the
    episode loop reads one format whichever engine wrote the turn. What the server cannot
    give back: text after a call and a call's own spacing (its parser keeps neither), and,
    with tools, vLLM keeps special tokens in the text (the hermes parser asks for them).

        OpenAIPolicy.from_spec("openai:http://127.0.0.1:8000/v1#orchestrator")
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, temperature: float = 0.0,
                 max_tokens: int = 256, timeout_s: float = 60.0, max_retries: int = 3, seed: int = 0,
                 gate: EndpointGate | None = None):
        self.name = f"openai:{model}"
        self.gate = gate  # shared bound on calls to this endpoint (runtime.endpoint_gate)
        self.model = model
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        self.client = make_client(base_url, key, timeout_s)
        self.attempts = max_retries + 1
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed

    @classmethod
    def from_spec(cls, spec: str, **settings: Any) -> OpenAIPolicy:
        """`openai:<base_url>#<model>`; the key, if the endpoint needs one, comes from
        TOOLORCH_POLICY_API_KEY."""
        return cls(*openai_spec(spec), api_key_env=POLICY_KEY_ENV, **settings)

    def generate(self, messages: list[dict[str, Any]], tools: Tools = None) -> Generation:
        request: dict[str, Any] = {"model": self.model, "messages": wire_messages(messages),
                                   "temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed}
        if tools:
            request["tools"] = tools
        resp = complete(self.client, attempts=self.attempts, gate=self.gate, **request)
        message = resp.choices[0].message
        calls = [(c.function.name, c.function.arguments or "") for c in message.tool_calls or []
                 if getattr(c, "function", None) is not None]
        text = valid_unicode(hermes_text(message.content, calls))
        usage = resp.usage
        return Generation(text, usage.prompt_tokens if usage else prompt_tokens(messages),
                          usage.completion_tokens if usage else approx_tokens(text))
