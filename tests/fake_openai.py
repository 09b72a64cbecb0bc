"""A scripted OpenAI-compatible endpoint: a real HTTP server on 127.0.0.1, for the clients'
retry, parsing and error paths without a model.

    with FakeOpenAI(lambda body: "<answer>12.5</answer>") as fake:
        call(fake.url)              # http://127.0.0.1:<port>/v1
        fake.requests               # the JSON bodies received, in order
        fake.headers                # their HTTP headers, in the same order

GET /v1/models lists `models` (default ["fake"]).

`reply(body)` decides each answer to POST /v1/chat/completions:
    str    200, a chat completion whose assistant message is that text
    int    that HTTP status with an OpenAI-style error body
    bytes  200 with exactly these bytes (malformed replies)
    DROP   close the connection without answering
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union

DROP = object()
Reply = Union[str, int, bytes, object]


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
        return 200, json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": out}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}).encode()
