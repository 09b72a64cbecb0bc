"""Failing experts fall back (within the user's preference), breakers open, budgets and deadlines end
an orchestration with the answer so far, engine failures are OpenAI-shaped, mid-stream too."""
from __future__ import annotations

import asyncio
import json
import time
from contextlib import nullcontext

import httpx2
import pytest
from scripted import scripted_engine, tool_call
from fake_openai import FakeOpenAI
from gateway_server import GatewayServer, tiny_served

from toolorch.serve.catalog_file import load_catalog_file
from toolorch.serve.gateway import Settings
from toolorch.serve.resilience import Breakers, UpstreamError, call_upstream


def ask(gw, content="What is 2+2?", **extra):
    body = {"model": "toolorch", "messages": [{"role": "user", "content": content}], "include_trace": True, **extra}
    return httpx2.post(gw.url + "/chat/completions", json=body, timeout=30)


def test_failing_expert_falls_back_and_its_breaker_opens(tmp_path):
    engine = scripted_engine(tool_call("answer", model="frontier"))
    with FakeOpenAI(engine) as eng, FakeOpenAI(lambda b: 503) as down, FakeOpenAI(lambda b: "Answer: 4") as up:
        (tmp_path / "catalog.yaml").write_text(
            f"experts:\n  - {{name: frontier, base_url: '{down.url}', price: frontier, max_retries: 1}}\n"
            f"  - {{name: mini, base_url: '{up.url}', price: mini}}\n"
            "episode: {max_turns: 2}\ntools: {code: false}\n")
        settings = Settings(served=load_catalog_file(tmp_path / "catalog.yaml"), breaker_min_calls=2,
                            orchestrators=[("default", f"openai:{eng.url}#orch")])
        with GatewayServer(settings) as gw:
            first = ask(gw).json()
            frontier_calls = len(down.requests)
            second = ask(gw).json()
            denied = ask(gw, preference={"deny": ["ask_mini"]}).json()
            metrics = httpx2.get(gw.root + "/metrics").text
    assert first["choices"][0]["message"]["content"] == "4"
    step = first["toolorch"]["trace"]["steps"][1]
    assert step["expert"] == "mini" and step["fallback"] == {"from": "frontier", "reason": "error"}
    assert frontier_calls == 2  # one try and one retry, then its breaker opened
    step = second["toolorch"]["trace"]["steps"][1]
    assert step["fallback"] == {"from": "frontier", "reason": "breaker_open"} and len(down.requests) == 2
    # the user denies mini: no fallback may use it, the call fails and the orchestrator runs out of turns
    assert denied["choices"][0]["finish_reason"] == "max_turns" and len(up.requests) == 2
    assert denied["toolorch"]["trace"]["steps"][1]["status"] == "breaker_open"
    assert 'toolorch_expert_breaker_open{expert="frontier"} 1.0' in metrics
    assert 'toolorch_expert_fallbacks_total{expert="frontier"} 2.0' in metrics
    assert 'toolorch_tool_calls_total{expert="frontier",outcome="error",tool="answer"} 1.0' in metrics


def test_retries_honour_retry_after_and_never_retry_a_4xx():
    async def scenario():
        tries = {"n": 0}

        async def flaky(timeout):
            tries["n"] += 1
            if tries["n"] == 1:
                raise UpstreamError("busy", status=429, retry_after_s=0.4)
            return "ok"

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        result = await call_upstream(flaky, name="x", breakers=Breakers(), attempts=3, deadline=t0 + 10,
                                     per_try_s=5, base_s=0.01)
        waited = loop.time() - t0
        bad = {"n": 0}

        async def refused(timeout):
            bad["n"] += 1
            raise UpstreamError("bad request", status=400)

        with pytest.raises(UpstreamError):
            await call_upstream(refused, name="y", breakers=Breakers(), attempts=3, deadline=t0 + 10, per_try_s=5)
        with pytest.raises(UpstreamError):  # a wait that would pass the deadline is not made
            await call_upstream(lambda t: flaky_forever(), name="z", breakers=Breakers(), attempts=10,
                                deadline=loop.time() + 0.2, per_try_s=5, base_s=1.0)
        return result, waited, bad["n"], loop.time() - t0

    async def flaky_forever():
        raise UpstreamError("down", status=503)

    result, waited, refused_tries, total = asyncio.run(scenario())
    assert result == ("ok", 1) and waited >= 0.4
    assert refused_tries == 1 and total < 2.0


def test_budget_runs_out_mid_task_with_the_answer_so_far():
    engine = scripted_engine(tool_call("ask_mini", question="q"))  # asks forever
    with FakeOpenAI(engine) as eng:
        settings = Settings(served=tiny_served(max_turns=20), orchestrators=[("default", f"openai:{eng.url}#o")])
        with GatewayServer(settings) as gw:
            body = ask(gw, max_cost_usd=0.004).json()
            turns = ask(gw, max_turns=2).json()
    assert body["choices"][0]["finish_reason"] == "budget_exhausted"
    assert body["choices"][0]["message"]["content"].startswith("[simulated mini]")  # the best answer so far
    assert body["toolorch"]["stop_reason"] == "budget" and 0 < body["toolorch"]["cost_usd"] <= 0.004
    assert body["toolorch"]["turns"] >= 2
    assert turns["choices"][0]["finish_reason"] == "max_turns" and turns["toolorch"]["turns"] == 2


def test_latency_cap_ends_on_time():
    with FakeOpenAI(scripted_engine(tool_call("ask_mini", question="q"))) as eng:
        # mini takes its declared ~6 s here: the 0.6 s deadline cuts it off
        settings = Settings(served=tiny_served(), orchestrators=[("default", f"openai:{eng.url}#o")],
                            simulated_latency_scale=1.0)
        with GatewayServer(settings) as gw:
            t0 = time.monotonic()
            body = ask(gw, max_latency_s=0.6).json()
            took = time.monotonic() - t0
    assert body["choices"][0]["finish_reason"] == "budget_exhausted" and body["toolorch"]["stop_reason"] == "latency"
    assert took < 1.5


def test_engine_failure_is_openai_shaped_also_mid_stream():
    with FakeOpenAI(lambda b: 500) as eng:
        settings = Settings(served=tiny_served(), orchestrators=[("default", f"openai:{eng.url}#o")],
                            engine_retries=0)
        with GatewayServer(settings) as gw:
            plain = ask(gw)
            body = {"model": "toolorch", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            with httpx2.stream("POST", gw.url + "/chat/completions", json=body, timeout=30) as resp:
                events = [line for line in resp.iter_lines() if line.startswith("data: ")]
            ready = httpx2.get(gw.root + "/ready").json()
    assert plain.status_code == 503 and plain.json()["error"]["code"] == "engine_unavailable"
    assert plain.headers["retry-after"]
    assert json.loads(events[0][6:])["choices"][0]["delta"]["role"] == "assistant"
    error = json.loads(events[-2][6:])["error"]
    assert error["code"] == "engine_unavailable" and set(error) == {"message", "type", "param", "code"}
    assert events[-1] == "data: [DONE]"
    assert ready["ready"] is True  # the engine answers its probe; its completions fail


def test_ready_is_false_while_the_engine_is_down():
    with FakeOpenAI(lambda b: "<answer>x</answer>") as eng:
        url = eng.url
        settings = Settings(served=tiny_served(), orchestrators=[("default", f"openai:{url}#o")])
        with GatewayServer(settings) as gw:
            up = httpx2.get(gw.root + "/ready")
            eng.__exit__()  # the engine stops: two failed probes (one a second) mark it down
            deadline = time.monotonic() + 10
            while (down := httpx2.get(gw.root + "/ready")).status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            metrics = httpx2.get(gw.root + "/metrics").text
    assert up.status_code == 200 and down.status_code == 503 and down.json()["orchestrators"] == {"default": False}
    assert 'toolorch_engine_ready{orchestrator="default"} 0.0' in metrics


def test_breaker_opens_on_a_failure_rate_and_tries_one_call_when_half_open():
    from toolorch.serve.breaker import Breakers

    changes = []
    breakers = Breakers(window=10, min_calls=10, failure_rate=0.5, reset_s=0.2,
                        on_change=lambda name, is_open: changes.append(is_open))

    async def scenario():
        async def ok():
            return "ok"

        async def down():
            raise UpstreamError("down", status=503)

        for i in range(40):  # 20% failures, never two in a row: stays closed
            with pytest.raises(UpstreamError) if i % 5 == 0 else nullcontext():
                await breakers.guard("x", down if i % 5 == 0 else ok)
        assert not breakers.is_open("x")
        for _ in range(10):  # an outage: opens once more than half of the last 10 failed
            with pytest.raises(UpstreamError):
                await breakers.guard("x", down)
            if breakers.is_open("x"):
                break
        assert breakers.is_open("x") and changes == [True]
        await asyncio.sleep(0.25)
        gate = asyncio.Event()

        async def slow_ok():
            await gate.wait()
            return "ok"

        trial = asyncio.create_task(breakers.guard("x", slow_ok))  # the one half-open trial
        await asyncio.sleep(0)
        with pytest.raises(Exception, match="circuit breaker is open"):
            await breakers.guard("x", ok)  # others still fail fast meanwhile
        gate.set()
        assert await trial == "ok" and not breakers.is_open("x") and changes == [True, False]

    asyncio.run(scenario())
