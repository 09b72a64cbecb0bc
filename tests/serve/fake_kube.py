"""A fake Kubernetes API server on 127.0.0.1 (no real one exists on these machines): real HTTP, the REST
paths and server-side apply's content type and query, objects kept in memory. A Deployment reports
itself rolled out after `polls_until_ready` GETs (never when its name is in `stuck`).

    with FakeKube(polls_until_ready=2) as kube:
        api = kube_client(kube.url)
        kube.objects["/apis/apps/v1/namespaces/toolorch/deployments/x"]   # what was applied
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeKube:
    def __init__(self, polls_until_ready: int = 1, stuck: tuple[str, ...] = (), fail_first: int = 0):
        self.objects: dict[str, dict[str, Any]] = {}
        self.applies: list[dict[str, Any]] = []  # path, content type, query of every PATCH
        self.gets: dict[str, int] = {}
        self.polls_until_ready = polls_until_ready
        self.stuck = stuck
        self.fail_first = fail_first  # the first N requests answer 503 (retried by the client)
        self.requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PATCH(self) -> None:
                fake.requests += 1
                url = urlparse(self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if fake.requests <= fake.fail_first:
                    return self.reply(503, {"kind": "Status", "status": "Failure", "code": 503})
                fake.applies.append({"path": url.path, "content_type": self.headers["Content-Type"],
                                     "query": parse_qs(url.query)})
                if url.path.rsplit("/", 1)[-1] != body.get("metadata", {}).get("name"):
                    return self.reply(400, {"kind": "Status", "message": "name in path and body differ", "code": 400})
                stored = {**body, "metadata": {**body["metadata"], "generation": 1}}
                fake.objects[url.path] = stored
                self.reply(200, stored)

            def do_GET(self) -> None:
                fake.requests += 1
                path = urlparse(self.path).path
                obj = fake.objects.get(path)
                if obj is None:
                    return self.reply(404, {"kind": "Status", "reason": "NotFound", "code": 404})
                fake.gets[path] = fake.gets.get(path, 0) + 1
                want = obj.get("spec", {}).get("replicas", 1)
                rolled = fake.gets[path] >= fake.polls_until_ready and obj["metadata"]["name"] not in fake.stuck
                status = {"observedGeneration": 1, "updatedReplicas": want if rolled else 0,
                          "availableReplicas": want if rolled else 0}
                self.reply(200, {**obj, "status": status})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeKube:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
