"""The gateway exports exactly the metric contract's series, with bounded labels, after real traffic;
graceful shutdown lets an in-flight request finish."""
from __future__ import annotations

import threading
import time

import httpx2
from scripted import scripted_engine, tool_call
from fake_openai import FakeOpenAI
from gateway_server import GatewayServer, tiny_served
from prometheus_client.parser import text_string_to_metric_families

from toolorch.serve.gateway import Settings

# The contract dashboards and alerts are written against: name -> (type, labels)
CONTRACT = {
    "toolorch_requests": ("counter", {"orchestrator", "status", "code"}),
    "toolorch_request_duration_seconds": ("histogram", {"orchestrator", "finish_reason"}),
    "toolorch_request_turns": ("histogram", {"orchestrator"}),
    "toolorch_malformed_calls": ("counter", {"orchestrator"}),
    "toolorch_request_cost_usd": ("histogram", {"orchestrator"}),
    "toolorch_tool_calls": ("counter", {"tool", "expert", "outcome"}),
    "toolorch_expert_latency_seconds": ("histogram", {"expert"}),
    "toolorch_expert_cost_usd": ("counter", {"expert"}),
    "toolorch_expert_fallbacks": ("counter", {"expert"}),
    "toolorch_expert_breaker_open": ("gauge", {"expert"}),
    "toolorch_key_cost_usd": ("counter", {"key"}),
    "toolorch_budget_exhaustions": ("counter", {"kind"}),
    "toolorch_preference_requests": ("counter", {"profile"}),
    "toolorch_preference_denied_calls": ("counter", {"profile"}),
    "toolorch_inflight_orchestrations": ("gauge", set()),
    "toolorch_gateway_overhead_seconds": ("histogram", set()),
    "toolorch_engine_ready": ("gauge", {"orchestrator"}),
}


def test_metrics_follow_the_contract_after_traffic():
    # the first turn names no expert (a malformed call, as a drifted checkpoint writes); the retry is good
    engine = scripted_engine(tool_call("answer", model=""), tool_call("ask_frontier", question="q"),
                             tool_call("answer", model="mini"))
    with FakeOpenAI(engine) as eng:
        settings = Settings(served=tiny_served(), orchestrators=[("default", f"openai:{eng.url}#o")])
        with GatewayServer(settings) as gw:
            for extra in ({}, {"preference": {"profile": "cost_averse", "deny": ["ask_frontier"]}},
                          {"max_cost_usd": 0.0001}):
                httpx2.post(gw.url + "/chat/completions", timeout=30, json={
                    "model": "toolorch", "messages": [{"role": "user", "content": "q"}], **extra})
            text = httpx2.get(gw.root + "/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("toolorch_")}
    assert set(families) == set(CONTRACT)
    for name, (kind, labels) in CONTRACT.items():
        fam = families[name]
        assert fam.type == kind, name
        for sample in fam.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert values[("toolorch_requests_total", (("code", "ok"), ("orchestrator", "default"), ("status", "200")))] == 2
    assert values[("toolorch_preference_denied_calls_total", (("profile", "cost_averse"),))] == 1
    # one per request that ran (the third is refused: its budget cannot pay for a first turn)
    assert values[("toolorch_malformed_calls_total", (("orchestrator", "default"),))] == 2
    assert values[("toolorch_tool_calls_total", (("expert", "mini"), ("outcome", "ok"), ("tool", "answer")))] == 2
    assert values[("toolorch_budget_exhaustions_total", (("kind", "cost"),))] == 1
    assert values[("toolorch_gateway_overhead_seconds_count", ())] >= 4  # per orchestrator turn
    assert values[("toolorch_key_cost_usd_total", (("key", "anonymous"),))] > 0


def test_shutdown_drains_inflight_requests():
    settings = Settings(served=tiny_served(), orchestrators=[("default", "only:mini")], simulated_latency_scale=0.2)
    gw = GatewayServer(settings).__enter__()
    result = {}

    def slow():
        result["resp"] = httpx2.post(gw.url + "/chat/completions", timeout=30, json={
            "model": "toolorch", "messages": [{"role": "user", "content": "q"}]})

    client = threading.Thread(target=slow)
    client.start()
    while gw.gateway.inflight < 1:
        time.sleep(0.01)
    gw.server.should_exit = True  # what SIGTERM does: stop accepting, let in-flight requests finish
    client.join(30)
    gw.thread.join(10)
    assert result["resp"].status_code == 200 and result["resp"].json()["choices"][0]["finish_reason"] == "stop"
    assert not gw.thread.is_alive()
