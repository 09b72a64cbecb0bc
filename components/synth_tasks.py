"""synth-tasks component: toolorch.stages.synth_tasks.run."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def synth_tasks(config: Input[Artifact], envs: Input[Dataset], tasks: Output[Dataset], metrics: Output[Metrics]):
    """Synthesize verified tasks and split them into train.jsonl / heldout.jsonl."""
    from toolorch.ops.kfp_io import run_stage

    run_stage("synth_tasks", config.path, metrics, {"synth_envs": envs.path}, tasks.path)
