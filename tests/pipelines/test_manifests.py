"""manifests/: core kinds pass kubernetes-validate --strict (1.30); the PyTorchJob template and the
job the launcher renders from it pass the PyTorchJob schema; the training PodMonitor passes the
Prometheus Operator's schema and selects the pods that serve the training exporter."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import json

import jsonschema
import pytest
import yaml
from k8s_schemas import K8S_VERSION, validate_core, validate_crd, validate_pytorchjob

from toolorch.ops.pytorchjob import job_command, job_manifest

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "manifests").glob("*.yaml"))
DOCS = [(p.name, d) for p in MANIFESTS for d in yaml.safe_load_all(p.read_text()) if d]
TEMPLATE = ROOT / "manifests" / "pytorchjob-grpo.yaml"
CUSTOM = {"PyTorchJob", "PodMonitor"}  # custom resources: checked against their own schemas below
CORE_FILES = [p for p in MANIFESTS if not {d["kind"] for d in yaml.safe_load_all(p.read_text()) if d} <= CUSTOM]
PODMONITOR_SCHEMA = json.loads((Path(__file__).with_name("assets") / "crd-podmonitor.schema.json").read_text())


@pytest.mark.parametrize("name,doc", [d for d in DOCS if d[1]["kind"] not in CUSTOM],
                         ids=lambda x: x if isinstance(x, str) else x["kind"])
def test_core_kinds_validate_strictly(name, doc):
    validate_core(doc)


def test_cli_validates_the_folder():
    done = subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "-k", K8S_VERSION,
                           *map(str, CORE_FILES)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed for resource deployment/minio" in done.stdout + done.stderr


def test_strict_validation_rejects_a_typo():
    deployment = next(d for _, d in DOCS if d["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(Exception, match="imagePullPolicyy"):
        validate_core(broken)


@pytest.mark.skipif(not TEMPLATE.exists(), reason="the GRPO PyTorchJob template is not in this checkout")
def test_pytorchjob_template_and_rendered_job():
    template = yaml.safe_load(TEMPLATE.read_text())
    validate_pytorchjob(template)
    cmd = job_command("s3://b/c.yaml", {"sft_dir": "s3://b/sft"}, {"out_dir": "s3://b/out"}, nodes=2, gpus_per_node=8,
                      state_url="s3://b/state")
    job = job_manifest(template, name="grpo-abc", namespace="toolorch", image="ghcr.io/toolorch/toolorch-train:0.1.0",
                       command=cmd, nodes=2, gpus_per_node=8, owner={"name": "launcher", "uid": "1234"})
    validate_pytorchjob(job)
    bad = yaml.safe_load(yaml.safe_dump(job))
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["resources"]["limitz"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate_pytorchjob(bad)


def test_minio_reads_credentials_from_the_secret_only():
    deployment = next(d for _, d in DOCS if d["kind"] == "Deployment" and d["metadata"]["name"] == "minio")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert all("valueFrom" in e and "value" not in e for e in env)
    assert not [d for _, d in DOCS if d["kind"] == "Secret"], "credentials must not be committed"


# where KFP runs pipeline pods -> the service account it runs them as
KFP_RUNNERS = {"kfp-standalone-rbac.yaml": ("kubeflow", "pipeline-runner"),
               "kfp-profile-rbac.yaml": ("kubeflow-user-example-com", "default-editor")}


@pytest.mark.parametrize("file", sorted(KFP_RUNNERS))
def test_launcher_role_is_bound_where_kfp_pods_run(file):
    namespace, account = KFP_RUNNERS[file]
    docs = [d for name, d in DOCS if name == file]
    role = next(d for d in docs if d["kind"] == "Role")
    rule = next(r for r in role["rules"] if "pytorchjobs" in r["resources"])
    assert rule["apiGroups"] == ["kubeflow.org"]
    assert {"create", "get", "delete"} <= set(rule["verbs"])
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    text = (ROOT / "manifests" / file).read_text()
    for secret in ("toolorch-s3", "toolorch-expert-keys"):  # the Secrets the tasks read, made in the same namespace
        assert f"kubectl -n {namespace} create secret generic {secret}" in text


def test_no_manifest_names_a_cli_flag_kfp_lacks():
    assert not [name for name, _ in DOCS if "--service-account" in (ROOT / "manifests" / name).read_text()]


def _images(tree):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from [v] if k == "image" and isinstance(v, str) else _images(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _images(v)


def test_every_manifest_image_is_pinned_to_the_release():
    from components.images import IMAGES

    images = [i for _, doc in DOCS for i in _images(doc)]
    ours = [i for i in images if "/toolorch-" in i]
    assert ours and set(ours) <= set(IMAGES.values()), ours  # the release's tags
    for image in images:  # third-party images carry a fixed release tag too
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest", image


def test_training_podmonitor_scrapes_the_pods_that_serve_the_exporter():
    monitor = next(d for _, d in DOCS if d["kind"] == "PodMonitor")
    validate_crd(monitor, PODMONITOR_SCHEMA)
    typo = yaml.safe_load(yaml.safe_dump(monitor))
    typo["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        validate_crd(typo, PODMONITOR_SCHEMA)
    pod = yaml.safe_load(TEMPLATE.read_text())["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    container = pod["spec"]["containers"][0]
    port = next(p for p in container["ports"] if p["name"] == monitor["spec"]["podMetricsEndpoints"][0]["port"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TOOLORCH_METRICS_PORT"] == str(port["containerPort"])
