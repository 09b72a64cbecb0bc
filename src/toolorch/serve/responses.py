"""Chat completion bodies and SSE chunks in OpenAI's shape, with toolorch's object beside `usage`.

    body = completion(meta, outcome, options)        # non-streaming
    for event in stream_events(meta, outcome, options, include_usage): ...   # `data: {...}` lines
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterator

from toolorch.serve.contract import Options
from toolorch.serve.orchestration import Outcome

DONE = "data: [DONE]\n\n"


@dataclass(frozen=True)
class Meta:
    request_id: str
    model: str
    orchestrator: str
    created: int

    @classmethod
    def now(cls, request_id: str, model: str, orchestrator: str) -> Meta:
        return cls(request_id, model, orchestrator, int(time.time()))

    @property
    def id(self) -> str:
        return f"chatcmpl-{self.request_id}"


def sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


def usage(outcome: Outcome) -> dict[str, int]:
    u = outcome.traj.usage
    return {"prompt_tokens": u.tokens_in, "completion_tokens": u.tokens_out, "total_tokens": u.tokens_in + u.tokens_out}


def toolorch_object(meta: Meta, outcome: Outcome, options: Options) -> dict[str, Any]:
    """What the gateway did: cost, turns, why it stopped, the contract in effect, and the trace if asked."""
    traj = outcome.traj
    out: dict[str, Any] = {
        "request_id": meta.request_id, "orchestrator": meta.orchestrator,
        "cost_usd": round(traj.usage.cost_usd, 8), "latency_s": round(outcome.wall_s, 6),
        "turns": len(traj.turns), "stop_reason": traj.stop_reason,
        "options": options.model_dump(mode="json"),
    }
    if options.task is not None:  # eval through the gateway scores this record with its own reward code
        out["trajectory"] = traj.model_dump(mode="json")
    if options.include_trace:
        out["trace"] = {
            "steps": [s.model_dump(mode="json") for s in outcome.steps],
            "totals": {"tokens_in": traj.usage.tokens_in, "tokens_out": traj.usage.tokens_out,
                       "cost_usd": round(traj.usage.cost_usd, 8),
                       "latency_s": round(outcome.wall_s, 6),
                       "accounted_latency_s": round(traj.usage.latency_s, 6),  # as training accounts it
                       "tool_calls": sum(1 for s in outcome.steps if s.kind != "orchestrator"),
                       "retries": sum(s.retries for s in outcome.steps),
                       "fallbacks": sum(1 for s in outcome.steps if s.fallback)},
        }
    return out


def completion(meta: Meta, outcome: Outcome, options: Options) -> dict[str, Any]:
    return {
        "id": meta.id, "object": "chat.completion", "created": meta.created, "model": meta.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": outcome.answer},
                     "finish_reason": outcome.finish_reason}],
        "usage": usage(outcome),
        "toolorch": toolorch_object(meta, outcome, options),
    }


def chunk(meta: Meta, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": meta.id, "object": "chat.completion.chunk", "created": meta.created, "model": meta.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}


def final_events(meta: Meta, outcome: Outcome, options: Options, include_usage: bool) -> Iterator[str]:
    """The answer, the finish chunk (with the toolorch object), the usage chunk if asked, [DONE]."""
    yield sse(chunk(meta, {"content": outcome.answer}))
    yield sse(chunk(meta, {}, outcome.finish_reason, toolorch=toolorch_object(meta, outcome, options)))
    if include_usage:
        yield sse({"id": meta.id, "object": "chat.completion.chunk", "created": meta.created, "model": meta.model,
                   "choices": [], "usage": usage(outcome)})
    yield DONE
