"""The serving release on a cluster: the chart rendered with helm-python-sdk, its objects applied with the
Kubernetes client (server-side apply), then its Deployments waited for, with a bound.

    docs = render_release(Path("helm"), {"engine": {"checkpoint": {"uri": uri}}}, "orchestrator", "toolorch")
    api = kube_client()                        # in-cluster service account, else ~/.kube/config
    applied = apply_objects(api, docs, "toolorch")
    wait_ready(api, applied, "toolorch", timeout_s=900)

No helm binary exists in the images, and helm-python-sdk renders but does not talk to a cluster;
so the release is applied as Helm would upgrade it, object by object under one field manager
(`toolorch-deploy`), which also prunes nothing: an object the chart stops rendering stays until
removed by hand. Hook objects (`helm test` pods) are not applied.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import yaml

from toolorch.core.errors import RunFailed

FIELD_MANAGER = "toolorch-deploy"
HOOK = "helm.sh/hook"


class ReleaseError(RunFailed):
    """The cluster refused an object, or the release did not become ready in time."""


def render_release(chart_dir: Path, values: dict[str, Any], release: str, namespace: str) -> list[dict[str, Any]]:
    import helm_python

    manifests = helm_python.Chart.load(chart_dir).render(values, name=release, namespace=namespace, is_install=False)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return [d for d in docs if HOOK not in (d.get("metadata", {}).get("annotations") or {})]


def plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith("s") else "s")


def object_path(doc: dict[str, Any], namespace: str) -> str:
    """The REST path of a namespaced object: /api/v1/... for the core group, /apis/<group>/<version>/... else."""
    api_version, name = doc["apiVersion"], doc["metadata"]["name"]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    ns = doc["metadata"].get("namespace") or namespace
    return f"{prefix}/namespaces/{ns}/{plural(doc['kind'])}/{name}"


def kube_client(host: str | None = None) -> Any:
    """An ApiClient: `host` (a test's API server, no auth), else the pod's service account, else kubeconfig."""
    from kubernetes import client, config

    if host is not None:
        return client.ApiClient(client.Configuration(host=host))
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def call(api: Any, method: str, path: str, body: Any = None, query: list | None = None,
         content_type: str = "application/json", attempts: int = 4, backoff_s: float = 0.5,
         sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """One API request; an unreachable server or a 5xx is retried with backoff, `attempts` times at most."""
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    for attempt in range(attempts):
        try:
            return api.call_api(path, method, query_params=query or [], header_params={
                "Content-Type": content_type, "Accept": "application/json"}, body=body, response_type="object",
                auth_settings=["BearerToken"], _return_http_data_only=True, _request_timeout=30)
        except ApiException as e:
            if e.status < 500 or attempt + 1 == attempts:
                raise ReleaseError(f"{method} {path}: the API server answered {e.status} {e.reason}: "
                                   f"{str(e.body)[:300]}") from None
        except HTTPError as e:
            if attempt + 1 == attempts:
                raise ReleaseError(f"{method} {path}: the API server is unreachable after {attempts} attempts: "
                                   f"{e.__class__.__name__}") from None
        sleep(backoff_s * 2**attempt)
    raise AssertionError("unreachable")


def apply_objects(api: Any, docs: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Server-side apply of every object (force: this release owns its fields); returns what the server holds."""
    return [call(api, "PATCH", object_path(doc, namespace), body=doc, content_type="application/apply-patch+yaml",
                 query=[("fieldManager", FIELD_MANAGER), ("force", "true")]) for doc in docs]


def deployment_ready(obj: dict[str, Any]) -> bool:
    """Rolled out: the controller saw this generation and every wanted replica is updated and available."""
    spec, status = obj.get("spec", {}), obj.get("status") or {}
    want = spec.get("replicas", 1)
    return (status.get("observedGeneration", 0) >= obj.get("metadata", {}).get("generation", 0)
            and status.get("updatedReplicas", 0) >= want and status.get("availableReplicas", 0) >= want)


def wait_ready(api: Any, applied: list[dict[str, Any]], namespace: str, timeout_s: float, poll_s: float = 2.0,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Poll the release's Deployments until all are rolled out; ReleaseError naming the laggards at `timeout_s`."""
    waiting = [d for d in applied if d.get("kind") == "Deployment"]
    deadline = clock() + timeout_s
    while True:
        pending = [d["metadata"]["name"] for d in waiting
                   if not deployment_ready(call(api, "GET", object_path(d, namespace)))]
        if not pending:
            return [d["metadata"]["name"] for d in waiting]
        if clock() >= deadline:
            raise ReleaseError(f"not ready after {timeout_s:g} s: deployment(s) {', '.join(pending)}")
        sleep(poll_s)
