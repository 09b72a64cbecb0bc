"""The gateway's long-lived parts, assembled once: catalog, tools, experts, orchestrators, budgets.

    gw = Gateway(settings, keyring)      # loads the orchestrators (an HF checkpoint, an engine client)
    await gw.start()                     # HTTP client, MCP servers, expert clients
    ...serve requests (app.py)...
    await gw.stop()
"""
from __future__ import annotations

import asyncio
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from toolorch.core.records import Task
from toolorch.runtime.env.world import EnvSession, Environment
from toolorch.runtime.tools import Toolbox
from toolorch.serve.budget import Ledger
from toolorch.serve.catalog_file import Served
from toolorch.serve.corpus import documents_world, load_world
from toolorch.serve.errors import ApiError
from toolorch.serve.experts import build_async_expert
from toolorch.serve.http import ClientShards
from toolorch.serve.keys import Keyring
from toolorch.serve.metrics import Metrics
from toolorch.serve.orchestrators import PROBE_EVERY_S, Split, build_orchestrator
from toolorch.serve.resilience import Breakers
from toolorch.serve.toolbox import ExternalTool, Services
from toolorch.serve.tools_http import HttpTool
from toolorch.serve.tools_mcp import McpSource

log = logging.getLogger("toolorch.serve")


@dataclass
class Settings:
    served: Served
    orchestrators: list[tuple[str, str]]  # (variant name, policy spec)
    canary_weight: float = 0.0
    seed: int = 0
    max_inflight: int = 256  # orchestrations at once; beyond: 503 with Retry-After
    max_request_s: float = 1800.0  # every request's deadline, whatever max_latency_s asks
    tool_threads: int = 8  # world and code tools run here
    engine_threads: int = 256  # concurrent calls to an OpenAI-compatible orchestrator engine
    engine_timeout_s: float = 60.0
    engine_retries: int = 2
    breaker_min_calls: int = 10  # an upstream's breaker opens when, over its last 20 calls (at least
    breaker_failure_rate: float = 0.5  # this many), more than this share failed;
    breaker_reset_s: float = 10.0  # after this long, one trial call
    ledger_path: Path | None = None  # per-key spend survives restarts here; None: memory only
    simulated_latency_scale: float = 0.0  # in-process simulated experts: x their declared latency
    envs_dir: Path | None = None  # the worlds held-out tasks name (eval through the gateway); None: no eval


class Gateway:
    def __init__(self, settings: Settings, keyring: Keyring):
        self.settings = settings
        self.served = settings.served
        self.catalog = settings.served.catalog
        self.keyring = keyring
        self.metrics = Metrics()
        self.ledger = Ledger(keyring.budgets(), settings.ledger_path)
        self.breakers = Breakers(min_calls=settings.breaker_min_calls, failure_rate=settings.breaker_failure_rate,
                                 reset_s=settings.breaker_reset_s,
                                 on_change=lambda name, is_open: self.metrics.breaker_open.labels(name).set(int(is_open)))
        names = self.catalog.names()
        for name in names:  # every expert's breaker is a series from the start: closed reads 0, not "No Data"
            self.metrics.breaker_open.labels(name).set(0)
        self.split = Split([build_orchestrator(n, s, names, settings.seed, settings.engine_threads,
                                               settings.engine_timeout_s, settings.engine_retries)
                            for n, s in settings.orchestrators], settings.canary_weight)
        self.pool = ThreadPoolExecutor(settings.tool_threads, "tools")
        self._tmp = tempfile.TemporaryDirectory(prefix="toolorch-serve-")
        self.world = self._world()
        self.external: dict[str, ExternalTool] = {}
        self.inflight = 0
        self.draining = False
        self._stack = AsyncExitStack()
        self.http: ClientShards | None = None
        self.services: Services | None = None
        self._shared_toolbox: Toolbox | None = None
        self._prober: asyncio.Task | None = None
        self._eval_worlds: dict[str, Environment] = {}

    def _world(self) -> Environment | None:
        tools, root = self.served.tools, self.served.root
        if tools.world:
            return load_world(root / tools.world)
        if tools.documents:
            return documents_world(root / tools.documents, Path(self._tmp.name) / "documents")
        return None

    async def start(self) -> None:
        self.http = ClientShards(shards=8, connections_per_shard=max(16, self.settings.max_inflight // 4))
        self._stack.push_async_callback(self.http.aclose)
        experts = {e.name: build_async_expert(e, self.http, self.settings.seed, self.settings.simulated_latency_scale)
                   for e in self.catalog.experts}
        for entry in self.served.tools.http:
            self._add(HttpTool(entry, self.http))
        for entry in self.served.tools.mcp:
            source = await self._stack.enter_async_context(McpSource.connect(entry, self.served.root))
            for tool in source.tools:
                self._add(tool)
            log.info("MCP server '%s': %d tools", entry.name, len(source.tools))
        self.services = Services(experts, self.breakers, self.metrics, self.pool)
        await self.probe_engines()
        self._prober = asyncio.create_task(self._probe_forever())

    async def probe_engines(self) -> None:
        assert self.http is not None
        for v in self.split.variants:
            self.metrics.engine_ready.labels(v.name).set(int(await v.probe(self.http)))

    async def _probe_forever(self) -> None:
        """Readiness is probed here, so GET /ready answers at once from the last probes."""
        while True:
            await asyncio.sleep(PROBE_EVERY_S)
            await self.probe_engines()

    def _add(self, tool: ExternalTool) -> None:
        name = tool.spec.name
        if name in self.external or self.toolbox(None).spec(name) is not None:
            raise ValueError(f"tool name '{name}' is declared twice (give an MCP server a prefix)")
        self.external[name] = tool

    async def stop(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
        await self._stack.aclose()
        self.split.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.ledger.close()
        self._tmp.cleanup()

    def toolbox(self, session: EnvSession | None) -> Toolbox:
        """The runtime toolbox of one request (shared when there is no world: it holds no state then)."""
        with_code = self.served.tools.code
        # Toolbox reads only the experts' names; the gateway calls them itself, asynchronously.
        names = {e: None for e in self.catalog.names()}
        if session is not None:
            return Toolbox(self.catalog, session, names, with_code=with_code)  # type: ignore[arg-type]
        if self._shared_toolbox is None:
            self._shared_toolbox = Toolbox(self.catalog, None, names, with_code=with_code)  # type: ignore[arg-type]
        return self._shared_toolbox

    def tool_names(self) -> list[str]:
        names = [s.name for s in self.toolbox(None).specs] + list(self.external)
        if self.world is not None:
            names = [t.name for t in self.world.spec.tools] + names
        return names

    def eval_world(self, task: Task) -> Environment:
        """The world a held-out task names, from --envs-dir (loaded once); a 400 naming the field if none."""
        envs_dir = self.settings.envs_dir
        if envs_dir is None:
            raise ApiError(400, "task: this gateway runs no held-out tasks (start it with --envs-dir)",
                           "invalid_value", "task")
        if task.env not in self._eval_worlds:
            folder = envs_dir / task.env
            if "/" in task.env or task.env in ("", ".", "..") or not (folder / "env.json").is_file():
                raise ApiError(400, f"task.env: no world '{task.env}' in the gateway's environments",
                               "invalid_value", "task.env")
            self._eval_worlds[task.env] = load_world(folder)
        return self._eval_worlds[task.env]

    async def open_session(self, world: Environment | None) -> EnvSession | None:
        if world is None:
            return None
        return await asyncio.get_running_loop().run_in_executor(self.pool, world.session)

    async def close_session(self, session: EnvSession | None) -> None:
        if session is not None:
            await asyncio.get_running_loop().run_in_executor(self.pool, session.close)

    def models(self) -> list[str]:
        return ["toolorch"] + self.split.names()

    def ready(self) -> dict[str, bool]:
        return {v.name: v.ready for v in self.split.variants}
