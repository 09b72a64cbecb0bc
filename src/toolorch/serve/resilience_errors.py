"""How an upstream call fails: one error type for all of it, and the breaker's refusal."""
from __future__ import annotations


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
