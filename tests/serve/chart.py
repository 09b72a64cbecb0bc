"""The helm/ chart rendered offline with helm-python-sdk (Helm's own Go SDK, no helm binary and no
cluster), and checks of what it renders.

    docs = render(scenario_values("values-paper.yaml"))
    validate(doc)                      # kubernetes-validate --strict 1.30, or the CRD's schema
    one(docs, "Deployment", "orchestrator-toolorch-gateway")
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import helm_python
import yaml
from k8s_schemas import validate_core, validate_crd

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm"
ASSETS = Path(__file__).with_name("assets")
SCENARIOS = ["values.yaml", "values-cpu.yaml", "values-gpu.yaml", "values-paper.yaml"]
RELEASE, NAMESPACE = "orchestrator", "toolorch"
PREFIX = f"{RELEASE}-toolorch"
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "crd-servicemonitor.schema.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "crd-prometheusrule.schema.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "crd-scaledobject.schema.json",
}


@lru_cache(maxsize=1)
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART_DIR)


def scenario_values(name: str) -> dict[str, Any] | None:
    """A scenario file's values (None for the defaults: values.yaml is the chart's own)."""
    return None if name == "values.yaml" else yaml.safe_load((CHART_DIR / name).read_text())


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    manifests = chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


@lru_cache(maxsize=None)
def _crd_schema(file: str) -> dict[str, Any]:
    return json.loads((ASSETS / file).read_text())


def validate(doc: dict[str, Any]) -> None:
    schema = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if schema:
        validate_crd(doc, _crd_schema(schema))
    else:
        validate_core(doc)


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: found {len(found)} (have {[d['metadata']['name'] for d in of_kind(docs, kind)]})"
    return found[0]


def pod_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]


def containers(doc: dict) -> list[dict]:
    spec = pod_spec(doc)
    return spec.get("initContainers", []) + spec["containers"]


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels + matchExpressions) selects `labels`."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if op == "In" and value not in expr["values"] or op == "NotIn" and value in expr["values"]:
            return False
        if op == "Exists" and value is None or op == "DoesNotExist" and value is not None:
            return False
    return True


def pod_labels(doc: dict) -> dict[str, str]:
    return doc["spec"]["template"]["metadata"]["labels"]


def flags(container: dict) -> dict[str, str]:
    """`--name=value` arguments as a mapping (a bare `--flag` maps to "")."""
    out = {}
    for arg in container.get("args", []):
        name, _, value = arg.partition("=")
        out.setdefault(name, value)
    return out
