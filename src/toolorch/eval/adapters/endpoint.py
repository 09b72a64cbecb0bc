"""An OpenAI-compatible chat endpoint the benchmark adapters talk to (user simulator, LLM judge).

    ep = Endpoint(base_url="http://127.0.0.1:8000/v1", model="judge")
    text = EndpointChat(ep).say([{"role": "user", "content": "..."}])

Retries are bounded (`max_retries`, exponential backoff from `backoff_s`); when they run
out, `toolorch.runtime.openai_chat.EndpointError` names the URL and the last failure.
"""
from __future__ import annotations

import os
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from toolorch.runtime.openai_chat import complete, make_client, reply_text


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str
    model: str
    api_key_env: Optional[str] = None  # the name of the env var holding the key; never the key
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(512, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    backoff_s: float = Field(0.5, ge=0)
    seed: int = 0


class EndpointChat:
    """One client per endpoint; `say` returns the reply's text (empty string if it has none)."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        key = os.environ.get(endpoint.api_key_env, "") if endpoint.api_key_env else ""
        self.client = make_client(endpoint.base_url, key, endpoint.timeout_s)

    def say(self, messages: list[dict[str, Any]], max_tokens: int | None = None) -> str:
        ep = self.endpoint
        resp = complete(self.client, attempts=ep.max_retries + 1, backoff_s=ep.backoff_s, model=ep.model,
                        messages=messages, temperature=ep.temperature, max_tokens=max_tokens or ep.max_tokens,
                        seed=ep.seed)
        return reply_text(resp)
