"""`toolorch serve` as a child process on a free local port, until it answers GET /ready (bounded).

    with local_gateway(["--config", "cfg.yaml", "--orchestrator", "hf:models/grpo"], Path("gw.log")) as url:
        ...   # url: http://127.0.0.1:<port>/v1

The deploy stage starts the gateway this way outside a cluster, so the smoke test goes through the
same process, HTTP server and request path a deployment runs. The process is stopped (SIGTERM,
then SIGKILL after `stop_s`) when the block ends; its log stays in the file.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from toolorch.core.errors import RunFailed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_ready(root: str) -> bool:
    try:
        with urllib.request.urlopen(f"{root}/ready", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def local_gateway(args: list[str], log: Path, start_s: float = 120.0, stop_s: float = 15.0) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "toolorch.cli", "serve", *args, "--host", "127.0.0.1", "--port", str(port)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_s
        while not is_ready(root):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready after {start_s:g} s"
                raise RunFailed(f"the local gateway {why}; its log ({log}):\n{log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield root + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(stop_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
