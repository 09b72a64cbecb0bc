"""The request contract: OpenAI Chat Completions plus toolorch's extras (the SDK's `extra_body`).

    body = ChatRequest.parse(raw_json)          # ApiError 400 naming the field on bad input
    options = body.options(tool_names, defaults) # the values in effect, echoed in the response

Extras: `preference` (a profile name from runtime.preferences.PROFILES, or an object with
`profile` and/or `accuracy`/`cost`/`latency` weights and `allow`/`deny`/`prefer` tool lists),
`max_cost_usd`, `max_latency_s`, `max_turns`, `max_turn_tokens`, `include_trace`. `max_tokens` (or
`max_completion_tokens`) caps the orchestrator's own output tokens over the whole task;
`max_turn_tokens` caps one orchestrator turn (at most what the orchestrator was started with).
`temperature` and `seed` set the orchestrator's sampling for this request (turn k of an `hf:`
orchestrator samples with seed + k, as runtime.policies.HFPolicy counts its calls); `top_p` is
accepted and not applied. Unknown fields (`tools`, `response_format`, ...) are a 400 naming them
rather than silently ignored.

`task` (held-out eval through the gateway): a task record as synth-tasks writes it. The gateway
runs it as in-process eval does: the tools of its world (`task.env`, a folder of the gateway's
`--envs-dir`), its preference, its question (the user message must be that question), its gold
answer for the simulated experts only; the reply carries the episode record
(`toolorch.trajectory`), which eval scores with its own reward code.
"""
from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from toolorch.core.records import Preference, Task
from toolorch.runtime.preferences import PROFILES
from toolorch.serve.errors import ApiError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str) or self.content is None:
            return self.content or ""
        return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class StreamOptions(Strict):
    include_usage: bool = False


class PreferenceIn(Strict):
    profile: str | None = None
    accuracy: float | None = Field(None, ge=0)
    cost: float | None = Field(None, ge=0)
    latency: float | None = Field(None, ge=0)
    allow: list[str] | None = None
    deny: list[str] = []
    prefer: list[str] = []

    @field_validator("profile")
    @classmethod
    def known_profile(cls, v: str | None) -> str | None:
        if v is not None and v not in PROFILES:
            raise ValueError(f"unknown profile '{v}'; known: {', '.join(sorted(PROFILES))}")
        return v


class ChatRequest(Strict):
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)
    user: str | None = Field(None, max_length=256)
    metadata: dict[str, str] | None = None
    # toolorch extras
    preference: PreferenceIn | None = None
    max_cost_usd: float | None = Field(None, gt=0)
    max_latency_s: float | None = Field(None, gt=0)
    max_turns: int | None = Field(None, ge=1, le=100)
    max_turn_tokens: int | None = Field(None, ge=1)
    include_trace: bool = False
    task: Task | None = None

    @field_validator("preference", mode="before")
    @classmethod
    def profile_name(cls, v: Any) -> Any:
        return {"profile": v} if isinstance(v, str) else v

    @classmethod
    def parse(cls, raw: bytes) -> ChatRequest:
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise ApiError(400, f"the body is not JSON: {e}", "invalid_json") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object", "invalid_request")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise validation_error(e) from None

    def question(self) -> str:
        """The task: the last user message, after any earlier turns of the conversation."""
        users = [i for i, m in enumerate(self.messages) if m.role == "user"]
        if not users or not self.messages[users[-1]].text().strip():
            raise ApiError(400, "messages: need a user message with text (the task)", "invalid_request",
                           "messages")
        last = users[-1]
        earlier = [f"{m.role}: {m.text()}" for m in self.messages[:last] if m.text().strip()]
        task = self.messages[last].text()
        if self.task is not None and (earlier or task != self.task.question):
            raise ApiError(400, "messages: with `task`, the one user message must be the task's question",
                           "invalid_value", "messages")
        if self.task is not None and self.preference is not None:
            raise ApiError(400, "preference: a `task` carries its own preference; give one or the other",
                           "invalid_value", "preference")
        return task if not earlier else "Earlier in this conversation:\n" + "\n".join(earlier) + "\n\n" + task


def validation_error(e: ValidationError) -> ApiError:
    first = e.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    if first["type"] == "extra_forbidden":
        return ApiError(400, f"unsupported parameter '{param}'", "unsupported_parameter", param)
    msg = first["msg"].removeprefix("Value error, ")
    return ApiError(400, f"{param or 'body'}: {msg}", "invalid_value", param)


class Sampling(Strict):
    """How the orchestrator samples for one request; None: as it was started."""

    temperature: float | None = None
    seed: int | None = None
    max_turn_tokens: int | None = None


class Options(Strict):
    """The per-request contract in effect (echoed as `toolorch.options`)."""

    preference: Preference
    profile: str  # a PROFILES name, or "custom"
    max_cost_usd: float
    max_latency_s: float
    max_turns: int
    max_tokens: int
    include_trace: bool
    sampling: Sampling
    task: str | None = None  # the held-out task's id (eval through the gateway): the reply carries its episode


def resolve_preference(given: PreferenceIn | None, tools: list[str], default: Preference) -> tuple[Preference, str]:
    """The request's preference (400 naming `preference.<field>[i]` for an unknown tool) and its profile name."""
    if given is None:
        return default, "custom" if default.model_dump() != Preference().model_dump() else "default"
    weights = dict(PROFILES[given.profile]) if given.profile else {"accuracy": 1.0, "cost": 0.0, "latency": 0.0}
    custom = {k: getattr(given, k) for k in ("accuracy", "cost", "latency") if getattr(given, k) is not None}
    weights.update(custom)
    for field in ("allow", "deny", "prefer"):
        for i, tool in enumerate(getattr(given, field) or []):
            if tool not in tools:
                raise ApiError(400, f"preference.{field}[{i}]: unknown tool '{tool}'; tools: {', '.join(tools)}",
                               "invalid_value", f"preference.{field}")
    profile = given.profile if given.profile and not custom else "custom"
    return Preference(**weights, allow=given.allow, deny=given.deny, prefer=given.prefer), profile
