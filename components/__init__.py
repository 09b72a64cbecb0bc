"""KFP components: one thin adapter per stage in toolorch.stages.STAGES, each calling that stage's run.

A component's typed signature is its interface in the KFP UI: the artifacts of the stages
it reads, its output artifact, its Metrics. Which file of an artifact becomes which run()
keyword comes from the stage's declaration (toolorch.ops.kfp_io.stage_paths), and
tests/pipelines checks every signature against the declarations. COMPONENTS maps a stage
name to its component; pipelines/full.py wires the DAG.
"""

from components.config import resolve_config
from components.deploy import deploy
from components.eval import eval_policies
from components.grpo import grpo
from components.passk import passk
from components.sft import sft
from components.synth_envs import synth_envs
from components.synth_tasks import synth_tasks
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

__all__ = ["COMPONENTS", "resolve_config"]
