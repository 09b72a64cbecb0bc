"""A scripted OpenAI-compatible endpoint: a real HTTP server on 127.0.0.1, for the clients'
retry, parsing and error paths without a model.

    with FakeOpenAI(lambda body: "<answer>12.5</answer>") as fake:
        call(fake.url)              # http://127.0.0.1:<port>/v1
        fake.requests               # the JSON bodies received, in order
        fake.headers                # their HTTP headers, in the same order

GET /v1/models lists `models` (default ["fake"]).

`reply(body)` decides each answer to POST /v1/chat/completions:
    str    200, a chat completion whose assistant message is that text
    dict   200, a chat completion with this assistant message (e.g. `hermes_message(text)`)
    Completion  200, with this message and these token counts
    int    that HTTP status with an OpenAI-style error body
    bytes  200 with exactly these bytes (malformed replies)
    DROP   close the connection without answering
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union

DROP = object()


@dataclass(frozen=True)
class Completion:
    message: dict[str, Any]  # the assistant message: content and, optionally, tool_calls
    prompt_tokens: int
    completion_tokens: int


Reply = Union[str, dict, Completion, int, bytes, object]
_HERMES_CALL = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)


def hermes_message(text: str) -> dict[str, Any]:
    """The message vLLM's hermes tool parser (vllm/tool_parsers/hermes_tool_parser.py) makes
    of a model's `text`: the content before the first <tool_call> plus every call with its
    arguments re-serialised, or the raw text when any call is not a JSON object with a name
    and arguments. The vLLM-marked tests run the real parser."""
    if "<tool_call>" not in text:
        return {"role": "assistant", "content": text}
    try:
        bodies = [json.loads(a or b) for a, b in _HERMES_CALL.findall(text)]
        calls = [{"id": f"call_{i}", "type": "function",
                  "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
                 for i, c in enumerate(bodies)]
    except (ValueError, KeyError, TypeError):
        return {"role": "assistant", "content": text}
    return {"role": "assistant", "content": text[:text.find("<tool_call>")] or None, "tool_calls": calls}


class FakeOpenAI:
    def __init__(self, reply: Callable[[dict[str, Any]], Reply], usage: tuple[int, int] = (10, 3),
                 models: tuple[str, ...] = ("fake",)):
        self.reply = reply
        self.usage = usage
        self.models = models
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if not self.path.endswith("/models"):
                    self.send_error(404)
                    return
                data = json.dumps({"object": "list",
                                   "data": [{"id": m, "object": "model"} for m in fake.models]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.requests.append(body)
                fake.headers.append(dict(self.headers))
                out = fake.reply(body)
                if out is DROP:
                    self.close_connection = True
                    return
                status, data = fake._encode(out, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def _encode(self, out: Reply, body: dict[str, Any]) -> tuple[int, bytes]:
        if isinstance(out, bytes):
            return 200, out
        if isinstance(out, int):
            return out, json.dumps({"error": {"message": f"scripted {out}"}}).encode()
        prompt, completion = self.usage
        if isinstance(out, Completion):
            out, prompt, completion = out.message, out.prompt_tokens, out.completion_tokens
        message = out if isinstance(out, dict) else {"role": "assistant", "content": out}
        return 200, json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                         "message": message}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}).encode()
