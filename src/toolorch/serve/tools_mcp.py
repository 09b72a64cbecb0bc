"""MCP servers as tool sources (the `mcp` SDK): each server's tools join the orchestrator's list.

    async with McpSource.connect(entry, root) as source:   # stdio command or streamable HTTP url
        source.tools                                        # ExternalTool objects, one per listed tool
        text, is_error = await source.tools[0].invoke({...}, timeout_s=5, request_id="req-1")

Connected once when the gateway starts (`list_tools` -> tool specs: name, description, the
input schema as parameters) and closed when it stops. A tool's `isError` result is an error
observation; a server that cannot be reached raises UpstreamError (retried, breaker per server).
"""
from __future__ import annotations

import json
import os
import re
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from toolorch.core.records import ToolSpec
from toolorch.serve.catalog_file import McpEntry
from toolorch.serve.resilience import UpstreamError

NAME = re.compile(r"[^A-Za-z0-9_]")


def content_text(result: Any) -> str:
    parts = []
    for block in result.content or []:
        text = getattr(block, "text", None)
        parts.append(text if text is not None else json.dumps(block.model_dump(mode="json"), ensure_ascii=False))
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


class McpTool:
    def __init__(self, source: McpSource, remote: Any):
        self.source = source
        self.remote_name = remote.name
        name = NAME.sub("_", source.entry.prefix + remote.name)[:64]
        schema = dict(remote.input_schema or {"type": "object", "properties": {}})
        schema.setdefault("properties", {})
        self.spec = ToolSpec(name=name, description=(remote.description or remote.name).strip(),
                             parameters=schema, kind="mcp", cost_usd=source.entry.cost_usd,
                             latency_s=source.entry.latency_s)
        self.upstream = f"mcp:{source.entry.name}"
        self.attempts = 1  # a tool call may have effects: never repeated
        self.timeout_s = source.entry.timeout_s

    async def invoke(self, arguments: dict[str, Any], timeout_s: float, request_id: str) -> tuple[str, bool]:
        try:
            result = await self.source.client.call_tool(self.remote_name, arguments, read_timeout_seconds=timeout_s,
                                                        meta={"x-request-id": request_id})
        except TimeoutError:
            raise UpstreamError(f"MCP server '{self.source.entry.name}' did not answer within {timeout_s:.1f} s",
                                timeout=True) from None
        except Exception as e:  # the SDK's transport and protocol errors
            raise UpstreamError(f"MCP server '{self.source.entry.name}': {e.__class__.__name__}: {e}") from None
        return content_text(result), bool(result.is_error)


class McpSource:
    def __init__(self, entry: McpEntry, client: Client):
        self.entry = entry
        self.client = client
        self.tools: list[McpTool] = []

    @classmethod
    @asynccontextmanager
    async def connect(cls, entry: McpEntry, root: Path) -> AsyncIterator[McpSource]:
        if entry.command is not None:
            env = {**os.environ, **{k: os.environ.get(v, "") for k, v in entry.env.items()}}
            target: Any = StdioServerParameters(command=entry.command[0], args=entry.command[1:], env=env,
                                                cwd=str(root))
        else:
            target = entry.url
        async with Client(target, read_timeout_seconds=entry.timeout_s) as client:
            source = cls(entry, client)
            listed = await client.list_tools()
            source.tools = [McpTool(source, t) for t in listed.tools]
            yield source
