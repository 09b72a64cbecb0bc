"""The gateway's HTTP routes (FastAPI): chat completions, models, health, readiness, metrics.

    app = build_app(Gateway(settings, keyring))
    uvicorn.run(app, host="127.0.0.1", port=8000)

POST /v1/chat/completions runs one orchestration per request (non-streaming, or SSE with
`stream: true`). Admission control: at most `max_inflight` orchestrations run; beyond, 503 with
Retry-After at once (no queue). A client that goes away cancels its orchestration: no further
upstream call is made. Every error body is OpenAI-shaped.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from toolorch.core.records import Preference, Task
from toolorch.runtime.env.world import Environment
from toolorch.serve.budget import RequestBudget
from toolorch.serve.contract import ChatRequest, Options, Sampling, resolve_preference
from toolorch.serve.errors import ApiError
from toolorch.serve.gateway import Gateway
from toolorch.serve.metrics import NO_VARIANT
from toolorch.serve.orchestration import Outcome, orchestrate
from toolorch.serve.orchestrators import Orchestrator
from toolorch.serve.responses import DONE, Meta, chunk, completion, final_events, sse
from toolorch.serve.run import RequestRun
from toolorch.serve.toolbox import GatewayToolbox, worst_prompt_tokens

log = logging.getLogger("toolorch.serve")
KEEPALIVE_S = 10.0
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CLIENT_CLOSED = 499  # nginx's "client closed request": recorded, never read by anyone


def error_response(e: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers={**e.headers(), **(headers or {})})


async def until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class Exchange:
    """One chat completion request from arrival to its last byte: its metrics are recorded once."""

    def __init__(self, gw: Gateway, request: Request):
        self.gw = gw
        self.request = request
        self.started = time.perf_counter()
        given = request.headers.get("x-request-id", "")
        self.request_id = given if REQUEST_ID.match(given) else f"req-{uuid.uuid4().hex}"
        self.variant = NO_VARIANT
        self.admitted = False
        self.finished = False

    def finish(self, status: int, code: str, finish_reason: str, outcome: Outcome | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        m = self.gw.metrics
        m.requests.labels(self.variant, str(status), code).inc()
        m.duration.labels(self.variant, finish_reason).observe(time.perf_counter() - self.started)
        if outcome is not None:
            m.turns.labels(self.variant).observe(len(outcome.traj.turns))
            m.malformed.labels(self.variant).inc(sum(t.malformed for t in outcome.traj.turns))
            m.cost.labels(self.variant).observe(outcome.traj.usage.cost_usd)
        if self.admitted:
            self.admitted = False
            self.gw.inflight -= 1
            m.inflight.dec()

    def failed(self, e: ApiError) -> JSONResponse:
        self.finish(e.status, e.code, "error")
        return error_response(e, {"x-request-id": self.request_id})

    def headers(self, outcome: Outcome | None = None, run: RequestRun | None = None) -> dict[str, str]:
        out = {"x-request-id": self.request_id, "x-toolorch-orchestrator": self.variant}
        if outcome is not None:
            out["x-toolorch-cost-usd"] = f"{outcome.traj.usage.cost_usd:.8f}"
        if run is not None:  # the gateway's own time per orchestrator turn (benchmarks/gateway_load.py reads it)
            out["x-toolorch-overhead-ms"] = ",".join(f"{s * 1000:.3f}" for s in run.overheads)
            out["x-toolorch-turns"] = str(len(run.overheads))
        return out

    def choose(self, model: str) -> Orchestrator:
        split = self.gw.split
        if model == "toolorch":
            return split.choose(self.request_id)
        pinned = split.get(model)
        if pinned is None:
            raise ApiError(404, f"model '{model}' does not exist; models: {', '.join(self.gw.models())}",
                           "model_not_found", "model")
        return pinned

    def options(self, body: ChatRequest, orch: Orchestrator) -> tuple[Options, str]:
        gw, limits = self.gw, self.gw.served.limits
        if body.task is not None:  # a held-out task: its own preference, counted apart from users' profiles
            preference, profile = body.task.preference, "task"
        else:
            preference, profile = resolve_preference(body.preference, gw.tool_names(), Preference())
        if body.max_turn_tokens is not None and body.max_turn_tokens > orch.max_new_tokens:
            raise ApiError(400, f"max_turn_tokens: at most {orch.max_new_tokens} (what orchestrator '{orch.name}' "
                                "was started with)", "invalid_value", "max_turn_tokens")
        max_latency = min(body.max_latency_s or gw.settings.max_request_s, gw.settings.max_request_s)
        sampling = Sampling(temperature=body.temperature, seed=body.seed, max_turn_tokens=body.max_turn_tokens)
        options = Options(preference=preference, profile=profile,
                          max_cost_usd=body.max_cost_usd or limits.budget_usd, max_latency_s=max_latency,
                          max_turns=body.max_turns or limits.max_turns,
                          max_tokens=body.max_completion_tokens or body.max_tokens or limits.max_tokens,
                          include_trace=body.include_trace, sampling=sampling,
                          task=body.task.id if body.task is not None else None)
        return options, profile

    def admit(self) -> None:
        gw = self.gw
        if gw.draining:
            raise ApiError(503, "the gateway is shutting down", "shutting_down", retry_after_s=1)
        if gw.inflight >= gw.settings.max_inflight:
            raise ApiError(503, f"{gw.settings.max_inflight} orchestrations in flight: try again shortly",
                           "overloaded", retry_after_s=1)
        gw.inflight += 1
        gw.metrics.inflight.inc()
        self.admitted = True


async def run_request(gw: Gateway, task: Task, world: Environment | None, orch: Orchestrator, options: Options,
                      run: RequestRun) -> Outcome:
    session = await gw.open_session(world)
    try:
        assert gw.services is not None
        tools = GatewayToolbox(gw.toolbox(session), gw.external, gw.services, run)
        limits = gw.served.limits.model_copy(update={"max_turns": options.max_turns, "max_tokens": options.max_tokens,
                                                     "budget_usd": options.max_cost_usd})
        return await orchestrate(task, orch, gw.catalog.orchestrator, tools, limits, run, options.sampling)
    finally:
        await gw.close_session(session)


def build_app(gw: Gateway) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        # Everything loaded so far (the CLI's imports reach torch and transformers: ~400k objects)
        # lives as long as the process: a full collection of it took ~0.3 s, a pause every request
        # in flight would wait out. Frozen, the collector skips it.
        gc.collect()
        gc.freeze()
        if gw.keyring.open:
            log.warning("no API keys configured (TOOLORCH_API_KEYS_FILE unset): any bearer token is accepted")
        log.info("serving %s with %d tools; orchestrators: %s", ", ".join(gw.catalog.names()) or "no experts",
                 len(gw.tool_names()), ", ".join(f"{v.name}={v.spec}" for v in gw.split.variants))
        yield
        gw.draining = True
        await gw.stop()

    app = FastAPI(title="toolorch gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(ApiError(500, f"internal error: {exc.__class__.__name__}", "internal_error"))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "inflight": gw.inflight}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        engines = gw.ready()
        ok = all(engines.values()) and not gw.draining
        body = {"ready": ok, "orchestrators": engines, "catalog": {"experts": gw.catalog.names(),
                                                                   "tools": len(gw.tool_names())},
                "draining": gw.draining}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(gw.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "toolorch"}
                                           for m in gw.models()]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        ex = Exchange(gw, request)
        try:
            key = gw.keyring.authenticate(request.headers.get("authorization"))
            body = ChatRequest.parse(await request.body())
            orch = ex.choose(body.model)
            ex.variant = orch.name
            options, profile = ex.options(body, orch)
            question = body.question()
            world = gw.eval_world(body.task) if body.task is not None else gw.world
            gw.metrics.preference_requests.labels(profile).inc()
            ex.admit()
            budget = RequestBudget(options.max_cost_usd)
            # A lower bound of the first turn's reservation (the system prompt not counted): refuse here
            # what can never fit; the turn's own reservation refuses the rest (429 too, or a stream error).
            first = gw.catalog.orchestrator.cost(worst_prompt_tokens(question), orch.max_new_tokens)
            short = gw.ledger.can_afford(budget, key.name, first)
            if short:
                gw.metrics.exhaustions.labels(short).inc()
                raise ApiError(429, "budget exceeded: the first orchestrator turn may cost "
                                    f"${first:.6f}, more than " + ("the API key has left" if short == "key"
                                                                   else "max_cost_usd"),
                               "budget_exceeded", "max_cost_usd" if short == "cost" else None, retry_after_s=60)
        except ApiError as e:
            return ex.failed(e)
        loop = asyncio.get_running_loop()
        run = RequestRun(ex.request_id, key.name, budget, loop.time() + options.max_latency_s, gw.ledger,
                         gw.metrics, ex.started)
        task = body.task or Task(id=ex.request_id, env=gw.world.name if gw.world else "gateway", question=question,
                                 answer="", preference=options.preference, split="heldout")
        work = asyncio.create_task(run_request(gw, task, world, orch, options, run))
        meta = Meta.now(ex.request_id, body.model, orch.name)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(stream(ex, work, request, meta, options, profile, run, include_usage),
                                     media_type="text/event-stream", headers=ex.headers())
        return await respond(ex, work, request, meta, options, profile, run)

    async def respond(ex: Exchange, work: asyncio.Task, request: Request, meta: Meta, options: Options,
                      profile: str, run: RequestRun) -> Response:
        watcher = asyncio.create_task(until_disconnected(request))
        try:
            await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                work.cancel()
                ex.finish(CLIENT_CLOSED, "client_closed", "cancelled")
                return Response(status_code=CLIENT_CLOSED)
            try:
                outcome = work.result()
            except ApiError as e:
                return ex.failed(e)
            except Exception as e:  # a bug must not leak the admission slot or its metrics
                log.exception("orchestration failed")
                return ex.failed(ApiError(500, f"internal error: {e.__class__.__name__}", "internal_error"))
            count_denied(profile, outcome)
            body = completion(meta, outcome, options)
            run.close_turn()
            ex.finish(200, "ok", outcome.finish_reason, outcome)
            return JSONResponse(body, headers=ex.headers(outcome, run))
        finally:
            watcher.cancel()
            work.cancel()

    async def stream(ex: Exchange, work: asyncio.Task, request: Request, meta: Meta, options: Options,
                     profile: str, run: RequestRun, include_usage: bool) -> AsyncIterator[str]:
        watcher = asyncio.create_task(until_disconnected(request))
        try:
            yield sse(chunk(meta, {"role": "assistant", "content": ""}))
            while not work.done():
                await asyncio.wait({work, watcher}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
                if watcher.done() and not work.done():
                    work.cancel()
                    ex.finish(CLIENT_CLOSED, "client_closed", "cancelled")
                    return
                if not work.done():
                    yield ": keep-alive\n\n"
            try:
                outcome = work.result()
            except ApiError as e:
                ex.finish(e.status, e.code, "error")
                yield sse(e.body())
                yield DONE
                return
            count_denied(profile, outcome)
            events = list(final_events(meta, outcome, options, include_usage))
            run.close_turn()
            ex.finish(200, "ok", outcome.finish_reason, outcome)
            for event in events:
                yield event
        except Exception as e:  # an unexpected failure mid-stream: an error event, then [DONE]
            log.exception("stream failed")
            err = ApiError(500, f"internal error: {e.__class__.__name__}", "internal_error")
            ex.finish(500, err.code, "error")
            yield sse(err.body())
            yield DONE
        finally:
            watcher.cancel()
            if not work.done():
                work.cancel()
                ex.finish(CLIENT_CLOSED, "client_closed", "cancelled")

    def count_denied(profile: str, outcome: Outcome) -> None:
        denied = sum(1 for s in outcome.steps if s.status == "denied")
        if denied:
            gw.metrics.denied_calls.labels(profile).inc(denied)

    return app
