"""Load generator for any OpenAI-compatible /v1/chat/completions endpoint (a gateway, an engine,
the simulated expert server): a concurrency sweep, a side-by-side baseline, and a fault mode.

    python benchmarks/gateway_load.py URL --name NAME [--model M] [--concurrency 1,16,64,200]
        [--duration 60] [--timeout 120] [--baseline URL2 --baseline-model M2]
    python benchmarks/gateway_load.py URL --name NAME --fault --concurrency 16 --duration 60
        --ready-url http://host/ready --hook '20:kill $(cat engine.pid)' --hook '40:bash start-engine.sh'

URL is the API base (http://127.0.0.1:9100/v1). Each level runs `concurrency` closed-loop
clients for `duration` seconds (a client sends its next request when the last one ended),
then waits for the requests in flight. A request ends as `ok` (a chat completion), an error
class (`http_<status>:<OpenAI error code>`, `http_<status>:unshaped` when the body is not
OpenAI's {"error": {"message", "type", "param", "code"}}, `bad_response`, `connect_error`,
`transport:<httpx2 error class>`, `client_timeout` at --timeout), or is `lost`: sent, and neither
answered nor errored when the level closed (duration + timeout + 5 s).

Overhead: when a reply carries the gateway's own overhead, in the header --overhead-header
(ms; one number for the request or comma-separated per turn) or in the body's
--metrics-field object (keys --overhead-key and --turns-key; a number or a per-turn list),
the level reports per-turn and per-request overhead percentiles.

--baseline runs each level against a second endpoint right after the first, in this process,
and reports target/baseline ratios. --fault runs one level (the first concurrency) while
shell hooks run at their times, polls --ready-url every 0.5 s (ready = HTTP 200), records when
readiness changed, and passes when every request ended ok or with an OpenAI-shaped error,
none after --deadline and none lost (exit 1 otherwise).

Writes benchmarks/results/<name>/load.json and load.md (--out-dir to change the root).

The client is httpx2 (the openai SDK's own HTTP client, httpx's API): httpx 0.28/0.29 with
httpcore 1.0 spends O(connections x queued requests) per request in its pool (encode/httpx
#3215) and measured 70-100 ok/s at 64-200 connections against the simulated expert server
where httpx2 measured 380-1040 (benchmarks/README.md).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
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


def fmt(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def level_row(side: str, s: dict) -> str:
    lat = s["latency_ms"] or {}
    turn = s["overhead_ms_per_turn"]
    overhead = f"{turn['p50']:g} / {turn['p99']:g}" if turn else "-"
    errors = ", ".join(f"{k} {v}" for k, v in s["errors"].items()) or "none"
    return (f"| {s['concurrency']} | {side} | {s['requests']} | {fmt(s['ok_per_s'])} | {fmt(lat.get('p50'))} | "
            f"{fmt(lat.get('p95'))} | {fmt(lat.get('p99'))} | {errors} | {s['lost']} | "
            f"{overhead} | {s['client_cpu_share']:.0%} |")


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [f"# Load: {result['name']}", ""]
    if s["note"]:
        lines += [s["note"], ""]
    base = f"; baseline {s['baseline']} (model {s['baseline_model']})" if s["baseline"] else ""
    lines += [f"Target {s['url']} (model {s['model']}){base}. Closed loop, {s['duration']:g} s per level, "
              f"client timeout {s['timeout']:g} s; {result['environment']['cpus']} CPUs, {result['started_at']}.",
              "", "| concurrency | side | requests | ok/s | p50 ms | p95 ms | p99 ms | errors | lost | "
              "overhead/turn p50 / p99 ms | client CPU |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in result.get("levels", []):
        lines += [level_row(side, row[side]) for side in ("target", "baseline") if side in row]
    if any("ratio" in row for row in result.get("levels", [])):
        lines += ["", "| concurrency | ok/s target / baseline | p50 ratio | p95 ratio | p99 ratio |", "|---|---|---|---|---|"]
        lines += [f"| {row['concurrency']} | {fmt(row['ratio']['ok_per_s'])} | {fmt(row['ratio']['latency_p50'])} | "
                  f"{fmt(row['ratio']['latency_p95'])} | {fmt(row['ratio']['latency_p99'])} |"
                  for row in result["levels"]]
    if fault := result.get("fault"):
        lines.append(level_row("target", fault["summary"]))
        lines += ["", "| hook at s | started s | ended s | exit | command |", "|---|---|---|---|---|"]
        lines += [f"| {h['at_s']:g} | {h['started_s']:g} | {h['ended_s']:g} | {fmt(h['returncode'])} | "
                  f"`{h['command']}` |" for h in fault["hooks"]]
        ready = ", ".join(f"{'ready' if r['ready'] else 'not ready'} at {r['t_s']:g} s" for r in fault["readiness"])
        verdict = "PASSED" if fault["passed"] else f"FAILED: {json.dumps(fault['violations'])}"
        lines += ["", f"Readiness ({s['ready_url']}): {ready or 'never polled'}.", "",
                  f"Every request ok or an OpenAI-shaped error, none past {fault['deadline_s']:g} s, none lost: "
                  f"{verdict}."]
    return "\n".join(lines) + "\n"


def parse_hook(text: str) -> tuple[float, str]:
    at, sep, command = text.partition(":")
    try:
        if not sep or not command.strip():
            raise ValueError
        return float(at), command
    except ValueError:
        raise argparse.ArgumentTypeError(f"hook {text!r} must look like SECONDS:COMMAND") from None


def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(v) for v in text.split(",")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"--concurrency {text!r} must be positive integers, e.g. 1,16,64")
    return levels


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("url", help="API base, e.g. http://127.0.0.1:9100/v1")
    p.add_argument("--name", required=True, help="results go to <out-dir>/<name>/")
    p.add_argument("--model", required=True)
    p.add_argument("--concurrency", type=parse_levels, default=[1, 16, 64, 200])
    p.add_argument("--duration", type=float, default=60.0, help="seconds per level")
    p.add_argument("--timeout", type=float, default=120.0, help="client timeout per request (s)")
    p.add_argument("--error-pause", type=float, default=0.05,
                   help="a client's pause after a connection failure or an unshaped reply (s)")
    p.add_argument("--baseline", help="API base run side by side with the same load")
    p.add_argument("--baseline-model", help="model at the baseline (default: --model)")
    p.add_argument("--prompts", type=Path, help="a text file, one prompt a line (default: built-in questions)")
    p.add_argument("--extra-body", type=json.loads, default={}, help='JSON merged into each body, e.g. {"max_tokens": 64}')
    p.add_argument("--api-key-env", help="name of the env var holding a bearer key (never the key)")
    p.add_argument("--overhead-header", default=OverheadFields.header)
    p.add_argument("--turns-header", default=OverheadFields.turns_header)
    p.add_argument("--metrics-field", default=OverheadFields.metrics)
    p.add_argument("--overhead-key", default=OverheadFields.overhead_key)
    p.add_argument("--turns-key", default=OverheadFields.turns_key)
    p.add_argument("--fault", action="store_true", help="one level with hooks and a readiness poll")
    p.add_argument("--ready-url", help="polled every 0.5 s in --fault mode")
    p.add_argument("--hook", type=parse_hook, action="append", default=[], metavar="SECONDS:COMMAND")
    p.add_argument("--hook-timeout", type=float, default=60.0)
    p.add_argument("--deadline", type=float, help="--fault: no request may take longer (default: --timeout)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks/results")
    p.add_argument("--note", default="", help="a line for the report (what the endpoint is)")
    args = p.parse_args(argv)
    if args.fault and not (args.ready_url and args.hook):
        p.error("--fault needs --ready-url and at least one --hook")
    if any(not 0 <= at < args.duration for at, _ in args.hook):
        p.error("every --hook time must fall within [0, --duration)")
    if args.api_key_env and not os.environ.get(args.api_key_env):
        p.error(f"--api-key-env {args.api_key_env}: that variable is not set")
    if args.duration <= 0 or args.timeout <= 0:
        p.error("--duration and --timeout must be positive")
    return args


def load_prompts(path: Path | None) -> list[str]:
    if path is None:
        return QUESTIONS
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise SystemExit(f"--prompts {path}: no prompt in the file")
    return prompts


def chat_url(base: str) -> str:
    return base.rstrip("/") + "/chat/completions"


async def run(args: argparse.Namespace, out_dir: Path) -> dict:
    headers = {"Authorization": f"Bearer {os.environ[args.api_key_env]}"} if args.api_key_env else {}
    fields = OverheadFields(args.overhead_header, args.turns_header, args.metrics_field, args.overhead_key,
                            args.turns_key)
    load = Load(args.duration, args.timeout, load_prompts(args.prompts), args.extra_body, headers, fields,
                args.error_pause)
    targets = [Target("target", chat_url(args.url), args.model)]
    if args.baseline:
        targets.append(Target("baseline", chat_url(args.baseline), args.baseline_model or args.model))
    if args.fault:
        return {"fault": await fault_run(targets[0], args.concurrency[0], load, args.ready_url, args.hook,
                                         args.hook_timeout, args.deadline or args.timeout, out_dir)}
    return {"levels": await sweep(targets, args.concurrency, load)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = args.out_dir / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings["baseline_model"] = args.baseline_model or args.model
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = {"name": args.name, "started_at": started, "settings": settings,
              "environment": {"cpus": os.cpu_count(), "python": platform.python_version(),
                              "httpx2": httpx2.__version__, "platform": platform.platform()},
              **asyncio.run(run(args, out_dir))}
    (out_dir / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "load.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if result.get("fault", {}).get("passed", True) else 1


if __name__ == "__main__":
    sys.exit(main())
