"""The orchestrator variants a gateway serves, and the canary split between them.

    variants = parse_variants(["hf:<checkpoint dir>"])                  # one, named "default"
    variants = parse_variants(["default=openai:http://engine:8000/v1#orchestrator",
                               "canary=openai:http://engine-canary:8000/v1#orchestrator"])
    split = Split(build(variants, seed=0, ...), canary_weight=0.1)     # 10% to the canaries
    orch = split.choose(request_id)                                     # sticky for one request id

Specs are `run-episode --policy`'s: `hf:DIR` (in-process; one thread, so one generation at a
time), `openai:URL#model` (an OpenAI-compatible engine, e.g. vLLM serving the checkpoint, called
through runtime.policies.OpenAIPolicy so the engine sees exactly what eval sends it; the call
runs on the engine thread pool, the event loop never blocks), `only:<expert>` (asks one
expert and answers with its reply: a gateway can be run and load-tested without a model).
"""
from __future__ import annotations

import asyncio
import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx2

from toolorch.core.records import expert_tool_name
from toolorch.core.seeds import stable_seed
from toolorch.runtime.openai_chat import EndpointError
from toolorch.runtime.policies import (
    AskToolPolicy,
    Generation,
    HFPolicy,
    OpenAIPolicy,
    Policy,
    openai_spec,
)
from toolorch.serve.contract import Sampling
from toolorch.serve.errors import ApiError
from toolorch.serve.http import ClientShards

PROBE_EVERY_S = 1.0  # the engine's readiness is probed this often, in the background
PROBE_TIMEOUT_S = 2.0
SCRIPTED_MAX_TOKENS = 64  # beyond the question a scripted policy copies into its call


class SpecError(ValueError):
    """An --orchestrator value that cannot be served."""


def parse_variants(values: list[str]) -> list[tuple[str, str]]:
    """[NAME=]SPEC values -> (name, spec); an unnamed first one is "default"."""
    out: list[tuple[str, str]] = []
    for i, value in enumerate(values):
        name, sep, spec = value.partition("=")
        if not sep or ":" in name or name in ("gold",):
            name, spec = ("default" if i == 0 else f"variant{i}"), value
        if not name.replace("-", "").replace("_", "").isalnum():
            raise SpecError(f"--orchestrator {value}: variant name '{name}' must be letters, digits, - or _")
        if name in (n for n, _ in out):
            raise SpecError(f"--orchestrator: variant '{name}' given twice")
        out.append((name, spec))
    if not out:
        raise SpecError("give at least one --orchestrator")
    return out


@dataclass
class Orchestrator:
    name: str
    spec: str
    policy: Policy
    max_new_tokens: int  # per turn: the worst case a turn's reservation assumes
    pool: ThreadPoolExecutor | None  # None: a scripted policy, run inline (microseconds)
    engine_url: str | None = None
    ready: bool = True
    failures: int = 0  # readiness probes failed in a row

    def for_request(self, request_id: str, sampling: Sampling) -> Policy:
        """The policy one request's turns are written by: the served one with the request's sampling
        (temperature, seed, per-turn tokens; what it does not give stays as started). A copy: the
        model and the engine client are shared, the settings and the turn count are the request's."""
        policy = self.policy
        if isinstance(policy, HFPolicy):
            policy = copy.copy(policy)
            policy.calls = 0  # turn k samples with seed + k, whatever other requests ran before
            policy.temperature = pick(sampling.temperature, policy.temperature)
            policy.seed = pick(sampling.seed, policy.seed)
            policy.max_new_tokens = pick(sampling.max_turn_tokens, policy.max_new_tokens)
        elif isinstance(policy, OpenAIPolicy):
            policy = copy.copy(policy)
            policy.client = self.policy.client.with_options(default_headers={"x-request-id": request_id})
            policy.temperature = pick(sampling.temperature, policy.temperature)
            policy.seed = pick(sampling.seed, policy.seed)
            policy.max_tokens = pick(sampling.max_turn_tokens, policy.max_tokens)
        return policy

    async def generate(self, policy: Policy, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Generation:
        if self.pool is None:
            return policy.generate(messages, tools)
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, policy.generate, messages, tools)
        except EndpointError as e:
            raise engine_error(str(e)) from None

    async def probe(self, client: ClientShards) -> bool:
        """One readiness probe: the engine answers GET /models. Two failures in a row mark it down
        (one slow answer under load is not an outage); in-process policies are always ready."""
        if self.engine_url is None:
            return True
        try:
            resp = await client.get(self.engine_url.rstrip("/") + "/models", timeout=PROBE_TIMEOUT_S)
            ok = resp.status_code == 200
        except httpx2.HTTPError:
            ok = False
        self.failures = 0 if ok else self.failures + 1
        self.ready = ok or (self.ready and self.failures < 2)
        return self.ready


def pick(given: Any, default: Any) -> Any:
    return default if given is None else given


def engine_error(message: str) -> ApiError:
    """What the client gets when the engine failed (after the policy's own retries): 504 when it
    timed out, 503 when it could not be reached or was overloaded, 502 when it answered wrongly."""
    if "Timeout" in message:
        return ApiError(504, f"orchestrator engine: {message}", "engine_timeout", retry_after_s=5)
    if "unreachable" in message:
        return ApiError(503, f"orchestrator engine: {message}", "engine_unavailable", retry_after_s=5)
    return ApiError(502, f"orchestrator engine: {message}", "engine_error")


def build_orchestrator(name: str, spec: str, experts: list[str], seed: int = 0, engine_threads: int = 64,
                       engine_timeout_s: float = 60.0, engine_retries: int = 2) -> Orchestrator:
    if spec.startswith("only:"):
        expert = spec[5:]
        if expert not in experts:
            raise SpecError(f"--orchestrator {spec}: no expert '{expert}' in the catalog (have: {', '.join(experts)})")
        return Orchestrator(name, spec, AskToolPolicy(expert_tool_name(expert), name=spec), SCRIPTED_MAX_TOKENS,
                            None)
    if spec.startswith("hf:"):
        policy = HFPolicy(spec[3:], seed=seed)
        return Orchestrator(name, spec, policy, policy.max_new_tokens, ThreadPoolExecutor(1, f"hf-{name}"))
    if spec.startswith("openai:"):
        try:
            url, _ = openai_spec(spec)
        except ValueError:
            raise SpecError(f"--orchestrator {spec}: expected openai:<http(s) base URL>#<model>") from None
        policy = OpenAIPolicy.from_spec(spec, seed=seed, timeout_s=engine_timeout_s, max_retries=engine_retries)
        return Orchestrator(name, spec, policy, policy.max_tokens,
                            ThreadPoolExecutor(engine_threads, f"engine-{name}"), engine_url=url)
    raise SpecError(f"--orchestrator {spec}: expected hf:<dir> | openai:<url>#<model> | only:<expert> "
                    "(gold needs a task's gold answer: no user question has one)")


@dataclass
class Split:
    """The first variant takes 1 - canary_weight of the traffic; the others share canary_weight."""

    variants: list[Orchestrator]
    canary_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.canary_weight <= 1:
            raise SpecError(f"--canary-weight {self.canary_weight}: must be within [0, 1]")
        if self.canary_weight > 0 and len(self.variants) < 2:
            raise SpecError("--canary-weight needs a second --orchestrator NAME=SPEC")

    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    def get(self, name: str) -> Orchestrator | None:
        return next((v for v in self.variants if v.name == name), None)

    def choose(self, request_id: str) -> Orchestrator:
        canaries = self.variants[1:]
        if not canaries or self.canary_weight == 0:
            return self.variants[0]
        u = (stable_seed("canary", request_id) % 1_000_000) / 1_000_000
        if u >= self.canary_weight:
            return self.variants[0]
        return canaries[int(u / self.canary_weight * len(canaries)) % len(canaries)]

    def close(self) -> None:
        for v in self.variants:
            if v.pool is not None:
                v.pool.shutdown(wait=False, cancel_futures=True)
