"""The cluster pipeline: every stage of toolorch.stages.STAGES as a KFP v2 DAG.

    python pipelines/full.py                      # compile -> pipelines/full.yaml (committed)
    kfp --endpoint URL run create -e toolorch -f pipelines/full.yaml profile=tiny k=8 group_size=8

`profile` names a profile such as configs/tiny.yaml (`tiny`). Data stages run on the CPU
image; sft and eval on the H100 nodepool; grpo's component is a launcher that starts a
2 x 8 GPU PyTorchJob and waits for it (the GPUs are on the job). Artifacts travel through
KFP's object store (MinIO); the S3 secret is mounted where a stage reads or writes s3:// itself.
"""

import sys
from pathlib import Path

from kfp import compiler, dsl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `components` lives beside this folder, not in the package

from components import COMPONENTS, resolve_config  # noqa: E402
from components.images import IMAGES  # noqa: E402
from components.resources import on_cpu, on_h100  # noqa: E402

PIPELINE_YAML = ROOT / "pipelines" / "full.yaml"


@dsl.pipeline(name="toolorch-full", description="Synthesize data, train and evaluate a ToolOrchestra orchestrator.")
def full(profile: str = "tiny", model: str = "", k: int = 0, group_size: int = 0, preference_mix: str = "",
         seed: int = 0, overrides: list = [], grpo_nodes: int = 2, grpo_gpus_per_node: int = 8,
         grpo_timeout_s: int = 86400, force_deploy: bool = False):
    """Args mirror the config: 0 or '' keeps the profile's value (see toolorch.ops.kfp_io.PARAMETER_KEYS)."""
    config = on_cpu(resolve_config(profile=profile, seed=seed, model=model, k=k, group_size=group_size,
                                   preference_mix=preference_mix, overrides=overrides)).outputs["config"]
    c = COMPONENTS
    envs = on_cpu(c["synth_envs"](config=config)).outputs["envs"]
    tasks = on_cpu(c["synth_tasks"](config=config, envs=envs)).outputs["tasks"]
    passk = on_cpu(c["passk"](config=config, envs=envs, tasks=tasks), cpu="8", memory="16Gi").outputs["passk"]
    validate = on_cpu(c["validate"](config=config, envs=envs, tasks=tasks, passk=passk))
    sft = on_h100(c["sft"](config=config, passk=passk).after(validate), gpus=1).outputs["model"]
    grpo = on_cpu(c["grpo"](config=config, sft=sft, passk=passk, envs=envs, tasks=tasks, image=IMAGES["train"],
                            nodes=grpo_nodes, gpus_per_node=grpo_gpus_per_node, timeout_s=grpo_timeout_s),
                  cpu="1", memory="2Gi").outputs["model"]
    results = on_h100(c["eval"](config=config, envs=envs, tasks=tasks, sft=sft, grpo=grpo), gpus=1).outputs["results"]
    on_cpu(c["deploy"](config=config, grpo=grpo, results=results, tasks=tasks, envs=envs, force_deploy=force_deploy),
           cpu="4", memory="16Gi")


def compile_pipeline(path: Path = PIPELINE_YAML) -> Path:
    compiler.Compiler().compile(full, str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
