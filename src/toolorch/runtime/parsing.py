"""Parse one assistant message into a tool call, a final answer, or an error.

The format is Hermes, as vLLM's `hermes` tool parser reads it:
`<think>...</think><tool_call>{"name": ..., "arguments": {...}}</tool_call>`.
The first valid call in a message is the one executed. Text with no
`<tool_call>` tag is a final answer (the inside of `<answer>...</answer>` if present), unless
it closes a tool call it never opened: that is a call whose start the model dropped (`"model":
"mini"}}</tool_call>`), an error it gets a turn to correct, not an answer to score or show.
Nothing here raises on model output: every failure is a `Parsed` with an error.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from toolorch.core.records import ToolCall

_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)


@dataclass(frozen=True)
class Parsed:
    call: ToolCall | None = None
    answer: str | None = None
    error: str | None = None


def _call_from_json(body: str) -> tuple[ToolCall | None, str | None]:
    try:
        obj = json.loads(body.strip())
    except (json.JSONDecodeError, RecursionError) as e:
        return None, f"tool call is not valid JSON ({e.__class__.__name__}: {str(e)[:80]})"
    if not isinstance(obj, dict):
        return None, "tool call must be a JSON object with 'name' and 'arguments'"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None, "tool call has no 'name' string"
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some models emit arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except (json.JSONDecodeError, RecursionError):
            return None, f"arguments of '{name}' are not a JSON object"
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return None, f"arguments of '{name}' must be a JSON object"
    return ToolCall(name=name, arguments=args), None


def parse_assistant(text: str) -> Parsed:
    if not isinstance(text, str):
        return Parsed(error="model output is not text")
    visible = _THINK.sub("", text)
    bodies = _CALL.findall(visible)
    if "<tool_call>" in visible:
        first_error = None
        for body in bodies:
            call, error = _call_from_json(body)
            if call is not None:
                return Parsed(call=call)
            first_error = first_error or error
        return Parsed(error=first_error or "empty <tool_call>")
    if "</tool_call>" in visible:
        return Parsed(error='a tool call must start with <tool_call>{"name": ...: found </tool_call> without it')
    m = _ANSWER.search(visible)
    answer = (m.group(1) if m else visible).strip()
    if not answer:
        return Parsed(error="empty message: give a tool call or a final answer")
    return Parsed(answer=answer)


def render_call(call: ToolCall) -> str:
    """The text a policy emits for `call` (inverse of `parse_assistant`)."""
    body = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return f"<tool_call>{body}</tool_call>"


def hermes_text(content: str | None, calls: list[tuple[str, str]]) -> str:
    """The assistant text behind a Hermes tool parser's reply (vLLM `--tool-call-parser hermes`):
    its `content` (what came before the first call), then each call as `render_call` writes it.

    `calls` are (name, arguments JSON) as the server returns them. The result is the model's
    own text when it wrote its calls canonically, as a policy trained on `render_call` does;
    otherwise (other spacing, text after a call) `parse_assistant` still reads the same first call.
    """
    text = content or ""
    for name, arguments in calls:
        try:
            args = json.loads(arguments) if arguments.strip() else {}
        except (json.JSONDecodeError, RecursionError):
            args = None
        if isinstance(args, dict):
            text += render_call(ToolCall(name=name, arguments=args))
        else:  # kept as sent, so that parse_assistant says what is wrong with it
            quoted = json.dumps(name, ensure_ascii=False)
            text += f'<tool_call>{{"name": {quoted}, "arguments": {arguments}}}</tool_call>'
    return text
