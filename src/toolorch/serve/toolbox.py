"""The gateway's tools for one request, behind the async driver of the one episode loop.

    tools = GatewayToolbox(base, external, services, run)   # base: the runtime Toolbox (world, code, experts)
    traj = await arun_episode(task, policy, tools, limits)

The orchestrator's prompt lists `base.specs` plus the external (HTTP, MCP) tools, rendered by
runtime.prompts exactly as in training. Each call reserves its worst-case cost first (no room:
`Halt("budget")`), then runs: experts asynchronously over HTTP through retries and a breaker,
falling back to the next expert the user's preference and the budget allow; world and code
tools on the bounded tool thread pool (the runtime Toolbox, which never raises); HTTP and MCP
tools asynchronously. A tool that fails is an error observation, as in training.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from toolorch.core.records import ANSWER_TOOL, Observation, Preference, Task, ToolCall, ToolSpec, Usage, expert_tool_name
from toolorch.runtime.env.world import ToolError, check_arguments
from toolorch.runtime.episode import Halt
from toolorch.runtime.tools import CODE_PRICE_PER_S, Toolbox
from toolorch.serve.budget import Hold
from toolorch.serve.experts import AsyncExpert
from toolorch.serve.metrics import Metrics
from toolorch.serve.resilience import Breakers, BreakerOpen, UpstreamError, call_upstream
from toolorch.serve.run import RequestRun, ToolRecord

MAX_FALLBACKS = 2
PROMPT_OVERHEAD_TOKENS = 64  # chat template tokens around a prompt, generously


def worst_prompt_tokens(text: str) -> int:
    """An upper bound on a prompt's tokens: BPE tokenizers never emit more tokens than bytes."""
    return len(text.encode("utf-8")) + PROMPT_OVERHEAD_TOKENS


class ExternalTool(Protocol):
    """A tool served outside the runtime (an HTTP function, an MCP server's tool)."""

    spec: ToolSpec
    upstream: str  # breaker name
    attempts: int
    timeout_s: float

    async def invoke(self, arguments: dict[str, Any], timeout_s: float, request_id: str) -> tuple[str, bool]:
        """(text, is_error); raises UpstreamError when the tool could not be reached."""
        ...


@dataclass
class Services:
    """What every request's toolbox shares."""

    experts: dict[str, AsyncExpert]
    breakers: Breakers
    metrics: Metrics
    pool: ThreadPoolExecutor


class GatewayToolbox:
    def __init__(self, base: Toolbox, external: dict[str, ExternalTool], services: Services, run: RequestRun):
        self.base = base
        self.catalog = base.catalog
        self.session = base.session
        self.specs: list[ToolSpec] = base.specs + [t.spec for t in external.values()]
        self.external = external
        self.s = services
        self.run = run

    async def acall(self, call: ToolCall, task: Task) -> Observation | Halt:
        spec = self.base.spec(call.name)
        if call.name in self.external:
            return await self._external(self.external[call.name], call)
        if spec is None:
            return self.base.call(call, task)  # unknown tool: an error observation, nothing runs
        if spec.kind == "expert":
            return await self._expert(spec, call, task)
        return await self._blocking(spec, call, task)

    def _record(self, call: ToolCall, record: ToolRecord) -> None:
        self.run.tools[id(call)] = record
        self.s.metrics.tool_calls.labels(record.kind, record.expert or "", record.status).inc()

    async def _blocking(self, spec: ToolSpec, call: ToolCall, task: Task) -> Observation | Halt:
        worst = CODE_PRICE_PER_S * spec.latency_s if spec.kind == "code" else spec.cost_usd
        hold = self.run.reserve(worst)
        if isinstance(hold, Halt):
            return hold
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            obs = await self.run.upstream(asyncio.wait_for(
                loop.run_in_executor(self.s.pool, self.base.call, call, task), max(self.run.left_s(), 0.001)))
        except asyncio.TimeoutError:
            self.run.settle(hold, worst)  # the thread finishes the call: it is paid for
            self._record(call, ToolRecord(spec.kind, latency_s=loop.time() - t0, status="timeout"))
            return self.run.halt_latency()
        self.run.settle(hold, obs.usage.cost_usd)
        self._record(call, ToolRecord(spec.kind, latency_s=loop.time() - t0, status="error" if obs.error else "ok",
                                      cost_usd=obs.usage.cost_usd, error=obs.content if obs.error else None))
        return obs

    async def _external(self, tool: ExternalTool, call: ToolCall) -> Observation | Halt:
        spec = tool.spec
        usage = Usage(cost_usd=spec.cost_usd, latency_s=spec.latency_s)
        try:
            args = check_arguments(spec, call.arguments)
        except ToolError as e:
            self._record(call, ToolRecord(spec.kind, status="error", error=str(e)))
            return Observation(tool=call.name, content=f"error: {e}", error=True)
        hold = self.run.reserve(spec.cost_usd)
        if isinstance(hold, Halt):
            return hold
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            (text, is_error), retries = await call_upstream(
                lambda timeout: tool.invoke(args, timeout, self.run.request_id), name=tool.upstream,
                breakers=self.s.breakers, attempts=tool.attempts, deadline=self.run.deadline,
                per_try_s=tool.timeout_s, waiting=self.run.upstream)
        except (UpstreamError, BreakerOpen) as e:
            self.run.settle(hold, spec.cost_usd)
            status = "breaker_open" if isinstance(e, BreakerOpen) else e.outcome
            self._record(call, ToolRecord(spec.kind, latency_s=loop.time() - t0, status=status, error=str(e)))
            return Observation(tool=call.name, content=f"error: {e}", error=True, usage=usage)
        self.run.settle(hold, spec.cost_usd)
        self._record(call, ToolRecord(spec.kind, latency_s=loop.time() - t0, retries=retries,
                                      status="error" if is_error else "ok", cost_usd=spec.cost_usd))
        return Observation(tool=call.name, content=self.base.clip(text), error=is_error,
                           usage=usage.model_copy(update={"latency_s": loop.time() - t0}))

    def candidates(self, asked: str, preference: Preference) -> list[str]:
        """`asked`, then the experts a fallback may use: allowed by the user, preferred ones first,
        then cheapest first."""
        others = [e.name for e in self.catalog.by_price()
                  if e.name != asked and e.name in self.s.experts and preference.permits(expert_tool_name(e.name))]
        others.sort(key=lambda n: expert_tool_name(n) not in preference.prefer)
        return [asked] + others[:MAX_FALLBACKS]

    def worst_expert_cost(self, expert: str, question: str) -> float:
        e = self.catalog.expert(expert)
        return e.price.cost(worst_prompt_tokens(question), e.max_tokens)

    async def _expert(self, spec: ToolSpec, call: ToolCall, task: Task) -> Observation | Halt:
        kind = "answer" if spec.name == ANSWER_TOOL else "expert"
        try:
            asked, question, final = self.base.expert_question(call, task)
        except ToolError as e:
            self._record(call, ToolRecord(kind, status="error", error=str(e)))
            return Observation(tool=call.name, content=f"error: {e}", error=True,
                               usage=Usage(cost_usd=spec.cost_usd, latency_s=spec.latency_s))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        failure: Exception | None = None
        reason = ""
        for expert in self.candidates(asked, task.preference):
            if self.s.breakers.is_open(expert):
                failure, reason = BreakerOpen(f"'{expert}' is failing: its circuit breaker is open"), "breaker_open"
                self.s.metrics.tool_calls.labels(kind, expert, reason).inc()
                continue
            worst = self.worst_expert_cost(expert, question)
            if expert != asked and self.run.ledger.can_afford(self.run.budget, self.run.key, worst):
                continue  # the budget does not allow this fallback
            hold = self.run.reserve(worst)
            if isinstance(hold, Halt):
                self.run.tools[id(call)] = ToolRecord(kind, expert=asked, status="halted", error="budget")
                return hold
            result = await self._ask(expert, question, hold, task)
            if isinstance(result, Exception):
                failure, reason = result, "breaker_open" if isinstance(result, BreakerOpen) else result.outcome
                self.s.metrics.tool_calls.labels(kind, expert, reason).inc()
                continue
            reply, retries = result
            obs = self.base.expert_observation(call.name, expert, reply, final)
            self.run.settle(hold, obs.usage.cost_usd)
            self.s.metrics.expert_cost.labels(expert).inc(obs.usage.cost_usd)
            fallback = None
            if expert != asked:
                fallback = {"from": asked, "reason": reason}
                self.s.metrics.fallbacks.labels(asked).inc()
            self._record(call, ToolRecord(kind, expert=expert, latency_s=loop.time() - t0, retries=retries,
                                          fallback=fallback, tokens_in=obs.usage.tokens_in,
                                          tokens_out=obs.usage.tokens_out, cost_usd=obs.usage.cost_usd))
            return obs
        status = reason or "error"
        self.run.tools[id(call)] = ToolRecord(kind, expert=asked, latency_s=loop.time() - t0, status=status,
                                              error=str(failure))
        return Observation(tool=call.name, content=f"error: {failure}", error=True,
                           usage=Usage(cost_usd=spec.cost_usd, latency_s=spec.latency_s))

    async def _ask(self, expert: str, question: str, hold: Hold, task: Task) -> tuple[Any, int] | Exception:
        cfg = self.catalog.expert(expert)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            return await call_upstream(
                lambda timeout: self.s.experts[expert].ask(question, timeout, self.run.request_id, task), name=expert,
                breakers=self.s.breakers, attempts=cfg.max_retries + 1, deadline=self.run.deadline,
                per_try_s=cfg.timeout_s, waiting=self.run.upstream)
        except (UpstreamError, BreakerOpen) as e:
            self.run.settle(hold, 0.0)  # failed calls are not billed
            return e
        finally:
            self.s.metrics.expert_latency.labels(expert).observe(loop.time() - t0)
