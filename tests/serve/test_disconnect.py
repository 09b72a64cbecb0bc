"""A client that goes away cancels its orchestration: no upstream call starts after it left."""
from __future__ import annotations

import time

import httpx2
import pytest
from scripted import tool_call
from fake_openai import FakeOpenAI
from gateway_server import GatewayServer

from toolorch.serve.catalog_file import load_catalog_file
from toolorch.serve.gateway import Settings


class Timed:
    """A scripted reply that records when each call started and takes `delay_s`."""

    def __init__(self, text: str, delay_s: float):
        self.text, self.delay_s, self.started = text, delay_s, []

    def __call__(self, body: dict) -> str:
        self.started.append(time.monotonic())
        time.sleep(self.delay_s)
        return self.text


@pytest.mark.parametrize("stream", [False, True])
def test_disconnect_stops_upstream_calls(tmp_path, stream):
    engine = Timed(tool_call("ask_mini", question="again"), 0.05)  # never answers: the loop would go on
    expert = Timed("Answer: 4", 0.25)
    with FakeOpenAI(engine) as eng, FakeOpenAI(expert) as exp:
        catalog = tmp_path / "catalog.yaml"
        catalog.write_text(f"experts:\n  - {{name: mini, base_url: '{exp.url}', price: mini}}\n"
                           "episode: {max_turns: 40, budget_usd: 5}\ntools: {code: false}\n")
        settings = Settings(served=load_catalog_file(catalog),
                            orchestrators=[("default", f"openai:{eng.url}#orch")])
        with GatewayServer(settings) as gw:
            body = {"model": "toolorch", "messages": [{"role": "user", "content": "loop"}], "stream": stream}
            with pytest.raises(httpx2.ReadTimeout):
                with httpx2.Client(timeout=httpx2.Timeout(10, read=1.0)) as client:
                    if stream:  # the first chunk comes at once; then nothing until the answer
                        with client.stream("POST", gw.url + "/chat/completions", json=body) as resp:
                            for _ in resp.iter_lines():
                                pass
                    else:
                        client.post(gw.url + "/chat/completions", json=body)
            left = time.monotonic()
            calls_then = len(engine.started) + len(expert.started)
            time.sleep(1.5)
            late = [t for t in engine.started + expert.started if t > left + 0.1]
            metrics = httpx2.get(gw.root + "/metrics").text
            inflight = gw.gateway.inflight
    assert calls_then >= 4  # it was running: several turns before the client left
    assert late == []  # and nothing started after it left
    assert inflight == 0
    assert 'toolorch_requests_total{code="client_closed",orchestrator="default",status="499"} 1.0' in metrics
