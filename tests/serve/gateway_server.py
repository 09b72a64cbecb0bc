"""A gateway on a free port of 127.0.0.1, in this process (uvicorn in a thread), for tests.

    with GatewayServer(settings) as gw:     # Settings from toolorch.serve.gateway
        gw.url                              # http://127.0.0.1:<port>/v1
        gw.gateway.ledger                   # the live objects, to check what the gateway did

The server is real (TCP, uvicorn, lifespan): clients can disconnect, stream, time out.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn
from vllm_server import free_port

from toolorch.core.config import load_config
from toolorch.serve.app import build_app
from toolorch.serve.catalog_file import Served, from_profile
from toolorch.serve.gateway import Gateway, Settings
from toolorch.serve.keys import Keyring

ROOT = Path(__file__).resolve().parents[2]


def tiny_served(**episode) -> Served:
    """The tiny profile's catalog (simulated experts), with episode overrides."""
    return from_profile(load_config(ROOT / "configs/tiny.yaml", [f"episode.{k}={v}" for k, v in episode.items()]))


class GatewayServer:
    def __init__(self, settings: Settings, keyring: Keyring | None = None):
        self.gateway = Gateway(settings, keyring or Keyring(None))
        self.port = free_port()
        config = uvicorn.Config(build_app(self.gateway), host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def __enter__(self) -> GatewayServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
