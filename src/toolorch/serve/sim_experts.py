"""An OpenAI-compatible HTTP server for the simulated experts a profile declares, with seeded faults.

    python -m toolorch.serve.sim_experts --config configs/tiny.yaml --port 9100 [--latency-scale 0]
        [--fail-rate 0.1 --fail-status 429] [--timeout-rate 0.05 --hang-s 300] [--seed 0]
        [--max-inflight 512]

Routes: POST /v1/chat/completions (model = an expert's name, non-streaming), GET /v1/models,
GET /health, GET /stats (what the server counted: calls, injected faults, rejections).

A simulated expert has no ground truth for a live question, so every reply says it is
simulated ("[simulated frontier] ...") and answers nothing. What it does model is the
declared profile (`experts[].simulated` in the config): output tokens and latency are
drawn as SimulatedExpert draws them, seeded by (seed, expert, prompt), so one prompt always
costs the same. The drawn latency is slept asynchronously, times --latency-scale (0: answer
at once, to load-test a gateway's own overhead; 1: the declared latency). The reply's
`simulated` object carries the drawn latency even when nothing was slept; `max_tokens`
caps the completion tokens (finish_reason "length"); X-Request-Id is echoed. A client that
leaves while its call sleeps frees the call's slot at once (counted as `gone`).

Faults: call number k (admitted calls of known models, counted from 0) fails with
--fail-status when a draw seeded by (seed, k) falls below --fail-rate, and hangs --hang-s
seconds before answering when it falls in the next --timeout-rate; so the faults of the
first N calls are the same in every run, whatever the concurrency. Beyond --max-inflight
calls in progress the server answers 503 with Retry-After at once: it never queues.
Every error body is OpenAI-shaped: {"error": {"message", "type", "param", "code"}}.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from toolorch.core.catalog import SimulatedProfile
from toolorch.core.config import load_config
from toolorch.core.seeds import stable_seed
from toolorch.runtime.experts import approx_tokens, usage_draw

FAIL_STATUSES = (429, 500, 502, 503, 504)
RETRY_AFTER_S = 1
DISCONNECT_POLL_S = 0.25


@dataclass(frozen=True)
class Faults:
    fail_rate: float = 0.0
    fail_status: int = 500
    timeout_rate: float = 0.0
    hang_s: float = 300.0
    seed: int = 0

    def for_call(self, index: int) -> str | None:
        """"fail", "hang" or None for the call with this number."""
        u = random.Random(stable_seed(self.seed, "fault", index)).random()
        if u < self.fail_rate:
            return "fail"
        return "hang" if u < self.fail_rate + self.timeout_rate else None


@dataclass
class Stats:
    calls: int = 0  # admitted calls of known models: the fault draw's call numbers
    ok: int = 0
    injected: dict[str, int] = field(default_factory=dict)  # "<status>" or "hang"
    overloaded: int = 0  # 503s beyond max_inflight
    gone: int = 0  # clients that left before their answer (their slot is freed then)
    rejected: dict[str, int] = field(default_factory=dict)  # 4xx by status
    inflight: int = 0
    peak_inflight: int = 0

    def count(self, table: dict[str, int], key: object) -> None:
        table[str(key)] = table.get(str(key), 0) + 1


@dataclass(frozen=True)
class SimReply:
    text: str
    tokens_in: int
    tokens_out: int
    latency_s: float


def simulated_reply(name: str, profile: SimulatedProfile, seed: int, prompt: str) -> SimReply:
    """The declared profile's draw for this prompt; the text says that nothing was answered."""
    tokens_out, latency = usage_draw(profile, random.Random(stable_seed(seed, name, prompt)))
    text = (f"[simulated {name}] This is a simulated expert: no model read the question and this reply "
            f"answers nothing. It reports the declared profile's usage ({tokens_out} output tokens) and "
            f"latency ({latency:g} s).")
    return SimReply(text, approx_tokens(prompt) + 40, tokens_out, latency)


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, tools, user, metadata, ...: accepted, unused
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: bool = False


def prompt_text(messages: list[Message]) -> str:
    parts: list[str] = []
    for m in messages:
        if isinstance(m.content, str):
            parts.append(m.content)
        elif m.content:
            parts.extend(str(p.get("text", "")) for p in m.content if p.get("type") == "text")
    return "\n".join(parts)


def openai_error(status: int, message: str, kind: str, code: str | None, param: str | None = None,
                 retry_after: bool = False) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if retry_after else None
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def completion(index: int, model: str, reply: SimReply, cap: int | None, slept_s: float) -> dict[str, Any]:
    tokens_out = min(reply.tokens_out, cap) if cap else reply.tokens_out
    return {
        "id": f"chatcmpl-sim-{index}", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": "length" if tokens_out < reply.tokens_out else "stop"}],
        "usage": {"prompt_tokens": reply.tokens_in, "completion_tokens": tokens_out,
                  "total_tokens": reply.tokens_in + tokens_out},
        "simulated": {"latency_s": reply.latency_s, "slept_s": round(slept_s, 4)},
    }


async def sleep_while_connected(request: Request, seconds: float) -> bool:
    """Sleep, waking to check the client; False when it went away (its slot is freed at once)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(left, DISCONNECT_POLL_S))
        if await request.is_disconnected():
            return False
    return True


def build_app(experts: dict[str, SimulatedProfile], latency_scale: float, faults: Faults,
              max_inflight: int, seed: int) -> FastAPI:
    app = FastAPI(title="toolorch simulated experts", docs_url=None, redoc_url=None, openapi_url=None)
    stats = app.state.stats = Stats()

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        stats.count(stats.rejected, 400)
        if first["type"] == "json_invalid":
            return openai_error(400, f"the body is not JSON: {first.get('ctx', {}).get('error', first['msg'])}",
                                "invalid_request_error", "invalid_json")
        where = ".".join(str(p) for p in first["loc"] if p != "body") or None
        return openai_error(400, f"{where or 'body'}: {first['msg']}", "invalid_request_error", "invalid_request",
                            where)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        stats.count(stats.rejected, exc.status_code)
        return openai_error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                            "invalid_request_error", "not_found" if exc.status_code == 404 else None)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "simulated": True, "experts": sorted(experts), "inflight": stats.inflight}

    @app.get("/stats")
    async def get_stats() -> dict[str, Any]:
        return asdict(stats)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                            "owned_by": "toolorch-simulated"} for name in experts]}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request) -> Response:
        response = await admit(body, request)
        response.headers["X-Request-Id"] = request.headers.get("x-request-id") or f"sim-{id(request):x}"
        return response

    async def admit(body: ChatRequest, request: Request) -> Response:
        if body.model not in experts:
            stats.count(stats.rejected, 404)
            return openai_error(404, f"model '{body.model}' does not exist here; simulated experts: "
                                f"{', '.join(sorted(experts))}", "invalid_request_error", "model_not_found", "model")
        if body.stream:
            stats.count(stats.rejected, 400)
            return openai_error(400, "stream=true is not supported by the simulated expert server",
                                "invalid_request_error", "unsupported_parameter", "stream")
        if stats.inflight >= max_inflight:
            stats.overloaded += 1
            return openai_error(503, f"{max_inflight} calls in progress: try again later", "server_error",
                                "overloaded", retry_after=True)
        index, stats.calls = stats.calls, stats.calls + 1
        stats.inflight += 1
        stats.peak_inflight = max(stats.peak_inflight, stats.inflight)
        try:
            return await answer(index, body, request)
        finally:
            stats.inflight -= 1

    async def answer(index: int, body: ChatRequest, request: Request) -> Response:
        fault = faults.for_call(index)
        if fault == "fail":
            status = faults.fail_status
            stats.count(stats.injected, status)
            return openai_error(status, f"simulated fault on call {index} (--fail-rate {faults.fail_rate})",
                                "rate_limit_error" if status == 429 else "server_error", "simulated_fault",
                                retry_after=status in (429, 503))
        reply = simulated_reply(body.model, experts[body.model], seed, prompt_text(body.messages))
        wait_s = reply.latency_s * latency_scale
        if fault == "hang":
            stats.count(stats.injected, "hang")
            wait_s += faults.hang_s
        if wait_s > 0 and not await sleep_while_connected(request, wait_s):
            stats.gone += 1
            return Response(status_code=499)  # nginx's "client closed request": no one reads it
        stats.ok += 1
        return JSONResponse(completion(index, body.model, reply, body.max_completion_tokens or body.max_tokens, wait_s))

    return app


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m toolorch.serve.sim_experts", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="profile YAML; its `backend: simulated` experts are served")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--latency-scale", type=float, default=1.0, help="x the drawn latency; 0 answers at once")
    p.add_argument("--seed", type=int, default=0, help="seeds the usage draws and the fault draws")
    p.add_argument("--fail-rate", type=float, default=0.0, help="fraction of calls answered --fail-status")
    p.add_argument("--fail-status", type=int, default=500, choices=FAIL_STATUSES)
    p.add_argument("--timeout-rate", type=float, default=0.0, help="fraction of calls that hang --hang-s")
    p.add_argument("--hang-s", type=float, default=300.0)
    p.add_argument("--max-inflight", type=int, default=512, help="calls in progress before 503s")
    args = p.parse_args(argv)
    for name in ("fail_rate", "timeout_rate"):
        if not 0 <= getattr(args, name) <= 1:
            p.error(f"--{name.replace('_', '-')} must be within [0, 1]")
    if args.fail_rate + args.timeout_rate > 1:
        p.error("--fail-rate + --timeout-rate must not exceed 1")
    if args.latency_scale < 0 or args.hang_s < 0 or args.max_inflight < 1:
        p.error("--latency-scale and --hang-s must be >= 0, --max-inflight >= 1")
    return args


def simulated_experts(config_path: str) -> dict[str, SimulatedProfile]:
    cfg = load_config(config_path)
    experts = {e.name: e.simulated for e in cfg.experts if e.backend == "simulated"}
    if not experts:
        raise ValueError(f"{config_path}: no expert with `backend: simulated` under `experts:`")
    return experts


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    args = parse_args(argv)
    try:
        experts = simulated_experts(args.config)
    except (OSError, ValueError, ValidationError, yaml.YAMLError) as e:  # pydantic's error names the field
        print(f"sim_experts: {e}", file=sys.stderr)
        return 2
    faults = Faults(args.fail_rate, args.fail_status, args.timeout_rate, args.hang_s, args.seed)
    app = build_app(experts, args.latency_scale, faults, args.max_inflight, args.seed)
    print(f"sim_experts: simulated {', '.join(experts)} on http://{args.host}:{args.port}/v1 "
          f"(latency x{args.latency_scale:g}, {faults})", file=sys.stderr, flush=True)
    # A short graceful shutdown: a stopped server must not wait out its hanging calls.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
