"""The cluster pipeline: every stage of toolorch.stages.STAGES as a KFP v2 DAG.

    python pipelines/full.py                      # compile -> pipelines/full.yaml (committed)
    kfp --endpoint URL run create -e toolorch -f pipelines/full.yaml profile=tiny k=8 group_size=8

`profile` names a profile such as configs/tiny.yaml (`tiny`). Data stages run on the CPU
image; sft and eval on the H100 nodepool; grpo's component is a launcher that starts a
2 x 8 GPU PyTorchJob in the Kueue queue `grpo_queue` (all 16 GPUs admitted at once), streams its
log and waits for it (the GPUs are on the job, which the step's pod owns). Artifacts travel through
KFP's object store (MinIO); the S3 secret is mounted where a stage reads or writes s3:// itself.
`base_model_uri` (an HF folder in S3/MinIO, e.g. s3://toolorch-models/Qwen3-8B) makes the base
weights an artifact that sft trains from (fetched once; KFP's cache serves later runs); beyond one GPU
(`sft_nodes` x `sft_gpus_per_node`) sft runs FSDP2 in a PyTorchJob. With `dvc_remote` set, the
data stages' outputs go into that DVC remote and the `dvc-publish` artifact holds their pointers;
`data_from_dvc` (`python -m toolorch.ops.dvc_publish versions dvc.lock`) starts a run from dataset
versions a workstation pushed there instead of synthesizing them.
synth-tasks, passk and eval run as `shards` tasks side by side (`dsl.ParallelFor`), a failed shard
retried alone, and a merge step whose output equals one process's (toolorch.stages.shards).
"""

import sys
from pathlib import Path

from kfp import compiler, dsl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `components` lives beside this folder, not in the package

from components import COMPONENTS, SHARDS, preflight, resolve_config, shard_indices  # noqa: E402
from components.base_weights import base_weights  # noqa: E402
from components.dvc_publish import dvc_publish  # noqa: E402
from components.images import IMAGES  # noqa: E402
from components.resources import on_cpu, on_h100  # noqa: E402

PIPELINE_YAML = ROOT / "pipelines" / "full.yaml"
# A shard lost to a preempted node or a flaky endpoint is run again alone, the others kept.
SHARD_RETRY = {"num_retries": 3, "backoff_duration": "15s", "backoff_factor": 2.0, "backoff_max_duration": "300s"}


def sharded(stage: str, indices, shards, place, config, merge_args: dict | None = None,
            **inputs) -> dsl.PipelineTask:
    """`stage` as one task per shard (`place` sets each one's resources) and the merge of their parts
    (`merge_args`: the merge component's own parameters)."""
    with dsl.ParallelFor(indices) as shard:
        part = place(SHARDS[stage](config=config, shard=shard, shards=shards, **inputs)).set_retry(**SHARD_RETRY)
    return COMPONENTS[stage](config=config, parts=dsl.Collected(part.outputs["part"]), **(merge_args or {}))


@dsl.pipeline(name="toolorch-full", description="Synthesize data, train and evaluate a ToolOrchestra orchestrator.")
def full(profile: str = "tiny", model: str = "", k: int = 0, group_size: int = 0, preference_mix: str = "",
         seed: int = 0, overrides: list = [], grpo_nodes: int = 2, grpo_gpus_per_node: int = 8,
         grpo_timeout_s: int = 86400, namespace: str = "", preflight_timeout_s: float = 10.0,
         grpo_queue: str = "toolorch-h100", base_model_uri: str = "", sft_nodes: int = 1, sft_gpus_per_node: int = 1,
         sft_timeout_s: int = 86400, dvc_remote: str = "s3://toolorch-dvc", data_from_dvc: str = "", shards: int = 1,
         force_deploy: bool = False):
    """Args mirror the config: 0 or '' keeps the profile's value (see toolorch.ops.kfp_io.PARAMETER_KEYS).
    `namespace`: where the grpo PyTorchJob is created; '' is the namespace the pipeline's pods run in.
    `grpo_queue`: the Kueue LocalQueue that admits all the grpo job's GPUs at once ('' for none).
    `shards` splits synth-tasks, passk and eval (one pod, or one GPU for eval, per shard).
    `force_deploy`: deploy the GRPO checkpoint even when it loses to the best single expert on utility."""
    config = on_cpu(resolve_config(profile=profile, seed=seed, model=model, k=k, group_size=group_size,
                                   preference_mix=preference_mix, overrides=overrides)).outputs["config"]
    c = COMPONENTS
    checked = on_cpu(preflight(config=config, timeout_s=preflight_timeout_s), cpu="1", memory="1Gi")
    versions = dict(dvc_remote=dvc_remote, data_from_dvc=data_from_dvc)  # a dataset named there is fetched
    envs = on_cpu(c["synth_envs"](config=config, **versions).after(checked)).outputs["envs"]
    indices = on_cpu(shard_indices(shards=shards), cpu="1", memory="1Gi").output
    tasks = on_cpu(sharded("synth_tasks", indices, shards, on_cpu, config, versions, envs=envs)).outputs["tasks"]
    passk = on_cpu(sharded("passk", indices, shards, lambda t: on_cpu(t, cpu="8", memory="16Gi"), config, versions,
                           envs=envs, tasks=tasks)).outputs["passk"]
    validate = on_cpu(c["validate"](config=config, envs=envs, tasks=tasks, passk=passk))
    with dsl.If(dvc_remote != ""):
        on_cpu(dvc_publish(envs=envs, tasks=tasks, passk=passk, remote=dvc_remote).after(validate), cpu="1")
    base = on_cpu(base_weights(uri=base_model_uri), cpu="1").outputs["weights"]
    sft = on_h100(c["sft"](config=config, passk=passk, base=base, image=IMAGES["train"], nodes=sft_nodes,
                           gpus_per_node=sft_gpus_per_node, timeout_s=sft_timeout_s).after(validate), gpus=1).outputs["model"]
    grpo = on_cpu(c["grpo"](config=config, sft=sft, passk=passk, envs=envs, tasks=tasks, image=IMAGES["train"],
                            nodes=grpo_nodes, gpus_per_node=grpo_gpus_per_node, timeout_s=grpo_timeout_s,
                            namespace=namespace, queue=grpo_queue),
                  cpu="1", memory="2Gi").outputs["model"]
    results = on_cpu(sharded("eval", indices, shards, lambda t: on_h100(t, gpus=1), config, envs=envs, tasks=tasks,
                             sft=sft, grpo=grpo)).outputs["results"]
    on_cpu(c["deploy"](config=config, grpo=grpo, results=results, tasks=tasks, envs=envs, force_deploy=force_deploy),
           cpu="4", memory="16Gi")


def compile_pipeline(path: Path = PIPELINE_YAML) -> Path:
    compiler.Compiler().compile(full, str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
