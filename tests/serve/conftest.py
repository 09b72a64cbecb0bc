"""Gateway test helpers: a scripted orchestrator engine (hermes text over a real HTTP server)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # gateway_server


def tool_call(name: str, **arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def scripted_engine(*turns: str):
    """An engine `reply` for FakeOpenAI: the i-th assistant turn of a chat is turns[i] (the last repeats);
    "$obs" in a turn is replaced by the last tool result the engine was sent."""
    def reply(body: dict) -> str:
        messages = body["messages"]
        step = sum(m["role"] == "assistant" for m in messages)
        text = turns[min(step, len(turns) - 1)]
        observed = [m["content"] for m in messages if "<tool_response>" in str(m.get("content"))
                    or m["role"] == "tool"]
        if observed:
            last = observed[-1].replace("<tool_response>", "").replace("</tool_response>", "")
            text = text.replace("$obs", last)
        return text
    return reply


@pytest.fixture
def ask_then_answer():
    return scripted_engine(tool_call("ask_mini", question="What is 2+2?"), "<answer>$obs</answer>")
