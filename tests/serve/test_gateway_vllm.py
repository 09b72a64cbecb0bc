"""The gateway in front of the real engine: a trained tiny orchestrator served by vLLM's CPU build
with the deployed flags (scripts/serve-orchestrator.sh: --enable-auto-tool-choice --tool-call-parser
hermes), `toolorch serve --orchestrator openai:<vLLM>#orchestrator`, the official SDK as the client.
The experts are the tiny profile's simulated ones (their replies say so). Marker `vllm`."""
from __future__ import annotations

import re
import urllib.request

import openai
import pytest
from gateway_process import ROOT, gateway_process
from vllm_server import VLLMServer


@pytest.fixture(scope="module")
def engine(vllm_python, trained_tiny_dir, tmp_path_factory):
    server = VLLMServer.start(vllm_python, trained_tiny_dir, tmp_path_factory.mktemp("engine") / "vllm.log",
                              model="orchestrator")
    yield server
    server.stop()


def prompt_tokens_served(engine: VLLMServer) -> float:
    """vLLM's own count of the prompt tokens it has served (its Prometheus counter)."""
    text = urllib.request.urlopen(engine.base_url.removesuffix("/v1") + "/metrics", timeout=10).read().decode()
    return sum(float(v) for v in re.findall(r'^vllm:prompt_tokens_total\{[^}]*\} (\S+)$', text, re.M))


@pytest.mark.vllm
def test_a_request_runs_its_orchestration_on_the_vllm_engine(engine, tmp_path):
    args = ["--config", str(ROOT / "configs/tiny.yaml"), "--orchestrator", f"openai:{engine.base_url}#orchestrator"]
    with gateway_process(args, tmp_path / "serve.log", start_s=120) as url:
        client = openai.OpenAI(base_url=url, api_key="any", max_retries=0, timeout=300)
        before = prompt_tokens_served(engine)
        raw = client.chat.completions.with_raw_response.create(
            model="toolorch", messages=[{"role": "user", "content": "Who wrote Engines?"}],
            extra_body={"preference": "cost_averse", "max_turns": 3, "include_trace": True})
        reply = raw.parse()
        served = prompt_tokens_served(engine) - before
        stream = list(client.chat.completions.create(
            model="toolorch", messages=[{"role": "user", "content": "Who wrote Notes?"}], stream=True,
            stream_options={"include_usage": True}, extra_body={"max_turns": 2}))
    trace = reply.model_dump()["toolorch"]["trace"]["steps"]
    turns = [s for s in trace if s["kind"] == "orchestrator"]
    assert turns and all(s["status"] == "ok" and s["tokens_in"] > 0 for s in turns)
    # every orchestrator turn was a request to vLLM, priced on the tokens vLLM counted
    assert served == sum(s["tokens_in"] for s in turns)
    assert reply.choices[0].finish_reason in ("stop", "max_turns") and reply.usage.total_tokens > 0
    assert float(raw.headers["x-toolorch-cost-usd"]) > 0
    assert stream[-1].choices == [] and stream[-1].usage.total_tokens > 0
