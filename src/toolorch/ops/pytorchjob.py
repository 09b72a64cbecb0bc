"""Run a training stage (grpo; sft across GPUs) as a Kubeflow PyTorchJob on the cluster, or under
torchrun without one.

    launch_grpo(config_path, inputs, outputs, queue="toolorch-h100")   # what the grpo KFP component calls
    launch_stage("sft", config_path, inputs, outputs, nodes=1, gpus_per_node=8)   # sft's, beyond one GPU

`inputs` and `outputs` map the stage's run() keywords (its declaration) to paths; each
keyword is a flag of the stage's command (`sft_dir` is `--sft-dir`) and the name of a
`run-stage --in/--out` in cluster mode.

Cluster mode (inside a pod with a service account, or TOOLORCH_GRPO_LAUNCH=cluster): inputs
are uploaded to S3 and a kubeflow.org/v1 PyTorchJob is made from manifests/pytorchjob-grpo.yaml
(its replicas run `torchrun -m toolorch.ops.storage_cli run-stage grpo` over those s3:// paths,
every rank checkpointing to `<prefix>/state` on S3, so a restarted replica resumes). The Kubeflow
training SDK (`TrainingClient`) creates it, with the Kueue queue label (all replicas admitted
together, or none) and an owner reference to this launcher's pod (deleting the pod, as cancelling
or deleting the KFP run does, makes Kubernetes delete the job). The master's log is streamed
into this step's log; the wait is bounded by `timeout_s`; the job is deleted when it ends, fails,
times out or this process is told to stop (SIGTERM); then the outputs are downloaded.
Local mode (TOOLORCH_GRPO_LAUNCH=local, or no cluster found): the same stage under
`torch.distributed.run --standalone` with TOOLORCH_LOCAL_NPROC processes (default 1).
"""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import yaml

from toolorch.core.errors import RunFailed
from toolorch.ops.preflight import EXPERT_KEYS, EXPERTS_SECRET
from toolorch.stages import declaration, default_paths
from toolorch.stages.stage import flag

if TYPE_CHECKING:
    from kubeflow.training import TrainingClient

SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
SA_NAMESPACE = SA_TOKEN.with_name("namespace")  # the namespace the launcher's pod runs in
S3_ENV = {"TOOLORCH_S3_ENDPOINT": "endpoint", "AWS_ACCESS_KEY_ID": "access-key", "AWS_SECRET_ACCESS_KEY": "secret-key"}


class JobFailed(RunFailed):
    """The PyTorchJob ended in the Failed condition."""


class JobCancelled(RunFailed):
    """This launcher was told to stop (SIGTERM: the KFP run was cancelled) while the job ran."""


CANCELLED = "stopped by SIGTERM (the KFP run was cancelled): the PyTorchJob is deleted"


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
                gpus_per_node: int, state_url: str, stage: str = "grpo") -> list[str]:
    """What each replica runs: torchrun (rendezvous from the operator's PET_* variables) over s3:// paths;
    grpo's ranks checkpoint to `state_url`, which outlives the pods."""
    cmd = ["torchrun", "--nnodes", str(nodes), "--nproc-per-node", str(gpus_per_node),
           "-m", "toolorch.ops.storage_cli", "run-stage", stage, "--config", config_url]
    if stage == "grpo":
        cmd += ["--set", f"stages.grpo.state_url={state_url}"]
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
    # expert API keys from their Secret only, optional: a profile of simulated experts needs none
    secret_env += [{"name": var, "valueFrom": {"secretKeyRef": {"name": EXPERTS_SECRET, "key": key, "optional": True}}}
                   for var, key in EXPERT_KEYS.items()]
    mounted = set(S3_ENV) | set(EXPERT_KEYS)
    container["env"] = [e for e in container.get("env", []) if e["name"] not in mounted] + secret_env
    resources = container.setdefault("resources", {})
    for kind in ("limits", "requests"):
        resources.setdefault(kind, {})["nvidia.com/gpu"] = gpus_per_node


def job_manifest(template: dict[str, Any], *, name: str, namespace: str, image: str, command: list[str],
                 nodes: int, gpus_per_node: int, s3_secret: str = "toolorch-s3",
                 owner: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The template (manifests/pytorchjob-grpo.yaml) with this run's name, image, command, size and S3
    credentials; `owner` (a pod's name and uid) becomes its owner reference."""
    if template.get("kind") != "PyTorchJob":
        raise ValueError(f"template kind is {template.get('kind')!r}, expected PyTorchJob")
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError(f"nodes ({nodes}) and gpus_per_node ({gpus_per_node}) must be >= 1")
    job = copy.deepcopy(template)
    job["metadata"] = {**job.get("metadata", {}), "name": name, "namespace": namespace}
    if owner:  # the garbage collector deletes the job once the pod is gone (blockOwnerDeletion would
        # also need update on pods/finalizers, and only matters to a foreground delete of the pod)
        job["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": owner["name"],
                                               "uid": owner["uid"], "blockOwnerDeletion": False, "controller": False}]
    _size(job["spec"], nodes, gpus_per_node)
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        replica["template"] = copy.deepcopy(replica["template"])  # YAML anchors share one pod dict
        _fill_pod(replica["template"]["spec"], image, command, gpus_per_node, s3_secret)
    return job


@contextmanager
def _sigterm_cancels() -> Iterator[threading.Event]:
    """SIGTERM (what Kubernetes sends the step's pod when the KFP run is cancelled) raises JobCancelled,
    and sets the event it yields (the SDK turns any exception inside its calls into a RuntimeError)."""
    cancelled = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancelled
        return

    def cancel(signum: int, frame: Any) -> None:
        cancelled.set()
        raise JobCancelled(CANCELLED)

    previous = signal.signal(signal.SIGTERM, cancel)
    try:
        yield cancelled
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stream_logs(training: TrainingClient, name: str, namespace: str) -> None:
    """The master's log, line by line, into this process's stdout (the KFP step's log)."""
    try:
        training.get_job_logs(name, namespace, is_master=True, follow=True)
    except Exception as e:  # logs are a convenience: losing them must not fail the run
        print(f"[{name}] log stream ended: {e}", flush=True)


def _failure(training: TrainingClient, name: str, namespace: str) -> str:
    """The Failed condition's reason and message ('' when it cannot be read)."""
    try:
        conditions = training.get_job_conditions(name=name, namespace=namespace)
    except (RuntimeError, TimeoutError):
        return ""
    return "; ".join(f"{c.reason}: {c.message}" for c in conditions if c.type == "Failed" and c.status == "True")


def run_job(training: TrainingClient, body: dict[str, Any], *, queue: str, timeout_s: float,
            poll_s: float = 15.0) -> None:
    """Create the job (in Kueue `queue`), stream its master's log, wait until it succeeds; delete it
    however the wait ends. JobFailed, TimeoutError or JobCancelled when it does not succeed."""
    from kubeflow.training import models
    from kubeflow.training.utils.utils import FakeResponse

    job = training.api_client.deserialize(FakeResponse(body), models.KubeflowOrgV1PyTorchJob)
    name, namespace = job.metadata.name, job.metadata.namespace
    deadline = time.monotonic() + timeout_s

    def wait_for(conditions: set[str]) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"PyTorchJob {namespace}/{name} not done after {timeout_s:.0f}s")
        training.wait_for_job_conditions(name, namespace, expected_conditions=conditions,
                                         wait_timeout=max(1, round(left)), polling_interval=poll_s)

    with _sigterm_cancels() as cancelled:
        training.create_job(job=job, namespace=namespace, queue_name=queue or None)
        try:
            wait_for({"Running", "Succeeded", "Failed"})  # admitted by Kueue, pods up
            logs = threading.Thread(target=_stream_logs, args=(training, name, namespace), daemon=True)
            logs.start()
            wait_for({"Succeeded"})
            logs.join(timeout=30)  # the rest of the log, once the master has exited
        except RuntimeError as e:  # the SDK's "is Failed" (TimeoutError is not a RuntimeError)
            if cancelled.is_set():
                raise JobCancelled(CANCELLED) from None
            raise JobFailed(f"PyTorchJob {namespace}/{name} failed: {_failure(training, name, namespace) or e}") \
                from None
        finally:
            training.delete_job(name, namespace)


def launcher_pod(core_api: Any, namespace: str, env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """This pod's name and uid (a pod's hostname is its name), to own the job; None outside a pod."""
    env = os.environ if env is None else env
    name = env.get("HOSTNAME", "")
    if not name:
        return None
    pod = core_api.read_namespaced_pod(name, namespace)
    return {"name": pod.metadata.name, "uid": pod.metadata.uid}


def launch_local(config_path: str | Path, inputs: Mapping[str, str], outputs: Mapping[str, str],
                 timeout_s: float, stage: str = "grpo") -> None:
    nproc = int(os.environ.get("TOOLORCH_LOCAL_NPROC", "1"))
    cmd = local_command(config_path, inputs, outputs, nproc, stage)
    done = subprocess.run(cmd, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"{stage} under torchrun exited with {done.returncode}: {' '.join(cmd)}")


def launch_cluster(config_path: str | Path, inputs: Mapping[str, str], outputs: Mapping[str, str], *,
                   template_path: str | Path, image: str, nodes: int, gpus_per_node: int,
                   timeout_s: float, namespace: str, bucket: str, queue: str, stage: str = "grpo",
                   training: TrainingClient | None = None) -> None:
    from kubeflow.training import TrainingClient

    from toolorch.ops.storage import S3Store

    training = training or TrainingClient(namespace=namespace)
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
    command = job_command(f"{prefix}/config.yaml", remote_in, remote_out, nodes, gpus_per_node, f"{prefix}/state", stage)
    same_namespace = namespace == pod_namespace(namespace)  # else an owner reference would not hold
    body = job_manifest(template, name=name, namespace=namespace, image=image, nodes=nodes,
                        gpus_per_node=gpus_per_node, command=command,
                        owner=launcher_pod(training.core_api, namespace) if same_namespace else None)
    run_job(training, body, queue=queue, timeout_s=timeout_s)
    for k, v in outputs.items():
        store.pull(remote_out[k], v)


def pod_namespace(default: str) -> str:
    """The launcher pod's own namespace: an owner reference only holds within one namespace."""
    return SA_NAMESPACE.read_text().strip() if SA_NAMESPACE.is_file() else default


def own_namespace() -> str:
    """$TOOLORCH_NAMESPACE, else the namespace this pod runs in (KFP's or a profile's), else toolorch."""
    if os.environ.get("TOOLORCH_NAMESPACE"):
        return os.environ["TOOLORCH_NAMESPACE"]
    return SA_NAMESPACE.read_text().strip() if SA_NAMESPACE.is_file() else "toolorch"


def launch_stage(stage: str, config_path: str | Path, inputs: Mapping[str, str], outputs: Mapping[str, str], *,
                 template_path: str | Path | None = None, image: str = "", nodes: int = 2, gpus_per_node: int = 8,
                 timeout_s: float = 24 * 3600, namespace: str | None = None, bucket: str | None = None,
                 queue: str = "") -> str:
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
                   namespace=namespace or own_namespace(),
                   bucket=bucket or os.environ.get("TOOLORCH_S3_BUCKET", "toolorch-artifacts"), queue=queue,
                   stage=stage)
    return mode


def launch_grpo(config_path: str | Path, inputs: Mapping[str, str], outputs: Mapping[str, str], **job: Any) -> str:
    """Run grpo where it can run (launch_stage's keywords); returns the mode used."""
    return launch_stage("grpo", config_path, inputs, outputs, **job)


def run_launched(stage: str, config_path: str | Path, metrics: Any, upstream: Mapping[str, str], output: str,
                 **job: Any) -> str:
    """What a launcher component does: the stage's paths from the artifacts (kfp_io.stage_paths),
    the launch, then the stage's headline logged to the KFP Metrics artifact."""
    import tempfile

    from toolorch.ops.kfp_io import log_headline, stage_paths

    paths = {k: str(v) for k, v in stage_paths(stage, upstream, output, metrics.path, tempfile.mkdtemp()).items()}
    outputs = {k: paths.pop(k) for k in (declaration(stage).output, "metrics_path")}
    mode = launch_stage(stage, config_path, paths, outputs, **job)
    log_headline(stage, metrics)
    return mode
