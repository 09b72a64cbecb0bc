"""One request's orchestration state: its budget holds, deadline, trace records and clock.

    run = RequestRun(request_id, key, RequestBudget(0.05), deadline, ledger, metrics, started)
    hold = run.reserve(worst_usd)            # a Hold, or Halt("budget") (counted by kind)
    result = await run.upstream(awaitable)   # time spent waiting upstream, not gateway overhead
    run.close_turn()                         # observes the turn's gateway overhead

Gateway overhead per orchestrator turn = the turn's wall time minus the time it spent awaiting
upstream work (the engine or policy, experts, tools, the tool thread pool), as LiteLLM measures
its own overhead. The first turn starts when the request arrived; the last ends when its
response is built.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable

from pydantic import BaseModel

from toolorch.runtime.episode import Halt
from toolorch.serve.budget import BudgetExceeded, Hold, Ledger, RequestBudget
from toolorch.serve.metrics import Metrics


class Step(BaseModel):
    """One step of the trace: an orchestrator turn or a tool call."""

    turn: int
    kind: str  # orchestrator | db | search | code | expert | answer | http | mcp | none (malformed call)
    tool: str | None = None
    expert: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0  # measured wall time
    status: str = "ok"  # ok | error | timeout | breaker_open | denied | halted
    retries: int = 0
    fallback: dict[str, str] | None = None  # {"from": expert asked, "reason": ...} when another answered
    error: str | None = None


@dataclass
class ToolRecord:
    """What the gateway saw while running one tool call (merged into the trace afterwards)."""

    kind: str
    expert: str | None = None
    latency_s: float = 0.0
    status: str = "ok"
    retries: int = 0
    fallback: dict[str, str] | None = None
    error: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


@dataclass
class RequestRun:
    request_id: str
    key: str
    budget: RequestBudget
    deadline: float  # on the event loop's clock
    ledger: Ledger
    metrics: Metrics
    started: float  # time.perf_counter() when the request arrived
    generations: list[float] = field(default_factory=list)  # measured latency of each orchestrator turn
    tools: dict[int, ToolRecord] = field(default_factory=dict)  # by id() of the ToolCall the loop yielded
    holds: list[Hold] = field(default_factory=list)
    exhausted: str | None = None  # cost | key | latency
    turn_mark: float = 0.0
    upstream_s: float = 0.0
    turns_begun: int = 0
    overheads: list[float] = field(default_factory=list)  # seconds, one per closed turn

    def __post_init__(self) -> None:
        self.turn_mark = self.started

    def left_s(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()

    def halt_latency(self) -> Halt:
        self.exhausted = self.exhausted or "latency"
        self.metrics.exhaustions.labels("latency").inc()
        return Halt("latency")

    def reserve(self, amount: float) -> Hold | Halt:
        try:
            hold = self.ledger.reserve(self.budget, self.key, amount)
        except BudgetExceeded as e:
            self.exhausted = self.exhausted or e.kind
            self.metrics.exhaustions.labels(e.kind).inc()
            return Halt("budget")
        self.holds.append(hold)
        return hold

    def settle(self, hold: Hold, actual: float) -> None:
        self.ledger.settle(hold, actual)
        if actual:
            self.metrics.key_cost.labels(self.key).inc(actual)

    def release_all(self) -> None:
        """A cancelled request: calls in flight are charged their reservation (they may have been billed)."""
        for hold in self.holds:
            if not hold.settled:
                self.settle(hold, hold.amount_usd)

    async def upstream(self, awaitable: Awaitable[Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return await awaitable
        finally:
            self.upstream_s += time.perf_counter() - t0

    def begin_turn(self) -> None:
        """An orchestrator turn starts: the one before it (if any) ends here."""
        self.turns_begun += 1
        if self.turns_begun > 1:
            self.close_turn()

    def close_turn(self) -> None:
        if self.turns_begun == len(self.overheads):
            return  # no turn open (the request ended before its first turn, or was closed already)
        now = time.perf_counter()
        overhead = max(0.0, now - self.turn_mark - self.upstream_s)
        self.overheads.append(overhead)
        self.metrics.overhead.observe(overhead)
        self.turn_mark, self.upstream_s = now, 0.0
