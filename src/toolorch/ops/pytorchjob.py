"""Run a training stage (grpo; sft across GPUs) as a Kubeflow PyTorchJob on the cluster, or under
torchrun without one.

    launch_grpo(config_path, inputs, outputs)   # what the grpo KFP component calls
    launch_stage("sft", config_path, inputs, outputs, nodes=1, gpus_per_node=8)   # sft's, beyond one GPU

`inputs` and `outputs` map the stage's run() keywords (its declaration) to paths; each
keyword is a flag of the stage's command (`sft_dir` is `--sft-dir`) and the name of a
`run-stage --in/--out` in cluster mode.

Cluster mode (inside a pod with a service account, or TOOLORCH_GRPO_LAUNCH=cluster): inputs
are uploaded to S3, a kubeflow.org/v1 PyTorchJob is created from manifests/pytorchjob-grpo.yaml
(its replicas run `torchrun -m toolorch.ops.storage_cli run-stage STAGE` over those s3:// paths),
polled until it succeeds, fails or times out (then deleted), and its outputs downloaded.
Local mode (TOOLORCH_GRPO_LAUNCH=local, or no cluster found): the same stage under
`torch.distributed.run --standalone` with TOOLORCH_LOCAL_NPROC processes (default 1).
"""
from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from toolorch.core.errors import RunFailed
from toolorch.stages import declaration, default_paths
from toolorch.stages.stage import flag

SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"
S3_ENV = {"TOOLORCH_S3_ENDPOINT": "endpoint", "AWS_ACCESS_KEY_ID": "access-key", "AWS_SECRET_ACCESS_KEY": "secret-key"}


class JobFailed(RunFailed):
    """The PyTorchJob ended in the Failed condition."""


def launch_mode(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    forced = env.get("TOOLORCH_GRPO_LAUNCH", "auto")
    if forced not in ("auto", "local", "cluster"):
        raise ValueError(f"TOOLORCH_GRPO_LAUNCH={forced!r}: use auto, local or cluster")
    if forced != "auto":
        return forced
    return "cluster" if env.get("KUBERNETES_SERVICE_HOST") and SA_TOKEN.exists() else "local"


def local_command(config_path: str | Path, inputs: Mapping[str, str], outputs: Mapping[str, str], nproc: int,
                  stage: str = "grpo") -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", f"toolorch.stages.{stage}", "--config", str(config_path)]
    for name, path in {**inputs, **outputs}.items():
        cmd += [flag(name), str(path)]
    return cmd


def job_command(config_url: str, inputs: Mapping[str, str], outputs: Mapping[str, str], nodes: int,
                gpus_per_node: int, stage: str = "grpo") -> list[str]:
    """What each replica runs: torchrun (rendezvous from the operator's PET_* variables) over s3:// paths."""
    cmd = ["torchrun", "--nnodes", str(nodes), "--nproc-per-node", str(gpus_per_node),
           "-m", "toolorch.ops.storage_cli", "run-stage", stage, "--config", config_url]
    cmd += [a for name, url in inputs.items() for a in ("--in", f"{name}={url}")]
    cmd += [a for name, url in outputs.items() for a in ("--out", f"{name}={url}")]
    return cmd


def _size(spec: dict[str, Any], nodes: int, gpus_per_node: int) -> None:
    """Replica counts and processes per node, in whichever field the template uses."""
    if "elasticPolicy" in spec:
        spec["elasticPolicy"].update(minReplicas=nodes, maxReplicas=nodes, nProcPerNode=gpus_per_node)
    else:
        spec["nprocPerNode"] = str(gpus_per_node)
    replicas = spec["pytorchReplicaSpecs"]
    replicas["Master"]["replicas"] = 1
    if nodes > 1:
        replicas.setdefault("Worker", copy.deepcopy(replicas["Master"]))["replicas"] = nodes - 1
    else:
        replicas.pop("Worker", None)


def _fill_pod(pod: dict[str, Any], image: str, command: list[str], gpus_per_node: int, s3_secret: str) -> None:
    """Image, command, S3 credentials and GPUs; PVC volumes go, since inputs and outputs travel through S3."""
    pvcs = {v["name"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
    pod["volumes"] = [v for v in pod.get("volumes", []) if v["name"] not in pvcs]
    container = pod["containers"][0]
    container.update(image=image, command=list(command))
    container.pop("args", None)
    container["volumeMounts"] = [m for m in container.get("volumeMounts", []) if m["name"] not in pvcs]
    secret_env = [{"name": var, "valueFrom": {"secretKeyRef": {"name": s3_secret, "key": key}}}
                  for var, key in S3_ENV.items()]
    container["env"] = [e for e in container.get("env", []) if e["name"] not in S3_ENV] + secret_env
    resources = container.setdefault("resources", {})
    for kind in ("limits", "requests"):
        resources.setdefault(kind, {})["nvidia.com/gpu"] = gpus_per_node


def job_manifest(template: dict[str, Any], *, name: str, namespace: str, image: str, command: list[str],
                 nodes: int, gpus_per_node: int, s3_secret: str = "toolorch-s3") -> dict[str, Any]:
    """The template (manifests/pytorchjob-grpo.yaml) with this run's name, image, command, size and S3 credentials."""
    if template.get("kind") != "PyTorchJob":
        raise ValueError(f"template kind is {template.get('kind')!r}, expected PyTorchJob")
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError(f"nodes ({nodes}) and gpus_per_node ({gpus_per_node}) must be >= 1")
    job = copy.deepcopy(template)
    job["metadata"] = {**job.get("metadata", {}), "name": name, "namespace": namespace}
    _size(job["spec"], nodes, gpus_per_node)
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        replica["template"] = copy.deepcopy(replica["template"])  # YAML anchors share one pod dict
        _fill_pod(replica["template"]["spec"], image, command, gpus_per_node, s3_secret)
    return job


def job_state(status: Mapping[str, Any] | None) -> str:
    """Succeeded | Failed | Running: the last true condition of a PyTorchJob status."""
    for cond in reversed((status or {}).get("conditions") or []):
        if cond.get("status") == "True" and cond.get("type") in ("Succeeded", "Failed"):
            return cond["type"]
    return "Running"


def wait_for_job(get_status: Callable[[], Mapping[str, Any] | None], timeout_s: float, poll_s: float = 15.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
    """Poll until the job succeeds; JobFailed or TimeoutError otherwise."""
    deadline = clock() + timeout_s
    while True:
        status = get_status()
        state = job_state(status)
        if state == "Succeeded":
            return
        if state == "Failed":
            last = (status or {}).get("conditions", [{}])[-1]
            raise JobFailed(f"PyTorchJob failed: {last.get('reason', '')} {last.get('message', '')}".strip())
        if clock() >= deadline:
            raise TimeoutError(f"PyTorchJob still running after {timeout_s:.0f}s")
        sleep(poll_s)


def launch_local(config_path: str | Path, inputs: Mapping[str, str], outputs: Mapping[str, str],
                 timeout_s: float, stage: str = "grpo") -> None:
    nproc = int(os.environ.get("TOOLORCH_LOCAL_NPROC", "1"))
    cmd = local_command(config_path, inputs, outputs, nproc, stage)
    done = subprocess.run(cmd, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"{stage} under torchrun exited with {done.returncode}: {' '.join(cmd)}")


def launch_cluster(config_path: str | Path, inputs: Mapping[str, str], outputs: Mapping[str, str], *,
                   template_path: str | Path, image: str, nodes: int, gpus_per_node: int,
                   timeout_s: float, namespace: str, bucket: str, stage: str = "grpo") -> None:
    from kubernetes import client
    from kubernetes import config as kube_config

    from toolorch.ops.storage import S3Store

    name = f"{stage}-{uuid.uuid4().hex[:10]}"
    prefix = f"s3://{bucket}/pytorchjobs/{name}"
    store = S3Store()
    store.ensure_bucket(bucket)
    store.push(config_path, f"{prefix}/config.yaml")
    remote_in = {k: f"{prefix}/in/{k}/{Path(v).name}" for k, v in inputs.items()}
    for k, v in inputs.items():
        store.push(v, remote_in[k])
    remote_out = {k: f"{prefix}/out/{k}/{Path(v).name}" for k, v in outputs.items()}
    template = yaml.safe_load(Path(template_path).read_text())
    body = job_manifest(template, name=name, namespace=namespace, image=image, nodes=nodes,
                        gpus_per_node=gpus_per_node, command=job_command(f"{prefix}/config.yaml", remote_in, remote_out, nodes, gpus_per_node, stage))
    kube_config.load_incluster_config()
    api = client.CustomObjectsApi()
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    try:
        wait_for_job(lambda: api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name).get("status"),
                     timeout_s)
    finally:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    for k, v in outputs.items():
        store.pull(remote_out[k], v)


def launch_stage(stage: str, config_path: str | Path, inputs: Mapping[str, str], outputs: Mapping[str, str], *,
                 template_path: str | Path | None = None, image: str = "", nodes: int = 2, gpus_per_node: int = 8,
                 timeout_s: float = 24 * 3600, namespace: str | None = None, bucket: str | None = None) -> str:
    """Run `stage` where it can run; returns the mode used. The job template is grpo's: only its
    pod (image, command, GPUs, S3 secret) and size are filled in, whichever stage it runs."""
    decl = declaration(stage)
    unknown = (set(inputs) - set(decl.inputs)) | (set(outputs) - (set(default_paths(decl)) - set(decl.inputs)))
    if unknown:
        raise ValueError(f"unknown {stage} paths {sorted(unknown)}")
    mode = launch_mode()
    if mode == "local":
        launch_local(config_path, inputs, outputs, timeout_s, stage)
        return mode
    manifests = Path(os.environ.get("TOOLORCH_MANIFEST_DIR", "manifests"))
    launch_cluster(config_path, inputs, outputs, template_path=template_path or manifests / "pytorchjob-grpo.yaml",
                   image=image, nodes=nodes, gpus_per_node=gpus_per_node, timeout_s=timeout_s,
                   namespace=namespace or os.environ.get("TOOLORCH_NAMESPACE", "toolorch"),
                   bucket=bucket or os.environ.get("TOOLORCH_S3_BUCKET", "toolorch-artifacts"), stage=stage)
    return mode


def launch_grpo(config_path: str | Path, inputs: Mapping[str, str], outputs: Mapping[str, str], **job: Any) -> str:
    """Run grpo where it can run (launch_stage's keywords); returns the mode used."""
    return launch_stage("grpo", config_path, inputs, outputs, **job)


def run_launched(stage: str, config_path: str | Path, metrics: Any, upstream: Mapping[str, str], output: str,
                 **job: Any) -> str:
    """What a launcher component does: the stage's paths from the artifacts (kfp_io.stage_paths),
    the launch, then the stage's metrics logged to the KFP Metrics artifact."""
    import json
    import tempfile

    from toolorch.ops.kfp_io import flat_numbers, stage_paths

    paths = {k: str(v) for k, v in stage_paths(stage, upstream, output, metrics.path, tempfile.mkdtemp()).items()}
    outputs = {k: paths.pop(k) for k in (declaration(stage).output, "metrics_path")}
    mode = launch_stage(stage, config_path, paths, outputs, **job)
    for key, value in flat_numbers(json.loads(Path(metrics.path).read_text())).items():
        metrics.log_metric(key, value)
    return mode
