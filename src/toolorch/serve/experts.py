"""Expert models as the gateway calls them: asynchronously, over HTTP, with the catalog's limits.

    expert = HttpExpert(catalog_expert, http_client)          # any OpenAI-compatible endpoint
    reply = await expert.ask("question", timeout_s=20, request_id="req-1")   # ExpertReply | UpstreamError

`LiveSimulatedExpert` stands in for a profile's `backend: simulated` experts when the gateway is
started from a profile (a workstation): it answers as the simulated expert server does
(serve.sim_experts: nothing answered, said so, the declared profile's token and latency draws
seeded by the prompt), in process; the latency is slept x `latency_scale`, 0 by default. For a
held-out task (eval through the gateway: the task comes with its gold answer) it draws exactly
what the runtime's SimulatedExpert draws for that task in in-process eval.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Protocol

import httpx2

from toolorch.core.catalog import CatalogExpert
from toolorch.core.records import Task
from toolorch.runtime.experts import ExpertReply, SimulatedExpert, approx_tokens
from toolorch.serve.http import ClientShards
from toolorch.serve.errors import upstream_message
from toolorch.serve.resilience import UpstreamError, retry_after
from toolorch.serve.sim_experts import simulated_reply


class AsyncExpert(Protocol):
    name: str

    async def ask(self, prompt: str, timeout_s: float, request_id: str, task: Task | None = None) -> ExpertReply:
        """`task`: the request's task; only a simulated expert reads it (its gold answer, if any)."""
        ...


async def post_chat(client: ClientShards, url: str, body: dict, headers: dict[str, str], timeout_s: float,
                    who: str) -> dict:
    """One chat completion POST; every failure is an UpstreamError with the upstream's status."""
    try:
        resp = await client.post(url, json=body, headers=headers, timeout=timeout_s)
    except httpx2.TimeoutException:
        raise UpstreamError(f"{who} did not answer within {timeout_s:.1f} s", timeout=True) from None
    except httpx2.HTTPError as e:
        raise UpstreamError(f"{who} unreachable: {e.__class__.__name__}: {e}") from None
    if resp.status_code != 200:
        message, code = upstream_message(resp.content)
        raise UpstreamError(f"{who} answered HTTP {resp.status_code}: {message}" + (f" ({code})" if code else ""),
                            status=resp.status_code, retry_after_s=retry_after(resp.headers.get("retry-after")))
    try:
        data = resp.json()
        choice = data["choices"][0]["message"]
        return {"text": choice.get("content") or "", "usage": data.get("usage") or {}}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise UpstreamError(f"{who} answered 200 without a chat completion: {resp.text[:200]!r}",
                            status=502) from None


class HttpExpert:
    def __init__(self, cfg: CatalogExpert, client: ClientShards):
        if not cfg.base_url:
            raise ValueError(f"expert '{cfg.name}' needs base_url")
        self.name = cfg.name
        self.cfg = cfg
        self.client = client
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        self.auth = {"Authorization": f"Bearer {key}"} if key else {}

    async def ask(self, prompt: str, timeout_s: float, request_id: str, task: Task | None = None) -> ExpertReply:
        start = time.monotonic()
        body = {"model": self.cfg.model or self.cfg.name, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": self.cfg.max_tokens, "temperature": 0.0}
        out = await post_chat(self.client, self.url, body, {**self.auth, "x-request-id": request_id}, timeout_s,
                              f"expert '{self.name}'")
        usage = out["usage"]
        return ExpertReply(out["text"], int(usage.get("prompt_tokens") or approx_tokens(prompt)),
                           int(usage.get("completion_tokens") or approx_tokens(out["text"])),
                           time.monotonic() - start)


class LiveSimulatedExpert:
    def __init__(self, cfg: CatalogExpert, seed: int = 0, latency_scale: float = 0.0):
        self.name = cfg.name
        self.profile = cfg.simulated
        self.max_tokens = cfg.max_tokens  # capped as the simulated server caps them
        self.seed = seed
        self.latency_scale = latency_scale
        self.graded = SimulatedExpert(cfg, seed, per_task=True)  # the eval's draw

    async def ask(self, prompt: str, timeout_s: float, request_id: str, task: Task | None = None) -> ExpertReply:
        graded = task is not None and task.answer != ""  # a user's question has no gold answer
        # the in-process simulator's draw for a held-out task (uncapped, as eval counts it); else the server's
        reply = self.graded.ask(prompt, task) if graded else simulated_reply(self.name, self.profile, self.seed, prompt)
        wait_s = reply.latency_s * self.latency_scale
        if wait_s > timeout_s:
            await asyncio.sleep(timeout_s)
            raise UpstreamError(f"simulated expert '{self.name}' did not answer within {timeout_s:.1f} s",
                                timeout=True)
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        if graded:
            return reply
        return ExpertReply(reply.text, reply.tokens_in, min(reply.tokens_out, self.max_tokens), reply.latency_s)


def build_async_expert(cfg: CatalogExpert, client: ClientShards, seed: int = 0,
                       latency_scale: float = 0.0) -> AsyncExpert:
    if cfg.backend == "openai":
        return HttpExpert(cfg, client)
    if cfg.backend == "simulated":
        return LiveSimulatedExpert(cfg, seed, latency_scale)
    raise ValueError(f"expert '{cfg.name}': backend '{cfg.backend}' cannot be served (use openai or simulated)")
