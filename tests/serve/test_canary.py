"""Several named orchestrators: a weighted canary split, sticky per request id, pinnable by model name,
labelled `orchestrator` in the metrics."""
from __future__ import annotations

import httpx2
import pytest
from fake_openai import FakeOpenAI
from gateway_server import GatewayServer, tiny_served
from scripted import scripted_engine

from toolorch.serve.gateway import Settings
from toolorch.serve.orchestrators import SpecError, parse_variants


def test_variant_specs():
    assert parse_variants(["only:mini"]) == [("default", "only:mini")]
    assert parse_variants(["main=openai:http://a/v1#m", "canary=only:mini"]) == [
        ("main", "openai:http://a/v1#m"), ("canary", "only:mini")]
    with pytest.raises(SpecError, match="given twice"):
        parse_variants(["a=only:mini", "a=only:frontier"])


def test_canary_split_is_weighted_sticky_and_labelled():
    with FakeOpenAI(scripted_engine("<answer>from main</answer>")) as main, \
            FakeOpenAI(scripted_engine("<answer>from canary</answer>")) as canary:
        settings = Settings(served=tiny_served(), canary_weight=0.25,
                            orchestrators=[("main", f"openai:{main.url}#o"), ("canary", f"openai:{canary.url}#o")])
        with GatewayServer(settings) as gw:
            def ask(i, model="toolorch"):
                return httpx2.post(gw.url + "/chat/completions", timeout=30, headers={"x-request-id": f"r{i}"},
                                   json={"model": model, "messages": [{"role": "user", "content": "q"}]})
            answers = [ask(i).json()["choices"][0]["message"]["content"] for i in range(80)]
            again = [ask(i).json()["choices"][0]["message"]["content"] for i in range(10)]
            pinned = ask(999, model="canary").json()
            models = httpx2.get(gw.url + "/models").json()
            metrics = httpx2.get(gw.root + "/metrics").text
    share = answers.count("from canary") / len(answers)
    assert 0.1 <= share <= 0.4  # 25% expected
    assert again == answers[:10]  # the same request id goes to the same variant
    assert pinned["choices"][0]["message"]["content"] == "from canary" and pinned["toolorch"]["orchestrator"] == "canary"
    assert [m["id"] for m in models["data"]] == ["toolorch", "main", "canary"]
    canary_count = answers.count("from canary") + again.count("from canary") + 1
    assert f'toolorch_requests_total{{code="ok",orchestrator="canary",status="200"}} {float(canary_count)}' in metrics
