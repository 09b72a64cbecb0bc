"""A team's own functions as tools: POST the arguments as JSON to a URL, show the reply.

    tool = HttpTool(entry, http_client)     # entry: catalog_file.HttpToolEntry
    text, is_error = await tool.invoke({"city": "Oslo"}, timeout_s=5, request_id="req-1")

A 2xx reply is the observation (JSON compacted, text as is); a 4xx is an error observation
the orchestrator reads; connection errors, timeouts, 429 and 5xx raise UpstreamError (retried,
counted by the tool's breaker). Header values come from env vars (`headers_env`), never the file.
"""
from __future__ import annotations

import json
import os
from typing import Any

import httpx2

from toolorch.core.records import ToolSpec
from toolorch.serve.http import ClientShards
from toolorch.serve.catalog_file import HttpToolEntry
from toolorch.serve.errors import upstream_message
from toolorch.serve.resilience import RETRYABLE_STATUSES, UpstreamError, retry_after


class HttpTool:
    def __init__(self, entry: HttpToolEntry, client: ClientShards):
        self.entry = entry
        self.client = client
        self.spec = ToolSpec(name=entry.name, description=entry.description, parameters=entry.parameters,
                             kind="http", cost_usd=entry.cost_usd, latency_s=entry.latency_s)
        self.upstream = f"http:{entry.name}"
        self.attempts = entry.max_retries + 1
        self.timeout_s = entry.timeout_s
        self.headers = {h: os.environ.get(env, "") for h, env in entry.headers_env.items()}

    async def invoke(self, arguments: dict[str, Any], timeout_s: float, request_id: str) -> tuple[str, bool]:
        who = f"tool '{self.entry.name}'"
        try:
            resp = await self.client.post(self.entry.url, json=arguments, timeout=timeout_s,
                                          headers={**self.headers, "x-request-id": request_id})
        except httpx2.TimeoutException:
            raise UpstreamError(f"{who} did not answer within {timeout_s:.1f} s", timeout=True) from None
        except httpx2.HTTPError as e:
            raise UpstreamError(f"{who} unreachable: {e.__class__.__name__}") from None
        if resp.status_code in RETRYABLE_STATUSES:
            message, _ = upstream_message(resp.content)
            raise UpstreamError(f"{who} answered HTTP {resp.status_code}: {message}", status=resp.status_code,
                                retry_after_s=retry_after(resp.headers.get("retry-after")))
        if resp.status_code >= 400:
            message, _ = upstream_message(resp.content)
            return f"{who} refused the call (HTTP {resp.status_code}): {message}", True
        try:
            return json.dumps(resp.json(), ensure_ascii=False, separators=(",", ":")), False
        except ValueError:
            return resp.text, False
