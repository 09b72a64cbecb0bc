"""The simulated expert server as a real process on a free port, for tests.

    with SimServer.start(tmp_path / "sim.log", "--latency-scale", "0", "--fail-rate", "0.1") as sim:
        sim.base_url            # http://127.0.0.1:<port>/v1
        sim.stats()             # GET /stats: what the server counted and injected

Starts `python -m toolorch.serve.sim_experts --config configs/tiny.yaml` with the flags given,
blocks until /health answers, and kills the process on exit.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm_server import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
READY_DEADLINE_S = 60.0


def sim_command(port: int, *flags: str) -> list[str]:
    return [sys.executable, "-m", "toolorch.serve.sim_experts", "--config", str(ROOT / "configs/tiny.yaml"),
            "--port", str(port), *flags]


def sim_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


@dataclass
class SimServer:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @classmethod
    def start(cls, log_path: Path, *flags: str) -> SimServer:
        port = free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(sim_command(port, *flags), stdout=log, stderr=subprocess.STDOUT,
                                       env=sim_env())
        server = cls(process, port, log_path)
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def wait_ready(self) -> None:
        wait_until(lambda: bool(get_json(f"{self.root_url}/health", timeout=1.0)), self.process, self.log_path,
                   "sim server", READY_DEADLINE_S, 0.1)

    def stats(self) -> dict[str, Any]:
        return get_json(f"{self.root_url}/stats")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
