"""An HF checkpoint served greedily through the OpenAI chat-completions shape, answering as
vLLM with `--tool-call-parser hermes` does: a real HTTP server (FakeOpenAI) in the test
process, for tests that need a served model where vLLM is not installed.

    with serve_hf(model_dir) as server:      # server.url: http://127.0.0.1:<port>/v1
        OpenAIPolicy(server.url, "orchestrator").generate(messages, tools)

The model renders each request's messages and tools with its own chat template (HFPolicy),
so a chat it is sent reads as the same tokens as in process. Greedy only: a request with
a temperature above 0 gets a 400.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from fake_openai import Completion, FakeOpenAI, hermes_message

from toolorch.runtime.policies import HFPolicy


def serve_hf(model_dir: Path, max_tokens: int = 256) -> FakeOpenAI:
    policy = HFPolicy(model_dir)
    lock = threading.Lock()  # one generation at a time: the model is shared

    def reply(body: dict[str, Any]) -> Completion | int:
        if body.get("temperature", 1.0) > 0:
            return 400
        with lock:
            policy.max_new_tokens = body.get("max_tokens") or max_tokens
            gen = policy.generate(body["messages"], body.get("tools"))
        return Completion(hermes_message(gen.text), gen.tokens_in, gen.tokens_out)

    return FakeOpenAI(reply)
