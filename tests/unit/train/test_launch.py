"""The cluster launch files agree with the stage: 2 nodes x 8 GPUs running toolorch.stages.grpo."""
from pathlib import Path

import yaml

from toolorch.stages.grpo import cli

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


def test_manifest_flags_exist_on_the_stage_cli():
    import inspect

    job = yaml.safe_load(MANIFEST.read_text())
    args = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["args"]
    stage_args = args[args.index("toolorch.stages.grpo") + 1:]
    flags = {a for a in stage_args if a.startswith("--")}
    known = {"--" + p.rstrip("_").replace("_", "-") for p in inspect.signature(cli).parameters}
    assert flags <= known
