"""The official openai SDK against a real `toolorch serve` process: an answer, its cost and its trace,
non-streaming and streaming; the request id reaches the engine; prices reach the prompt as in training."""
from __future__ import annotations

import openai
import pytest
from fake_openai import FakeOpenAI
from gateway_process import ROOT, gateway_process
from scripted import scripted_engine, tool_call

from toolorch.core.config import load_config
from toolorch.core.records import Preference, Task
from toolorch.runtime.episode import initial_messages
from toolorch.runtime.tools import Toolbox


@pytest.fixture(scope="module")
def engine():
    reply = scripted_engine(tool_call("ask_mini", question="What is 2+2?"), "<answer>$obs</answer>")
    with FakeOpenAI(reply) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(engine, tmp_path_factory):
    log = tmp_path_factory.mktemp("gw") / "serve.log"
    args = ["--config", str(ROOT / "configs/tiny.yaml"), "--orchestrator", f"openai:{engine.url}#orchestrator"]
    with gateway_process(args, log) as url:
        yield url, log


EXTRA = {"preference": {"profile": "cost_averse", "deny": ["ask_frontier"]}, "max_cost_usd": 0.05,
         "max_turns": 4, "include_trace": True}


def test_sdk_gets_answer_cost_and_trace(gateway, engine):
    url, log = gateway
    client = openai.OpenAI(base_url=url, api_key="any-token")
    raw = client.chat.completions.with_raw_response.create(
        model="toolorch", messages=[{"role": "user", "content": "What is 2+2?"}], extra_body=EXTRA,
        extra_headers={"x-request-id": "sdk-test-1"})
    resp = raw.parse()
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.content.startswith("[simulated mini]")  # labelled simulated
    meta = resp.toolorch
    assert meta["request_id"] == "sdk-test-1" and raw.headers["x-request-id"] == "sdk-test-1"
    assert meta["cost_usd"] > 0 and float(raw.headers["x-toolorch-cost-usd"]) == pytest.approx(meta["cost_usd"])
    assert meta["options"]["profile"] == "cost_averse" and meta["options"]["max_cost_usd"] == 0.05
    assert meta["options"]["preference"]["deny"] == ["ask_frontier"] and meta["options"]["max_turns"] == 4
    steps = meta["trace"]["steps"]
    assert [(s["kind"], s["tool"]) for s in steps] == [("orchestrator", None), ("expert", "ask_mini"),
                                                        ("orchestrator", None)]
    assert steps[1]["expert"] == "mini" and steps[1]["status"] == "ok" and steps[1]["tokens_out"] > 0
    assert sum(s["cost_usd"] for s in steps) == pytest.approx(meta["cost_usd"])
    assert resp.usage.total_tokens == meta["trace"]["totals"]["tokens_in"] + meta["trace"]["totals"]["tokens_out"]
    sent = [h for h in engine.headers if h.get("x-request-id") == "sdk-test-1"]
    assert len(sent) == 2  # both orchestrator turns carried the request id to the engine
    assert "any bearer token is accepted" in log.read_text()
    overhead_ms = [float(v) for v in raw.headers["x-toolorch-overhead-ms"].split(",")]
    assert raw.headers["x-toolorch-turns"] == "2" and len(overhead_ms) == 2 and all(v >= 0 for v in overhead_ms)


def test_sdk_streams_with_usage_chunk(gateway):
    url, _ = gateway
    client = openai.OpenAI(base_url=url, api_key="any-token")
    chunks = list(client.chat.completions.create(
        model="toolorch", messages=[{"role": "user", "content": "What is 2+2?"}], stream=True,
        stream_options={"include_usage": True}, extra_body=EXTRA))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[simulated mini]")
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert finish[0].toolorch["cost_usd"] > 0 and len(finish[0].toolorch["trace"]["steps"]) == 3
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0  # the usage chunk comes last


def test_prompt_lists_catalog_prices_as_training_does(gateway, engine):
    url, _ = gateway
    openai.OpenAI(base_url=url, api_key="x").chat.completions.create(
        model="toolorch", messages=[{"role": "user", "content": "Price check"}],
        extra_body={"preference": "balanced"})
    system = engine.requests[-2]["messages"][0]["content"]
    cfg = load_config(ROOT / "configs/tiny.yaml")
    pref = Preference(accuracy=1.0, cost=0.5, latency=0.5)
    expected = initial_messages(Task(id="t", env="gateway", question="Price check", answer="", preference=pref),
                                Toolbox(cfg.catalog(), None, with_code=True))
    assert system == expected[0]["content"]
    assert "Price $1.25/M input, $10/M output tokens." in system and "~20s" in system
