"""Offline Kubernetes validation: core kinds through kubernetes-validate's bundled schemas, and
custom resources it skips (PyTorchJob, ServiceMonitor, ...) through JSON schemas of their CRDs
whose `$ref`s reach the bundled definitions (ObjectMeta, LabelSelector, PodTemplateSpec)."""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

K8S_VERSION = "1.30.0"
_SCHEMA_DIR = f"kubernetes-json-schema/v{K8S_VERSION}-local-strict"


def validate_core(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _bundled(name: str) -> dict[str, Any]:
    return json.loads(resources.files("kubernetes_validate").joinpath(f"{_SCHEMA_DIR}/{name}").read_text())


_REPLICA = {
    "type": "object", "additionalProperties": False, "required": ["template"],
    "properties": {
        "replicas": {"type": "integer", "minimum": 0},
        "restartPolicy": {"enum": ["Always", "OnFailure", "Never", "ExitCode"]},
        "template": {"$ref": "https://kubernetes.io/api/podtemplatespec/v1"},
    },
}
PYTORCHJOB_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kubeflow.org/v1"},
        "kind": {"const": "PyTorchJob"},
        "metadata": {"$ref": "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        "spec": {
            "type": "object", "additionalProperties": False, "required": ["pytorchReplicaSpecs"],
            "properties": {
                "nprocPerNode": {"type": "string"},
                "runPolicy": {"type": "object", "additionalProperties": False, "properties": {
                    "cleanPodPolicy": {"enum": ["All", "Running", "None"]},
                    "backoffLimit": {"type": "integer", "minimum": 0},
                    "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                    "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                    "suspend": {"type": "boolean"},
                    "schedulingPolicy": {"type": "object"},
                }},
                "elasticPolicy": {"type": "object", "additionalProperties": False, "properties": {
                    "rdzvBackend": {"enum": ["c10d", "etcd", "etcd-v2"]},
                    "rdzvHost": {"type": "string"}, "rdzvPort": {"type": "integer"}, "rdzvId": {"type": "string"},
                    "minReplicas": {"type": "integer", "minimum": 1},
                    "maxReplicas": {"type": "integer", "minimum": 1},
                    "nProcPerNode": {"type": "integer", "minimum": 1},
                    "maxRestarts": {"type": "integer", "minimum": 0},
                    "standalone": {"type": "boolean"},
                    "metrics": {"type": "array"},
                }},
                "pytorchReplicaSpecs": {
                    "type": "object", "additionalProperties": False, "required": ["Master"],
                    "properties": {"Master": _REPLICA, "Worker": _REPLICA},
                },
            },
        },
    },
}


def validate_crd(doc: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless `doc` fits `schema` (a custom resource's schema)."""
    registry = Registry().with_resources([
        ("https://kubernetes.io/api/podtemplatespec/v1", Resource.from_contents(_bundled("podtemplatespec-v1.json"))),
        ("https://kubernetes.io/api/_definitions.json", Resource.from_contents(_bundled("_definitions.json"))),
    ])
    jsonschema.Draft202012Validator(schema, registry=registry).validate(doc)


def validate_pytorchjob(doc: dict[str, Any]) -> None:
    validate_crd(doc, PYTORCHJOB_SCHEMA)
