"""A real vLLM OpenAI-compatible server for tests: a subprocess of its own venv on 127.0.0.1.

    server = VLLMServer.start(python, model_dir, log_path)   # blocks until /v1/models answers
    ...  server.base_url, server.model
    server.stop()                                            # kills the whole process group

The venv comes from scripts/vllm-venv.sh (TOOLORCH_VLLM_PYTHON). The server is started by
scripts/serve-orchestrator.sh, so tests serve with the deployed flags (the checkpoint's chat
template, auto tool choice, the hermes parser); the flags added here keep the CPU server
small: float32 (bf16 is slower on these CPUs), a 2k context, 1 GiB of KV cache, and eager
mode, which skips the inductor warm-up and roughly halves the start time. `extra_args` add
test-only flags (e.g. --trust-request-chat-template).
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# A loaded 2-core machine has needed ~150 s; override with TOOLORCH_VLLM_READY_S.
READY_DEADLINE_S = float(os.environ.get("TOOLORCH_VLLM_READY_S", "300"))
STOP_GRACE_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


SERVE_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "serve-orchestrator.sh"


def server_command(model_dir: Path, port: int, extra_args: tuple[str, ...] = ()) -> list[str]:
    return [
        "bash", str(SERVE_SCRIPT), str(model_dir),
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager", "--seed", "0", *extra_args,
    ]


def server_env(python: str, model: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TOOLORCH_VLLM_PYTHON=python, TOOLORCH_SERVED_MODEL=model, VLLM_CPU_KVCACHE_SPACE="1",
               HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
    return env


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, log_path: Path, name: str, deadline_s: float,
               interval_s: float) -> None:
    """Poll `ready` until it holds; fail with the log's tail if the process exits or time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before it was ready; "
                               f"log {log_path}:\n{log_tail(log_path)}")
        try:
            if ready():
                return
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass  # not listening yet
        time.sleep(interval_s)
    raise RuntimeError(f"{name} not ready after {deadline_s:.0f} s; log {log_path}:\n{log_tail(log_path)}")


@dataclass
class VLLMServer:
    process: subprocess.Popen
    port: int
    model: str
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @classmethod
    def start(cls, python: str, model_dir: Path, log_path: Path, model: str = "tiny",
              deadline_s: float = READY_DEADLINE_S, extra_args: tuple[str, ...] = ()) -> VLLMServer:
        if not Path(python).exists():
            raise RuntimeError(f"vLLM python {python} does not exist: run scripts/vllm-venv.sh")
        port = free_port()
        log = open(log_path, "wb")
        # A session of its own, so that stop() can kill the engine and worker children too.
        process = subprocess.Popen(server_command(model_dir, port, extra_args), stdout=log,
                                   stderr=subprocess.STDOUT, env=server_env(python, model), start_new_session=True)
        log.close()
        server = cls(process, port, model, log_path)
        atexit.register(server.stop)  # even if the test session dies before its teardown
        try:
            server.wait_ready(deadline_s)
        except BaseException:
            server.stop()
            raise
        return server

    def models(self) -> list[str]:
        with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as resp:
            return [m["id"] for m in json.load(resp)["data"]]

    def wait_ready(self, deadline_s: float) -> None:
        wait_until(lambda: self.model in self.models(), self.process, self.log_path, "vLLM server", deadline_s, 1.0)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(STOP_GRACE_S)
        self._signal_group(signal.SIGKILL)  # children that outlived the API server

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
