"""`--orchestrator hf:DIR`: an in-process checkpoint writes the turns (here a random-init tiny model,
whose text is whatever it is: the loop parses it as training does and the gateway answers)."""
from __future__ import annotations

import httpx2
from gateway_server import GatewayServer, tiny_served

from toolorch.runtime.modeling import TinyModelSpec, build_tiny_model
from toolorch.serve.gateway import Settings


def test_hf_checkpoint_serves_a_request(tmp_path):
    texts = ["<tool_call>{\"name\": \"answer\", \"arguments\": {\"model\": \"mini\"}}</tool_call> <answer>4</answer>"]
    spec = TinyModelSpec(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    model = build_tiny_model(tmp_path / "tiny", texts * 20, spec, seed=0)
    settings = Settings(served=tiny_served(), orchestrators=[("default", f"hf:{model}")])
    with GatewayServer(settings) as gw:
        resp = httpx2.post(gw.url + "/chat/completions", timeout=120, json={
            "model": "toolorch", "messages": [{"role": "user", "content": "What is 2+2?"}], "max_turns": 2,
            "include_trace": True})
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["choices"][0]["finish_reason"] in ("stop", "max_turns", "length")
    steps = body["toolorch"]["trace"]["steps"]
    assert steps[0]["kind"] == "orchestrator" and steps[0]["tokens_in"] > 0 and steps[0]["tokens_out"] > 0
    assert body["toolorch"]["cost_usd"] > 0
