"""pipelines/full.yaml: compiled from pipelines/full.py, one task per stage (for a sharded stage: a
loop of shard tasks, each retried alone, and the merge), on the right image, with the right resources
and the stage DAG's edges."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components import COMPONENTS, SHARDS
from components.images import IMAGES
from toolorch.stages import STAGES, declaration

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "pipelines" / "full.yaml"
SPEC = yaml.safe_load_all(COMMITTED.read_text())
PIPELINE, PLATFORM = list(SPEC)  # the pipeline spec, then the kfp-kubernetes platform spec
ROOT_TASKS = PIPELINE["root"]["dag"]["tasks"]


def _nested(tasks: dict) -> dict:
    """Every task, those inside dsl.If/Else groups (`condition-*`) included."""
    out = dict(tasks)
    for task in tasks.values():
        inner = PIPELINE["components"][task["componentRef"]["name"]].get("dag")
        if inner:
            out.update(_nested(inner["tasks"]))
    return out


TASKS = _nested(ROOT_TASKS)
EXECUTORS = PIPELINE["deploymentSpec"]["executors"]
K8S = PLATFORM["platforms"]["kubernetes"]["deploymentSpec"]["executors"]

TASK_OF = {"synth_envs": "synth-envs", "synth_tasks": "synth-tasks", "passk": "passk", "validate": "validate",
           "sft": "sft", "grpo": "grpo", "eval": "eval-policies", "deploy": "deploy"}
IMAGE_OF = {"synth_envs": "cpu", "synth_tasks": "cpu", "passk": "cpu", "validate": "cpu", "sft": "train",
            "grpo": "cpu", "eval": "train", "deploy": "cpu"}
# stage -> stages whose outputs it reads, or whose success it waits for (sft waits for validate)
UPSTREAM = {s: {u for i in declaration(s).inputs.values() for u in i.stages} | set(declaration(s).after)
            for s in STAGES}
GPU_STAGES = ["sft", "eval"]  # eval: its shards (the merge only reads their rows)
SHARDED = list(SHARDS)
LOOP_OF = {s: next(name for name, t in TASKS.items() if name.startswith("for-loop")
                   and f"{TASK_OF[s].replace('-policies', '')}-shard" in PIPELINE["components"][t["componentRef"]["name"]]["dag"]["tasks"])
           for s in SHARDED}


def _shard_task(stage: str) -> dict:
    loop = PIPELINE["components"][TASKS[LOOP_OF[stage]]["componentRef"]["name"]]
    [task] = loop["dag"]["tasks"].values()
    return task


def _executor(task: str) -> str:
    return TASKS[task]["componentRef"]["name"].replace("comp-", "exec-")


def _running_executor(stage: str) -> str:
    """The executor that runs the stage's work: its shard task's, or its own task's."""
    task = _shard_task(stage) if stage in SHARDED else TASKS[TASK_OF[stage]]
    return task["componentRef"]["name"].replace("comp-", "exec-")


def test_committed_yaml_is_fresh(tmp_path):
    from pipelines.full import compile_pipeline

    fresh = compile_pipeline(tmp_path / "full.yaml").read_text()
    assert fresh == COMMITTED.read_text(), "pipelines/full.yaml is stale: run `python pipelines/full.py`"


def test_components_match_the_stage_list():
    assert list(COMPONENTS) == STAGES
    assert SHARDED == ["synth_tasks", "passk", "eval"] and all(declaration(s).merge for s in SHARDED)
    leaves = {n for n, t in TASKS.items() if "dag" not in PIPELINE["components"][t["componentRef"]["name"]]}
    assert leaves == {TASK_OF[s] for s in STAGES} | {"resolve-config", "preflight", "base-weights", "dvc-publish",
                                                     "shard-indices"} | {"synth-tasks-shard", "passk-shard", "eval-shard"}


@pytest.mark.parametrize("stage", STAGES)
def test_task_image_and_command(stage):
    container = EXECUTORS[_running_executor(stage)]["container"]
    assert container["image"] == IMAGES[IMAGE_OF[stage]]
    source = container["command"][-1]
    called = {"grpo": 'run_launched("grpo"'}.get(stage, f'run_shard("{stage}"' if stage in SHARDED else
                                                   f'run_stage("{stage}"')
    assert called in source, f"{stage}: the component must call the stage, found:\n{source}"
    for upstream in {u for i in declaration(stage).inputs.values() for u in i.stages}:
        assert f'"{upstream}":' in source, f"{stage}: the component does not hand over {upstream}'s artifact"
    assert "pip install" not in " ".join(container["command"]), "images already hold kfp and toolorch"


@pytest.mark.parametrize("stage", SHARDED)
def test_a_sharded_stage_loops_over_the_shards_and_merges(stage):
    loop = TASKS[LOOP_OF[stage]]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--shard-indices-Output"
    shard = _shard_task(stage)
    assert shard["inputs"]["parameters"]["shards"]["componentInputParameter"] == "pipelinechannel--shards"
    assert shard["inputs"]["parameters"]["shard"]["componentInputParameter"].endswith("-loop-item")
    assert shard["retryPolicy"] == {"maxRetryCount": 3, "backoffDuration": "15s", "backoffFactor": 2.0,
                                    "backoffMaxDuration": "300s"}
    merge = TASKS[TASK_OF[stage]]
    parts = merge["inputs"]["artifacts"]["parts"]["taskOutputArtifact"]
    assert parts == {"outputArtifactKey": "pipelinechannel--" + shard["taskInfo"]["name"] + "-part",
                     "producerTask": LOOP_OF[stage]}
    container = EXECUTORS[_executor(TASK_OF[stage])]["container"]
    assert f'merge_shards("{stage}"' in container["command"][-1]
    assert container["image"] == IMAGES[IMAGE_OF[stage]]
    assert PIPELINE["root"]["inputDefinitions"]["parameters"]["shards"]["defaultValue"] == 1


@pytest.mark.parametrize("stage", STAGES)
def test_edges(stage):
    gate = {"preflight"} if stage == STAGES[0] else set()  # the experts answer before the first stage starts
    weights = {"base-weights"} if stage == "sft" else set()  # sft trains from the base-weights artifact
    expected = {TASK_OF[s] for s in UPSTREAM[stage]} | {"resolve-config"} | gate | weights
    if stage in SHARDED:
        loop = TASKS[LOOP_OF[stage]]
        assert set(loop["dependentTasks"]) == expected | {"shard-indices"}
        expected = {LOOP_OF[stage], "resolve-config"}
    assert set(TASKS[TASK_OF[stage]].get("dependentTasks", [])) == expected


@pytest.mark.parametrize("stage", GPU_STAGES)
def test_gpu_stages_on_the_h100_pool(stage):
    executor = _running_executor(stage)
    resources = EXECUTORS[executor]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "1"
    k8s = K8S[executor]
    assert k8s["nodeSelector"]["labels"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in k8s["tolerations"]
    assert {"mountPath": "/dev/shm", "volumeName": "dshm", "medium": "Memory", "sizeLimit": "16Gi"} in k8s["emptyDirMounts"]


@pytest.mark.parametrize("stage", STAGES + [f"{s} shard" for s in SHARDED])
def test_every_task_gets_the_s3_secret_and_limits(stage):
    executor = _running_executor(stage.split()[0]) if stage.endswith(" shard") else _executor(TASK_OF[stage])
    envs = {e["envVar"] for s in K8S[executor]["secretAsEnv"] for e in s["keyToEnv"]}
    assert envs == {"TOOLORCH_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY",
                    "TOOLORCH_EXPERTS_API_KEY"}
    experts = next(s for s in K8S[executor]["secretAsEnv"] if s["secretName"] == "toolorch-expert-keys")
    assert experts["optional"] is True  # a profile of simulated experts runs without the Secret
    resources = EXECUTORS[executor]["container"]["resources"]
    assert resources.get("cpuLimit") and resources.get("memoryLimit")
    if stage != "eval shard" and (stage not in GPU_STAGES or stage in SHARDED):  # a merge needs no GPU
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
