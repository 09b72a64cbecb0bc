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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx2
from loadgen import (  # benchmarks/ is the script's dir
    QUESTIONS,
    Load,
    OverheadFields,
    Target,
    fault_run,
    sweep,
)

ROOT = Path(__file__).resolve().parents[1]


def fmt(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def level_row(side: str, s: dict) -> str:
    lat = s["latency_ms"] or {}
    turn = s["overhead_ms_per_turn"]
    overhead = f"{turn['p50']:g} / {turn['p99']:g}" if turn else "-"
    errors = ", ".join(f"{k} {v}" for k, v in s["errors"].items()) or "none"
    return (f"| {s['concurrency']} | {side} | {s['requests']} | {fmt(s['ok_per_s'])} | {fmt(lat.get('p50'))} | "
            f"{fmt(lat.get('p95'))} | {fmt(lat.get('p99'))} | {errors} | {s['lost']} | "
            f"{overhead} | {s['client_cpu_share']:.0%} | {fmt(s['host_load_1m'])} |")


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [f"# Load: {result['name']}", ""]
    if s["note"]:
        lines += [s["note"], ""]
    base = f"; baseline {s['baseline']} (model {s['baseline_model']})" if s["baseline"] else ""
    ramp = f", clients joining over {s['ramp']:g} s" if s.get("ramp") else ""
    lines += [f"Target {s['url']} (model {s['model']}){base}. Closed loop, {s['duration']:g} s per level{ramp}, "
              f"client timeout {s['timeout']:g} s; {result['environment']['cpus']} CPUs, {result['started_at']}.",
              "", "| concurrency | side | requests | ok/s | p50 ms | p95 ms | p99 ms | errors | lost | "
              "overhead/turn p50 / p99 ms | client CPU | host load |", "|---" * 12 + "|"]
    for row in result.get("levels", []):
        lines += [level_row(side, row[side]) for side in ("target", "baseline") if side in row]
    if any("ratio" in row for row in result.get("levels", [])):
        lines += ["", "| concurrency | ok/s target / baseline | p50 ratio | p95 ratio | p99 ratio |",
                  "|---|---|---|---|---|"]
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
    p.add_argument("--ramp", type=float, default=0.0,
                   help="clients join evenly over this many seconds of each level (0: all at once)")
    p.add_argument("--error-pause", type=float, default=0.05,
                   help="a client's pause after a connection failure or an unshaped reply (s)")
    p.add_argument("--baseline", help="API base run side by side with the same load")
    p.add_argument("--baseline-model", help="model at the baseline (default: --model)")
    p.add_argument("--prompts", type=Path, help="a text file, one prompt a line (default: built-in questions)")
    p.add_argument("--extra-body", type=json.loads, default={},
                   help='JSON merged into each request body, e.g. {"max_tokens": 64}')
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
    if not 0 <= args.ramp < args.duration:
        p.error("--ramp must be within [0, --duration)")
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
                args.error_pause, args.ramp)
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
