"""A fake Kubernetes API server on 127.0.0.1 for the PyTorchJob launcher tests (no real API server
can run here): the few endpoints the Kubeflow training SDK and the launcher call, over real HTTP.

    with fake_k8s(JobScript(running_after_s=0.2, done_after_s=1.0, log=["step 1"])) as api:
        TrainingClient(client_configuration=api.configuration(), namespace=api.namespace)

Served: the launcher's own pod (GET), Kueue LocalQueues (GET: 404 unless listed), PyTorchJobs
(POST, GET, DELETE; status conditions follow `JobScript` from the job's creation), the job's
master pod (listed by the SDK's label selector once the job runs) and its log (streamed line
by line as the real API does with follow=true). Every request is recorded.
"""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlparse

JOBS = re.compile(r"^/apis/kubeflow\.org/v1/namespaces/([^/]+)/pytorchjobs(?:/([^/]+))?$")
QUEUE = re.compile(r"^/apis/kueue\.x-k8s\.io/v1beta1/namespaces/([^/]+)/localqueues/([^/]+)$")
POD = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")


@dataclass
class JobScript:
    """How every created job goes: Running after `running_after_s`, then `outcome` after
    `done_after_s` (None: it never ends); its master logs `log`, one line every `line_s`."""

    running_after_s: float = 0.1
    done_after_s: float | None = 1.0
    outcome: str = "Succeeded"
    log: list[str] = field(default_factory=lambda: ["step 1 loss 0.50", "step 2 loss 0.25"])
    line_s: float = 0.05


@dataclass
class FakeAPI:
    url: str
    namespace: str
    launcher_pod: dict[str, str]
    queues: set[str]
    script: JobScript
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> body, until deleted
    created: list[dict[str, Any]] = field(default_factory=list)  # every body POSTed
    created_at: dict[str, float] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)

    def configuration(self) -> Any:
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        return config

    def conditions(self, name: str) -> list[dict[str, str]]:
        age = time.monotonic() - self.created_at[name]
        out = [{"type": "Created", "status": "True", "reason": "PyTorchJobCreated"}]
        if age >= self.script.running_after_s:
            out.append({"type": "Running", "status": "True", "reason": "PyTorchJobRunning"})
        if self.script.done_after_s is not None and age >= self.script.done_after_s:
            out[-1]["status"] = "False"
            out.append({"type": self.script.outcome, "status": "True", "reason": f"PyTorchJob{self.script.outcome}",
                        "message": "rank 3: CUDA out of memory" if self.script.outcome == "Failed" else ""})
        return out

    def master_pod(self, name: str) -> dict[str, Any]:
        return {"metadata": {"name": f"{name}-master-0", "namespace": self.namespace,
                             "labels": {"training.kubeflow.org/job-name": name,
                                        "training.kubeflow.org/job-role": "master"}},
                "status": {"phase": "Running"}}


def _handler(api: FakeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _missing(self) -> None:
            self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                             "code": 404, "message": f"{self.path} not found"})

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            api.requests.append((method, url.path))
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if method == "POST" and (m := JOBS.match(url.path)) and not m.group(2):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                name = body["metadata"]["name"]
                api.jobs[name], api.created_at[name] = body, time.monotonic()
                api.created.append(body)
                return self._send(201, body)
            if (m := JOBS.match(url.path)) and m.group(2) in api.jobs:
                name = m.group(2)
                if method == "DELETE":
                    api.deleted.append(name)
                    del api.jobs[name]
                    return self._send(200, {"kind": "Status", "status": "Success"})
                return self._send(200, {**api.jobs[name], "status": {"conditions": api.conditions(name)}})
            if method != "GET":
                return self._missing()
            if (m := QUEUE.match(url.path)) and m.group(2) in api.queues:
                return self._send(200, {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "LocalQueue",
                                        "metadata": {"name": m.group(2), "namespace": m.group(1)}})
            if (m := LOG.match(url.path)):
                return self._stream_log(query)
            if (m := POD.match(url.path)) and m.group(2) == api.launcher_pod["name"]:
                return self._send(200, {"metadata": {**api.launcher_pod, "namespace": m.group(1)}})
            if PODS.match(url.path):
                return self._send(200, {"kind": "PodList", "apiVersion": "v1", "items": self._pods(query)})
            return self._missing()

        def _pods(self, query: dict[str, str]) -> list[dict[str, Any]]:
            labels = dict(kv.split("=", 1) for kv in query.get("labelSelector", "").split(",") if kv)
            name = labels.get("training.kubeflow.org/job-name", "")
            if name not in api.jobs or not any(c["type"] == "Running" for c in api.conditions(name)):
                return []
            pod = api.master_pod(name)
            return [pod] if all(pod["metadata"]["labels"].get(k) == v for k, v in labels.items()) else []

        def _stream_log(self, query: dict[str, str]) -> None:
            """No Content-Length: lines go out as they come, and closing the connection ends the log."""
            assert query.get("container") == "pytorch", query
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for line in api.script.log:
                self.wfile.write(f"{line}\n".encode())
                self.wfile.flush()
                time.sleep(api.script.line_s if query.get("follow") == "true" else 0)

        def do_GET(self) -> None:  # noqa: N802
            self._route("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._route("POST")

        def do_DELETE(self) -> None:  # noqa: N802
            self._route("DELETE")

    return Handler


@contextmanager
def fake_k8s(script: JobScript, namespace: str = "toolorch", queues: tuple[str, ...] = ("toolorch-h100",)
             ) -> Iterator[FakeAPI]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
    api = FakeAPI(f"http://127.0.0.1:{server.server_address[1]}", namespace,
                  {"name": "toolorch-full-abc-grpo-launcher", "uid": str(uuid.uuid4())}, set(queues), script)
    server.RequestHandlerClass = _handler(api)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
