"""A scripted orchestrator engine for gateway tests: hermes text served by FakeOpenAI.

    with FakeOpenAI(scripted_engine(tool_call("ask_mini", question="q"), "<answer>$obs</answer>")) as engine:
        ...   # --orchestrator openai:{engine.url}#orchestrator
"""
from __future__ import annotations

import json


def tool_call(name: str, **arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def scripted_engine(*turns: str):
    """A FakeOpenAI `reply`: the i-th assistant turn of a chat is turns[i] (the last repeats);
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
