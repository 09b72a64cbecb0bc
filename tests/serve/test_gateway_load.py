"""benchmarks/gateway_load.py against the simulated expert server (a real process): the error
classes it counts are the faults the server injected; fault mode records readiness and flags
failures that are not OpenAI-shaped; gateway overhead fields are read under the names given."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx2
import pytest
from sim_server import ROOT, SimServer, sim_command, sim_env

from toolorch.serve.sim_experts import Faults

sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmark's own folder, as when it runs as a script
import loadgen  # noqa: E402

FAULTS = Faults(fail_rate=0.15, fail_status=500, timeout_rate=0.03, hang_s=30.0, seed=3)


def run_load(out_dir: Path, url: str, *flags: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "benchmarks/gateway_load.py"), url, "--name", "t", "--out-dir", str(out_dir),
           *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=sim_env())


def test_counted_error_classes_are_the_injected_faults(tmp_path: Path):
    flags = ["--latency-scale", "0", "--fail-rate", str(FAULTS.fail_rate), "--fail-status", "500",
             "--timeout-rate", str(FAULTS.timeout_rate), "--hang-s", str(FAULTS.hang_s), "--seed", str(FAULTS.seed)]
    with SimServer.start(tmp_path / "sim.log", *flags) as sim:
        # a hang outlasts the 2 s client timeout; an ordinary call at latency 0 takes milliseconds
        done = run_load(tmp_path, sim.base_url, "--model", "mini", "--concurrency", "4", "--duration", "1",
                        "--timeout", "2", "--baseline", sim.base_url, "--baseline-model", "qwen-32b")
        stats = sim.stats()
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "t/load.json").read_text())
    (row,) = result["levels"]
    sides = [row["target"], row["baseline"]]
    counted = sum((Counter(s["errors"]) for s in sides), Counter())
    injected = stats["injected"]
    assert counted == {"http_500:simulated_fault": injected["500"], "client_timeout": injected["hang"]}
    assert sum(s["ok"] for s in sides) == stats["ok"] and all(s["lost"] == 0 for s in sides)
    assert sum(s["requests"] for s in sides) == stats["calls"]
    drawn = [FAULTS.for_call(k) for k in range(stats["calls"])]
    assert (drawn.count("fail"), drawn.count("hang")) == (injected["500"], injected["hang"])
    assert row["ratio"]["ok_per_s"] == pytest.approx(row["target"]["ok_per_s"] / row["baseline"]["ok_per_s"], rel=1e-2)
    assert row["target"]["latency_ms"]["p50"] <= row["target"]["latency_ms"]["p99"]
    table = (tmp_path / "t/load.md").read_text()
    assert f"| 4 | target | {row['target']['requests']} |" in table and "client_timeout" in table


def test_fault_mode_records_readiness_and_flags_unshaped_failures(tmp_path: Path):
    sim = SimServer.start(tmp_path / "sim.log", "--latency-scale", "0")
    pidfile = tmp_path / "restarted.pid"
    restart = " ".join(sim_command(sim.port, "--latency-scale", "0"))
    try:
        done = run_load(tmp_path, sim.base_url, "--model", "mini", "--fault", "--concurrency", "4",
                        "--duration", "5", "--timeout", "2", "--ready-url", f"{sim.root_url}/health",
                        "--hook", f"1:kill {sim.process.pid}",
                        "--hook", f"2:{restart} > {tmp_path}/restarted.log 2>&1 & echo $! > {pidfile}")
    finally:
        sim.stop()
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert done.returncode == 1, done.stderr  # connection errors while the server was down
    fault = json.loads((tmp_path / "t/load.json").read_text())["fault"]
    assert [h["returncode"] for h in fault["hooks"]] == [0, 0]
    ready = fault["readiness"]
    assert [r["ready"] for r in ready] == [True, False, True]
    assert 1.0 <= ready[1]["t_s"] < 2.0 <= ready[2]["t_s"] < 5.0
    assert fault["violations"] and all(k == "connect_error" or k.startswith("transport:")
                                       for k in fault["violations"])
    ok_seconds = [b["t_s"] for b in fault["timeline"] if b.get("ok")]
    assert min(ok_seconds) < 1 and max(ok_seconds) >= 2  # served before the stop and after the restart
    assert "FAILED" in (tmp_path / "t/load.md").read_text()


def test_fault_mode_passes_when_every_failure_is_openai_shaped(tmp_path: Path):
    flags = ["--latency-scale", "0", "--fail-rate", "0.3", "--fail-status", "503"]
    with SimServer.start(tmp_path / "sim.log", *flags) as sim:
        done = run_load(tmp_path, sim.base_url, "--model", "mini", "--fault", "--concurrency", "2",
                        "--duration", "1", "--timeout", "2", "--ready-url", f"{sim.root_url}/health",
                        "--hook", "0.5:true")
    assert done.returncode == 0, done.stdout + done.stderr
    fault = json.loads((tmp_path / "t/load.json").read_text())["fault"]
    assert fault["passed"] and fault["violations"] == {}
    assert set(fault["summary"]["errors"]) == {"http_503:simulated_fault"}


def test_overhead_is_read_under_the_given_names():
    fields = loadgen.OverheadFields(header="x-ovh", turns_header="x-turns", metrics="trace",
                                         overhead_key="own_ms", turns_key="n")
    chat = {"choices": [{"message": {"role": "assistant", "content": "4"}}], "usage": {"completion_tokens": 3}}
    per_turn = httpx2.Response(200, json=chat, headers={"x-ovh": "12.5,7.5"})
    total = httpx2.Response(200, json={**chat, "trace": {"own_ms": 30, "n": 3}})
    ignored = httpx2.Response(200, json=chat, headers={"x-toolorch-overhead-ms": "99"})
    outcomes = [loadgen.classify(r, 0.0, 0.01, fields) for r in (per_turn, total, ignored)]
    assert [(o.overhead_turns_ms, o.overhead_ms) for o in outcomes] == [([12.5, 7.5], 20.0), ([10.0], 30.0), ([], None)]
    summary = loadgen.summarize(outcomes, 0, 1.0, 0.1, 1)
    assert summary["overhead_ms_per_turn"]["p50"] == 10.0 and summary["overhead_ms_per_request"]["p50"] == 25.0


def test_error_bodies_are_classed_by_shape():
    fields = loadgen.OverheadFields()
    shaped = httpx2.Response(429, json={"error": {"message": "slow down", "type": "rate_limit_error", "param": None,
                                                 "code": "budget_exhausted"}})
    flat = httpx2.Response(502, json={"error": "upstream died"})  # production-stack's shape
    vllm = httpx2.Response(400, json={"error": {"message": "x", "type": "BadRequestError", "param": None, "code": 400}})
    kinds = [loadgen.classify(r, 0, 0, fields) for r in (shaped, flat, vllm)]
    assert [(o.kind, o.shaped) for o in kinds] == [("http_429:budget_exhausted", True), ("http_502:unshaped", False),
                                                   ("http_400:unshaped", False)]
