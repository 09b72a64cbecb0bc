"""Per-endpoint bounds on the calls one process makes: at most N in flight, at most M started a second.

    gate = endpoint_gate("http://teacher:8000/v1", concurrency=8, per_second=20)
    with gate:                      # blocks while 8 calls are in flight or 20 began this second
        client.chat.completions.create(...)

The teacher and OpenAI experts run from worker threads (passk's `workers`, eval's tasks); every
client of one base URL in the process shares one gate, so the bound holds whatever the number of
threads or policies. The first settings given for an endpoint hold for the process. The rate is
pyrate-limiter's (a sliding-window log; it waits rather than refuses); the in-flight bound is a
semaphore. Under KFP each shard is its own process: the cluster-wide bound is shards x these.
"""
from __future__ import annotations

import threading
from types import TracebackType

from pyrate_limiter import Duration, Limiter, Rate

_GATES: dict[str, EndpointGate] = {}
_LOCK = threading.Lock()


class EndpointGate:
    """At most `concurrency` calls in flight and (if set) `per_second` calls started per second."""

    def __init__(self, url: str, concurrency: int, per_second: int | None = None):
        if concurrency < 1 or (per_second is not None and per_second < 1):
            raise ValueError(f"{url}: need concurrency >= 1 and requests per second >= 1 (or none)")
        self.url, self.concurrency, self.per_second = url, concurrency, per_second
        self._slots = threading.BoundedSemaphore(concurrency)
        self._rate = Limiter(Rate(per_second, Duration.SECOND)) if per_second else None

    def __enter__(self) -> EndpointGate:
        self._slots.acquire()
        if self._rate is not None:
            self._rate.try_acquire(self.url, blocking=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._slots.release()


def endpoint_gate(url: str, concurrency: int, per_second: int | None = None) -> EndpointGate:
    """The process's gate of `url` (made with these bounds on first use)."""
    key = url.rstrip("/")
    with _LOCK:
        if key not in _GATES:
            _GATES[key] = EndpointGate(key, concurrency, per_second)
        return _GATES[key]
