"""A local fake of the Kubeflow Pipelines v2beta1 REST API: a real HTTP server on 127.0.0.1 that
answers what `kfp run create` calls (healthz, experiments by name, create, runs) and records every
request, so a test can run the real kfp CLI against it and read what a cluster would have received.

    with FakeKfpApi() as api:
        subprocess.run(["kfp", "--endpoint", api.url, "run", "create", "-e", "toolorch", "-f", spec, "k=8"])
        api.runs[0]["runtime_config"]["parameters"]     # {"k": 8}

Not KFP: it keeps runs in memory, schedules nothing and checks no spec beyond parsing the JSON.
"""
from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API = "/apis/v2beta1"
CREATED = "2026-01-01T00:00:00Z"


class FakeKfpApi:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.experiments: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeKfpApi:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------ the API

    def answer(self, method: str, url: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        path, query = urlparse(url).path, parse_qs(urlparse(url).query)
        with self._lock:
            self.requests.append((method, path))
            if (method, path) == ("GET", f"{API}/healthz"):
                return 200, {"multi_user": False}
            if (method, path) == ("GET", f"{API}/experiments"):
                wanted = self._filtered_name(query)
                found = [e for e in self.experiments if wanted in (None, e["display_name"])]
                return 200, {"experiments": found, "total_size": len(found)} if found else {}
            if (method, path) == ("POST", f"{API}/experiments"):
                experiment = {**(body or {}), "experiment_id": str(uuid.uuid4()), "created_at": CREATED,
                              "storage_state": "AVAILABLE"}
                self.experiments.append(experiment)
                return 200, experiment
            if (method, path) == ("POST", f"{API}/runs"):
                run = {**(body or {}), "run_id": str(uuid.uuid4()), "state": "PENDING", "created_at": CREATED}
                self.runs.append(run)
                return 200, run
            if method == "GET" and path.startswith(f"{API}/runs/"):
                run = next((r for r in self.runs if r["run_id"] == path.rsplit("/", 1)[1]), None)
                return (200, run) if run else (404, {"error": "no such run", "code": 5})
        return 404, {"error": f"the fake KFP API does not serve {method} {path}", "code": 5}

    @staticmethod
    def _filtered_name(query: dict[str, list[str]]) -> str | None:
        predicates = json.loads(query["filter"][0]).get("predicates", []) if "filter" in query else []
        names = [p.get("string_value") or p.get("stringValue") for p in predicates if p.get("key") == "display_name"]
        return names[0] if names else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _respond(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, payload = api.answer(method, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's names)
                self._respond("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._respond("POST")

            def log_message(self, *args: object) -> None:
                pass

        return Handler
