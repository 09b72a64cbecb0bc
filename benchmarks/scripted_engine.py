"""A scripted orchestrator engine for the gateway benchmark: an OpenAI-compatible server that plays
a fixed policy in Hermes text, so the gateway's engine path (`--orchestrator openai:URL#model`)
can be loaded, stopped and restarted without a model. Labelled scripted in every report.

    python benchmarks/scripted_engine.py --port 9200 --expert mini [--latency-s 0.05]

First turn: `<tool_call>{"name": "ask_<expert>", "arguments": {"question": <the user's text>}}</tool_call>`;
once a tool result is in the chat (a `tool` message or a `<tool_response>` user message):
`<answer>` + that result + `</answer>`. GET /v1/models answers (the gateway's readiness probe).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def reply_text(messages: list[dict[str, Any]], expert: str) -> str:
    results = [m.get("content") or "" for m in messages
               if m.get("role") == "tool" or "<tool_response>" in str(m.get("content"))]
    if results:
        last = results[-1].replace("<tool_response>", "").replace("</tool_response>", "")
        return f"<answer>{last}</answer>"
    question = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    return f"<tool_call>{json.dumps({'name': f'ask_{expert}', 'arguments': {'question': question}})}</tool_call>"


def build_app(expert: str, latency_s: float) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": "orchestrator", "object": "model", "owned_by": "scripted"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        if latency_s:
            await asyncio.sleep(latency_s)
        text = reply_text(body.get("messages", []), expert)
        prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4
        completion = max(1, len(text) // 4)
        return JSONResponse({
            "id": "chatcmpl-scripted", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "orchestrator"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}})

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9200)
    p.add_argument("--expert", default="mini")
    p.add_argument("--latency-s", type=float, default=0.0, help="slept before each reply")
    args = p.parse_args()
    uvicorn.run(build_app(args.expert, args.latency_s), host=args.host, port=args.port, log_level="warning",
                access_log=False, timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
