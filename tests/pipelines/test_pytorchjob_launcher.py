"""The grpo launcher: where it runs, the job it renders, and how it waits."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from toolorch.ops.pytorchjob import (
    JobFailed,
    job_command,
    job_manifest,
    job_state,
    launch_grpo,
    launch_stage,
    launch_mode,
    local_command,
    wait_for_job,
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
    cmd = job_command("s3://b/c.yaml", {"sft_dir": "s3://b/in/sft"}, {"out_dir": "s3://b/out/grpo"}, nodes, 8)
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
                           "AWS_SECRET_ACCESS_KEY": "toolorch-s3"}
        assert not [v for v in pod.get("volumes", []) if "persistentVolumeClaim" in v]
        mounted = {m["name"] for m in container.get("volumeMounts", [])}
        assert mounted <= {v["name"] for v in pod.get("volumes", [])}
    assert cmd[:5] == ["torchrun", "--nnodes", str(nodes), "--nproc-per-node", "8"]
    assert "--in" in cmd and "sft_dir=s3://b/in/sft" in cmd


def test_job_manifest_rejects_other_kinds_and_sizes():
    with pytest.raises(ValueError, match="expected PyTorchJob"):
        job_manifest({"kind": "Job"}, name="x", namespace="n", image="i", command=[], nodes=1, gpus_per_node=1)
    with pytest.raises(ValueError, match="must be >= 1"):
        job_manifest(_template(), name="x", namespace="n", image="i", command=[], nodes=0, gpus_per_node=8)


def _clock():
    now = [0.0]
    return now, (lambda: now[0]), (lambda s: now.__setitem__(0, now[0] + s))


def test_wait_returns_when_the_job_succeeds():
    statuses = iter([None, {"conditions": [{"type": "Created", "status": "True"}]},
                     {"conditions": [{"type": "Running", "status": "True"}]},
                     {"conditions": [{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}]}])
    now, clock, sleep = _clock()
    wait_for_job(lambda: next(statuses), timeout_s=600, poll_s=10, sleep=sleep, clock=clock)
    assert now[0] == 30


def test_wait_raises_on_failure_with_the_reason():
    status = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "rank 3 OOM"}]}
    with pytest.raises(JobFailed, match="BackoffLimitExceeded rank 3 OOM"):
        wait_for_job(lambda: status, timeout_s=600, sleep=lambda s: None)


def test_wait_gives_up_after_the_timeout():
    now, clock, sleep = _clock()
    with pytest.raises(TimeoutError, match="still running after 60s"):
        wait_for_job(lambda: {"conditions": [{"type": "Running", "status": "True"}]}, timeout_s=60, poll_s=15,
                     sleep=sleep, clock=clock)
    assert now[0] == 60
    assert job_state({"conditions": [{"type": "Succeeded", "status": "False"}]}) == "Running"


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
    job = job_command("s3://b/c.yaml", {"trajectories_path": "s3://b/t.jsonl"}, {"out_dir": "s3://b/sft"}, 1, 8, "sft")
    assert job[job.index("run-stage") + 1] == "sft" and "trajectories_path=s3://b/t.jsonl" in job
    with pytest.raises(ValueError, match=r"unknown sft paths \['sft_dir'\]"):
        launch_stage("sft", "cfg.yaml", {"sft_dir": "m"}, {"out_dir": "o"})
