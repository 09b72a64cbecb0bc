"""Per-endpoint bounds: threads calling one real HTTP endpoint through OpenAIExpert and the online
teacher never have more than `max_concurrency` requests in flight nor start more than
`requests_per_s` in a second; without the bounds the same load overlaps freely."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fake_openai import FakeOpenAI

from toolorch.core.catalog import ExpertConfig
from toolorch.runtime.endpoint_gate import EndpointGate, endpoint_gate
from toolorch.runtime.experts import OpenAIExpert
from toolorch.runtime.teacher import OnlineTeacher, online_policy

HOLD_S = 0.15  # how long the server takes per request


class Recorder:
    """The server's view: requests in flight at once, and when each one arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0
        self.arrivals: list[float] = []

    def reply(self, body: dict) -> str:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.arrivals.append(time.monotonic())
        time.sleep(HOLD_S)
        with self.lock:
            self.in_flight -= 1
        return "Answer: 4"

    def most_in_one_second(self) -> int:
        times = sorted(self.arrivals)
        return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


def _expert(url: str, **bounds) -> OpenAIExpert:
    return OpenAIExpert(ExpertConfig(name="remote", backend="openai", price="mini", base_url=url, model="m",
                                     timeout_s=5, max_tokens=8, **bounds))


def _load(call, n: int, threads: int = 8) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: call(), range(n)))


def test_unbounded_calls_overlap():
    rec = Recorder()
    with FakeOpenAI(rec.reply) as fake:
        expert = _expert(fake.url, max_concurrency=64)
        _load(lambda: expert.ask("2+2?"), 8)
    assert rec.peak >= 4  # the threads do reach the server together: the bound below is what stops them


def test_an_expert_endpoint_is_bounded_in_flight_and_per_second():
    rec = Recorder()
    with FakeOpenAI(rec.reply) as fake:
        expert = _expert(fake.url, max_concurrency=2, requests_per_s=4)
        again = _expert(fake.url + "/", max_concurrency=50)  # a second client of the endpoint shares its gate
        assert again.gate is expert.gate
        start = time.monotonic()
        _load(lambda: expert.ask("2+2?"), 5)
        _load(lambda: again.ask("2+2?"), 5)
        took = time.monotonic() - start
    assert len(rec.arrivals) == 10
    assert rec.peak == 2
    assert rec.most_in_one_second() <= 4
    assert took >= 2.0  # ten calls at four a second cannot finish sooner


def test_the_online_teacher_shares_one_gate_per_endpoint():
    rec = Recorder()
    with FakeOpenAI(rec.reply) as fake:
        teacher = OnlineTeacher(base_url=fake.url, model="m", max_concurrency=3)
        policies = [online_policy(teacher, seed=0, sample=i) for i in range(9)]
        assert len({id(p.gate) for p in policies}) == 1
        _load(lambda: policies[0].generate([{"role": "user", "content": "hi"}]), 9)
    assert rec.peak == 3


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="need concurrency >= 1"):
        EndpointGate("http://x/v1", 0)
    with pytest.raises(ValueError, match="requests_per_s"):
        OnlineTeacher(base_url="http://x/v1", model="m", requests_per_s=0)
    assert endpoint_gate("http://y/v1", 1) is endpoint_gate("http://y/v1/", 5)
