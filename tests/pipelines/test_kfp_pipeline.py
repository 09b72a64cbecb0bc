"""pipelines/full.yaml: compiled from pipelines/full.py, one task per stage, on the right image,
with the right resources and the stage DAG's edges."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components import COMPONENTS
from components.images import IMAGES
from toolorch.stages import STAGES, declaration

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "pipelines" / "full.yaml"
SPEC = yaml.safe_load_all(COMMITTED.read_text())
PIPELINE, PLATFORM = list(SPEC)  # the pipeline spec, then the kfp-kubernetes platform spec
TASKS = PIPELINE["root"]["dag"]["tasks"]
EXECUTORS = PIPELINE["deploymentSpec"]["executors"]
K8S = PLATFORM["platforms"]["kubernetes"]["deploymentSpec"]["executors"]

TASK_OF = {"synth_envs": "synth-envs", "synth_tasks": "synth-tasks", "passk": "passk", "validate": "validate",
           "sft": "sft", "grpo": "grpo", "eval": "eval-policies", "deploy": "deploy"}
IMAGE_OF = {"synth_envs": "cpu", "synth_tasks": "cpu", "passk": "cpu", "validate": "cpu", "sft": "train",
            "grpo": "cpu", "eval": "train", "deploy": "cpu"}
# stage -> stages whose outputs it reads, or whose success it waits for (sft waits for validate)
UPSTREAM = {s: {u for i in declaration(s).inputs.values() for u in i.stages} | set(declaration(s).after)
            for s in STAGES}
GPU_STAGES = ["sft", "eval"]


def _executor(task: str) -> str:
    return TASKS[task]["componentRef"]["name"].replace("comp-", "exec-")


def test_committed_yaml_is_fresh(tmp_path):
    from pipelines.full import compile_pipeline

    fresh = compile_pipeline(tmp_path / "full.yaml").read_text()
    assert fresh == COMMITTED.read_text(), "pipelines/full.yaml is stale: run `python pipelines/full.py`"


def test_components_match_the_stage_list():
    assert list(COMPONENTS) == STAGES
    assert set(TASKS) == {TASK_OF[s] for s in STAGES} | {"resolve-config"}


@pytest.mark.parametrize("stage", STAGES)
def test_task_image_and_command(stage):
    container = EXECUTORS[_executor(TASK_OF[stage])]["container"]
    assert container["image"] == IMAGES[IMAGE_OF[stage]]
    source = container["command"][-1]
    called = f'stage_paths("{stage}"' if stage == "grpo" else f'run_stage("{stage}"'
    assert called in source, f"{stage}: the component must call the stage, found:\n{source}"
    for upstream in {u for i in declaration(stage).inputs.values() for u in i.stages}:
        assert f'"{upstream}":' in source, f"{stage}: the component does not hand over {upstream}'s artifact"
    assert "pip install" not in " ".join(container["command"]), "images already hold kfp and toolorch"


@pytest.mark.parametrize("stage", STAGES)
def test_edges(stage):
    task = TASKS[TASK_OF[stage]]
    assert set(task.get("dependentTasks", [])) == {TASK_OF[s] for s in UPSTREAM[stage]} | {"resolve-config"}


@pytest.mark.parametrize("stage", GPU_STAGES)
def test_gpu_stages_on_the_h100_pool(stage):
    executor = _executor(TASK_OF[stage])
    resources = EXECUTORS[executor]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "1"
    k8s = K8S[executor]
    assert k8s["nodeSelector"]["labels"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in k8s["tolerations"]
    assert {"mountPath": "/dev/shm", "volumeName": "dshm", "medium": "Memory", "sizeLimit": "16Gi"} in k8s["emptyDirMounts"]


@pytest.mark.parametrize("stage", STAGES)
def test_every_task_gets_the_s3_secret_and_limits(stage):
    executor = _executor(TASK_OF[stage])
    envs = {e["envVar"] for s in K8S[executor]["secretAsEnv"] for e in s["keyToEnv"]}
    assert envs == {"TOOLORCH_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    resources = EXECUTORS[executor]["container"]["resources"]
    assert resources.get("cpuLimit") and resources.get("memoryLimit")
    if stage not in GPU_STAGES:
        assert "accelerator" not in resources


def test_grpo_launches_a_2x8_job_on_the_train_image():
    inputs = TASKS["grpo"]["inputs"]["parameters"]
    assert inputs["image"]["runtimeValue"]["constant"] == IMAGES["train"]
    assert inputs["nodes"]["componentInputParameter"] == "grpo_nodes"
    defaults = PIPELINE["root"]["inputDefinitions"]["parameters"]
    assert defaults["grpo_nodes"]["defaultValue"] == 2 and defaults["grpo_gpus_per_node"]["defaultValue"] == 8


def test_pipeline_parameters_and_ui_outputs():
    params = PIPELINE["root"]["inputDefinitions"]["parameters"]
    assert {"profile", "model", "k", "group_size", "preference_mix", "seed", "overrides"} <= set(params)
    assert params["profile"]["defaultValue"] == "tiny"
    for stage in STAGES:
        comp = PIPELINE["components"][TASKS[TASK_OF[stage]]["componentRef"]["name"]]
        types = {o["artifactType"]["schemaTitle"] for o in comp["outputDefinitions"]["artifacts"].values()}
        assert "system.Metrics" in types, f"{stage} has no Metrics output"
    eval_outputs = PIPELINE["components"]["comp-eval-policies"]["outputDefinitions"]["artifacts"]
    assert eval_outputs["report"]["artifactType"]["schemaTitle"] == "system.Markdown"
