"""`toolorch serve` as a user starts it: a real process on a free port, waited for until /health
answers, stopped at the end; its log kept for the failure message."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vllm_server import free_port

ROOT = Path(__file__).parents[2]


@contextmanager
def gateway_process(args: list[str], log: Path, start_s: float = 60) -> Iterator[str]:
    """The gateway's OpenAI base URL while `toolorch serve ARGS` runs."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("TOOLORCH_API_KEYS_FILE", None)
    cmd = [sys.executable, "-m", "toolorch.cli", "serve", *args, "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + start_s
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"toolorch serve did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(15)
