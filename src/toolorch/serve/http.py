"""The gateway's HTTP client for experts, tools and engine probes: small httpx2 pools used in turn.

    client = ClientShards(shards=8, connections_per_shard=64)
    resp = await client.post(url, json=body, timeout=10)
    await client.aclose()

httpcore2 checks every pooled connection (a poll() each) on every request, so one pool of 200
connections costs ~200 syscalls a request at 200 concurrent calls; the same connections spread
over a few pools cost a few dozen (measured: benchmarks/results/gateway/).
"""
from __future__ import annotations

from itertools import cycle
from typing import Any

import httpx2


class ClientShards:
    def __init__(self, shards: int = 8, connections_per_shard: int = 64):
        limits = httpx2.Limits(max_connections=connections_per_shard, max_keepalive_connections=connections_per_shard)
        self.clients = [httpx2.AsyncClient(limits=limits) for _ in range(shards)]
        self._next = cycle(self.clients)

    async def post(self, url: str, **kwargs: Any) -> httpx2.Response:
        return await next(self._next).post(url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx2.Response:
        return await next(self._next).get(url, **kwargs)

    async def aclose(self) -> None:
        for c in self.clients:
            await c.aclose()
