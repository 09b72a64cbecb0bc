"""The grpo launcher: where it runs, the job it renders, and how it runs it: through the Kubeflow
training SDK against a fake Kubernetes API on 127.0.0.1 (fake_k8s.py; no real API server can run
here): created with the owner reference and Kueue queue, the log streamed, deleted on success,
failure, timeout and cancel."""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import yaml
from fake_k8s import JobScript, fake_k8s

from toolorch.ops.preflight import EXPERT_KEYS
from toolorch.ops.pytorchjob import (
    JobCancelled,
    JobFailed,
    job_command,
    job_manifest,
    launch_grpo,
    launch_stage,
    launch_mode,
    launcher_pod,
    local_command,
    run_job,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "manifests" / "pytorchjob-grpo.yaml"


def _template() -> dict:
    if TEMPLATE.exists():
        return yaml.safe_load(TEMPLATE.read_text())
    pod = {"spec": {"containers": [{"name": "pytorch", "image": "x", "command": ["torchrun"], "args": ["a"]}]}}
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "t"},
            "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": pod}}}}


def test_launch_mode_detects_the_cluster(tmp_path, monkeypatch):
    assert launch_mode({}) == "local"
    assert launch_mode({"TOOLORCH_GRPO_LAUNCH": "cluster"}) == "cluster"
    assert launch_mode({"TOOLORCH_GRPO_LAUNCH": "local", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == "local"
    token = tmp_path / "token"
    token.write_text("t")
    monkeypatch.setattr("toolorch.ops.pytorchjob.SA_TOKEN", token)
    assert launch_mode({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == "cluster"
    with pytest.raises(ValueError, match="TOOLORCH_GRPO_LAUNCH='gpu'"):
        launch_mode({"TOOLORCH_GRPO_LAUNCH": "gpu"})


@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_job_manifest_sizes_and_wires_the_job(nodes):
    cmd = job_command("s3://b/c.yaml", {"sft_dir": "s3://b/in/sft"}, {"out_dir": "s3://b/out/grpo"}, nodes, 8,
                      "s3://b/state")
    job = job_manifest(_template(), name="grpo-1", namespace="ns", image="img:1", command=cmd, nodes=nodes,
                       gpus_per_node=8)
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1
    assert replicas.get("Worker", {}).get("replicas", 0) == nodes - 1
    assert job["metadata"]["name"] == "grpo-1" and job["metadata"]["namespace"] == "ns"
    for replica in replicas.values():
        pod = replica["template"]["spec"]
        container = pod["containers"][0]
        assert container["image"] == "img:1" and container["command"] == cmd and "args" not in container
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
        secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
        assert secrets == {"TOOLORCH_S3_ENDPOINT": "toolorch-s3", "AWS_ACCESS_KEY_ID": "toolorch-s3",
                           "AWS_SECRET_ACCESS_KEY": "toolorch-s3", "OPENAI_API_KEY": "toolorch-expert-keys",
                           "TOOLORCH_EXPERTS_API_KEY": "toolorch-expert-keys"}  # keys from Secrets only
        assert not [e for e in container["env"] if "KEY" in e["name"] and "value" in e]
        assert not [v for v in pod.get("volumes", []) if "persistentVolumeClaim" in v]
        mounted = {m["name"] for m in container.get("volumeMounts", [])}
        assert mounted <= {v["name"] for v in pod.get("volumes", [])}
    assert cmd[:5] == ["torchrun", "--nnodes", str(nodes), "--nproc-per-node", "8"]
    assert "--in" in cmd and "sft_dir=s3://b/in/sft" in cmd
    assert cmd[cmd.index("--set") + 1] == "stages.grpo.state_url=s3://b/state"  # every rank checkpoints there


def test_job_manifest_rejects_other_kinds_and_sizes():
    with pytest.raises(ValueError, match="expected PyTorchJob"):
        job_manifest({"kind": "Job"}, name="x", namespace="n", image="i", command=[], nodes=1, gpus_per_node=1)
    with pytest.raises(ValueError, match="must be >= 1"):
        job_manifest(_template(), name="x", namespace="n", image="i", command=[], nodes=0, gpus_per_node=8)


def _client(api):
    from kubeflow.training import TrainingClient

    return TrainingClient(client_configuration=api.configuration(), namespace=api.namespace)


def _job(api, training, name="grpo-abc") -> dict:
    owner = launcher_pod(training.core_api, api.namespace, {"HOSTNAME": api.launcher_pod["name"]})
    cmd = job_command("s3://b/c.yaml", {}, {"out_dir": "s3://b/out/grpo"}, 2, 8, "s3://b/state")
    return job_manifest(_template(), name=name, namespace=api.namespace, image="img:1", command=cmd, nodes=2,
                        gpus_per_node=8, owner=owner)


def test_the_job_is_created_owned_and_queued_its_log_streamed_then_deleted(capfd):
    with fake_k8s(JobScript(running_after_s=0.2, done_after_s=1.0)) as api:
        training = _client(api)
        run_job(training, _job(api, training), queue="toolorch-h100", timeout_s=30, poll_s=0.1)
    created = api.requests.index(("POST", "/apis/kubeflow.org/v1/namespaces/toolorch/pytorchjobs"))
    assert ("GET", "/apis/kueue.x-k8s.io/v1beta1/namespaces/toolorch/localqueues/toolorch-h100") in \
        api.requests[:created]  # the SDK checks the queue exists before it submits
    assert api.deleted == ["grpo-abc"]
    out = capfd.readouterr().out
    assert "[Pod grpo-abc-master-0]: step 1 loss 0.50" in out and "step 2 loss 0.25" in out


def test_the_created_job_carries_the_owner_reference_and_queue_label():
    with fake_k8s(JobScript(done_after_s=0.3)) as api:
        training = _client(api)
        run_job(training, _job(api, training), queue="toolorch-h100", timeout_s=30, poll_s=0.1)
    [job] = api.created
    assert job["kind"] == "PyTorchJob" and job["metadata"]["name"] == "grpo-abc"
    assert job["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "controller": False,
                                                   "blockOwnerDeletion": False, **api.launcher_pod}]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "toolorch-h100"
    master = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    # the SDK's models carry every field of the rendered manifest through (quantities as strings)
    assert master["image"] == "img:1" and master["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert {e["name"] for e in master["env"] if "valueFrom" in e} == {"TOOLORCH_S3_ENDPOINT", "AWS_ACCESS_KEY_ID",
                                                                      "AWS_SECRET_ACCESS_KEY", *EXPERT_KEYS}
    assert job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 1
    assert job["spec"]["elasticPolicy"]["nProcPerNode"] == 8 and job["spec"]["runPolicy"]["backoffLimit"] == 2


def test_a_failed_job_is_deleted_and_reported_with_its_reason():
    with fake_k8s(JobScript(running_after_s=0.1, done_after_s=0.4, outcome="Failed")) as api:
        training = _client(api)
        with pytest.raises(JobFailed, match="grpo-abc failed.*CUDA out of memory"):
            run_job(training, _job(api, training), queue="toolorch-h100", timeout_s=30, poll_s=0.1)
    assert api.deleted == ["grpo-abc"]


def test_a_job_past_its_timeout_is_deleted():
    with fake_k8s(JobScript(running_after_s=0.1, done_after_s=None)) as api:
        training = _client(api)
        with pytest.raises(TimeoutError):
            run_job(training, _job(api, training), queue="toolorch-h100", timeout_s=1, poll_s=0.1)
    assert api.deleted == ["grpo-abc"]


def test_a_cancelled_run_deletes_the_job():
    """KFP cancels a run by deleting its pods: the step gets SIGTERM and deletes the job itself (the
    owner reference is the net for a SIGKILL)."""
    with fake_k8s(JobScript(running_after_s=0.1, done_after_s=None)) as api:
        training = _client(api)
        timer = threading.Timer(0.8, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        with pytest.raises(JobCancelled, match="SIGTERM"):
            run_job(training, _job(api, training), queue="toolorch-h100", timeout_s=60, poll_s=0.1)
        timer.join()
    assert api.deleted == ["grpo-abc"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back


def test_local_command_runs_the_stage_under_torchrun():
    cmd = local_command("cfg.yaml", {"sft_dir": "m/sft", "tasks_path": "t.jsonl"}, {"out_dir": "m/grpo"}, nproc=2)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert cmd[5:] == ["-m", "toolorch.stages.grpo", "--config", "cfg.yaml", "--sft-dir", "m/sft",
                       "--tasks-path", "t.jsonl", "--out-dir", "m/grpo"]


def test_the_grpo_command_accepts_every_path_the_launcher_passes():
    import typer
    import typer.main

    from toolorch.stages import declaration, default_paths
    from toolorch.stages.command import stage_command

    grpo = declaration("grpo")
    paths = {k: str(v) for k, v in default_paths(grpo).items()}
    inputs = {k: v for k, v in paths.items() if k in grpo.inputs}
    outputs = {k: v for k, v in paths.items() if k not in grpo.inputs}
    argv = local_command("cfg.yaml", inputs, outputs, nproc=1)[7:]
    app = typer.Typer()
    app.command()(stage_command(grpo))
    ctx = typer.main.get_command(app).make_context("grpo", argv)
    assert {k: str(ctx.params[k]) for k in paths} == paths
    with pytest.raises(ValueError, match="unknown grpo paths"):
        launch_grpo("cfg.yaml", {"tasks": "t.jsonl"}, outputs)


def test_sft_launches_the_sft_stage_and_checks_its_paths():
    local = local_command("cfg.yaml", {"trajectories_path": "t.jsonl"}, {"out_dir": "m/sft"}, nproc=8, stage="sft")
    assert local[local.index("-m", 3) + 1] == "toolorch.stages.sft" and "--trajectories-path" in local
    job = job_command("s3://b/c.yaml", {"trajectories_path": "s3://b/t.jsonl"}, {"out_dir": "s3://b/sft"}, 1, 8,
                      "s3://b/state", "sft")
    assert job[job.index("run-stage") + 1] == "sft" and "trajectories_path=s3://b/t.jsonl" in job
    with pytest.raises(ValueError, match=r"unknown sft paths \['sft_dir'\]"):
        launch_stage("sft", "cfg.yaml", {"sft_dir": "m"}, {"out_dir": "o"})
