"""Upstream calls that fail well: bounded retries with jitter that honour Retry-After (tenacity),
a circuit breaker per upstream (purgatory), and one error type for every way a call can fail.

    breakers = Breakers(threshold=5, reset_s=30, on_change=gauge_setter)
    answer, retries = await call_upstream(lambda timeout: post(...), name="mini", breakers=breakers,
                                          attempts=3, deadline=loop_time + 20, per_try_s=60)

A call is retried on connection errors, timeouts, 408/409/429 and 5xx; never on other 4xx.
It gives up when the attempts are spent or the next wait would pass the deadline. Consecutive
retryable failures open the breaker; while open, calls fail at once with `BreakerOpen` (the
caller falls back to another upstream).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

RETRYABLE_STATUSES = {408, 409, 429, 500, 502, 503, 504}


class UpstreamError(Exception):
    """One failed call: `status` None for a connection error or timeout."""

    def __init__(self, message: str, status: int | None = None, retry_after_s: float | None = None,
                 timeout: bool = False):
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s
        self.timeout = timeout

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUSES

    @property
    def outcome(self) -> str:
        """The metric outcome: timeout or error."""
        return "timeout" if self.timeout else "error"


class BreakerOpen(Exception):
    """The upstream's breaker is open: the call was not made."""


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds only; an HTTP date is ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


@dataclass
class Breakers:
    """One circuit breaker per upstream name; `on_change(name, is_open)` feeds the gauge."""

    threshold: int = 5
    reset_s: float = 30.0
    on_change: Callable[[str, bool], None] = lambda name, is_open: None

    def __post_init__(self) -> None:
        self.factory = AsyncCircuitBreakerFactory(
            default_threshold=self.threshold, default_ttl=self.reset_s,
            exclude=[asyncio.CancelledError, (UpstreamError, lambda e: not e.retryable)])
        self.opened_at: dict[str, float] = {}
        self.factory.add_listener(self._hook)

    def _hook(self, name: str, event_type: str, event: Any) -> None:
        if event_type != "state_changed":
            return
        if event.state == "opened":
            self.opened_at[name] = time.time()
        else:
            self.opened_at.pop(name, None)
        self.on_change(name, event.state == "opened")

    def is_open(self, name: str) -> bool:
        """Open and not yet due for a trial call."""
        at = self.opened_at.get(name)
        return at is not None and time.time() < at + self.reset_s

    async def guard(self, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        breaker = await self.factory.get_breaker(name)
        try:
            async with breaker:
                return await call()
        except OpenedState:
            raise BreakerOpen(f"'{name}' is failing: its circuit breaker is open") from None


def _wait(base_s: float, cap_s: float) -> Callable[[RetryCallState], float]:
    jitter = wait_exponential_jitter(initial=base_s, max=cap_s, jitter=base_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = getattr(exc, "retry_after_s", None)
        return max(asked, jitter(state)) if asked is not None else jitter(state)
    return wait


async def _untimed(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def call_upstream(attempt: Callable[[float], Awaitable[Any]], *, name: str, breakers: Breakers,
                        attempts: int, deadline: float, per_try_s: float, base_s: float = 0.2,
                        cap_s: float = 5.0,
                        waiting: Callable[[Awaitable[Any]], Awaitable[Any]] = _untimed) -> tuple[Any, int]:
    """Run `attempt(timeout_s)` through the breaker with retries; returns (result, retries made).

    `deadline` is on the event loop's clock; `waiting` wraps each await on the upstream and each
    wait between tries (the caller's clock of time spent waiting). Raises UpstreamError, BreakerOpen."""
    loop = asyncio.get_running_loop()

    def past_deadline(state: RetryCallState) -> bool:
        return loop.time() + (state.upcoming_sleep or 0.0) >= deadline

    retries = 0
    retrying = AsyncRetrying(stop=stop_after_attempt(attempts) | past_deadline, wait=_wait(base_s, cap_s),
                             retry=retry_if_exception(lambda e: isinstance(e, UpstreamError) and e.retryable),
                             sleep=lambda seconds: waiting(asyncio.sleep(seconds)), reraise=True)
    async for tried in retrying:
        with tried:
            retries = tried.retry_state.attempt_number - 1
            left = deadline - loop.time()
            if left <= 0:
                raise UpstreamError(f"'{name}': no time left before the request's deadline", timeout=True)
            timeout = min(per_try_s, left)
            return await breakers.guard(name, lambda: waiting(_timed(attempt, timeout, name))), retries
    raise AssertionError("unreachable: tenacity re-raises the last error")


async def _timed(attempt: Callable[[float], Awaitable[Any]], timeout: float, name: str) -> Any:
    try:
        return await asyncio.wait_for(attempt(timeout), timeout)
    except asyncio.TimeoutError:
        raise UpstreamError(f"'{name}' did not answer within {timeout:.1f} s", timeout=True) from None
