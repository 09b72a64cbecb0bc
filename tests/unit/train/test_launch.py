"""The cluster launch files agree with the stage: 2 nodes x 8 GPUs running toolorch.stages.grpo."""
from pathlib import Path

import yaml

from toolorch.stages import declaration
from toolorch.stages.command import stage_command

MANIFEST = Path(__file__).parents[3] / "manifests" / "pytorchjob-grpo.yaml"


def test_pytorchjob_is_two_nodes_of_eight_gpus():
    job = yaml.safe_load(MANIFEST.read_text())
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "PyTorchJob"
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] + specs["Worker"]["replicas"] == 2
    container = specs["Worker"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    args = container["args"]
    assert args[args.index("--nproc-per-node") + 1] == "8" and "toolorch.stages.grpo" in args


def test_manifest_command_parses_as_the_stage_command_and_names_every_path():
    import typer
    import typer.main

    job = yaml.safe_load(MANIFEST.read_text())
    args = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["args"]
    stage_args = args[args.index("toolorch.stages.grpo") + 1:]
    app = typer.Typer()
    app.command()(stage_command(declaration("grpo")))
    given = {a for a in stage_args if a.startswith("--")}
    ctx = typer.main.get_command(app).make_context("grpo", list(stage_args))  # an unknown flag fails here
    assert {"--sft-dir", "--tasks-path", "--envs-dir", "--heldout-path", "--out-dir", "--metrics-path"} <= given
    assert str(ctx.params["config"]).startswith("/data/")
