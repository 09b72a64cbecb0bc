"""KFP components: one thin adapter per stage in toolorch.stages.STAGES, each calling that stage's run.

A component's typed signature is its interface in the KFP UI: the artifacts of the stages
it reads, its output artifact, its Metrics. Which file of an artifact becomes which run()
keyword comes from the stage's declaration (toolorch.ops.kfp_io.stage_paths), and
tests/pipelines checks every signature against the declarations. COMPONENTS maps a stage
name to the component that writes its output; SHARDS maps a sharded stage to the component
that runs one shard of it (COMPONENTS' entry then merges the shards' parts); pipelines/full.py
wires the DAG.
"""

from components.config import resolve_config
from components.deploy import deploy
from components.eval import eval_policies, eval_shard
from components.grpo import grpo
from components.passk import passk, passk_shard
from components.preflight import preflight
from components.sft import sft
from components.shards import shard_indices
from components.synth_envs import synth_envs
from components.synth_tasks import synth_tasks, synth_tasks_shard
from components.validate import validate

COMPONENTS = {
    "synth_envs": synth_envs,
    "synth_tasks": synth_tasks,
    "passk": passk,
    "validate": validate,
    "sft": sft,
    "grpo": grpo,
    "eval": eval_policies,
    "deploy": deploy,
}
SHARDS = {"synth_tasks": synth_tasks_shard, "passk": passk_shard, "eval": eval_shard}

__all__ = ["COMPONENTS", "SHARDS", "preflight", "resolve_config", "shard_indices"]
