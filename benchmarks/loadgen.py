"""The measuring half of benchmarks/gateway_load.py (run that): closed-loop clients against an
OpenAI-compatible /v1/chat/completions, each request's outcome class, a level's summary
(latency percentiles, rates, error classes, lost requests, gateway overhead), the baseline
ratios, and the fault mode's shell hooks and readiness poll.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import numpy as np

CLOSE_GRACE_S = 5.0
READY_POLL_S = 0.5
READY_TIMEOUT_S = 1.0  # a Kubernetes probe's default
QUESTIONS = [
    "How many books by Ursula K. Le Guin does the library hold?",
    "Which customer made the largest deposit last month, and how large was it?",
    "Is flight UA 212 on 2024-05-14 overbooked?",
    "What is the total of all unpaid invoices for the clinic's cardiology department?",
    "Which train leaves Lyon for Turin first on Saturday morning?",
]


@dataclass(frozen=True)
class Target:
    label: str  # "target" or "baseline"
    url: str  # .../v1/chat/completions
    model: str


@dataclass(frozen=True)
class OverheadFields:
    header: str = "x-toolorch-overhead-ms"
    turns_header: str = "x-toolorch-turns"
    metrics: str = "metrics"
    overhead_key: str = "overhead_ms"
    turns_key: str = "turns"


@dataclass
class Outcome:
    start_s: float  # since the level began
    latency_s: float
    kind: str
    shaped: bool  # ok, or an OpenAI-shaped error
    completion_tokens: int = 0
    overhead_turns_ms: list[float] = field(default_factory=list)
    overhead_ms: float | None = None


def openai_error_code(body: Any) -> tuple[bool, str | None]:
    """(is OpenAI's error shape, its code)."""
    err = body.get("error") if isinstance(body, dict) else None
    shaped = (isinstance(err, dict) and {"message", "type", "param", "code"} <= err.keys()
              and isinstance(err["message"], str) and (err["code"] is None or isinstance(err["code"], str)))
    return shaped, err["code"] if shaped else None


def numbers(value: Any) -> list[float]:
    """A number, a comma-separated string of numbers or a list of them, as floats."""
    if value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    items = value.split(",") if isinstance(value, str) else value
    return [float(v) for v in items]


def read_overhead(resp: httpx2.Response, body: dict, fields: OverheadFields) -> tuple[list[float], float | None]:
    """(per-turn overhead samples in ms, the request's total overhead in ms) if the reply has them."""
    metrics = body.get(fields.metrics) if isinstance(body.get(fields.metrics), dict) else {}
    raw = resp.headers.get(fields.header, metrics.get(fields.overhead_key))
    turns = resp.headers.get(fields.turns_header, metrics.get(fields.turns_key))
    try:
        values, n_turns = numbers(raw), int(turns) if turns is not None else None
    except (TypeError, ValueError):
        return [], None
    if not values:
        return [], None
    if len(values) > 1 or isinstance(raw, list):
        return values, sum(values)
    per_turn = [values[0] / n_turns] if n_turns else []
    return per_turn, values[0]


def classify(resp: httpx2.Response, start_s: float, latency_s: float, fields: OverheadFields) -> Outcome:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code != 200:
        shaped, code = openai_error_code(body)
        kind = f"http_{resp.status_code}:{code}" if shaped else f"http_{resp.status_code}:unshaped"
        return Outcome(start_s, latency_s, kind, shaped)
    choices = body.get("choices") if isinstance(body, dict) else None
    if not (isinstance(choices, list) and choices and isinstance(choices[0], dict) and "message" in choices[0]):
        return Outcome(start_s, latency_s, "bad_response", False)
    usage = body.get("usage") or {}
    turns_ms, total_ms = read_overhead(resp, body, fields)
    return Outcome(start_s, latency_s, "ok", True, int(usage.get("completion_tokens") or 0), turns_ms, total_ms)


async def one_request(client: httpx2.AsyncClient, target: Target, body: dict, t0: float, timeout: float,
                      fields: OverheadFields) -> Outcome:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            resp = await client.post(target.url, json=body)
    except (TimeoutError, httpx2.TimeoutException):
        kind = "client_timeout"
    except httpx2.ConnectError:
        kind = "connect_error"
    except httpx2.TransportError as e:
        kind = f"transport:{type(e).__name__}"
    else:
        return classify(resp, start - t0, time.perf_counter() - start, fields)
    return Outcome(start - t0, time.perf_counter() - start, kind, False)


def request_body(model: str, prompts: list[str], i: int, extra: dict) -> dict:
    prompt = f"{prompts[i % len(prompts)]} (request {i})"  # distinct prompts: distinct draws upstream
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}


@dataclass(frozen=True)
class Load:
    """What every level of a run shares."""
    duration: float
    timeout: float
    prompts: list[str]
    extra_body: dict
    headers: dict
    fields: OverheadFields
    error_pause: float  # after a failure that is not an answer (a refused connection), as a client backs off
    ramp: float = 0.0  # clients join evenly over this many seconds (0: all at once)


async def run_level(target: Target, concurrency: int, load: Load) -> tuple[list[Outcome], int, float, float]:
    """(outcomes, lost, wall seconds, client CPU seconds) of `concurrency` closed-loop clients."""
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    outcomes: list[Outcome] = []
    in_flight: set[int] = set()
    cpu0, t0 = time.process_time(), time.perf_counter()
    stop_at = t0 + load.duration
    async with httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(load.timeout), headers=load.headers) as client:
        async def worker(w: int) -> None:
            i = w
            await asyncio.sleep(load.ramp * w / concurrency)
            while time.perf_counter() < stop_at:
                in_flight.add(i)
                body = request_body(target.model, load.prompts, i, load.extra_body)
                outcome = await one_request(client, target, body, t0, load.timeout, load.fields)
                outcomes.append(outcome)
                in_flight.discard(i)
                i += concurrency
                if not outcome.shaped and outcome.kind != "client_timeout":  # instant failures: do not spin
                    await asyncio.sleep(load.error_pause)

        tasks = [asyncio.create_task(worker(w)) for w in range(concurrency)]
        _, unfinished = await asyncio.wait(tasks, timeout=load.duration + load.timeout + CLOSE_GRACE_S)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
    return outcomes, len(in_flight), time.perf_counter() - t0, time.process_time() - cpu0


def percentiles(values: list[float], qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, float] | None:
    if not values:
        return None
    return {f"p{q}": round(float(np.percentile(values, q)), 3) for q in qs}


def summarize(outcomes: list[Outcome], lost: int, wall_s: float, cpu_s: float, concurrency: int) -> dict:
    ok = [o for o in outcomes if o.kind == "ok"]
    turns = [ms for o in ok for ms in o.overhead_turns_ms]
    totals = [o.overhead_ms for o in ok if o.overhead_ms is not None]
    latency = percentiles([o.latency_s * 1000 for o in ok])
    return {
        "concurrency": concurrency, "wall_s": round(wall_s, 3), "requests": len(outcomes) + lost, "ok": len(ok),
        "requests_per_s": round(len(outcomes) / wall_s, 2), "ok_per_s": round(len(ok) / wall_s, 2),
        "latency_ms": latency and {**latency, "max": round(max(o.latency_s for o in ok) * 1000, 3)},
        "errors": dict(sorted(Counter(o.kind for o in outcomes if o.kind != "ok").items())), "lost": lost,
        "completion_tokens_per_s": round(sum(o.completion_tokens for o in ok) / wall_s, 1),
        "overhead_ms_per_turn": percentiles(turns, (50, 99)),
        "overhead_ms_per_request": percentiles(totals, (50, 99)),
        "client_cpu_share": round(cpu_s / wall_s, 3),  # near 1: the generator itself is the bottleneck
        "host_load_1m": round(os.getloadavg()[0], 2),  # at the level's end: neighbours share the CPUs
    }


def ratios(target: dict, baseline: dict) -> dict:
    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    lat_t, lat_b = target["latency_ms"] or {}, baseline["latency_ms"] or {}
    return {"ok_per_s": ratio(target["ok_per_s"], baseline["ok_per_s"]),
            **{f"latency_{q}": ratio(lat_t.get(q), lat_b.get(q)) for q in ("p50", "p95", "p99")}}


async def sweep(targets: list[Target], levels: list[int], load: Load) -> list[dict]:
    rows = []
    for concurrency in levels:
        row: dict[str, Any] = {"concurrency": concurrency}
        for target in targets:
            outcomes, lost, wall, cpu = await run_level(target, concurrency, load)
            row[target.label] = summarize(outcomes, lost, wall, cpu, concurrency)
            print(f"{target.label:8} c={concurrency:<4} {json.dumps(row[target.label])}", file=sys.stderr)
        if len(targets) == 2:
            row["ratio"] = ratios(row["target"], row["baseline"])
        rows.append(row)
    return rows


async def run_hook(at_s: float, command: str, t0: float, log_path: Path, timeout: float) -> dict:
    """Run a shell hook at `at_s` seconds; its output goes to a file (a pipe would hang on a
    server the hook starts in the background)."""
    await asyncio.sleep(max(0.0, t0 + at_s - time.perf_counter()))
    started = time.perf_counter() - t0
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_shell(command, stdin=asyncio.subprocess.DEVNULL, stdout=log,
                                                     stderr=asyncio.subprocess.STDOUT)
        try:
            returncode = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            returncode = None
    return {"at_s": at_s, "command": command, "started_s": round(started, 3),
            "ended_s": round(time.perf_counter() - t0, 3), "returncode": returncode, "log": log_path.name}


async def poll_ready(url: str, t0: float, stop: asyncio.Event) -> list[dict]:
    """Readiness transitions [{t_s, ready}], the first poll included; ready = HTTP 200."""
    transitions: list[dict] = []
    async with httpx2.AsyncClient(timeout=READY_TIMEOUT_S) as client:
        tick = 0
        while not stop.is_set():
            t = time.perf_counter() - t0
            try:
                ready = (await client.get(url)).status_code == 200
            except httpx2.HTTPError:
                ready = False
            if not transitions or transitions[-1]["ready"] != ready:
                transitions.append({"t_s": round(t, 3), "ready": ready})
            tick += 1
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, t0 + tick * READY_POLL_S - time.perf_counter()))
            except TimeoutError:
                pass
    return transitions


def timeline(outcomes: list[Outcome]) -> list[dict]:
    """Outcome kinds by the second their request started."""
    buckets: dict[int, Counter] = {}
    for o in outcomes:
        buckets.setdefault(int(o.start_s), Counter())[o.kind] += 1
    return [{"t_s": t, **dict(sorted(buckets[t].items()))} for t in sorted(buckets)]


async def fault_run(target: Target, concurrency: int, load: Load, ready_url: str, hooks: list[tuple[float, str]],
                    hook_timeout: float, deadline: float, out_dir: Path) -> dict:
    stop = asyncio.Event()
    t0 = time.perf_counter()
    poller = asyncio.create_task(poll_ready(ready_url, t0, stop))
    hook_tasks = [asyncio.create_task(run_hook(at, cmd, t0, out_dir / f"hook-{i}.log", hook_timeout))
                  for i, (at, cmd) in enumerate(hooks)]
    outcomes, lost, wall, cpu = await run_level(target, concurrency, load)
    hook_results = await asyncio.gather(*hook_tasks)
    stop.set()
    violations = Counter(o.kind for o in outcomes if not o.shaped)
    past = sum(o.latency_s > deadline for o in outcomes)
    violations.update({"past_deadline": past, "lost": lost})
    violations = +violations  # drop zeros
    return {"summary": summarize(outcomes, lost, wall, cpu, concurrency), "hooks": hook_results,
            "readiness": await poller, "deadline_s": deadline, "violations": dict(violations),
            "passed": not violations, "timeline": timeline(outcomes)}
