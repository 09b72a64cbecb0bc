"""Upstream calls that fail well: bounded retries with jitter that honour Retry-After (tenacity),
through a circuit breaker per upstream (serve.breaker), one error type for every way a call fails.

    breakers = Breakers(on_change=gauge_setter)
    answer, retries = await call_upstream(lambda timeout: post(...), name="mini", breakers=breakers,
                                          attempts=3, deadline=loop_time + 20, per_try_s=60)

A call is retried on connection errors, timeouts, 408/409/429 and 5xx; never on other 4xx.
It gives up when the attempts are spent or the next wait would pass the deadline. While an
upstream's breaker is open, calls fail at once with `BreakerOpen` (the caller falls back).
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from toolorch.serve.breaker import Breakers
from toolorch.serve.resilience_errors import RETRYABLE_STATUSES, BreakerOpen, UpstreamError, retry_after

__all__ = ["RETRYABLE_STATUSES", "BreakerOpen", "Breakers", "UpstreamError", "call_upstream", "retry_after"]

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
